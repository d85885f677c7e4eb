//! The Argo, Tekton and KFP targets against their real validators (tests/validate/*.py
//! in the `validate` and `kfp` venvs), for every fixture notebook: the task and edge
//! sets equal plan.json's, and every setting of the plan arrives where the target
//! puts it. The settings × targets table in docs/settings-matrix.md is rendered from
//! what these checks observe (NB2PIPE_UPDATE_DOCS=1 rewrites it).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const TARGETS: [&str; 4] = ["argo", "tekton", "kfp", "job"];

/// Fixture × target pairs that must be refused with NB301: the fixture holds values
/// the target would substitute in (Argo's `{{...}}`), see docs/targets.md.
const UNSAFE: &[(&str, &str)] = &[("injection", "argo")];

/// Settings a target cannot express: (setting, target, what nb2pipe does). The test
/// fails when one of these does arrive (stale), or when another one does not.
const LIMITS: &[(&str, &str, &str)] = &[
    ("pool", "argo", "not expressible (Airflow pools); NB302 warning, a synchronization semaphore can be added by hand"),
    ("pool", "tekton", "not expressible; NB302 warning"),
    ("pool", "kfp", "not expressible; NB302 warning"),
    ("securityContext (pod)", "kfp", "KFP's platform spec has no pod securityContext (fsGroup): NB302 warning when the data store is a claim"),
    ("securityContext (container)", "kfp", "runAsUser, runAsGroup, runAsNonRoot only (KFP's backend adds the rest of the restricted profile)"),
    ("retry delay", "tekton", "Tekton retries at once; NB302 warning when a delay is set"),
    ("schedule", "tekton", "no schedules in Tekton (a CronJob or Triggers creates PipelineRuns); NB302 warning"),
    ("schedule", "kfp", "recurring runs are made through the KFP API, not the spec; NB302 warning"),
    ("service account", "kfp", "set per run through the KFP API; NB302 warning"),
    ("namespace", "kfp", "the KFP deployment decides the namespace"),
    ("resources: ephemeral-storage", "kfp", "no such field in KFP's resource spec; NB302 warning"),
    ("secret: all keys (envFrom)", "kfp", "no envFrom in KFP: mounted as files at /etc/nb2pipe/secrets/NAME; NB302 warning"),
    ("config maps (envFrom)", "kfp", "no envFrom in KFP: mounted as files at /etc/nb2pipe/config/NAME; NB302 warning"),
    ("data store: claim", "job", "the pod's own emptyDir, unless data.url names the claim"),
    ("metrics", "job", "not collected: a Job has no task outputs; NB302 warning"),
    ("pool", "job", "not expressible; NB302 warning"),
    ("retries", "job", "the whole pod is retried: backoffLimit is the largest of the tasks'; NB302 warning"),
    ("retry delay", "job", "Kubernetes' own back-off (10 s, doubling); NB302 warning when a delay is set"),
    ("timeout", "job", "one deadline for the pod, the sum of the tasks' timeouts, only when every task has one; NB302 warning"),
    ("node selector", "job", "one pod: the union of the tasks' (the first task's value where they differ, NB302 warning)"),
    ("tolerations", "job", "one pod: the union of the tasks'"),
    ("labels", "job", "one pod: the union of the tasks' (the first task's value where they differ, NB302 warning)"),
    ("annotations", "job", "one pod: the union of the tasks' (the first task's value where they differ, NB302 warning)"),
];

fn py(var: &str) -> PathBuf {
    common::python_env(var)
}

fn validate(python: &Path, script: &str, files: &[PathBuf]) {
    if files.is_empty() {
        return;
    }
    let out = Command::new(python)
        .arg(common::root().join("tests/validate").join(script))
        .args(files)
        .output()
        .expect("validator runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} rejected:\n{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        files.len(),
        "{script}: {text}"
    );
}

fn yaml_docs(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn arr(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// What the kubelet makes of an env value, command or arg (Kubernetes'
/// third_party/forked/golang/expansion): `$$` is `$`, `$(VAR)` is VAR's value when VAR
/// is defined (earlier in env), else kept as written; any other `$` is kept.
fn kubelet(v: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('(') {
            match a.find(')') {
                Some(j) => {
                    let name = &a[..j];
                    match env.get(name) {
                        Some(x) => out.push_str(x),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &a[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = a;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn unescape_env(v: &str) -> String {
    kubelet(v, &BTreeMap::new())
}

/// The plan's task (with its settings) as the library reads it.
fn lib_task(plan: &Value, k8s_name: &str) -> nb2pipe::plan::Task {
    serde_json::from_value(plan_task(plan, k8s_name).clone()).expect("a plan task")
}

/// The securityContexts crate::pod gives the task (what every target must carry).
fn expected_security(plan: &Value, k8s_name: &str) -> (Value, Value) {
    let t = lib_task(plan, k8s_name);
    let s = &t.settings.security;
    (
        serde_json::to_value(nb2pipe::pod::security::pod_context(s)).unwrap(),
        serde_json::to_value(nb2pipe::pod::security::container_context(s)).unwrap(),
    )
}

fn security_obs(o: &mut Obs, pod: &Value, container: &Value) {
    if !pod.is_null() {
        o.insert("securityContext (pod)".into(), pod.clone());
    }
    if !container.is_null() {
        o.insert("securityContext (container)".into(), container.clone());
    }
}

/// One setting's value for one task (or the pipeline), as comparable JSON.
type Obs = BTreeMap<String, Value>;

/// What the plan says, per task, in the normalised forms the observers produce.
fn expected_task(plan: &Value, t: &Value) -> Obs {
    let s = &t["settings"];
    let mut o = Obs::new();
    let res = &s["resources"];
    for (row, keys) in [
        ("resources: cpu/memory", &["cpu", "memory"][..]),
        ("resources: gpu", &["nvidia.com/gpu"]),
        ("resources: ephemeral-storage", &["ephemeral-storage"]),
    ] {
        let pick = |m: &Value| -> BTreeMap<String, String> {
            common::str_map(m)
                .into_iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .collect()
        };
        let (r, l) = with_default_requests(pick(&res["requests"]), pick(&res["limits"]));
        if !r.is_empty() || !l.is_empty() {
            o.insert(row.into(), json!({"requests": r, "limits": l}));
        }
    }
    let mut all = BTreeSet::new();
    let mut key = BTreeSet::new();
    let mut files = BTreeSet::new();
    for sr in arr(&s["secrets"]) {
        let name = sr["name"].as_str().unwrap().to_string();
        match (sr["key"].as_str(), sr["mount_path"].as_str()) {
            (_, Some(p)) => files.insert(format!("{name}@{p}")),
            (Some(k), None) => key.insert(format!("{name}:{k}:{}", sr["env"].as_str().unwrap())),
            _ => all.insert(name),
        };
    }
    for (row, set) in [
        ("secret: all keys (envFrom)", all),
        ("secret: one key as env", key),
        ("secret: mounted as files", files),
    ] {
        if !set.is_empty() {
            o.insert(row.into(), json!(set));
        }
    }
    let cms: BTreeSet<String> = arr(&s["config_maps"])
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    if !cms.is_empty() {
        o.insert("config maps (envFrom)".into(), json!(cms));
    }
    for (row, k) in [
        ("env", "env"),
        ("node selector", "node_selector"),
        ("annotations", "annotations"),
    ] {
        if !common::str_map(&s[k]).is_empty() {
            o.insert(row.into(), json!(common::str_map(&s[k])));
        }
    }
    if !common::str_map(&s["labels"]).is_empty() {
        o.insert("labels".into(), json!(common::str_map(&s["labels"])));
    }
    if s["retries"].as_u64().unwrap_or(0) > 0 {
        o.insert("retries".into(), s["retries"].clone());
        o.insert("retry delay".into(), s["retry_delay_seconds"].clone());
    }
    if let Some(x) = s["timeout_seconds"].as_u64() {
        o.insert("timeout".into(), json!(x));
    }
    if !arr(&s["tolerations"]).is_empty() {
        o.insert(
            "tolerations".into(),
            json!(norm_tolerations(&s["tolerations"])),
        );
    }
    if !s["affinity"].is_null() {
        o.insert("affinity".into(), s["affinity"].clone());
    }
    if s["pool"].is_string() {
        o.insert("pool".into(), s["pool"].clone());
    }
    // The runtime's cache: the pod carries the task's static key (docs/running.md).
    if t["cache"]["enabled"] == json!(true) {
        o.insert("cache".into(), t["cache"]["key"].clone());
    }
    if t["metrics"] == json!(true) {
        o.insert("metrics".into(), json!(true));
    }
    let (pod, container) = expected_security(plan, t["k8s_name"].as_str().unwrap());
    o.insert("securityContext (pod)".into(), pod);
    o.insert("securityContext (container)".into(), container);
    o.insert("image".into(), t["image"]["reference"].clone());
    o.insert("image pull policy".into(), s["image_pull_policy"].clone());
    let params: BTreeSet<String> = arr(&t["parameters"])
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    if !params.is_empty() {
        o.insert("parameters (per task)".into(), json!(params));
    }
    o
}

/// Kubernetes' defaulting: an extended resource (a GPU) with only a limit is requested
/// at that limit; KFP's accelerator count is such a limit.
fn with_default_requests(
    mut r: BTreeMap<String, String>,
    l: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    for (k, v) in &l {
        if k.contains('/') {
            r.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    (r, l)
}

fn norm_tolerations(v: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = arr(v)
        .iter()
        .map(|t| {
            let secs = t.get("toleration_seconds").or_else(|| t.get("tolerationSeconds")).filter(|x| !x.is_null()).map(|x| json!(x.as_i64().or_else(|| x.as_str().and_then(|s| s.parse().ok()))));
            json!({"key": t["key"], "operator": t["operator"], "value": t.get("value").cloned().unwrap_or(Value::Null), "effect": t.get("effect").cloned().unwrap_or(Value::Null), "seconds": secs})
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

fn param_text(p: &Value) -> String {
    match &p["default"] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn expected_pipeline(plan: &Value) -> Obs {
    let s = &plan["settings"];
    let mut o = Obs::new();
    if let Some(sa) = s["service_account"].as_str() {
        o.insert("service account".into(), json!(sa));
    }
    if !arr(&s["image_pull_secrets"]).is_empty() {
        o.insert("image pull secrets".into(), s["image_pull_secrets"].clone());
    }
    if let Some(sch) = s["schedule"].as_str() {
        o.insert("schedule".into(), json!(nb2pipe::emit::k8s::cron(sch)));
    }
    let params: BTreeMap<String, String> = arr(&plan["parameters"])
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), param_text(p)))
        .collect();
    if !params.is_empty() {
        o.insert("parameters (defaults)".into(), json!(params));
    }
    o.insert("namespace".into(), s["namespace"].clone());
    let d = &s["data"];
    let data = if d["kind"] == "volume" {
        json!({"claim": d["claim"], "mount": d["mount_path"]})
    } else {
        json!({"url": d["url"], "endpoint": d["endpoint"], "secret": d["secret"], "region": d["region"]})
    };
    o.insert(
        if d["kind"] == "volume" {
            "data store: claim"
        } else {
            "data store: S3"
        }
        .into(),
        data,
    );
    o
}

/// Settings observed in a container (Argo container, Tekton step) and its volumes.
/// Argo's substitution of a task's parameter into its env value, for a run with the
/// defaults: `{{inputs.parameters.x}}` is the value, the expression nb2pipe writes is
/// the value with every `$` doubled; anything else is not a form nb2pipe writes.
fn argo_subst(v: &str, defaults: &BTreeMap<String, String>) -> String {
    for (name, d) in defaults {
        if v == format!("{{{{inputs.parameters.{name}}}}}") {
            return d.clone();
        }
        if v == nb2pipe::emit::argo::param_expr(name) {
            return d.replace('$', "$$");
        }
    }
    assert!(!v.contains("inputs.parameters"), "unknown Argo form {v}");
    v.to_string()
}

/// Tekton's substitution of `$(params.x)` (the task's params are the pipeline's).
fn tekton_subst(v: &str, defaults: &BTreeMap<String, String>) -> String {
    let mut v = v.to_string();
    for (name, d) in defaults {
        v = v.replace(&format!("$(params.{name})"), d);
    }
    v
}

fn observe_container(
    c: &Value,
    volumes: &[Value],
    resources: &Value,
    plan: &Value,
    subst: &dyn Fn(&str) -> String,
) -> (Obs, BTreeMap<String, String>) {
    let mut o = Obs::new();
    let data_secret = plan["settings"]["data"]["secret"].as_str();
    for (row, keys) in [
        ("resources: cpu/memory", &["cpu", "memory"][..]),
        ("resources: gpu", &["nvidia.com/gpu"]),
        ("resources: ephemeral-storage", &["ephemeral-storage"]),
    ] {
        let pick = |m: &Value| -> BTreeMap<String, String> {
            common::str_map(m)
                .into_iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .collect()
        };
        let (r, l) =
            with_default_requests(pick(&resources["requests"]), pick(&resources["limits"]));
        if !r.is_empty() || !l.is_empty() {
            o.insert(row.into(), json!({"requests": r, "limits": l}));
        }
    }
    let mut env = BTreeMap::new();
    let mut key = BTreeSet::new();
    for e in arr(&c["env"]) {
        let name = e["name"].as_str().unwrap().to_string();
        if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            key.insert(format!(
                "{}:{}:{name}",
                r["name"].as_str().unwrap(),
                r["key"].as_str().unwrap()
            ));
        } else {
            // The engine substitutes first, then the kubelet expands what came before.
            let v = kubelet(&subst(e["value"].as_str().unwrap_or_default()), &env);
            env.insert(name, v);
        }
    }
    let mut all = BTreeSet::new();
    let mut cms = BTreeSet::new();
    for e in arr(&c["envFrom"]) {
        if let Some(n) = e.pointer("/secretRef/name").and_then(Value::as_str) {
            if Some(n) != data_secret {
                all.insert(n.to_string());
            }
        }
        if let Some(n) = e.pointer("/configMapRef/name").and_then(Value::as_str) {
            cms.insert(n.to_string());
        }
    }
    let mut files = BTreeSet::new();
    for m in arr(&c["volumeMounts"]) {
        if let Some(v) = volumes.iter().find(|v| v["name"] == m["name"]) {
            if let Some(sn) = v.pointer("/secret/secretName").and_then(Value::as_str) {
                files.insert(format!("{sn}@{}", m["mountPath"].as_str().unwrap()));
            }
        }
    }
    for (row, set) in [
        ("secret: all keys (envFrom)", all),
        ("secret: one key as env", key),
        ("secret: mounted as files", files),
        ("config maps (envFrom)", cms),
    ] {
        if !set.is_empty() {
            o.insert(row.into(), json!(set));
        }
    }
    o.insert("image".into(), c["image"].clone());
    o.insert("image pull policy".into(), c["imagePullPolicy"].clone());
    (o, env)
}

/// User env (the plan's keys) out of everything in the container's env.
fn user_env(o: &mut Obs, env: &BTreeMap<String, String>, t: &Value) {
    let keys = common::str_map(&t["settings"]["env"]);
    let got: BTreeMap<&String, &String> =
        env.iter().filter(|(k, _)| keys.contains_key(*k)).collect();
    if !got.is_empty() {
        o.insert("env".into(), json!(got));
    }
    let params: BTreeSet<String> = env
        .keys()
        .filter_map(|k| k.strip_prefix("NB2PIPE_PARAM_"))
        .map(str::to_string)
        .collect();
    if !params.is_empty() {
        o.insert("parameters (per task)".into(), json!(params));
    }
    if let Some(k) = env.get("NB2PIPE_CACHE_KEY") {
        o.insert("cache".into(), json!(k));
    }
}

fn user_labels(o: &mut Obs, labels: &Value, annotations: &Value) {
    let own = [
        "app.kubernetes.io/managed-by",
        "nb2pipe/pipeline",
        "nb2pipe/task",
    ];
    let l: BTreeMap<String, String> = common::str_map(labels)
        .into_iter()
        .filter(|(k, _)| !own.contains(&k.as_str()))
        .collect();
    if !l.is_empty() {
        o.insert("labels".into(), json!(l));
    }
    if !common::str_map(annotations).is_empty() {
        o.insert("annotations".into(), json!(common::str_map(annotations)));
    }
}

fn pod_level(o: &mut Obs, node_selector: &Value, tolerations: &Value, affinity: &Value) {
    if !common::str_map(node_selector).is_empty() {
        o.insert(
            "node selector".into(),
            json!(common::str_map(node_selector)),
        );
    }
    if !arr(tolerations).is_empty() {
        o.insert("tolerations".into(), json!(norm_tolerations(tolerations)));
    }
    if !affinity.is_null() {
        o.insert("affinity".into(), affinity.clone());
    }
}

/// The data store as seen in a container's env (S3) or mounts (claim).
fn data_obs(
    env: &BTreeMap<String, String>,
    c: &Value,
    secret_from: Option<&str>,
    claim: Option<(&str, &str)>,
) -> (String, Value) {
    if let Some((claim, mount)) = claim {
        return (
            "data store: claim".into(),
            json!({"claim": claim, "mount": mount}),
        );
    }
    let secret = secret_from.map(str::to_string).or_else(|| {
        arr(&c["envFrom"])
            .iter()
            .filter_map(|e| e.pointer("/secretRef/name").and_then(Value::as_str))
            .next_back()
            .map(str::to_string)
    });
    (
        "data store: S3".into(),
        json!({"url": env.get("NB2PIPE_DATA"), "endpoint": env.get("NB2PIPE_S3_ENDPOINT"), "secret": secret, "region": env.get("AWS_DEFAULT_REGION")}),
    )
}

struct Observed {
    /// k8s task name → observed settings.
    tasks: BTreeMap<String, Obs>,
    pipeline: Obs,
    task_set: BTreeSet<String>,
    edges: BTreeSet<(String, String)>,
}

fn observe_argo(plan: &Value, file: &Path) -> Observed {
    let doc = &yaml_docs(file)[0];
    let cron = doc["kind"] == "CronWorkflow";
    let spec = if cron {
        &doc["spec"]["workflowSpec"]
    } else {
        &doc["spec"]
    };
    let templates = arr(&spec["templates"]);
    let dag = templates
        .iter()
        .find(|t| t["name"] == spec["entrypoint"])
        .expect("entrypoint template");
    let mut o = Observed {
        tasks: BTreeMap::new(),
        pipeline: Obs::new(),
        task_set: BTreeSet::new(),
        edges: BTreeSet::new(),
    };
    let claim = arr(&spec["volumes"]).iter().find_map(|v| {
        v.pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    // The defaults as written, and as they arrive in the tasks that read them.
    let defaults: BTreeMap<String, String> = arr(&spec["arguments"]["parameters"])
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut arrived = defaults.clone();
    for dt in arr(&dag["dag"]["tasks"]) {
        let name = dt["name"].as_str().unwrap().to_string();
        o.task_set.insert(name.clone());
        for d in arr(&dt["dependencies"]) {
            o.edges
                .insert((d.as_str().unwrap().to_string(), name.clone()));
        }
        let t = templates
            .iter()
            .find(|t| t["name"] == dt["template"])
            .expect("task template");
        let spark = t["resource"]["manifest"].as_str().map(spark_as_template);
        let t = spark
            .as_ref()
            .map(|s| s.with_deadline(t))
            .unwrap_or(t.clone());
        let t = &t;
        let c = &t["container"];
        let pt = plan_task(plan, &name);
        let (mut obs, env) =
            observe_container(c, &arr(&t["volumes"]), &c["resources"], plan, &|v| {
                argo_subst(v, &defaults)
            });
        security_obs(&mut obs, &t["securityContext"], &c["securityContext"]);
        let metrics = arr(&t["outputs"]["parameters"]).iter().any(|p| {
            p["name"] == "metrics"
                && Some(&p["valueFrom"]["path"])
                    == arr(&c["env"])
                        .iter()
                        .find(|e| e["name"] == "NB2PIPE_METRICS_FILE")
                        .map(|e| &e["value"])
        });
        if metrics {
            obs.insert("metrics".into(), json!(true));
        }
        for p in arr(&pt["parameters"]) {
            let p = p.as_str().unwrap();
            let v = arr(&c["env"])
                .into_iter()
                .find(|e| e["name"] == json!(format!("NB2PIPE_PARAM_{p}")))
                .unwrap();
            assert_eq!(v["value"], json!(nb2pipe::emit::argo::param_expr(p)));
            arrived.insert(p.to_string(), env[&format!("NB2PIPE_PARAM_{p}")].clone());
        }
        user_env(&mut obs, &env, pt);
        user_labels(
            &mut obs,
            &t["metadata"]["labels"],
            &t["metadata"]["annotations"],
        );
        pod_level(
            &mut obs,
            &t["nodeSelector"],
            &t["tolerations"],
            &t["affinity"],
        );
        if let Some(n) = t["retryStrategy"]["limit"].as_u64() {
            obs.insert("retries".into(), json!(n));
            let d = t["retryStrategy"]["backoff"]["duration"].as_str().unwrap();
            obs.insert(
                "retry delay".into(),
                json!(d.trim_end_matches('s').parse::<u64>().unwrap()),
            );
        }
        if let Some(x) = t["activeDeadlineSeconds"].as_u64() {
            obs.insert("timeout".into(), json!(x));
        }
        // Each task template receives its parameters from the workflow's arguments.
        for a in arr(&dt["arguments"]["parameters"]) {
            assert_eq!(
                a["value"],
                json!(format!(
                    "{{{{workflow.parameters.{}}}}}",
                    a["name"].as_str().unwrap()
                ))
            );
        }
        let mount = arr(&c["volumeMounts"])
            .iter()
            .find(|m| m["name"] == "nb2pipe-data")
            .map(|m| m["mountPath"].as_str().unwrap().to_string());
        let (k, v) = data_obs(&env, c, None, claim.as_deref().zip(mount.as_deref()));
        o.pipeline.insert(k, v);
        o.tasks.insert(name, obs);
    }
    if let Some(sa) = spec["serviceAccountName"].as_str() {
        o.pipeline.insert("service account".into(), json!(sa));
    }
    let ps: Vec<Value> = arr(&spec["imagePullSecrets"])
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    if !ps.is_empty() {
        o.pipeline.insert("image pull secrets".into(), json!(ps));
    }
    if cron {
        o.pipeline
            .insert("schedule".into(), json!(doc["spec"]["schedules"][0]));
    } else if plan["settings"]["schedule"] == "@once" {
        o.pipeline.insert("schedule".into(), Value::Null);
    }
    if !arrived.is_empty() {
        o.pipeline
            .insert("parameters (defaults)".into(), json!(arrived));
    }
    o.pipeline
        .insert("namespace".into(), doc["metadata"]["namespace"].clone());
    o
}

/// A Spark task's SparkApplication (an Argo resource template's manifest) in the shape
/// of a container template: its driver's pod, the operator's retries.
struct SparkTemplate(Value);

impl SparkTemplate {
    fn with_deadline(&self, t: &Value) -> Value {
        let mut v = self.0.clone();
        v["activeDeadlineSeconds"] = t["activeDeadlineSeconds"].clone();
        v
    }
}

fn spark_as_template(manifest: &str) -> SparkTemplate {
    let app: Value = serde_norway::from_str(manifest).unwrap();
    let (s, d) = (&app["spec"], &app["spec"]["driver"]);
    let mut t = json!({
        "container": {
            "image": s["image"],
            "imagePullPolicy": s["imagePullPolicy"],
            "env": d["env"],
            "envFrom": d["envFrom"],
            "volumeMounts": d["volumeMounts"],
            "securityContext": d["securityContext"],
        },
        "volumes": s["volumes"],
        "securityContext": d["podSecurityContext"],
        "metadata": {"labels": d["labels"], "annotations": d["annotations"]},
        "nodeSelector": d["nodeSelector"],
        "tolerations": d["tolerations"],
        "affinity": d["affinity"],
    });
    if let Some(n) = s["restartPolicy"]["onFailureRetries"].as_u64() {
        let delay = s["restartPolicy"]["onFailureRetryInterval"]
            .as_u64()
            .unwrap();
        t["retryStrategy"] = json!({"limit": n, "backoff": {"duration": format!("{delay}s")}});
    }
    SparkTemplate(t)
}

fn observe_tekton(plan: &Value, file: &Path) -> Observed {
    let run_file = file.with_file_name(format!(
        "{}-run.yaml",
        file.file_stem().unwrap().to_string_lossy()
    ));
    let defs = yaml_docs(file);
    let runs = yaml_docs(&run_file);
    // Tasks and the Pipeline are applied, the PipelineRun created: separate files.
    assert!(
        defs.iter()
            .all(|d| d["kind"] == "Task" || d["kind"] == "Pipeline"),
        "{}",
        file.display()
    );
    assert!(
        runs.iter().all(|d| d["kind"] == "PipelineRun"),
        "{}",
        run_file.display()
    );
    let docs: Vec<Value> = defs.into_iter().chain(runs).collect();
    // No workspaces: Tekton's affinity assistant would pin every TaskRun sharing the
    // claim to one node, whatever the tasks' node selectors and affinity say.
    for d in &docs {
        assert!(!d.to_string().contains("\"workspaces\""), "{d}");
    }
    let kind = |k: &str| {
        docs.iter()
            .filter(|d| d["kind"] == k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let pipeline = &kind("Pipeline")[0];
    let run = &kind("PipelineRun")[0];
    let tasks = kind("Task");
    let mut o = Observed {
        tasks: BTreeMap::new(),
        pipeline: Obs::new(),
        task_set: BTreeSet::new(),
        edges: BTreeSet::new(),
    };
    let defaults: BTreeMap<String, String> = arr(&pipeline["spec"]["params"])
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["default"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Parameters no task reads arrive nowhere; the kubelet's escape still applies.
    let mut arrived: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.clone(), unescape_env(v)))
        .collect();
    for pt_ in arr(&pipeline["spec"]["tasks"]) {
        let name = pt_["name"].as_str().unwrap().to_string();
        o.task_set.insert(name.clone());
        for d in arr(&pt_["runAfter"]) {
            o.edges
                .insert((d.as_str().unwrap().to_string(), name.clone()));
        }
        let task = tasks
            .iter()
            .find(|t| t["metadata"]["name"] == pt_["taskRef"]["name"])
            .expect("Task of the pipeline task");
        let steps = arr(&task["spec"]["steps"]);
        assert_eq!(steps.len(), 1);
        let step = &steps[0];
        let pt = plan_task(plan, &name);
        let (mut obs, env) = observe_container(
            step,
            &arr(&task["spec"]["volumes"]),
            &step["computeResources"],
            plan,
            &|v| tekton_subst(v, &defaults),
        );
        for p in arr(&pt["parameters"]) {
            let p = p.as_str().unwrap();
            arrived.insert(p.to_string(), env[&format!("NB2PIPE_PARAM_{p}")].clone());
        }
        let metrics = arr(&task["spec"]["results"])
            .iter()
            .any(|r| r["name"] == "metrics")
            && arr(&step["env"]).iter().any(|e| {
                e["name"] == "NB2PIPE_METRICS_FILE" && e["value"] == "$(results.metrics.path)"
            });
        if metrics {
            obs.insert("metrics".into(), json!(true));
        }
        user_env(&mut obs, &env, pt);
        let trs = arr(&run["spec"]["taskRunSpecs"])
            .into_iter()
            .find(|s| s["pipelineTaskName"] == json!(name))
            .unwrap_or_default();
        user_labels(
            &mut obs,
            &trs["metadata"]["labels"],
            &trs["metadata"]["annotations"],
        );
        let pod = &trs["podTemplate"];
        pod_level(
            &mut obs,
            &pod["nodeSelector"],
            &pod["tolerations"],
            &pod["affinity"],
        );
        if let Some(n) = pt_["retries"].as_u64() {
            obs.insert("retries".into(), json!(n));
        }
        if let Some(x) = pt_["timeout"].as_str() {
            obs.insert(
                "timeout".into(),
                json!(x.trim_end_matches('s').parse::<u64>().unwrap()),
            );
        }
        security_obs(&mut obs, &pod["securityContext"], &step["securityContext"]);
        let claim = arr(&task["spec"]["volumes"]).iter().find_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let mount = arr(&step["volumeMounts"])
            .iter()
            .find(|m| m["name"] == "nb2pipe-data")
            .map(|m| m["mountPath"].as_str().unwrap().to_string());
        let (k, v) = data_obs(&env, step, None, claim.as_deref().zip(mount.as_deref()));
        o.pipeline.insert(k, v);
        o.tasks.insert(name, obs);
    }
    let tmpl = &run["spec"]["taskRunTemplate"];
    if let Some(sa) = tmpl["serviceAccountName"].as_str() {
        o.pipeline.insert("service account".into(), json!(sa));
    }
    let ps: Vec<Value> = arr(&tmpl["podTemplate"]["imagePullSecrets"])
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    if !ps.is_empty() {
        o.pipeline.insert("image pull secrets".into(), json!(ps));
    }
    if plan["settings"]["schedule"] == "@once" {
        o.pipeline.insert("schedule".into(), Value::Null);
    }
    let params: BTreeMap<String, String> = arr(&pipeline["spec"]["params"])
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["default"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let run_params: BTreeMap<String, String> = arr(&run["spec"]["params"])
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(params, run_params, "the PipelineRun passes every parameter");
    if !arrived.is_empty() {
        o.pipeline
            .insert("parameters (defaults)".into(), json!(arrived));
    }
    o.pipeline.insert(
        "namespace".into(),
        pipeline["metadata"]["namespace"].clone(),
    );
    o
}

/// The Job (or the CronJob's Job template): one pod, each task one container (init
/// containers in the Job's order, the last task the main container). The Job has no
/// edges: the plan's edges must agree with the containers' order. Pod-level values
/// (scheduling, labels, securityContext, retries, deadline) are observed for every
/// task from the one pod.
fn observe_job(plan: &Value, file: &Path) -> Observed {
    let doc = &yaml_docs(file)[0];
    let cron = doc["kind"] == "CronJob";
    assert!(cron || doc["kind"] == "Job", "{}", file.display());
    let job = if cron {
        &doc["spec"]["jobTemplate"]["spec"]
    } else {
        &doc["spec"]
    };
    let pod = &job["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    let containers: Vec<Value> = arr(&spec["initContainers"])
        .into_iter()
        .chain(arr(&spec["containers"]))
        .collect();
    assert_eq!(arr(&spec["containers"]).len(), 1, "one main container");
    let volumes = arr(&spec["volumes"]);
    let mut o = Observed {
        tasks: BTreeMap::new(),
        pipeline: Obs::new(),
        task_set: BTreeSet::new(),
        edges: BTreeSet::new(),
    };
    let position = |k8s: &str| -> usize {
        let name = nb2pipe::emit::job::container_name(&lib_task(plan, k8s));
        containers
            .iter()
            .position(|c| c["name"] == json!(name))
            .unwrap_or_else(|| panic!("no container for task {k8s}"))
    };
    let k8s_of = |task: &Value| -> String {
        arr(&plan["tasks"])
            .into_iter()
            .find(|t| t["name"] == *task)
            .unwrap()["k8s_name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for e in arr(&plan["edges"]) {
        let (from, to) = (k8s_of(&e["from"]), k8s_of(&e["to"]));
        assert!(
            position(&from) < position(&to),
            "{}: {from} runs after {to}",
            file.display()
        );
        o.edges.insert((from, to));
    }
    let claim = volumes.iter().find_map(|v| {
        v.pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let mut arrived = BTreeMap::new();
    for t in arr(&plan["tasks"]) {
        let name = t["k8s_name"].as_str().unwrap().to_string();
        let c = &containers[position(&name)];
        o.task_set.insert(name.clone());
        let (mut obs, env) =
            observe_container(c, &volumes, &c["resources"], plan, &|v| v.to_string());
        // The run id is the pod's UID, read through the downward API.
        let run_id = arr(&c["env"])
            .into_iter()
            .find(|e| e["name"] == "NB2PIPE_RUN_ID")
            .unwrap();
        assert_eq!(
            run_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.uid",
            "{run_id}"
        );
        // The container may name its own user and group; the rest is the pod's.
        let mut csc = c["securityContext"].clone();
        let mut psc = spec["securityContext"].clone();
        for k in ["runAsUser", "runAsGroup"] {
            if let Some(v) = csc.as_object_mut().and_then(|m| m.remove(k)) {
                psc[k] = v;
            }
        }
        security_obs(&mut obs, &psc, &csc);
        for p in arr(&t["parameters"]) {
            let p = p.as_str().unwrap();
            arrived.insert(p.to_string(), env[&format!("NB2PIPE_PARAM_{p}")].clone());
        }
        user_env(&mut obs, &env, &t);
        user_labels(
            &mut obs,
            &pod["metadata"]["labels"],
            &pod["metadata"]["annotations"],
        );
        pod_level(
            &mut obs,
            &spec["nodeSelector"],
            &spec["tolerations"],
            &spec["affinity"],
        );
        // The pod's values, for the settings this task has: what another task asked
        // of the pod is not this task's setting.
        let planned = expected_task(plan, &t);
        for row in [
            "labels",
            "annotations",
            "node selector",
            "tolerations",
            "affinity",
        ] {
            if !planned.contains_key(row) {
                obs.remove(row);
            }
        }
        if t["settings"]["retries"].as_u64().unwrap_or(0) > 0 {
            obs.insert("retries".into(), job["backoffLimit"].clone());
        }
        if t["settings"]["timeout_seconds"].is_u64() {
            obs.insert("timeout".into(), spec["activeDeadlineSeconds"].clone());
        }
        let mount = arr(&c["volumeMounts"])
            .iter()
            .find(|m| m["name"] == "nb2pipe-data")
            .map(|m| m["mountPath"].as_str().unwrap().to_string());
        let (k, v) = match (&claim, &mount) {
            // The pod's own emptyDir: no claim.
            (None, Some(m)) => ("data store: claim".to_string(), json!({"emptyDir": m})),
            _ => data_obs(&env, c, None, claim.as_deref().zip(mount.as_deref())),
        };
        o.pipeline.insert(k, v);
        o.tasks.insert(name, obs);
    }
    if let Some(sa) = spec["serviceAccountName"].as_str() {
        o.pipeline.insert("service account".into(), json!(sa));
    }
    let ps: Vec<Value> = arr(&spec["imagePullSecrets"])
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    if !ps.is_empty() {
        o.pipeline.insert("image pull secrets".into(), json!(ps));
    }
    if cron {
        o.pipeline
            .insert("schedule".into(), doc["spec"]["schedule"].clone());
        assert_eq!(doc["spec"]["timeZone"], "Etc/UTC");
    } else if plan["settings"]["schedule"] == "@once" {
        o.pipeline.insert("schedule".into(), Value::Null);
    }
    if !arrived.is_empty() {
        o.pipeline
            .insert("parameters (defaults)".into(), json!(arrived));
    }
    o.pipeline
        .insert("namespace".into(), doc["metadata"]["namespace"].clone());
    o
}

/// KFP's affinity terms back into a k8s Affinity.
fn kfp_affinity(cfg: &Value) -> Value {
    let reqs = |v: &Value| -> Value { json!(arr(v)) };
    let mut na = serde_json::Map::new();
    let (mut req, mut pref) = (Vec::new(), Vec::new());
    for t in arr(&cfg["nodeAffinity"]) {
        let mut term = serde_json::Map::new();
        for k in ["matchExpressions", "matchFields"] {
            if t.get(k).is_some() {
                term.insert(k.into(), reqs(&t[k]));
            }
        }
        match t["weight"].as_i64() {
            Some(w) => pref.push(json!({"weight": w, "preference": term})),
            None => req.push(Value::Object(term)),
        }
    }
    if !req.is_empty() {
        na.insert(
            "requiredDuringSchedulingIgnoredDuringExecution".into(),
            json!({"nodeSelectorTerms": req}),
        );
    }
    if !pref.is_empty() {
        na.insert(
            "preferredDuringSchedulingIgnoredDuringExecution".into(),
            json!(pref),
        );
    }
    let mut out = serde_json::Map::new();
    if !na.is_empty() {
        out.insert("nodeAffinity".into(), Value::Object(na));
    }
    for anti in [false, true] {
        let (mut req, mut pref) = (Vec::new(), Vec::new());
        for t in arr(&cfg["podAffinity"])
            .into_iter()
            .filter(|t| t["anti"].as_bool().unwrap_or(false) == anti)
        {
            let mut ls = serde_json::Map::new();
            if t.get("matchPodLabels").is_some() {
                ls.insert("matchLabels".into(), t["matchPodLabels"].clone());
            }
            if t.get("matchPodExpressions").is_some() {
                ls.insert("matchExpressions".into(), t["matchPodExpressions"].clone());
            }
            let term = json!({"labelSelector": ls, "topologyKey": t["topologyKey"]});
            match t["weight"].as_i64() {
                Some(w) => pref.push(json!({"weight": w, "podAffinityTerm": term})),
                None => req.push(term),
            }
        }
        let mut m = serde_json::Map::new();
        if !req.is_empty() {
            m.insert(
                "requiredDuringSchedulingIgnoredDuringExecution".into(),
                json!(req),
            );
        }
        if !pref.is_empty() {
            m.insert(
                "preferredDuringSchedulingIgnoredDuringExecution".into(),
                json!(pref),
            );
        }
        if !m.is_empty() {
            out.insert(
                if anti {
                    "podAntiAffinity"
                } else {
                    "podAffinity"
                }
                .into(),
                Value::Object(m),
            );
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

fn observe_kfp(plan: &Value, file: &Path) -> Observed {
    let docs = yaml_docs(file);
    let (spec, platform) = (&docs[0], &docs[1]);
    let mut o = Observed {
        tasks: BTreeMap::new(),
        pipeline: Obs::new(),
        task_set: BTreeSet::new(),
        edges: BTreeSet::new(),
    };
    let data_secret = plan["settings"]["data"]["secret"].as_str();
    let mut kfp_env = Vec::new();
    for (name, dt) in spec["root"]["dag"]["tasks"].as_object().unwrap() {
        o.task_set.insert(name.clone());
        for d in arr(&dt["dependentTasks"]) {
            o.edges
                .insert((d.as_str().unwrap().to_string(), name.clone()));
        }
        let comp = &spec["components"][dt["componentRef"]["name"].as_str().unwrap()];
        let exec = comp["executorLabel"].as_str().unwrap();
        let c = &spec["deploymentSpec"]["executors"][exec]["container"];
        let cfg = &platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][exec];
        let pt = plan_task(plan, name);
        let mut obs = Obs::new();
        let r = &c["resources"];
        let mut cm = (BTreeMap::new(), BTreeMap::new());
        for (field, k, req) in [
            ("resourceCpuRequest", "cpu", true),
            ("resourceCpuLimit", "cpu", false),
            ("resourceMemoryRequest", "memory", true),
            ("resourceMemoryLimit", "memory", false),
        ] {
            if let Some(v) = r[field].as_str() {
                if req { &mut cm.0 } else { &mut cm.1 }.insert(k.to_string(), v.to_string());
            }
        }
        if !cm.0.is_empty() || !cm.1.is_empty() {
            obs.insert(
                "resources: cpu/memory".into(),
                json!({"requests": cm.0, "limits": cm.1}),
            );
        }
        if let Some(a) = r.get("accelerator") {
            let m: BTreeMap<String, String> = [(
                a["resourceType"].as_str().unwrap().to_string(),
                a["resourceCount"].as_str().unwrap().to_string(),
            )]
            .into();
            let (r, l) = with_default_requests(BTreeMap::new(), m);
            obs.insert("resources: gpu".into(), json!({"requests": r, "limits": l}));
        }
        let mut env = BTreeMap::new();
        for e in arr(&c["env"]) {
            let v = kubelet(e["value"].as_str().unwrap(), &env);
            env.insert(e["name"].as_str().unwrap().to_string(), v);
        }
        // The kubelet expands the pod's args with the whole env: KFP's launcher gets
        // the inputs (defaults included) in its `--executor_input` arg.
        kfp_env.push(env.clone());
        // The launcher's args are NAME, VALUE pairs that become env vars.
        let args = arr(&c["args"]);
        assert_eq!(c["command"][0], "python");
        for pair in args.chunks(2) {
            env.insert(
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_str().unwrap().to_string(),
            );
        }
        assert_eq!(
            env.get("NB2PIPE_RUN_ID").map(String::as_str),
            Some("{{$.pipeline_job_uuid}}")
        );
        user_env(&mut obs, &env, pt);
        let mut key = BTreeSet::new();
        for s in arr(&cfg["secretAsEnv"]) {
            let n = s["secretName"].as_str().unwrap();
            for k in arr(&s["keyToEnv"]) {
                if Some(n) == data_secret && k["envVar"].as_str().unwrap().starts_with("AWS_") {
                    continue;
                }
                key.insert(format!(
                    "{n}:{}:{}",
                    k["secretKey"].as_str().unwrap(),
                    k["envVar"].as_str().unwrap()
                ));
            }
        }
        // Secrets used with every key are mounted under SECRET_DIR instead (a limit).
        let files: BTreeSet<String> = arr(&cfg["secretAsVolume"])
            .iter()
            .filter(|s| {
                !s["mountPath"]
                    .as_str()
                    .unwrap()
                    .starts_with("/etc/nb2pipe/secrets/")
            })
            .map(|s| {
                format!(
                    "{}@{}",
                    s["secretName"].as_str().unwrap(),
                    s["mountPath"].as_str().unwrap()
                )
            })
            .collect();
        for (row, set) in [
            ("secret: one key as env", key),
            ("secret: mounted as files", files),
        ] {
            if !set.is_empty() {
                obs.insert(row.into(), json!(set));
            }
        }
        user_labels(
            &mut obs,
            &cfg["podMetadata"]["labels"],
            &cfg["podMetadata"]["annotations"],
        );
        pod_level(
            &mut obs,
            &cfg["nodeSelector"]["labels"],
            &cfg["tolerations"],
            &kfp_affinity(cfg),
        );
        if let Some(n) = dt["retryPolicy"]["maxRetryCount"].as_u64() {
            obs.insert("retries".into(), json!(n));
            obs.insert(
                "retry delay".into(),
                json!(dt["retryPolicy"]["backoffDuration"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('s')
                    .parse::<u64>()
                    .unwrap()),
            );
        }
        if let Some(x) = cfg["activeDeadlineSeconds"].as_str() {
            obs.insert("timeout".into(), json!(x.parse::<u64>().unwrap()));
        }
        // KFP's own cache keys on image, args and parameters, not on the data in the
        // store: off, so only the runtime's key decides.
        assert_eq!(
            dt["cachingOptions"]["enableCache"],
            json!(false),
            "KFP's cache must be off: {dt}"
        );
        if let Some(sc) = cfg.get("securityContext") {
            obs.insert("securityContext (container)".into(), sc.clone());
        }
        let metrics = comp["outputDefinitions"]["artifacts"]["metrics"]["artifactType"]
            ["schemaTitle"]
            == "system.Metrics"
            && env.get("NB2PIPE_METRICS_FILE").map(String::as_str)
                == Some("{{$.outputs.artifacts['metrics'].path}}")
            && env.get("NB2PIPE_KFP_OUTPUT_FILE").map(String::as_str)
                == Some("/tmp/kfp_outputs/output_metadata.json");
        if metrics {
            obs.insert("metrics".into(), json!(true));
        }
        obs.insert("image".into(), c["image"].clone());
        obs.insert("image pull policy".into(), cfg["imagePullPolicy"].clone());
        let claim = arr(&cfg["pvcMount"]).first().map(|m| {
            (
                m["constant"].as_str().unwrap().to_string(),
                m["mountPath"].as_str().unwrap().to_string(),
            )
        });
        let (k, v) = data_obs(
            &env,
            c,
            data_secret.filter(|s| {
                arr(&cfg["secretAsEnv"])
                    .iter()
                    .any(|x| x["secretName"] == *s)
            }),
            claim.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        );
        o.pipeline.insert(k, v);
        o.tasks.insert(name.clone(), obs);
        let pulls: Vec<Value> = arr(&cfg["imagePullSecret"])
            .iter()
            .map(|p| p["secretName"].clone())
            .collect();
        if !pulls.is_empty() {
            o.pipeline.insert("image pull secrets".into(), json!(pulls));
        }
    }
    if plan["settings"]["schedule"] == "@once" {
        o.pipeline.insert("schedule".into(), Value::Null);
    }
    let params: BTreeMap<String, String> = spec["root"]["inputDefinitions"]["parameters"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, d)| {
                    let text = match &d["defaultValue"] {
                        Value::String(s) => s.clone(),
                        Value::Number(n) if d["parameterType"] == "NUMBER_INTEGER" => {
                            n.as_f64().map(|f| (f as i64).to_string()).unwrap()
                        }
                        v => v.to_string(),
                    };
                    // Any task's env is what the kubelet resolves `$(VAR)` with.
                    let env = kfp_env.first().cloned().unwrap_or_default();
                    (k.clone(), kubelet(&text, &env))
                })
                .collect()
        })
        .unwrap_or_default();
    if !params.is_empty() {
        o.pipeline
            .insert("parameters (defaults)".into(), json!(params));
    }
    o
}

fn plan_task<'a>(plan: &'a Value, k8s_name: &str) -> &'a Value {
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["k8s_name"] == k8s_name)
        .unwrap_or_else(|| panic!("no plan task `{k8s_name}`"))
}

/// (setting, target) → did it arrive in every fixture that has it.
type Matrix = BTreeMap<(String, String), bool>;

/// A Spark task that is a SparkApplication: its driver and executor pods are sized by
/// its Spark settings (checked in `spark_task_is_a_spark_application_on_argo`), not by
/// the pod resources.
const SPARK_SIZED: &[&str] = &[
    "resources: cpu/memory",
    "resources: gpu",
    "resources: ephemeral-storage",
];

fn compare(
    fixture: &str,
    target: &str,
    plan: &Value,
    obs: &Observed,
    m: &mut Matrix,
    failures: &mut Vec<String>,
) {
    let tasks: BTreeSet<String> = arr(&plan["tasks"])
        .iter()
        .map(|t| t["k8s_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(obs.task_set, tasks, "{fixture}/{target}: task set");
    let k8s = |n: &Value| -> String {
        arr(&plan["tasks"])
            .iter()
            .find(|t| t["name"] == *n)
            .unwrap()["k8s_name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let edges: BTreeSet<(String, String)> = arr(&plan["edges"])
        .iter()
        .map(|e| (k8s(&e["from"]), k8s(&e["to"])))
        .collect();
    assert_eq!(obs.edges, edges, "{fixture}/{target}: edge set");
    let mut extra = Vec::new();
    let mut check = |row: &str, want: &Value, got: Option<&Value>, who: &str| {
        let ok = got == Some(want);
        let e = m
            .entry((row.to_string(), target.to_string()))
            .or_insert(true);
        *e &= ok;
        if !ok && !LIMITS.iter().any(|(r, t, _)| *r == row && *t == target) {
            failures.push(format!(
                "{fixture}/{target}/{who}: `{row}` planned {want}, found {}",
                got.map(Value::to_string).unwrap_or("nothing".into())
            ));
        }
    };
    for t in arr(&plan["tasks"]) {
        let name = t["k8s_name"].as_str().unwrap();
        let want = expected_task(plan, &t);
        let got = &obs.tasks[name];
        let spark_app = target == "argo"
            && t["settings"]["spark"].is_object()
            && t["settings"]["spark"]["local"].is_null();
        for (row, v) in &want {
            if spark_app && SPARK_SIZED.contains(&row.as_str()) {
                continue;
            }
            let g = if row == "affinity" && target == "kfp" {
                got.get(row).cloned().map(|a| normalise_affinity(&a))
            } else {
                got.get(row).cloned()
            };
            let w = if row == "affinity" && target == "kfp" {
                normalise_affinity(v)
            } else {
                v.clone()
            };
            check(row, &w, g.as_ref(), name);
        }
        // Nothing arrives that the plan does not have.
        for row in got.keys().filter(|r| !want.contains_key(*r)) {
            extra.push(format!(
                "{fixture}/{target}/{name}: `{row}` = {} is not in the plan",
                got[row]
            ));
        }
    }
    for (row, v) in expected_pipeline(plan) {
        check(&row, &v, obs.pipeline.get(&row), "pipeline");
    }
    failures.extend(extra);
}

/// Affinity through JSON without empty containers (KFP's terms drop them).
fn normalise_affinity(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, x)| {
                    !matches!(x, Value::Array(a) if a.is_empty())
                        && !matches!(x, Value::Object(m) if m.is_empty())
                })
                .map(|(k, x)| (k.clone(), normalise_affinity(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise_affinity).collect()),
        x => x.clone(),
    }
}

fn render_matrix(m: &Matrix) -> String {
    let rows: BTreeSet<&String> = m.keys().map(|(r, _)| r).collect();
    let mut s = String::from("# Settings × targets\n\nGenerated by `tests/targets.rs` from the validated outputs of every fixture notebook\n(`NB2PIPE_UPDATE_DOCS=1 cargo test --test targets` rewrites it; the test fails when it is\nstale). ✓: the plan's value arrived unchanged in every fixture that sets it. Otherwise\nwhat the target does instead (docs/targets.md explains each).\n\n| setting | argo | tekton | kfp | job |\n|---|---|---|---|---|\n");
    for r in rows {
        let cells: Vec<String> = TARGETS
            .iter()
            .map(|t| match m.get(&(r.clone(), t.to_string())) {
                Some(true) => "✓".to_string(),
                _ => format!(
                    "✗ {}",
                    LIMITS
                        .iter()
                        .find(|(x, y, _)| x == r && y == t)
                        .map(|l| l.2)
                        .unwrap_or("")
                ),
            })
            .collect();
        s.push_str(&format!("| {r} | {} |\n", cells.join(" | ")));
    }
    s
}

#[test]
fn every_fixture_converts_validates_and_keeps_every_setting() {
    let (validate_py, kfp_py) = (py("VALIDATE"), py("KFP"));
    let mut matrix = Matrix::new();
    let mut failures = Vec::new();
    let (mut argo, mut tekton, mut kfp, mut k8s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut spark = Vec::new();
    let tmp = common::tempdir();
    let mut observed = Vec::new();
    for nb in common::fixtures_in("notebooks") {
        let fixture = nb.file_stem().unwrap().to_string_lossy().into_owned();
        let mut converted = Vec::new();
        for target in TARGETS {
            let out = tmp.path().join(&fixture).join(target);
            let (code, _, stderr) = common::run(&[
                "convert",
                nb.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--target",
                target,
                "--skeletons",
            ]);
            if UNSAFE.contains(&(fixture.as_str(), target)) {
                assert_eq!(code, 1, "{fixture}/{target} must be refused:\n{stderr}");
                assert!(
                    stderr.contains("NB301") && !out.exists(),
                    "{fixture}/{target}: {stderr}"
                );
                continue;
            }
            assert_eq!(code, 0, "{fixture}/{target}:\n{stderr}");
            assert!(!stderr.contains("NB301"), "{stderr}");
            let dir = files_in(&out).pop().unwrap();
            let plan = common::read_json(&dir.join("plan.json"));
            let file = dir
                .join(target)
                .join(format!("{}.yaml", plan["pipeline"].as_str().unwrap()));
            match target {
                "argo" => {
                    if std::fs::read_to_string(&file)
                        .unwrap()
                        .contains("kind: SparkApplication")
                    {
                        spark.push(file.clone());
                    }
                    argo.push(file.clone())
                }
                "tekton" => {
                    tekton.push(file.clone());
                    tekton.push(file.with_file_name(format!(
                        "{}-run.yaml",
                        plan["pipeline"].as_str().unwrap()
                    )));
                }
                "job" => k8s.push(file.clone()),
                _ => kfp.push(file.clone()),
            }
            k8s.extend(
                files_in(&dir.join("k8s"))
                    .into_iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "yaml")),
            );
            converted.push((target, plan, file));
        }
        observed.push((fixture, converted));
    }
    // One interpreter start per validator for all fixtures.
    validate(&validate_py, "validate_argo.py", &argo);
    assert!(!spark.is_empty(), "a fixture has a Spark task");
    validate(&validate_py, "validate_spark.py", &spark);
    validate(&validate_py, "validate_tekton.py", &tekton);
    validate(&validate_py, "validate_k8s.py", &k8s);
    validate(&kfp_py, "validate_kfp.py", &kfp);
    for (fixture, converted) in &observed {
        for (target, plan, file) in converted {
            let obs = match *target {
                "argo" => observe_argo(plan, file),
                "tekton" => observe_tekton(plan, file),
                "job" => observe_job(plan, file),
                _ => observe_kfp(plan, file),
            };
            compare(fixture, target, plan, &obs, &mut matrix, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "settings that did not arrive:\n{}",
        failures.join("\n")
    );
    for (r, t, _) in LIMITS {
        match matrix.get(&(r.to_string(), t.to_string())) {
            Some(false) => {}
            Some(true) => panic!("`{r}` arrives in {t}: remove it from LIMITS and docs"),
            None => panic!("no fixture sets `{r}`"),
        }
    }
    let rows: BTreeSet<&String> = matrix.keys().map(|(r, _)| r).collect();
    for r in rows {
        for t in TARGETS {
            assert!(
                matrix.contains_key(&(r.clone(), t.to_string())),
                "`{r}` never checked for {t}"
            );
        }
    }
    let doc = render_matrix(&matrix);
    let path = common::root().join("docs/settings-matrix.md");
    if std::env::var_os("NB2PIPE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, doc,
        "docs/settings-matrix.md is stale: run NB2PIPE_UPDATE_DOCS=1 cargo test --test targets"
    );
}

/// A notebook with one parameters cell and one task carrying `env`, `annotations` and
/// a string parameter default.
fn hostile_notebook(dir: &Path, name: &str, value: &str) -> PathBuf {
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11.7"}},
        "cells": [
            {"cell_type": "code", "id": "c0", "metadata": {"tags": ["parameters"]}, "source": format!("word = {}", serde_json::to_string(value).unwrap()), "outputs": [], "execution_count": null},
            {"cell_type": "code", "id": "c1", "metadata": {"tags": ["task:echo"], "nb2pipe": {"env": {"HOSTILE": value}, "annotations": {"note": value}}}, "source": "print(word)", "outputs": [], "execution_count": null}
        ]
    });
    let p = dir.join(format!("{name}.ipynb"));
    std::fs::write(&p, serde_json::to_string(&nb).unwrap()).unwrap();
    p
}

/// Values Kubernetes, YAML and the targets treat specially arrive byte for byte; values
/// with Argo's `{{` or Tekton's `$(` are refused (NB301) by that target only.
#[test]
fn hostile_values_arrive_unchanged_or_are_refused() {
    let tmp = common::tempdir();
    let plain = "quotes \" ' back\\slash\nnew line: # not a comment ünïcödé ☃ $HOME $$ ${X} %s {x} }} --- *a &b";
    let nb = hostile_notebook(tmp.path(), "hostile", plain);
    let mut files = BTreeMap::new();
    for target in TARGETS {
        let out = tmp.path().join(target);
        let (code, _, err) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(code, 0, "{target}: {err}");
        files.insert(
            target,
            out.join("hostile").join(target).join("hostile.yaml"),
        );
    }
    validate(
        &py("VALIDATE"),
        "validate_argo.py",
        &[files["argo"].clone()],
    );
    validate(
        &py("VALIDATE"),
        "validate_tekton.py",
        &[
            files["tekton"].clone(),
            files["tekton"].with_file_name("hostile-run.yaml"),
        ],
    );
    validate(&py("KFP"), "validate_kfp.py", &[files["kfp"].clone()]);
    validate(&py("VALIDATE"), "validate_k8s.py", &[files["job"].clone()]);
    let plan = common::read_json(&tmp.path().join("argo/hostile/plan.json"));
    for (target, f) in &files {
        let obs = match *target {
            "argo" => observe_argo(&plan, f),
            "tekton" => observe_tekton(&plan, f),
            "job" => observe_job(&plan, f),
            _ => observe_kfp(&plan, f),
        };
        assert_eq!(
            obs.tasks["echo"]["env"],
            json!({"HOSTILE": plain}),
            "{target}"
        );
        assert_eq!(
            obs.tasks["echo"]["annotations"],
            json!({"note": plain}),
            "{target}"
        );
        assert_eq!(
            obs.pipeline["parameters (defaults)"],
            json!({"word": plain}),
            "{target}"
        );
    }

    // `$(` is Tekton's own syntax (refused above); Argo and KFP deliver it, past the
    // kubelet's `$(VAR)` expansion, as written.
    let dollars = "costs $$5 $(NB2PIPE_DATA) $(HOME) $";
    let nb = hostile_notebook(tmp.path(), "dollars", dollars);
    for target in ["argo", "kfp", "job"] {
        let out = tmp.path().join(format!("d-{target}"));
        let (code, _, err) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(code, 0, "{target}: {err}");
        let f = out.join("dollars").join(target).join("dollars.yaml");
        let plan = common::read_json(&out.join("dollars/plan.json"));
        let obs = match target {
            "argo" => observe_argo(&plan, &f),
            "job" => observe_job(&plan, &f),
            _ => observe_kfp(&plan, &f),
        };
        assert_eq!(
            obs.tasks["echo"]["env"],
            json!({"HOSTILE": dollars}),
            "{target}"
        );
        assert_eq!(
            obs.pipeline["parameters (defaults)"],
            json!({"word": dollars}),
            "{target}"
        );
    }

    for (value, refused_by) in [
        ("a {{workflow.name}} b", "argo"),
        ("a $(params.word) b", "tekton"),
        ("{{ '{{' }}", "argo"),
        ("$(context.taskRun.name)", "tekton"),
    ] {
        let nb = hostile_notebook(tmp.path(), "subst", value);
        for target in TARGETS {
            let out = tmp.path().join(format!("s-{target}"));
            let _ = std::fs::remove_dir_all(&out);
            let (code, _, err) = common::run(&[
                "convert",
                nb.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--target",
                target,
            ]);
            if target == refused_by {
                assert_eq!(code, 1, "{target} must refuse {value:?}");
                // The env value, the annotation and the parameter default, each named.
                assert_eq!(err.matches("error[NB301]").count(), 3, "{err}");
                assert!(
                    err.contains("env `HOSTILE`")
                        && err.contains("annotation `note`")
                        && err.contains("parameter `word`"),
                    "{err}"
                );
                assert!(!out.exists(), "nothing is written when a value is refused");
            } else {
                assert_eq!(code, 0, "{target} takes {value:?}: {err}");
            }
        }
    }
}

/// `--skeletons` writes scripts of `kubectl create` commands under k8s/skeletons/: every
/// referenced Secret with its known keys read from shell variables (never a value),
/// every ConfigMap from an env file. Nothing there is an object `kubectl apply -f k8s/`
/// would read, and `kubectl create` never replaces an existing Secret: a skeleton
/// cannot blank real credentials.
#[test]
fn skeletons_hold_keys_never_values_and_cannot_blank_a_secret() {
    let tmp = common::tempdir();
    let dir = common::convert(
        &common::fixture("notebooks/settings_all.ipynb"),
        tmp.path(),
        &["--target", "kfp", "--skeletons"],
    );
    let plan = common::read_json(&dir.join("plan.json"));
    let p = plan["pipeline"].as_str().unwrap();
    let ns = plan["settings"]["namespace"].as_str().unwrap();
    // What `kubectl apply -f k8s/` reads: the claim, nothing else.
    let applied: Vec<PathBuf> = files_in(&dir.join("k8s"))
        .into_iter()
        .filter(|f| f.is_file())
        .collect();
    assert_eq!(applied, vec![dir.join(format!("k8s/{p}-pvc.yaml"))]);
    for f in files_in(&dir.join("k8s/skeletons")) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("kind: Secret") && !text.contains("apiVersion"),
            "{text}"
        );
        assert!(
            !text.contains("kubectl apply") && !text.contains("kubectl replace"),
            "{text}"
        );
    }
    let secrets =
        std::fs::read_to_string(dir.join(format!("k8s/skeletons/{p}-secrets.sh"))).unwrap();
    let mut want: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
    for t in arr(&plan["tasks"]) {
        for s in arr(&t["settings"]["secrets"]) {
            let e = want.entry(s["name"].as_str().unwrap().into()).or_default();
            match (s["key"].as_str(), s["mount_path"].as_str()) {
                (Some(k), None) => {
                    e.0.insert(k.into());
                }
                _ => e.1 = true,
            }
        }
    }
    // One `kubectl create secret generic` per Secret: each known key from a variable
    // the script requires, an env file where a task takes every key.
    let commands: Vec<&str> = secrets
        .split("kubectl create secret generic ")
        .skip(1)
        .collect();
    assert_eq!(commands.len(), want.len(), "{secrets}");
    for (cmd, (name, (keys, unknown))) in commands.iter().zip(&want) {
        assert!(
            cmd.starts_with(&format!("{name} --namespace {ns}")),
            "{cmd}"
        );
        for k in keys {
            let var = nb2pipe::emit::k8s::skeleton_var(name, k);
            assert!(
                cmd.contains(&format!("--from-literal={k}=\"${{{var}:?set {var}}}\"")),
                "{cmd}"
            );
        }
        assert_eq!(cmd.matches("--from-literal=").count(), keys.len(), "{cmd}");
        assert_eq!(
            cmd.contains(&format!("--from-env-file={name}.env")),
            *unknown,
            "{cmd}"
        );
    }
    let cms =
        std::fs::read_to_string(dir.join(format!("k8s/skeletons/{p}-configmaps.sh"))).unwrap();
    assert!(
        cms.contains(&format!("kubectl create configmap app-config --namespace {ns} \\\n  --from-env-file=app-config.env")),
        "{cms}"
    );
    // The scripts run under sh as written: with a stand-in `kubectl` that records its
    // arguments, a missing variable stops the script before any command.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = tmp.path().join("kubectl.log");
    let fake = bin.join("kubectl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join(format!("k8s/skeletons/{p}-secrets.sh"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |vars: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&log);
        let mut c = Command::new("sh");
        c.arg(&script).env("PATH", &path);
        for (k, v) in vars {
            c.env(k, v);
        }
        let st = c.status().unwrap();
        (
            st.success(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    };
    let (ok, calls) = run(&[]);
    assert!(!ok && calls.is_empty(), "{calls}");
    let (ok, calls) = run(&[("API_KEYS_TOKEN", "s3cr3t value")]);
    assert!(ok, "{calls}");
    assert!(
        calls.contains(
            "create secret generic api-keys --namespace ml-prod --from-literal=token=s3cr3t value"
        ),
        "{calls}"
    );
    // Without the flag, only the claim.
    let tmp2 = common::tempdir();
    let dir2 = common::convert(
        &common::fixture("notebooks/settings_all.ipynb"),
        tmp2.path(),
        &["--target", "kfp"],
    );
    assert_eq!(files_in(&dir2.join("k8s")).len(), 1);
}

/// Same input, same bytes; `--target all` is exactly the union of the single targets.
#[test]
fn outputs_are_deterministic_and_all_is_the_union() {
    let nb = common::fixture("notebooks/settings_all.ipynb");
    let (a, b) = (common::tempdir(), common::tempdir());
    let da = common::convert(&nb, a.path(), &["--target", "all", "--skeletons"]);
    let db = common::convert(&nb, b.path(), &["--target", "all", "--skeletons"]);
    let (ta, tb) = (
        nb2pipe::fs::read_tree(&da).unwrap(),
        nb2pipe::fs::read_tree(&db).unwrap(),
    );
    assert_eq!(ta, tb);
    for target in ["airflow", "argo", "tekton", "kfp", "job"] {
        let t = common::tempdir();
        let d = common::convert(&nb, t.path(), &["--target", target, "--skeletons"]);
        for (path, text) in nb2pipe::fs::read_tree(&d).unwrap() {
            // The record names the targets written, so it differs by design.
            if path == nb2pipe::fs::RECORD {
                continue;
            }
            assert_eq!(ta.get(&path), Some(&text), "{target}: {path}");
        }
        assert!(ta.keys().any(|p| p.starts_with(&format!("{target}/"))));
    }
    for (path, text) in &ta {
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n"),
            "{path}: one trailing newline"
        );
    }
}

/// The Argo, Tekton and KFP files (and k8s/) of every fixture, one snapshot per fixture.
#[test]
fn target_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(common::root().join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(r"nb2pipe-\d+\.\d+\.\d+", "nb2pipe-[VERSION]");
    settings.bind(|| {
        for nb in common::fixtures_in("notebooks") {
            let fixture = nb.file_stem().unwrap().to_string_lossy().into_owned();
            let tmp = common::tempdir();
            let mut args = vec!["--skeletons"];
            let targets = TARGETS
                .iter()
                .filter(|t| !UNSAFE.contains(&(fixture.as_str(), **t)))
                .copied()
                .collect::<Vec<_>>()
                .join(",");
            args.extend(["--target", &targets]);
            let dir = common::convert(&nb, tmp.path(), &args);
            let mut joined = String::new();
            for (path, text) in nb2pipe::fs::read_tree(&dir).unwrap() {
                if ["argo/", "tekton/", "kfp/", "job/", "k8s/"]
                    .iter()
                    .any(|p| path.starts_with(p))
                {
                    joined.push_str(&format!("================ {path} ================\n{text}"));
                }
            }
            insta::assert_snapshot!(format!("targets-{fixture}"), joined);
        }
    });
}

/// The preset → cron table the targets rely on, stated independently (crontab(5)).
#[test]
fn schedule_presets_are_standard_cron() {
    use nb2pipe::emit::k8s::cron;
    assert_eq!(cron("@once"), None);
    assert_eq!(cron("@hourly").as_deref(), Some("0 * * * *"));
    assert_eq!(cron("@daily").as_deref(), Some("0 0 * * *"));
    assert_eq!(cron("@midnight").as_deref(), Some("0 0 * * *"));
    assert_eq!(cron("@weekly").as_deref(), Some("0 0 * * 0"));
    assert_eq!(cron("@monthly").as_deref(), Some("0 0 1 * *"));
    assert_eq!(cron("@quarterly").as_deref(), Some("0 0 1 */3 *"));
    assert_eq!(cron("@yearly").as_deref(), Some("0 0 1 1 *"));
    assert_eq!(cron("@annually").as_deref(), Some("0 0 1 1 *"));
    assert_eq!(cron("0 6 * * 1-5").as_deref(), Some("0 6 * * 1-5"));
}

/// Runs `code` with the task runtime importable and `env` set; its stdout.
fn runtime(code: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new(py("VALIDATE"));
    c.arg("-c")
        .arg(code)
        .env("PYTHONPATH", common::root().join("templates/task"))
        .env_remove("NB2PIPE_PARAMS");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A parameter's value arrives by its type: a str parameter takes the env text byte
/// for byte (what Argo, Tekton and KFP hand over is text), other types are parsed.
#[test]
fn runtime_decodes_parameters_by_their_type() {
    let code = "import json, nb2pipe_runtime as r\nv = r.parameters({'s': 'x', 'i': 1, 'f': 0.5, 'b': False, 'l': [], 'n': None})\nprint(json.dumps(v, sort_keys=True))";
    for text in [
        "1.10", "null", "1e3", "true", "[1, 2]", "\"q\"", " 7 ", "", "$(X) $$",
    ] {
        let got: Value =
            serde_json::from_str(&runtime(code, &[("NB2PIPE_PARAM_s", text)])).unwrap();
        assert_eq!(got["s"], json!(text), "str parameter given {text:?}");
    }
    let got: Value = serde_json::from_str(&runtime(
        code,
        &[
            ("NB2PIPE_PARAM_i", "7"),
            ("NB2PIPE_PARAM_f", "1e3"),
            ("NB2PIPE_PARAM_b", "true"),
            ("NB2PIPE_PARAM_l", "[1, \"a\"]"),
            ("NB2PIPE_PARAM_n", "{\"k\": 1}"),
        ],
    ))
    .unwrap();
    assert_eq!(
        got,
        json!({"s": "x", "i": 7, "f": 1000.0, "b": true, "l": [1, "a"], "n": {"k": 1}})
    );
}

/// A `metrics` task's runtime writes every real number it binds (not bools,
/// parameters or `_names`) to NB2PIPE_METRICS_FILE, and for KFP the same as the
/// metadata of its `metrics` artifact in the executor output.
#[test]
fn runtime_writes_metrics_where_the_target_reads_them() {
    let tmp = common::tempdir();
    let (m, k) = (tmp.path().join("m.json"), tmp.path().join("kfp/out.json"));
    let code = "import nb2pipe_runtime as r\nr._STATE['parameters'] = {'lr'}\nr._write_metrics({'accuracy': 0.9, 'n': 3, 'ok': True, 'lr': 0.1, '_x': 1.0, 'name': 'a', 'nan': float('nan'), 'xs': [1]})";
    runtime(
        code,
        &[
            ("NB2PIPE_METRICS_FILE", m.to_str().unwrap()),
            ("NB2PIPE_KFP_OUTPUT_FILE", k.to_str().unwrap()),
        ],
    );
    assert_eq!(common::read_json(&m), json!({"accuracy": 0.9, "n": 3}));
    assert_eq!(
        common::read_json(&k),
        json!({"artifacts": {"metrics": {"artifacts": [{"metadata": {"accuracy": 0.9, "n": 3}}]}}})
    );
    // Without the env var, nothing is written.
    std::fs::remove_file(&m).unwrap();
    runtime(code, &[]);
    assert!(!m.exists());
}

/// A pipeline and a task at the 63-character limit: every name the targets derive
/// from them (Tekton's `<pipeline>-<task>` Task, Argo's `task-<task>` template and
/// CronWorkflow name, KFP's `comp-`/`exec-` names, generateName prefixes) fits its
/// limit, passes the validators, and each shortening is an NB302 warning.
#[test]
fn long_names_are_shortened_within_the_limits() {
    let tmp = common::tempdir();
    let pipeline = format!("p{}", "x".repeat(62));
    let task = format!("t{}", "y".repeat(62));
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11.7"}, "nb2pipe": {"name": pipeline, "schedule": "@daily"}},
        "cells": [
            {"cell_type": "code", "id": "c0", "metadata": {"tags": [format!("task:{task}")]}, "source": "x = 1", "outputs": [], "execution_count": null},
            {"cell_type": "code", "id": "c1", "metadata": {"tags": [format!("task:t{}2", "y".repeat(61))]}, "source": "print(x)", "outputs": [], "execution_count": null}
        ]
    });
    let path = tmp.path().join("long.ipynb");
    std::fs::write(&path, serde_json::to_string(&nb).unwrap()).unwrap();
    let mut files = BTreeMap::new();
    for target in TARGETS {
        let out = tmp.path().join(target);
        let (code, _, err) = common::run(&[
            "convert",
            path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(code, 0, "{target}: {err}");
        assert!(err.contains("is longer than"), "{target}: {err}");
        assert!(!err.contains("error["), "{target}: {err}");
        let dir = files_in(&out).pop().unwrap();
        files.insert(target, dir.join(target));
        let plan = common::read_json(&dir.join("plan.json"));
        assert_eq!(plan["pipeline"], json!(pipeline));
    }
    let yaml = |t: &str, f: &str| files[t].join(f);
    validate(
        &py("VALIDATE"),
        "validate_argo.py",
        &[yaml("argo", &format!("{pipeline}.yaml"))],
    );
    validate(
        &py("VALIDATE"),
        "validate_tekton.py",
        &[
            yaml("tekton", &format!("{pipeline}.yaml")),
            yaml("tekton", &format!("{pipeline}-run.yaml")),
        ],
    );
    validate(
        &py("KFP"),
        "validate_kfp.py",
        &[yaml("kfp", &format!("{pipeline}.yaml"))],
    );
    let argo = &yaml_docs(&yaml("argo", &format!("{pipeline}.yaml")))[0];
    assert_eq!(argo["kind"], "CronWorkflow");
    assert!(argo["metadata"]["name"].as_str().unwrap().len() <= 52);
    let tekton = yaml_docs(&yaml("tekton", &format!("{pipeline}.yaml")));
    let names: BTreeSet<String> = tekton
        .iter()
        .filter(|d| d["kind"] == "Task")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // Two long names sharing their first 54 characters stay distinct.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
    let run = &yaml_docs(&yaml("tekton", &format!("{pipeline}-run.yaml")))[0];
    assert!(run["metadata"]["generateName"].as_str().unwrap().len() <= 58);
    validate(
        &py("VALIDATE"),
        "validate_k8s.py",
        &[yaml("job", &format!("{pipeline}.yaml"))],
    );
    let job = &yaml_docs(&yaml("job", &format!("{pipeline}.yaml")))[0];
    assert_eq!(job["kind"], "CronJob");
    assert!(job["metadata"]["name"].as_str().unwrap().len() <= 52);
    let spec = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let names: BTreeSet<String> = arr(&spec["initContainers"])
        .iter()
        .chain(arr(&spec["containers"]).iter())
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
}

/// Argo keeps a failed task's pod (and its logs) and deletes finished workflows after
/// a while; KFP's cache is off for every task (it keys on image, args and parameters,
/// not on the data in the store); the Airflow scheduling settings a notebook sets are
/// NB302 warnings on the targets that drop them, and only when set.
#[test]
fn lifecycle_cache_and_dropped_scheduling_settings() {
    let tmp = common::tempdir();
    let nb = common::fixture("notebooks/settings_all.ipynb");
    let mut stderr = BTreeMap::new();
    for target in TARGETS {
        let out = tmp.path().join(target);
        let (code, _, err) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(code, 0, "{err}");
        stderr.insert(target, err);
    }
    let argo = &yaml_docs(&tmp.path().join("argo/settings-all/argo/settings-all.yaml"))[0];
    let spec = &argo["spec"]["workflowSpec"];
    assert_eq!(spec["podGC"], json!({"strategy": "OnPodSuccess"}));
    assert_eq!(
        spec["ttlStrategy"],
        json!({"secondsAfterSuccess": 86400, "secondsAfterFailure": 604800})
    );
    let kfp = &yaml_docs(&tmp.path().join("kfp/settings-all/kfp/settings-all.yaml"))[0];
    let tasks = kfp["root"]["dag"]["tasks"].as_object().unwrap();
    assert!(!tasks.is_empty());
    for (name, t) in tasks {
        assert_eq!(t["cachingOptions"], json!({"enableCache": false}), "{name}");
    }
    // settings_all sets catchup, start_date 2025-03-01 and max_active_runs 2.
    for (target, err) in &stderr {
        for what in ["catchup", "start_date 2025-03-01", "max_active_runs 2"] {
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("warning[NB302]: {target}: {what}"))),
                "{target}: {what}:\n{err}"
            );
        }
    }
    // diamond sets none of them: no such warning.
    let (code, _, err) = common::run(&[
        "convert",
        common::fixture("notebooks/diamond.ipynb").to_str().unwrap(),
        "-o",
        tmp.path().join("d").to_str().unwrap(),
        "--target",
        "argo,tekton,kfp",
    ]);
    assert_eq!(code, 0, "{err}");
    for what in ["catchup", "start_date", "max_active_runs"] {
        assert!(!err.contains(what), "{err}");
    }
}

/// A Spark task on Argo: a resource template that creates its SparkApplication (valid
/// against the operator's CRD) and waits on its state; the validator is strict.
#[test]
fn spark_task_is_a_spark_application_on_argo() {
    let tmp = common::tempdir();
    let nb = common::fixture("notebooks/spark.ipynb");
    let (code, _, stderr) = common::run(&[
        "convert",
        nb.to_str().unwrap(),
        "-o",
        tmp.path().to_str().unwrap(),
        "--target",
        "argo",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let file = tmp.path().join("spark/argo/spark.yaml");
    let doc: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let templates = doc["spec"]["templates"].as_array().unwrap();
    let t = templates
        .iter()
        .find(|t| t["name"] == "task-aggregate")
        .unwrap();
    let r = &t["resource"];
    assert_eq!(r["action"], "create");
    assert_eq!(
        r["successCondition"],
        "status.applicationState.state == COMPLETED"
    );
    assert_eq!(
        r["failureCondition"],
        "status.applicationState.state in (FAILED,SUBMISSION_FAILED)"
    );
    assert!(t.get("container").is_none());
    let app: serde_json::Value = serde_norway::from_str(r["manifest"].as_str().unwrap()).unwrap();
    let spec = &app["spec"];
    assert_eq!(spec["type"], "Python");
    assert_eq!(spec["mainApplicationFile"], "local:///app/main.py");
    assert_eq!(spec["executor"]["instances"], 3);
    assert_eq!(spec["executor"]["memory"], "2g");
    assert_eq!(spec["executor"]["memoryOverhead"], "512m");
    assert_eq!(spec["sparkConf"]["spark.sql.shuffle.partitions"], "8");
    assert_eq!(spec["restartPolicy"]["onFailureRetries"], 2);
    let env = spec["driver"]["env"].as_array().unwrap();
    assert!(env.iter().any(
        |e| e["name"] == "WAREHOUSE_TOKEN" && e["valueFrom"]["secretKeyRef"]["key"] == "token"
    ));
    assert_eq!(spec["executor"]["nodeSelector"]["pool"], "spark");
    assert_eq!(spec["driver"]["podSecurityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "spark-data"
    );
    // A local-mode task stays an ordinary pod with its Spark master in the env.
    let local = templates
        .iter()
        .find(|t| t["name"] == "task-sample")
        .unwrap();
    let env = local["container"]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "PYSPARK_SUBMIT_ARGS"
        && e["value"] == "--master 'local[2]' --driver-memory 1g pyspark-shell"));
    validate(
        &py("VALIDATE"),
        "validate_spark.py",
        std::slice::from_ref(&file),
    );

    // An unknown field and a wrong type are refused (the schema is strict).
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "pythonVersion: '3'",
        "pythonVersion: '3'\n          deployMode: x",
    );
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(py("VALIDATE"))
        .arg(common::root().join("tests/validate/validate_spark.py"))
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.contains("'deployMode' was unexpected"),
        "{stdout}"
    );
}

/// A Spark task's folder: pyspark pinned to its Spark version, a JVM in its image, its
/// `spark-image:` as the base; a plain task that receives its DataFrame gets pandas and
/// pyarrow (it reads the Parquet files Spark wrote) and no pyspark.
#[test]
fn spark_task_files_pin_pyspark_and_a_pandas_consumer_gets_pyarrow() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("spark.ipynb");
    std::fs::copy(common::fixture("exec/spark.ipynb"), &nb).unwrap();
    std::fs::write(
        tmp.path().join("nb2pipe.toml"),
        "[defaults.spark]\nimage = \"example.org/spark-base:1\"\n",
    )
    .unwrap();
    let (code, _, stderr) = common::run(&[
        "convert",
        nb.to_str().unwrap(),
        "-o",
        tmp.path().join("out").to_str().unwrap(),
        "--target",
        "job",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let dir = tmp.path().join("out/spark/tasks");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let agg = read("aggregate/requirements.txt");
    assert!(agg.lines().any(|l| l == "pyspark==4.3.0"), "{agg}");
    let train = read("train/requirements.txt");
    let names: Vec<&str> = train
        .lines()
        .map(|l| l.split(['=', '<', '>']).next().unwrap())
        .collect();
    assert!(
        names.contains(&"pandas") && names.contains(&"pyarrow"),
        "{train}"
    );
    assert!(!names.contains(&"pyspark"), "{train}");
    assert!(read("aggregate/main.py").contains("    spark=True,\n"));
    assert!(!read("train/main.py").contains("spark=True"));
    let docker = read("aggregate/Dockerfile");
    assert!(
        docker.starts_with("# Image") && docker.contains("FROM example.org/spark-base:1 AS deps"),
        "{docker}"
    );
    assert!(docker.contains("default-jre-headless"), "{docker}");
    assert!(!read("train/Dockerfile").contains("default-jre-headless"));
}

/// `cpu`/`memory` on a cluster-mode Spark task do not size a SparkApplication: NB302.
#[test]
fn cpu_and_memory_of_a_cluster_spark_task_are_reported_unused() {
    let tmp = common::tempdir();
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11.7"}},
        "cells": [
            {"cell_type": "code", "id": "c0", "metadata": {"tags": ["task:big", "spark", "cpu:2", "memory:4Gi"]}, "source": "n = 1", "outputs": [], "execution_count": null},
            {"cell_type": "code", "id": "c1", "metadata": {"tags": ["task:small", "spark"]}, "source": "m = 2", "outputs": [], "execution_count": null}
        ]
    });
    let p = tmp.path().join("sized.ipynb");
    std::fs::write(&p, serde_json::to_string(&nb).unwrap()).unwrap();
    let (code, _, stderr) = common::run(&[
        "convert",
        p.to_str().unwrap(),
        "-o",
        tmp.path().join("out").to_str().unwrap(),
        "--target",
        "argo",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not used: a SparkApplication"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].contains("NB302") && notes[0].contains("cpu 2, memory 4Gi"),
        "{stderr}"
    );
}

/// A scheduled pipeline of one cluster-mode Spark task on the Job target: a
/// ScheduledSparkApplication, valid against the operator's CRD (strict), no NB302 about
/// local mode; a second task makes it a CronJob again (Spark in local mode, NB302).
#[test]
fn scheduled_spark_only_pipeline_is_a_scheduled_spark_application() {
    let tmp = common::tempdir();
    let cell = |id: &str, tags: &[&str], src: &str| json!({"cell_type": "code", "id": id, "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null});
    let write = |name: &str, cells: Vec<Value>| {
        let nb = json!({
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11.7"}},
            "cells": cells
        });
        let p = tmp.path().join(format!("{name}.ipynb"));
        std::fs::write(&p, serde_json::to_string(&nb).unwrap()).unwrap();
        p
    };
    let spark_cell = cell(
        "c0",
        &["task:nightly", "spark", "spark-executor-instances:4", "retries:1"],
        "from pyspark.sql import SparkSession\nspark = SparkSession.builder.getOrCreate()\nn = spark.range(10).count()",
    );
    let convert = |nb: &Path| {
        let out = tmp.path().join("out");
        let (code, _, stderr) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            "job",
            "--schedule",
            "0 3 * * *",
        ]);
        assert_eq!(code, 0, "{stderr}");
        (out, stderr)
    };
    let nb = write("nightly", vec![spark_cell.clone()]);
    let (out, stderr) = convert(&nb);
    assert!(!stderr.contains("local mode"), "{stderr}");
    let file = out.join("nightly/job/nightly.yaml");
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["kind"], "ScheduledSparkApplication");
    assert_eq!(doc["spec"]["schedule"], "0 3 * * *");
    assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid");
    let t = &doc["spec"]["template"];
    assert_eq!(t["type"], "Python");
    assert_eq!(t["executor"]["instances"], 4);
    assert_eq!(t["restartPolicy"]["onFailureRetries"], 1);
    validate(
        &py("VALIDATE"),
        "validate_spark.py",
        std::slice::from_ref(&file),
    );
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "concurrencyPolicy: Forbid",
        "concurrencyPolicy: Forbid\n  startingDeadline: 5",
    );
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, text).unwrap();
    let res = Command::new(py("VALIDATE"))
        .arg(common::root().join("tests/validate/validate_spark.py"))
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        !res.status.success() && stdout.contains("'startingDeadline' was unexpected"),
        "{stdout}"
    );

    let nb = write(
        "nightly",
        vec![spark_cell, cell("c1", &["task:report"], "print(n)")],
    );
    let (out, stderr) = convert(&nb);
    let doc: Value = serde_norway::from_str(
        &std::fs::read_to_string(out.join("nightly/job/nightly.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["kind"], "CronJob");
    assert!(stderr.contains("local mode"), "{stderr}");
}
