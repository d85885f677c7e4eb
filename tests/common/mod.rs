//! Shared helpers for the integration tests: the built binary, fixtures, and the Python
//! virtualenvs that `tests/env/python-envs.sh` sets up (their interpreters arrive as
//! NB2PIPE_PY_* environment variables; a test that needs one fails when it is missing,
//! it never skips).
#![allow(dead_code, unreachable_pub)]

pub mod split;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// Every `.ipynb` directly in `fixtures/<dir>`, sorted.
pub fn fixtures_in(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .unwrap_or_else(|e| panic!("fixtures/{dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    v.sort();
    v
}

pub fn nb2pipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nb2pipe"))
}

/// Runs nb2pipe with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = nb2pipe().args(args).output().expect("nb2pipe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The interpreter of a test virtualenv, e.g. `python_env("AIRFLOW3")` reads
/// NB2PIPE_PY_AIRFLOW3. Panics with how to set it up when missing.
pub fn python_env(name: &str) -> PathBuf {
    let var = format!("NB2PIPE_PY_{name}");
    match std::env::var_os(&var) {
        Some(p) if Path::new(&p).exists() => PathBuf::from(p),
        _ => panic!(
            "{var} is not set or does not exist: this tier needs the test virtualenvs. Run the README's test command, or `eval \"$(bash tests/env/python-envs.sh)\"` first."
        ),
    }
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Converts `notebook` into `out` with extra args; panics with the diagnostics on failure.
pub fn convert(notebook: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "convert",
        notebook.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    assert_eq!(
        code,
        0,
        "convert {} failed:\n{stdout}\n{stderr}",
        notebook.display()
    );
    let plan: serde_json::Value = read_plan_dir(out);
    out.join(plan["pipeline"].as_str().unwrap())
}

fn read_plan_dir(out: &Path) -> serde_json::Value {
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let p = e.path().join("plan.json");
        if p.exists() {
            return serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        }
    }
    panic!("no plan.json under {}", out.display());
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// A JSON object as string → string (non-string values in their JSON form).
pub fn str_map(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Copies the entries of `from` named `<name>_*` (a fixture's modules and data
/// folders) into `to`.
pub fn copy_side_files(from: &Path, name: &str, to: &Path) {
    fn copy(src: &Path, dst: &Path) {
        if src.is_dir() {
            std::fs::create_dir_all(dst).unwrap();
            for e in std::fs::read_dir(src).unwrap().flatten() {
                copy(&e.path(), &dst.join(e.file_name()));
            }
        } else {
            std::fs::copy(src, dst).unwrap();
        }
    }
    let prefix = format!("{name}_");
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            copy(&e.path(), &to.join(e.file_name()));
        }
    }
}
