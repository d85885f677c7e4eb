//! The last plan step, per task: what travels with it (the files of its local modules,
//! the data files its code opens: docs/images.md), the S3 client an `s3://` data store
//! needs, and its image, built from the pipeline's `base_image` or from the task's
//! `image:` setting and tagged with a hash of everything that goes into it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::{DataStore, Image, PipelineSettings, Requirement, Task};
use crate::deps::files::{data_files, module_copies, MODULES_DIR};
use crate::notebook::Notebook;

/// Adds boto3 to every task when the data store is S3.
pub fn add_store_client(
    tasks: &mut [Task],
    settings: &PipelineSettings,
    python: &str,
    nb: &Notebook,
    python_env: Option<&Path>,
) {
    if matches!(settings.data, DataStore::S3 { .. }) {
        let boto3 = crate::deps::store_client(nb, python, python_env);
        for t in tasks.iter_mut() {
            add_requirement(&mut t.requirements, &boto3);
        }
    }
}

/// The folder the notebook's relative paths start from.
pub fn notebook_dir(nb: &Notebook) -> &Path {
    nb.path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Fills `files`, `copies` and `image` of task `t`, whose requirements are final
/// ([`add_store_client`] first). `t` comes with `image` as the settings gave it:
/// `prebuilt` with the `image:` reference, or the base image's tag.
pub fn attach(
    t: &mut Task,
    settings: &PipelineSettings,
    pipeline: &str,
    python: &str,
    nb_dir: &Path,
) {
    let (files, data) = data_files(nb_dir, &t.code);
    let mut copies = module_copies(nb_dir, &t.local_modules);
    copies.extend(data);
    copies.sort();
    t.files = files;
    t.copies = copies;
    // A Spark task's `spark-image:` is its base unless `image:` names one.
    let from = t
        .image
        .base
        .clone()
        .or_else(|| t.settings.spark.as_ref().and_then(|sp| sp.image.clone()));
    t.image = task_image(settings, pipeline, python, t, from);
}

/// Keeps the list sorted by normalised name, as deps::resolve makes it; a requirement the
/// task already has wins.
fn add_requirement(reqs: &mut Vec<Requirement>, r: &Requirement) {
    let key = crate::deps::normalize(&r.name);
    if reqs.iter().any(|x| crate::deps::normalize(&x.name) == key) {
        return;
    }
    let at = reqs
        .iter()
        .position(|x| crate::deps::normalize(&x.name) > key)
        .unwrap_or(reqs.len());
    reqs.insert(at, r.clone());
}

/// The image a task runs: `<registry>/<pipeline>-<task>:<hash>`, built `FROM` the
/// `image:` setting `from` when there is one, else from the pipeline's base image.
pub fn task_image(
    settings: &PipelineSettings,
    pipeline: &str,
    python: &str,
    task: &Task,
    from: Option<String>,
) -> Image {
    let base = from.as_deref().unwrap_or(&settings.base_image);
    let hash = content_hash(base, from.is_some(), python, task);
    let repo = format!("{pipeline}-{}", task.k8s_name);
    let reference = match &settings.registry {
        Some(r) => format!("{}/{repo}:{hash}", r.trim_end_matches('/')),
        None => format!("{repo}:{hash}"),
    };
    Image {
        reference,
        prebuilt: false,
        base: from,
        content_hash: Some(hash),
    }
}

/// Everything that goes into the image. A task without modules, data files or `image:`
/// setting hashes as it always did, so its tag does not change.
fn content_hash(base: &str, from_setting: bool, python: &str, t: &Task) -> String {
    // The runtime and the Dockerfile are in every image: a change to either is a new tag.
    // Their 35 kB are hashed once per process; each task continues from that state.
    static PREFIX: LazyLock<Sha256> = LazyLock::new(|| {
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION"));
        for (name, text) in crate::emit::templates::BUILTIN {
            if name.starts_with("task/") {
                h.update(name);
                h.update(text);
            }
        }
        h
    });
    let mut h = PREFIX.clone();
    h.update([0]);
    h.update(base);
    h.update([0]);
    h.update(python);
    for r in &t.requirements {
        h.update([1]);
        h.update(&r.line);
    }
    for c in &t.code {
        h.update([2]);
        h.update(c.cell.to_le_bytes());
        h.update(&c.python);
        h.update(&c.raw_body);
        h.update(format!("{:?}", c.magic));
    }
    for i in &t.inputs {
        h.update([3]);
        h.update(&i.name);
        h.update(&i.from);
    }
    for o in &t.outputs {
        h.update([4]);
        h.update(o);
    }
    let params: BTreeSet<&String> = t.parameters.iter().collect();
    for p in params {
        h.update([5]);
        h.update(p);
    }
    if from_setting {
        h.update([6]);
    }
    let module_prefix = format!("{MODULES_DIR}/");
    for c in t.copies.iter().filter(|c| c.to.starts_with(&module_prefix)) {
        h.update([7]);
        h.update(&c.to);
        h.update([0]);
        h.update(std::fs::read(&c.from).unwrap_or_default());
    }
    for f in &t.files {
        h.update([8]);
        h.update(&f.path);
        h.update([0]);
        h.update(&f.sha256);
        h.update([f.staged as u8]);
    }
    let digest = h.finalize();
    crate::digest::hex(&digest[..6])
}
