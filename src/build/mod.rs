//! `nb2pipe build`: one image per task through the Docker Engine API (bollard).
//!
//! Each non-prebuilt task's build context is its bundle folder `tasks/<task>/` (with the
//! project files that travel with it), made as a tar in memory ([`context`]), plus the
//! pip settings ([`pip`]). A task with an `image:` setting is built `FROM` that image. The image tag is the
//! plan's `Image.reference`, which carries the content hash, so a tag already present in
//! the engine is up to date and is not built again. Tasks with the same requirements are
//! ordered so that one builds the shared dependency layers first and the others reuse
//! them. `--push` pushes each image and records its digest in `images.json`
//! ([`images`]), which the plan step [`images::apply`] turns into `repo@sha256:…`
//! references for every emitter. Async stays in here; the command makes the runtime.

pub mod auth;
pub mod context;
pub mod engine;
pub mod images;
pub mod oci;
pub mod pip;
pub mod progress;

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;

use crate::emit::Bundle;
use crate::plan::{Plan, Task};
pub use engine::{run_task_container, Engine, TaskContainer};
pub use pip::PipSettings;
use progress::Progress;

/// Lines of the build log shown when a build fails.
const LOG_TAIL: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot reach the Docker Engine at {endpoint}: {why}\n  start the engine (dockerd, or Podman's `podman system service`) or point DOCKER_HOST at it (unix:///path/to/docker.sock or tcp://HOST:2375)")]
    Unreachable { endpoint: String, why: String },
    #[error("the registry {registry} refused the push: {why}\n  credentials: {lookup}\n  set NB2PIPE_REGISTRY_USER and NB2PIPE_REGISTRY_PASSWORD, or log in with `docker login {registry}`")]
    Auth {
        registry: String,
        lookup: String,
        why: String,
    },
    #[error("pushing {image} failed: {why}")]
    Push { image: String, why: String },
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub jobs: usize,
    pub platform: Option<String>,
    pub no_cache: bool,
    pub pip: PipSettings,
    /// Build logs go to `<log_dir>/<task>.log`.
    pub log_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Built { seconds: f64 },
    UpToDate,
    Failed { message: String, log: PathBuf },
}

#[derive(Debug, Clone)]
pub struct TaskReport {
    pub task: String,
    pub tag: String,
    pub outcome: Outcome,
}

/// The build context of `task`: its bundle folder plus the pip files.
pub fn task_context(bundle: &Bundle, task: &Task, pip: &PipSettings) -> anyhow::Result<Vec<u8>> {
    let mut ctx = context::BuildContext::from_bundle(bundle, &task.name)?;
    pip.add_to(&mut ctx)?;
    ctx.to_tar()
}

/// Tasks to build, leaders first: the first task of each distinct requirements set, then
/// the rest, so parallel builds reuse the dependency layers instead of racing to make them.
fn build_order(plan: &Plan) -> (Vec<&Task>, Vec<&Task>) {
    let mut seen = std::collections::BTreeSet::new();
    let (mut leaders, mut rest) = (Vec::new(), Vec::new());
    for t in plan.tasks.iter().filter(|t| !t.image.prebuilt) {
        let key: Vec<&str> = t.requirements.iter().map(|r| r.line.as_str()).collect();
        if seen.insert(key) {
            leaders.push(t);
        } else {
            rest.push(t);
        }
    }
    (leaders, rest)
}

/// Builds every non-prebuilt task whose tag the engine does not have yet.
pub async fn build_plan(
    engine: &Engine,
    plan: &Plan,
    bundle: &Bundle,
    opts: &BuildOptions,
    progress: &Progress,
) -> anyhow::Result<Vec<TaskReport>> {
    std::fs::create_dir_all(&opts.log_dir)?;
    let mut reports = Vec::new();
    let (leaders, rest) = build_order(plan);
    for phase in [leaders, rest] {
        let mut jobs = Vec::new();
        for t in phase {
            let tar = task_context(bundle, t, &opts.pip)?;
            jobs.push(build_task(engine, t, tar, opts, progress));
        }
        let done: Vec<TaskReport> = futures_util::stream::iter(jobs)
            .buffer_unordered(opts.jobs.max(1))
            .collect()
            .await;
        reports.extend(done);
    }
    reports.sort_by_key(|r| plan.tasks.iter().position(|t| t.name == r.task));
    Ok(reports)
}

async fn build_task(
    engine: &Engine,
    task: &Task,
    tar: Vec<u8>,
    opts: &BuildOptions,
    progress: &Progress,
) -> TaskReport {
    let tag = task.image.reference.clone();
    let report = |outcome| TaskReport {
        task: task.name.clone(),
        tag: tag.clone(),
        outcome,
    };
    let bar = progress.task(&task.name);
    if engine.image_exists(&tag).await {
        bar.finish("up to date");
        return report(Outcome::UpToDate);
    }
    let log_path = opts.log_dir.join(format!("{}.log", task.name));
    let mut log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => {
            let message = format!("cannot write the build log {}: {e}", log_path.display());
            bar.finish("failed");
            return report(Outcome::Failed {
                message,
                log: log_path,
            });
        }
    };
    bar.start(&tag);
    let start = Instant::now();
    let res = engine
        .build(
            &tag,
            tar,
            opts.platform.as_deref(),
            opts.no_cache,
            &mut log,
            |l| bar.line(l),
        )
        .await;
    drop(log);
    match res {
        Ok(()) => {
            let seconds = start.elapsed().as_secs_f64();
            bar.finish(&format!("built in {seconds:.1}s"));
            report(Outcome::Built { seconds })
        }
        Err(why) => {
            bar.finish("failed");
            report(Outcome::Failed {
                message: failure_message(&task.name, &why, &log_path),
                log: log_path,
            })
        }
    }
}

/// What went wrong: pip's error when pip failed, else the engine's, then the log's tail.
fn failure_message(task: &str, why: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().collect();
    let tail = tail[tail.len().saturating_sub(LOG_TAIL)..].join("\n    ");
    let head = match pip::pip_failure(&text) {
        Some((Some(pkg), err)) => format!(
            "building task {task}: pip could not install `{pkg}`:\n    {}",
            err.replace('\n', "\n    ")
        ),
        Some((None, err)) => format!(
            "building task {task}: pip failed:\n    {}",
            err.replace('\n', "\n    ")
        ),
        None => format!("building task {task} failed: {}", why.trim()),
    };
    format!("{head}\n  last lines of {}:\n    {tail}", log.display())
}

/// Pushes every non-prebuilt task's image; returns the record of tags and digests.
pub async fn push_plan(
    engine: &Engine,
    plan: &Plan,
    progress: &Progress,
) -> Result<images::Images, BuildError> {
    let mut out = images::Images {
        format: 1,
        ..Default::default()
    };
    let mut lookups: std::collections::BTreeMap<String, auth::Lookup> = Default::default();
    for t in plan.tasks.iter().filter(|t| !t.image.prebuilt) {
        let tag = &t.image.reference;
        let registry = auth::registry_of(tag);
        let lookup = lookups
            .entry(registry.clone())
            .or_insert_with(|| auth::lookup(&registry));
        let bar = progress.task(&t.name);
        bar.start(&format!("pushing {tag}"));
        let digest = match engine.push(tag, lookup).await {
            Ok(d) => d,
            Err(e) => {
                bar.finish("push failed");
                return Err(e);
            }
        };
        bar.finish(&format!("pushed {digest}"));
        out.images.insert(
            t.name.clone(),
            images::PushedImage {
                tag: tag.clone(),
                content_hash: t.image.content_hash.clone().unwrap_or_default(),
                digest,
            },
        );
    }
    Ok(out)
}
