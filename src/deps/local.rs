//! The project's own modules: `.py` files and packages next to or above the notebook,
//! in folders added with `sys.path.append/insert("literal")`, or written by `%%writefile`.
//! They are copied into the image, and their own imports count for the tasks that
//! import them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::analysis::{self, Import};

/// Limits that keep a huge project folder from slowing a convert down.
const MAX_FILE_BYTES: u64 = 2 << 20;

/// Where a local module's source is.
#[derive(Debug, Clone)]
enum Origin {
    /// A file or package folder on disk: (search folder, path of the module or package).
    Disk {
        base: PathBuf,
        path: PathBuf,
        package: bool,
    },
    /// Written by a `%%writefile` cell: (path as written, body).
    Written { path: String, body: String },
}

pub(super) struct Locals {
    nb_dir: PathBuf,
    /// Search folders: the notebook's, `sys.path` literals, then the ancestors.
    search: Vec<(PathBuf, bool)>,
    written: BTreeMap<String, (String, String)>,
    /// Where each top-level name was found (or not): every task of a notebook imports
    /// much the same modules, and each look costs a few `stat`s per search folder.
    origins: Mutex<HashMap<String, Option<Origin>>>,
}

/// A resolved local module.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// What the image copies, relative to the notebook's folder (`utils.py`, `mypkg`,
    /// `lib/helpers.py`).
    pub(super) copy: String,
    /// The files Python runs when importing the module, with their sources.
    pub(super) files: Vec<(String, String)>,
    /// The dotted package each file belongs to (for relative imports).
    pub(super) packages: Vec<String>,
}

impl Locals {
    /// `sys_paths`: literal folders added to `sys.path`; `written`: `%%writefile` cells
    /// as (path, body).
    pub(super) fn new(
        nb_dir: &Path,
        sys_paths: &[String],
        written: &[(String, String)],
        ancestors: &[PathBuf],
    ) -> Locals {
        let mut search: Vec<(PathBuf, bool)> = vec![(nb_dir.to_path_buf(), true)];
        for p in sys_paths {
            let d = nb_dir.join(p);
            if !search.iter().any(|(s, _)| *s == d) {
                search.push((d, true));
            }
        }
        for a in ancestors.iter().skip(1) {
            // Above the notebook only real packages and modules count, and `src/` layouts.
            search.push((a.clone(), false));
            search.push((a.join("src"), false));
        }
        let mut w = BTreeMap::new();
        for (path, body) in written {
            let clean = path.trim_start_matches("./");
            let Some(stem) = clean.strip_suffix(".py") else {
                continue;
            };
            let (dir, file) = match stem.rsplit_once('/') {
                Some((d, f)) => (d, f),
                None => ("", stem),
            };
            let in_path = dir.is_empty()
                || sys_paths
                    .iter()
                    .any(|s| s.trim_start_matches("./").trim_end_matches('/') == dir);
            let module = if file == "__init__" {
                dir.rsplit('/').next().unwrap_or(dir).to_string()
            } else if in_path {
                file.to_string()
            } else {
                continue;
            };
            if !module.is_empty() {
                w.entry(module).or_insert((clean.to_string(), body.clone()));
            }
        }
        Locals {
            nb_dir: nb_dir.to_path_buf(),
            search,
            written: w,
            origins: Mutex::default(),
        }
    }

    /// The local module for import `module` (dotted; `names` are the `from` names).
    pub(super) fn find(&self, module: &str, names: &[String]) -> Option<Found> {
        let top = module.split('.').next()?;
        if top.is_empty() {
            return None;
        }
        let origin = self.origin(top)?;
        let mut found = Found {
            copy: String::new(),
            files: Vec::new(),
            packages: Vec::new(),
        };
        match origin {
            Origin::Written { path, body } => {
                found.copy = path.clone();
                found.files.push((path, body));
                found.packages.push(String::new());
            }
            Origin::Disk {
                base,
                path,
                package,
            } => {
                found.copy = self.rel(&path);
                if !package {
                    push_file(&mut found, &path, &self.rel(&path), "");
                    return Some(found);
                }
                // Importing a.b.c runs a/__init__.py, a/b/__init__.py and a/b/c(.py|/__init__.py);
                // `from a.b import c` may import the submodule c too.
                let parts: Vec<&str> = module.split('.').collect();
                let mut targets: Vec<Vec<&str>> = vec![parts.clone()];
                for n in names {
                    let mut t = parts.clone();
                    t.push(n);
                    targets.push(t);
                }
                for t in targets {
                    for k in 1..=t.len() {
                        let rel: PathBuf = t[..k].iter().collect();
                        let pkg = t[..k.saturating_sub(1)].join(".");
                        let init = base.join(&rel).join("__init__.py");
                        let file = base.join(&rel).with_extension("py");
                        if init.is_file() {
                            push_file(&mut found, &init, &self.rel(&init), &t[..k].join("."));
                        } else if file.is_file() {
                            push_file(&mut found, &file, &self.rel(&file), &pkg);
                        }
                    }
                }
            }
        }
        Some(found)
    }

    fn origin(&self, top: &str) -> Option<Origin> {
        let mut seen = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = seen.get(top) {
            return o.clone();
        }
        let o = self.look_up(top);
        seen.insert(top.to_string(), o.clone());
        o
    }

    fn look_up(&self, top: &str) -> Option<Origin> {
        for (dir, loose) in &self.search {
            let file = dir.join(format!("{top}.py"));
            let pkg = dir.join(top);
            if file.is_file() {
                return Some(Origin::Disk {
                    base: dir.clone(),
                    path: file,
                    package: false,
                });
            }
            if pkg.join("__init__.py").is_file() || (*loose && pkg.is_dir() && has_python(&pkg)) {
                return Some(Origin::Disk {
                    base: dir.clone(),
                    path: pkg,
                    package: true,
                });
            }
        }
        self.written.get(top).map(|(path, body)| Origin::Written {
            path: path.clone(),
            body: body.clone(),
        })
    }

    fn rel(&self, p: &Path) -> String {
        relative(&self.nb_dir, p)
    }
}

fn has_python(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "py"))
        })
        .unwrap_or(false)
}

fn push_file(found: &mut Found, path: &Path, shown: &str, package: &str) {
    if found.files.iter().any(|(p, _)| p == shown) {
        return;
    }
    let small = std::fs::metadata(path)
        .map(|m| m.len() <= MAX_FILE_BYTES)
        .unwrap_or(false);
    let src = if small {
        std::fs::read_to_string(path).unwrap_or_default()
    } else {
        String::new()
    };
    found.files.push((shown.to_string(), src));
    found.packages.push(package.to_string());
}

/// `path` relative to `base`, with `../` where it lies above; `/` separators.
pub(super) fn relative(base: &Path, path: &Path) -> String {
    // A relative notebook folder and an absolute environment compare as absolute paths.
    let (base, path) = if base.is_absolute() == path.is_absolute() {
        (base.to_path_buf(), path.to_path_buf())
    } else {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        (abs(base), abs(path))
    };
    let b: Vec<_> = base.components().collect();
    let p: Vec<_> = path.components().collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    // Sharing only `/`: the absolute path says more than a climb to the root.
    if path.is_absolute() && common <= 1 {
        return path.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The imports of one module file, with relative imports made absolute against
/// `package` (the dotted package the file belongs to).
pub(super) fn file_imports(src: &str, package: &str) -> Vec<Import> {
    let facts = analysis::analyse_cell(src);
    let mut out = facts.imports;
    for imp in &mut out {
        if let Some(rest) = imp.module.strip_prefix('.') {
            let level = 1 + rest.chars().take_while(|&c| c == '.').count();
            let rest = rest.trim_start_matches('.');
            let mut parts: Vec<&str> = package.split('.').filter(|p| !p.is_empty()).collect();
            for _ in 1..level {
                parts.pop();
            }
            if !rest.is_empty() {
                parts.push(rest);
            }
            // Beyond the top of the project: leave it relative, it resolves to nothing.
            if !parts.is_empty() {
                imp.module = parts.join(".");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_shown_plainly() {
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/c/d")), "../c/d");
        assert_eq!(relative(Path::new("nb"), Path::new("nb/m.py")), "m.py");
        assert_eq!(
            relative(Path::new("/work/x"), Path::new("/root/.venv")),
            "/root/.venv"
        );
        // A notebook given by a relative path, an environment found by an absolute one.
        let shown = relative(Path::new("fixtures"), Path::new("/nonexistent/.venv"));
        assert_eq!(shown, "/nonexistent/.venv");
        let here = std::env::current_dir().unwrap();
        assert_eq!(relative(Path::new("sub"), &here.join("sub/.venv")), ".venv");
    }
}
