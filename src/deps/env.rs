//! The Python environment the notebook ran in, read from its installed distributions'
//! metadata files (`*.dist-info/{METADATA,RECORD,top_level.txt}`, `*.egg-info/`), never
//! by starting Python.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::names::normalize;

#[derive(Debug)]
pub(super) struct Dist {
    pub(super) name: String,
    pub(super) version: String,
    dir: PathBuf,
}

#[derive(Debug)]
pub(super) struct Env {
    /// The environment's root (the venv folder).
    pub(super) root: PathBuf,
    dists: Vec<Dist>,
    by_name: HashMap<String, usize>,
    /// Top-level name → distributions installing it (top_level.txt, else RECORD).
    tops: OnceCell<HashMap<String, Vec<usize>>>,
    /// Per distribution, read only when an import needs it: dotted prefix → real module?
    deep: RefCell<HashMap<usize, HashMap<String, bool>>>,
}

/// The venv next to the notebook (`.venv/`, `venv/`), if any.
pub(super) fn discover(nb_dir: &Path) -> Option<PathBuf> {
    [".venv", "venv"]
        .iter()
        .map(|d| nb_dir.join(d))
        .find(|d| d.join("pyvenv.cfg").is_file() || !site_dirs(d).is_empty())
}

fn site_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64", "local/lib"] {
        let Ok(rd) = std::fs::read_dir(root.join(lib)) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
            })
            .collect();
        pys.sort();
        for p in pys {
            for sub in ["site-packages", "dist-packages"] {
                if p.join(sub).is_dir() {
                    out.push(p.join(sub));
                }
            }
        }
    }
    for p in ["Lib/site-packages", "lib/python3/dist-packages"] {
        if root.join(p).is_dir() {
            out.push(root.join(p));
        }
    }
    out.dedup();
    out
}

impl Env {
    /// Opens the environment of interpreter `python` (`.../bin/python`) or of a venv
    /// folder. Fails when no site-packages folder is found.
    pub(super) fn open(python: &Path) -> Result<Env, String> {
        let root = if python.is_dir() {
            python.to_path_buf()
        } else if python.exists() {
            // bin/python → the environment root; not canonicalised: a venv's python is a
            // symlink to the base interpreter, whose root is not the venv.
            python
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        } else {
            return Err(format!("{} does not exist", python.display()));
        };
        let sites = site_dirs(&root);
        if sites.is_empty() {
            return Err(format!("no site-packages folder under {}", root.display()));
        }
        let mut dists = Vec::new();
        for site in &sites {
            let Ok(rd) = std::fs::read_dir(site) else {
                continue;
            };
            let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for dir in entries {
                let fname = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta = if fname.ends_with(".dist-info") {
                    dir.join("METADATA")
                } else if fname.ends_with(".egg-info") {
                    if dir.is_dir() {
                        dir.join("PKG-INFO")
                    } else {
                        dir.clone()
                    }
                } else {
                    continue;
                };
                let Some((name, version)) = read_name_version(&meta) else {
                    continue;
                };
                dists.push(Dist { name, version, dir });
            }
        }
        let mut by_name = HashMap::new();
        for (i, d) in dists.iter().enumerate() {
            by_name.entry(normalize(&d.name)).or_insert(i);
        }
        Ok(Env {
            root,
            dists,
            by_name,
            tops: OnceCell::new(),
            deep: RefCell::new(HashMap::new()),
        })
    }

    pub(super) fn dist(&self, name: &str) -> Option<&Dist> {
        self.by_name.get(&normalize(name)).map(|&i| &self.dists[i])
    }

    /// The distribution that installs `module`: the one owning the longest dotted prefix
    /// of it, when exactly one does.
    pub(super) fn provider(&self, module: &str) -> Option<&Dist> {
        let top = module.split('.').next().unwrap_or(module);
        let tops = self.tops.get_or_init(|| self.build_tops());
        let candidates = tops.get(top)?;
        let mut deep = self.deep.borrow_mut();
        for &c in candidates {
            deep.entry(c).or_insert_with(|| self.read_deep(c));
        }
        let mut end = module.len();
        loop {
            let prefix = &module[..end];
            let real: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|c| deep[c].get(prefix) == Some(&true))
                .collect();
            if !real.is_empty() {
                return (real.len() == 1).then(|| &self.dists[real[0]]);
            }
            end = prefix.rfind('.')?;
        }
    }

    /// Whether installed distribution `dist` provides `module`.
    pub(super) fn provides(&self, dist: &str, module: &str) -> bool {
        let Some(&want) = self.by_name.get(&normalize(dist)) else {
            return false;
        };
        self.provider(module)
            .is_some_and(|d| std::ptr::eq(d, &self.dists[want]))
    }

    fn record(&self, i: usize) -> Option<String> {
        let d = &self.dists[i].dir;
        std::fs::read_to_string(d.join("RECORD"))
            .or_else(|_| std::fs::read_to_string(d.join("installed-files.txt")))
            .ok()
    }

    /// Cheap: top_level.txt where it exists, else the first path segment of each RECORD line.
    fn build_tops(&self) -> HashMap<String, Vec<usize>> {
        let mut tops: HashMap<String, Vec<usize>> = HashMap::new();
        for i in 0..self.dists.len() {
            let mut names: Vec<String> =
                match std::fs::read_to_string(self.dists[i].dir.join("top_level.txt")) {
                    Ok(tl) => tl
                        .lines()
                        .map(|l| l.trim().split('/').next().unwrap_or("").to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                    Err(_) => {
                        let text = self.record(i).unwrap_or_default();
                        let mut v: Vec<String> = Vec::new();
                        for line in text.lines() {
                            let path = record_path(line);
                            let (first, rest) = path.split_once('/').unwrap_or((path, ""));
                            let name = if rest.is_empty() {
                                match first.split_once('.') {
                                    Some((stem, ext))
                                        if ["py", "so", "pyd", "pyi"]
                                            .iter()
                                            .any(|e| ext.ends_with(e)) =>
                                    {
                                        stem
                                    }
                                    _ => continue,
                                }
                            } else {
                                first
                            };
                            if !name.is_empty()
                                && !name.contains(['-', ' ', '.'])
                                && name != "__pycache__"
                                && !v.iter().any(|x| x == name)
                            {
                                v.push(name.to_string());
                            }
                        }
                        v
                    }
                };
            names.dedup();
            for n in names {
                let e = tops.entry(n).or_default();
                if !e.contains(&i) {
                    e.push(i);
                }
            }
        }
        tops
    }

    /// Every dotted prefix (depth ≤ 4) the distribution installs, and whether it is a
    /// real module or package rather than a namespace folder.
    fn read_deep(&self, i: usize) -> HashMap<String, bool> {
        let mut m: HashMap<String, bool> = HashMap::new();
        match self.record(i) {
            Some(text) => {
                for line in text.lines() {
                    let (prefixes, real) = module_prefixes(record_path(line));
                    let n = prefixes.len();
                    for (k, p) in prefixes.into_iter().enumerate() {
                        *m.entry(p).or_insert(false) |= real && k + 1 == n;
                    }
                }
            }
            None => {
                if let Ok(tl) = std::fs::read_to_string(self.dists[i].dir.join("top_level.txt")) {
                    for l in tl.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        m.insert(l.replace('/', "."), true);
                    }
                }
            }
        }
        m
    }
}

fn record_path(line: &str) -> &str {
    match line.strip_prefix('"') {
        Some(rest) => rest.split('"').next().unwrap_or(""),
        None => line.split(',').next().unwrap_or(""),
    }
}

/// `google/cloud/storage/blob.py` → `google`, `google.cloud`, `google.cloud.storage`,
/// `google.cloud.storage.blob`, and whether the last is a real module (a `.py` file, or
/// a package's `__init__.py`) rather than a namespace folder. Other files give nothing.
fn module_prefixes(path: &str) -> (Vec<String>, bool) {
    let path = path.trim().replace('\\', "/");
    let none = (Vec::new(), false);
    if path.starts_with("..")
        || path.starts_with('/')
        || path.contains(".dist-info/")
        || path.contains(".egg-info/")
        || path.contains("__pycache__")
        || path.starts_with("__editable__")
    {
        return none;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let Some(last) = parts.last() else {
        return none;
    };
    let is_module = [".py", ".so", ".pyd", ".pyi"]
        .iter()
        .any(|e| last.ends_with(e));
    if !is_module {
        return none;
    }
    let mut names: Vec<&str> = parts[..parts.len() - 1].to_vec();
    let stem = last.split('.').next().unwrap_or("");
    if stem != "__init__" {
        names.push(stem);
    }
    if names.is_empty()
        || names
            .iter()
            .any(|n| n.is_empty() || n.contains('-') || n.contains(' '))
    {
        return none;
    }
    let depth = names.len().min(4);
    // Deeper than 4 levels the 4-level prefix is only a folder with modules below.
    (
        (1..=depth).map(|k| names[..k].join(".")).collect(),
        depth == names.len(),
    )
}

fn read_name_version(meta: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(meta).ok()?;
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.is_empty() {
            break; // headers end at the first blank line; the description follows
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
    }
    Some((name.filter(|n| !n.is_empty())?, version.unwrap_or_default()))
}
