//! `<bundle>/images.json`: what `build --push` pushed, task → tag and digest. The plan
//! step [`apply`] rewrites `Image.reference` to `repo@sha256:…` for every task whose tag
//! (registry, pipeline, task and content hash) matches the recorded one, so every
//! emitter refers to pushed images by digest and a stale record is simply ignored.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;

pub const FILE: &str = "images.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Images {
    pub format: u32,
    /// Task name → its pushed image.
    pub images: BTreeMap<String, PushedImage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedImage {
    /// `<registry>/<pipeline>-<task>:<content hash>`.
    pub tag: String,
    pub content_hash: String,
    /// `sha256:…` (the manifest digest the registry returned).
    pub digest: String,
}

impl PushedImage {
    /// `repo@sha256:…`.
    pub fn by_digest(&self) -> String {
        format!("{}@{}", repository(&self.tag), self.digest)
    }
}

/// The repository part of `repo:tag` (a `:` before the last `/` is a port).
pub fn repository(reference: &str) -> &str {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].find([':', '@']) {
        Some(i) => &reference[..last_slash + i],
        None => reference,
    }
}

impl Images {
    /// The record in `bundle_dir`, or an empty one when there is none or it does not parse.
    pub fn read(bundle_dir: &Path) -> Images {
        std::fs::read_to_string(bundle_dir.join(FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn write(&self, bundle_dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::fs::write_atomic(&bundle_dir.join(FILE), text.as_bytes())
            .with_context(|| format!("writing {}", bundle_dir.join(FILE).display()))
    }
}

/// Refers to each task's image by digest where the record matches its tag.
pub fn apply(plan: &mut Plan, images: &Images) {
    for t in plan.tasks.iter_mut().filter(|t| !t.image.prebuilt) {
        if let Some(p) = images.images.get(&t.name) {
            if p.tag == t.image.reference
                && t.image.content_hash.as_deref() == Some(p.content_hash.as_str())
            {
                t.image.reference = p.by_digest();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_references() {
        assert_eq!(repository("127.0.0.1:5000/p-t:abc"), "127.0.0.1:5000/p-t");
        assert_eq!(repository("127.0.0.1:5000/p-t"), "127.0.0.1:5000/p-t");
        assert_eq!(repository("p-t@sha256:00"), "p-t");
    }
}
