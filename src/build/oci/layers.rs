//! Image layers written by nb2pipe: a tar with sorted entries, mtime 0, owners and modes
//! set here (never the build machine's), gzip-compressed without a timestamp, so the same
//! files give the same blob digest on any machine.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};

/// The task user of every image (templates/task/Dockerfile.j2).
pub const TASK_UID: u64 = 10001;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u64,
    /// A parent made by [`LayerBuilder::parents`]: an explicit `dir` replaces it.
    implicit: bool,
}

/// The files of one layer, by absolute path inside the image.
#[derive(Debug, Default, Clone)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// A finished layer: the gzip blob and the digests the manifest and config name.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub blob: Vec<u8>,
    /// `sha256:…` of `blob` (the manifest's layer digest).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(bytes))
}

fn key(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl LayerBuilder {
    /// A folder owned by `uid` (group the same); the first explicit one wins.
    pub fn dir(&mut self, path: &str, mode: u32, uid: u64) {
        self.parents(path);
        let e = Entry {
            kind: Kind::Dir,
            mode,
            uid,
            implicit: false,
        };
        match self.entries.get(&key(path)) {
            Some(old) if !old.implicit => {}
            _ => {
                self.entries.insert(key(path), e);
            }
        }
    }

    pub fn file(&mut self, path: &str, bytes: Vec<u8>, mode: u32, uid: u64) {
        self.parents(path);
        self.entries.insert(
            key(path),
            Entry {
                kind: Kind::File(bytes),
                mode,
                uid,
                implicit: false,
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entries.insert(
            key(path),
            Entry {
                kind: Kind::Symlink(target.to_string()),
                mode: 0o777,
                uid: 0,
                implicit: false,
            },
        );
    }

    /// Missing parent folders, root-owned 0755 (as Docker's COPY makes them).
    fn parents(&mut self, path: &str) {
        let k = key(path);
        let mut p = k.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            self.entries.entry(parent.to_string()).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                implicit: true,
            });
            p = parent;
        }
    }

    pub fn tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        // Sorted by path, so a folder comes before what it holds.
        for (path, e) in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_uid(e.uid);
            h.set_gid(e.uid);
            h.set_mode(e.mode);
            match &e.kind {
                Kind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                }
                Kind::File(bytes) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(bytes.len() as u64);
                    b.append_data(&mut h, path, bytes.as_slice())
                }
                Kind::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                }
            }
            .with_context(|| format!("adding /{path} to a layer"))?;
        }
        b.into_inner().context("finishing a layer")
    }

    pub fn finish(&self) -> Result<Layer> {
        Layer::from_tar(&self.tar()?)
    }
}

impl Layer {
    pub fn from_tar(tar: &[u8]) -> Result<Layer> {
        // No file name, mtime 0, OS "unknown": the gzip header holds nothing of this machine.
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(6));
        gz.write_all(tar)?;
        let blob = gz.finish()?;
        Ok(Layer {
            digest: sha256(&blob),
            diff_id: sha256(tar),
            blob,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_sorted_owned_and_reproducible() {
        let mut a = LayerBuilder::default();
        a.file("/app/main.py", b"print(1)\n".to_vec(), 0o644, TASK_UID);
        a.dir("/app", 0o755, TASK_UID);
        a.symlink("/opt/v/bin/python", "python3");
        let mut b = LayerBuilder::default();
        b.symlink("/opt/v/bin/python", "python3");
        b.dir("/app", 0o755, TASK_UID);
        b.file("/app/main.py", b"print(1)\n".to_vec(), 0o644, TASK_UID);
        let (la, lb) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!(la, lb);
        let tar = a.tar().unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let got: Vec<(String, u64, u32, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app/".into(), TASK_UID, 0o755, 0),
                ("app/main.py".into(), TASK_UID, 0o644, 0),
                ("opt/".into(), 0, 0o755, 0),
                ("opt/v/".into(), 0, 0o755, 0),
                ("opt/v/bin/".into(), 0, 0o755, 0),
                ("opt/v/bin/python".into(), 0, 0o777, 0),
            ]
        );
        // The blob is gzip of exactly that tar.
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(la.blob.as_slice()),
            &mut plain,
        )
        .unwrap();
        assert_eq!(sha256(&plain), la.diff_id);
    }
}
