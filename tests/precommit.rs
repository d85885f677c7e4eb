//! The pre-commit hooks through the real `pre-commit` (PyPI), installed the way a user
//! installs them: the README's `.pre-commit-config.yaml` as written (its `rev:` tag
//! created here, in a temporary copy of the hook repository), pip finding the `nb2pipe`
//! wheel built from this tree by maturin, and no Rust toolchain on PATH (`cargo` and
//! `rustc` are traps that record any call). In a temporary git repository holding
//! notebooks and their bundles, `nb2pipe-check` passes on a clean notebook with an
//! up-to-date bundle and fails, with the right message, on a stale bundle, a hard-coded
//! secret and a bad tag. Needs NB2PIPE_PY_VALIDATE (tests/env; that venv carries
//! pre-commit and maturin).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

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

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The nb2pipe wheel, made by maturin from the binary this test run was built with (same
/// target folder and profile): it must find that build current and compile nothing.
fn build_wheel(venv_bin: &Path, out: &Path) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_nb2pipe"));
    let profile_dir = exe.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        p => p,
    };
    let out_run = Command::new(venv_bin.join("maturin"))
        .args(["build", "--locked", "--profile", profile, "--out"])
        .arg(out)
        .current_dir(common::root().join("wheel"))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("maturin runs");
    let log = text(&out_run);
    assert!(out_run.status.success(), "maturin build:\n{log}");
    assert!(
        !log.contains("Compiling nb2pipe"),
        "maturin compiled nb2pipe again instead of packing the binary cargo built:\n{log}"
    );
    let wheels: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let name = wheels[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with(&format!("nb2pipe-{VERSION}-")), "{name}");
    wheels[0].clone()
}

/// The hook repository as pre-commit clones it (the files it reads: the hook manifest
/// and the pyproject.toml pip installs), tagged with the README's `rev`.
fn hook_repo(dir: &Path, tag: &str) {
    let root = common::root();
    for absent in ["setup.py", "setup.cfg"] {
        assert!(
            !root.join(absent).exists(),
            "{absent} at the root would change what pre-commit installs"
        );
    }
    std::fs::create_dir_all(dir).unwrap();
    for f in [".pre-commit-hooks.yaml", "pyproject.toml"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "hooks"]);
    git(dir, &["tag", tag]);
}

/// The `.pre-commit-config.yaml` block of the README, with `repo:` pointing at `hooks`
/// and the commented-out convert hook enabled.
fn readme_config(hooks: &Path) -> (String, String) {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = readme
        .find("# .pre-commit-config.yaml\n")
        .expect("the README shows a .pre-commit-config.yaml");
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut rev = String::new();
    let mut out = String::new();
    for line in block.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with("- repo:") {
            out += &format!("{indent}- repo: {}\n", hooks.display());
        } else if let Some(r) = t.strip_prefix("rev:") {
            rev = r.trim().to_string();
            out += line;
            out += "\n";
        } else if let Some(h) = t.strip_prefix("# - id: nb2pipe-convert") {
            out += &format!("{indent}- id: nb2pipe-convert{h}\n");
        } else {
            out += line;
            out += "\n";
        }
    }
    (out, rev)
}

/// A folder for the front of PATH holding `git`, plus `cargo`, `rustc` and `rustup` that
/// log any call to `calls` and fail.
fn bin_without_rust(dir: &Path, calls: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let git = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(git.trim(), dir.join("git")).unwrap();
    for tool in ["cargo", "rustc", "rustup"] {
        let p = dir.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

struct PreCommit {
    bin: PathBuf,
    path: PathBuf,
    store: PathBuf,
    links: PathBuf,
    home: PathBuf,
}

impl PreCommit {
    fn run(&self, repo: &Path, hook: &str, files: &[&str]) -> (bool, String) {
        let mut args = vec!["run", hook, "--verbose"];
        if files.is_empty() {
            args.push("--all-files");
        } else {
            args.push("--files");
            args.extend_from_slice(files);
        }
        let out = Command::new(&self.bin)
            .args(&args)
            .current_dir(repo)
            .env_clear()
            // The traps first; the system's tools (git's helper scripts need them) after.
            .env("PATH", format!("{}:/usr/bin:/bin", self.path.display()))
            .env("HOME", &self.home)
            .env("PRE_COMMIT_HOME", &self.store)
            .env("VIRTUALENV_OVERRIDE_APP_DATA", self.home.join("virtualenv"))
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &self.links)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .expect("pre-commit runs");
        (out.status.success(), text(&out))
    }
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
fn pre_commit_hook_from_the_wheel_passes_clean_and_catches_stale_secret_and_bad_tag() {
    let python = common::python_env("VALIDATE");
    let venv_bin = python.parent().unwrap().to_path_buf();
    let tmp = common::tempdir();
    let t = tmp.path();

    let links = t.join("links");
    std::fs::create_dir_all(&links).unwrap();
    build_wheel(&venv_bin, &links);
    // The build backend of the hooks' pyproject.toml, from virtualenv's own seed wheels
    // (pip finds nothing else: no index).
    let embed = python
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lib/python3.11/site-packages/virtualenv/seed/wheels/embed");
    let mut seeded = 0;
    for e in std::fs::read_dir(&embed).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("setuptools-") && name.ends_with(".whl") {
            std::fs::copy(e.path(), links.join(&name)).unwrap();
            seeded += 1;
        }
    }
    assert!(seeded > 0, "no setuptools wheel in {}", embed.display());

    let (config, rev) = readme_config(&t.join("hooks"));
    assert_eq!(
        rev,
        format!("v{VERSION}"),
        "the README's rev must be this version's tag"
    );
    let pyproject = std::fs::read_to_string(common::root().join("pyproject.toml")).unwrap();
    assert!(
        pyproject.contains(&format!("version = \"{VERSION}\""))
            && pyproject.contains(&format!("\"nb2pipe=={VERSION}\"")),
        "pyproject.toml must install nb2pipe {VERSION}:\n{pyproject}"
    );
    hook_repo(&t.join("hooks"), &rev);

    let calls = t.join("rust-calls.log");
    let pc = PreCommit {
        bin: venv_bin.join("pre-commit"),
        path: bin_without_rust(&t.join("bin"), &calls),
        store: t.join("store"),
        links,
        home: t.join("home"),
    };
    let repo = &t.join("work");
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q"]);
    std::fs::write(repo.join(".pre-commit-config.yaml"), &config).unwrap();
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

    let (ok, out) = pc.run(repo, "nb2pipe-check", &[]);
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

    let (ok, out) = pc.run(repo, "nb2pipe-check", &[]);
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
    let (ok, out) = pc.run(repo, "nb2pipe-convert", &["stale.ipynb"]);
    assert!(
        !ok && out.contains("files were modified by this hook"),
        "{out}"
    );
    let (code, _, err) = common::run(&["check", repo.join("stale.ipynb").to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "after the convert hook the bundle is fresh:\n{err}"
    );

    // The hooks ran the wheel's binary, and nothing asked for a Rust toolchain.
    let installed = std::fs::read_dir(&pc.store)
        .unwrap()
        .flatten()
        .flat_map(|r| std::fs::read_dir(r.path()).into_iter().flatten().flatten())
        .any(|e| e.path().join("bin/nb2pipe").is_file());
    assert!(installed, "no nb2pipe in the hooks' virtualenv");
    // pip asks `rustc --version` for its user-agent string; anything else is a build.
    let log = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        log.lines().all(|l| l.ends_with(" --version")),
        "the hooks invoked the Rust toolchain:\n{log}"
    );
}
