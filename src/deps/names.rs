//! Import name → distribution name without an environment: the shipped table
//! (`import_names.txt`), the naming convention of the Google Cloud and Azure namespace
//! packages, and PEP 503 name normalisation.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE_TXT: &str = include_str!("import_names.txt");

/// One row of the table: the distribution nb2pipe writes, and others that provide the
/// same module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub module: &'static str,
    pub dist: &'static str,
    alts: &'static str,
}

impl Row {
    /// The distribution and its alternatives.
    pub fn all(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.dist).chain(self.alts.split_whitespace())
    }
}

fn table() -> &'static HashMap<&'static str, Row> {
    static T: OnceLock<HashMap<&'static str, Row>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m = HashMap::new();
        for line in TABLE_TXT.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (module, rest) = line.split_once(' ').unwrap_or((line, line));
            let rest = rest.trim();
            let (dist, alts) = rest.split_once(' ').unwrap_or((rest, ""));
            m.insert(module, Row { module, dist, alts });
        }
        m
    })
}

/// Every row of the table (for tests and docs).
pub fn rows() -> Vec<Row> {
    let mut v: Vec<Row> = table().values().copied().collect();
    v.sort_by_key(|r| r.module);
    v
}

/// The table row of the longest dotted prefix of `module`.
pub fn lookup(module: &str) -> Option<Row> {
    let t = table();
    let mut end = module.len();
    loop {
        if let Some(r) = t.get(&module[..end]) {
            return Some(*r);
        }
        end = module[..end].rfind('.')?;
    }
}

/// The distribution a `google.cloud.*` / `azure.*` namespace module follows by its
/// family's naming convention (`google.cloud.foo_v1` → `google-cloud-foo`).
pub fn namespace_convention(module: &str) -> Option<String> {
    let parts: Vec<&str> = module.split('.').collect();
    let strip_version = |s: &str| -> String {
        // `pubsub_v1`, `foo_v1beta2`: the versioned API surface of the same distribution.
        let base = match s.rfind("_v") {
            Some(i) if s[i + 2..].starts_with(|c: char| c.is_ascii_digit()) => &s[..i],
            _ => s,
        };
        base.replace('_', "-")
    };
    match parts.as_slice() {
        ["google", "cloud", x, ..] => Some(format!("google-cloud-{}", strip_version(x))),
        ["azure", "mgmt", x, ..] => Some(format!("azure-mgmt-{}", strip_version(x))),
        ["azure", x, y, ..] if !y.starts_with('_') && !matches!(*y, "aio" | "models") => {
            Some(format!("azure-{}-{}", strip_version(x), strip_version(y)))
        }
        ["azure", x] => Some(format!("azure-{}", strip_version(x))),
        _ => None,
    }
}

/// PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    if sep {
        out.push('-');
    }
    out
}

/// Whether distribution `dist` plausibly provides top-level module `module` by name
/// alone (`pyfoo`, `python-foo`, `foo-python` for `foo`), used to match an explicit
/// `%pip install` to an import when no environment tells.
pub(super) fn name_matches(dist: &str, module: &str) -> bool {
    let d = normalize(dist);
    let m = normalize(module.split('.').next().unwrap_or(module));
    d == m
        || d == format!("py{m}")
        || d == format!("python-{m}")
        || d == format!("{m}-python")
        || d == format!("{m}-py")
}
