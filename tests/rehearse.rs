//! Rehearsal tier: every executable fixture, for every target the rehearsal knows, is
//! built (through `nb2pipe run --docker`, as `nb2pipe build` does, named under the
//! local registry) and rehearsed from that target's pods on the Docker Engine; what
//! every task printed and the final values must equal the whole notebook's run with
//! nbclient. Needs the exec venv and the Docker tier's services (tests/env/docker.sh).

mod common;

#[path = "docker/helpers.rs"]
mod helpers;

use common::split::*;

/// The targets whose pods the rehearsal runs.
const TARGETS: &[&str] = &["airflow", "argo", "tekton"];

fn rehearse_args(target: &str, name: &str) -> Vec<String> {
    vec![
        "--docker".into(),
        "--target".into(),
        target.into(),
        "--base-image".into(),
        helpers::base_image(),
        "--registry".into(),
        format!("{}/rehearse-{name}", helpers::env("NB2PIPE_TEST_REGISTRY")),
        "--jobs".into(),
        "2".into(),
    ]
}

/// The fixture rehearsed on every target, each compared with the notebook.
fn prove_everywhere(name: &str, params: &[(&str, &str)]) {
    prove_on(TARGETS, name, params);
}

fn prove_on(targets: &[&str], name: &str, params: &[(&str, &str)]) {
    for target in targets {
        let args = rehearse_args(target, name);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, split) = prove(name, params, &argv);
        assert!(
            split
                .done
                .stderr
                .contains(&format!("rehearsing the {target} pods")),
            "{name} on {target}: {}",
            split.done.stderr
        );
    }
}

#[test]
fn values_fixture_rehearsed() {
    prove_everywhere("values", &[]);
}

#[test]
fn closures_fixture_rehearsed() {
    prove_everywhere("closures", &[]);
}

#[test]
fn params_fixture_rehearsed_with_overrides() {
    prove_everywhere("params", &[("n_estimators", "7"), ("label", "override")]);
}

#[test]
fn shell_fixture_rehearsed() {
    prove_everywhere("shell", &[]);
}

#[test]
fn branches_fixture_rehearsed() {
    prove_everywhere("branches", &[]);
}

#[test]
fn travel_fixture_rehearsed() {
    prove_everywhere("travel", &[]);
}

/// A failing task in a pod is reported like a local one: cell, line, message.
#[test]
fn failing_fixture_rehearsed_names_cell_and_line() {
    let (cells, error) = run_notebook("failing", &[]);
    assert_eq!(error["cell"], 2, "{error}");
    for target in TARGETS {
        let args = rehearse_args(target, "failing");
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let split = nb2pipe_run("failing", &argv);
        assert_eq!(split.done.code, 1, "{target}: {}", split.done.stderr);
        let err = &split.done.stderr;
        assert!(
            err.contains("in notebook cell 2 (`total = int(table['a'].sum())`), line 3: KeyError: 'no_such_column'"),
            "{target}: {err}"
        );
        assert_eq!(split.task("broken")["state"], "failed");
        assert_eq!(split.task("after")["state"], "skipped");
        assert_same_output("failing", &cells, &split);
    }
}

#[test]
fn digits_fixture_rehearsed() {
    prove_everywhere("digits", &[]);
}

/// Everything a cluster does differently at once: a project module and a %%writefile
/// module in the image and the shared working directory, parameters "1.10" and one
/// holding `$$`, `$(VAR)` and `$HOME`, an env value with `$`, an `image:` task, and a
/// pipeline name that needs every Kubernetes name shortened.
#[test]
fn cluster_fixture_rehearsed() {
    prove_on(&["airflow", "argo"], "cluster", &[]);
    // Tekton substitutes `$(...)` everywhere and has no escape: refused, not rewritten.
    let (dir, nb) = copy_fixture("cluster");
    let args = rehearse_args("tekton", "cluster");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(&nb)
        .arg("-o")
        .arg(dir.path().join("out"))
        .args(&argv);
    let done = run_bounded(cmd, "rehearsal of cluster on tekton");
    assert_eq!(done.code, 1, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("`pay $5 $(NB2PIPE_DATA) $$x` contains `$(`"),
        "{}",
        done.stderr
    );
}

#[test]
fn cluster_fixture_values_arrive_byte_exact() {
    let (result, _) = prove(
        "cluster",
        &[],
        &rehearse_args("airflow", "cluster-exact")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(result["version"], "1.10");
    assert_eq!(result["type"], "str");
    assert_eq!(result["price"], "costs $$5 $(NB2PIPE_DATA) $HOME");
    assert_eq!(result["greeting"], "pay $5 $(NB2PIPE_DATA) $$x");
}

/// The failure the restricted securityContext prevents is real in the rehearsal: the
/// same pod without fsGroup cannot write the fresh, root-owned claim, as on a cluster.
#[test]
fn without_fs_group_a_fresh_claim_is_not_writable() {
    use nb2pipe::rehearse::{self, docker, Target, Values};
    let dir = common::tempdir();
    let nb = helpers::copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let registry = format!("{}/rehearse-fsgroup", helpers::env("NB2PIPE_TEST_REGISTRY"));
    helpers::build_ok(&nb, &out, &["--registry", &registry], &[]);
    let plan: nb2pipe::plan::Plan =
        serde_json::from_value(common::read_json(&out.join("small/plan.json"))).unwrap();
    let run_first = |strip: bool| -> (i64, String) {
        let mut r = rehearse::prepare(
            &plan,
            Target::Airflow,
            &serde_json::Map::new(),
            &Values::Environment(Default::default()),
        )
        .unwrap();
        if strip {
            let sc = r.tasks[0]
                .pod
                .spec
                .as_mut()
                .unwrap()
                .security_context
                .as_mut()
                .unwrap();
            sc.fs_group = None;
            sc.fs_group_change_policy = None;
        }
        let scratch = dir.path().join(if strip { "s1" } else { "s2" });
        let vols = docker::create_volumes(
            &r,
            &format!("fsgroup-{}-{strip}", std::process::id()),
            Some("small-data".into()),
            scratch,
        )
        .unwrap();
        let mut lines = Vec::new();
        let code = rehearse::run_task(&vols, &r.tasks[0], |l| lines.push(l.to_string()));
        docker::remove_volumes(&vols);
        (code.unwrap(), lines.join("\n"))
    };
    let (code, log) = run_first(true);
    assert_ne!(
        code, 0,
        "a root-owned claim was writable without fsGroup:\n{log}"
    );
    assert!(
        log.contains("PermissionError") || log.contains("not writable"),
        "{log}"
    );
    let (code, log) = run_first(false);
    assert_eq!(code, 0, "{log}");
}
