//! Import name → distribution name without an environment: the shipped table
//! (`import_names.txt`), the naming convention of the Google Cloud and Azure namespace
//! packages, and PEP 503 name normalisation.

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

/// The rows sorted by module, in file order among equal modules: a binary search is
/// cheaper to build and to ask than a hash map for a table read once per run.
fn table() -> &'static [Row] {
    static T: OnceLock<Vec<Row>> = OnceLock::new();
    T.get_or_init(|| {
        // A capacity hint: the file averages more than 24 bytes a row.
        let mut v = Vec::with_capacity(TABLE_TXT.len() / 24);
        for line in TABLE_TXT.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (module, rest) = line.split_once(' ').unwrap_or((line, line));
            let rest = rest.trim();
            let (dist, alts) = rest.split_once(' ').unwrap_or((rest, ""));
            v.push(Row { module, dist, alts });
        }
        // Stable: of two lines for one module, the later stays last and wins.
        v.sort_by_key(|r| r.module);
        v
    })
}

/// The row for exactly `module`: the table's last line for it.
fn exact(module: &str) -> Option<Row> {
    let t = table();
    let end = t.partition_point(|r| r.module <= module);
    t[..end].last().filter(|r| r.module == module).copied()
}

/// Every row of the table (for tests and docs), one per module.
pub fn rows() -> Vec<Row> {
    let t = table();
    t.iter()
        .enumerate()
        .filter(|(i, r)| t.get(i + 1).is_none_or(|next| next.module != r.module))
        .map(|(_, r)| *r)
        .collect()
}

/// The table row of the longest dotted prefix of `module`.
pub fn lookup(module: &str) -> Option<Row> {
    let mut end = module.len();
    loop {
        if let Some(r) = exact(&module[..end]) {
            return Some(r);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The table read the plain way: one map entry per module, the later line winning.
    fn as_map() -> HashMap<&'static str, (&'static str, &'static str)> {
        let mut m = HashMap::new();
        for line in TABLE_TXT.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (module, rest) = line.split_once(' ').unwrap_or((line, line));
            let (dist, alts) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
            m.insert(module, (dist, alts));
        }
        m
    }

    #[test]
    fn lookup_is_the_table_as_a_map() {
        let m = as_map();
        assert_eq!(rows().len(), m.len());
        for (module, (dist, alts)) in &m {
            let r = exact(module).unwrap_or_else(|| panic!("{module} not found"));
            assert_eq!((r.dist, r.alts), (*dist, *alts), "{module}");
            // A dotted name below a listed module finds that module's row.
            let deeper = format!("{module}.zz_sub");
            assert_eq!(lookup(&deeper).map(|r| r.module), Some(*module), "{deeper}");
        }
        for absent in ["", "zz_absent", "sklearn_", "a", "~"] {
            assert_eq!(exact(absent).is_some(), m.contains_key(absent), "{absent}");
        }
    }
}
