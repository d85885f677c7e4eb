//! The pod each task gets, decided once from the plan as k8s-openapi values and read by
//! every emitter and by the cluster rehearsal (`nb2pipe run --docker --target T`): the
//! container (image, command, env, secrets, config maps, resources, data store, working
//! directory), its volumes, scheduling, and the Pod Security "restricted"
//! securityContext ([`security`]). Targets differ only in what they pass in
//! [`EnvSpec`]: their expressions for the run id and the parameters.
//!
//! User strings pass through [`Ctx::user`] (refused when the target would substitute
//! inside them) and env values also through [`k8s_env_escape`] (Kubernetes expands
//! `$(VAR)` in env values; `$$` is its escape).

pub mod security;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapEnvSource, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, PodSecurityContext, ResourceRequirements, SecretEnvSource, SecretKeySelector,
    SecretVolumeSource, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::emit::k8s::{
    data_env, data_volume, k8s_env_escape, own_labels, param_env_name, secret_volume_name,
    valid_env_name, Ctx, COMMAND, DATA_VOLUME,
};
use crate::emit::Note;
use crate::plan::{DataStore, Task};

/// How the target passes run-time values into the container.
#[derive(Default)]
pub struct EnvSpec<'a> {
    /// Target expression for the run id (`{{workflow.uid}}`).
    pub run_id: &'a str,
    /// `(parameter name, target expression)` for each parameter the task reads; becomes
    /// NB2PIPE_PARAM_<name> (the runtime parses it as JSON, else takes it as text).
    pub params: Vec<(String, String)>,
    /// Mount the data claim in the container (Argo, Tekton use their own mechanisms
    /// when `false`).
    pub mount_data: bool,
    /// The container's name (Airflow's pod operator always names it `base`; `main`
    /// when empty).
    pub container_name: &'a str,
    /// Extra plain env vars the target sets, after nb2pipe's own (Airflow passes
    /// every parameter at once in NB2PIPE_PARAMS).
    pub extra_env: Vec<(String, String)>,
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
    /// Pod-level securityContext (Pod Security "restricted" by default).
    pub security_context: PodSecurityContext,
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

/// The task's static cache key, for the runtime (docs/running.md, "Caching").
pub const CACHE_KEY_ENV: &str = "NB2PIPE_CACHE_KEY";
/// `on`, `write` or `off`: whether the runtime reads and writes the cache.
pub const CACHE_MODE_ENV: &str = "NB2PIPE_CACHE";

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
    // The runtime finishes the key and skips the task when the store has its outputs.
    if let Some(key) = task.cache.key.as_ref().filter(|_| task.cache.enabled) {
        env.push(plain_env(CACHE_KEY_ENV, key.clone()));
    }
    let data = ctx.user(None, "data store", data_env(plan));
    env.push(plain_env("NB2PIPE_DATA", k8s_env_escape(&data)));
    // Tasks of a run share one working directory on the store (a pod's own is /app).
    env.push(plain_env(
        crate::build::engine::WORKDIR_ENV,
        crate::build::engine::WORKDIR_STORE.to_string(),
    ));
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
    if let Some(args) = crate::emit::spark::pod_submit_args(ctx, task) {
        let args = ctx.user(tn, "Spark settings", &args);
        env.push(plain_env(
            crate::emit::spark::SUBMIT_ARGS_ENV,
            k8s_env_escape(&args),
        ));
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
    // A read-only root file system still needs a writable HOME and /tmp.
    if s.security.read_only_root_filesystem {
        for (name, path) in [
            ("nb2pipe-home", security::TASK_HOME),
            ("nb2pipe-tmp", "/tmp"),
        ] {
            volumes.push(Volume {
                name: name.to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: name.to_string(),
                mount_path: path.to_string(),
                ..Default::default()
            });
        }
    }
    for (k, v) in &spec.extra_env {
        env.push(plain_env(k, v.clone()));
    }
    let resources = (!s.resources.is_empty()).then(|| ResourceRequirements {
        requests: quantities(&s.resources.requests),
        limits: quantities(&s.resources.limits),
        ..Default::default()
    });
    let image = ctx.user(tn, "image", &task.image.reference);
    let container = Container {
        name: if spec.container_name.is_empty() {
            "main"
        } else {
            spec.container_name
        }
        .to_string(),
        security_context: Some(security::container_context(&s.security)),
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
        security_context: security::pod_context(&s.security),
    }
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

impl Pod {
    /// The pod as Kubernetes would create it for the task (what the rehearsal runs).
    pub fn to_k8s(&self, plan: &crate::plan::Plan) -> k8s_openapi::api::core::v1::Pod {
        use k8s_openapi::api::core::v1::PodSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        k8s_openapi::api::core::v1::Pod {
            metadata: ObjectMeta {
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
                namespace: Some(plan.settings.namespace.clone()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![self.container.clone()],
                volumes: (!self.volumes.is_empty()).then(|| self.volumes.clone()),
                node_selector: (!self.node_selector.is_empty()).then(|| self.node_selector.clone()),
                tolerations: (!self.tolerations.is_empty()).then(|| self.tolerations.clone()),
                affinity: self.affinity.clone(),
                security_context: Some(self.security_context.clone()),
                service_account_name: plan.settings.service_account.clone(),
                image_pull_secrets: crate::emit::k8s::image_pull_secrets(plan),
                restart_policy: Some("Never".to_string()),
                ..Default::default()
            }),
            status: None,
        }
    }
}
