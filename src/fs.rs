//! Writing files atomically: each file goes to a temporary sibling and is renamed into
//! place, so a reader never sees a half-written file. Files are 0644 and folders 0755
//! whatever the umask: the task folders are built into images whose user (uid 10001)
//! is not the one that wrote them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::emit::Bundle;

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// Creates `dir` and its missing parents, each 0755 (an existing folder keeps its mode).
pub fn create_dirs(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("setting the mode of {}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Write-then-rename is what makes the write atomic; no fsync: the output can always be
/// generated again. A file already holding `content` is left as it is (its mode fixed),
/// and its folder is known to exist: folders are made only for files that are written.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(mode) = unchanged(path, content) {
        // Unchanged: keep the file's mtime, so tools see no change; fix its mode only.
        if mode != FILE_MODE {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
                .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
        return Ok(());
    }
    let dir = parent_of(path);
    create_dirs(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(content)?;
    // The temporary file is 0600; the mode survives the rename.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The mode of the regular file at `path` when it holds exactly `content`: one open, one
/// fstat, and reads only when the sizes match, in pieces (no buffer the size of the
/// file), stopping once `content.len()` bytes compared equal.
fn unchanged(path: &Path, content: &[u8]) -> Option<u32> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() != content.len() as u64 {
        return None;
    }
    thread_local! {
        // Zeroed once per thread, not once per file.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 << 10]);
    }
    BUF.with_borrow_mut(|buf| {
        let mut rest = content;
        while !rest.is_empty() {
            let want = rest.len().min(buf.len());
            let n = f.read(&mut buf[..want]).ok()?;
            if n == 0 || buf[..n] != rest[..n] {
                return None;
            }
            rest = &rest[n..];
        }
        Some(meta.permissions().mode() & 0o7777)
    })
}

/// Copies `from` to `path` atomically (0644), unless `path` already has its content.
pub fn copy_atomic(from: &Path, path: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomic(path, &bytes)
}

/// Writes a bundle under `dir`; files of an earlier bundle that the new one no longer
/// has (a removed task's folder, a target no longer chosen is kept) are removed from
/// `tasks/`.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> Result<Vec<PathBuf>> {
    let files: Vec<(PathBuf, &str)> = bundle
        .files
        .iter()
        .map(|(rel, content)| (dir.join(rel), content.as_str()))
        .collect();
    let copies: Vec<(PathBuf, &Path)> = bundle
        .copies
        .iter()
        .map(|(rel, from)| (dir.join(rel), from.as_path()))
        .collect();
    let scans = stale_scans(dir, bundle);
    // Hundreds of small files: the system calls of two writers overlap, and the task
    // folders' scans for stale files run beside them (the writes only make files the
    // bundle has, which no scan removes). After a failure no further job is started;
    // the scans come last, so a write that fails early removes nothing.
    let jobs = files.len() + copies.len() + scans.len();
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = crate::parallel::indexed(jobs, if jobs > 32 { 4 } else { 1 }, |i| {
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let r = if let Some((p, content)) = files.get(i) {
            write_atomic(p, content.as_bytes())
        } else if let Some((p, from)) = copies.get(i - files.len()) {
            std::fs::read(from)
                .with_context(|| format!("reading {}", from.display()))
                .and_then(|bytes| write_atomic(p, &bytes))
        } else {
            scans[i - files.len() - copies.len()].run(dir, bundle)
        };
        if r.is_err() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        r
    });
    results.into_iter().collect::<Result<()>>()?;
    let mut written: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
    written.extend(copies.into_iter().map(|(p, _)| p));
    Ok(written)
}

/// What is done about one folder found under `tasks/`.
enum StaleScan {
    /// The bundle has no such task: the folder goes.
    Folder(PathBuf),
    /// A task the bundle has: a module or data file it no longer has would still be
    /// COPY'd into its image, so such files go.
    Leftovers(String),
}

impl StaleScan {
    fn run(&self, dir: &Path, bundle: &Bundle) -> Result<()> {
        match self {
            StaleScan::Folder(p) => std::fs::remove_dir_all(p)
                .with_context(|| format!("removing stale {}", p.display())),
            StaleScan::Leftovers(name) => {
                for stale in task_leftovers(dir, name, bundle) {
                    std::fs::remove_file(dir.join(&stale))
                        .with_context(|| format!("removing stale {stale}"))?;
                }
                Ok(())
            }
        }
    }
}

/// The folders under `dir/tasks` as they are before the bundle is written.
fn stale_scans(dir: &Path, bundle: &Bundle) -> Vec<StaleScan> {
    // The task folders the bundle has (`tasks/<name>/...`).
    let kept: std::collections::HashSet<&str> = bundle
        .files
        .keys()
        .chain(bundle.copies.keys())
        .filter_map(|k| k.strip_prefix("tasks/")?.split_once('/').map(|(t, _)| t))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir.join("tasks")) else {
        return Vec::new();
    };
    let mut folders: Vec<std::fs::DirEntry> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    // The listing's order is the file system's; the jobs' is fixed.
    folders.sort_by_key(|e| e.file_name());
    folders
        .into_iter()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if kept.contains(name.as_str()) {
                StaleScan::Leftovers(name)
            } else {
                StaleScan::Folder(e.path())
            }
        })
        .collect()
}

/// The modules and data files under task folder `task` that `bundle` does not have
/// (relative to `dir`): they would still be COPY'd into the task's image.
pub fn task_leftovers(dir: &Path, task: &str, bundle: &Bundle) -> Vec<String> {
    [
        crate::deps::files::MODULES_DIR,
        crate::deps::files::FILES_DIR,
    ]
    .into_iter()
    .flat_map(|sub| leftovers(dir, &format!("tasks/{task}/{sub}"), bundle))
    .collect()
}

/// Files under `dir/sub` (relative to `dir`) that `bundle` does not have.
pub fn leftovers(dir: &Path, sub: &str, bundle: &Bundle) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if !bundle.has(&rel) {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

/// The paths of the files under `dir`, relative to it (`/`-separated); empty when it
/// does not exist. Symlinked folders are not followed, and the walk stops at a depth no
/// bundle reaches.
pub fn list_tree(dir: &Path) -> std::collections::BTreeSet<String> {
    fn walk(base: &Path, d: &Path, depth: usize, out: &mut std::collections::BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    if depth < 64 {
                        walk(base, &p, depth + 1, out);
                    }
                }
                Ok(_) => {
                    let rel = p.strip_prefix(base).unwrap_or(&p);
                    out.insert(rel.to_string_lossy().replace('\\', "/"));
                }
                Err(_) => {}
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(dir, dir, 0, &mut out);
    out
}

/// Reads a bundle folder back: every text file under `dir` ([`list_tree`]), by relative
/// path.
pub fn read_tree(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(list_tree(dir)
        .into_iter()
        .filter_map(|rel| {
            let text = std::fs::read_to_string(dir.join(&rel)).ok()?;
            Some((rel, text))
        })
        .collect())
}

/// Whether the file at `path` holds exactly `content`.
pub fn holds(path: &Path, content: &[u8]) -> bool {
    unchanged(path, content).is_some()
}

/// The record a bundle keeps of itself: the targets it holds and every file nb2pipe
/// wrote into it, so a later `convert` or `check --fix` regenerates those targets and
/// removes only files it wrote itself.
pub const RECORD: &str = "bundle.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub targets: Vec<String>,
    /// `convert --skeletons` was given.
    #[serde(default)]
    pub skeletons: bool,
    #[serde(default)]
    pub files: Vec<String>,
    /// The bundle's [`crate::emit::input_digest`]: `check` finds a bundle whose input is
    /// unchanged up to date without generating it again, once the files' hashes match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// sha256 of each generated text file (the project files a task copies are compared
    /// with their sources instead).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sha256: std::collections::BTreeMap<String, String>,
}

impl Record {
    pub fn of(bundle: &Bundle, targets: &[String], skeletons: bool) -> Record {
        // A text shared by several files (the runtime in every task folder) is hashed
        // once; the distinct texts are hashed on a few threads.
        let mut distinct: Vec<&std::sync::Arc<String>> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        let slots: Vec<usize> = bundle
            .files
            .values()
            .map(|text| {
                *seen.entry(std::sync::Arc::as_ptr(text)).or_insert_with(|| {
                    distinct.push(text);
                    distinct.len() - 1
                })
            })
            .collect();
        let workers = if distinct.len() > 32 { 4 } else { 1 };
        let hashes = crate::parallel::indexed(distinct.len(), workers, |i| {
            crate::digest::sha256_hex(distinct[i].as_bytes())
        });
        let sha256 = bundle
            .files
            .keys()
            .zip(slots)
            .map(|(path, slot)| (path.clone(), hashes[slot].clone()))
            .collect();
        Record {
            input: Some(bundle.input.clone()).filter(|i| !i.is_empty()),
            sha256,
            targets: targets.to_vec(),
            skeletons,
            files: bundle
                .files
                .keys()
                .chain(bundle.copies.keys())
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        // About 150 bytes a file.
        json_text(self, 1024 + 256 * (self.files.len() + self.sha256.len()))
    }
}

/// `value` as a JSON file's text: indented, ending with a newline. It is written into a
/// buffer of `capacity` bytes: one sized past the text saves the copies into fresh
/// memory that growing by doubling makes (large plans are hundreds of kB).
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T, capacity: usize) -> String {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer_pretty(&mut out, value).expect("nb2pipe's own types serialise");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// The record of the bundle at `dir`; `None` when there is none or it cannot be read
/// (a bundle written before records existed).
pub fn read_record(dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A recorded path that stays inside the bundle (the record is a file anyone can edit).
fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    rel != RECORD
        && !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// [`write_bundle`], then the record; the files an earlier record lists that this
/// bundle no longer has (a target no longer written, a removed task) are removed, and
/// folders they leave empty. `earlier` is the record the folder had ([`read_record`]).
/// Returns the removed files, relative to `dir`.
pub fn write_recorded(
    dir: &Path,
    bundle: &Bundle,
    record: &Record,
    earlier: Option<&Record>,
) -> Result<Vec<String>> {
    write_bundle(dir, bundle)?;
    let mut removed = Vec::new();
    for rel in earlier.iter().flat_map(|r| &r.files) {
        if !inside(rel) || bundle.has(rel) {
            continue;
        }
        let p = dir.join(rel);
        if p.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&p).with_context(|| format!("removing stale {rel}"))?;
            removed.push(rel.clone());
            let mut parent = p.parent();
            while let Some(d) = parent.filter(|d| *d != dir) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                parent = d.parent();
            }
        }
    }
    write_atomic(&dir.join(RECORD), record.to_json().as_bytes())?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        let mut b = Bundle::default();
        for (p, c) in files {
            b.add(*p, *c);
        }
        b
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn folders_are_made_for_new_files_and_stale_ones_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let first = bundle(&[
            ("tasks/a/main.py", "a"),
            ("tasks/a/modules/old.py", "old"),
            ("tasks/gone/main.py", "gone"),
        ]);
        write_bundle(&dir, &first).unwrap();
        std::fs::create_dir(dir.join("tasks/a/files")).unwrap();
        std::fs::write(dir.join("tasks/a/files/stray.csv"), "x").unwrap();
        let second = bundle(&[
            ("tasks/a/main.py", "a"),
            ("tasks/b/deep/er/main.py", "b"),
            ("airflow/p.py", "dag"),
        ]);
        let written = write_bundle(&dir, &second).unwrap();
        assert_eq!(written.len(), 3);
        for (rel, text) in &second.files {
            assert_eq!(&std::fs::read_to_string(dir.join(rel)).unwrap(), &**text);
            assert_eq!(mode(&dir.join(rel)), FILE_MODE, "{rel}");
        }
        for d in ["tasks/b", "tasks/b/deep", "tasks/b/deep/er", "airflow"] {
            assert_eq!(mode(&dir.join(d)), DIR_MODE, "{d}");
        }
        assert!(
            !dir.join("tasks/gone").exists(),
            "a removed task's folder stays"
        );
        assert!(
            !dir.join("tasks/a/modules/old.py").exists(),
            "a dropped module stays"
        );
        assert!(
            !dir.join("tasks/a/files/stray.csv").exists(),
            "a stray data file stays"
        );
    }

    #[test]
    fn an_unchanged_file_keeps_its_time_and_gets_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.txt");
        write_atomic(&p, b"same\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&p).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_atomic(&p, b"same\n").unwrap();
        let after = std::fs::metadata(&p).unwrap();
        assert_eq!(before.ino(), after.ino(), "rewritten, not kept");
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        assert_eq!(mode(&p), FILE_MODE);
        write_atomic(&p, b"other\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"other\n");
        assert_eq!(mode(&p), FILE_MODE);
    }

    #[test]
    fn a_failed_write_removes_no_stale_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        write_bundle(&dir, &bundle(&[("tasks/old/main.py", "old")])).unwrap();
        // `airflow` is a file, so no file can be written under it.
        std::fs::write(dir.join("airflow"), "in the way").unwrap();
        let err = write_bundle(
            &dir,
            &bundle(&[("airflow/p.py", "dag"), ("tasks/new/main.py", "n")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("airflow"), "{err:#}");
        assert!(
            dir.join("tasks/old/main.py").is_file(),
            "removed after a failure"
        );
    }
}
