//! `nb2pipe build --engine oci`: task images made without a daemon and without running a
//! Dockerfile, as ko and jib make theirs. The base image's manifest and config come from
//! its registry ([`registry`]); nb2pipe writes the layers ([`layers`], [`files`]): the task
//! user, the requirements installed for the image's platform by pip on this machine
//! ([`pip`], cached on disk and in the registry ([`shared`]) by the hash of the
//! requirements and platform, so tasks with the same requirements share one blob), and
//! the task's code; then the config and
//! manifest ([`image`]). Pushing uploads only what the registry lacks: a blob it has is
//! skipped (HEAD), one in another repository of the same registry is mounted. Every byte
//! is fixed by the inputs, so the digest is the same on any machine.

pub mod base;
pub mod files;
pub mod image;
pub mod layers;
pub mod pip;
pub mod registry;
pub mod shared;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use oci_client::Reference;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::images::{Images, PushedImage};
use super::progress::Progress;
use super::{BuildOptions, Outcome, TaskReport};
use crate::emit::Bundle;
use crate::plan::{Plan, Task};
use image::Added;
use layers::Layer;
use registry::{BaseImage, Platform, Registry};

/// Where base facts and dependency layers are kept: NB2PIPE_OCI_CACHE, else
/// `$XDG_CACHE_HOME/nb2pipe/oci`, else `~/.cache/nb2pipe/oci`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NB2PIPE_OCI_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("nb2pipe/oci")
}

/// Blobs moved by a push.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushStats {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub mounted: usize,
    pub present: usize,
    pub manifests: usize,
    /// Dependency layers found in the registry's cache repository (pip did not run).
    pub shared_found: usize,
    /// Dependency layers recorded there by this push.
    pub shared_recorded: usize,
}

pub struct OciBuild {
    pub reports: Vec<TaskReport>,
    /// Task → its image's digest, for every task that was built or found up to date.
    pub images: Images,
    pub stats: PushStats,
    /// What could not be recorded in the registry's cache (the images are pushed).
    pub notes: Vec<String>,
}

/// A dependency layer's record in the cache (its blob is `blobs/<hex>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

/// One task's image, ready to push.
struct TaskImage {
    base: usize,
    /// The user, dependency and code layers.
    added: Vec<Added>,
    code: Layer,
    config: Vec<u8>,
    manifest: Vec<u8>,
    media: &'static str,
    digest: String,
}

fn base_ref<'a>(plan: &'a Plan, t: &'a Task) -> &'a str {
    t.image.base.as_deref().unwrap_or(&plan.settings.base_image)
}

fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

fn labels(plan: &Plan, t: &Task) -> Vec<(String, String)> {
    let clean = |s: &str| {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
    };
    let hash = t.image.content_hash.clone().unwrap_or_default();
    vec![
        (
            "org.opencontainers.image.title".into(),
            format!("{}-{}", plan.pipeline, t.name),
        ),
        (
            "org.opencontainers.image.description".into(),
            clean(&format!(
                "task {} of pipeline {} from notebook {}",
                t.name, plan.pipeline, plan.notebook
            )),
        ),
        ("org.opencontainers.image.revision".into(), hash.clone()),
        ("io.nb2pipe.notebook".into(), clean(&plan.notebook)),
        ("io.nb2pipe.pipeline".into(), plan.pipeline.clone()),
        ("io.nb2pipe.task".into(), t.name.clone()),
        ("io.nb2pipe.content-hash".into(), hash),
    ]
}

/// Base facts from the cache, else read from the base's layers.
async fn base_info(reg: &Registry, b: &BaseImage, cache: &Path) -> Result<base::BaseInfo> {
    let file = cache.join("base").join(format!("{}.json", hex(&b.digest)));
    if let Some(info) = std::fs::read(&file)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
    {
        return Ok(info);
    }
    let mut blobs = Vec::new();
    for l in b.manifest["layers"].as_array().into_iter().flatten() {
        let d = l["digest"].as_str().unwrap_or_default();
        let media = l["mediaType"].as_str().unwrap_or_default().to_string();
        blobs.push((media, reg.blob(&b.reference, d).await?));
    }
    let path = b.config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.strip_prefix("PATH="))
        .next()
        .unwrap_or(base::DEFAULT_PATH)
        .to_string();
    let info = base::scan(blobs.iter().map(|(m, b)| (m.clone(), b.as_slice())), &path)?;
    std::fs::create_dir_all(file.parent().expect("a parent"))?;
    crate::fs::write_atomic(&file, &serde_json::to_vec(&info)?)?;
    Ok(info)
}

/// The cache key of a dependency layer: everything that decides its bytes.
fn deps_key(
    reqs: &[String],
    venv: &files::Venv,
    target: &pip::WheelTarget,
    pip: &super::PipSettings,
) -> String {
    let mut h = Sha256::new();
    h.update("nb2pipe-oci-deps-1\0");
    for r in reqs {
        h.update(r);
        h.update([0]);
    }
    h.update(format!("{venv:?}\0{target:?}\0"));
    // A different index may serve different wheels; the URL itself stays out of the cache.
    h.update(format!("{:?}{:?}", pip.index_url, pip.extra_index_url));
    format!("{:x}", h.finalize())
}

/// The dependency layer of `key` in the disk cache, with its blob.
fn disk_layer(key: &str, cache: &Path) -> Option<CachedLayer> {
    let rec = cache.join("deps").join(format!("{key}.json"));
    let c: CachedLayer = serde_json::from_slice(&std::fs::read(rec).ok()?).ok()?;
    cache
        .join("blobs")
        .join(hex(&c.digest))
        .is_file()
        .then_some(c)
}

/// The dependency layer of `key`, from the cache or made with pip.
#[allow(clippy::too_many_arguments)]
fn deps_layer(
    task: &str,
    key: &str,
    reqs: &[String],
    venv: &files::Venv,
    target: &pip::WheelTarget,
    opts: &BuildOptions,
    cache: &Path,
) -> Result<CachedLayer, String> {
    let rec = cache.join("deps").join(format!("{key}.json"));
    if !opts.no_cache {
        if let Some(c) = disk_layer(key, cache) {
            return Ok(c);
        }
    }
    let io = |e: std::io::Error| format!("building task {task}: {e}");
    std::fs::create_dir_all(cache.join("deps")).map_err(io)?;
    std::fs::create_dir_all(cache.join("blobs")).map_err(io)?;
    let work = tempfile::tempdir_in(cache.join("deps")).map_err(io)?;
    let site = work.path().join("site");
    let site = if reqs.is_empty() {
        None
    } else {
        let req_file = work.path().join("requirements.txt");
        std::fs::write(
            &req_file,
            reqs.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .map_err(io)?;
        let log = opts.log_dir.join(format!("{task}.log"));
        pip::install(task, &req_file, &site, target, &opts.pip, &log)?;
        Some(site)
    };
    let layer = files::deps_layer(venv, site.as_deref())
        .and_then(|l| l.finish())
        .map_err(|e| format!("building task {task}: {e:#}"))?;
    let c = CachedLayer {
        digest: layer.digest.clone(),
        diff_id: layer.diff_id.clone(),
        size: layer.blob.len() as u64,
    };
    crate::fs::write_atomic(&cache.join("blobs").join(hex(&c.digest)), &layer.blob)
        .map_err(|e| format!("building task {task}: {e:#}"))?;
    crate::fs::write_atomic(&rec, &serde_json::to_vec(&c).expect("json"))
        .map_err(|e| format!("building task {task}: {e:#}"))?;
    Ok(c)
}

/// Builds (and with `push`, pushes) every non-prebuilt task's image. `recorded` is the
/// bundle's images.json: a task whose recorded tag the registry still serves with the
/// recorded digest is up to date and costs one HEAD.
pub async fn build_plan(
    plan: &Plan,
    bundle: &Bundle,
    opts: &BuildOptions,
    push: bool,
    recorded: &Images,
    progress: &Progress,
) -> Result<OciBuild> {
    std::fs::create_dir_all(&opts.log_dir)?;
    let cache = cache_dir();
    let platform = Platform::parse(opts.platform.as_deref())?;
    let tasks: Vec<&Task> = plan.tasks.iter().filter(|t| !t.image.prebuilt).collect();
    let reg = Registry::new(
        tasks
            .iter()
            .flat_map(|t| [t.image.reference.as_str(), base_ref(plan, t)]),
    );
    let mut out = OciBuild {
        reports: Vec::new(),
        images: Images {
            format: 1,
            ..Default::default()
        },
        stats: PushStats::default(),
        notes: Vec::new(),
    };

    // Up to date: the registry serves the recorded digest under the same tag.
    let mut todo = Vec::new();
    if push {
        let checks = tasks.iter().map(|t| async {
            let rec = recorded.images.get(&t.name).filter(|p| {
                p.tag == t.image.reference
                    && t.image.content_hash.as_deref() == Some(p.content_hash.as_str())
            })?;
            let r = registry::parse_ref(&t.image.reference).ok()?;
            reg.login(&r).await;
            (reg.manifest_digest(&r).await.as_deref() == Some(rec.digest.as_str()))
                .then(|| rec.clone())
        });
        let fresh = futures_util::future::join_all(checks).await;
        for (t, f) in tasks.iter().zip(fresh) {
            match f {
                Some(p) => {
                    progress.task(&t.name).finish("up to date");
                    out.reports.push(TaskReport {
                        task: t.name.clone(),
                        tag: t.image.reference.clone(),
                        outcome: Outcome::UpToDate,
                    });
                    out.images.images.insert(t.name.clone(), p);
                }
                None => todo.push(*t),
            }
        }
    } else {
        todo = tasks.clone();
    }
    if todo.is_empty() {
        return Ok(out);
    }

    // Bases: manifest and config for the platform, and what their layers hold.
    let mut bases: Vec<(String, BaseImage, base::BaseInfo)> = Vec::new();
    for t in &todo {
        let r = base_ref(plan, t);
        if bases.iter().any(|(n, _, _)| n == r) {
            continue;
        }
        let b = reg.base(r, &platform).await?;
        let info = base_info(&reg, &b, &cache).await?;
        bases.push((r.to_string(), b, info));
    }
    let user_layers: Vec<Layer> = bases
        .iter()
        .map(|(_, _, i)| files::user_layer(i).finish())
        .collect::<Result<_>>()?;

    // Dependency layers, one per distinct (base, requirements), made in parallel.
    struct DepJob<'a> {
        task: &'a Task,
        key: String,
        reqs: Vec<String>,
        venv: files::Venv,
        target: pip::WheelTarget,
    }
    let mut jobs: Vec<DepJob> = Vec::new();
    let mut task_keys: BTreeMap<String, Result<(usize, String), String>> = BTreeMap::new();
    for t in &todo {
        let bi = bases
            .iter()
            .position(|(n, _, _)| n == base_ref(plan, t))
            .expect("resolved");
        let (name, _, info) = &bases[bi];
        let (Some(python), Some(version)) = (&info.python, &info.version) else {
            task_keys.insert(
                t.name.clone(),
                Err(format!(
                    "building task {}: the image {name} has no python3 on its PATH (with its standard library) that nb2pipe could find; nb2pipe runs the task's code with it, so the image must have Python 3 (or build with --engine docker)",
                    t.name
                )),
            );
            continue;
        };
        let venv = files::Venv {
            python: python.clone(),
            version: version.clone(),
            system_site_packages: t.image.base.is_some(),
        };
        let target = pip::WheelTarget {
            arch: platform.wheel_arch()?.to_string(),
            python: version.clone(),
            glibc: info.glibc,
            musl: info.musl,
        };
        let reqs: Vec<String> = t.requirements.iter().map(|r| r.line.clone()).collect();
        let key = deps_key(&reqs, &venv, &target, &opts.pip);
        task_keys.insert(t.name.clone(), Ok((bi, key.clone())));
        if !jobs.iter().any(|j| j.key == key) {
            jobs.push(DepJob {
                task: t,
                key,
                reqs,
                venv,
                target,
            });
        }
    }
    let mut deps: BTreeMap<String, Result<CachedLayer, String>> = BTreeMap::new();
    let started = Instant::now();
    // A layer the disk cache lacks may be in the registry's cache: then it is mounted
    // from there and pip does not run.
    let cache_ref = |j: &DepJob| {
        registry::parse_ref(&j.task.image.reference)
            .ok()
            .map(|t| shared::reference(&t, &j.key))
    };
    let mut in_registry: BTreeMap<String, Reference> = BTreeMap::new();
    if push && !opts.no_cache {
        let misses: Vec<(&DepJob, Reference)> = jobs
            .iter()
            .filter(|j| disk_layer(&j.key, &cache).is_none())
            .filter_map(|j| Some((j, cache_ref(j)?)))
            .collect();
        let found = futures_util::future::join_all(
            misses.iter().map(|(j, r)| shared::lookup(&reg, r, &j.key)),
        )
        .await;
        for ((j, r), f) in misses.into_iter().zip(found) {
            if let Some(l) = f {
                progress
                    .task(&j.task.name)
                    .start(&format!("dependency layer from {}", r.whole()));
                out.stats.shared_found += 1;
                in_registry.insert(l.digest.clone(), r);
                deps.insert(j.key.clone(), Ok(l));
            }
        }
    }
    let to_install: Vec<&DepJob> = jobs.iter().filter(|j| !deps.contains_key(&j.key)).collect();
    for chunk in to_install.chunks(opts.jobs.max(1)) {
        let done: Vec<(String, Result<CachedLayer, String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|j| {
                    let cache = &cache;
                    s.spawn(move || {
                        let bar = progress.task(&j.task.name);
                        bar.start("installing the requirements for the image");
                        let r = deps_layer(
                            &j.task.name,
                            &j.key,
                            &j.reqs,
                            &j.venv,
                            &j.target,
                            opts,
                            cache,
                        );
                        (j.key.clone(), r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("pip thread"))
                .collect()
        });
        deps.extend(done);
    }

    // Code layer, config and manifest of each task.
    let mut images: Vec<(&Task, TaskImage)> = Vec::new();
    for t in &todo {
        let report = |outcome| TaskReport {
            task: t.name.clone(),
            tag: t.image.reference.clone(),
            outcome,
        };
        let log = opts.log_dir.join(format!("{}.log", t.name));
        let fail = |message: String| {
            progress.task(&t.name).finish("failed");
            report(Outcome::Failed {
                message,
                log: log.clone(),
            })
        };
        let (bi, key) = match &task_keys[&t.name] {
            Ok(k) => k.clone(),
            Err(e) => {
                out.reports.push(fail(e.clone()));
                continue;
            }
        };
        let dep = match &deps[&key] {
            Ok(d) => d.clone(),
            Err(e) => {
                out.reports.push(fail(e.clone()));
                continue;
            }
        };
        let mut ctx = super::context::BuildContext::from_bundle(bundle, &t.name)?;
        ctx.files.retain(|k, _| k != "Dockerfile");
        let code = files::code_layer(&ctx).finish()?;
        let user = &user_layers[bi];
        let added = vec![
            Added {
                digest: user.digest.clone(),
                size: user.blob.len() as u64,
                diff_id: user.diff_id.clone(),
                created_by: "nb2pipe: user 10001, /app, /home/nb2pipe".into(),
            },
            Added {
                digest: dep.digest.clone(),
                size: dep.size,
                diff_id: dep.diff_id.clone(),
                created_by: format!("nb2pipe: {} with the requirements", image::VENV),
            },
            Added {
                digest: code.digest.clone(),
                size: code.blob.len() as u64,
                diff_id: code.diff_id.clone(),
                created_by: format!("nb2pipe: task {} in /app", t.name),
            },
        ];
        let (_, b, _) = &bases[bi];
        let config = image::config(&b.config, &labels(plan, t), &added)?;
        let (manifest, media) = image::manifest(&b.manifest, &b.media_type, &config, &added)?;
        let digest = layers::sha256(&manifest);
        let _ = std::fs::write(
            &log,
            format!(
                "oci engine\nbase {} ({})\ndependency layer {}\ncode layer {}\nimage {digest}\n",
                b.reference.whole(),
                b.digest,
                dep.digest,
                code.digest
            ),
        );
        images.push((
            t,
            TaskImage {
                base: bi,
                added,
                code,
                config,
                manifest,
                media,
                digest,
            },
        ));
    }
    let build_secs = started.elapsed().as_secs_f64();

    // Push: HEAD each blob, mount what another repository of the registry has, upload the rest.
    let mut holders: BTreeMap<String, Reference> = in_registry.clone();
    // An image the registry already serves under its tag with the digest made here (built
    // elsewhere, or images.json lost) needs nothing pushed: one HEAD per image, together.
    let served: Vec<bool> = if push {
        futures_util::future::join_all(images.iter().map(|(t, img)| async {
            let r = registry::parse_ref(&t.image.reference).ok()?;
            reg.login(&r).await;
            Some(reg.manifest_digest(&r).await? == img.digest)
        }))
        .await
        .into_iter()
        .map(|s| s == Some(true))
        .collect()
    } else {
        vec![false; images.len()]
    };
    for ((t, img), served) in images.iter().zip(served) {
        let bar = progress.task(&t.name);
        let (_, b, _) = &bases[img.base];
        if served {
            for a in &img.added {
                let r = registry::parse_ref(&t.image.reference)?;
                holders.entry(a.digest.clone()).or_insert(r);
            }
        } else if push {
            bar.start(&format!("pushing {}", t.image.reference));
            let target = registry::parse_ref(&t.image.reference)?;
            let lookup = reg.login(&target).await;
            let mut blobs: Vec<(String, Option<Reference>)> = b.manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str())
                .map(|d| (d.to_string(), Some(b.reference.clone())))
                .collect();
            for a in &img.added {
                blobs.push((a.digest.clone(), holders.get(&a.digest).cloned()));
            }
            blobs.push((layers::sha256(&img.config), None));
            let present =
                futures_util::future::join_all(blobs.iter().map(|(d, _)| reg.has_blob(&target, d)))
                    .await;
            for ((digest, from), has) in blobs.into_iter().zip(present) {
                let has = has.map_err(|e| push_error(&t.image.reference, &target, &lookup, e))?;
                if has {
                    out.stats.present += 1;
                } else if let Some(f) = from
                    .as_ref()
                    .filter(|f| f.repository() != target.repository())
                {
                    if reg.mount(&target, f, &digest).await {
                        out.stats.mounted += 1;
                    } else {
                        let bytes =
                            blob_bytes(&reg, &digest, img, &user_layers, &cache, Some(f)).await?;
                        out.stats.uploaded += 1;
                        out.stats.uploaded_bytes += bytes.len() as u64;
                        reg.upload(&target, bytes, &digest).await?;
                    }
                } else {
                    let bytes =
                        blob_bytes(&reg, &digest, img, &user_layers, &cache, from.as_ref()).await?;
                    out.stats.uploaded += 1;
                    out.stats.uploaded_bytes += bytes.len() as u64;
                    reg.upload(&target, bytes, &digest).await?;
                }
                holders.entry(digest).or_insert_with(|| target.clone());
            }
            reg.put_manifest(&target, img.manifest.clone(), img.media)
                .await?;
            out.stats.manifests += 1;
        }
        bar.finish(&format!("built in {build_secs:.1}s ({})", img.digest));
        out.reports.push(TaskReport {
            task: t.name.clone(),
            tag: t.image.reference.clone(),
            outcome: Outcome::Built {
                seconds: build_secs,
            },
        });
        out.images.images.insert(
            t.name.clone(),
            PushedImage {
                tag: t.image.reference.clone(),
                content_hash: t.image.content_hash.clone().unwrap_or_default(),
                digest: img.digest.clone(),
            },
        );
    }
    // Record the layers pip made (or the disk cache had) in the registry's cache.
    if push {
        for j in &jobs {
            let (Some(Ok(layer)), Some(r)) = (deps.get(&j.key), cache_ref(j)) else {
                continue;
            };
            if in_registry.contains_key(&layer.digest) {
                continue;
            }
            let e = shared::entry(layer, &j.key, &platform);
            match publish(&reg, &r, layer, &e, holders.get(&layer.digest), &cache).await {
                Ok(true) => out.stats.shared_recorded += 1,
                Ok(false) => {}
                Err(e) => out.notes.push(format!(
                    "the dependency layer of task {} was not recorded in {}: {e:#}",
                    j.task.name,
                    r.whole()
                )),
            }
        }
    }
    out.reports
        .sort_by_key(|r| plan.tasks.iter().position(|t| t.name == r.task));
    Ok(out)
}

/// Puts the cache entry `e` under `r` unless it is there; `true` when it was put.
async fn publish(
    reg: &Registry,
    r: &Reference,
    layer: &CachedLayer,
    e: &shared::Entry,
    holder: Option<&Reference>,
    cache: &Path,
) -> Result<bool> {
    reg.login(r).await;
    if reg.manifest_digest(r).await.as_deref() == Some(e.digest.as_str()) {
        return Ok(false);
    }
    if !reg.has_blob(r, &layer.digest).await? {
        let mounted = match holder {
            Some(h) => reg.mount(r, h, &layer.digest).await,
            None => false,
        };
        if !mounted {
            let cached = cache.join("blobs").join(hex(&layer.digest));
            let bytes = std::fs::read(&cached)
                .with_context(|| format!("reading the cached layer {}", cached.display()))?;
            reg.upload(r, bytes, &layer.digest).await?;
        }
    }
    let config = layers::sha256(&e.config);
    if !reg.has_blob(r, &config).await? {
        reg.upload(r, e.config.clone(), &config).await?;
    }
    reg.put_manifest(r, e.manifest.clone(), registry::OCI_MANIFEST)
        .await?;
    Ok(true)
}

/// A refused request is about credentials; anything else (an unreachable registry) is not.
fn push_error(
    image: &str,
    target: &Reference,
    lookup: &super::auth::Lookup,
    e: anyhow::Error,
) -> super::BuildError {
    let why = format!("{e:#}");
    let lower = why.to_ascii_lowercase();
    if ["401", "403", "unauthorized", "denied"]
        .iter()
        .any(|p| lower.contains(p))
    {
        super::BuildError::Auth {
            registry: target.registry().to_string(),
            lookup: lookup.describe(),
            why,
        }
    } else {
        super::BuildError::Push {
            image: image.to_string(),
            why,
        }
    }
}

/// The bytes of one of the image's blobs: ours from memory or the cache, a base layer
/// from the base's registry.
async fn blob_bytes(
    reg: &Registry,
    digest: &str,
    img: &TaskImage,
    user_layers: &[Layer],
    cache: &Path,
    from: Option<&Reference>,
) -> Result<Vec<u8>> {
    if layers::sha256(&img.config) == digest {
        return Ok(img.config.clone());
    }
    if img.code.digest == digest {
        return Ok(img.code.blob.clone());
    }
    if let Some(u) = user_layers.iter().find(|u| u.digest == digest) {
        return Ok(u.blob.clone());
    }
    let cached = cache.join("blobs").join(hex(digest));
    if let Ok(b) = std::fs::read(&cached) {
        return Ok(b);
    }
    match from {
        Some(r) => reg.blob(r, digest).await,
        None => std::fs::read(&cached)
            .with_context(|| format!("reading the cached layer {}", cached.display())),
    }
}
