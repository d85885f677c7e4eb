//! Airflow: one DAG file with a KubernetesPodOperator per task, importable on Airflow
//! 3.x and 2.10.x. Every Python expression is built here from typed plan values, so the
//! template only lays them out; every user string goes through [`py_str`] and, where
//! Airflow renders the field with Jinja, through [`templated`] first.

use anyhow::Result;
use serde::Serialize;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements, Volume};

use super::k8s::{Ctx, Schedule, Subst};
use super::pyrepr::{py_json, py_str};
use super::{Bundle, EmitContext, Emitter, Note};
use crate::plan::{Plan, Task};
use crate::pod::{pod, EnvSpec, Pod};

pub struct Airflow;

/// LOAD-BEARING: templates/airflow/dag.py.j2 reads these fields by name.
#[derive(Serialize)]
struct DagInfo {
    version: &'static str,
    notebook: String,
    uses_affinity: bool,
    uses_spark: bool,
    dag_kwargs: Vec<(String, String)>,
    tasks: Vec<TaskInfo>,
    edges: Vec<(String, String)>,
}

#[derive(Serialize)]
struct TaskInfo {
    var: String,
    /// `KubernetesPodOperator`, or `SparkKubernetesOperator` for a Spark task.
    operator: &'static str,
    kwargs: Vec<(String, String)>,
}

/// The name of the volume that carries the data store in every pod.
pub const DATA_VOLUME: &str = "nb2pipe-data";

impl Emitter for Airflow {
    fn name(&self) -> &'static str {
        "airflow"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let mut notes = Vec::new();
        let info = dag_info(ctx.plan, &mut notes);
        out.notes.extend(notes);
        let text = dag_text(ctx, info)?;
        out.add(format!("airflow/{}.py", ctx.plan.pipeline), text);
        Ok(())
    }
}

const DAG_TEMPLATE: &str = "airflow/dag.py.j2";

/// The operator variable that marks where the operators go in a render of the built-in
/// template; the render has no other operator, and every other value is a Python
/// literal, so the mark's block is found once or the tasks are rendered after all.
const OPERATORS_MARK: &str = "t_NB2PIPE_OPERATORS";

/// The DAG file. The built-in template is rendered with one empty operator in place of
/// the tasks, and the operators, written as its loop writes them, go where it is (a
/// hundred operators' kwargs through the template engine were half the Airflow
/// target's time). A user's template is rendered with the tasks.
fn dag_text(ctx: &EmitContext<'_>, mut info: DagInfo) -> Result<String> {
    if ctx.templates.is_builtin(DAG_TEMPLATE) {
        let probe_task = TaskInfo {
            var: OPERATORS_MARK.to_string(),
            operator: "",
            kwargs: Vec::new(),
        };
        let tasks = std::mem::replace(&mut info.tasks, vec![probe_task]);
        let probe = ctx.templates.render(DAG_TEMPLATE, &info)?;
        let slot = format!("    {OPERATORS_MARK} = (\n    )\n");
        if let [(at, _)] = probe.match_indices(&slot).collect::<Vec<_>>()[..] {
            let size: usize = tasks
                .iter()
                .flat_map(|t| &t.kwargs)
                .map(|(k, v)| k.len() + v.len() + 11)
                .sum();
            let mut text = String::with_capacity(probe.len() + size + 64 * tasks.len());
            text.push_str(&probe[..at]);
            for t in &tasks {
                operator_text(&mut text, t);
            }
            text.push_str(&probe[at + slot.len()..]);
            return Ok(text);
        }
        info.tasks = tasks;
    }
    ctx.templates.render(DAG_TEMPLATE, &info)
}

/// One operator as the built-in template's loop lays it out.
fn operator_text(out: &mut String, t: &TaskInfo) {
    for part in ["    ", &t.var, " = ", t.operator, "(\n"] {
        out.push_str(part);
    }
    for (k, v) in &t.kwargs {
        for part in ["        ", k, "=", v, ",\n"] {
            out.push_str(part);
        }
    }
    out.push_str("    )\n");
}

/// A Python expression for a string that Airflow renders with Jinja: the value itself
/// when rendering leaves it unchanged, else a Jinja expression that renders to exactly
/// the value. Airflow also treats a string ending in a template extension as a file
/// name, so such values are wrapped too.
pub fn templated(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let risky = s.contains('{')
        || s.contains("%}")
        || s.contains("#}")
        || [
            ".json", ".yaml", ".yml", "json", "yaml", "yml", ".sh", ".sql",
        ]
        .iter()
        .any(|e| lower.ends_with(e));
    if !risky {
        return py_str(s);
    }
    let mut lit = String::from("{{ '");
    for c in s.chars() {
        match c {
            '\\' => lit.push_str("\\\\"),
            '\'' => lit.push_str("\\'"),
            '\n' => lit.push_str("\\n"),
            '\r' => lit.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                lit.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => lit.push(c),
        }
    }
    lit.push_str("' }}");
    py_str(&lit)
}

fn py_dict_templated<'a>(items: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let parts: Vec<String> = items
        .map(|(k, v)| format!("{}: {}", py_str(k), templated(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A Python identifier for a task's operator variable.
fn var_name(task: &Task) -> String {
    format!("t_{}", task.name.replace('-', "_"))
}

fn param_type(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "int" => "integer",
        "float" => "number",
        "str" => "string",
        "bool" => "boolean",
        "list" => "array",
        "dict" => "object",
        _ => return None,
    })
}

/// The Jinja expression of NB2PIPE_PARAMS: the parameters `task` reads, as JSON.
pub fn params_expr(task: &Task) -> Option<String> {
    if task.parameters.is_empty() {
        return None;
    }
    let items: Vec<String> = task
        .parameters
        .iter()
        .map(|p| format!("'{p}': params['{p}']"))
        .collect();
    // The kubelet expands `$(VAR)` and `$$` in env values: every `$` doubled.
    Some(format!(
        "{{{{ {{{}}} | tojson | replace('$', '$$') }}}}",
        items.join(", ")
    ))
}

/// The task's pod as Airflow's pod operator makes it: container `base`, the run id and
/// parameters from Airflow's template context. The rehearsal runs this pod.
pub fn pod_for(ctx: &mut Ctx<'_>, task: &Task) -> Pod {
    let mut extra_env: Vec<(String, String)> = params_expr(task)
        .map(|e| vec![("NB2PIPE_PARAMS".to_string(), e)])
        .unwrap_or_default();
    if task.metrics {
        // A metrics task's numbers become its XCom (`return_value`).
        extra_env.push((
            super::k8s::METRICS_ENV.to_string(),
            format!("{XCOM_DIR}/return.json"),
        ));
    }
    let spec = EnvSpec {
        run_id: RUN_ID_EXPR,
        mount_data: true,
        container_name: "base",
        extra_env,
        ..Default::default()
    };
    let mut p = pod(ctx, task, &spec);
    if task.metrics {
        // What the operator adds with do_xcom_push (its sidecar reads the file).
        // First, where the operator puts them.
        p.volumes.insert(
            0,
            Volume {
                name: XCOM_VOLUME.into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            },
        );
        p.container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .insert(
                0,
                k8s_openapi::api::core::v1::VolumeMount {
                    name: XCOM_VOLUME.into(),
                    mount_path: XCOM_DIR.into(),
                    ..Default::default()
                },
            );
    }
    p
}

/// The folder and volume the pod operator adds for XCom (`do_xcom_push=True`).
pub const XCOM_DIR: &str = "/airflow/xcom";
const XCOM_VOLUME: &str = "xcom";

/// Env vars whose value is nb2pipe's own Jinja (rendered by Airflow on purpose).
const JINJA_ENV: [&str; 2] = ["NB2PIPE_RUN_ID", "NB2PIPE_PARAMS"];

/// Airflow's run id in a template.
pub const RUN_ID_EXPR: &str = "{{ run_id }}";

fn dag_info(plan: &Plan, notes: &mut Vec<Note>) -> DagInfo {
    let s = &plan.settings;
    let mut dag: Vec<(String, String)> = Vec::new();
    let kv = |k: &str, v: String| (k.to_string(), v);
    dag.push(kv("dag_id", py_str(&plan.pipeline)));
    dag.push(kv(
        "description",
        py_str(
            s.description
                .as_deref()
                .unwrap_or(&format!("nb2pipe pipeline from {}", plan.notebook)),
        ),
    ));
    let schedule = s.schedule.as_deref().and_then(|text| {
        let refused = match Schedule::parse(text).map(|x| x.airflow()) {
            Ok(Ok(e)) => return Some(e),
            Ok(Err(r)) => r.0,
            Err(e) => e,
        };
        notes.push(Note {
            target: "airflow",
            task: None,
            error: true,
            message: format!("{refused}; change the schedule or leave this target out"),
        });
        None
    });
    dag.push(kv(
        "schedule",
        schedule
            .as_ref()
            .map(|e| py_str(&e.schedule))
            .unwrap_or_else(|| "None".into()),
    ));
    let continuous = schedule
        .as_ref()
        .is_some_and(|e| e.schedule == "@continuous");
    let (y, m, d) = {
        let p: Vec<u32> = s
            .start_date
            .split('-')
            .map(|x| x.parse().unwrap_or(1))
            .collect();
        (
            p.first().copied().unwrap_or(2024),
            p.get(1).copied().unwrap_or(1),
            p.get(2).copied().unwrap_or(1),
        )
    };
    dag.push(kv(
        "start_date",
        format!(
            "pendulum.datetime({y}, {m}, {d}, tz={})",
            // The DAG's zone is its start_date's: the cron runs in it.
            match schedule.as_ref().and_then(|e| e.zone.as_deref()) {
                Some(z) => py_str(z),
                None => "\"UTC\"".into(),
            }
        ),
    ));
    dag.push(kv(
        "catchup",
        if s.catchup { "True" } else { "False" }.into(),
    ));
    match s.max_active_runs {
        Some(n) if continuous && n > 1 => notes.push(Note {
            target: "airflow",
            task: None,
            error: true,
            message: format!("schedule `@continuous` runs one DAG run at a time; Airflow refuses max_active_runs {n} with it"),
        }),
        Some(n) => dag.push(kv("max_active_runs", n.to_string())),
        // Airflow's default (16) is refused with @continuous.
        None if continuous => dag.push(kv("max_active_runs", "1".into())),
        None => {}
    }
    let mut tags = vec!["nb2pipe".to_string()];
    tags.extend(s.tags.iter().cloned());
    dag.push(kv(
        "tags",
        format!(
            "[{}]",
            tags.iter()
                .map(|t| py_str(t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    let params: Vec<String> = plan
        .parameters
        .iter()
        .map(|p| {
            let ty = param_type(&p.ty)
                .map(|t| format!(", type={}", py_str(t)))
                .unwrap_or_default();
            format!("{}: Param({}{ty})", py_str(&p.name), py_json(&p.default))
        })
        .collect();
    dag.push(kv("params", format!("{{{}}}", params.join(", "))));
    dag.push(kv("render_template_as_native_obj", "False".into()));

    let mut uses_affinity = false;
    let mut uses_spark = false;
    let mut ctx = Ctx::new(plan, "airflow", Subst::None);
    let tasks = plan
        .tasks
        .iter()
        .map(|t| {
            let pod = pod_for(&mut ctx, t);
            if let Some(spark) = crate::emit::spark::cluster(t) {
                uses_spark = true;
                return TaskInfo {
                    var: var_name(t),
                    operator: "SparkKubernetesOperator",
                    kwargs: spark_kwargs(&mut ctx, t, spark, pod),
                };
            }
            uses_affinity |= pod.affinity.is_some();
            TaskInfo {
                var: var_name(t),
                operator: "KubernetesPodOperator",
                kwargs: operator_kwargs(plan, t, &pod),
            }
        })
        .collect();
    notes.extend(ctx.notes);
    let edges = plan
        .edges
        .iter()
        .filter_map(|e| Some((var_name(plan.task(&e.from)?), var_name(plan.task(&e.to)?))))
        .collect();
    DagInfo {
        version: env!("CARGO_PKG_VERSION"),
        notebook: py_str(&plan.notebook),
        uses_affinity,
        uses_spark,
        dag_kwargs: dag,
        tasks,
        edges,
    }
}

/// A Spark task's SparkKubernetesOperator arguments: its SparkApplication as
/// `template_spec`, a dict Airflow renders string by string.
fn spark_kwargs(
    ctx: &mut Ctx<'_>,
    t: &Task,
    spark: &crate::plan::Spark,
    mut pod: Pod,
) -> Vec<(String, String)> {
    use crate::emit::spark;
    let plan = ctx.plan;
    if t.metrics {
        ctx.cannot(
            Some(&t.name),
            "metrics: a Spark task's metrics stay in the driver's log (no XCom from a SparkApplication)",
        );
    }
    // Only the pod operator reads this folder.
    pod.volumes.retain(|v| v.name != XCOM_VOLUME);
    if let Some(m) = pod.container.volume_mounts.as_mut() {
        m.retain(|m| m.name != XCOM_VOLUME);
    }
    pod.container
        .env
        .get_or_insert_with(Vec::new)
        .retain(|e| e.name != super::k8s::METRICS_ENV);
    let name = spark::name(ctx, t);
    let app = spark::application(ctx, t, spark, pod, name);
    let value = serde_json::to_value(&app).expect("a SparkApplication serialises");
    let s = &plan.settings;
    let ts = &t.settings;
    let mut kw: Vec<(String, String)> = Vec::new();
    let mut k = |key: &str, v: String| kw.push((key.to_string(), v));
    k("task_id", py_str(&t.name));
    k("namespace", templated(&s.namespace));
    k("template_spec", py_templated_json(&value, false));
    if let Some(p) = &ts.pool {
        k("pool", py_str(p));
    }
    if let Some(secs) = ts.timeout_seconds {
        k(
            "execution_timeout",
            format!("datetime.timedelta(seconds={secs})"),
        );
    }
    k(
        "startup_timeout_seconds",
        s.startup_timeout_seconds.to_string(),
    );
    k("get_logs", "True".into());
    k("delete_on_termination", "True".into());
    kw
}

/// A Python literal of `v` whose strings render to themselves under Airflow's Jinja
/// ([`templated`]), except the values of nb2pipe's own Jinja env vars; `jinja`: `v` is one.
fn py_templated_json(v: &serde_json::Value, jinja: bool) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) if jinja => py_str(s),
        Value::String(s) => templated(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| py_templated_json(x, false)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let own = o
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| JINJA_ENV.contains(&n));
            let items: Vec<String> = o
                .iter()
                .map(|(k, x)| {
                    format!(
                        "{}: {}",
                        py_str(k),
                        py_templated_json(x, own && k == "value")
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => py_json(other),
    }
}

/// The pod operator's arguments for `task`, read off its typed pod.
fn operator_kwargs(plan: &Plan, t: &Task, pod: &Pod) -> Vec<(String, String)> {
    let s = &plan.settings;
    let c = &pod.container;
    let mut kw: Vec<(String, String)> = Vec::new();
    let mut k = |key: &str, v: String| kw.push((key.to_string(), v));
    k("task_id", py_str(&t.name));
    k(
        "name",
        py_str(&format!(
            "{}-{}",
            plan.pipeline.replace('_', "-"),
            t.k8s_name
        )),
    );
    k("namespace", templated(&s.namespace));
    k("image", templated(c.image.as_deref().unwrap_or_default()));
    k(
        "image_pull_policy",
        py_str(c.image_pull_policy.as_deref().unwrap_or("IfNotPresent")),
    );
    let cmds: Vec<String> = c.command.iter().flatten().map(|a| py_str(a)).collect();
    k("cmds", format!("[{}]", cmds.join(", ")));
    let env: Vec<String> = c.env.iter().flatten().map(env_var).collect();
    k("env_vars", format!("[{}]", env.join(", ")));
    if let Some(from) = c.env_from.as_ref().filter(|f| !f.is_empty()) {
        let items: Vec<String> = from.iter().map(env_from).collect();
        k("env_from", format!("[{}]", items.join(", ")));
    }
    if let Some(r) = &c.resources {
        k("container_resources", resources(r));
    }
    // The operator adds the XCom volume and mount itself.
    let volumes: Vec<&Volume> = pod
        .volumes
        .iter()
        .filter(|v| v.name != XCOM_VOLUME)
        .collect();
    if !volumes.is_empty() {
        let items: Vec<String> = volumes.into_iter().map(volume).collect();
        k("volumes", format!("[{}]", items.join(", ")));
    }
    if let Some(m) = c.volume_mounts.as_ref().filter(|m| !m.is_empty()) {
        let items: Vec<String> = m
            .iter()
            .filter(|m| m.name != XCOM_VOLUME)
            .map(|m| {
                let ro = if m.read_only == Some(true) {
                    ", read_only=True"
                } else {
                    ""
                };
                format!(
                    "k8s.V1VolumeMount(name={}, mount_path={}{ro})",
                    templated(&m.name),
                    py_str(&m.mount_path)
                )
            })
            .collect();
        k("volume_mounts", format!("[{}]", items.join(", ")));
    }
    if !pod.node_selector.is_empty() {
        k("node_selector", py_dict_templated(pod.node_selector.iter()));
    }
    if !pod.tolerations.is_empty() {
        let items: Vec<String> = pod
            .tolerations
            .iter()
            .map(|tol| {
                let mut a = Vec::new();
                let mut opt = |f: &str, v: &Option<String>| {
                    if let Some(v) = v {
                        a.push(format!("{f}={}", py_str(v)));
                    }
                };
                opt("key", &tol.key);
                opt("operator", &tol.operator);
                opt("value", &tol.value);
                opt("effect", &tol.effect);
                if let Some(sec) = tol.toleration_seconds {
                    a.push(format!("toleration_seconds={sec}"));
                }
                format!("k8s.V1Toleration({})", a.join(", "))
            })
            .collect();
        k("tolerations", format!("[{}]", items.join(", ")));
    }
    if let Some(aff) = &t.settings.affinity {
        k(
            "affinity",
            format!("_k8s_model({}, \"V1Affinity\")", py_json(aff)),
        );
    }
    k("labels", py_dict_templated(pod.labels.iter()));
    if !pod.annotations.is_empty() {
        k("annotations", py_dict_templated(pod.annotations.iter()));
    }
    k("security_context", json_arg(&pod.security_context));
    if let Some(sc) = &c.security_context {
        k("container_security_context", json_arg(sc));
    }
    let ts = &t.settings;
    if let Some(p) = &ts.pool {
        k("pool", py_str(p));
    }
    k("retries", ts.retries.to_string());
    k(
        "retry_delay",
        format!("datetime.timedelta(seconds={})", ts.retry_delay_seconds),
    );
    if let Some(secs) = ts.timeout_seconds {
        k(
            "execution_timeout",
            format!("datetime.timedelta(seconds={secs})"),
        );
    }
    k(
        "startup_timeout_seconds",
        s.startup_timeout_seconds.to_string(),
    );
    if let Some(sa) = &s.service_account {
        k("service_account_name", py_str(sa));
    }
    if !s.image_pull_secrets.is_empty() {
        let items: Vec<String> = s
            .image_pull_secrets
            .iter()
            .map(|n| format!("k8s.V1LocalObjectReference(name={})", py_str(n)))
            .collect();
        k("image_pull_secrets", format!("[{}]", items.join(", ")));
    }
    if t.metrics {
        k("do_xcom_push", "True".into());
    }
    k("get_logs", "True".into());
    k("on_finish_action", "\"delete_pod\"".into());
    kw
}

/// A k8s object as the Python dict the pod operator accepts (its JSON field names).
fn json_arg<T: serde::Serialize>(v: &T) -> String {
    py_json(&serde_json::to_value(v).expect("k8s values serialise"))
}

fn env_var(e: &EnvVar) -> String {
    if let Some(v) = &e.value {
        let value = if JINJA_ENV.contains(&e.name.as_str()) {
            py_str(v)
        } else {
            templated(v)
        };
        return format!("k8s.V1EnvVar(name={}, value={value})", py_str(&e.name));
    }
    let sk = e
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
        .expect("env vars are values or secret keys");
    format!(
        "k8s.V1EnvVar(name={}, value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name={}, key={})))",
        py_str(&e.name),
        py_str(&sk.name),
        py_str(&sk.key)
    )
}

fn env_from(f: &EnvFromSource) -> String {
    match (&f.secret_ref, &f.config_map_ref) {
        (Some(s), _) => format!(
            "k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name={}))",
            py_str(&s.name)
        ),
        (None, Some(c)) => format!(
            "k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name={}))",
            templated(&c.name)
        ),
        (None, None) => unreachable!("env sources are secrets or config maps"),
    }
}

fn resources(r: &ResourceRequirements) -> String {
    let dict = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        let items: Vec<String> = m
            .iter()
            .flatten()
            .map(|(k, v)| format!("{}: {}", py_str(k), py_str(&v.0)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    format!(
        "k8s.V1ResourceRequirements(requests={}, limits={})",
        dict(&r.requests),
        dict(&r.limits)
    )
}

fn volume(v: &Volume) -> String {
    let name = templated(&v.name);
    if let Some(p) = &v.persistent_volume_claim {
        format!(
            "k8s.V1Volume(name={name}, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name={}))",
            templated(&p.claim_name)
        )
    } else if let Some(s) = &v.secret {
        format!(
            "k8s.V1Volume(name={name}, secret=k8s.V1SecretVolumeSource(secret_name={}))",
            py_str(s.secret_name.as_deref().unwrap_or_default())
        )
    } else {
        format!("k8s.V1Volume(name={name}, empty_dir=k8s.V1EmptyDirVolumeSource())")
    }
}

#[cfg(test)]
mod tests {
    use super::templated;

    /// The built-in template rendered around its marked slot gives the file a full render
    /// of the same text (as a user's template) gives, on every fixture notebook.
    #[test]
    fn the_spliced_builtin_dag_equals_a_full_render() {
        use crate::emit::{EmitContext, EmitOptions, Templates};
        let (_dir, user) = Templates::with_user_file(
            super::DAG_TEMPLATE,
            include_str!("../../templates/airflow/dag.py.j2"),
        );
        let builtin = Templates::builtin();
        assert!(builtin.is_builtin(super::DAG_TEMPLATE) && !user.is_builtin(super::DAG_TEMPLATE));
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/notebooks");
        let mut compared = 0;
        for e in std::fs::read_dir(fixtures).unwrap() {
            let path = e.unwrap().path();
            let loaded = crate::commands::load(&path, &Default::default());
            let Some(plan) = loaded.plan.filter(|p| !p.tasks.is_empty()) else {
                continue;
            };
            let text = |templates: &Templates| {
                let ctx = EmitContext {
                    plan: &plan,
                    templates,
                    options: &EmitOptions::default(),
                };
                super::dag_text(&ctx, super::dag_info(&plan, &mut Vec::new())).unwrap()
            };
            let spliced = text(&builtin);
            assert!(
                !spliced.contains(super::OPERATORS_MARK),
                "{}",
                path.display()
            );
            assert_eq!(spliced, text(&user), "{}", path.display());
            compared += 1;
        }
        assert!(compared >= 8, "only {compared} fixtures have a plan");
    }

    #[test]
    fn templated_values_are_escaped_for_jinja() {
        assert_eq!(templated("plain"), "\"plain\"");
        assert_eq!(templated("{{ x }}"), r#""{{ '{{ x }}' }}""#);
        assert_eq!(templated("it's"), "\"it's\"");
        assert_eq!(templated("a{b'c"), r#""{{ 'a{b\\'c' }}""#);
        assert_eq!(templated("conf.yaml"), r#""{{ 'conf.yaml' }}""#);
    }
}
