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
    Affinity, ConfigMap, ConfigMapEnvSource, Container, EnvFromSource, EnvVar, EnvVarSource,
    LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, ResourceRequirements, Secret, SecretEnvSource,
    SecretKeySelector, SecretVolumeSource, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::{Bundle, EmitContext, Emitter, Note};
use crate::plan::{DataStore, Plan, Task};

pub use super::airflow::DATA_VOLUME;

/// The task image's entry point (as in the Airflow target).
pub const COMMAND: [&str; 2] = ["python", "/app/main.py"];

/// The access mode of the emitted claim: tasks of one run may run at once on different
/// nodes, and every task reads what upstream tasks wrote.
pub const DATA_ACCESS_MODE: &str = "ReadWriteMany";

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

/// How the target passes run-time values into the container.
pub struct EnvSpec<'a> {
    /// Target expression for the run id (`{{workflow.uid}}`).
    pub run_id: &'a str,
    /// `(parameter name, target expression)` for each parameter the task reads; becomes
    /// NB2PIPE_PARAM_<name> (the runtime parses it as JSON, else takes it as text).
    pub params: Vec<(String, String)>,
    /// Mount the data claim in the container (Argo, Tekton use their own mechanisms
    /// when `false`).
    pub mount_data: bool,
}

/// A task's container and the pod-level settings around it.
#[derive(Debug, Clone, Default)]
pub struct Pod {
    pub container: Container,
    /// Secret volumes (and the data volume when mounted).
    pub volumes: Vec<Volume>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
}

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

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    }
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// Name of the volume of the task's `i`-th secret mount.
pub fn secret_volume_name(i: usize) -> String {
    format!("nb2pipe-secret-{i}")
}

/// The plan's affinity as the k8s type; an error note when it is not one.
pub fn affinity(ctx: &mut Ctx<'_>, task: &Task) -> Option<Affinity> {
    let v = task.settings.affinity.as_ref()?;
    ctx.user_json(Some(&task.name), "affinity", v);
    match serde_json::from_value::<Affinity>(v.clone()) {
        Ok(a) => Some(a),
        Err(e) => {
            ctx.notes.push(Note {
                target: ctx.target,
                task: Some(task.name.clone()),
                error: true,
                message: format!("affinity is not a Kubernetes Affinity: {e}"),
            });
            None
        }
    }
}

/// Builds `task`'s container and pod settings.
pub fn pod(ctx: &mut Ctx<'_>, task: &Task, spec: &EnvSpec<'_>) -> Pod {
    let plan = ctx.plan;
    let s = &task.settings;
    let tn = Some(task.name.as_str());
    let mut env = vec![
        plain_env("NB2PIPE_PIPELINE", plan.pipeline.clone()),
        plain_env("NB2PIPE_TASK", task.name.clone()),
        plain_env("NB2PIPE_RUN_ID", spec.run_id.to_string()),
    ];
    let data = ctx.user(None, "data store", data_env(plan));
    env.push(plain_env("NB2PIPE_DATA", k8s_env_escape(&data)));
    let mut env_from = Vec::new();
    if let DataStore::S3 {
        endpoint,
        secret,
        region,
        ..
    } = &plan.settings.data
    {
        if let Some(e) = endpoint {
            let e = ctx.user(None, "S3 endpoint", e);
            env.push(plain_env("NB2PIPE_S3_ENDPOINT", k8s_env_escape(&e)));
        }
        if let Some(r) = region {
            let r = ctx.user(None, "S3 region", r);
            env.push(plain_env("AWS_DEFAULT_REGION", k8s_env_escape(&r)));
        }
        if let Some(sec) = secret {
            env_from.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: sec.clone(),
                    optional: None,
                }),
                ..Default::default()
            });
        }
    }
    for (name, expr) in &spec.params {
        let var = param_env_name(name);
        if !valid_env_name(&var) {
            ctx.notes.push(Note {
                target: ctx.target,
                task: Some(task.name.clone()),
                error: true,
                message: format!("parameter `{name}` cannot be an env var name in Kubernetes (ASCII letters, digits, `_`, `-`, `.`)"),
            });
        }
        env.push(plain_env(&var, expr.clone()));
    }
    for (k, v) in &s.env {
        let v = ctx.user(tn, &format!("env `{k}`"), v);
        env.push(plain_env(k, k8s_env_escape(&v)));
    }
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    for sr in &s.secrets {
        match (&sr.key, &sr.env, &sr.mount_path) {
            (_, _, Some(path)) => {
                let path = ctx.user(tn, "secret mount path", path);
                let name = secret_volume_name(volumes.len());
                volumes.push(Volume {
                    name: name.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(sr.name.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                mounts.push(VolumeMount {
                    name,
                    mount_path: path,
                    read_only: Some(true),
                    ..Default::default()
                });
            }
            (Some(key), Some(var), None) => env.push(EnvVar {
                name: var.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        key: key.clone(),
                        name: sr.name.clone(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            }),
            _ => env_from.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: sr.name.clone(),
                    optional: None,
                }),
                ..Default::default()
            }),
        }
    }
    for c in &s.config_maps {
        env_from.push(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: c.clone(),
                optional: None,
            }),
            ..Default::default()
        });
    }
    if let (
        true,
        DataStore::Volume {
            claim, mount_path, ..
        },
    ) = (spec.mount_data, &plan.settings.data)
    {
        let mount_path = ctx.user(None, "data mount path", mount_path);
        volumes.push(data_volume(claim));
        mounts.push(VolumeMount {
            name: DATA_VOLUME.to_string(),
            mount_path,
            ..Default::default()
        });
    }
    let resources = (!s.resources.is_empty()).then(|| ResourceRequirements {
        requests: quantities(&s.resources.requests),
        limits: quantities(&s.resources.limits),
        ..Default::default()
    });
    let image = ctx.user(tn, "image", &task.image.reference);
    let container = Container {
        name: "main".to_string(),
        image: Some(image),
        image_pull_policy: Some(s.image_pull_policy.clone()),
        command: Some(COMMAND.iter().map(|c| c.to_string()).collect()),
        env: Some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    let mut labels = s.labels.clone();
    labels.extend(own_labels(plan, Some(task)));
    let mut annotations = BTreeMap::new();
    for (k, v) in &s.annotations {
        let v = ctx.user(tn, &format!("annotation `{k}`"), v);
        annotations.insert(k.clone(), v);
    }
    let mut node_selector = BTreeMap::new();
    for (k, v) in &s.node_selector {
        node_selector.insert(k.clone(), ctx.user(tn, "node selector", v));
    }
    let tolerations = s
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: Some(t.key.clone()),
            operator: Some(t.operator.clone()),
            value: t
                .value
                .as_deref()
                .map(|v| ctx.user(tn, "toleration value", v)),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();
    let affinity = affinity(ctx, task);
    Pod {
        container,
        volumes,
        labels,
        annotations,
        node_selector,
        tolerations,
        affinity,
    }
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
            access_modes: Some(vec![DATA_ACCESS_MODE.to_string()]),
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
