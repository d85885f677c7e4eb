//! Writing files atomically: each file goes to a temporary sibling and is renamed into
//! place, so a reader never sees a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::emit::Bundle;

pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(()); // unchanged: keep the file's mtime, so tools see no change
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(content)?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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
    let tasks = dir.join("tasks");
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let prefix = format!("tasks/{name}/");
            if e.path().is_dir() && !bundle.files.keys().any(|k| k.starts_with(&prefix)) {
                std::fs::remove_dir_all(e.path())
                    .with_context(|| format!("removing stale {}", e.path().display()))?;
            }
        }
    }
    Ok(written)
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
