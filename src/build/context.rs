//! A task's build context, made in memory as a tar: the bundle's `tasks/<task>/` files
//! plus whatever else the build needs (pip settings, project modules under `modules/`).
//! The tar is deterministic (sorted paths, fixed mode and mtime), so the same inputs give
//! the same context bytes.

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
    pub fn from_bundle(bundle: &Bundle, task: &str) -> BuildContext {
        let prefix = format!("tasks/{task}/");
        let files = bundle
            .files
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .map(|rel| (rel.to_string(), v.clone().into_bytes()))
            })
            .collect();
        BuildContext { files }
    }

    pub fn add(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
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
        let mut ctx = BuildContext::from_bundle(&bundle, "a");
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
        assert_eq!(names, vec!["Dockerfile", "main.py", "modules/util.py"]);
    }
}
