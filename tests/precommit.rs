//! The pre-commit hooks through the real `pre-commit` (PyPI): in a temporary git
//! repository holding a notebook and its bundle, `pre-commit try-repo <this repo>
//! nb2pipe-check` passes when all is well and fails, with the right message, on a stale
//! bundle, a hard-coded secret and a bad tag. Needs NB2PIPE_PY_VALIDATE (tests/env; it carries pre-commit).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pre_commit(bin: &Path, repo: &Path, hook: &str) -> (bool, String) {
    let out = Command::new(bin)
        .args([
            "try-repo",
            common::root().to_str().unwrap(),
            hook,
            "--all-files",
            "--verbose",
        ])
        .current_dir(repo)
        // Reuse the test build's compiled dependencies for the hook's `cargo install`.
        .env(
            "CARGO_TARGET_DIR",
            std::env::var("CARGO_TARGET_DIR")
                .unwrap_or_else(|_| common::root().join("target").to_string_lossy().into_owned()),
        )
        .env(
            "PRE_COMMIT_HOME",
            std::env::var("PRE_COMMIT_HOME")
                .unwrap_or_else(|_| dirs_cache().to_string_lossy().into_owned()),
        )
        .output()
        .expect("pre-commit runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn dirs_cache() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
        .join(".cache/nb2pipe/pre-commit")
}

fn set_first_cell(nb: &Path, source: &str, tags: &[&str]) {
    let mut v: serde_json::Value = common::read_json(nb);
    let cells = v["cells"].as_array_mut().unwrap();
    let i = cells
        .iter()
        .position(|c| {
            c["cell_type"] == "code"
                && c["metadata"]["tags"].as_array().is_some_and(|t| {
                    t.iter()
                        .any(|x| x.as_str().unwrap_or("").starts_with("task:"))
                })
        })
        .unwrap();
    cells[i]["source"] = serde_json::json!(source);
    cells[i]["metadata"]["tags"] = serde_json::json!(tags);
    std::fs::write(nb, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn pre_commit_hook_passes_clean_and_catches_stale_secret_and_bad_tag() {
    let python = common::python_env("VALIDATE");
    let bin = python.parent().unwrap().join("pre-commit");
    let tmp = common::tempdir();
    let repo = tmp.path();
    git(repo, &["init", "-q"]);
    let nb = repo.join("churn.ipynb");
    std::fs::copy(common::fixture("notebooks/churn.ipynb"), &nb).unwrap();
    let (code, _, err) = common::run(&["convert", nb.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "notebook and bundle"]);

    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check");
    assert!(
        ok,
        "clean notebook with an up-to-date bundle must pass:\n{out}"
    );
    assert!(
        out.contains("nb2pipe check") && out.contains("Passed"),
        "{out}"
    );

    // Stale: the notebook changes, the bundle does not.
    set_first_cell(
        &nb,
        "data = load_breast_cancer(as_frame=True)\ndf = data.frame.head(100)",
        &["task:load"],
    );
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check");
    assert!(!ok, "stale bundle must fail:\n{out}");
    assert!(
        out.contains("NB050") && out.contains("stale") && out.contains("airflow/churn.py changed"),
        "{out}"
    );
    // The convert hook regenerates it (and fails, as pre-commit hooks that change files do).
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-convert");
    assert!(
        !ok && out.contains("files were modified by this hook"),
        "{out}"
    );
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check");
    assert!(ok, "after the convert hook the bundle is fresh:\n{out}");

    // A hard-coded secret: reported with cell and line, the value never printed.
    let secret = "Sup3r-S3cret-Pw";
    set_first_cell(
        &nb,
        &format!("import psycopg2\nconn = psycopg2.connect(host='db', password='{secret}')"),
        &["task:load"],
    );
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check");
    assert!(!ok, "{out}");
    assert!(
        out.contains("NB040")
            && out.contains("in `password`")
            && out.contains("line 2")
            && out.contains("secret:NAME:KEY:ENV"),
        "{out}"
    );
    assert!(
        !out.contains(secret),
        "the secret value leaked into the output:\n{out}"
    );

    // A bad tag.
    set_first_cell(&nb, "x = 1", &["task:load", "memory:4GB"]);
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check");
    assert!(!ok, "{out}");
    assert!(
        out.contains("NB021") && out.contains("memory:4GB") && out.contains("4Gi"),
        "{out}"
    );
}
