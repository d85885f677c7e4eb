//! Which image a task runs in: the one its settings name (prebuilt), else one nb2pipe
//! builds, tagged by a hash of everything that goes into it.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::plan::values::k8s_name;
use crate::plan::{Chunk, Image, Input, Requirement};

/// Everything a built image's content depends on.
pub(super) struct ImageContent<'a> {
    pub(super) base: &'a str,
    pub(super) python: &'a str,
    pub(super) requirements: &'a [Requirement],
    pub(super) code: &'a [Chunk],
    pub(super) inputs: &'a [Input],
    pub(super) outputs: &'a [String],
    pub(super) params: &'a BTreeSet<String>,
}

pub(super) fn task_image(
    named: Option<&String>,
    pipeline: &str,
    task: &str,
    registry: Option<&str>,
    content: ImageContent<'_>,
) -> Image {
    match named {
        Some(img) => Image {
            reference: img.clone(),
            prebuilt: true,
            base: None,
            content_hash: None,
        },
        None => {
            let hash = content_hash(content);
            let repo = format!("{pipeline}-{}", k8s_name(task));
            let reference = match registry {
                Some(r) => format!("{}/{repo}:{hash}", r.trim_end_matches('/')),
                None => format!("{repo}:{hash}"),
            };
            Image {
                reference,
                prebuilt: false,
                base: None,
                content_hash: Some(hash),
            }
        }
    }
}

fn content_hash(content: ImageContent<'_>) -> String {
    let ImageContent {
        base,
        python,
        requirements: reqs,
        code,
        inputs,
        outputs,
        params,
    } = content;
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update([0]);
    h.update(base);
    h.update([0]);
    h.update(python);
    for r in reqs {
        h.update([1]);
        h.update(&r.line);
    }
    for c in code {
        h.update([2]);
        h.update(c.cell.to_le_bytes());
        h.update(&c.python);
        h.update(&c.raw_body);
        h.update(format!("{:?}", c.magic));
    }
    for i in inputs {
        h.update([3]);
        h.update(&i.name);
        h.update(&i.from);
    }
    for o in outputs {
        h.update([4]);
        h.update(o);
    }
    for p in params {
        h.update([5]);
        h.update(p);
    }
    let digest = h.finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
