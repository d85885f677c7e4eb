//! The oci engine (`nb2pipe build --engine oci`) against the real local registries of
//! tests/env/docker.sh (anonymous and htpasswd), and its images pulled and run by the
//! Docker Engine next to Docker-built ones. A missing service fails the test.

mod common;
#[path = "docker/helpers.rs"]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::Command;

use helpers::*;
use nb2pipe::build::images::Images;
use nb2pipe::build::oci::registry::{Platform, Registry};
use nb2pipe::build::{run_task_container, Engine, TaskContainer};

/// Exit code and output (stdout then stderr) of a finished command.
fn output(cmd: &mut Command) -> (i32, String) {
    let o = cmd.output().expect("the command runs");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// `nb2pipe build --engine oci` with the registry's base image and `cache` as the oci cache.
fn oci_build(
    nb: &Path,
    out: &Path,
    cache: &Path,
    base: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut cmd = common::nb2pipe();
    cmd.arg("build")
        .arg(nb)
        .arg("-o")
        .arg(out)
        .args([
            "--engine",
            "oci",
            "--base-image",
            base,
            "--pip-cert",
            CA_BUNDLE,
        ])
        .args(args)
        .env("NB2PIPE_OCI_CACHE", cache)
        .env_remove("NB2PIPE_REGISTRY_USER")
        .env_remove("NB2PIPE_REGISTRY_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(&mut cmd)
}

/// The oci cache the tests share (the reproducibility test also uses a clean one): base
/// facts are read from the base's layers once.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("oci-cache")
}

/// tests/docker/fixtures/small.ipynb in a fresh folder, built into `out`.
struct Small {
    dir: tempfile::TempDir,
    nb: PathBuf,
    out: PathBuf,
}

impl Small {
    fn new() -> Small {
        let dir = common::tempdir();
        let nb = copy_fixture(dir.path(), "small.ipynb");
        let out = dir.path().join("out");
        Small { dir, nb, out }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn images(&self) -> Images {
        Images::read(&self.out.join("small"))
    }

    /// `build --push` to `reg` with the test base image; it must succeed.
    fn push(&self, cache: &Path, reg: &str, env: &[(&str, &str)]) -> String {
        let base = helpers::env("NB2PIPE_TEST_BASE_IMAGE_OCI");
        let args = ["--registry", reg, "--push"];
        let (code, text) = oci_build(&self.nb, &self.out, cache, &base, &args, env);
        assert_eq!(code, 0, "build failed:\n{text}");
        text
    }
}

/// Every task has the same image digest in both.
fn assert_same_digests(a: &Images, b: &Images, text: &str) {
    assert_eq!(a.images.len(), b.images.len(), "{text}");
    for (task, p) in &a.images {
        assert_eq!(p.digest, b.images[task].digest, "{task}: {text}");
    }
}

/// The numbers of the `pushed … images:` line: uploaded, mounted, present, manifests.
fn push_stats(text: &str) -> [usize; 4] {
    let line = text
        .lines()
        .find(|l| l.starts_with("pushed "))
        .unwrap_or_else(|| panic!("no push line in {text}"));
    let re = regex::Regex::new(
        r"(\d+) blobs uploaded \(\d+ bytes\), (\d+) mounted, (\d+) already there, (\d+) manifests",
    )
    .unwrap();
    let c = re.captures(line).unwrap_or_else(|| panic!("{line}"));
    [1, 2, 3, 4].map(|i| c[i].parse().unwrap())
}

/// The layer digests of a pushed image, read back from the registry.
fn layers(reference: &str) -> Vec<String> {
    runtime().block_on(async {
        let reg = Registry::new([reference]);
        let img = reg
            .base(reference, &Platform::parse(Some("linux/amd64")).unwrap())
            .await
            .unwrap();
        img.manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    })
}

/// A Python for NB2PIPE_PIP_PYTHON that fails and leaves `ran` behind it: pip must not run.
fn pip_trap(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let (trap, ran) = (dir.join("pip-trap"), dir.join("pip-ran"));
    std::fs::write(
        &trap,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 3\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(&trap, std::fs::Permissions::from_mode(0o755)).unwrap();
    (trap, ran)
}

#[test]
fn oci_push_shares_layers_uploads_only_what_is_missing_and_is_reproducible() {
    let s = Small::new();
    let cache = shared_cache();
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "oci");

    let first = s.push(&cache, &reg, &[]);
    assert_eq!(
        built_tasks(&first),
        ["combine", "double", "load", "report", "square"],
        "{first}"
    );
    // One user layer, two dependency layers (none; six) and five code layers and
    // configs are uploaded; the base layer and the shared layers are mounted.
    assert_eq!(push_stats(&first), [13, 12, 0, 5], "{first}");
    let images = s.images();
    assert_eq!(images.images.len(), 5, "{images:?}");
    let dag = std::fs::read_to_string(s.out.join("small/airflow/small.py")).unwrap();
    for p in images.images.values() {
        assert!(
            dag.contains(&p.by_digest()),
            "the DAG lacks {}",
            p.by_digest()
        );
    }
    let by = |t: &str| layers(&images.images[t].by_digest());
    let (sq, db, ld) = (by("square"), by("double"), by("load"));
    let n = sq.len();
    assert_eq!((db.len(), ld.len()), (n, n));
    // Base, user layer and dependency layer shared by the two tasks importing six…
    assert_eq!(sq[..n - 1], db[..n - 1]);
    assert_ne!(sq[n - 1], db[n - 1]);
    // …while `load` has another dependency layer on the same base and user layer.
    assert_eq!(sq[..n - 2], ld[..n - 2]);
    assert_ne!(sq[n - 2], ld[n - 2]);

    // Nothing changed: nothing is built, no blob or manifest moves.
    let second = s.push(&cache, &reg, &[]);
    assert!(second.contains("up to date (5 images)"), "{second}");
    assert_eq!(push_stats(&second), [0, 0, 0, 0], "{second}");

    // Same notebook in another folder, a clean cache and another registry path: the
    // same digests.
    let s2 = Small::new();
    let reg2 = fresh_registry("NB2PIPE_TEST_REGISTRY", "oci-again");
    let again = s2.push(&s2.path("cache"), &reg2, &[]);
    assert_same_digests(&images, &s2.images(), &again);

    // One cell changed: its task's code layer and config, and its manifest, move.
    let text = std::fs::read_to_string(&s.nb).unwrap();
    std::fs::write(
        &s.nb,
        text.replace("print('total', total)", "print('the total', total)"),
    )
    .unwrap();
    let third = s.push(&cache, &reg, &[]);
    assert_eq!(built_tasks(&third), ["combine"], "{third}");
    assert_eq!(push_stats(&third), [2, 0, 3, 1], "{third}");
}

#[test]
fn a_clean_disk_cache_takes_the_dependency_layers_from_the_registry() {
    let s = Small::new();
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "oci-shared");
    let first = s.push(&s.path("cache"), &reg, &[]);
    assert!(
        first.contains(
            "dependency layers: 0 from the registry's cache (pip did not run), 2 recorded there"
        ),
        "{first}"
    );

    // Another machine: another folder, an empty oci cache, and a pip that must not run.
    let s2 = Small::new();
    let (trap, ran) = pip_trap(s2.dir.path());
    let trap = trap.to_str().unwrap();
    let again = s2.push(&s2.path("cache"), &reg, &[("NB2PIPE_PIP_PYTHON", trap)]);
    assert!(!ran.exists(), "pip ran: {again}");
    assert!(
        again.contains(
            "dependency layers: 2 from the registry's cache (pip did not run), 0 recorded there"
        ),
        "{again}"
    );
    assert_same_digests(&s.images(), &s2.images(), &again);
    // The registry serves these digests under these tags already: nothing moves.
    assert_eq!(push_stats(&again), [0, 0, 0, 0], "{again}");

    // Under another path of the same namespace: the layers are mounted, not uploaded.
    let s3 = Small::new();
    let reg3 = format!("{reg}/elsewhere");
    let third = s3.push(&s3.path("cache"), &reg3, &[("NB2PIPE_PIP_PYTHON", trap)]);
    assert!(!ran.exists(), "pip ran: {third}");
    assert_same_digests(&s.images(), &s3.images(), &third);
    assert!(third.contains("2 from the registry's cache"), "{third}");
    // The user layer, five code layers and five configs; never a dependency layer.
    assert_eq!(push_stats(&third)[0], 11, "{third}");

    // The trap is live: with --no-cache pip runs, and fails.
    let (code, text) = oci_build(
        &s3.nb,
        &s3.path("out-no-cache"),
        &s3.path("cache"),
        &helpers::env("NB2PIPE_TEST_BASE_IMAGE_OCI"),
        &["--registry", &reg3, "--push", "--no-cache"],
        &[("NB2PIPE_PIP_PYTHON", trap)],
    );
    assert_eq!(code, 1, "{text}");
    assert!(ran.exists(), "{text}");
}

/// A Docker config whose `auths` hold `user:password` for `registry`.
fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    use base64::Engine as _;
    let cfg = dir.join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    cfg
}

#[test]
fn oci_authenticated_registry() {
    let s = Small::new();
    let cache = shared_cache();
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY_AUTH", "oci-auth");
    let base = env("NB2PIPE_TEST_BASE_IMAGE_OCI_AUTH");
    let (user, password) = (
        env("NB2PIPE_TEST_REGISTRY_USER"),
        env("NB2PIPE_TEST_REGISTRY_PASSWORD"),
    );
    let no_config = s.path("no-docker-config");
    std::fs::create_dir_all(&no_config).unwrap();
    let no_config = no_config.to_str().unwrap();
    let build = |env: &[(&str, &str)]| {
        oci_build(
            &s.nb,
            &s.out,
            &cache,
            &base,
            &["--registry", reg.as_str(), "--push"],
            env,
        )
    };

    // Without credentials: a clear error that says where nb2pipe looked.
    let (code, text) = build(&[("DOCKER_CONFIG", no_config)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no credentials found"), "{text}");
    assert!(text.contains(&base), "{text}");

    let (code, text) = build(&[
        ("DOCKER_CONFIG", no_config),
        ("NB2PIPE_REGISTRY_USER", &user),
        ("NB2PIPE_REGISTRY_PASSWORD", &password),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains(&password),
        "the password was printed:\n{text}"
    );
    let images = s.images();
    assert_eq!(images.images.len(), 5);

    // The Docker Engine pulls them with the same credentials from a Docker config.
    let cfg = docker_config(
        s.dir.path(),
        &env("NB2PIPE_TEST_REGISTRY_AUTH"),
        &user,
        &password,
    );
    let cfg = cfg.to_str().unwrap();
    let p = &images.images["square"];
    let (ok, o) = docker(&["--config", cfg, "pull", &p.by_digest()]);
    assert!(ok, "{o}");
    // …and nb2pipe finds them in that config too (auths), with nothing to push.
    let (code, text) = build(&[("DOCKER_CONFIG", cfg)]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(push_stats(&text), [0, 0, 0, 0], "{text}");
    let _ = docker(&["image", "rm", &p.by_digest()]);
}

#[test]
fn a_requirement_without_a_wheel_is_named() {
    let dir = common::tempdir();
    let nb = dir.path().join("nowheel.ipynb");
    let nbjson = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python", "version": "3.11.2"}},
        "cells": [
            {"cell_type": "code", "id": "a", "metadata": {"tags": ["task:parse"]}, "execution_count": null,
             "outputs": [], "source": "import docopt\nprint(docopt.__version__)\n"}
        ]
    });
    std::fs::write(&nb, serde_json::to_string(&nbjson).unwrap()).unwrap();
    // docopt 0.6.2 is published as a source distribution only.
    std::fs::write(dir.path().join("requirements.txt"), "docopt==0.6.2\n").unwrap();
    let (code, text) = oci_build(
        &nb,
        &dir.path().join("out"),
        &shared_cache(),
        &env("NB2PIPE_TEST_BASE_IMAGE_OCI"),
        &[
            "--registry",
            &fresh_registry("NB2PIPE_TEST_REGISTRY", "nowheel"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("no wheel of `docopt==0.6.2` fits the image"),
        "{text}"
    );
    assert!(text.contains("--engine docker"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// `docker image inspect`'s Config, as JSON.
fn config_of(reference: &str) -> serde_json::Value {
    let (ok, out) = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        reference,
    ]);
    assert!(ok, "{out}");
    serde_json::from_str(out.trim()).unwrap()
}

/// Each task run in its image in DAG order on one data folder: the output lines.
fn run_all(images: &[(String, String)], data: &Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let mut out = String::new();
    runtime().block_on(async {
        let engine = Engine::connect().await.expect("engine");
        for (task, image) in images {
            let mut lines = Vec::new();
            let code = run_task_container(
                &engine,
                &TaskContainer {
                    image,
                    pipeline: "small",
                    task,
                    run_id: "r1",
                    data_dir: data,
                    params: Some(r#"{"n": 6}"#),
                    env: vec![],
                },
                |l| lines.push(l.to_string()),
            )
            .await
            .expect("container runs");
            assert_eq!(code, 0, "{task} in {image}: {}", lines.join("\n"));
            for l in lines
                .iter()
                .filter(|l| !l.starts_with("nb2pipe") && !l.starts_with('['))
            {
                out.push_str(l);
                out.push('\n');
            }
        }
    });
    out
}

#[test]
fn oci_images_run_on_the_docker_engine_like_docker_built_ones() {
    let s = Small::new();
    let base = env("NB2PIPE_TEST_BASE_IMAGE_OCI");
    // The Docker engine builds FROM the same base (tests/env/docker.sh tagged it locally).
    let docker_out = s.path("docker");
    let (code, text) = output(
        common::nb2pipe()
            .arg("build")
            .arg(&s.nb)
            .arg("-o")
            .arg(&docker_out)
            .args(["--engine", "docker", "--base-image", &base])
            .args(["--pip-cert", CA_BUNDLE, "--registry"])
            .arg(fresh_registry("NB2PIPE_TEST_REGISTRY", "eq-docker")),
    );
    assert_eq!(code, 0, "{text}");
    s.push(
        &shared_cache(),
        &fresh_registry("NB2PIPE_TEST_REGISTRY", "eq-oci"),
        &[],
    );
    let plan = common::read_json(&docker_out.join("small/plan.json"));
    let pushed = s.images();
    let (mut by_docker, mut by_oci) = (Vec::new(), Vec::new());
    for t in plan["tasks"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap().to_string();
        let tag = t["image"]["reference"].as_str().unwrap().to_string();
        let oci = pushed.images[&name].by_digest();
        let (ok, o) = docker(&["pull", "-q", &oci]);
        assert!(ok, "{o}");
        let (a, b) = (config_of(&tag), config_of(&oci));
        for k in ["User", "Entrypoint", "Env", "WorkingDir", "Labels", "Cmd"] {
            assert_eq!(a.get(k), b.get(k), "{name}: {k}");
        }
        by_docker.push((name.clone(), tag));
        by_oci.push((name, oci));
    }
    let a = run_all(&by_docker, &s.path("data-docker"));
    let b = run_all(&by_oci, &s.path("data-oci"));
    assert!(a.contains("total 85"), "{a}");
    assert_eq!(a, b);
    for (_, image) in by_docker.iter().chain(&by_oci) {
        let _ = docker(&["image", "rm", image]);
    }
}
