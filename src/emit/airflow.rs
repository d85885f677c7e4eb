//! Airflow: one DAG file with a KubernetesPodOperator per task, importable on Airflow
//! 3.x and 2.10.x. Every Python expression is built here from typed plan values, so the
//! template only lays them out; every user string goes through [`py_str`] and, where
//! Airflow renders the field with Jinja, through [`templated`] first.

use anyhow::Result;
use serde::Serialize;

use super::pyrepr::{py_json, py_str};
use super::{Bundle, EmitContext, Emitter};
use crate::plan::{DataStore, Plan, Task};

pub struct Airflow;

/// LOAD-BEARING: templates/airflow/dag.py.j2 reads these fields by name.
#[derive(Serialize)]
struct DagInfo {
    version: &'static str,
    notebook: String,
    data_volume: String,
    data_mount: String,
    uses_affinity: bool,
    dag_kwargs: Vec<(String, String)>,
    tasks: Vec<TaskInfo>,
    edges: Vec<(String, String)>,
}

#[derive(Serialize)]
struct TaskInfo {
    var: String,
    kwargs: Vec<(String, String)>,
}

/// The name of the volume that carries the data store in every pod.
pub const DATA_VOLUME: &str = "nb2pipe-data";

impl Emitter for Airflow {
    fn name(&self) -> &'static str {
        "airflow"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let info = dag_info(ctx.plan);
        let text = ctx.templates.render("airflow/dag.py.j2", &info)?;
        out.add(format!("airflow/{}.py", ctx.plan.pipeline), text);
        Ok(())
    }
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

fn py_dict<'a>(items: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let parts: Vec<String> = items
        .map(|(k, v)| format!("{}: {}", py_str(k), py_str(v)))
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

fn dag_info(plan: &Plan) -> DagInfo {
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
    dag.push(kv(
        "schedule",
        s.schedule
            .as_deref()
            .map(py_str)
            .unwrap_or_else(|| "None".into()),
    ));
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
        format!("pendulum.datetime({y}, {m}, {d}, tz=\"UTC\")"),
    ));
    dag.push(kv(
        "catchup",
        if s.catchup { "True" } else { "False" }.into(),
    ));
    if let Some(n) = s.max_active_runs {
        dag.push(kv("max_active_runs", n.to_string()));
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

    let (data_env, data_mount): (String, String) = match &s.data {
        DataStore::Volume { mount_path, .. } => (mount_path.clone(), mount_path.clone()),
        DataStore::S3 { url, .. } => (url.clone(), String::new()),
    };
    let mut uses_affinity = false;
    let tasks = plan
        .tasks
        .iter()
        .map(|t| {
            let ts = &t.settings;
            let mut kw: Vec<(String, String)> = Vec::new();
            let mut k = |key: &str, v: String| kw.push((key.to_string(), v));
            k("task_id", py_str(&t.name));
            k("name", py_str(&format!("{}-{}", plan.pipeline.replace('_', "-"), t.k8s_name)));
            k("namespace", templated(&s.namespace));
            k("image", templated(&t.image.reference));
            k("image_pull_policy", py_str(&ts.image_pull_policy));
            k("cmds", "[\"python\", \"/app/main.py\"]".into());
            // Our own Jinja (run id, params) is trusted; user values are escaped.
            let mut env: Vec<String> = vec![
                format!("\"NB2PIPE_PIPELINE\": {}", templated(&plan.pipeline)),
                format!("\"NB2PIPE_TASK\": {}", templated(&t.name)),
                "\"NB2PIPE_RUN_ID\": \"{{ run_id }}\"".to_string(),
                format!("\"NB2PIPE_DATA\": {}", templated(&data_env)),
            ];
            if let DataStore::S3 { endpoint: Some(e), .. } = &s.data {
                env.push(format!("\"NB2PIPE_S3_ENDPOINT\": {}", templated(e)));
            }
            if let DataStore::S3 { region: Some(r), .. } = &s.data {
                env.push(format!("\"AWS_DEFAULT_REGION\": {}", templated(r)));
            }
            if !t.parameters.is_empty() {
                let items: Vec<String> = t.parameters.iter().map(|p| format!("'{p}': params['{p}']")).collect();
                env.push(format!("\"NB2PIPE_PARAMS\": {}", py_str(&format!("{{{{ {{{}}} | tojson }}}}", items.join(", ")))));
            }
            // Kubernetes expands `$(VAR)` in env values: every `$` is doubled to keep the value.
            for (key, v) in &ts.env {
                env.push(format!("{}: {}", py_str(key), templated(&super::k8s::k8s_env_escape(v))));
            }
            k("env_vars", format!("{{{}}}", env.join(", ")));
            let mut secrets: Vec<String> = Vec::new();
            for sr in &ts.secrets {
                secrets.push(match (&sr.key, &sr.env, &sr.mount_path) {
                    (_, _, Some(path)) => format!("Secret(\"volume\", {}, {})", py_str(path), py_str(&sr.name)),
                    (Some(key), Some(env), None) => format!("Secret(\"env\", {}, {}, {})", py_str(env), py_str(&sr.name), py_str(key)),
                    _ => format!("Secret(\"env\", None, {})", py_str(&sr.name)),
                });
            }
            if let DataStore::S3 { secret: Some(sec), .. } = &s.data {
                secrets.push(format!("Secret(\"env\", None, {})", py_str(sec)));
            }
            if !secrets.is_empty() {
                k("secrets", format!("[{}]", secrets.join(", ")));
            }
            if !ts.config_maps.is_empty() {
                let items: Vec<String> = ts.config_maps.iter().map(|c| format!("k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name={}))", py_str(c))).collect();
                k("env_from", format!("[{}]", items.join(", ")));
            }
            if !ts.resources.is_empty() {
                k(
                    "container_resources",
                    format!(
                        "k8s.V1ResourceRequirements(requests={}, limits={})",
                        py_dict(ts.resources.requests.iter()),
                        py_dict(ts.resources.limits.iter())
                    ),
                );
            }
            if let DataStore::Volume { claim, .. } = &s.data {
                k("volumes", format!("[k8s.V1Volume(name=DATA_VOLUME, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name={}))]", py_str(claim)));
                k("volume_mounts", "[k8s.V1VolumeMount(name=DATA_VOLUME, mount_path=DATA_MOUNT)]".into());
            }
            if !ts.node_selector.is_empty() {
                k("node_selector", py_dict_templated(ts.node_selector.iter()));
            }
            if !ts.tolerations.is_empty() {
                let items: Vec<String> = ts
                    .tolerations
                    .iter()
                    .map(|tol| {
                        let mut a = vec![format!("key={}", py_str(&tol.key)), format!("operator={}", py_str(&tol.operator))];
                        if let Some(v) = &tol.value {
                            a.push(format!("value={}", py_str(v)));
                        }
                        if let Some(e) = &tol.effect {
                            a.push(format!("effect={}", py_str(e)));
                        }
                        if let Some(sec) = tol.toleration_seconds {
                            a.push(format!("toleration_seconds={sec}"));
                        }
                        format!("k8s.V1Toleration({})", a.join(", "))
                    })
                    .collect();
                k("tolerations", format!("[{}]", items.join(", ")));
            }
            if let Some(aff) = &ts.affinity {
                uses_affinity = true;
                k("affinity", format!("_k8s_model({}, \"V1Affinity\")", py_json(aff)));
            }
            let mut labels = ts.labels.clone();
            labels.insert("app.kubernetes.io/managed-by".into(), "nb2pipe".into());
            labels.insert("nb2pipe/pipeline".into(), plan.pipeline.replace('_', "-"));
            labels.insert("nb2pipe/task".into(), t.k8s_name.clone());
            k("labels", py_dict_templated(labels.iter()));
            if !ts.annotations.is_empty() {
                k("annotations", py_dict_templated(ts.annotations.iter()));
            }
            if let Some(p) = &ts.pool {
                k("pool", py_str(p));
            }
            k("retries", ts.retries.to_string());
            k("retry_delay", format!("datetime.timedelta(seconds={})", ts.retry_delay_seconds));
            if let Some(secs) = ts.timeout_seconds {
                k("execution_timeout", format!("datetime.timedelta(seconds={secs})"));
            }
            if let Some(sa) = &s.service_account {
                k("service_account_name", py_str(sa));
            }
            if !s.image_pull_secrets.is_empty() {
                let items: Vec<String> = s.image_pull_secrets.iter().map(|n| format!("k8s.V1LocalObjectReference(name={})", py_str(n))).collect();
                k("image_pull_secrets", format!("[{}]", items.join(", ")));
            }
            k("get_logs", "True".into());
            k("on_finish_action", "\"delete_pod\"".into());
            TaskInfo { var: var_name(t), kwargs: kw }
        })
        .collect();
    let edges = plan
        .edges
        .iter()
        .filter_map(|e| Some((var_name(plan.task(&e.from)?), var_name(plan.task(&e.to)?))))
        .collect();
    DagInfo {
        version: env!("CARGO_PKG_VERSION"),
        notebook: py_str(&plan.notebook),
        data_volume: py_str(DATA_VOLUME),
        data_mount: py_str(&data_mount),
        uses_affinity,
        dag_kwargs: dag,
        tasks,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::templated;

    #[test]
    fn templated_values_are_escaped_for_jinja() {
        assert_eq!(templated("plain"), "\"plain\"");
        assert_eq!(templated("{{ x }}"), r#""{{ '{{ x }}' }}""#);
        assert_eq!(templated("it's"), "\"it's\"");
        assert_eq!(templated("a{b'c"), r#""{{ 'a{b\\'c' }}""#);
        assert_eq!(templated("conf.yaml"), r#""{{ 'conf.yaml' }}""#);
    }
}
