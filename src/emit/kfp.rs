//! Kubeflow Pipelines v2: `kfp/<pipeline>.yaml`, the pipeline spec (IR YAML, schema
//! 2.1.0) and, as a second document, the Kubernetes platform spec that kfp-kubernetes
//! writes (secrets, claim mount, node selector, tolerations, affinity, pod metadata...).
//!
//! KFP substitutes its placeholders only in command and args, so the run id and the
//! parameters arrive as args of a tiny `python -c` launcher that puts them into the
//! environment and execs the task's `/app/main.py`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{Affinity, NodeSelectorRequirement};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use serde::Serialize;

use super::k8s::{self, Ctx, EnvSpec, Subst};
use super::{Bundle, EmitContext, Emitter};
use crate::plan::{DataStore, Parameter, Plan, Task};

pub struct Kfp;

/// Sets `argv[1::2]` = `argv[2::2]` in the environment, then runs the task.
pub const LAUNCHER: &str = "import os,sys;a=sys.argv[1:];os.environ.update(zip(a[::2],a[1::2]));os.execvp('python',['python','/app/main.py'])";

/// Where a Secret or ConfigMap used with every key is mounted (KFP has no envFrom).
pub const SECRET_DIR: &str = "/etc/nb2pipe/secrets";
pub const CONFIG_DIR: &str = "/etc/nb2pipe/config";

/// The output artifact (`system.Metrics`) of a `metrics` task.
pub const METRICS_ARTIFACT: &str = "metrics";
/// Where KFP's launcher reads the executor output (ExecutorOutput as JSON) from when
/// the task ends: the runtime puts the metrics into the artifact's metadata there,
/// which is what KFP shows.
pub const KFP_OUTPUT_FILE: &str = "/tmp/kfp_outputs/output_metadata.json";
/// The env var that tells the runtime [`KFP_OUTPUT_FILE`].
pub const KFP_OUTPUT_ENV: &str = "NB2PIPE_KFP_OUTPUT_FILE";

/// KFP's run id placeholder (the pipeline job's UUID).
pub const RUN_ID_EXPR: &str = "{{$.pipeline_job_uuid}}";

/// The placeholder KFP's launcher replaces with parameter `name`'s value.
pub fn param_expr(name: &str) -> String {
    format!("{{{{$.inputs.parameters['{name}']}}}}")
}

/// The placeholder of the local path of a `metrics` task's artifact.
pub fn metrics_path_expr() -> String {
    format!("{{{{$.outputs.artifacts['{METRICS_ARTIFACT}'].path}}}}")
}

pub fn component(k8s_name: &str) -> String {
    k8s::fit(&format!("comp-{k8s_name}"), k8s::NAME_MAX)
}

pub fn executor(k8s_name: &str) -> String {
    k8s::fit(&format!("exec-{k8s_name}"), k8s::NAME_MAX)
}

/// Integers KFP holds exactly (its numbers are doubles).
const EXACT_INT: i64 = 1 << 53;

/// A value that passes the kubelet unchanged: KFP hands the inputs to its launcher in
/// the pod's args (`--executor_input`), where the kubelet expands `$(VAR)` and `$$`,
/// so every `$` in a string is doubled.
fn kubelet_escape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(k8s::k8s_env_escape(s)),
        Value::Array(a) => Value::Array(a.iter().map(kubelet_escape).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k8s::k8s_env_escape(k), kubelet_escape(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineSpec {
    components: BTreeMap<String, Component>,
    deployment_spec: DeploymentSpec,
    pipeline_info: PipelineInfo,
    root: Root,
    schema_version: &'static str,
    sdk_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    executor_label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_definitions: Option<InputDefinitions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_definitions: Option<OutputDefinitions>,
}

#[derive(Serialize)]
struct OutputDefinitions {
    artifacts: BTreeMap<&'static str, ArtifactDef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactDef {
    artifact_type: ArtifactType,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactType {
    schema_title: &'static str,
    schema_version: &'static str,
}

#[derive(Serialize)]
struct InputDefinitions {
    parameters: BTreeMap<String, ParamDef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParamDef {
    parameter_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_optional: Option<bool>,
}

#[derive(Serialize)]
struct DeploymentSpec {
    executors: BTreeMap<String, Executor>,
}

#[derive(Serialize)]
struct Executor {
    container: ContainerSpec,
}

#[derive(Serialize)]
struct ContainerSpec {
    image: String,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
}

#[derive(Serialize)]
struct EnvVar {
    name: String,
    value: String,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_cpu_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_cpu_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_memory_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_memory_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accelerator: Option<Accelerator>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accelerator {
    resource_type: String,
    resource_count: String,
}

#[derive(Serialize)]
struct PipelineInfo {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Root {
    dag: Dag,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_definitions: Option<InputDefinitions>,
}

#[derive(Serialize)]
struct Dag {
    tasks: BTreeMap<String, DagTask>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DagTask {
    caching_options: CachingOptions,
    component_ref: NameRef,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependent_tasks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<TaskInputs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_policy: Option<RetryPolicy>,
    task_info: NameRef,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CachingOptions {
    enable_cache: bool,
}

#[derive(Serialize)]
struct NameRef {
    name: String,
}

#[derive(Serialize)]
struct TaskInputs {
    parameters: BTreeMap<String, InputRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InputRef {
    component_input_parameter: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryPolicy {
    max_retry_count: u32,
    backoff_duration: String,
    backoff_factor: f64,
    backoff_max_duration: String,
}

// ---- platform spec (kfp-kubernetes' KubernetesExecutorConfig, proto3 JSON names)

#[derive(Serialize)]
struct PlatformSpec {
    platforms: BTreeMap<&'static str, SinglePlatform>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SinglePlatform {
    deployment_spec: PlatformDeployment,
}

#[derive(Serialize)]
struct PlatformDeployment {
    executors: BTreeMap<String, ExecutorConfig>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExecutorConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secret_as_env: Vec<SecretAsEnv>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secret_as_volume: Vec<SecretAsVolume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    config_map_as_volume: Vec<ConfigMapAsVolume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pvc_mount: Vec<PvcMount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_selector: Option<Labels>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tolerations: Vec<KfpToleration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node_affinity: Vec<NodeAffinityTerm>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pod_affinity: Vec<PodAffinityTerm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_metadata: Option<PodMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_pull_secret: Vec<ImagePullSecret>,
    image_pull_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_deadline_seconds: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<KfpSecurityContext>,
}

/// kfp-kubernetes' SecurityContext: the container's user, group and non-root flag
/// (the rest of the restricted profile is set by KFP's backend, fsGroup not at all).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KfpSecurityContext {
    run_as_user: String,
    run_as_group: String,
    run_as_non_root: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConstant {
    runtime_value: Constant,
}

#[derive(Serialize)]
struct Constant {
    constant: String,
}

fn constant(s: &str) -> RuntimeConstant {
    RuntimeConstant {
        runtime_value: Constant {
            constant: s.to_string(),
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretAsEnv {
    secret_name: String,
    secret_name_parameter: RuntimeConstant,
    key_to_env: Vec<KeyToEnv>,
    optional: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyToEnv {
    secret_key: String,
    env_var: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretAsVolume {
    secret_name: String,
    secret_name_parameter: RuntimeConstant,
    mount_path: String,
    optional: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMapAsVolume {
    config_map_name: String,
    config_map_name_parameter: RuntimeConstant,
    mount_path: String,
    optional: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PvcMount {
    constant: String,
    pvc_name_parameter: RuntimeConstant,
    mount_path: String,
}

#[derive(Serialize)]
struct Labels {
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KfpToleration {
    key: String,
    operator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toleration_seconds: Option<String>,
}

#[derive(Serialize)]
struct SelectorRequirement {
    key: String,
    operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeAffinityTerm {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_expressions: Vec<SelectorRequirement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_fields: Vec<SelectorRequirement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<i32>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodAffinityTerm {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_pod_expressions: Vec<SelectorRequirement>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    match_pod_labels: BTreeMap<String, String>,
    topology_key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_namespace_expressions: Vec<SelectorRequirement>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    match_namespace_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<i32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    anti: bool,
}

#[derive(Serialize)]
struct PodMetadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImagePullSecret {
    secret_name: String,
    secret_name_parameter: RuntimeConstant,
}

impl PipelineSpec {
    /// What KFP rejects at compile or run time: a dag task whose component, executor or
    /// dependency does not exist.
    fn validate(&self) -> Result<()> {
        for (name, t) in &self.root.dag.tasks {
            let Some(comp) = self.components.get(&t.component_ref.name) else {
                bail!("KFP task `{name}` refers to a missing component")
            };
            if !self
                .deployment_spec
                .executors
                .contains_key(&comp.executor_label)
            {
                bail!(
                    "KFP component `{}` refers to a missing executor",
                    t.component_ref.name
                );
            }
            if let Some(d) = t
                .dependent_tasks
                .iter()
                .find(|d| !self.root.dag.tasks.contains_key(*d))
            {
                bail!("KFP task `{name}` depends on unknown task `{d}`");
            }
        }
        Ok(())
    }
}

impl Emitter for Kfp {
    fn name(&self) -> &'static str {
        "kfp"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let mut c = Ctx::new(ctx.plan, "kfp", Subst::None);
        let text = documents(&mut c)?;
        out.notes.append(&mut c.notes);
        out.add(format!("kfp/{}.yaml", ctx.plan.pipeline), text);
        Ok(())
    }
}

/// A parameter's default as the pipeline spec writes it (every `$` doubled).
pub fn default_as_written(p: &Parameter) -> serde_json::Value {
    param_def(p).default_value.unwrap_or_default()
}

/// KFP's parameter type and the default as KFP holds it, escaped for the kubelet
/// (`null` travels as the JSON text "null" in a STRING, which the runtime parses back;
/// an integer beyond ±2^53, which a double cannot hold, as its text in a STRING).
fn param_def(p: &Parameter) -> ParamDef {
    let (ty, default) = match p.ty.as_str() {
        "int" if p.default.as_i64().is_some_and(|i| i.abs() <= EXACT_INT) => {
            ("NUMBER_INTEGER", p.default.clone())
        }
        "int" => ("STRING", serde_json::Value::String(k8s::param_text(p))),
        "float" => ("NUMBER_DOUBLE", p.default.clone()),
        "bool" => ("BOOLEAN", p.default.clone()),
        "list" => ("LIST", p.default.clone()),
        "dict" => ("STRUCT", p.default.clone()),
        "str" => ("STRING", p.default.clone()),
        _ => ("STRING", serde_json::Value::String(k8s::param_text(p))),
    };
    ParamDef {
        parameter_type: ty,
        default_value: Some(kubelet_escape(&default)),
        is_optional: Some(true),
    }
}

fn reqs(v: &[LabelSelectorRequirement]) -> Vec<SelectorRequirement> {
    v.iter()
        .map(|r| SelectorRequirement {
            key: r.key.clone(),
            operator: r.operator.clone(),
            values: r.values.clone().unwrap_or_default(),
        })
        .collect()
}

fn node_reqs(v: &Option<Vec<NodeSelectorRequirement>>) -> Vec<SelectorRequirement> {
    v.iter()
        .flatten()
        .map(|r| SelectorRequirement {
            key: r.key.clone(),
            operator: r.operator.clone(),
            values: r.values.clone().unwrap_or_default(),
        })
        .collect()
}

fn pod_term(
    c: &mut Ctx<'_>,
    t: &Task,
    term: &k8s_openapi::api::core::v1::PodAffinityTerm,
    weight: Option<i32>,
    anti: bool,
) -> PodAffinityTerm {
    if term.match_label_keys.is_some() || term.mismatch_label_keys.is_some() {
        c.cannot(
            Some(&t.name),
            "affinity: matchLabelKeys / mismatchLabelKeys have no KFP form and are left out",
        );
    }
    let ls = term.label_selector.clone().unwrap_or_default();
    let ns = term.namespace_selector.clone().unwrap_or_default();
    PodAffinityTerm {
        match_pod_expressions: reqs(ls.match_expressions.as_deref().unwrap_or_default()),
        match_pod_labels: ls.match_labels.unwrap_or_default(),
        topology_key: term.topology_key.clone(),
        namespaces: term.namespaces.clone().unwrap_or_default(),
        match_namespace_expressions: reqs(ns.match_expressions.as_deref().unwrap_or_default()),
        match_namespace_labels: ns.match_labels.unwrap_or_default(),
        weight,
        anti,
    }
}

/// The k8s Affinity as KFP's terms: a term with a weight is preferred, without one required.
fn affinity_terms(
    c: &mut Ctx<'_>,
    t: &Task,
    a: &Affinity,
) -> (Vec<NodeAffinityTerm>, Vec<PodAffinityTerm>) {
    let mut nodes = Vec::new();
    if let Some(na) = &a.node_affinity {
        for term in na
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flat_map(|r| &r.node_selector_terms)
        {
            nodes.push(NodeAffinityTerm {
                match_expressions: node_reqs(&term.match_expressions),
                match_fields: node_reqs(&term.match_fields),
                weight: None,
            });
        }
        for p in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            nodes.push(NodeAffinityTerm {
                match_expressions: node_reqs(&p.preference.match_expressions),
                match_fields: node_reqs(&p.preference.match_fields),
                weight: Some(p.weight),
            });
        }
    }
    let mut pods = Vec::new();
    for (aff, anti) in [
        (
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
            false,
        ),
        (
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
            true,
        ),
    ] {
        let Some((req, pref)) = aff else { continue };
        for term in req.iter().flatten() {
            pods.push(pod_term(c, t, term, None, anti));
        }
        for w in pref.iter().flatten() {
            pods.push(pod_term(c, t, &w.pod_affinity_term, Some(w.weight), anti));
        }
    }
    (nodes, pods)
}

/// The typed pod the executor's container and platform spec are made from (the run
/// id and parameters arrive as the launcher's args, the claim through the platform spec).
fn base_pod(c: &mut Ctx<'_>, t: &Task) -> k8s::Pod {
    let spec = EnvSpec {
        run_id: RUN_ID_EXPR,
        params: Vec::new(),
        mount_data: false,
        ..Default::default()
    };
    k8s::pod(c, t, &spec)
}

/// The executor's container as the pipeline spec holds it.
fn container_spec(c: &mut Ctx<'_>, t: &Task, pod: &k8s::Pod) -> ContainerSpec {
    let ts = &t.settings;
    let tn = Some(t.name.as_str());
    let mut args = vec!["NB2PIPE_RUN_ID".to_string(), RUN_ID_EXPR.to_string()];
    for p in &t.parameters {
        args.push(k8s::param_env_name(p));
        args.push(param_expr(p));
    }
    if t.metrics {
        args.push(k8s::METRICS_ENV.to_string());
        args.push(metrics_path_expr());
        args.push(KFP_OUTPUT_ENV.to_string());
        args.push(KFP_OUTPUT_FILE.to_string());
    }
    // Secret keys arrive through the platform spec, not the container's env.
    let env: Vec<EnvVar> = pod
        .container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name != "NB2PIPE_RUN_ID")
        .filter_map(|e| {
            Some(EnvVar {
                name: e.name.clone(),
                value: e.value.clone()?,
            })
        })
        .collect();
    let mut res = Resources::default();
    let r = &ts.resources;
    res.resource_cpu_request = r.requests.get("cpu").cloned();
    res.resource_cpu_limit = r.limits.get("cpu").cloned();
    res.resource_memory_request = r.requests.get("memory").cloned();
    res.resource_memory_limit = r.limits.get("memory").cloned();
    let mut others: BTreeMap<&String, &String> = r
        .requests
        .iter()
        .chain(r.limits.iter())
        .filter(|(k, _)| k.as_str() != "cpu" && k.as_str() != "memory")
        .collect();
    if let Some(q) = others.remove(&"ephemeral-storage".to_string()) {
        c.cannot(tn, format!("ephemeral-storage {q}: KFP's resource spec has no such field; the task runs without it"));
    }
    let accel: Vec<(&String, &String)> = others.into_iter().collect();
    if let Some((k, v)) = accel.first() {
        res.accelerator = Some(Accelerator {
            resource_type: (*k).clone(),
            resource_count: r.limits.get(*k).unwrap_or(v).clone(),
        });
    }
    for (k, _) in accel.iter().skip(1) {
        c.cannot(
            tn,
            format!(
                "resource `{k}`: KFP takes one accelerator type per task; only `{}` is set",
                accel[0].0
            ),
        );
    }
    let has_res = res.resource_cpu_request.is_some()
        || res.resource_cpu_limit.is_some()
        || res.resource_memory_request.is_some()
        || res.resource_memory_limit.is_some()
        || res.accelerator.is_some();
    ContainerSpec {
        image: pod.container.image.clone().unwrap_or_default(),
        command: vec!["python".into(), "-c".into(), LAUNCHER.into()],
        args,
        env,
        resources: has_res.then_some(res),
    }
}

/// What kfp-kubernetes writes for the executor in the platform spec.
fn executor_config(c: &mut Ctx<'_>, t: &Task, pod: &k8s::Pod) -> ExecutorConfig {
    let s = &c.plan.settings;
    let ts = &t.settings;
    let tn = Some(t.name.as_str());
    let mut cfg = ExecutorConfig {
        image_pull_policy: ts.image_pull_policy.clone(),
        ..ExecutorConfig::default()
    };
    let mut by_secret: BTreeMap<&str, Vec<KeyToEnv>> = BTreeMap::new();
    for sr in &ts.secrets {
        match (&sr.key, &sr.env, &sr.mount_path) {
            (_, _, Some(path)) => cfg.secret_as_volume.push(SecretAsVolume {
                secret_name: sr.name.clone(),
                secret_name_parameter: constant(&sr.name),
                mount_path: path.clone(),
                optional: false,
            }),
            (Some(key), Some(env), None) => by_secret.entry(&sr.name).or_default().push(KeyToEnv {
                secret_key: key.clone(),
                env_var: env.clone(),
            }),
            _ => {
                let path = format!("{SECRET_DIR}/{}", sr.name);
                c.cannot(tn, format!("secret `{}` with every key: KFP has no envFrom; the Secret is mounted as files at {path}", sr.name));
                cfg.secret_as_volume.push(SecretAsVolume {
                    secret_name: sr.name.clone(),
                    secret_name_parameter: constant(&sr.name),
                    mount_path: path,
                    optional: false,
                });
            }
        }
    }
    if let DataStore::S3 {
        secret: Some(sec), ..
    } = &s.data
    {
        let e = by_secret.entry(sec).or_default();
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            e.push(KeyToEnv {
                secret_key: k.into(),
                env_var: k.into(),
            });
        }
    }
    for (name, keys) in by_secret {
        cfg.secret_as_env.push(SecretAsEnv {
            secret_name: name.into(),
            secret_name_parameter: constant(name),
            key_to_env: keys,
            optional: false,
        });
    }
    for cm in &ts.config_maps {
        let path = format!("{CONFIG_DIR}/{cm}");
        c.cannot(tn, format!("config map `{cm}`: KFP has no envFrom; the ConfigMap is mounted as files at {path}"));
        cfg.config_map_as_volume.push(ConfigMapAsVolume {
            config_map_name: cm.clone(),
            config_map_name_parameter: constant(cm),
            mount_path: path,
            optional: false,
        });
    }
    if let DataStore::Volume {
        claim, mount_path, ..
    } = &s.data
    {
        cfg.pvc_mount.push(PvcMount {
            constant: claim.clone(),
            pvc_name_parameter: constant(claim),
            mount_path: mount_path.clone(),
        });
    }
    if !pod.node_selector.is_empty() {
        cfg.node_selector = Some(Labels {
            labels: pod.node_selector.clone(),
        });
    }
    cfg.tolerations = pod
        .tolerations
        .iter()
        .map(|x| KfpToleration {
            key: x.key.clone().unwrap_or_default(),
            operator: x.operator.clone().unwrap_or_default(),
            value: x.value.clone(),
            effect: x.effect.clone(),
            toleration_seconds: x.toleration_seconds.map(|n| n.to_string()),
        })
        .collect();
    if let Some(a) = &pod.affinity {
        let (n, p) = affinity_terms(c, t, a);
        cfg.node_affinity = n;
        cfg.pod_affinity = p;
    }
    cfg.pod_metadata = Some(PodMetadata {
        labels: pod.labels.clone(),
        annotations: pod.annotations.clone(),
    });
    cfg.image_pull_secret = s
        .image_pull_secrets
        .iter()
        .map(|n| ImagePullSecret {
            secret_name: n.clone(),
            secret_name_parameter: constant(n),
        })
        .collect();
    cfg.active_deadline_seconds = ts.timeout_seconds.map(|x| x.to_string());
    let sc = &pod.security_context;
    cfg.security_context = Some(KfpSecurityContext {
        run_as_user: sc
            .run_as_user
            .unwrap_or(ts.security.run_as_user)
            .to_string(),
        run_as_group: sc
            .run_as_group
            .unwrap_or(ts.security.run_as_group)
            .to_string(),
        run_as_non_root: sc.run_as_non_root.unwrap_or(true),
    });
    if ts.security.read_only_root_filesystem {
        c.cannot(tn, "read-only root file system: KFP's platform spec cannot set it; the task runs with a writable root file system");
    }
    if let (Some(g), DataStore::Volume { claim, .. }) = (sc.fs_group, &s.data) {
        c.cannot(None, format!("fsGroup {g}: KFP's platform spec cannot set the pod's securityContext; the claim `{claim}` must be writable by user {} / group {} (or the cluster must set fsGroup)", ts.security.run_as_user, ts.security.run_as_group));
    }
    if let Some(p) = &ts.pool {
        c.cannot(
            tn,
            format!("pool `{p}` is an Airflow concept; KFP runs the task without it"),
        );
    }
    cfg
}

fn documents(c: &mut Ctx<'_>) -> Result<String> {
    let plan: &Plan = c.plan;
    let s = &plan.settings;
    let defs: BTreeMap<String, ParamDef> = plan
        .parameters
        .iter()
        .map(|p| (p.name.clone(), param_def(p)))
        .collect();
    let mut components = BTreeMap::new();
    let mut executors = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    let mut platform = BTreeMap::new();
    for t in &plan.tasks {
        let ts = &t.settings;
        let tn = Some(t.name.as_str());
        let pod = base_pod(c, t);
        let container = container_spec(c, t, &pod);
        let comp = c.fit(
            tn,
            "component name",
            &format!("comp-{}", t.k8s_name),
            k8s::NAME_MAX,
        );
        let exec = c.fit(
            tn,
            "executor name",
            &format!("exec-{}", t.k8s_name),
            k8s::NAME_MAX,
        );
        executors.insert(exec.clone(), Executor { container });
        let inputs: BTreeMap<String, ParamDef> = t
            .parameters
            .iter()
            .filter_map(|p| {
                defs.get(p).map(|d| {
                    (
                        p.clone(),
                        ParamDef {
                            parameter_type: d.parameter_type,
                            default_value: None,
                            is_optional: None,
                        },
                    )
                })
            })
            .collect();
        components.insert(
            comp.clone(),
            Component {
                executor_label: exec.clone(),
                input_definitions: (!inputs.is_empty())
                    .then_some(InputDefinitions { parameters: inputs }),
                output_definitions: t.metrics.then(|| OutputDefinitions {
                    artifacts: [(
                        METRICS_ARTIFACT,
                        ArtifactDef {
                            artifact_type: ArtifactType {
                                schema_title: "system.Metrics",
                                schema_version: "0.0.1",
                            },
                        },
                    )]
                    .into(),
                }),
            },
        );
        tasks.insert(
            t.k8s_name.clone(),
            DagTask {
                // KFP's cache keys on image, args and parameters, not on the data in
                // the store: a cached task would skip writing what its consumers read.
                caching_options: CachingOptions {
                    enable_cache: false,
                },
                component_ref: NameRef { name: comp },
                dependent_tasks: plan
                    .upstream(&t.name)
                    .iter()
                    .filter_map(|u| plan.task(u))
                    .map(|u| u.k8s_name.clone())
                    .collect(),
                inputs: (!t.parameters.is_empty()).then(|| TaskInputs {
                    parameters: t
                        .parameters
                        .iter()
                        .map(|p| {
                            (
                                p.clone(),
                                InputRef {
                                    component_input_parameter: p.clone(),
                                },
                            )
                        })
                        .collect(),
                }),
                retry_policy: (ts.retries > 0).then(|| RetryPolicy {
                    max_retry_count: ts.retries,
                    backoff_duration: format!("{}s", ts.retry_delay_seconds),
                    backoff_factor: 1.0,
                    backoff_max_duration: format!("{}s", ts.retry_delay_seconds.max(3600)),
                }),
                task_info: NameRef {
                    name: t.name.clone(),
                },
            },
        );

        let cfg = executor_config(c, t, &pod);
        platform.insert(exec, cfg);
    }
    c.scheduling_dropped(false);
    if let Some(sa) = &s.service_account {
        c.cannot(None, format!("service account `{sa}`: KFP sets it per run (`kfp.Client().create_run_from_pipeline_package(..., service_account=...)`), not in the pipeline spec"));
    }
    // `@once` is what a run is.
    if let Some(sch) = s.schedule.as_deref().filter(|x| *x != "@once") {
        let how = match k8s::Schedule::parse(sch).map(|x| x.kfp()) {
            Ok(Ok(Some(e))) => format!(
                "; create one with cron `{}` (6 fields, seconds first){}",
                e.schedule,
                e.zone.map(|z| format!(" in zone {z}")).unwrap_or_default()
            ),
            Ok(Err(r)) => format!("; {r}"),
            _ => String::new(),
        };
        c.cannot(None, format!("schedule `{sch}`: KFP schedules are recurring runs created through its API, not part of the pipeline spec{how}"));
    }
    let spec = PipelineSpec {
        components,
        deployment_spec: DeploymentSpec { executors },
        pipeline_info: PipelineInfo {
            name: k8s::pipeline_k8s(plan),
            description: s.description.clone(),
        },
        root: Root {
            dag: Dag { tasks },
            input_definitions: (!defs.is_empty()).then_some(InputDefinitions { parameters: defs }),
        },
        schema_version: "2.1.0",
        sdk_version: format!("nb2pipe-{}", env!("CARGO_PKG_VERSION")),
    };
    spec.validate()?;
    let mut platforms = BTreeMap::new();
    platforms.insert(
        "kubernetes",
        SinglePlatform {
            deployment_spec: PlatformDeployment {
                executors: platform,
            },
        },
    );
    let header = format!("# PIPELINE DEFINITION\n# Name: {}\n# Generated by nb2pipe from the notebook; do not edit.\n", k8s::pipeline_k8s(plan));
    Ok(header + &k8s::yaml_docs(&[k8s::yaml(&spec)?, k8s::yaml(&PlatformSpec { platforms })?]))
}

/// The pod KFP's backend creates for the task's executor (what the rehearsal runs):
/// the executor's container from the pipeline spec and what the platform spec adds,
/// made from the same values the documents are written from. KFP's driver and
/// launcher (init containers, the launcher wrapping the command) are not part of it.
pub fn pod_for(c: &mut Ctx<'_>, t: &Task) -> k8s::Pod {
    let base = base_pod(c, t);
    let container = container_spec(c, t, &base);
    let cfg = executor_config(c, t, &base);
    backend_pod(&container, &cfg)
}

/// What KFP's backend makes of an executor's container and its platform config.
fn backend_pod(cs: &ContainerSpec, cfg: &ExecutorConfig) -> k8s::Pod {
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, Container, EnvVar as K8sEnv, EnvVarSource,
        PersistentVolumeClaimVolumeSource, ResourceRequirements, SecretKeySelector,
        SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    let mut env: Vec<K8sEnv> = cs
        .env
        .iter()
        .map(|e| K8sEnv {
            name: e.name.clone(),
            value: Some(e.value.clone()),
            value_from: None,
        })
        .collect();
    for s in &cfg.secret_as_env {
        for k in &s.key_to_env {
            env.push(K8sEnv {
                name: k.env_var.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        key: k.secret_key.clone(),
                        name: s.secret_name.clone(),
                        optional: Some(s.optional),
                    }),
                    ..Default::default()
                }),
            });
        }
    }
    // The driver names each volume after its claim, Secret or ConfigMap.
    let mut volumes: Vec<Volume> = Vec::new();
    let mut mounts = Vec::new();
    let mut add = |v: Volume, path: &str, read_only: Option<bool>| {
        let name = v.name.clone();
        if !volumes.iter().any(|x| x.name == name) {
            volumes.push(v);
        }
        mounts.push(VolumeMount {
            name,
            mount_path: path.to_string(),
            read_only,
            ..Default::default()
        });
    };
    for m in &cfg.pvc_mount {
        add(
            Volume {
                name: m.constant.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: m.constant.clone(),
                    read_only: None,
                }),
                ..Default::default()
            },
            &m.mount_path,
            None,
        );
    }
    for s in &cfg.secret_as_volume {
        add(
            Volume {
                name: s.secret_name.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(s.secret_name.clone()),
                    optional: Some(s.optional),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &s.mount_path,
            Some(true),
        );
    }
    for m in &cfg.config_map_as_volume {
        add(
            Volume {
                name: m.config_map_name.clone(),
                config_map: Some(ConfigMapVolumeSource {
                    name: m.config_map_name.clone(),
                    optional: Some(m.optional),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &m.mount_path,
            Some(true),
        );
    }
    let resources = cs.resources.as_ref().map(|r| {
        let q = |pairs: Vec<(&str, &Option<String>)>| {
            let m: BTreeMap<String, Quantity> = pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), Quantity(v.clone()?))))
                .collect();
            m
        };
        let requests = q(vec![
            ("cpu", &r.resource_cpu_request),
            ("memory", &r.resource_memory_request),
        ]);
        let mut limits = q(vec![
            ("cpu", &r.resource_cpu_limit),
            ("memory", &r.resource_memory_limit),
        ]);
        if let Some(a) = &r.accelerator {
            limits.insert(a.resource_type.clone(), Quantity(a.resource_count.clone()));
        }
        ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..Default::default()
        }
    });
    // Only what kfp-kubernetes' SecurityContext holds: no fsGroup, no pod-level context.
    let security_context = cfg.security_context.as_ref().map(|s| SecurityContext {
        run_as_user: s.run_as_user.parse().ok(),
        run_as_group: s.run_as_group.parse().ok(),
        run_as_non_root: Some(s.run_as_non_root),
        ..Default::default()
    });
    let container = Container {
        name: "main".into(),
        image: Some(cs.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: Some(cs.command.clone()),
        args: Some(cs.args.clone()),
        env: Some(env),
        resources,
        security_context,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    let (labels, annotations) = cfg
        .pod_metadata
        .as_ref()
        .map(|m| (m.labels.clone(), m.annotations.clone()))
        .unwrap_or_default();
    k8s::Pod {
        container,
        volumes,
        labels,
        annotations,
        node_selector: cfg
            .node_selector
            .as_ref()
            .map(|l| l.labels.clone())
            .unwrap_or_default(),
        tolerations: cfg
            .tolerations
            .iter()
            .map(|x| Toleration {
                key: Some(x.key.clone()),
                operator: Some(x.operator.clone()),
                value: x.value.clone(),
                effect: x.effect.clone(),
                toleration_seconds: x.toleration_seconds.as_ref().and_then(|s| s.parse().ok()),
            })
            .collect(),
        affinity: affinity_of(&cfg.node_affinity, &cfg.pod_affinity),
        security_context: Default::default(),
    }
}

/// KFP's affinity terms as the k8s Affinity the driver builds (a weight: preferred).
fn affinity_of(nodes: &[NodeAffinityTerm], pods: &[PodAffinityTerm]) -> Option<Affinity> {
    use k8s_openapi::api::core::v1::{
        NodeAffinity, NodeSelector, NodeSelectorTerm, PodAffinity, PodAntiAffinity,
        PreferredSchedulingTerm, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    if nodes.is_empty() && pods.is_empty() {
        return None;
    }
    let node_req = |v: &[SelectorRequirement]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|r| NodeSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        })
    };
    let label_req = |v: &[SelectorRequirement]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        })
    };
    let selector = |e: &[SelectorRequirement], l: &BTreeMap<String, String>| {
        (!e.is_empty() || !l.is_empty()).then(|| LabelSelector {
            match_expressions: label_req(e),
            match_labels: (!l.is_empty()).then(|| l.clone()),
        })
    };
    let mut required = Vec::new();
    let mut preferred = Vec::new();
    for n in nodes {
        let term = NodeSelectorTerm {
            match_expressions: node_req(&n.match_expressions),
            match_fields: node_req(&n.match_fields),
        };
        match n.weight {
            Some(weight) => preferred.push(PreferredSchedulingTerm {
                preference: term,
                weight,
            }),
            None => required.push(term),
        }
    }
    let node_affinity = (!required.is_empty() || !preferred.is_empty()).then(|| NodeAffinity {
        required_during_scheduling_ignored_during_execution: (!required.is_empty()).then_some(
            NodeSelector {
                node_selector_terms: required,
            },
        ),
        preferred_during_scheduling_ignored_during_execution: (!preferred.is_empty())
            .then_some(preferred),
    });
    let mut terms: [(Vec<_>, Vec<_>); 2] = Default::default();
    for p in pods {
        let term = k8s_openapi::api::core::v1::PodAffinityTerm {
            label_selector: selector(&p.match_pod_expressions, &p.match_pod_labels),
            namespace_selector: selector(&p.match_namespace_expressions, &p.match_namespace_labels),
            namespaces: (!p.namespaces.is_empty()).then(|| p.namespaces.clone()),
            topology_key: p.topology_key.clone(),
            ..Default::default()
        };
        let slot = &mut terms[usize::from(p.anti)];
        match p.weight {
            Some(weight) => slot.1.push(WeightedPodAffinityTerm {
                pod_affinity_term: term,
                weight,
            }),
            None => slot.0.push(term),
        }
    }
    let [(req, pref), (anti_req, anti_pref)] = terms;
    fn some<T>(v: Vec<T>) -> Option<Vec<T>> {
        (!v.is_empty()).then_some(v)
    }
    let pod_affinity = (!req.is_empty() || !pref.is_empty()).then(|| PodAffinity {
        required_during_scheduling_ignored_during_execution: some(req),
        preferred_during_scheduling_ignored_during_execution: some(pref),
    });
    let pod_anti_affinity =
        (!anti_req.is_empty() || !anti_pref.is_empty()).then(|| PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: some(anti_req),
            preferred_during_scheduling_ignored_during_execution: some(anti_pref),
        });
    Some(Affinity {
        node_affinity,
        pod_affinity,
        pod_anti_affinity,
    })
}
