use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EnvVarSource, PodSecurityContext, SecretEnvSource,
    SecretKeySelector,
};

use super::docker::security;
use super::*;

fn plain(n: &str, v: &str) -> EnvVar {
    EnvVar {
        name: n.into(),
        value: Some(v.into()),
        value_from: None,
    }
}

#[test]
fn env_is_resolved_as_the_kubelet_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("creds")).unwrap();
    std::fs::write(dir.path().join("creds/USER"), "alice").unwrap();
    std::fs::write(dir.path().join("creds/token"), "s3cr$t").unwrap();
    let c = Container {
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "creds".into(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(vec![
            plain("A", "$(USER)-$(LATER)"),
            plain("LATER", "x"),
            plain("B", "$(A) $$(A) $(LATER)"),
            EnvVar {
                name: "TOKEN".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "token".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            plain("USER", "bob"),
        ]),
        ..Default::default()
    };
    let env = resolve_env(&c, &Values::Dir(dir.path().into()), &BTreeMap::new()).unwrap();
    let m: BTreeMap<_, _> = env.iter().cloned().collect();
    // Only variables defined before are expanded; `$$` is a literal `$`.
    assert_eq!(m["A"], "alice-$(LATER)");
    assert_eq!(m["B"], "alice-$(LATER) $(A) x");
    assert_eq!(m["TOKEN"], "s3cr$t");
    // A later env entry replaces the envFrom one.
    assert_eq!(m["USER"], "bob");
    assert_eq!(env.iter().filter(|(k, _)| k == "USER").count(), 1);

    // A missing Secret is named, with where it was looked for.
    let err = resolve_env(
        &c,
        &Values::Dir(dir.path().join("nothing")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("creds"), "{err:#}");
}

#[test]
fn env_from_the_callers_environment() {
    let c = Container {
        env: Some(vec![EnvVar {
            name: "API_TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "api".into(),
                    key: "token".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        }]),
        ..Default::default()
    };
    let mut env = BTreeMap::new();
    env.insert("API_TOKEN".to_string(), "t0k".to_string());
    let got = resolve_env(&c, &Values::Environment(env), &BTreeMap::new()).unwrap();
    assert_eq!(got, vec![("API_TOKEN".to_string(), "t0k".to_string())]);
    let err = resolve_env(&c, &Values::Environment(BTreeMap::new()), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("API_TOKEN") && err.contains("--secrets"),
        "{err}"
    );
}

#[test]
fn security_context_becomes_container_settings() {
    let plan_sec = crate::plan::Security::default();
    let pod = crate::pod::security::pod_context(&plan_sec);
    let c = crate::pod::security::container_context(&plan_sec);
    let s = security(Some(&pod), Some(&c), "10001").unwrap();
    assert_eq!(s.user.as_deref(), Some("10001:10001"));
    assert_eq!(s.groups, vec!["10001"]);
    assert!(s.no_new_privileges);
    assert_eq!(s.cap_drop, vec!["ALL"]);
    assert!(!s.read_only_root);
    assert!(!s.always_change, "OnRootMismatch");

    // runAsNonRoot without a user, on an image that runs as root: refused.
    let bare = PodSecurityContext {
        run_as_non_root: Some(true),
        ..Default::default()
    };
    let e = security(Some(&bare), None, "").unwrap_err();
    assert!(e.contains("will run as root"), "{e}");
    assert!(security(Some(&bare), None, "10001").is_ok());
    // No securityContext: the image's user, no extra groups.
    let none = security(None, None, "").unwrap();
    assert_eq!(none.user, None);
    assert!(none.groups.is_empty() && !none.no_new_privileges);
}

#[test]
fn run_ids_are_store_safe() {
    assert_eq!(
        safe_run_id("manual__2026-12-01T11:32:30.123456+00:00"),
        "manual__2026-12-01T11_32_30.123456+00_00"
    );
}

fn plan_of(cells: &[(&str, &[&str])]) -> crate::plan::Plan {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    let nb = crate::notebook::parse_str(std::path::Path::new("t.ipynb"), &nb.to_string())
        .expect("notebook parses");
    crate::plan::build(crate::plan::BuildInput {
        notebook: &nb,
        project: None,
        cli: Default::default(),
        profile: None,
        python_env: None,
    })
    .plan
}

#[test]
fn kfp_pod_is_the_executor_with_its_platform_spec() {
    let plan = plan_of(&[
        (
            "n = 3\nlabel = 'pay $5 $$x'\nratio = 2.0\ncols = [1.5, 'a<b']",
            &["parameters"],
        ),
        (
            "score = n * ratio\nprint(label, cols)",
            &[
                "task:train",
                "metrics",
                "secret:api:token:API_TOKEN",
                "cpu:1",
            ],
        ),
    ]);
    let t = plan.task("train").unwrap();
    let (pod, notes) = engines::emitted_pod(Target::Kfp, &plan, t);
    assert!(notes.iter().all(|n| !n.error), "{notes:?}");
    let spec = pod.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    assert_eq!(c.command.as_ref().unwrap()[..2], ["python", "-c"]);
    assert_eq!(c.command.as_ref().unwrap()[2], crate::emit::kfp::LAUNCHER);
    // Only the container-level user, group and non-root flag: no fsGroup anywhere.
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.run_as_user, sc.run_as_group),
        (Some(10001), Some(10001))
    );
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, None);
    let psc = spec.security_context.as_ref().unwrap();
    assert_eq!(psc.fs_group, None);
    assert_eq!(psc.run_as_user, None);
    // The claim through the platform spec, the secret key as env, the scratch folder.
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(mounts.contains(&"/nb2pipe/data"), "{mounts:?}");
    assert!(mounts.contains(&engines::KFP_SCRATCH), "{mounts:?}");
    let env = c.env.as_ref().unwrap();
    assert!(env.iter().all(|e| e.name != "NB2PIPE_RUN_ID"));
    let tok = env.iter().find(|e| e.name == "API_TOKEN").unwrap();
    let r = tok
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("api", "token"));
    let limits = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "1");

    // The launcher's substitutions, then the kubelet's expansion of the args.
    let run = EngineRun::new(Target::Kfp, &plan, &serde_json::Map::new());
    let sub = engines::substitute_in(Target::Kfp, Some(&plan), t, &pod, &run).unwrap();
    let args = sub.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    let expanded: Vec<String> = args
        .iter()
        .map(|a| kubelet::expand(a, &BTreeMap::new()))
        .collect();
    let arg = |k: &str| {
        let i = expanded.iter().position(|a| a == k).unwrap();
        expanded[i + 1].clone()
    };
    assert_eq!(arg("NB2PIPE_RUN_ID"), run.run_id);
    assert_eq!(arg("NB2PIPE_PARAM_n"), "3");
    assert_eq!(arg("NB2PIPE_PARAM_label"), "pay $5 $$x");
    assert_eq!(arg("NB2PIPE_PARAM_ratio"), "2");
    assert_eq!(arg("NB2PIPE_PARAM_cols"), r#"[1.5,"a\u003cb"]"#);
    assert!(arg(crate::emit::k8s::METRICS_ENV).starts_with("/minio/mlpipeline/v2/artifacts/"));
    assert!(args.iter().all(|a| !a.contains("{{$")), "{args:?}");

    // An override is the run's value as given.
    let mut o = serde_json::Map::new();
    o.insert("label".into(), serde_json::json!("given"));
    o.insert("n".into(), serde_json::json!(7));
    let run = EngineRun::new(Target::Kfp, &plan, &o);
    let sub = engines::substitute_in(Target::Kfp, Some(&plan), t, &pod, &run).unwrap();
    let args = sub.spec.unwrap().containers[0].args.clone().unwrap();
    assert!(args
        .windows(2)
        .any(|w| w == ["NB2PIPE_PARAM_label", "given"]));
    assert!(args.windows(2).any(|w| w == ["NB2PIPE_PARAM_n", "7"]));
}

#[test]
fn kfp_placeholders_left_over_are_refused() {
    let plan = plan_of(&[("x = 1", &["task:one"])]);
    let t = plan.task("one").unwrap();
    let (mut pod, _) = engines::emitted_pod(Target::Kfp, &plan, t);
    pod.spec.as_mut().unwrap().containers[0]
        .args
        .get_or_insert_with(Vec::new)
        .push("{{$.inputs.artifacts['x'].path}}".into());
    let run = EngineRun::new(Target::Kfp, &plan, &serde_json::Map::new());
    let e = engines::substitute_in(Target::Kfp, Some(&plan), t, &pod, &run).unwrap_err();
    assert!(e.to_string().contains("{{$.inputs.artifacts"), "{e}");
}

#[test]
fn launcher_text_is_kfps() {
    use engines::launcher_text;
    use serde_json::json;
    assert_eq!(launcher_text(&json!("a b")), "a b");
    assert_eq!(launcher_text(&json!(3.0)), "3");
    assert_eq!(launcher_text(&json!(0.25)), "0.25");
    assert_eq!(launcher_text(&json!(1e20)), "100000000000000000000");
    assert_eq!(launcher_text(&json!(true)), "true");
    assert_eq!(
        launcher_text(&json!({"b": [1.0, 1e21, 1e-7, 1e-6], "a": "x&y"})),
        r#"{"a":"x\u0026y","b":[1,1e+21,1e-7,0.000001]}"#
    );
}

/// A Job task's pod is the Job's pod with that task's container alone; the run id comes
/// from the pod's UID through the downward API, and an override replaces the default
/// in the env (escaped for the kubelet).
#[test]
fn job_task_is_its_container_in_the_jobs_pod() {
    let plan = plan_of(&[
        ("word = 'pay $5'", &["parameters"]),
        ("a = word", &["task:first"]),
        ("b = a + word", &["task:second"]),
    ]);
    let values = Values::Environment(BTreeMap::new());
    let r = prepare(&plan, Target::Job, &serde_json::Map::new(), &values).unwrap();
    let env = |p: &Prepared, k: &str| p.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    for p in &r.tasks {
        let spec = p.pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].name, p.task);
        assert!(spec.init_containers.is_none());
        assert_eq!(env(p, "NB2PIPE_RUN_ID"), r.run.run_id);
        assert_eq!(env(p, "NB2PIPE_PARAM_word"), "pay $5");
        // The values' emptyDir, shared by the pod's containers.
        assert!(spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == crate::emit::k8s::DATA_VOLUME && v.empty_dir.is_some()));
        assert_eq!(p.retries, 0);
    }
    let mut o = serde_json::Map::new();
    o.insert("word".into(), serde_json::json!("$(HOME) $$"));
    let r = prepare(&plan, Target::Job, &o, &values).unwrap();
    assert_eq!(env(&r.tasks[1], "NB2PIPE_PARAM_word"), "$(HOME) $$");
    assert!(Target::Job.one_pod() && !Target::Argo.one_pod());
}
