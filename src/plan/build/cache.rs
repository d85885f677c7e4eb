//! Whether each task's results may be reused, and its static cache key
//! (docs/running.md, "Caching"): sha256 over a versioned, length-prefixed encoding of
//! what decides the task's outputs and is known before it runs. The task runtime
//! finishes the key when the task starts, with the parameter values it reads and the
//! content digests of the values it receives.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::analysis::CellFacts;
use crate::deps::files::MODULES_DIR;
use crate::notebook::Notebook;
use crate::plan::{CacheIngredient, Plan, Task, TaskCache};

/// Bumped whenever the encoding or the ingredients change: old entries stop matching.
pub const CACHE_KEY_FORMAT: u32 = 1;

/// Decides `cache` of every task of `plan`: off when its `cache:false` setting or its
/// code says so, else its key.
pub fn decide(plan: &mut Plan, nb: &Notebook, facts: &[Option<CellFacts>]) {
    let base_image = plan.settings.base_image.clone();
    let python = plan.python.clone();
    for t in plan.tasks.iter_mut() {
        let reason = if !t.settings.cache {
            Some("cache:false".to_string())
        } else if t.settings.spark.is_some() {
            Some("a Spark task: its values are not content-addressed".to_string())
        } else {
            nondeterminism(nb, facts, t)
        };
        t.cache = match reason {
            Some(r) => TaskCache {
                enabled: false,
                reason: Some(r),
                key: None,
                ingredients: Vec::new(),
            },
            None => {
                let ingredients = ingredients(t, &python, &base_image);
                TaskCache {
                    enabled: true,
                    reason: None,
                    key: Some(key_of(&ingredients)),
                    ingredients,
                }
            }
        };
    }
}

/// The key: the format, then each ingredient's kind, name and digest, length-prefixed.
pub fn key_of(ingredients: &[CacheIngredient]) -> String {
    let mut h = Sha256::new();
    field(&mut h, b"nb2pipe-cache");
    field(&mut h, &CACHE_KEY_FORMAT.to_le_bytes());
    for i in ingredients {
        field(&mut h, i.kind.as_bytes());
        field(&mut h, i.name.as_bytes());
        field(&mut h, i.sha256.as_bytes());
    }
    hex(&h.finalize())
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        field(&mut h, p);
    }
    hex(&h.finalize())
}

/// What goes into the static key. Where a cell sits in the notebook (its index, its
/// first line) is left out: it changes error messages, not results.
pub fn ingredients(t: &Task, python: &str, base_image: &str) -> Vec<CacheIngredient> {
    let ing = |kind: &str, name: &str, sha256: String| CacheIngredient {
        kind: kind.into(),
        name: name.into(),
        sha256,
    };
    let mut out = Vec::new();
    // The runtime and main.py's template: what runs around the task's code.
    let mut rt: Vec<&[u8]> = vec![env!("CARGO_PKG_VERSION").as_bytes()];
    for (name, text) in crate::emit::templates::BUILTIN {
        if *name == "task/nb2pipe_runtime.py" || *name == "task/main.py.j2" {
            rt.push(name.as_bytes());
            rt.push(text.as_bytes());
        }
    }
    out.push(ing("runtime", "nb2pipe", digest_of(&rt)));
    out.push(ing("code", &t.name, code_digest(t)));
    let reqs: Vec<&[u8]> = t.requirements.iter().map(|r| r.line.as_bytes()).collect();
    out.push(ing("requirements", "requirements.txt", digest_of(&reqs)));
    let image = t.image.base.as_deref().unwrap_or(base_image);
    out.push(ing(
        "environment",
        "python, image",
        digest_of(&[python.as_bytes(), image.as_bytes()]),
    ));
    if !t.settings.env.is_empty() {
        let env: Vec<&[u8]> = t
            .settings
            .env
            .iter()
            .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
            .collect();
        out.push(ing("env", "env", digest_of(&env)));
    }
    let module_prefix = format!("{MODULES_DIR}/");
    for c in t.copies.iter().filter(|c| c.to.starts_with(&module_prefix)) {
        let bytes = std::fs::read(&c.from).unwrap_or_default();
        out.push(ing(
            "module",
            &c.to[module_prefix.len()..],
            hex(&Sha256::digest(&bytes)),
        ));
    }
    for f in &t.files {
        out.push(ing("file", &f.path, f.sha256.clone()));
    }
    out
}

/// main.py apart from where its code came from: the chunks' code and magics, what the
/// task loads, saves and reads, and where the random states are restored.
fn code_digest(t: &Task) -> String {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for c in &t.code {
        parts.push(c.python.as_bytes().to_vec());
        parts.push(c.raw_body.as_bytes().to_vec());
        parts.push(format!("{:?}|{:?}|{}", c.magic, c.wrapper, c.prelude).into_bytes());
    }
    for i in &t.inputs {
        parts.push(format!("in:{}<{}", i.name, i.from).into_bytes());
    }
    for o in &t.outputs {
        parts.push(format!("out:{o}").into_bytes());
    }
    for p in &t.parameters {
        parts.push(format!("param:{p}").into_bytes());
    }
    if let Some(r) = &t.random_state {
        parts.push(format!("random:{:?}>{:?}@{}", r.from, r.to, r.restore_at).into_bytes());
    }
    parts.push(format!("metrics:{}", t.metrics).into_bytes());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    digest_of(&refs)
}

/// Seeding calls: after one, the global generators draw the same numbers every run.
const SEED_CALLS: &[&str] = &["random.seed", "numpy.random.seed"];
const SEED_SUFFIXES: &[&str] = &["set_seed", "seed_everything", "set_random_seed"];

const CLOCK: &[&str] = &[
    "datetime.datetime.now",
    "datetime.datetime.today",
    "datetime.datetime.utcnow",
    "datetime.date.today",
    "time.time",
    "time.time_ns",
    "time.perf_counter",
    "time.perf_counter_ns",
    "time.monotonic",
    "time.monotonic_ns",
    "pandas.Timestamp.now",
    "pandas.Timestamp.today",
    "pandas.Timestamp.utcnow",
];

const UNSEEDED: &[&str] = &["uuid.uuid1", "uuid.uuid4", "os.urandom"];
const NETWORK_MODULES: &[&str] = &["requests", "httpx", "urllib3", "aiohttp"];
const NETWORK: &[&str] = &["urllib.request.urlopen", "urllib.request.urlretrieve"];
/// Generator methods that only set or read the state.
const STATE_CALLS: &[&str] = &["seed", "setstate", "getstate", "get_state", "set_state"];
/// Generator constructors: seeded when given arguments.
const CONSTRUCTORS: &[&str] = &[
    "default_rng",
    "RandomState",
    "Random",
    "Generator",
    "SeedSequence",
    "PCG64",
    "MT19937",
];

/// Why `t`'s code gives other results on another run, if it visibly does: the first
/// such call, in notebook order.
fn nondeterminism(nb: &Notebook, facts: &[Option<CellFacts>], t: &Task) -> Option<String> {
    let last_cell = t.code.iter().map(|c| c.cell).max()?;
    // Import aliases in notebook order up to the task's last cell (the kernel's).
    let mut aliases: BTreeMap<&str, &str> = BTreeMap::new();
    let mut first_seed: Option<usize> = None;
    for (i, f) in facts.iter().enumerate().take(last_cell + 1) {
        let Some(f) = f else { continue };
        for (a, full) in &f.aliases {
            aliases.insert(a, full);
        }
        if first_seed.is_none()
            && f.effect_calls.iter().any(|c| {
                let r = resolve(&aliases, &c.name);
                SEED_CALLS.contains(&r.as_str()) || SEED_SUFFIXES.iter().any(|s| r.ends_with(s))
            })
        {
            first_seed = Some(i);
        }
    }
    for c in &t.code {
        let Some(Some(f)) = facts.get(c.cell) else {
            continue;
        };
        let lines = c.first_line..c.first_line + c.python.lines().count().max(1);
        for call in f.effect_calls.iter().filter(|e| lines.contains(&e.line)) {
            let r = resolve(&aliases, &call.name);
            let last = r.rsplit('.').next().unwrap_or_default();
            let top = r.split('.').next().unwrap_or_default();
            let what = if CLOCK.contains(&r.as_str()) {
                "reads the clock"
            } else if UNSEEDED.contains(&r.as_str()) || r.starts_with("secrets.") {
                "draws random bytes"
            } else if NETWORK.contains(&r.as_str())
                || NETWORK_MODULES.contains(&top)
                || call.url_arg
            {
                "reads the network"
            } else if (r.starts_with("random.") || r.starts_with("numpy.random."))
                && !STATE_CALLS.contains(&last)
                && !(CONSTRUCTORS.contains(&last) && call.has_args)
                && (first_seed.is_none_or(|s| s > c.cell) || CONSTRUCTORS.contains(&last))
            {
                "draws unseeded random numbers"
            } else {
                continue;
            };
            let shown = nb.cells.get(c.cell).map_or(c.cell + 1, |x| x.index + 1);
            return Some(format!(
                "{what}: `{}()` in cell {shown}, line {}",
                call.name, call.line
            ));
        }
    }
    None
}

/// `np.random.rand` → `numpy.random.rand` with the notebook's imports.
fn resolve(aliases: &BTreeMap<&str, &str>, name: &str) -> String {
    let (head, rest) = name.split_once('.').unwrap_or((name, ""));
    match aliases.get(head) {
        Some(full) if rest.is_empty() => full.to_string(),
        Some(full) => format!("{full}.{rest}"),
        None => name.to_string(),
    }
}
