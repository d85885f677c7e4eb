//! Airflow tier: every fixture's DAG is imported by real Airflow 3.3 and 2.10 (DagBag,
//! no database), and each KubernetesPodOperator's pod, built by the provider itself,
//! must carry exactly what plan.json says. Needs NB2PIPE_PY_AIRFLOW3/2 (see tests/env).

mod common;

use nb2pipe::rehearse::engines;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

fn probe(python: &Path, dag: &Path) -> Value {
    let out = std::process::Command::new(python)
        .arg(common::root().join("tests/env/airflow_probe.py"))
        .arg(dag)
        .env("AIRFLOW_HOME", common::tempdir().keep())
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .output()
        .expect("the Airflow probe runs");
    assert!(
        out.status.success(),
        "probe crashed on {}:\n{}",
        dag.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Kubernetes' env value expansion with no variables defined: `$$` → `$`, `$(X)` kept.
fn k8s_expand(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'$') {
            chars.next();
        }
        out.push(c);
    }
    out
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks one fixture's DAG against its plan on one Airflow version.
/// A Spark task: a SparkKubernetesOperator whose rendered SparkApplication is valid
/// against the operator's CRD and carries the task's image, run id, parameters, retries.
fn spark_task(_python: &Path, dir: &Path, t: &Value, details: &Value, plan: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if details["operator"] != "SparkKubernetesOperator" {
        errs.push(format!("operator {}", details["operator"]));
    }
    let app = &details["spark"];
    let spec = &app["spec"];
    if spec["image"] != t["image"]["reference"] {
        errs.push(format!("image {}", spec["image"]));
    }
    let retries = spec["restartPolicy"]["onFailureRetries"]
        .as_u64()
        .unwrap_or(0);
    if Some(retries) != t["settings"]["retries"].as_u64() {
        errs.push(format!("retries {retries}"));
    }
    let env: BTreeMap<&str, &Value> = spec["driver"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["name"].as_str().unwrap(), &e["value"]))
        .collect();
    if env.get("NB2PIPE_RUN_ID").and_then(|v| v.as_str()) != Some("r1") {
        errs.push(format!(
            "run id not rendered: {:?}",
            env.get("NB2PIPE_RUN_ID")
        ));
    }
    let params: Value = env
        .get("NB2PIPE_PARAMS")
        .and_then(|v| v.as_str())
        .map(|v| serde_json::from_str(v).unwrap())
        .unwrap_or(Value::Null);
    for p in plan["parameters"].as_array().unwrap() {
        if params[p["name"].as_str().unwrap()] != p["default"] {
            errs.push(format!("parameter {} = {}", p["name"], params));
        }
    }
    let file = dir.join(format!("{}-spark.yaml", t["name"].as_str().unwrap()));
    std::fs::write(&file, serde_norway::to_string(app).unwrap()).unwrap();
    let out = std::process::Command::new(common::python_env("VALIDATE"))
        .arg(common::root().join("tests/validate/validate_spark.py"))
        .arg(&file)
        .output()
        .unwrap();
    if !out.status.success() {
        errs.push(format!(
            "SparkApplication invalid: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    errs
}

fn check_fixture(python: &Path, version: &str, nb: &Path) -> Vec<String> {
    let tmp = common::tempdir();
    let bundle = common::convert(nb, tmp.path(), &[]);
    let plan = common::read_json(&bundle.join("plan.json"));
    let pipeline = plan["pipeline"].as_str().unwrap();
    let dag_file = bundle.join(format!("airflow/{pipeline}.py"));
    let got = probe(python, &dag_file);
    let mut errs = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errs.push(format!(
                "[{version}] {}: {what}",
                nb.file_name().unwrap().to_string_lossy()
            ));
        }
    };
    let import_errors = got["import_errors"]
        .as_object()
        .map(|o| o.len())
        .unwrap_or(0);
    check(
        import_errors == 0,
        format!("import errors: {}", got["import_errors"]),
    );
    let dag = &got["dags"][pipeline];
    check(
        dag.is_object(),
        format!(
            "DAG `{pipeline}` not found; dags: {:?}",
            got["dags"]
                .as_object()
                .map(|o| o.keys().collect::<Vec<_>>())
        ),
    );
    if !dag.is_object() {
        return errs;
    }
    // Tasks and edges.
    let plan_tasks: BTreeSet<String> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let dag_tasks: BTreeSet<String> = strs(&dag["tasks"]).into_iter().collect();
    check(
        plan_tasks == dag_tasks,
        format!("tasks {dag_tasks:?} != plan {plan_tasks:?}"),
    );
    let plan_edges: BTreeSet<(String, String)> = plan["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let dag_edges: BTreeSet<(String, String)> = dag["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    check(
        plan_edges == dag_edges,
        format!("edges {dag_edges:?} != plan {plan_edges:?}"),
    );
    // DAG-level settings.
    let s = &plan["settings"];
    check(
        dag["schedule"].as_str() == s["schedule"].as_str(),
        format!("schedule {} != {}", dag["schedule"], s["schedule"]),
    );
    check(
        dag["catchup"] == s["catchup"],
        format!("catchup {} != {}", dag["catchup"], s["catchup"]),
    );
    let params: BTreeSet<String> = dag["params"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let plan_params: BTreeSet<String> = plan["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    check(
        params == plan_params,
        format!("params {params:?} != {plan_params:?}"),
    );
    for p in plan["parameters"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let v = &dag["params"][name];
        let v = if v.is_object() && v.get("value").is_some() {
            &v["value"]
        } else {
            v
        };
        check(
            v == &p["default"],
            format!("param {name} default {v} != {}", p["default"]),
        );
    }
    for tag in strs(&s["tags"]) {
        check(
            strs(&dag["tags"]).contains(&tag),
            format!("tag {tag} missing"),
        );
    }
    // Each task's pod.
    for t in plan["tasks"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let ts = &t["settings"];
        let details = &dag["task_details"][name];
        if ts["spark"].is_object() && ts["spark"]["local"].is_null() {
            for e in spark_task(python, tmp.path(), t, details, &plan) {
                check(false, format!("{name}: {e}"));
            }
            continue;
        }
        check(
            details["retries"] == ts["retries"],
            format!(
                "{name}: retries {} != {}",
                details["retries"], ts["retries"]
            ),
        );
        check(
            details["retry_delay_seconds"].as_f64() == ts["retry_delay_seconds"].as_f64(),
            format!("{name}: retry_delay {}", details["retry_delay_seconds"]),
        );
        check(
            details["execution_timeout_seconds"].as_f64() == ts["timeout_seconds"].as_f64(),
            format!(
                "{name}: timeout {} != {}",
                details["execution_timeout_seconds"], ts["timeout_seconds"]
            ),
        );
        if let Some(pool) = ts["pool"].as_str() {
            check(
                details["pool"].as_str() == Some(pool),
                format!("{name}: pool {}", details["pool"]),
            );
        }
        if let Some(e) = dag["pod_errors"][name].as_str() {
            check(false, format!("{name}: pod build failed: {e}"));
            continue;
        }
        if let Some(e) = dag["render_errors"][name].as_str() {
            check(false, format!("{name}: template rendering failed: {e}"));
        }
        let pod = &dag["rendered_pods"][name];
        let spec = &pod["spec"];
        let c = &spec["containers"][0];
        check(
            c["image"].as_str() == t["image"]["reference"].as_str(),
            format!(
                "{name}: image {} != {}",
                c["image"], t["image"]["reference"]
            ),
        );
        check(
            pod["metadata"]["namespace"].as_str() == s["namespace"].as_str(),
            format!("{name}: namespace {}", pod["metadata"]["namespace"]),
        );
        check(
            c["imagePullPolicy"] == ts["image_pull_policy"],
            format!("{name}: pull policy {}", c["imagePullPolicy"]),
        );
        check(
            common::str_map(&c["resources"]["requests"])
                == common::str_map(&ts["resources"]["requests"]),
            format!(
                "{name}: requests {} != {}",
                c["resources"]["requests"], ts["resources"]["requests"]
            ),
        );
        check(
            common::str_map(&c["resources"]["limits"])
                == common::str_map(&ts["resources"]["limits"]),
            format!(
                "{name}: limits {} != {}",
                c["resources"]["limits"], ts["resources"]["limits"]
            ),
        );
        // Env: every plan value arrives unchanged after Airflow's own Jinja rendering.
        let env: BTreeMap<String, &Value> = c["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| (e["name"].as_str().unwrap().to_string(), e))
                    .collect()
            })
            .unwrap_or_default();
        // What the container sees: Kubernetes turns `$$` into `$` (and would expand `$(X)`).
        for (k, v) in common::str_map(&ts["env"]) {
            let seen = env
                .get(&k)
                .and_then(|e| e["value"].as_str())
                .map(k8s_expand);
            check(
                seen.as_deref() == Some(v.as_str()),
                format!("{name}: env {k} = {seen:?}, plan {v:?}"),
            );
        }
        check(
            env.get("NB2PIPE_TASK").and_then(|e| e["value"].as_str()) == Some(name),
            format!("{name}: NB2PIPE_TASK"),
        );
        check(
            env.get("NB2PIPE_RUN_ID")
                .and_then(|e| e["value"].as_str())
                .is_some_and(|v| !v.contains("{{")),
            format!("{name}: run id not rendered"),
        );
        let task_params = strs(&t["parameters"]);
        if !task_params.is_empty() {
            let raw = env
                .get("NB2PIPE_PARAMS")
                .and_then(|e| e["value"].as_str())
                .unwrap_or("");
            let parsed: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
            for p in &task_params {
                let default = plan["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == *p)
                    .map(|x| x["default"].clone())
                    .unwrap();
                check(
                    parsed[p] == default,
                    format!(
                        "{name}: NB2PIPE_PARAMS[{p}] = {} (raw {raw:?}), default {default}",
                        parsed[p]
                    ),
                );
            }
        }
        // Secrets: key secrets as env valueFrom, whole secrets as envFrom, mounts as volumes.
        let env_from: Vec<&Value> = c["envFrom"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        for sec in ts["secrets"].as_array().unwrap() {
            let sname = sec["name"].as_str().unwrap();
            match (sec["key"].as_str(), sec["mount_path"].as_str()) {
                (_, Some(path)) => {
                    let vol = volumes
                        .iter()
                        .find(|v| v["secret"]["secretName"].as_str() == Some(sname));
                    let ok = vol.is_some_and(|v| {
                        mounts.iter().any(|m| {
                            m["name"] == v["name"] && m["mountPath"].as_str() == Some(path)
                        })
                    });
                    check(ok, format!("{name}: secret {sname} not mounted at {path}"));
                }
                (Some(key), None) => {
                    let envname = sec["env"].as_str().unwrap();
                    let r = env.get(envname).map(|e| &e["valueFrom"]["secretKeyRef"]);
                    check(
                        r.is_some_and(|r| {
                            r["name"].as_str() == Some(sname) && r["key"].as_str() == Some(key)
                        }),
                        format!("{name}: secret {sname}:{key} not in env {envname}"),
                    );
                }
                (None, None) => check(
                    env_from
                        .iter()
                        .any(|e| e["secretRef"]["name"].as_str() == Some(sname)),
                    format!("{name}: secret {sname} not in envFrom"),
                ),
            }
        }
        for cm in strs(&ts["config_maps"]) {
            check(
                env_from
                    .iter()
                    .any(|e| e["configMapRef"]["name"].as_str() == Some(cm.as_str())),
                format!("{name}: config map {cm} not in envFrom"),
            );
        }
        if s["data"]["kind"] == "volume" {
            let claim = s["data"]["claim"].as_str().unwrap();
            let vol = volumes
                .iter()
                .find(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some(claim));
            let ok = vol.is_some_and(|v| {
                mounts
                    .iter()
                    .any(|m| m["name"] == v["name"] && m["mountPath"] == s["data"]["mount_path"])
            });
            check(
                ok,
                format!(
                    "{name}: data volume {claim} not mounted at {}",
                    s["data"]["mount_path"]
                ),
            );
        }
        check(
            common::str_map(&spec["nodeSelector"]) == common::str_map(&ts["node_selector"]),
            format!(
                "{name}: nodeSelector {} != {}",
                spec["nodeSelector"], ts["node_selector"]
            ),
        );
        let tols: Vec<(String, String, String, String)> = spec["tolerations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        (
                            t["key"].as_str().unwrap_or("").into(),
                            t["operator"].as_str().unwrap_or("").into(),
                            t["value"].as_str().unwrap_or("").into(),
                            t["effect"].as_str().unwrap_or("").into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        for t2 in ts["tolerations"].as_array().unwrap() {
            let want = (
                t2["key"].as_str().unwrap_or("").into(),
                t2["operator"].as_str().unwrap_or("").into(),
                t2["value"].as_str().unwrap_or("").into(),
                t2["effect"].as_str().unwrap_or("").into(),
            );
            check(
                tols.contains(&want),
                format!("{name}: toleration {want:?} missing from {tols:?}"),
            );
        }
        if !ts["affinity"].is_null() {
            check(
                spec["affinity"] == ts["affinity"],
                format!(
                    "{name}: affinity {} != {}",
                    spec["affinity"], ts["affinity"]
                ),
            );
        }
        let labels = common::str_map(&pod["metadata"]["labels"]);
        for (k, v) in common::str_map(&ts["labels"]) {
            check(
                labels.get(&k) == Some(&v),
                format!("{name}: label {k}={v} missing ({labels:?})"),
            );
        }
        let annotations = common::str_map(&pod["metadata"]["annotations"]);
        for (k, v) in common::str_map(&ts["annotations"]) {
            check(
                annotations.get(&k) == Some(&v),
                format!(
                    "{name}: annotation {k} = {:?}, plan {v:?}",
                    annotations.get(&k)
                ),
            );
        }
        check(
            spec["serviceAccountName"].as_str() == s["service_account"].as_str(),
            format!("{name}: service account {}", spec["serviceAccountName"]),
        );
        let pull: Vec<String> = spec["imagePullSecrets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        check(
            pull == strs(&s["image_pull_secrets"]),
            format!("{name}: imagePullSecrets {pull:?}"),
        );
        check(
            strs(&c["command"]) == ["python", "/app/main.py"],
            format!("{name}: command {}", c["command"]),
        );
        // The pod the rehearsal runs is the pod Airflow creates.
        let typed: nb2pipe::plan::Plan = serde_json::from_value(plan.clone()).unwrap();
        let task = typed.task(name).unwrap();
        let (emitted, _) = engines::emitted_pod(engines::Target::Airflow, &typed, task);
        let run = engines::EngineRun {
            run_id: "r1".into(),
            params: typed
                .parameters
                .iter()
                .map(|p| (p.name.clone(), p.default.clone()))
                .collect(),
            overridden: Vec::new(),
        };
        let ours = engines::substitute(engines::Target::Airflow, task, &emitted, &run).unwrap();
        let (a, b) = (
            comparable_pod(&serde_json::to_value(&ours).unwrap()),
            comparable_pod(pod),
        );
        check(
            a == b,
            format!(
                "{name}: the rehearsal's pod differs from Airflow's:\nrehearsal {}\nairflow   {}",
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&b).unwrap()
            ),
        );
    }
    errs
}

/// A pod without what only Airflow adds (its own labels, the pod name's random
/// suffix, empty fields), env in name order (the kubelet sees no difference: every
/// value nb2pipe writes is `$`-escaped, so order does not change expansion).
fn comparable_pod(pod: &Value) -> Value {
    fn prune(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Array(a) if a.is_empty() => None,
            Value::Object(o) if o.is_empty() => None,
            Value::Array(a) => Some(Value::Array(a.iter().filter_map(prune).collect())),
            Value::Object(o) => {
                let m: serde_json::Map<String, Value> = o
                    .iter()
                    .filter_map(|(k, x)| prune(x).map(|x| (k.clone(), x)))
                    .collect();
                (!m.is_empty()).then_some(Value::Object(m))
            }
            x => Some(x.clone()),
        }
    }
    let mut p = pod.clone();
    if let Some(m) = p["metadata"].as_object_mut() {
        m.remove("name");
        m.remove("generateName");
        if let Some(l) = m.get_mut("labels").and_then(Value::as_object_mut) {
            for k in [
                "airflow_version",
                "dag_id",
                "task_id",
                "run_id",
                "kubernetes_pod_operator",
                "try_number",
                "airflow_kpo_in_cluster",
                "map_index",
            ] {
                l.remove(k);
            }
        }
    }
    // Fields the API server would fill in with these values anyway.
    if let Some(spec) = p["spec"].as_object_mut() {
        if spec.get("hostNetwork") == Some(&Value::Bool(false)) {
            spec.remove("hostNetwork");
        }
    }
    if let Some(c) = p["spec"]["containers"][0].as_object_mut() {
        if c.get("terminationMessagePolicy").and_then(Value::as_str) == Some("File") {
            c.remove("terminationMessagePolicy");
        }
    }
    // The XCom sidecar is Airflow's, not the task's.
    if let Some(cs) = p["spec"]["containers"].as_array_mut() {
        cs.retain(|c| c["name"] != "airflow-xcom-sidecar");
    }
    if let Some(env) = p["spec"]["containers"][0]["env"].as_array_mut() {
        env.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    prune(&p).unwrap_or(Value::Null)
}

fn check_all(var: &str, version: &str) {
    let python = common::python_env(var);
    let fixtures = common::fixtures_in("notebooks");
    assert!(fixtures.len() >= 8, "expected the fixture set");
    // Two at a time: each probe is a Python process importing Airflow.
    let errs: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<Vec<std::path::PathBuf>> = fixtures
            .chunks(fixtures.len().div_ceil(2))
            .map(|c| c.to_vec())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let python = python.clone();
                s.spawn(move || {
                    chunk
                        .iter()
                        .flat_map(|nb| check_fixture(&python, version, nb))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        errs.is_empty(),
        "{} problems:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

#[test]
fn airflow3_imports_every_fixture_with_the_planned_pods() {
    check_all("AIRFLOW3", "airflow 3");
}

#[test]
fn airflow2_imports_every_fixture_with_the_planned_pods() {
    check_all("AIRFLOW2", "airflow 2.10");
}

/// Schedules in the forms only Airflow's dialect has (croniter's `L`, `W`, `#`,
/// `@continuous`), a preset Airflow's table lacks, and a zone: real Airflow imports each
/// DAG with that schedule, running in that zone.
fn check_schedules(var: &str) {
    let python = common::python_env(var);
    let tmp = common::tempdir();
    let nb = tmp.path().join("sched.ipynb");
    std::fs::write(
        &nb,
        r#"{"nbformat":4,"nbformat_minor":5,"metadata":{},"cells":[
        {"cell_type":"code","source":"x = 1","metadata":{"tags":["task:a"]}},
        {"cell_type":"code","source":"print(x)","metadata":{"tags":["task:b"]}}]}"#,
    )
    .unwrap();
    // (schedule given, what Airflow must hold, start_date in UTC: midnight in the zone)
    let cases = [
        (
            "TZ=Europe/Paris 30 6 * * 1-5",
            "30 6 * * 1-5",
            "2023-12-31T23:00:00+00:00",
        ),
        ("CRON_TZ=Asia/Tokyo @daily", "", ""),
        ("0 3 L * *", "0 3 L * *", "2024-01-01T00:00:00+00:00"),
        ("0 0 15W * *", "0 0 15W * *", "2024-01-01T00:00:00+00:00"),
        ("0 0 * * 5#3", "0 0 * * 5#3", "2024-01-01T00:00:00+00:00"),
        ("@midnight", "0 0 * * *", "2024-01-01T00:00:00+00:00"),
        ("@quarterly", "@quarterly", "2024-01-01T00:00:00+00:00"),
        ("@continuous", "@continuous", "2024-01-01T00:00:00+00:00"),
    ];
    let mut joined = String::new();
    let mut want = Vec::new();
    for (i, (schedule, holds, start_utc)) in cases.iter().enumerate() {
        let name = format!("sched{i}");
        let (code, _, err) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            tmp.path().join(&name).to_str().unwrap(),
            "--target",
            "airflow",
            "--name",
            &name,
            "--schedule",
            schedule,
        ]);
        if holds.is_empty() {
            // A zone with a preset is not a cron expression.
            assert_eq!(code, 1, "{schedule}: {err}");
            assert!(err.contains("NB025"), "{err}");
            continue;
        }
        assert_eq!(code, 0, "{schedule}: {err}");
        let dag = tmp.path().join(format!("{name}/{name}/airflow/{name}.py"));
        // One file, one Airflow import: `from __future__` only at its top.
        let text = std::fs::read_to_string(dag).unwrap();
        for line in text.lines() {
            if !line.starts_with("from __future__") || joined.is_empty() {
                joined.push_str(line);
                joined.push('\n');
            }
        }
        want.push((name, *schedule, *holds, *start_utc));
    }
    let file = tmp.path().join("schedules.py");
    std::fs::write(&file, joined).unwrap();
    let got = probe(&python, &file);
    assert_eq!(
        got["import_errors"].as_object().map(|o| o.len()),
        Some(0),
        "{}",
        got["import_errors"]
    );
    for (name, schedule, holds, start_utc) in want {
        let dag = &got["dags"][&name];
        assert_eq!(dag["schedule"], holds, "{schedule}: {dag}");
        let start = dag["start_date"].as_str().unwrap_or_default();
        assert_eq!(start, start_utc, "{schedule}: start_date");
    }
}

#[test]
fn airflow3_runs_each_schedule_dialect() {
    check_schedules("AIRFLOW3");
}

#[test]
fn airflow2_runs_each_schedule_dialect() {
    check_schedules("AIRFLOW2");
}
