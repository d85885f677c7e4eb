//! Helpers for the Docker tier: the services `tests/env/docker.sh` started (their
//! addresses arrive as NB2PIPE_TEST_* variables; a missing one fails the test), and
//! `nb2pipe build` runs against them.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common;

pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A variable exported by tests/env/docker.sh.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the Docker tier needs a Docker Engine, a base image and two registries. Run the README's test command, or `eval \"$(bash tests/env/docker.sh)\"` first."
        ),
    }
}

pub fn base_image() -> String {
    env("NB2PIPE_TEST_BASE_IMAGE")
}

/// A registry path no other test (or earlier run) uses, so every tag starts unbuilt
/// (layers still come from the engine's cache).
pub fn fresh_registry(var: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}/{test}-{nanos:x}", env(var))
}

/// `fixtures` copied into a fresh folder (so a test can edit cells).
pub fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let src = common::root().join("tests/docker/fixtures").join(name);
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    dst
}

/// `nb2pipe build NB -o OUT --base-image <test base> --pip-cert <CA> ARGS...` with the
/// environment changed by `env`; returns (code, stdout, stderr).
pub fn build(
    nb: &Path,
    out: &Path,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> (i32, String, String) {
    let base = base_image();
    let mut cmd = common::nb2pipe();
    cmd.arg("build")
        .arg(nb)
        .arg("-o")
        .arg(out)
        .args(["--base-image", &base])
        .args(args)
        .env_remove("NB2PIPE_REGISTRY_USER")
        .env_remove("NB2PIPE_REGISTRY_PASSWORD");
    if !args.contains(&"--pip-cert") {
        cmd.args(["--pip-cert", CA_BUNDLE]);
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let o = cmd.output().expect("nb2pipe runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn build_ok(nb: &Path, out: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> String {
    let (code, stdout, stderr) = build(nb, out, args, env);
    assert_eq!(code, 0, "build failed:\n{stdout}\n{stderr}");
    stderr
}

/// Tasks reported as `<task>: built in …` in a build's output, sorted.
pub fn built_tasks(stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split_once(": built in ").map(|(t, _)| t.to_string()))
        .collect();
    v.sort();
    v
}

pub fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("docker client runs");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir` (relative path → bytes).
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = Default::default();
    if dir.is_dir() {
        walk(dir, dir, &mut out);
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle);
    regex::bytes::Regex::new(&regex::escape(&needle))
        .unwrap()
        .is_match(hay)
}
