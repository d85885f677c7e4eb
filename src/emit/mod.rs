//! Emitters: one module per target, each a pure function of the [`Plan`] that adds
//! files to a [`Bundle`]. Writing the bundle to disk is [`crate::fs`]'s job.

pub mod airflow;
pub mod argo;
pub mod job;
pub mod k8s;
pub mod kfp;
pub mod pyrepr;
pub mod spark;
pub mod task_code;
pub mod tekton;
pub mod templates;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::plan::Plan;
pub use templates::Templates;

/// Files of an output bundle: path relative to the bundle folder → content.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bundle {
    pub files: BTreeMap<String, String>,
    /// Files copied as they are from the project: path in the bundle → where to read
    /// it (a task's local modules and data files, which may be binary or large).
    pub copies: BTreeMap<String, std::path::PathBuf>,
    /// What a target could not express, or refused to write (see [`Note`]).
    pub notes: Vec<Note>,
}

/// A finding of an emitter about the user's settings (not an nb2pipe bug).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub target: &'static str,
    /// The plan task it is about (`None`: pipeline-wide).
    pub task: Option<String>,
    /// `true`: the value cannot be written safely, nothing is written (NB301);
    /// `false`: a setting the target cannot express, described in docs/targets.md (NB302).
    pub error: bool,
    pub message: String,
}

impl Note {
    pub fn is_error(&self) -> bool {
        self.error
    }
}

impl Bundle {
    pub fn add(&mut self, path: impl Into<String>, content: impl Into<String>) {
        let mut c: String = content.into();
        if !c.ends_with('\n') {
            c.push('\n');
        }
        self.files.insert(path.into(), c);
    }

    /// Whether `path` (relative to the bundle folder) is one of the bundle's files.
    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.copies.contains_key(path)
    }
}

/// What every emitter gets.
pub struct EmitContext<'a> {
    pub plan: &'a Plan,
    pub templates: &'a Templates,
    pub options: &'a EmitOptions,
}

/// Output choices that are not part of the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitOptions {
    /// Also write ConfigMap and Secret skeletons (`kubectl create` scripts, keys only,
    /// never values) under k8s/skeletons/.
    pub skeletons: bool,
}

pub trait Emitter {
    /// The target's name on the command line (`--target NAME`) and its folder.
    fn name(&self) -> &'static str;
    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()>;
}

/// Every pipeline target, in `--target all` order.
pub fn targets() -> Vec<Box<dyn Emitter>> {
    vec![
        Box::new(airflow::Airflow),
        Box::new(argo::Argo),
        Box::new(tekton::Tekton),
        Box::new(kfp::Kfp),
        Box::new(job::Job),
    ]
}

pub fn target_names() -> Vec<&'static str> {
    targets().iter().map(|t| t.name()).collect()
}

/// plan.json, the task folders, and the chosen targets.
pub fn bundle(plan: &Plan, templates: &Templates, chosen: &[String]) -> Result<Bundle> {
    bundle_with(plan, templates, chosen, &EmitOptions::default())
}

/// [`bundle`] with output options. Every target also gets the plain Kubernetes objects
/// (k8s/): the data store's claim, and skeletons on request. When a note is an error
/// the bundle must not be written (see [`Note`]).
pub fn bundle_with(
    plan: &Plan,
    templates: &Templates,
    chosen: &[String],
    options: &EmitOptions,
) -> Result<Bundle> {
    let mut out = Bundle::default();
    out.add("plan.json", plan.to_json());
    let ctx = EmitContext {
        plan,
        templates,
        options,
    };
    task_code::TaskFiles.emit(&ctx, &mut out)?;
    let mut any = false;
    // Only the Job target can pass values without the claim (on its pod's emptyDir).
    let mut claim = false;
    for t in targets() {
        if chosen.iter().any(|c| c == t.name() || c == "all") {
            any = true;
            claim |= t.name() != "job" || !job::uses_empty_dir(plan);
            t.emit(&ctx, &mut out).map_err(|e| {
                e.context(format!(
                    "the `{}` emitter failed (an nb2pipe bug)",
                    t.name()
                ))
            })?;
        }
    }
    if any {
        k8s::Objects { claim }
            .emit(&ctx, &mut out)
            .map_err(|e| e.context("the `k8s` emitter failed (an nb2pipe bug)"))?;
    }
    out.notes.sort();
    out.notes.dedup();
    Ok(out)
}
