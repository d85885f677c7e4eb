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
use crate::plan::{CacheIngredient, Task, TaskCache};

/// Bumped whenever the encoding or the ingredients change: old entries stop matching.
pub const CACHE_KEY_FORMAT: u32 = 1;

/// Decides `cache` of every task of `plan`: off when its `cache:false` setting or its
/// code says so, else its key.
/// Why task `t` is never served from the cache, if it is not: its settings, else the
/// first call in its code that gives other results on another run. Its requirements
/// and files play no part, so this is known before they are.
pub fn reason(t: &Task, nb: &Notebook, facts: &[Option<CellFacts>]) -> Option<String> {
    if !t.settings.cache {
        Some("cache:false".to_string())
    } else if t.settings.spark.is_some() {
        Some("a Spark task: its values are not content-addressed".to_string())
    } else {
        nondeterminism(nb, facts, t)
    }
}

/// Task `t`'s cache decision, given its [`reason`]; `t` is final but for its cache.
/// It reads the task alone, so tasks are decided in any order.
pub fn decide(t: &mut Task, reason: Option<String>, python: &str, base_image: &str) {
    t.cache = match reason {
        Some(r) => TaskCache {
            enabled: false,
            reason: Some(r),
            key: None,
            ingredients: Vec::new(),
        },
        None => {
            let ingredients = ingredients(t, python, base_image);
            TaskCache {
                enabled: true,
                reason: None,
                key: Some(key_of(&ingredients)),
                ingredients,
            }
        }
    };
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

use crate::digest::hex;

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
    out.push(ing("runtime", "nb2pipe", runtime_digest().to_string()));
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
            crate::digest::sha256_hex(&bytes),
        ));
    }
    for f in &t.files {
        out.push(ing("file", &f.path, f.sha256.clone()));
    }
    out
}

/// The runtime and main.py's template, what runs around the task's code: the same for
/// every task, and hashing its 40 kB per task was most of a large notebook's plan.
fn runtime_digest() -> &'static str {
    static DIGEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut rt: Vec<&[u8]> = vec![env!("CARGO_PKG_VERSION").as_bytes()];
        for (name, text) in crate::emit::templates::BUILTIN {
            if *name == "task/nb2pipe_runtime.py" || *name == "task/main.py.j2" {
                rt.push(name.as_bytes());
                rt.push(text.as_bytes());
            }
        }
        digest_of(&rt)
    })
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{ingredients, key_of};
    use crate::plan::{build, BuildInput, Plan, Requirement, Task};

    /// A plan of `cells` (`("md", text)` is a markdown cell) for a notebook in `dir`.
    fn plan_in(dir: &Path, cells: &[(&str, &str)]) -> Plan {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(tags, src)| {
                if *tags == "md" {
                    serde_json::json!({"cell_type": "markdown", "metadata": {}, "source": src})
                } else {
                    let tags: Vec<&str> = tags.split(' ').filter(|t| !t.is_empty()).collect();
                    serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null})
                }
            })
            .collect();
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
        let nb = crate::notebook::parse_str(&dir.join("t.ipynb"), &nb.to_string()).unwrap();
        build(BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
        .plan
    }

    fn keys(plan: &Plan) -> Vec<Option<String>> {
        plan.tasks.iter().map(|t| t.cache.key.clone()).collect()
    }

    const LOAD: &str = "text = open('data.csv').read()\nimport helpers\nn = helpers.count(text)";
    const TRAIN: &str = "model = n * 2";

    fn project(dir: &Path, data: &str, helper: &str) {
        std::fs::write(dir.join("data.csv"), data).unwrap();
        std::fs::write(dir.join("helpers.py"), helper).unwrap();
    }

    /// Many tasks are planned on several threads, a few on one: a task's requirements,
    /// files, image and cache decision are the same either way.
    #[test]
    fn a_task_is_planned_alike_among_few_or_many_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        project(
            d,
            "a,b\n1,2\n",
            "import yaml\ndef count(t):\n    return len(t)\n",
        );
        let sources: Vec<(String, String)> = (0..40)
            .map(|i| {
                let code = match i % 3 {
                    0 => format!("text{i} = open('data.csv').read()\nimport helpers\nn{i} = helpers.count(text{i})"),
                    1 => format!("import time\nimport numpy as np\nstarted{i} = time.time()"),
                    _ => format!("import pandas as pd\nimport asynchat\nframe{i} = pd.DataFrame()"),
                };
                (format!("task:t{i}"), code)
            })
            .collect();
        let plan_of = |n: usize| {
            let c: Vec<(&str, &str)> = sources[..n]
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            plan_in(d, &c)
        };
        let (few, many) = (plan_of(6), plan_of(40));
        assert_eq!(many.tasks.len(), 40);
        for (a, b) in few.tasks.iter().zip(&many.tasks) {
            assert_eq!(
                (
                    &a.requirements,
                    &a.local_modules,
                    &a.files,
                    &a.copies,
                    &a.image,
                    &a.cache
                ),
                (
                    &b.requirements,
                    &b.local_modules,
                    &b.files,
                    &b.copies,
                    &b.image,
                    &b.cache
                ),
                "task {}",
                a.name
            );
        }
        // What the comparison rests on: each kind of task got what it needs.
        assert_eq!(many.tasks[0].local_modules, vec!["helpers.py".to_string()]);
        assert!(many.tasks[0].cache.enabled);
        assert!(many.tasks[1]
            .cache
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("time.time")));
        let names = |t: &Task| {
            t.requirements
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            names(&many.tasks[0]).contains(&"pyyaml".to_string()),
            "{:?}",
            names(&many.tasks[0])
        );
        assert!(names(&many.tasks[2]).contains(&"pandas".to_string()));
    }

    #[test]
    fn the_notebook_s_ingredients_change_only_their_task_s_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        project(d, "a,b\n1,2\n", "def count(t):\n    return len(t)\n");
        let cells = |train: &str| {
            vec![
                ("md", "# Title"),
                ("task:load", LOAD),
                ("task:train", train),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
        };
        let plan_of = |c: &[(String, String)]| {
            let c: Vec<(&str, &str)> = c.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            plan_in(d, &c)
        };
        let base = keys(&plan_of(&cells(TRAIN)));
        assert!(base.iter().all(Option::is_some), "{base:?}");
        assert_ne!(base[0], base[1]);
        assert_eq!(base, keys(&plan_of(&cells(TRAIN))), "deterministic");

        // Editing the last task's code changes its key alone.
        let edited = keys(&plan_of(&cells("model = n * 3")));
        assert_eq!(edited[0], base[0]);
        assert_ne!(edited[1], base[1]);

        // A no-op edit: a markdown cell changed, another added (cells move down).
        let mut moved = cells(TRAIN);
        moved[0].1 = "# Title, reworded".into();
        moved.insert(1, ("md".into(), "Some notes".into()));
        assert_eq!(keys(&plan_of(&moved)), base);

        // The data file it reads by a literal path, and the project module it imports.
        project(d, "a,b\n1,3\n", "def count(t):\n    return len(t)\n");
        let data = keys(&plan_of(&cells(TRAIN)));
        assert_ne!(data[0], base[0]);
        assert_eq!(data[1], base[1]);
        project(d, "a,b\n1,2\n", "def count(t):\n    return len(t) + 1\n");
        let module = keys(&plan_of(&cells(TRAIN)));
        assert_ne!(module[0], base[0]);
        assert_ne!(module[0], data[0]);
        assert_eq!(module[1], base[1]);
    }

    /// A named edit of a task.
    type Change = (&'static str, Box<dyn Fn(&mut Task)>);

    fn key(t: &Task) -> String {
        key_of(&ingredients(t, "3.11", "python:3.11-slim"))
    }

    #[test]
    fn each_ingredient_changes_the_key_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), "x\n", "def count(t):\n    return 1\n");
        let plan = plan_in(dir.path(), &[("task:load", LOAD), ("task:train", TRAIN)]);
        let t = plan.task("train").unwrap().clone();
        let k = key(&t);
        assert_eq!(Some(&k), t.cache.key.as_ref());
        let changes: Vec<Change> = vec![
            ("code", Box::new(|t| t.code[0].python.push_str("\nz = 1"))),
            (
                "requirements",
                Box::new(|t| {
                    t.requirements.push(Requirement {
                        line: "numpy==2.0.0".into(),
                        name: "numpy".into(),
                        source: String::new(),
                        name_source: String::new(),
                        pin_source: String::new(),
                    })
                }),
            ),
            (
                "image setting",
                Box::new(|t| t.image.base = Some("ghcr.io/x/y:1".into())),
            ),
            (
                "env",
                Box::new(|t| {
                    t.settings.env.insert("MODE".into(), "fast".into());
                }),
            ),
            ("inputs", Box::new(|t| t.inputs[0].from = "other".into())),
            ("outputs", Box::new(|t| t.outputs.push("extra".into()))),
            (
                "parameters",
                Box::new(|t| t.parameters.push("alpha".into())),
            ),
            ("metrics", Box::new(|t| t.metrics = !t.metrics)),
            (
                "data file",
                Box::new(|t| {
                    t.files.push(crate::plan::DataFile {
                        path: "more.csv".into(),
                        size: 1,
                        sha256: "00".repeat(32),
                        staged: false,
                    })
                }),
            ),
        ];
        for (what, change) in &changes {
            let mut c = t.clone();
            change(&mut c);
            assert_ne!(key(&c), k, "{what} should change the key");
        }
        assert_ne!(
            key_of(&ingredients(&t, "3.12", "python:3.11-slim")),
            k,
            "python"
        );
        assert_ne!(
            key_of(&ingredients(&t, "3.11", "python:3.12-slim")),
            k,
            "base image"
        );
        let same: Vec<Change> = vec![
            ("cell index", Box::new(|t| t.code[0].cell += 3)),
            ("line in the cell", Box::new(|t| t.code[0].first_line += 2)),
            ("cells", Box::new(|t| t.cells = vec![7])),
            ("retries", Box::new(|t| t.settings.retries = 5)),
            (
                "timeout",
                Box::new(|t| t.settings.timeout_seconds = Some(60)),
            ),
            (
                "resources",
                Box::new(|t| {
                    t.settings
                        .resources
                        .requests
                        .insert("cpu".into(), "2".into());
                }),
            ),
            (
                "labels",
                Box::new(|t| {
                    t.settings.labels.insert("team".into(), "a".into());
                }),
            ),
            (
                "image tag",
                Box::new(|t| t.image.reference = "elsewhere/x:abc".into()),
            ),
            ("pool", Box::new(|t| t.settings.pool = Some("p".into()))),
        ];
        for (what, change) in &same {
            let mut c = t.clone();
            change(&mut c);
            assert_eq!(key(&c), k, "{what} should not change the key");
        }
    }

    fn reason(cells: &[(&str, &str)], task: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_in(dir.path(), cells);
        let t = plan.task(task).unwrap();
        assert_eq!(t.cache.enabled, t.cache.reason.is_none());
        assert_eq!(t.cache.enabled, t.cache.key.is_some());
        t.cache.reason.clone()
    }

    #[test]
    fn visibly_nondeterministic_code_is_not_cached() {
        let imports = "import time, uuid, random\nimport numpy as np\nimport pandas as pd\nfrom datetime import datetime\nimport datetime as dt\nimport urllib.request\nimport requests";
        let off = |code: &str| reason(&[("imports", imports), ("task:a", code)], "a");
        for (code, why) in [
            ("t = datetime.now()", "reads the clock: `datetime.now()`"),
            ("t = dt.date.today()", "reads the clock"),
            ("t = time.time()", "reads the clock: `time.time()`"),
            ("t = time.perf_counter()", "reads the clock"),
            ("u = str(uuid.uuid4())", "draws random bytes"),
            ("x = np.random.rand(3)", "draws unseeded random numbers"),
            ("x = random.choice([1, 2])", "draws unseeded random numbers"),
            (
                "rng = np.random.default_rng()\nx = rng.normal()",
                "unseeded",
            ),
            ("r = requests.get('http://x')", "reads the network"),
            (
                "r = urllib.request.urlopen('http://x')",
                "reads the network",
            ),
            (
                "df = pd.read_csv('https://example.com/a.csv')",
                "reads the network",
            ),
            (
                "def f():\n    return time.time()\nt = f()",
                "reads the clock",
            ),
        ] {
            let r = off(code).unwrap_or_else(|| panic!("`{code}` should not be cached"));
            assert!(r.contains(why), "`{code}`: {r}");
            assert!(r.contains("cell 2, line"), "{r}");
        }
        for code in [
            "time.sleep(0.1)\nx = 1",
            "rng = np.random.default_rng(0)\nx = rng.normal()",
            "x = np.random.RandomState(1).rand(2)",
            "t = datetime(2024, 1, 1)",
            "df = pd.read_csv('data.csv')",
        ] {
            assert_eq!(off(code), None, "`{code}` is deterministic");
        }
        // A seed before the draw (in an earlier cell) makes it repeatable.
        let seeded = [
            ("imports", imports),
            ("task:a", "np.random.seed(0)\nx = 1"),
            ("task:b", "y = np.random.rand(3)"),
        ];
        assert_eq!(reason(&seeded, "b"), None);
        let unseeded = [
            ("imports", imports),
            ("task:b", "y = np.random.rand(3)"),
            ("task:a", "np.random.seed(0)\nz = 1"),
        ];
        assert!(reason(&unseeded, "b").is_some());
    }

    #[test]
    fn cache_false_turns_it_off() {
        let r = reason(&[("task:a cache:false", "x = 1")], "a");
        assert_eq!(r.as_deref(), Some("cache:false"));
        assert_eq!(reason(&[("task:a", "x = 1")], "a"), None);
    }
}
