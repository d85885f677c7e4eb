//! Files that travel with a task: the data files its code opens by a literal relative
//! path (`pd.read_csv("data.csv")`, `open("cfg/x.json")`), and the files of the local
//! modules it imports. Both are read from the notebook's folder (docs/images.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::plan::{Chunk, DataFile, FileCopy};

/// Data files above this size are not put into the image: they are staged in the data
/// store and copied from there when the task starts.
pub const MAX_IMAGE_FILE: u64 = 16 << 20;

/// Where a task folder keeps its local modules and its data files.
pub const MODULES_DIR: &str = "modules";
pub const FILES_DIR: &str = "files";

/// String literals passed as call arguments in the task's Python code, in order.
fn call_literals(code: &[Chunk]) -> impl Iterator<Item = &str> {
    code.iter()
        .filter(|c| !c.syntax_error && c.magic.as_ref().is_none_or(|m| m.body_is_python()))
        .flat_map(|c| c.call_literals.iter().map(String::as_str))
}

/// `s` as a clean relative path inside the notebook's folder (`./a/../b.csv` → `b.csv`),
/// or `None` when it is absolute, a URL, or climbs out.
fn clean_relative(s: &str) -> Option<String> {
    if s.is_empty()
        || s.len() > 4096
        || s.starts_with(['/', '\\', '~'])
        || s.contains("://")
        || s.contains(['\0', '\n', '*', '?'])
        || s.as_bytes().get(1) == Some(&b':')
    {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Files that must not go into an image even when the code opens them: credentials.
fn looks_secret(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    path.split('/').any(|p| p.starts_with('.'))
        || [".pem", ".key", ".p12", ".pfx", ".keystore", ".jks"]
            .iter()
            .any(|e| name.ends_with(e))
        || ["id_rsa", "id_ed25519", "credentials", "secret", "password"]
            .iter()
            .any(|w| name.contains(w))
}

fn sha256_of(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(crate::digest::hex(&h.finalize()))
}

/// The data files of a task: every string literal argument of a call in its code that
/// names an existing file under `nb_dir`. Small ones are copied into the task folder.
pub fn data_files(nb_dir: &Path, code: &[Chunk]) -> (Vec<DataFile>, Vec<FileCopy>) {
    let mut root: Option<PathBuf> = None;
    let mut files: Vec<DataFile> = Vec::new();
    let mut copies = Vec::new();
    for lit in call_literals(code) {
        let Some(rel) = clean_relative(lit) else {
            continue;
        };
        if files.iter().any(|f| f.path == rel) || looks_secret(&rel) {
            continue;
        }
        let path = nb_dir.join(&rel);
        // A symlink out of the project does not travel.
        let root = root.get_or_insert_with(|| {
            std::fs::canonicalize(nb_dir).unwrap_or_else(|_| nb_dir.to_path_buf())
        });
        let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&*root));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || !inside {
            continue;
        }
        let Some(sha256) = sha256_of(&path) else {
            continue;
        };
        let staged = meta.len() > MAX_IMAGE_FILE;
        if !staged {
            copies.push(FileCopy {
                from: path,
                to: format!("{FILES_DIR}/{rel}"),
            });
        }
        files.push(DataFile {
            path: rel,
            size: meta.len(),
            sha256,
            staged,
        });
    }
    files.sort();
    copies.sort();
    (files, copies)
}

/// The files of the local modules `modules` (paths relative to `nb_dir`: `utils.py`,
/// `lib/helpers.py`, `../src/pkg`), each under `modules/` by its top-level name, so the
/// image imports them as the notebook did. A module written by `%%writefile` is not on
/// disk: it is written at run time, in the shared working directory.
pub fn module_copies(nb_dir: &Path, modules: &[String]) -> Vec<FileCopy> {
    let mut out = Vec::new();
    for m in modules {
        let from = nb_dir.join(m);
        let Some(name) = from.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if from.is_file() {
            out.push(FileCopy {
                from,
                to: format!("{MODULES_DIR}/{name}"),
            });
        } else if from.is_dir() {
            let mut found = Vec::new();
            walk_package(&from, &mut found);
            for f in found {
                let rel = f.strip_prefix(&from).unwrap_or(&f);
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.push(FileCopy {
                    from: f,
                    to: format!("{MODULES_DIR}/{name}/{rel}"),
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.to == b.to);
    out
}

/// A package folder's files (package data included), without caches and hidden files.
fn walk_package(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
            continue;
        }
        let p = e.path();
        // Symlinked folders are not followed (they may loop).
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk_package(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(python: &str) -> Chunk {
        let facts = crate::analysis::analyse_cell(python);
        Chunk {
            cell: 1,
            first_line: 1,
            python: python.into(),
            call_literals: facts
                .stmts
                .into_iter()
                .flat_map(|s| s.call_literals)
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn relative_paths_are_cleaned_and_kept_inside() {
        assert_eq!(clean_relative("./data.csv").as_deref(), Some("data.csv"));
        assert_eq!(clean_relative("a/../b/c.json").as_deref(), Some("b/c.json"));
        for bad in [
            "../x.csv",
            "/etc/passwd",
            "~/x",
            "s3://b/k",
            "C:/x",
            "",
            ".",
            "*.csv",
        ] {
            assert_eq!(clean_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn literal_arguments_naming_files_travel() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("data.csv"), "a,b\n1,2\n").unwrap();
        std::fs::create_dir_all(d.join("cfg")).unwrap();
        std::fs::write(d.join("cfg/x.json"), "{}").unwrap();
        std::fs::write(d.join(".env"), "TOKEN=x").unwrap();
        std::fs::write(d.join("db-credentials.json"), "{}").unwrap();
        std::fs::write(d.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(d.join("big.bin"), vec![0u8; MAX_IMAGE_FILE as usize + 1]).unwrap();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let nb_dir = d.join("sub");
        std::fs::write(nb_dir.join("here.txt"), "x").unwrap();
        let code = [chunk(
            "import pandas as pd\ndf = pd.read_csv('../data.csv')\nx = open(file='here.txt')\nprint('missing.csv')\nload_dotenv('.env')\n",
        )];
        // From sub/: `../data.csv` climbs out, `here.txt` is in.
        let (files, copies) = data_files(&nb_dir, &code);
        assert_eq!(
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["here.txt"]
        );
        assert_eq!(copies[0].to, "files/here.txt");

        let code = [chunk(
            "df = pd.read_csv('data.csv')\ncfg = json.load(open(\"./cfg/x.json\"))\nload_dotenv('.env')\nraw = np.fromfile('big.bin')\nf'{x}.csv'\nc = open('db-credentials.json')\nt = Tokenizer.from_file('tokenizer.json')\n",
        )];
        let (files, copies) = data_files(d, &code);
        let paths: Vec<(&str, u64, bool)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.size, f.staged))
            .collect();
        assert_eq!(
            paths,
            [
                ("big.bin", MAX_IMAGE_FILE + 1, true),
                ("cfg/x.json", 2, false),
                ("data.csv", 8, false),
                ("tokenizer.json", 2, false),
            ]
        );
        // sha256 of "{}".
        assert_eq!(
            files[1].sha256,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let to: Vec<&str> = copies.iter().map(|c| c.to.as_str()).collect();
        assert_eq!(
            to,
            ["files/cfg/x.json", "files/data.csv", "files/tokenizer.json"]
        );
    }

    #[test]
    fn modules_are_copied_by_their_top_level_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("nb");
        std::fs::create_dir_all(d.join("lib")).unwrap();
        std::fs::create_dir_all(d.join("pkg/sub/__pycache__")).unwrap();
        std::fs::write(d.join("utils.py"), "X = 1").unwrap();
        std::fs::write(d.join("lib/helpers.py"), "Y = 1").unwrap();
        std::fs::write(d.join("pkg/__init__.py"), "").unwrap();
        std::fs::write(d.join("pkg/sub/m.py"), "").unwrap();
        std::fs::write(d.join("pkg/sub/table.json"), "[]").unwrap();
        std::fs::write(d.join("pkg/sub/__pycache__/m.cpython-311.pyc"), "").unwrap();
        let mods = ["utils.py", "lib/helpers.py", "pkg", "written.py"].map(String::from);
        let to: Vec<String> = module_copies(&d, &mods).into_iter().map(|c| c.to).collect();
        assert_eq!(
            to,
            [
                "modules/helpers.py",
                "modules/pkg/__init__.py",
                "modules/pkg/sub/m.py",
                "modules/pkg/sub/table.json",
                "modules/utils.py",
            ]
        );
    }
}
