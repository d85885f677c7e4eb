//! The standard library of each Python version from 3.8 to 3.14, and the modules that
//! left it (data files in `stdlib/` and `removed.txt`; sources in docs/dependencies.md).

use std::collections::HashMap;
use std::sync::OnceLock;

const VERSIONS: [(u32, &str); 7] = [
    (8, include_str!("stdlib/3.8.txt")),
    (9, include_str!("stdlib/3.9.txt")),
    (10, include_str!("stdlib/3.10.txt")),
    (11, include_str!("stdlib/3.11.txt")),
    (12, include_str!("stdlib/3.12.txt")),
    (13, include_str!("stdlib/3.13.txt")),
    (14, include_str!("stdlib/3.14.txt")),
];
const REMOVED: &str = include_str!("removed.txt");

/// The minor version nb2pipe uses for `python` ("3.11" → 11), clamped to 3.8..=3.14.
pub fn minor(python: &str) -> u32 {
    let m = python
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(11);
    m.clamp(8, 14)
}

/// The sorted module list of one version, built on first use (a run needs one or two).
fn set(idx: usize) -> &'static [&'static str] {
    static S: [OnceLock<Vec<&'static str>>; VERSIONS.len()] =
        [const { OnceLock::new() }; VERSIONS.len()];
    S[idx].get_or_init(|| {
        let mut v: Vec<&str> = VERSIONS[idx]
            .1
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// Whether top-level module `top` is in the standard library of 3.`minor`.
pub fn is_stdlib(top: &str, minor: u32) -> bool {
    let idx = VERSIONS.iter().position(|(m, _)| *m == minor).unwrap_or(3);
    set(idx).binary_search(&top).is_ok()
}

/// A standard-library module that the target version no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// `3.12`
    pub removed_in: &'static str,
    /// The PyPI distribution that brings it back, if there is one.
    pub backport: Option<&'static str>,
}

/// `Some` when `top` was in the standard library before 3.`minor` and is not in it now.
pub fn removed(top: &str, minor: u32) -> Option<Removed> {
    static TABLE: OnceLock<HashMap<&'static str, (u32, Removed)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = HashMap::new();
        for line in REMOVED.lines() {
            let mut w = line.split_whitespace();
            let (Some(m), Some(v), Some(b)) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            if m.starts_with('#') {
                continue;
            }
            let since: u32 = v
                .split('.')
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(99);
            let r = Removed {
                removed_in: v,
                backport: (b != "-").then_some(b),
            };
            // The first line of a module wins, as a scan of the file would find it.
            t.entry(m).or_insert((since, r));
        }
        t
    });
    table
        .get(top)
        .filter(|(since, _)| minor >= *since)
        .map(|(_, r)| *r)
}

const PYTHON2: &str = include_str!("python2.txt");

/// The Python 3 replacement of `top` when it is a Python 2 standard-library module that
/// Python 3 renamed or removed (`urllib2` → `urllib.request/urllib.error`).
pub(super) fn python2(top: &str) -> Option<&'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = HashMap::new();
        for l in PYTHON2.lines() {
            if let Some((m, py3)) = l.split_once(' ').filter(|(m, _)| !m.starts_with('#')) {
                t.entry(m).or_insert(py3);
            }
        }
        t
    });
    table.get(top).copied()
}

/// A generated protocol-buffers module (`*_pb2`, `*_pb2_grpc`): code made by `protoc`
/// next to the project's sources, never a distribution of its own.
pub(super) fn is_generated_protobuf(module: &str) -> bool {
    module
        .split('.')
        .any(|p| p.ends_with("_pb2") || p.ends_with("_pb2_grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_module_and_no_other_is_in_its_version() {
        for (minor, text) in VERSIONS {
            let listed: std::collections::HashSet<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            for m in &listed {
                assert!(is_stdlib(m, minor), "3.{minor}: {m}");
                assert!(!is_stdlib(&format!("{m}_zz"), minor), "3.{minor}: {m}_zz");
            }
            for other in ["numpy", "", "zz", "OS", "~"] {
                assert_eq!(
                    is_stdlib(other, minor),
                    listed.contains(other),
                    "3.{minor}: {other}"
                );
            }
        }
    }

    #[test]
    fn python2_names_and_protobuf_modules() {
        assert_eq!(python2("urllib2"), Some("urllib.request/urllib.error"));
        assert_eq!(python2("StringIO"), Some("io.StringIO"));
        assert_eq!(python2("cPickle"), Some("pickle"));
        assert_eq!(python2("io"), None);
        assert_eq!(python2("#"), None);
        // Python 2 names are not in any Python 3 standard library.
        for l in PYTHON2.lines().filter(|l| !l.starts_with('#')) {
            let m = l.split(' ').next().unwrap();
            assert!(!is_stdlib(m, 11), "{m}");
        }
        assert!(is_generated_protobuf("service_pb2"));
        assert!(is_generated_protobuf("protos.service_pb2_grpc"));
        assert!(!is_generated_protobuf("pb2tools"));
    }
}
