//! Kubernetes pieces shared by the argo, tekton and kfp targets, built from the plan as
//! k8s-openapi values: one task's container (env, secrets, config maps, resources, data
//! store) and pod settings, and the plain objects every target gets under `k8s/`
//! (the data store's PersistentVolumeClaim; ConfigMap and Secret skeletons on request).
//!
//! User strings pass through [`Ctx::user`] (refused when the target would substitute
//! inside them) and env values also through [`k8s_env_escape`] (Kubernetes expands
//! `$(VAR)` in env values; `$$` is its escape).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use k8s_openapi::api::core::v1::{
    ConfigMap, LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Secret, Volume, VolumeResourceRequirements,
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

    /// Every string inside a JSON value (affinity) checked with [`Ctx::user`].
    pub fn user_json(&mut self, task: Option<&str>, what: &str, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                self.user(task, what, s);
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| self.user_json(task, what, x)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
                self.user(task, what, k);
                self.user_json(task, what, x)
            }),
            _ => {}
        }
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

pub use crate::pod::{affinity, pod, EnvSpec, Pod};

/// A parameter's default as the text a target passes: strings as they are, everything
/// else as JSON (the runtime parses NB2PIPE_PARAM_<name> as JSON, else takes the text).
pub fn param_text(p: &crate::plan::Parameter) -> String {
    match &p.default {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A schedule as a 5-field cron expression (`None`: `@once`, one run, no schedule).
pub fn cron(schedule: &str) -> Option<String> {
    Some(
        match schedule {
            "@once" => return None,
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@quarterly" => "0 0 1 */3 *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        }
        .to_string(),
    )
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

/// Annotation on a skeleton whose keys nb2pipe cannot know.
pub const KEYS_UNKNOWN: &str = "nb2pipe/keys";

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

/// Secret skeletons: every known key with an empty value. Never a value.
pub fn secret_skeletons(plan: &Plan) -> Vec<Secret> {
    secret_keys(plan)
        .into_iter()
        .map(|(name, (keys, unknown))| {
            let mut ann = BTreeMap::new();
            if unknown {
                ann.insert(KEYS_UNKNOWN.to_string(), "unknown: a task uses every key of this Secret (envFrom or mounted files); add the keys it needs".to_string());
            }
            Secret {
                metadata: meta(plan, &name, ann),
                type_: Some("Opaque".to_string()),
                string_data: (!keys.is_empty()).then(|| keys.into_iter().map(|k| (k, String::new())).collect()),
                ..Default::default()
            }
        })
        .collect()
}

/// ConfigMap skeletons: `config:NAME` takes every key, so the keys are unknown.
pub fn config_map_skeletons(plan: &Plan) -> Vec<ConfigMap> {
    let names: BTreeSet<&String> = plan
        .tasks
        .iter()
        .flat_map(|t| &t.settings.config_maps)
        .collect();
    names
        .into_iter()
        .map(|name| {
            let mut ann = BTreeMap::new();
            ann.insert(
                KEYS_UNKNOWN.to_string(),
                "unknown: a task reads every key of this ConfigMap as env vars; add them"
                    .to_string(),
            );
            ConfigMap {
                metadata: meta(plan, name, ann),
                ..Default::default()
            }
        })
        .collect()
}

/// The plain objects under `k8s/`, for every target.
pub struct Objects;

impl Emitter for Objects {
    fn name(&self) -> &'static str {
        "k8s"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let plan = ctx.plan;
        if let Some(p) = pvc(plan) {
            out.add(format!("k8s/{}-pvc.yaml", plan.pipeline), yaml(&p)?);
        }
        if ctx.options.skeletons {
            let secrets = secret_skeletons(plan)
                .iter()
                .map(yaml)
                .collect::<Result<Vec<_>>>()?;
            if !secrets.is_empty() {
                out.add(
                    format!("k8s/{}-secrets.yaml", plan.pipeline),
                    yaml_docs(&secrets),
                );
            }
            let cms = config_map_skeletons(plan)
                .iter()
                .map(yaml)
                .collect::<Result<Vec<_>>>()?;
            if !cms.is_empty() {
                out.add(
                    format!("k8s/{}-configmaps.yaml", plan.pipeline),
                    yaml_docs(&cms),
                );
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
    fn env_names() {
        assert!(valid_env_name("NB2PIPE_PARAM_seed"));
        assert!(!valid_env_name("NB2PIPE_PARAM_größe"));
        assert!(!valid_env_name("1X"));
    }
}
