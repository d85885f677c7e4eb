//! Kubernetes pieces shared by the argo, tekton and kfp targets, built from the plan as
//! k8s-openapi values: one task's container (env, secrets, config maps, resources, data
//! store) and pod settings, and the plain objects every target gets under `k8s/`
//! (the data store's PersistentVolumeClaim; on request, scripts that create the ConfigMaps
//! and Secrets it references, under `k8s/skeletons/`).
//!
//! User strings pass through [`Ctx::user`] (refused when the target would substitute
//! inside them) and env values also through [`k8s_env_escape`] (Kubernetes expands
//! `$(VAR)` in env values; `$$` is its escape).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use k8s_openapi::api::core::v1::{
    LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::{Bundle, EmitContext, Emitter, Note};
use crate::plan::{DataStore, Plan, Task};

pub use super::airflow::DATA_VOLUME;

/// The task image's entry point (as in the Airflow target).
pub const COMMAND: [&str; 2] = ["python", "/app/main.py"];

/// Substitution syntax a target applies to strings in what we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subst {
    /// Argo replaces `{{...}}` anywhere in a template and has no escape for it.
    Argo,
    /// Tekton replaces `$(...)` (params, context, workspaces...) and has no escape for it.
    Tekton,
    /// KFP substitutes placeholders only in command/args, which hold no user strings.
    None,
}

impl Subst {
    fn marker(self) -> Option<&'static str> {
        match self {
            Subst::Argo => Some("{{"),
            Subst::Tekton => Some("$("),
            Subst::None => None,
        }
    }
}

/// What an emitter carries while it builds one document: the plan, and the notes about
/// user values it cannot write or settings it cannot express.
pub struct Ctx<'p> {
    pub plan: &'p Plan,
    pub target: &'static str,
    pub subst: Subst,
    pub notes: Vec<Note>,
}

impl<'p> Ctx<'p> {
    pub fn new(plan: &'p Plan, target: &'static str, subst: Subst) -> Self {
        Ctx {
            plan,
            target,
            subst,
            notes: Vec::new(),
        }
    }

    /// A user string as written; an error note when the target would substitute in it.
    pub fn user(&mut self, task: Option<&str>, what: &str, value: &str) -> String {
        if let Some(m) = self.subst.marker() {
            if value.contains(m) {
                self.notes.push(Note {
                    target: self.target,
                    task: task.map(str::to_string),
                    error: true,
                    message: format!(
                        "{what} `{value}` contains `{m}`, which {} substitutes and cannot escape; change the value or leave this target out",
                        self.target
                    ),
                });
            }
        }
        value.to_string()
    }

    /// Every string inside a JSON value (affinity) checked with [`Ctx::user`]. The plan
    /// already refused deeper values; the limit keeps the walk bounded for any caller.
    pub fn user_json(&mut self, task: Option<&str>, what: &str, v: &serde_json::Value) {
        use serde_json::Value;
        // An explicit stack in document order: keys before their values, as written.
        let mut todo: Vec<(Result<&str, &Value>, usize)> = vec![(Err(v), 1)];
        while let Some((item, depth)) = todo.pop() {
            let v = match item {
                Ok(key) => {
                    self.user(task, what, key);
                    continue;
                }
                Err(v) => v,
            };
            if depth > crate::plan::values::MAX_JSON_DEPTH {
                self.notes.push(Note {
                    target: self.target,
                    task: task.map(str::to_string),
                    error: true,
                    message: format!(
                        "{what} is nested more than {} levels deep",
                        crate::plan::values::MAX_JSON_DEPTH
                    ),
                });
                return;
            }
            match v {
                Value::String(s) => {
                    self.user(task, what, s);
                }
                Value::Array(a) => todo.extend(a.iter().rev().map(|x| (Err(x), depth + 1))),
                Value::Object(o) => {
                    for (k, x) in o.iter().rev() {
                        todo.push((Err(x), depth + 1));
                        todo.push((Ok(k.as_str()), depth));
                    }
                }
                _ => {}
            }
        }
    }

    /// `name` within `limit` characters ([`fit`]); a warning (NB302) when shortened.
    pub fn fit(&mut self, task: Option<&str>, what: &str, name: &str, limit: usize) -> String {
        let short = fit(name, limit);
        if short != name {
            self.cannot(
                task,
                format!("{what} `{name}` is longer than {limit} characters; written as `{short}`"),
            );
        }
        short
    }

    /// NB302 for the Airflow scheduling settings the user set that `target` drops
    /// (`max_active_runs` 1 is kept where the target can forbid overlapping runs).
    pub fn scheduling_dropped(&mut self, keeps_one_active_run: bool) {
        let s = &self.plan.settings;
        let mut dropped = Vec::new();
        if s.catchup != DEFAULT_CATCHUP {
            dropped.push("catchup (runs for missed intervals)".to_string());
        }
        if s.start_date != DEFAULT_START_DATE {
            dropped.push(format!("start_date {}", s.start_date));
        }
        match s.max_active_runs {
            Some(1) if keeps_one_active_run => {}
            Some(n) => dropped.push(format!("max_active_runs {n}")),
            None => {}
        }
        for d in dropped {
            self.cannot(
                None,
                format!(
                    "{d}: an Airflow scheduling setting {} has no counterpart for; left out",
                    self.target
                ),
            );
        }
    }

    /// The plan's schedule in the target's dialect (`dialect`, e.g. [`Schedule::argo`]);
    /// an error note (NB301) when the target's engine would refuse it. `None`: no
    /// schedule, or `@once` (a single run).
    pub fn schedule(
        &mut self,
        dialect: fn(&Schedule) -> Result<Option<EngineSchedule>, Refused>,
    ) -> Option<EngineSchedule> {
        let text = self.plan.settings.schedule.as_deref()?;
        let refused = match Schedule::parse(text) {
            Ok(s) => match dialect(&s) {
                Ok(e) => return e,
                Err(r) => r.0,
            },
            Err(e) => e,
        };
        self.notes.push(Note {
            target: self.target,
            task: None,
            error: true,
            message: format!("{refused}; change the schedule or leave this target out"),
        });
        None
    }

    /// A setting the target cannot express (a warning, NB302).
    pub fn cannot(&mut self, task: Option<&str>, message: impl Into<String>) {
        self.notes.push(Note {
            target: self.target,
            task: task.map(str::to_string),
            error: false,
            message: message.into(),
        });
    }
}

/// The plan's values when the notebook does not set `catchup` / `start_date` (see
/// docs/settings.md): only a value that differs was set by the user.
pub const DEFAULT_CATCHUP: bool = false;
pub const DEFAULT_START_DATE: &str = "2024-01-01";

/// Where the runtime writes a `metrics` task's metrics (JSON object name → number)
/// when this env var is set.
pub const METRICS_ENV: &str = "NB2PIPE_METRICS_FILE";

/// Kubernetes names and label values: at most 63 characters.
pub const NAME_MAX: usize = 63;

/// `name` if it fits in `limit` characters, else its first characters, `-` and 8 hex
/// digits of the SHA-256 of the whole name: stable, within the limit, distinct for
/// distinct names (as far as 32 bits of a hash go), still a DNS label.
pub fn fit(name: &str, limit: usize) -> String {
    if name.len() <= limit {
        return name.to_string();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let hex = crate::digest::hex(&digest[..4]);
    let keep = limit.saturating_sub(hex.len() + 1);
    let head: String = name.chars().take(keep).collect();
    format!("{}-{hex}", head.trim_end_matches(['-', '.', '_']))
}

/// An env value that Kubernetes passes through unchanged: it expands `$(VAR)` and turns
/// `$$` into `$`, so every `$` is doubled.
pub fn k8s_env_escape(v: &str) -> String {
    v.replace('$', "$$")
}

/// The pipeline name as a label value / name prefix.
pub fn pipeline_k8s(plan: &Plan) -> String {
    plan.pipeline.replace('_', "-").to_ascii_lowercase()
}

/// The labels nb2pipe puts on everything it creates for `task` (or the pipeline).
pub fn own_labels(plan: &Plan, task: Option<&Task>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "nb2pipe".to_string(),
    );
    l.insert("nb2pipe/pipeline".to_string(), pipeline_k8s(plan));
    if let Some(t) = task {
        l.insert("nb2pipe/task".to_string(), t.k8s_name.clone());
    }
    l
}

/// Value of NB2PIPE_DATA.
pub fn data_env(plan: &Plan) -> &str {
    match &plan.settings.data {
        DataStore::Volume { mount_path, .. } => mount_path,
        DataStore::S3 { url, .. } => url,
    }
}

pub use crate::plan::schedule::{EngineSchedule, Refused, Schedule};
pub use crate::pod::{affinity, pod, EnvSpec, Pod};

/// A parameter's default as the text a target passes: strings as they are, everything
/// else as JSON (the runtime parses NB2PIPE_PARAM_<name> as JSON, else takes the text).
pub fn param_text(p: &crate::plan::Parameter) -> String {
    match &p.default {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A schedule as a Kubernetes CronJob's 5-field cron expression (`None`: `@once`, or a
/// schedule the Kubernetes dialect refuses, which [`Ctx::schedule`] reports).
pub fn cron(schedule: &str) -> Option<String> {
    Schedule::parse(schedule)
        .ok()?
        .cron_job()
        .ok()?
        .map(|e| e.schedule)
}

/// The env var a parameter travels in.
pub fn param_env_name(name: &str) -> String {
    format!("NB2PIPE_PARAM_{name}")
}

/// Kubernetes env var names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn valid_env_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || "-._".contains(c))
        && cs.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Name of the volume of the task's `i`-th secret mount.
pub fn secret_volume_name(i: usize) -> String {
    format!("nb2pipe-secret-{i}")
}

/// The pod volume of the data store's claim.
pub fn data_volume(claim: &str) -> Volume {
    Volume {
        name: DATA_VOLUME.to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_string(),
            read_only: None,
        }),
        ..Default::default()
    }
}

pub fn image_pull_secrets(plan: &Plan) -> Option<Vec<LocalObjectReference>> {
    let v = &plan.settings.image_pull_secrets;
    (!v.is_empty()).then(|| {
        v.iter()
            .map(|n| LocalObjectReference { name: n.clone() })
            .collect()
    })
}

/// YAML of one value; `---`-joined documents for several.
pub fn yaml<T: Serialize>(v: &T) -> Result<String> {
    Ok(serde_norway::to_string(v)?)
}

pub fn yaml_docs(docs: &[String]) -> String {
    docs.iter()
        .map(|d| d.trim_end_matches('\n'))
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

/// A pipeline object's metadata (the caller sets `name` or `generateName`), its
/// description annotated under `key`.
pub fn pipeline_meta(c: &mut Ctx<'_>, key: &str) -> ObjectMeta {
    let plan = c.plan;
    let mut annotations = BTreeMap::new();
    if let Some(d) = &plan.settings.description {
        annotations.insert(key.to_string(), c.user(None, "description", d));
    }
    ObjectMeta {
        namespace: Some(plan.settings.namespace.clone()),
        labels: Some(own_labels(plan, None)),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    }
}

fn meta(plan: &Plan, name: &str, annotations: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(plan.settings.namespace.clone()),
        labels: Some(own_labels(plan, None)),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    }
}

/// The claim the data store needs (`None` for S3).
pub fn pvc(plan: &Plan) -> Option<PersistentVolumeClaim> {
    let DataStore::Volume {
        claim,
        size,
        storage_class,
        access_mode,
        ..
    } = &plan.settings.data
    else {
        return None;
    };
    let mut requests = BTreeMap::new();
    requests.insert("storage".to_string(), Quantity(size.clone()));
    Some(PersistentVolumeClaim {
        metadata: meta(plan, claim, BTreeMap::new()),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![access_mode.clone()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(requests),
                limits: None,
            }),
            storage_class_name: storage_class.clone(),
            ..Default::default()
        }),
        status: None,
    })
}

/// The Secrets the plan references: name → keys known from `secret:NAME:KEY:ENV` and
/// the S3 credentials, and whether some use takes every key (keys unknown).
pub fn secret_keys(plan: &Plan) -> BTreeMap<String, (BTreeSet<String>, bool)> {
    let mut out: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
    for t in &plan.tasks {
        for sr in &t.settings.secrets {
            let e = out.entry(sr.name.clone()).or_default();
            match (&sr.key, &sr.mount_path) {
                (Some(k), None) => {
                    e.0.insert(k.clone());
                }
                _ => e.1 = true,
            }
        }
    }
    if let DataStore::S3 {
        secret: Some(s), ..
    } = &plan.settings.data
    {
        let e = out.entry(s.clone()).or_default();
        e.0.insert("AWS_ACCESS_KEY_ID".into());
        e.0.insert("AWS_SECRET_ACCESS_KEY".into());
    }
    out
}

/// Folder of the skeletons: not a place `kubectl apply -f k8s/` reads (it does not
/// recurse), and they are shell scripts, not objects.
pub const SKELETON_DIR: &str = "k8s/skeletons";

/// The shell variable a skeleton reads a Secret key's value from (`db-creds`,
/// `pass.word` → `DB_CREDS_PASS_WORD`).
pub fn skeleton_var(secret: &str, key: &str) -> String {
    format!("{secret}_{key}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A shell word: single-quoted unless it is plainly safe.
fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/=:@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn skeleton_header(plan: &Plan, what: &str) -> String {
    format!(
        "#!/bin/sh\n# The {what} pipeline {} reads (generated by nb2pipe; never holds a value).\n# `kubectl create` refuses to replace an existing object, so running this again\n# cannot change or blank what is in the cluster: to change a value, use\n# `kubectl edit` or delete the object first.\nset -eu\n",
        plan.pipeline
    )
}

/// Secret skeletons: a script of `kubectl create secret generic` commands that take
/// each known key's value from a shell variable (the script stops when one is unset),
/// or from an env file where the keys are unknown. Never a value, and not a Secret
/// object: applying a Secret without data over a real one (or one whose last applied
/// version had data) could remove its keys.
pub fn secret_skeletons(plan: &Plan) -> Option<String> {
    let secrets = secret_keys(plan);
    if secrets.is_empty() {
        return None;
    }
    let ns = sh(&plan.settings.namespace);
    let mut out = skeleton_header(plan, "Secrets");
    for (name, (keys, unknown)) in secrets {
        out.push('\n');
        if unknown {
            out.push_str(&format!("# A task uses every key of `{name}` (envFrom or mounted files): list them\n# as KEY=VALUE lines in {name}.env.\n"));
        }
        out.push_str(&format!(
            "kubectl create secret generic {} --namespace {ns}",
            sh(&name)
        ));
        for k in &keys {
            let v = skeleton_var(&name, k);
            out.push_str(&format!(
                " \\\n  --from-literal={}=\"${{{v}:?set {v}}}\"",
                sh(k)
            ));
        }
        if unknown {
            out.push_str(&format!(
                " \\\n  --from-env-file={}",
                sh(&format!("{name}.env"))
            ));
        }
        out.push('\n');
    }
    Some(out)
}

/// ConfigMap skeletons: `config:NAME` takes every key, so each is created from an env
/// file (KEY=VALUE lines) the user writes.
pub fn config_map_skeletons(plan: &Plan) -> Option<String> {
    let names: BTreeSet<&String> = plan
        .tasks
        .iter()
        .flat_map(|t| &t.settings.config_maps)
        .collect();
    if names.is_empty() {
        return None;
    }
    let ns = sh(&plan.settings.namespace);
    let mut out = skeleton_header(plan, "ConfigMaps");
    for name in names {
        out.push_str(&format!("\n# A task reads every key of `{name}` as env vars: list them as KEY=VALUE\n# lines in {name}.env.\nkubectl create configmap {} --namespace {ns} \\\n  --from-env-file={}\n", sh(name), sh(&format!("{name}.env"))));
    }
    Some(out)
}

/// The plain objects under `k8s/`, for every target.
pub struct Objects {
    /// Write the data store's claim (a Job alone passes values on its own emptyDir).
    pub claim: bool,
}

impl Emitter for Objects {
    fn name(&self) -> &'static str {
        "k8s"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let plan = ctx.plan;
        if let Some(p) = pvc(plan).filter(|_| self.claim) {
            out.add(format!("k8s/{}-pvc.yaml", plan.pipeline), yaml(&p)?);
        }
        if ctx.options.skeletons {
            if let Some(s) = secret_skeletons(plan) {
                out.add(format!("{SKELETON_DIR}/{}-secrets.sh", plan.pipeline), s);
            }
            if let Some(s) = config_map_skeletons(plan) {
                out.add(format!("{SKELETON_DIR}/{}-configmaps.sh", plan.pipeline), s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_survive_kubernetes_expansion() {
        assert_eq!(k8s_env_escape("a$(HOME)b$$c"), "a$$(HOME)b$$$$c");
        assert_eq!(k8s_env_escape("plain"), "plain");
    }

    #[test]
    fn long_names_are_shortened_stably_and_distinctly() {
        let a = format!("{}-a", "x".repeat(70));
        let b = format!("{}-b", "x".repeat(70));
        assert_eq!(fit("short", 63), "short");
        assert_eq!(fit(&"x".repeat(63), 63), "x".repeat(63));
        for n in [&a, &b] {
            let f = fit(n, 63);
            assert!(f.len() <= 63, "{f}");
            assert_eq!(f, fit(n, 63), "deterministic");
            assert!(f.starts_with(&"x".repeat(54)), "{f}");
            // Still a DNS label: no `-` at either end.
            assert!(!f.ends_with('-') && !f.starts_with('-'));
        }
        assert_ne!(fit(&a, 63), fit(&b, 63));
        assert!(fit(&a, 52).len() <= 52);
        // The cut never leaves `--`: a `-` before the hash is dropped.
        let dashy = format!("{}-{}", "x".repeat(53), "y".repeat(20));
        assert!(!fit(&dashy, 63).contains("--"), "{}", fit(&dashy, 63));
    }

    #[test]
    fn user_json_walks_in_order_and_stops_at_the_depth_limit() {
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {"tags": ["task:a"]}, "source": "x = 1", "outputs": [], "execution_count": null}]});
        let nb =
            crate::notebook::parse_str(std::path::Path::new("t.ipynb"), &nb.to_string()).unwrap();
        let plan = crate::plan::build(crate::plan::BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
        .plan;
        let mut ctx = Ctx::new(&plan, "argo", Subst::Argo);
        let v = serde_json::json!({"{{k1}}": ["{{v1}}", {"{{k2}}": "{{v2}}"}], "k3": "{{v3}}"});
        ctx.user_json(Some("a"), "affinity", &v);
        let order: Vec<&str> = ctx
            .notes
            .iter()
            .map(|n| n.message.split('`').nth(1).unwrap())
            .collect();
        assert_eq!(order, ["{{k1}}", "{{v1}}", "{{k2}}", "{{v2}}", "{{v3}}"]);
        // Deeper than any caller should pass: one error note, no recursion.
        let mut deep = serde_json::json!("x");
        for _ in 0..100_000 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        let mut ctx = Ctx::new(&plan, "argo", Subst::Argo);
        ctx.user_json(Some("a"), "affinity", &deep);
        assert_eq!(ctx.notes.len(), 1);
        assert!(ctx.notes[0].error && ctx.notes[0].message.contains("64 levels"));
        // A Value drops recursively; this one is deeper than a test thread's stack.
        std::mem::forget(deep);
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("NB2PIPE_PARAM_seed"));
        assert!(!valid_env_name("NB2PIPE_PARAM_größe"));
        assert!(!valid_env_name("1X"));
    }
}
