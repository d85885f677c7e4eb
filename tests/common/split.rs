//! The proof tier's machinery, shared by tests/run.rs (local runs) and
//! tests/rehearse.rs (the cluster rehearsal): a notebook run whole with nbclient
//! (tests/run/nbrun.py), the same notebook split with `nb2pipe run`, and the
//! comparison of what each task printed with what its cells printed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super as common;

pub const TIMEOUT: Duration = Duration::from_secs(400);

pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with a bounded wait; output goes through files, so a chatty child never
/// blocks on a full pipe.
pub fn run_bounded(cmd: Command, what: &str) -> Done {
    run_bounded_for(cmd, what, TIMEOUT)
}

/// [`run_bounded`] within `limit`.
pub fn run_bounded_for(mut cmd: Command, what: &str, limit: Duration) -> Done {
    // A machine may pin OpenBLAS's kernel (`OPENBLAS_CORETYPE`, `OPENBLAS_L2_SIZE`); a
    // pod never inherits that and picks the kernel for its CPU, and a solver's float
    // results (its iteration count) follow the kernel. The notebook and the local tasks
    // run as the pods do.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OPENBLAS_") {
            cmd.env_remove(k);
        }
    }
    let dir = common::tempdir();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("{what}: cannot start: {err}"));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Done {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    }
}

pub fn python() -> PathBuf {
    common::python_env("EXEC")
}

/// A fresh folder holding a copy of fixtures/exec/<name>.ipynb, and of the project
/// files beside it named `<name>_*` (modules, data folders).
pub fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = common::tempdir();
    let nb = dir.path().join(format!("{name}.ipynb"));
    std::fs::copy(common::fixture(&format!("exec/{name}.ipynb")), &nb).unwrap();
    common::copy_side_files(&common::fixture("exec"), name, dir.path());
    (dir, nb)
}

/// nbclient's run of the notebook: (cell index → printed text, error).
pub fn run_notebook(
    name: &str,
    params: &[(&str, &str)],
) -> (serde_json::Map<String, Value>, Value) {
    let (dir, nb) = copy_fixture(name);
    run_notebook_at(dir.path(), &nb, params)
}

/// [`run_notebook`] of the notebook `nb`, its output JSON in `dir`.
pub fn run_notebook_at(
    dir: &Path,
    nb: &Path,
    params: &[(&str, &str)],
) -> (serde_json::Map<String, Value>, Value) {
    let name = nb.display();
    let out = dir.join("nbrun.json");
    let mut cmd = Command::new(python());
    cmd.arg(common::root().join("tests/run/nbrun.py"))
        .arg(nb)
        .arg(&out);
    for (k, v) in params {
        cmd.arg(format!("{k}={v}"));
    }
    let done = run_bounded(cmd, &format!("nbclient on {name}"));
    assert_eq!(
        done.code, 0,
        "nbclient on {name} failed:\n{}\n{}",
        done.stdout, done.stderr
    );
    let v = common::read_json(&out);
    (v["cells"].as_object().unwrap().clone(), v["error"].clone())
}

pub struct Split {
    pub _dir: tempfile::TempDir,
    pub folder: PathBuf,
    pub done: Done,
    pub plan: Value,
    pub record: Value,
    pub run_dir: PathBuf,
}

impl Split {
    pub fn log(&self, task: &str) -> String {
        std::fs::read_to_string(self.run_dir.join("logs").join(format!("{task}.log")))
            .unwrap_or_else(|e| panic!("log of {task}: {e}"))
    }

    pub fn task(&self, name: &str) -> &Value {
        self.record["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no task {name} in run.json"))
    }
}

pub fn nb2pipe_run(name: &str, extra: &[&str]) -> Split {
    let (dir, nb) = copy_fixture(name);
    split_in(dir, &nb, extra)
}

pub fn split_in(dir: tempfile::TempDir, nb: &Path, extra: &[&str]) -> Split {
    split_in_for(dir, nb, extra, TIMEOUT)
}

/// [`split_in`] within `limit`.
pub fn split_in_for(dir: tempfile::TempDir, nb: &Path, extra: &[&str], limit: Duration) -> Split {
    let out = dir.path().join("build");
    let py = python();
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(nb)
        .arg("--python")
        .arg(&py)
        .arg("-o")
        .arg(&out)
        .args(extra);
    // Image builds (rehearsals) reach PyPI through this machine's CA bundle.
    if std::env::var_os("PIP_CERT").is_none() {
        cmd.env("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt");
    }
    let done = run_bounded_for(cmd, &format!("nb2pipe run {}", nb.display()), limit);
    let plan = find_plan(&out);
    let pipeline = plan["pipeline"].as_str().unwrap().to_string();
    let runs = if extra.iter().any(|a| a.starts_with("s3://")) {
        out.join("nb2pipe-runs")
    } else {
        out.join("nb2pipe-data")
    };
    let latest = std::fs::read_to_string(runs.join(&pipeline).join("latest"))
        .unwrap_or_else(|e| panic!("no latest run ({e}); stderr:\n{}", done.stderr));
    let run_dir = runs.join(&pipeline).join(latest.trim());
    let record = common::read_json(&run_dir.join("run.json"));
    Split {
        folder: dir.path().to_path_buf(),
        _dir: dir,
        done,
        plan,
        record,
        run_dir,
    }
}

pub fn find_plan(out: &Path) -> Value {
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let p = e.path().join("plan.json");
        if p.exists() {
            return common::read_json(&p);
        }
    }
    panic!("no plan.json under {}", out.display());
}

/// Timing lines differ from run to run.
pub fn normalise(text: &str) -> String {
    // Spark's console progress bar redraws itself with `\r`: only what is left is output.
    let text: String = text
        .split('\n')
        .filter_map(|l| {
            if !l.contains('\r') {
                return Some(l.to_string());
            }
            let kept: String = l
                .split('\r')
                .filter(|seg| !seg.starts_with("[Stage ") && !seg.trim().is_empty())
                .collect();
            (!kept.is_empty()).then_some(kept)
        })
        .collect::<Vec<_>>()
        .join("\n");
    text.lines()
        .filter(|l| !l.starts_with("CPU times: ") && !l.starts_with("Wall time: "))
        .filter(|l| !spark_noise(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What the JVM and PySpark print about themselves (timestamped log4j lines, startup
/// notes, their warnings and stack traces), which is not what the cells printed.
fn spark_noise(l: &str) -> bool {
    let b = l.as_bytes();
    let log4j = b.len() > 18
        && b[2] == b'/'
        && b[5] == b'/'
        && b[8] == b' '
        && b[11] == b':'
        && b[..8].iter().all(|c| c.is_ascii_digit() || *c == b'/');
    log4j
        || l.starts_with("WARNING: Using incubator modules")
        || l.starts_with("Using Spark's default log4j profile")
        || l.starts_with("Setting default log level to")
        || l.starts_with("To adjust logging level use sc.setLogLevel")
        || l.contains("FutureWarning: PySpark does not yet fully support")
        || l == "  require_minimum_pandas_version()"
        || l.starts_with("\tat ")
        || l.starts_with("java.io.IOException")
}

/// Every task that ran printed exactly what its cells printed in the notebook.
pub fn assert_same_output(name: &str, cells: &serde_json::Map<String, Value>, split: &Split) {
    for task in split.plan["tasks"].as_array().unwrap() {
        let tname = task["name"].as_str().unwrap();
        if split.task(tname)["state"] != "succeeded" {
            continue;
        }
        let expected: String = task["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                cells
                    .get(&c.to_string())
                    .and_then(Value::as_str)
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(
            normalise(&split.log(tname)),
            normalise(&expected),
            "{name}: task `{tname}` printed something else than its cells in the notebook"
        );
    }
}

pub fn result_line(text: &str) -> Value {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

/// The notebook's RESULT, the split run's RESULT; asserts the run succeeded and both agree.
pub fn prove(name: &str, params: &[(&str, &str)], extra: &[&str]) -> (Value, Split) {
    let (cells, error) = run_notebook(name, params);
    assert!(
        error.is_null(),
        "{name}: the notebook itself failed: {error}"
    );
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for (k, v) in params {
        args.push("-p".into());
        args.push(format!("{k}={v}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = nb2pipe_run(name, &argv);
    assert_eq!(
        split.done.code, 0,
        "{name}: nb2pipe run failed:\n{}",
        split.done.stderr
    );
    assert_same_output(name, &cells, &split);
    let nb_text: String = cells.values().filter_map(Value::as_str).collect();
    let expected = result_line(&nb_text);
    let last = split.plan["tasks"].as_array().unwrap().last().unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        result_line(&split.log(&last)),
        expected,
        "{name}: final values differ"
    );
    (expected, split)
}

pub fn store_formats(split: &Split, task: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(split.run_dir.join("values").join(task))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".format") && !n.ends_with(".sha256"))
        .collect();
    v.sort();
    v
}

/// A moto S3 server (the exec venv's moto_server) on a free loopback port, killed on drop.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_moto(log: &Path) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = python().parent().unwrap().join("moto_server");
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(File::create(log).unwrap())
        .stderr(File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "moto_server did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

/// What boto3 needs to reach moto at `endpoint` (its test credentials, no profile).
pub fn s3_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("NB2PIPE_S3_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}
