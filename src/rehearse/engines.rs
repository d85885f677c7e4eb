//! Each target's pod for a task, as that target's file holds it, and the substitutions
//! its engine makes before the pod reaches the kubelet: the run id and the parameters.
//! A string that still holds an engine expression afterwards is an error, so the
//! rehearsal never runs a pod the engine would have written differently.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::Pod as K8sPod;

use crate::emit::k8s::{Ctx, Subst};
use crate::emit::Note;
use crate::plan::{Plan, Task};

/// The targets whose pods can be rehearsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Airflow,
    Argo,
    Tekton,
    Kfp,
    /// One pod for the whole pipeline: each task is one of its containers.
    Job,
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "airflow" => Some(Target::Airflow),
            "argo" => Some(Target::Argo),
            "tekton" => Some(Target::Tekton),
            "kfp" => Some(Target::Kfp),
            "job" => Some(Target::Job),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Airflow => "airflow",
            Target::Argo => "argo",
            Target::Tekton => "tekton",
            Target::Kfp => "kfp",
            Target::Job => "job",
        }
    }

    pub const NAMES: &'static [&'static str] = &["airflow", "argo", "tekton", "kfp", "job"];

    /// Whether every task is a container of one pod, run one after the other on the
    /// pod's shared volumes (a failed container ends the pod).
    pub fn one_pod(self) -> bool {
        self == Target::Job
    }
}

/// The run id the engine would give a run started now, and the text it substitutes
/// for each parameter.
pub struct EngineRun {
    pub run_id: String,
    /// Parameter → its value as JSON (defaults overridden by `-p`).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The parameters given for this run (the others take the target's defaults).
    pub overridden: Vec<String>,
}

impl EngineRun {
    pub fn new(
        target: Target,
        plan: &Plan,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> EngineRun {
        let mut params = serde_json::Map::new();
        for p in &plan.parameters {
            params.insert(
                p.name.clone(),
                overrides
                    .get(&p.name)
                    .cloned()
                    .unwrap_or_else(|| p.default.clone()),
            );
        }
        let run_id = match target {
            // A run triggered by hand: `manual__` and the logical date.
            Target::Airflow => format!("manual__{}", iso_now()),
            // `{{workflow.uid}}`, `$(context.pipelineRun.uid)`, `{{$.pipeline_job_uuid}}`:
            // the run object's UID; a Job's tasks read their pod's UID.
            Target::Argo | Target::Tekton | Target::Kfp | Target::Job => uuid4(),
        };
        EngineRun {
            run_id,
            params,
            overridden: overrides.keys().cloned().collect(),
        }
    }
}

/// The task's pod as the target emits it (engine expressions still in place).
pub fn emitted_pod(target: Target, plan: &Plan, task: &Task) -> (K8sPod, Vec<Note>) {
    let (pod, notes) = match target {
        Target::Airflow => {
            let mut ctx = Ctx::new(plan, "airflow", Subst::None);
            let pod = crate::emit::airflow::pod_for(&mut ctx, task);
            (pod, ctx.notes)
        }
        Target::Argo => {
            let mut ctx = Ctx::new(plan, "argo", Subst::Argo);
            let pod = crate::emit::argo::pod_for(&mut ctx, task);
            (pod, ctx.notes)
        }
        Target::Tekton => {
            let mut ctx = Ctx::new(plan, "tekton", Subst::Tekton);
            let mut pod = crate::emit::tekton::pod_for(&mut ctx, task);
            // Tekton's controller adds the results folder (an emptyDir) to every pod.
            pod.volumes.push(k8s_openapi::api::core::v1::Volume {
                name: "tekton-internal-results".into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            });
            pod.container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .push(k8s_openapi::api::core::v1::VolumeMount {
                    name: "tekton-internal-results".into(),
                    mount_path: "/tekton/results".into(),
                    ..Default::default()
                });
            (pod, ctx.notes)
        }
        Target::Kfp => {
            let mut ctx = Ctx::new(plan, "kfp", Subst::None);
            let mut pod = crate::emit::kfp::pod_for(&mut ctx, task);
            // KFP's executor template mounts artifact scratch folders (emptyDirs); the
            // launcher's local path of an output artifact is under one of them.
            pod.volumes.push(k8s_openapi::api::core::v1::Volume {
                name: KFP_SCRATCH_VOLUME.into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            });
            pod.container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .push(k8s_openapi::api::core::v1::VolumeMount {
                    name: KFP_SCRATCH_VOLUME.into(),
                    mount_path: KFP_SCRATCH.into(),
                    ..Default::default()
                });
            (pod, ctx.notes)
        }
        Target::Job => {
            let mut ctx = Ctx::new(plan, "job", Subst::None);
            let pod = job_container_pod(&mut ctx, task);
            return (pod, ctx.notes);
        }
    };
    (pod.to_k8s(plan), notes)
}

/// The Job's pod with only `task`'s container (an init container or the main one) as
/// its container: what the kubelet runs for that task, with the pod's volumes and
/// securityContext.
fn job_container_pod(ctx: &mut Ctx<'_>, task: &Task) -> K8sPod {
    let mut pod = crate::emit::job::pod(ctx);
    let name = crate::emit::job::container_name(task);
    if let Some(spec) = pod.spec.as_mut() {
        let mut all: Vec<_> = spec.init_containers.take().unwrap_or_default();
        all.append(&mut spec.containers);
        spec.containers = all.into_iter().filter(|c| c.name == name).collect();
    }
    pod
}

/// A parameter's value as text (what Argo and Tekton substitute): strings as they
/// are, anything else as JSON.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// What Tekton substitutes for `$(params.x)`: the Pipeline's default as written
/// (every `$` doubled), or the run's value as given.
fn tekton_value(plan: &Plan, name: &str, run: &EngineRun, overrides_given: bool) -> String {
    let p = plan.parameters.iter().find(|p| p.name == name);
    match (p, overrides_given) {
        (Some(p), false) => crate::emit::tekton::kubelet_escape(&crate::emit::k8s::param_text(p)),
        _ => run.params.get(name).map(text).unwrap_or_default(),
    }
}

/// KFP's scratch emptyDir for artifacts in its MinIO store, and where it is mounted.
pub const KFP_SCRATCH_VOLUME: &str = "minio-scratch";
pub const KFP_SCRATCH: &str = "/minio";

/// Where KFP's launcher puts a task's output artifact locally (it uploads it to
/// `minio://mlpipeline/v2/artifacts/...` when the task ends).
pub fn kfp_artifact_path(pipeline: &str, run_id: &str, task: &str, artifact: &str) -> String {
    format!("{KFP_SCRATCH}/mlpipeline/v2/artifacts/{pipeline}/{run_id}/{task}/{artifact}")
}

/// What KFP's launcher substitutes for `{{$.inputs.parameters['x']}}`: the pipeline
/// spec's default as written (every `$` doubled), or the run's value as given, as
/// text by its type ([`launcher_text`]).
fn kfp_value(plan: &Plan, name: &str, run: &EngineRun, overrides_given: bool) -> String {
    let p = plan.parameters.iter().find(|p| p.name == name);
    match (p, overrides_given) {
        (Some(p), false) => launcher_text(&crate::emit::kfp::default_as_written(p)),
        _ => run.params.get(name).map(launcher_text).unwrap_or_default(),
    }
}

/// KFP's launcher's text of a parameter value: a string as it is, a number as Go's
/// `FormatFloat(v, 'f', -1, 64)` (shortest digits, never an exponent), a bool as
/// `true`/`false`, a list or struct as Go's `json.Marshal` of the protobuf value.
pub fn launcher_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            // Rust's Display of a float is Go's 'f' with -1 precision.
            _ => format!("{}", n.as_f64().unwrap_or_default()),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        v => {
            let mut out = String::new();
            go_json(v, &mut out);
            out
        }
    }
}

/// Go's `json.Marshal` of a protobuf Struct/ListValue: compact, keys sorted, numbers
/// as protojson writes a double (`1`, `0.5`, `1e+21`), `<`, `>`, `&`, U+2028 and
/// U+2029 escaped.
fn go_json(v: &serde_json::Value, out: &mut String) {
    const GO: JsonDialect = JsonDialect {
        item_sep: ",",
        key_sep: ":",
        number: |n| go_double(n.as_f64().unwrap_or_default()),
        escape: |c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') || (c as u32) < 0x20,
    };
    write_json(v, &GO, out);
}

/// How one JSON writer spells what JSON leaves open.
struct JsonDialect {
    item_sep: &'static str,
    key_sep: &'static str,
    number: fn(&serde_json::Number) -> String,
    /// Characters written as `\uXXXX` (UTF-16 units) besides the short escapes.
    escape: fn(char) -> bool,
}

/// `v` in `d`'s spelling, object keys sorted.
fn write_json(v: &serde_json::Value, d: &JsonDialect, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&(d.number)(n)),
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (d.escape)(c) => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(d.item_sep);
                }
                write_json(x, d, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let sorted: BTreeMap<&String, &Value> = o.iter().collect();
            out.push('{');
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(d.item_sep);
                }
                write_json(&Value::String(k.clone()), d, out);
                out.push_str(d.key_sep);
                write_json(x, d, out);
            }
            out.push('}');
        }
    }
}

/// A double as protojson writes it: shortest digits, fixed notation from 1e-6 up to
/// 1e21, else `1e+21` / `1.5e-7`.
fn go_double(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    match exp {
        -6..=20 => format!("{f}"),
        e if e < 0 => format!("{mant}e{e}"),
        e => format!("{mant}e+{e:02}"),
    }
}

/// The pod after the engine's substitutions for `run`.
pub fn substitute(target: Target, task: &Task, pod: &K8sPod, run: &EngineRun) -> Result<K8sPod> {
    substitute_in(target, None, task, pod, run)
}

/// [`substitute`], knowing the plan (Tekton substitutes a default as the Pipeline
/// writes it).
pub fn substitute_in(
    target: Target,
    plan: Option<&Plan>,
    task: &Task,
    pod: &K8sPod,
    run: &EngineRun,
) -> Result<K8sPod> {
    let mut v = serde_json::to_value(pod)?;
    let mut table: Vec<(String, String)> = Vec::new();
    match target {
        Target::Airflow => {
            table.push((
                crate::emit::airflow::RUN_ID_EXPR.to_string(),
                run.run_id.clone(),
            ));
            if let Some(e) = crate::emit::airflow::params_expr(task) {
                let mut obj = BTreeMap::new();
                for p in &task.parameters {
                    obj.insert(p.clone(), run.params.get(p).cloned().unwrap_or_default());
                }
                table.push((e, jinja_tojson(&obj).replace('$', "$$")));
            }
        }
        Target::Argo => {
            table.push((
                crate::emit::argo::RUN_ID_EXPR.to_string(),
                run.run_id.clone(),
            ));
            for p in &task.parameters {
                let v = run.params.get(p).map(text).unwrap_or_default();
                // The expression doubles every `$` of the value.
                table.push((crate::emit::argo::param_expr(p), v.replace('$', "$$")));
            }
        }
        Target::Tekton => {
            table.push((
                crate::emit::tekton::RUN_ID_EXPR.to_string(),
                run.run_id.clone(),
            ));
            table.push((
                format!("$(results.{}.path)", crate::emit::tekton::METRICS_RESULT),
                format!("/tekton/results/{}", crate::emit::tekton::METRICS_RESULT),
            ));
            for p in &task.parameters {
                let v = match plan {
                    Some(plan) => tekton_value(plan, p, run, run.overridden.contains(p)),
                    None => run.params.get(p).map(text).unwrap_or_default(),
                };
                table.push((format!("$(params.{p})"), v));
            }
        }
        Target::Job => {
            // No engine substitutes: the API server gives the pod its UID, and a
            // parameter's value is edited into the env before `kubectl create`.
            let mut pod = pod.clone();
            pod.metadata.uid = Some(run.run_id.clone());
            for c in pod.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
                for e in c.env.iter_mut().flatten() {
                    let Some(p) = e.name.strip_prefix("NB2PIPE_PARAM_") else {
                        continue;
                    };
                    if run.overridden.iter().any(|o| o == p) {
                        let v = run.params.get(p).map(text).unwrap_or_default();
                        e.value = Some(crate::emit::k8s::k8s_env_escape(&v));
                    }
                }
            }
            return Ok(pod);
        }
        Target::Kfp => {
            table.push((
                crate::emit::kfp::RUN_ID_EXPR.to_string(),
                run.run_id.clone(),
            ));
            let pipeline = plan
                .map(crate::emit::k8s::pipeline_k8s)
                .unwrap_or_else(|| "pipeline".into());
            table.push((
                crate::emit::kfp::metrics_path_expr(),
                kfp_artifact_path(
                    &pipeline,
                    &run.run_id,
                    &task.k8s_name,
                    crate::emit::kfp::METRICS_ARTIFACT,
                ),
            ));
            for p in &task.parameters {
                let v = match plan {
                    Some(plan) => kfp_value(plan, p, run, run.overridden.contains(p)),
                    None => run.params.get(p).map(launcher_text).unwrap_or_default(),
                };
                table.push((crate::emit::kfp::param_expr(p), v));
            }
        }
    }
    replace_strings(&mut v, &table, target)?;
    Ok(serde_json::from_value(v)?)
}

fn replace_strings(
    v: &mut serde_json::Value,
    table: &[(String, String)],
    target: Target,
) -> Result<()> {
    match v {
        serde_json::Value::String(s) => {
            for (from, to) in table {
                if s.contains(from.as_str()) {
                    *s = s.replace(from.as_str(), to);
                }
            }
            // Airflow's user values stay raw in the typed pod (the DAG wraps them so
            // Jinja renders them unchanged); only nb2pipe's own expressions are Jinja.
            let left = match target {
                Target::Airflow => false,
                Target::Argo => s.contains("{{"),
                Target::Tekton => {
                    s.contains("$(params.") || s.contains("$(context.") || s.contains("$(results.")
                }
                Target::Kfp => s.contains("{{$"),
                Target::Job => false,
            };
            if left {
                bail!(
                    "the {} pod holds an expression the rehearsal does not know: {s}",
                    target.name()
                );
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                replace_strings(x, table, target)?;
            }
        }
        serde_json::Value::Object(o) => {
            for (_, x) in o.iter_mut() {
                replace_strings(x, table, target)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Jinja's `tojson` filter: Python's `json.dumps(v, sort_keys=True)` (`", "` and
/// `": "` separators, non-ASCII as `\u` escapes), then `<`, `>`, `&`, `'` escaped.
pub fn jinja_tojson(v: &BTreeMap<String, serde_json::Value>) -> String {
    let mut out = String::new();
    py_dumps(&serde_json::to_value(v).unwrap_or_default(), &mut out);
    out.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027")
}

fn py_dumps(v: &serde_json::Value, out: &mut String) {
    const PY: JsonDialect = JsonDialect {
        item_sep: ", ",
        key_sep: ": ",
        number: |n| match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        // ensure_ascii: everything outside space..`~` (DEL too)
        escape: |c| (c as u32) < 0x20 || (c as u32) > 0x7e,
    };
    write_json(v, &PY, out);
}

/// Python's `repr(float)`: the shortest digits, fixed notation for exponents from
/// -4 to 15, else `d.ddde+XX`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{f:e}"); // shortest digits: `-1.5e-7`
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = format!("{f}");
        if fixed.contains('.') {
            fixed
        } else {
            fixed + ".0"
        }
    } else {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// A random (version 4) UUID, as Kubernetes gives an object's UID.
fn uuid4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = crate::digest::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Now as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (how Airflow writes a logical date).
fn iso_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = crate::exec::utc_stamp(now.as_secs()); // YYYYMMDDTHHMMSSZ
    format!(
        "{}-{}-{}T{}:{}:{}.{:06}+00:00",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15],
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_is_jinjas() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), serde_json::json!("it's <x> & y"));
        m.insert("a".to_string(), serde_json::json!({"z": 1, "y": [2]}));
        m.insert(
            "c".to_string(),
            serde_json::json!([0.25, 1e20, 1e-7, 3.0, "é€😀\u{7f}"]),
        );
        assert_eq!(
            jinja_tojson(&m),
            r#"{"a": {"y": [2], "z": 1}, "b": "it\u0027s \u003cx\u003e \u0026 y", "c": [0.25, 1e+20, 1e-07, 3.0, "\u00e9\u20ac\ud83d\ude00\u007f"]}"#
        );
    }

    #[test]
    fn run_ids_look_like_the_engines() {
        let id = iso_now();
        assert_eq!(id.len(), "2026-12-01T11:32:30.123456+00:00".len(), "{id}");
        assert!(id.ends_with("+00:00") && id.as_bytes()[10] == b'T', "{id}");
    }
}
