//! A task's build context, made in memory as a tar: the bundle's `tasks/<task>/` files
//! (its local modules under `modules/` and data files under `files/` read from the
//! project) plus whatever else the build needs (pip settings). The tar is deterministic
//! (sorted paths, folders 0755 and files 0644, fixed mtime), so the same inputs give the
//! same context bytes, and the image's files have the modes a `docker build` of the
//! written folder gives them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::emit::Bundle;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildContext {
    /// Path inside the context → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl BuildContext {
    /// The files of `tasks/<task>/` in `bundle`, relative to that folder.
    pub fn from_bundle(bundle: &Bundle, task: &str) -> Result<BuildContext> {
        let prefix = format!("tasks/{task}/");
        let mut files: BTreeMap<String, Vec<u8>> = bundle
            .files
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .map(|rel| (rel.to_string(), v.as_bytes().to_vec()))
            })
            .collect();
        for (k, from) in &bundle.copies {
            if let Some(rel) = k.strip_prefix(&prefix) {
                let bytes =
                    std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
                files.insert(rel.to_string(), bytes);
            }
        }
        Ok(BuildContext { files })
    }

    pub fn add(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        let mut dirs = std::collections::BTreeSet::new();
        for path in self.files.keys() {
            let mut d = path.as_str();
            while let Some((parent, _)) = d.rsplit_once('/') {
                dirs.insert(parent.to_string());
                d = parent;
            }
        }
        for d in &dirs {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o755);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{d}/"), std::io::empty())
                .with_context(|| format!("adding {d}/ to the build context"))?;
        }
        for (path, bytes) in &self.files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, bytes.as_slice())
                .with_context(|| format!("adding {path} to the build context"))?;
        }
        b.into_inner().context("finishing the build context")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_the_task_folder_and_deterministic() {
        let mut bundle = Bundle::default();
        bundle.add("tasks/a/main.py", "print(1)");
        bundle.add("tasks/a/Dockerfile", "FROM x");
        bundle.add("tasks/ab/main.py", "print(2)");
        bundle.add("plan.json", "{}");
        let mut ctx = BuildContext::from_bundle(&bundle, "a").unwrap();
        assert_eq!(
            ctx.files.keys().collect::<Vec<_>>(),
            vec!["Dockerfile", "main.py"]
        );
        ctx.add("modules/util.py", "X = 1\n");
        let t1 = ctx.to_tar().unwrap();
        assert_eq!(t1, ctx.clone().to_tar().unwrap());
        let mut ar = tar::Archive::new(t1.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["modules/", "Dockerfile", "main.py", "modules/util.py"]
        );
    }

    #[test]
    fn copies_are_read_from_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.bin");
        std::fs::write(&data, [0u8, 159, 146, 150]).unwrap();
        let mut bundle = Bundle::default();
        bundle.add("tasks/a/main.py", "print(1)");
        bundle
            .copies
            .insert("tasks/a/files/sub/data.bin".into(), data.clone());
        bundle
            .copies
            .insert("tasks/b/files/data.bin".into(), data.clone());
        let ctx = BuildContext::from_bundle(&bundle, "a").unwrap();
        assert_eq!(ctx.files["files/sub/data.bin"], [0u8, 159, 146, 150]);
        assert_eq!(ctx.files.len(), 2);
        let tar = ctx.to_tar().unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let modes: Vec<(String, u32)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("files/".to_string(), 0o755),
                ("files/sub/".to_string(), 0o755),
                ("files/sub/data.bin".to_string(), 0o644),
                ("main.py".to_string(), 0o644),
            ]
        );
        std::fs::remove_file(&data).unwrap();
        assert!(BuildContext::from_bundle(&bundle, "a").is_err());
    }
}
