//! The Docker tier: `nb2pipe build` against a real Docker Engine and real registries
//! (Debian's docker-registry, anonymous and htpasswd), all started by
//! tests/env/docker.sh. A missing service fails the test; nothing is skipped.

mod common;
#[path = "docker/helpers.rs"]
mod helpers;

use std::path::Path;

use helpers::*;
use nb2pipe::build::{images::Images, run_task_container, Engine, TaskContainer};

#[test]
fn build_rebuild_and_one_cell_change() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "rebuild");

    let first = build_ok(&nb, &out, &["--registry", &reg], &[]);
    assert_eq!(
        built_tasks(&first),
        ["combine", "double", "load", "report", "square"],
        "{first}"
    );
    let bundle = out.join("small");
    assert!(bundle.join("build-logs/square.log").is_file());
    let square_log = std::fs::read_to_string(bundle.join("build-logs/square.log")).unwrap();
    assert!(
        square_log.contains("Successfully tagged ") && square_log.contains("/small-square:"),
        "{square_log}"
    );

    // Tasks with the same requirements share the dependency layers.
    let plan = common::read_json(&bundle.join("plan.json"));
    let reference = |task: &str| -> String {
        plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == task)
            .unwrap()["image"]["reference"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let layers = |task: &str| -> Vec<String> {
        let (ok, out) = docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            &reference(task),
        ]);
        assert!(ok, "{out}");
        serde_json::from_str(out.trim()).unwrap()
    };
    let (sq, db, ld) = (layers("square"), layers("double"), layers("load"));
    assert_eq!(sq.len(), db.len());
    // Identical up to the task's own files (runtime layer included, main.py differs).
    let shared = sq.len() - 1;
    assert_eq!(sq[..shared], db[..shared]);
    assert_ne!(sq[shared], db[shared]);
    // The venv layer differs between tasks with and without `six`.
    assert_ne!(sq[..shared], ld[..shared]);

    // Labels, non-root user, unbuffered Python.
    let (ok, cfg) = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &reference("square"),
    ]);
    assert!(ok, "{cfg}");
    let cfg: serde_json::Value = serde_json::from_str(cfg.trim()).unwrap();
    assert_eq!(cfg["User"], "10001");
    assert_eq!(cfg["Labels"]["io.nb2pipe.task"], "square");
    assert_eq!(cfg["Labels"]["io.nb2pipe.notebook"], "small.ipynb");
    assert_eq!(
        cfg["Labels"]["io.nb2pipe.content-hash"].as_str().unwrap(),
        reference("square").rsplit(':').next().unwrap()
    );
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "PYTHONUNBUFFERED=1"));

    // Nothing changed: nothing is built.
    let second = build_ok(&nb, &out, &["--registry", &reg], &[]);
    assert!(built_tasks(&second).is_empty(), "{second}");
    assert!(second.contains("up to date (5 images)"), "{second}");

    // One cell changed: only its task is rebuilt.
    let text = std::fs::read_to_string(&nb).unwrap();
    let edited = text.replace("print('total', total)", "print('the total', total)");
    assert_ne!(text, edited);
    std::fs::write(&nb, edited).unwrap();
    let third = build_ok(&nb, &out, &["--registry", &reg], &[]);
    assert_eq!(built_tasks(&third), ["combine"], "{third}");
    assert!(third.contains("built 1 images, 4 up to date"), "{third}");
}

fn digests_of(bundle: &Path) -> Images {
    let images = Images::read(bundle);
    assert_eq!(images.images.len(), 5, "{images:?}");
    images
}

/// After a push, plan.json and the DAG refer to every image by digest; pulling by
/// digest from the registry works.
fn check_pushed(bundle: &Path, docker_config: Option<&Path>) {
    let images = digests_of(bundle);
    let plan = std::fs::read_to_string(bundle.join("plan.json")).unwrap();
    let dag = std::fs::read_to_string(bundle.join("airflow/small.py")).unwrap();
    for (task, p) in &images.images {
        assert!(
            p.digest.starts_with("sha256:") && p.digest.len() == 71,
            "{p:?}"
        );
        let by_digest = p.by_digest();
        assert!(plan.contains(&by_digest), "plan.json lacks {by_digest}");
        assert!(
            dag.contains(&by_digest),
            "the DAG lacks {by_digest} for {task}"
        );
        assert!(
            !dag.contains(&p.tag),
            "the DAG still uses the tag {}",
            p.tag
        );
        let mut args = vec![];
        if let Some(c) = docker_config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend(["pull", by_digest.as_str()]);
        let (ok, out) = docker(&args);
        assert!(ok, "pulling {by_digest}: {out}");
    }
}

#[test]
fn push_anonymous_registry_records_digests() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "push");
    let stderr = build_ok(&nb, &out, &["--registry", &reg, "--push"], &[]);
    assert!(stderr.contains("pushed 5 images"), "{stderr}");
    let bundle = out.join("small");
    check_pushed(&bundle, None);

    // `convert` keeps using the digests while the content is unchanged…
    let (code, _, err) = common::run(&[
        "convert",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--registry",
        &reg,
        "--base-image",
        &base_image(),
    ]);
    assert_eq!(code, 0, "{err}");
    check_pushed(&bundle, None);
    // …and falls back to the new tag for a task whose content changed.
    let text = std::fs::read_to_string(&nb).unwrap();
    std::fs::write(
        &nb,
        text.replace("print('total', total)", "print('sum', total)"),
    )
    .unwrap();
    let (code, _, err) = common::run(&[
        "convert",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--registry",
        &reg,
        "--base-image",
        &base_image(),
    ]);
    assert_eq!(code, 0, "{err}");
    let dag = std::fs::read_to_string(bundle.join("airflow/small.py")).unwrap();
    let images = Images::read(&bundle);
    assert!(!dag.contains(&images.images["combine"].by_digest()));
    assert!(dag.contains(&format!("{reg}/small-combine:")));
    assert!(dag.contains(&images.images["report"].by_digest()));
}

#[test]
fn push_authenticated_registry() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY_AUTH", "auth");
    let registry_host = env("NB2PIPE_TEST_REGISTRY_AUTH");
    let user = env("NB2PIPE_TEST_REGISTRY_USER");
    let password = env("NB2PIPE_TEST_REGISTRY_PASSWORD");
    let empty_config = dir.path().join("no-docker-config");
    std::fs::create_dir_all(&empty_config).unwrap();
    let no_config = ("DOCKER_CONFIG", Some(empty_config.to_str().unwrap()));

    // No credentials: refused, and the message says where we looked.
    let (code, _, err) = build(&nb, &out, &["--registry", &reg, "--push"], &[no_config]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("the registry {registry_host} refused the push")),
        "{err}"
    );
    assert!(err.contains("no credentials found"), "{err}");

    // A wrong password: refused, the user named, the password never printed.
    let wrong = "wrong-password-5d1f";
    let (code, stdout, err) = build(
        &nb,
        &out,
        &["--registry", &reg, "--push"],
        &[
            no_config,
            ("NB2PIPE_REGISTRY_USER", Some(&user)),
            ("NB2PIPE_REGISTRY_PASSWORD", Some(wrong)),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("the registry {registry_host} refused the push")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "user `{user}` from NB2PIPE_REGISTRY_USER / NB2PIPE_REGISTRY_PASSWORD"
        )),
        "{err}"
    );
    assert!(!err.contains(wrong) && !stdout.contains(wrong));
    for log in tree(&out.join("small")).values() {
        assert!(!contains(log, wrong.as_bytes()));
    }

    // The right credentials from the Docker config's `auths`.
    use base64::Engine as _;
    let cfg_dir = dir.path().join("docker-config");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        cfg_dir.join("config.json"),
        format!(r#"{{"auths": {{"{registry_host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let stderr = build_ok(
        &nb,
        &out,
        &["--registry", &reg, "--push"],
        &[("DOCKER_CONFIG", Some(cfg_dir.to_str().unwrap()))],
    );
    assert!(stderr.contains("pushed 5 images"), "{stderr}");
    assert!(!stderr.contains(&password));
    check_pushed(&out.join("small"), Some(&cfg_dir));
}

#[test]
fn pip_settings_leave_no_trace_in_the_image() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "proxy");
    // Fresh values each run, so the dependency step cannot come from the layer cache.
    let nonce = reg.rsplit('-').next().unwrap().to_string();
    let ca_canary = format!("nb2pipe-canary-ca-{nonce}");
    let token = format!("canary-token-{nonce}");
    // The machine's CA bundle plus a canary line (text outside PEM blocks is ignored).
    let ca = dir.path().join("ca.pem");
    let mut pem = std::fs::read(CA_BUNDLE).expect("the system CA bundle");
    pem.extend_from_slice(format!("\n# {ca_canary}\n").as_bytes());
    std::fs::write(&ca, &pem).unwrap();
    // An extra index that answers nothing (pip warns and goes on with PyPI), carrying
    // credentials that must not end up anywhere.
    let extra = format!("http://canary-user:{token}@127.0.0.1:9/simple");
    let (code, stdout, stderr) = build(
        &nb,
        &out,
        &[
            "--registry",
            &reg,
            "--pip-cert",
            ca.to_str().unwrap(),
            "--pip-index-url",
            "https://pypi.org/simple",
            "--pip-extra-index-url",
            &extra,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains(&token));
    // pip did use the settings (it mentions the extra index, password masked).
    let log = std::fs::read_to_string(out.join("small/build-logs/square.log")).unwrap();
    assert!(log.contains("127.0.0.1:9"), "{log}");
    assert!(!log.contains(&token), "{log}");

    let plan = common::read_json(&out.join("small/plan.json"));
    let main_py = std::fs::read(out.join("small/tasks/square/main.py")).unwrap();
    let needles: [&str; 5] = [
        &ca_canary,
        &token,
        "canary-user",
        "127.0.0.1:9/simple",
        "nb2pipe-pip",
    ];
    let any = regex::bytes::Regex::new(
        &needles
            .iter()
            .map(|n| regex::escape(n))
            .collect::<Vec<_>>()
            .join("|"),
    )
    .unwrap();
    let rt = runtime();
    rt.block_on(async {
        let engine = Engine::connect().await.expect("engine");
        // Layers shared between the images are scanned once.
        let mut seen = std::collections::BTreeSet::new();
        for t in plan["tasks"].as_array().unwrap() {
            let image = t["image"]["reference"].as_str().unwrap();
            let saved = engine.export(image).await.expect("export");
            // Every layer, the config and the history are in the export, uncompressed.
            let mut ar = tar::Archive::new(saved.as_slice());
            let mut entries = 0;
            let mut found_code = false;
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                entries += 1;
                let path = e.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                found_code |= contains(&bytes, &main_py[..200]);
                if !seen.insert(path.clone()) {
                    continue;
                }
                if let Some(m) = any.find(&bytes) {
                    panic!(
                        "{image}: {path} holds {}",
                        String::from_utf8_lossy(m.as_bytes())
                    );
                }
            }
            assert!(entries > 3, "{image}: {entries} entries");
            if t["name"] == "square" {
                // The scan does see file contents: the task's own code is found.
                assert!(found_code, "main.py not found in the export of {image}");
            }
        }
    });
}

#[test]
fn a_failed_pip_install_names_the_package() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "pipfail.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "pipfail");
    let (code, _, err) = build(&nb, &out, &["--registry", &reg], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("building task broken: pip could not install `six==0.0.0.0.1`"),
        "{err}"
    );
    assert!(err.contains("No matching distribution found"), "{err}");
    assert!(err.contains("build-logs/broken.log"), "{err}");
    assert!(err.contains("1 of 2 images failed"), "{err}");
}

#[test]
fn an_unreachable_engine_is_named() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    for host in ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"] {
        let (code, _, err) = build(&nb, &out, &[], &[("DOCKER_HOST", Some(host))]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "cannot reach the Docker Engine at DOCKER_HOST={host}"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The tasks run in their images (data folder bind-mounted, DAG order) produce the same
/// values and output as the same task scripts run locally.
#[test]
fn tasks_in_containers_match_a_local_run() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "run");
    build_ok(&nb, &out, &["--registry", &reg], &[]);
    let bundle = out.join("small");
    let plan = common::read_json(&bundle.join("plan.json"));
    let order: Vec<(String, String)> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["image"]["reference"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let params = r#"{"n": 7}"#;

    let local_data = dir.path().join("local-data");
    std::fs::create_dir_all(&local_data).unwrap();
    let mut local_out = String::new();
    for (task, _) in &order {
        let o = std::process::Command::new("python3")
            .arg(bundle.join("tasks").join(task).join("main.py"))
            .env("NB2PIPE_DATA", &local_data)
            .env("NB2PIPE_RUN_ID", "r1")
            .env("NB2PIPE_PIPELINE", "small")
            .env("NB2PIPE_TASK", task)
            .env("NB2PIPE_PARAMS", params)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{task}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        local_out.push_str(&String::from_utf8_lossy(&o.stdout));
    }

    let docker_data = dir.path().join("docker-data");
    std::fs::create_dir_all(&docker_data).unwrap();
    let mut docker_out = String::new();
    runtime().block_on(async {
        let engine = Engine::connect().await.expect("engine");
        for (task, image) in &order {
            let mut lines = Vec::new();
            let code = run_task_container(
                &engine,
                &TaskContainer {
                    image,
                    pipeline: "small",
                    task,
                    run_id: "r1",
                    data_dir: &docker_data,
                    params: Some(params),
                    env: vec![],
                },
                |l| lines.push(l.to_string()),
            )
            .await
            .expect("container runs");
            assert_eq!(code, 0, "{task}: {}", lines.join("\n"));
            for l in lines {
                docker_out.push_str(&l);
                docker_out.push('\n');
            }
        }
    });
    // nb2pipe's runtime logs go to stderr locally and are mixed in from the container:
    // compare the task's own output lines.
    let ours = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("nb2pipe") && !l.starts_with('['))
            .map(str::to_string)
            .collect()
    };
    assert!(local_out.contains("total 133"), "{local_out}");
    assert_eq!(ours(&local_out), ours(&docker_out));
    // Same files with the same values (pickle bytes may differ: the host may have
    // cloudpickle, which picks another protocol).
    let (a, b) = (values(&local_data), values(&docker_data));
    assert!(a.contains("small/r1/values/combine/total.pkl: 133"), "{a}");
    assert_eq!(a, b);

    // A failing task's exit code comes back.
    runtime().block_on(async {
        let engine = Engine::connect().await.expect("engine");
        let empty = dir.path().join("empty-data");
        std::fs::create_dir_all(&empty).unwrap();
        let code = run_task_container(
            &engine,
            &TaskContainer {
                image: &order[1].1,
                pipeline: "small",
                task: &order[1].0,
                run_id: "missing-inputs",
                data_dir: &empty,
                params: None,
                env: vec![],
            },
            |_| {},
        )
        .await
        .expect("container runs");
        assert_ne!(code, 0);
    });
}

/// `path: repr(value)` for every file of a data folder, sorted.
fn values(dir: &Path) -> String {
    let script = r#"
import os, pickle, sys
root = sys.argv[1]
for d, _, files in sorted(os.walk(root)):
    for f in sorted(files):
        p = os.path.join(d, f)
        rel = os.path.relpath(p, root)
        with open(p, "rb") as fh:
            v = pickle.load(fh) if f.endswith(".pkl") else fh.read()
        print("%s: %r" % (rel, v))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// `nb2pipe run --docker` (images built on demand, each task in its container, the data
/// folder bind-mounted) prints and computes what a local `nb2pipe run` does.
#[test]
fn run_docker_matches_a_local_run() {
    let dir = common::tempdir();
    let nb = copy_fixture(dir.path(), "small.ipynb");
    let python = common::python_env("EXEC");
    let run = |extra: &[&str], data: &str, out: &str| -> (i32, String) {
        let mut cmd = common::nb2pipe();
        cmd.arg("run")
            .arg(&nb)
            .args(["-p", "n=7", "--data"])
            .arg(dir.path().join(data))
            .arg("-o")
            .arg(dir.path().join(out))
            .args(extra)
            .env("PIP_CERT", CA_BUNDLE);
        let o = cmd.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(
        &["--python", python.to_str().unwrap()],
        "local-data",
        "local-out",
    );
    assert_eq!(code, 0, "local run: {err}");
    let base = base_image();
    let registry = format!("localhost/rundocker-{}", std::process::id());
    let (code, err) = run(
        &["--docker", "--base-image", &base, "--registry", &registry],
        "docker-data",
        "docker-out",
    );
    assert_eq!(code, 0, "docker run: {err}");
    // The task's own lines (the runtime's `nb2pipe:` notes aside), per task.
    let logs = |data: &str| -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        for entry in walk(&dir.path().join(data)) {
            if entry.extension().is_some_and(|e| e == "log")
                && entry.parent().is_some_and(|p| p.ends_with("logs"))
            {
                let lines: Vec<String> = std::fs::read_to_string(&entry)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("nb2pipe:") && !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
                out.insert(
                    entry.file_stem().unwrap().to_string_lossy().into_owned(),
                    lines,
                );
            }
        }
        out
    };
    let (local, in_docker) = (logs("local-data"), logs("docker-data"));
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        ["combine", "double", "load", "report", "square"]
    );
    assert_eq!(
        local, in_docker,
        "printed output differs between local and container runs"
    );
    assert_eq!(
        in_docker["report"],
        [r#"{"total": 133, "n": 7}"#],
        "the parameter override reached the containers"
    );
    // The images the run used are the plan's.
    let plan = common::read_json(&dir.path().join("docker-out/small/plan.json"));
    for t in plan["tasks"].as_array().unwrap() {
        let image = t["image"]["reference"].as_str().unwrap();
        assert!(image.starts_with(&registry), "{image}");
        assert!(
            docker(&["image", "inspect", image]).0,
            "{image} was not built"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A notebook of code cells (source, tags) at `path`.
fn write_notebook(path: &Path, cells: &[(&str, &[&str])]) {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    std::fs::write(path, nb.to_string()).unwrap();
}

fn plan_task(plan: &serde_json::Value, name: &str) -> serde_json::Value {
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name}"))
        .clone()
}

/// Removes the image tags when the test ends, passed or not.
struct Tags(Vec<String>);
impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            docker(&["image", "rm", "--force", t]);
        }
    }
}

#[test]
fn a_docker_build_of_a_written_task_folder_runs_as_10001() {
    let dir = common::tempdir();
    let proj = dir.path();
    std::fs::write(
        proj.join("plain_helpers.py"),
        "def shout(s):\n    return s.upper() + '!'\n",
    )
    .unwrap();
    std::fs::create_dir_all(proj.join("data")).unwrap();
    std::fs::write(proj.join("data/table.csv"), "a\nb,1\n").unwrap();
    let nb = proj.join("plain.ipynb");
    write_notebook(
        &nb,
        &[(
            "import os\nimport plain_helpers\nrows = open('data/table.csv').read().splitlines()\nhome = os.path.expanduser('~')\nwith open(os.path.join(home, 'h.txt'), 'w') as f:\n    f.write('h')\nwith open('c.txt', 'w') as f:\n    f.write('c')\nprint('OUT', plain_helpers.shout(rows[1]), os.getcwd(), home, os.getuid(), os.getgid(), open('c.txt').read(), open(os.path.join(home, 'h.txt')).read())",
            &["task:one"],
        )],
    );
    let bundle = common::convert(&nb, &proj.join("out"), &["--base-image", &base_image()]);
    let tag = format!("nb2pipe-test/plain-folder:{}", std::process::id());
    let _cleanup = Tags(vec![tag.clone()]);
    // The folder as written, through the docker CLI (its default builder), not through
    // nb2pipe's own build context.
    let folder = bundle.join("tasks/one");
    let (ok, out) = docker(&["build", "--quiet", "-t", &tag, folder.to_str().unwrap()]);
    assert!(ok, "docker build of {}: {out}", folder.display());

    let run = |args: &[&str]| -> String {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.push(&tag);
        let (ok, out) = docker(&all);
        assert!(ok, "docker run {args:?}: {out}");
        out
    };
    // In its own folder (/app) the task finds its data file there.
    let out = run(&["--user", "10001"]);
    assert!(
        out.contains("OUT B,1! /app /home/nb2pipe 10001 10001 c h"),
        "{out}"
    );
    // As in a pod: the shared working directory on the data store.
    let out = run(&[
        "--user",
        "10001:10001",
        "-e",
        "NB2PIPE_WORKDIR=store",
        "-e",
        "NB2PIPE_DATA=/home/nb2pipe/store",
        "-e",
        "NB2PIPE_RUN_ID=r1",
    ]);
    assert!(
        out.contains("OUT B,1! /home/nb2pipe/store/plain/r1/work /home/nb2pipe 10001 10001 c h"),
        "{out}"
    );
    // Owner, group and modes of what the image holds.
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        &tag,
        "-c",
        "%n %u:%g %a",
        "/app",
        "/app/main.py",
        "/app/nb2pipe_runtime.py",
        "/app/modules",
        "/app/modules/plain_helpers.py",
        "/app/files/data",
        "/app/files/data/table.csv",
        "/home/nb2pipe",
    ]);
    assert!(ok, "{out}");
    let want = "/app 10001:10001 755\n/app/main.py 10001:10001 644\n/app/nb2pipe_runtime.py 10001:10001 644\n/app/modules 10001:10001 755\n/app/modules/plain_helpers.py 10001:10001 644\n/app/files/data 10001:10001 755\n/app/files/data/table.csv 10001:10001 644\n/home/nb2pipe 10001:10001 755\n";
    assert_eq!(out, want);
    let (ok, out) = docker(&["run", "--rm", "--entrypoint", "id", &tag]);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "uid=10001(nb2pipe) gid=10001(nb2pipe) groups=10001(nb2pipe)"
    );
}

#[test]
fn an_image_setting_is_built_on_and_must_have_python() {
    let dir = common::tempdir();
    let base = base_image();
    // An image without Python 3 (the test base with its interpreter removed).
    let nopython = format!("nb2pipe-test/nopython:{}", std::process::id());
    let _cleanup = Tags(vec![nopython.clone()]);
    let ctx = dir.path().join("nopython");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN rm -f /usr/bin/python3 /usr/bin/python3.*\n"),
    )
    .unwrap();
    let (ok, out) = docker(&["build", "--quiet", "-t", &nopython, ctx.to_str().unwrap()]);
    assert!(ok, "{out}");

    let nb = dir.path().join("imageset.ipynb");
    let good_tag = format!("image:{base}");
    let bad_tag = format!("image:{nopython}");
    write_notebook(
        &nb,
        &[
            (
                "import os\nx = 6\nprint('GOOD', x * 7, os.getuid(), os.getcwd())",
                &["task:good", good_tag.as_str()],
            ),
            ("print('BAD', x)", &["task:bad", bad_tag.as_str()]),
        ],
    );
    let out = dir.path().join("out");
    let reg = fresh_registry("NB2PIPE_TEST_REGISTRY", "imageset");
    let (code, _, err) = build(&nb, &out, &["--registry", &reg], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the image: setting of task bad names an image without python3"),
        "{err}"
    );
    assert_eq!(built_tasks(&err), ["good"], "{err}");

    let plan = common::read_json(&out.join("imageset/plan.json"));
    let good = plan_task(&plan, "good");
    let reference = good["image"]["reference"].as_str().unwrap().to_string();
    let _built = Tags(vec![reference.clone()]);
    assert!(
        reference.starts_with(&format!("{reg}/imageset-good:")),
        "{reference}"
    );
    assert_eq!(good["image"]["base"], base.as_str());
    assert_eq!(good["image"]["prebuilt"], false);
    let (ok, printed) = docker(&["run", "--rm", &reference]);
    assert!(ok, "{printed}");
    assert!(printed.contains("GOOD 42 10001 /app"), "{printed}");
}

#[test]
fn run_docker_tasks_share_a_working_directory_with_modules_and_data_files() {
    let dir = common::tempdir();
    let nb = dir.path().join("travel.ipynb");
    std::fs::copy(common::fixture("exec/travel.ipynb"), &nb).unwrap();
    common::copy_side_files(&common::fixture("exec"), "travel", dir.path());
    let python = common::python_env("EXEC");
    let run = |extra: &[&str], data: &str, out: &str| {
        let o = common::nb2pipe()
            .arg("run")
            .arg(&nb)
            .arg("--data")
            .arg(dir.path().join(data))
            .arg("-o")
            .arg(dir.path().join(out))
            .args(extra)
            .env("PIP_CERT", CA_BUNDLE)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(0), "nb2pipe run {extra:?}: {err}");
    };
    let registry = format!("localhost/runtravel-{}", std::process::id());
    run(
        &[
            "--docker",
            "--base-image",
            &base_image(),
            "--registry",
            &registry,
        ],
        "docker-data",
        "docker-out",
    );
    // In containers the file one task wrote is in the run's working directory on the
    // store, with the data file the tasks brought, not in the notebook's folder.
    assert!(!dir.path().join("travel-note.txt").exists());
    let works: Vec<_> = walk(&dir.path().join("docker-data"))
        .into_iter()
        .filter(|p| p.ends_with("work/travel-note.txt"))
        .collect();
    assert_eq!(works.len(), 1, "{works:?}");
    let work = works[0].parent().unwrap();
    assert_eq!(std::fs::read_to_string(&works[0]).unwrap(), "total=12\n");
    assert_eq!(
        std::fs::read_to_string(work.join("travel_data/table.csv")).unwrap(),
        std::fs::read_to_string(dir.path().join("travel_data/table.csv")).unwrap()
    );
    run(
        &["--python", python.to_str().unwrap()],
        "local-data",
        "local-out",
    );
    assert!(dir.path().join("travel-note.txt").is_file());
    let result = |data: &str| -> String {
        let log = walk(&dir.path().join(data))
            .into_iter()
            .find(|p| p.ends_with("logs/report.log"))
            .unwrap_or_else(|| panic!("no report log under {data}"));
        let text = std::fs::read_to_string(log).unwrap();
        text.lines()
            .find(|l| l.starts_with("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT in {text}"))
            .to_string()
    };
    assert_eq!(
        result("docker-data"),
        r#"RESULT {"loud": "TOTAL=12!", "note": "total=12", "total": 12}"#
    );
    assert_eq!(result("local-data"), result("docker-data"));
    let plan = common::read_json(&dir.path().join("docker-out/travel/plan.json"));
    assert_eq!(
        plan_task(&plan, "load")["files"][0]["path"],
        "travel_data/table.csv"
    );
    assert_eq!(
        plan_task(&plan, "report")["local_modules"],
        serde_json::json!(["travel_helpers.py"])
    );
}
