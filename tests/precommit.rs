//! The pre-commit hooks through the real `pre-commit` (PyPI): in a temporary git
//! repository holding notebooks and their bundles, `pre-commit try-repo <this repo>
//! nb2pipe-check` passes on a clean notebook with an up-to-date bundle and fails, with
//! the right message, on a stale bundle, a hard-coded secret and a bad tag.
//! Needs NB2PIPE_PY_VALIDATE (tests/env; that venv carries pre-commit).

mod common;

use std::path::Path;
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

/// `pre-commit try-repo` builds the hook with `cargo install` in a throw-away store on
/// every call (three calls here): share a target folder and skip optimisation, so each
/// call compiles only nb2pipe itself, quickly. The hook's behaviour is the same.
fn pre_commit(bin: &Path, repo: &Path, hook: &str, files: &[&str]) -> (bool, String) {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| common::root().join("target").to_string_lossy().into_owned());
    let root = common::root();
    let mut args = vec!["try-repo", root.to_str().unwrap(), hook, "--verbose"];
    if files.is_empty() {
        args.push("--all-files");
    } else {
        args.push("--files");
        args.extend_from_slice(files);
    }
    let out = Command::new(bin)
        .args(&args)
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", format!("{target}/pre-commit"))
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "off")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
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

/// Replaces the first task cell's source and tags.
fn set_first_task_cell(nb: &Path, source: &str, tags: &[&str]) {
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
    // A pinned project, as a team would have: nothing to warn about.
    std::fs::write(repo.join("requirements.txt"), "numpy==2.1.3\nscikit-learn==1.5.2\npsycopg2-binary==2.9.10\npandas==2.2.3\npyarrow==18.1.0\n").unwrap();
    std::fs::write(
        repo.join("nb2pipe.toml"),
        "registry = \"registry.example.com/ml\"\n",
    )
    .unwrap();
    // Four notebooks, each with its committed, up-to-date bundle.
    for name in ["clean", "stale", "secret", "badtag"] {
        let nb = repo.join(format!("{name}.ipynb"));
        std::fs::copy(common::fixture("notebooks/churn.ipynb"), &nb).unwrap();
        let (code, _, err) = common::run(&["convert", nb.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "notebooks and bundles"]);

    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check", &[]);
    assert!(
        ok,
        "clean notebooks with up-to-date bundles must pass:\n{out}"
    );
    assert!(
        out.contains("nb2pipe check") && out.contains("Passed"),
        "{out}"
    );

    // Stale: the notebook changes, its bundle does not. A secret. A bad tag.
    set_first_task_cell(
        &repo.join("stale.ipynb"),
        "data = load_breast_cancer(as_frame=True)\ndf = data.frame.head(100)",
        &["task:load"],
    );
    let secret = "Sup3r-S3cret-Pw";
    set_first_task_cell(
        &repo.join("secret.ipynb"),
        &format!("import psycopg2\nconn = psycopg2.connect(host='db', password='{secret}')"),
        &["task:load"],
    );
    set_first_task_cell(
        &repo.join("badtag.ipynb"),
        "x = 1",
        &["task:load", "memory:4GB"],
    );

    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-check", &[]);
    assert!(!ok, "must fail:\n{out}");
    assert!(
        out.contains("NB050")
            && out.contains("build/stale is stale")
            && out.contains("airflow/stale.py changed"),
        "stale bundle:\n{out}"
    );
    assert!(
        out.contains("NB040")
            && out.contains("secret.ipynb, cell 4")
            && out.contains("line 2")
            && out.contains("in `password`")
            && out.contains("secret:NAME:KEY:ENV"),
        "hard-coded secret:\n{out}"
    );
    assert!(
        !out.contains(secret),
        "the secret value leaked into the output:\n{out}"
    );
    assert!(
        out.contains("NB021")
            && out.contains("badtag.ipynb")
            && out.contains("memory:4GB")
            && out.contains("4Gi"),
        "bad tag:\n{out}"
    );
    assert!(
        !out.contains("clean.ipynb"),
        "the clean notebook has nothing to report:\n{out}"
    );

    // The convert hook regenerates the stale bundle, failing as hooks that change files do.
    let (ok, out) = pre_commit(&bin, repo, "nb2pipe-convert", &["stale.ipynb"]);
    assert!(
        !ok && out.contains("files were modified by this hook"),
        "{out}"
    );
    let (code, _, err) = common::run(&["check", repo.join("stale.ipynb").to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "after the convert hook the bundle is fresh:\n{err}"
    );
}
