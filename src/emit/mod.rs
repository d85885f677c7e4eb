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
use std::sync::Arc;

use anyhow::Result;

use crate::plan::Plan;
pub use templates::Templates;

/// Files of an output bundle: path relative to the bundle folder → content.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bundle {
    /// Shared: every task folder holds the same runtime file.
    pub files: BTreeMap<String, Arc<String>>,
    /// Files copied as they are from the project: path in the bundle → where to read
    /// it (a task's local modules and data files, which may be binary or large).
    pub copies: BTreeMap<String, std::path::PathBuf>,
    /// What a target could not express, or refused to write (see [`Note`]).
    pub notes: Vec<Note>,
    /// [`input_digest`] of what the bundle was made from.
    pub input: String,
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
        self.files.insert(path.into(), Arc::new(c));
    }

    /// Adds a file whose text other files of the bundle share (it ends with a newline).
    pub fn add_shared(&mut self, path: impl Into<String>, content: &Arc<String>) {
        self.files.insert(path.into(), Arc::clone(content));
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

pub trait Emitter: Sync {
    /// The target's name on the command line (`--target NAME`) and its folder.
    fn name(&self) -> &'static str;
    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()>;
}

/// A hash of everything a bundle is made from: emitters are pure functions of the plan,
/// the templates, the chosen targets and the options, so an equal digest means an equal
/// bundle (nb2pipe's version is part of it).
pub fn input_digest(
    plan: &Plan,
    templates: &Templates,
    chosen: &[String],
    options: &EmitOptions,
) -> String {
    digest_with_json(&plan.to_json(), plan, templates, chosen, options)
}

/// [`input_digest`] given the plan's plan.json text. The plan enters whole: plan.json
/// holds every field but the few that are `#[serde(skip)]`, which are hashed here. The
/// patterns below name every field of the types that have such fields (and of `Chunk`),
/// so a new field does not compile until it is placed.
fn digest_with_json(
    json: &str,
    plan: &Plan,
    templates: &Templates,
    chosen: &[String],
    options: &EmitOptions,
) -> String {
    use sha2::{Digest, Sha256};
    /// `Debug` text goes straight into the hash, never into a string.
    struct Hashing<'a>(&'a mut Sha256);
    impl std::fmt::Write for Hashing<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let mut h = Sha256::new();
    let chosen = chosen.join("\n");
    let skeletons = [u8::from(options.skeletons)];
    for part in [
        env!("CARGO_PKG_VERSION").as_bytes(),
        templates.digest().as_bytes(),
        chosen.as_bytes(),
        &skeletons,
        json.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for task in &plan.tasks {
        // `_`: in plan.json.
        let crate::plan::Task {
            name: _,
            k8s_name: _,
            cells: _,
            inputs: _,
            outputs: _,
            changes: _,
            parameters: _,
            prelude: _,
            imports: _,
            requirements: _,
            optional_requirements: _,
            local_modules: _,
            files: _,
            metrics: _,
            random_state,
            settings: _,
            image: _,
            cache: _,
            code,
            copies,
        } = task;
        let restore_at = random_state.as_ref().map(|r| {
            let crate::plan::RandomCarry {
                from: _,
                to: _,
                restore_at,
            } = r;
            restore_at
        });
        // The code's text (most of it) is hashed as it is, after its length; the small
        // rest as `Debug` text of a tuple, which ends at its closing parenthesis (strings
        // in it are quoted): no part can run into the next.
        let text = |h: &mut Sha256, t: &[u8]| {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t);
        };
        let debug = |h: &mut Sha256, v: &dyn std::fmt::Debug| {
            let _ = std::fmt::Write::write_fmt(&mut Hashing(h), format_args!("{v:?}"));
        };
        debug(&mut h, &(restore_at, copies, code.len()));
        for chunk in code {
            let crate::plan::Chunk {
                cell,
                first_line,
                python,
                escapes,
                magic,
                wrapper,
                raw_body,
                prelude,
                syntax_error,
                call_literals,
            } = chunk;
            text(&mut h, python.as_bytes());
            text(&mut h, raw_body.as_bytes());
            debug(
                &mut h,
                &(
                    cell,
                    first_line,
                    escapes,
                    magic,
                    wrapper,
                    prelude,
                    syntax_error,
                    call_literals,
                ),
            );
        }
    }
    crate::digest::hex(&h.finalize())
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
    let ctx = EmitContext {
        plan,
        templates,
        options,
    };
    let digest_of = chosen;
    let chosen: Vec<Box<dyn Emitter>> = targets()
        .into_iter()
        .filter(|t| chosen.iter().any(|c| c == t.name() || c == "all"))
        .collect();
    // Only the Job target can pass values without the claim (on its pod's emptyDir).
    let claim = chosen
        .iter()
        .any(|t| t.name() != "job" || !job::uses_empty_dir(plan));
    // Each part goes into a bundle of its own, on as many threads as the machine has;
    // the parts are merged by path, so the result does not depend on timing.
    let n = plan.tasks.len();
    let any = !chosen.is_empty();
    let mut parts: Vec<(&'static str, Box<dyn Emitter>)> =
        chosen.into_iter().map(|t| (t.name(), t)).collect();
    if any {
        parts.push(("k8s", Box::new(k8s::Objects { claim })));
    }
    for q in 0..4 {
        let tasks = n * q / 4..n * (q + 1) / 4;
        if !tasks.is_empty() {
            parts.push(("tasks", Box::new(task_code::TaskFiles { tasks })));
        }
    }
    // Threads pay off from a few dozen files on. Job 0 writes plan.json and hashes it
    // into the input digest; the jobs are taken in order, so the longest (plan.json, a
    // target) start first and the task folders' quarters fill in after them.
    let workers = if n >= 8 { 4 } else { 1 };
    let bundles: Vec<Result<Bundle>> = crate::parallel::indexed(parts.len() + 1, workers, |i| {
        let Some((name, part)) = i.checked_sub(1).and_then(|p| parts.get(p)) else {
            let json = plan.to_json();
            let mut b = Bundle {
                input: digest_with_json(&json, plan, templates, digest_of, options),
                ..Bundle::default()
            };
            b.add("plan.json", json);
            return Ok(b);
        };
        let mut b = Bundle::default();
        let emitted = part.emit(&ctx, &mut b);
        // The task files come from templates a user may replace: their errors are the
        // user's; a target's are nb2pipe's.
        if *name == "tasks" {
            emitted?;
        } else {
            emitted
                .map_err(|e| e.context(format!("the `{name}` emitter failed (an nb2pipe bug)")))?;
        }
        Ok(b)
    });
    let mut out = Bundle::default();
    for b in bundles {
        let mut b = b?;
        out.files.append(&mut b.files);
        out.copies.append(&mut b.copies);
        out.notes.append(&mut b.notes);
        if !b.input.is_empty() {
            out.input = b.input;
        }
    }
    out.notes.sort();
    out.notes.dedup();
    Ok(out)
}
