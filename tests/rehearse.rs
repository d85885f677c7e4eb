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
    for target in TARGETS {
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
fn digits_fixture_rehearsed() {
    prove_everywhere("digits", &[]);
}
