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
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "airflow" => Some(Target::Airflow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Airflow => "airflow",
        }
    }

    pub const NAMES: &'static [&'static str] = &["airflow"];
}

/// The run id the engine would give a run started now, and the text it substitutes
/// for each parameter.
pub struct EngineRun {
    pub run_id: String,
    /// Parameter → its value as JSON (defaults overridden by `-p`).
    pub params: serde_json::Map<String, serde_json::Value>,
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
        };
        EngineRun { run_id, params }
    }
}

/// The task's pod as the target emits it (engine expressions still in place).
pub fn emitted_pod(target: Target, plan: &Plan, task: &Task) -> (K8sPod, Vec<Note>) {
    match target {
        Target::Airflow => {
            let mut ctx = Ctx::new(plan, "airflow", Subst::None);
            let pod = crate::emit::airflow::pod_for(&mut ctx, task);
            (pod.to_k8s(plan), ctx.notes)
        }
    }
}

/// The pod after the engine's substitutions for `run`.
pub fn substitute(target: Target, task: &Task, pod: &K8sPod, run: &EngineRun) -> Result<K8sPod> {
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
                table.push((e, jinja_tojson(&obj)));
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
            let left = match target {
                Target::Airflow => s.contains("{{"),
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

/// Jinja's `tojson` filter: sorted keys, and `<`, `>`, `&`, `'` as `\u` escapes.
pub fn jinja_tojson(v: &BTreeMap<String, serde_json::Value>) -> String {
    let text = serde_json::to_string(&sorted(&serde_json::to_value(v).unwrap_or_default()))
        .unwrap_or_default();
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027")
}

fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(o) => {
            let m: BTreeMap<&String, serde_json::Value> =
                o.iter().map(|(k, x)| (k, sorted(x))).collect();
            serde_json::Value::Object(m.into_iter().map(|(k, x)| (k.clone(), x)).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        x => x.clone(),
    }
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
        assert_eq!(
            jinja_tojson(&m),
            r#"{"a":{"y":[2],"z":1},"b":"it\u0027s \u003cx\u003e \u0026 y"}"#
        );
    }

    #[test]
    fn run_ids_look_like_the_engines() {
        let id = iso_now();
        assert_eq!(id.len(), "2026-12-01T11:32:30.123456+00:00".len(), "{id}");
        assert!(id.ends_with("+00:00") && id.as_bytes()[10] == b'T', "{id}");
    }
}
