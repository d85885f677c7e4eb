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
/// generated again.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dirs(dir)?;
    if std::fs::read(path).is_ok_and(|old| old == content) {
        // Unchanged: keep the file's mtime, so tools see no change; fix its mode only.
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        if mode != FILE_MODE {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
                .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
        return Ok(());
    }
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

/// Copies `from` to `path` atomically (0644), unless `path` already has its content.
pub fn copy_atomic(from: &Path, path: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomic(path, &bytes)
}

/// Writes a bundle under `dir`; files of an earlier bundle that the new one no longer
/// has (a removed task's folder, a target no longer chosen is kept) are removed from
/// `tasks/`.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, content) in &bundle.files {
        let p = dir.join(rel);
        write_atomic(&p, content.as_bytes())?;
        written.push(p);
    }
    for (rel, from) in &bundle.copies {
        let p = dir.join(rel);
        copy_atomic(from, &p)?;
        written.push(p);
    }
    let tasks = dir.join("tasks");
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let prefix = format!("tasks/{name}/");
            let kept = bundle.files.keys().chain(bundle.copies.keys());
            if e.path().is_dir() && !kept.into_iter().any(|k| k.starts_with(&prefix)) {
                std::fs::remove_dir_all(e.path())
                    .with_context(|| format!("removing stale {}", e.path().display()))?;
            } else if e.path().is_dir() {
                // A module or data file the task no longer has would still be COPY'd
                // into its image.
                for sub in [
                    crate::deps::files::MODULES_DIR,
                    crate::deps::files::FILES_DIR,
                ] {
                    for stale in leftovers(dir, &format!("{prefix}{sub}"), bundle) {
                        std::fs::remove_file(dir.join(&stale))
                            .with_context(|| format!("removing stale {stale}"))?;
                    }
                }
            }
        }
    }
    Ok(written)
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

/// Reads a bundle folder back (for `check`): every file under `dir`, relative paths.
pub fn read_tree(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(
        base: &Path,
        d: &Path,
        out: &mut std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out)?;
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                let rel = p
                    .strip_prefix(base)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, text);
            }
        }
        Ok(())
    }
    if dir.is_dir() {
        walk(dir, dir, &mut out)?;
    }
    Ok(out)
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
}

impl Record {
    pub fn of(bundle: &Bundle, targets: &[String], skeletons: bool) -> Record {
        Record {
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
        serde_json::to_string_pretty(self).expect("a record serialises") + "\n"
    }
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
/// folders they leave empty. Returns the removed files, relative to `dir`.
pub fn write_recorded(dir: &Path, bundle: &Bundle, record: &Record) -> Result<Vec<String>> {
    let earlier = read_record(dir);
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
