//! Local execution of a converted bundle (`nb2pipe run`): each task's `main.py` runs as
//! a subprocess of the chosen Python, in DAG order, independent tasks in parallel.
//!
//! The run directory (`<runs>/<pipeline>/<run id>/`) holds `run.json` (states, times,
//! where each task's values live) and `logs/<task>.log` (stdout and stderr together);
//! `<runs>/<pipeline>/latest` names the latest run, for `--only`.

mod display;
mod run_id;
pub(crate) use run_id::utc_stamp;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
pub use display::Display;
pub use run_id::new_run_id;

/// Everything a run needs; `commands::run` fills it from the command line.
pub struct RunConfig {
    /// The bundle folder (`<out>/<pipeline>`), as `convert` writes it.
    pub bundle: PathBuf,
    pub python: PathBuf,
    /// NB2PIPE_DATA for the tasks: an absolute directory or `s3://bucket/prefix`.
    pub data: String,
    /// Local folder for run.json, logs and `latest` (the data folder when it is local).
    pub runs: PathBuf,
    /// The tasks' working directory: the notebook's folder, as in Jupyter.
    pub workdir: PathBuf,
    pub jobs: usize,
    pub only: Option<String>,
    /// Parameter overrides (NB2PIPE_PARAMS).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Cell sources of the notebook, to quote the cell a task failed in.
    pub cells: Vec<crate::notebook::Cell>,
    /// Run each task from its pod on the Docker Engine (the cluster rehearsal)
    /// instead of as a local `python` process.
    pub docker: bool,
    /// With `docker`: the prepared pods and the run's volumes.
    pub rehearsal: Option<std::sync::Arc<RehearsalRun>>,
    /// The run id to use (the engine's, in a rehearsal); a new one when `None`.
    pub run_id: Option<String>,
    /// `--no-cache`: no task reads or writes the cache.
    pub no_cache: bool,
    /// `--rerun`: these tasks and everything downstream run (and refresh the cache).
    pub rerun: Vec<String>,
}

/// NB2PIPE_CACHE for each task of `plan`: `off` for all with `no_cache`, `write` for the
/// `rerun` tasks and their downstream, else `on`.
pub fn cache_modes(plan: &Plan, no_cache: bool, rerun: &[String]) -> Vec<&'static str> {
    let mut forced: Vec<bool> = plan.tasks.iter().map(|t| rerun.contains(&t.name)).collect();
    // Plan order is a topological order: one pass reaches every downstream task.
    for (i, t) in plan.tasks.iter().enumerate() {
        if plan.upstream(&t.name).iter().any(|u| {
            plan.tasks
                .iter()
                .position(|x| x.name == *u)
                .is_some_and(|u| forced[u])
        }) {
            forced[i] = true;
        }
    }
    forced
        .into_iter()
        .map(|f| match (no_cache, f) {
            (true, _) => "off",
            (false, true) => "write",
            (false, false) => "on",
        })
        .collect()
}

/// The line the runtime writes when it served a task from the cache.
fn served_from_cache(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("nb2pipe: task ") && l.contains(" served from the cache "))
    })
}

/// What the task threads of a rehearsal share.
pub struct RehearsalRun {
    pub pods: Vec<crate::rehearse::Prepared>,
    pub volumes: crate::rehearse::docker::RunVolumes,
    /// The tasks are the containers of one pod (a Job): a failed one ends the pod, so
    /// nothing after it runs.
    pub one_pod: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Waiting,
    Running,
    Succeeded,
    Failed,
    /// Not run: an upstream task failed.
    Skipped,
    /// Succeeded without running its code: its outputs for its cache key were in the
    /// store (docs/running.md, "Caching").
    Cached,
}

impl State {
    /// Succeeded, by running or from the cache.
    pub fn ok(self) -> bool {
        matches!(self, State::Succeeded | State::Cached)
    }
}

/// One task's record in run.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Milliseconds since the run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    pub log: PathBuf,
    /// Value → the task that produces it: what the task receives (read with
    /// `value_runs`; the IPython extension loads them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The values the task hands on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// The runtime's failure report: cell, line, message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task's static cache key in this run (`None`: not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// run.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub pipeline: String,
    pub notebook: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    pub data: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Task → the run whose store holds its values (all this run, except after `--only`).
    pub value_runs: BTreeMap<String, String>,
    pub tasks: Vec<TaskRecord>,
}

impl RunRecord {
    pub fn succeeded(&self) -> bool {
        self.tasks.iter().all(|t| t.state.ok())
    }
}

pub struct Outcome {
    pub record: RunRecord,
    pub run_dir: PathBuf,
}

/// The folder of one run.
pub fn run_dir(runs: &Path, pipeline: &str, run_id: &str) -> PathBuf {
    runs.join(pipeline).join(run_id)
}

/// The latest run's record, for `--only`.
pub fn latest(runs: &Path, pipeline: &str) -> Result<RunRecord> {
    let marker = runs.join(pipeline).join("latest");
    let id = std::fs::read_to_string(&marker).with_context(|| {
        format!(
            "no earlier run of `{pipeline}` in {} (run the whole pipeline first)",
            runs.display()
        )
    })?;
    let path = run_dir(runs, pipeline, id.trim()).join("run.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run record", path.display()))
}

struct Running {
    child: Proc,
    started: Instant,
    timeout: Option<Duration>,
}

/// A running task: a local Python process, or a container watched by a thread.
enum Proc {
    Local(Child),
    Container(Option<std::thread::JoinHandle<Result<i64, String>>>),
}

impl Proc {
    /// `Some(exit code)` once finished (`None` code: killed or failed to run).
    fn try_wait(&mut self) -> std::io::Result<Option<Option<i32>>> {
        match self {
            Proc::Local(c) => Ok(c.try_wait()?.map(|s| s.code())),
            Proc::Container(h) => {
                if !h.as_ref().is_some_and(|h| h.is_finished()) {
                    return Ok(None);
                }
                match h.take().map(|h| h.join()) {
                    Some(Ok(Ok(code))) => Ok(Some(Some(code as i32))),
                    Some(Ok(Err(e))) => Err(std::io::Error::other(e)),
                    _ => Err(std::io::Error::other("the container thread panicked")),
                }
            }
        }
    }

    /// Stops a local process; a container runs to its end (its pod timeout is the
    /// target's business).
    fn kill(&mut self) {
        if let Proc::Local(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs task `i`'s pod on its own thread, its output appended to `log`.
fn spawn_pod(r: &std::sync::Arc<RehearsalRun>, i: usize, mut log: File) -> Proc {
    let r = r.clone();
    Proc::Container(Some(std::thread::spawn(move || {
        use std::io::Write;
        let p = &r.pods[i];
        crate::rehearse::run_task(&r.volumes, p, |line| {
            let _ = writeln!(log, "{line}");
        })
    })))
}

/// Runs the plan's tasks (or `--only` one) and returns the record; task failures are in
/// the record, not errors. Errors: the run could not start (no Python, no earlier run).
pub fn run(plan: &Plan, cfg: &RunConfig, display: &mut Display) -> Result<Outcome> {
    let run_id = cfg.run_id.clone().unwrap_or_else(new_run_id);
    let dir = run_dir(
        &cfg.runs,
        &plan.pipeline,
        &crate::rehearse::safe_run_id(&run_id),
    );
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let (selected, value_runs): (Vec<usize>, BTreeMap<String, String>) = match &cfg.only {
        Some(only) => {
            let Some(i) = plan.tasks.iter().position(|t| &t.name == only) else {
                bail!(
                    "no task named `{only}`; tasks: {}",
                    plan.tasks
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let mut runs = latest(&cfg.runs, &plan.pipeline)?.value_runs;
            runs.insert(only.clone(), run_id.clone());
            (vec![i], runs)
        }
        None => (
            (0..plan.tasks.len()).collect(),
            plan.tasks
                .iter()
                .map(|t| (t.name.clone(), run_id.clone()))
                .collect(),
        ),
    };
    let input_runs = serde_json::to_string(&value_runs)?;
    let modes = cache_modes(plan, cfg.no_cache, &cfg.rerun);
    let params = serde_json::to_string(&cfg.params)?;

    let mut records: Vec<TaskRecord> = plan
        .tasks
        .iter()
        .map(|t| TaskRecord {
            name: t.name.clone(),
            state: State::Waiting,
            exit_code: None,
            started_ms: None,
            ended_ms: None,
            log: logs.join(format!("{}.log", t.name)),
            inputs: t
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.from.clone()))
                .collect(),
            outputs: t.outputs.clone(),
            error: None,
            reason: None,
            cache_key: t.cache.key.clone().filter(|_| t.cache.enabled),
        })
        .collect();
    let upstream: Vec<Vec<usize>> = plan
        .tasks
        .iter()
        .map(|t| {
            plan.upstream(&t.name)
                .iter()
                .filter_map(|u| plan.tasks.iter().position(|x| x.name == *u))
                .filter(|u| selected.contains(u))
                .collect()
        })
        .collect();

    display.begin(
        &run_id,
        &dir,
        selected
            .iter()
            .map(|&i| plan.tasks[i].name.as_str())
            .collect(),
    );
    let t0 = Instant::now();
    let mut running: BTreeMap<usize, Running> = BTreeMap::new();
    loop {
        // Start what is ready, in plan order; skip what can no longer run.
        for &i in &selected {
            if records[i].state != State::Waiting {
                continue;
            }
            let pod_failed = cfg.rehearsal.as_ref().is_some_and(|r| r.one_pod)
                && records.iter().any(|r| r.state == State::Failed);
            if pod_failed {
                records[i].state = State::Skipped;
                records[i].reason =
                    Some("an earlier container of the pod failed, which ends the pod".into());
                display.update(&plan.tasks[i].name, State::Skipped, None);
                continue;
            }
            if let Some(&u) = upstream[i]
                .iter()
                .find(|&&u| matches!(records[u].state, State::Failed | State::Skipped))
            {
                records[i].state = State::Skipped;
                records[i].reason = Some(format!(
                    "upstream task `{}` did not succeed",
                    plan.tasks[u].name
                ));
                display.update(&plan.tasks[i].name, State::Skipped, None);
                continue;
            }
            if running.len() >= cfg.jobs.max(1)
                || !upstream[i].iter().all(|&u| records[u].state.ok())
            {
                continue;
            }
            let task = &plan.tasks[i];
            let log = File::create(&records[i].log)
                .with_context(|| format!("creating {}", records[i].log.display()))?;
            let err_file = logs.join(format!("{}.error.json", task.name));
            let _ = std::fs::remove_file(&err_file);
            let child = if let (true, Some(r)) = (cfg.docker, &cfg.rehearsal) {
                spawn_pod(r, i, log)
            } else {
                let mut cmd = Command::new(&cfg.python);
                cmd.arg(cfg.bundle.join("tasks").join(&task.name).join("main.py"))
                    .current_dir(&cfg.workdir)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .envs(&task.settings.env)
                    .env("PYTHONUNBUFFERED", "1")
                    .env("NB2PIPE_PIPELINE", &plan.pipeline)
                    .env("NB2PIPE_TASK", &task.name)
                    .env("NB2PIPE_RUN_ID", &run_id)
                    .env("NB2PIPE_DATA", &cfg.data)
                    .env("NB2PIPE_INPUT_RUNS", &input_runs)
                    .env("NB2PIPE_PARAMS", &params)
                    .env("NB2PIPE_ERROR_FILE", &err_file)
                    .env(crate::pod::CACHE_MODE_ENV, modes[i]);
                if let Some(key) = task.cache.key.as_ref().filter(|_| task.cache.enabled) {
                    cmd.env(crate::pod::CACHE_KEY_ENV, key);
                }
                if let Some(args) = crate::emit::spark::run_submit_args(task) {
                    cmd.env(crate::emit::spark::SUBMIT_ARGS_ENV, args);
                }
                let child = cmd.spawn().with_context(|| {
                    format!("starting {} for task `{}`", cfg.python.display(), task.name)
                })?;
                Proc::Local(child)
            };
            records[i].state = State::Running;
            records[i].started_ms = Some(t0.elapsed().as_millis() as u64);
            running.insert(
                i,
                Running {
                    child,
                    started: Instant::now(),
                    timeout: task.settings.timeout_seconds.map(Duration::from_secs),
                },
            );
            display.update(&task.name, State::Running, None);
        }
        // Reap what finished.
        let mut done = Vec::new();
        for (&i, r) in running.iter_mut() {
            let status = match r.child.try_wait() {
                Ok(Some(code)) => Some((code, None)),
                Ok(None) if r.timeout.is_some_and(|t| r.started.elapsed() > t) && !cfg.docker => {
                    r.child.kill();
                    Some((
                        None,
                        Some(format!(
                            "timed out after {} s",
                            r.timeout.unwrap_or_default().as_secs()
                        )),
                    ))
                }
                Ok(None) => None,
                Err(e) => Some((None, Some(format!("could not wait for the process: {e}")))),
            };
            if let Some((code, reason)) = status {
                let rec = &mut records[i];
                rec.ended_ms = Some(t0.elapsed().as_millis() as u64);
                rec.exit_code = code;
                rec.state = if code == Some(0) && served_from_cache(&rec.log) {
                    State::Cached
                } else if code == Some(0) {
                    State::Succeeded
                } else {
                    State::Failed
                };
                rec.reason = reason.or_else(|| {
                    if code.is_none() {
                        Some("killed by a signal".into())
                    } else {
                        None
                    }
                });
                let err_file = logs.join(format!("{}.error.json", rec.name));
                rec.error = std::fs::read_to_string(&err_file)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .or_else(|| error_from_log(&rec.log));
                display.update(&rec.name, rec.state, Some(r.started.elapsed()));
                done.push(i);
            }
        }
        for i in done {
            running.remove(&i);
        }
        let waiting = selected.iter().any(|&i| records[i].state == State::Waiting);
        if running.is_empty() && !waiting {
            break;
        }
        display.tick();
        std::thread::sleep(Duration::from_millis(50));
    }
    display.end();

    let record = RunRecord {
        run_id: run_id.clone(),
        pipeline: plan.pipeline.clone(),
        notebook: plan.notebook.clone(),
        only: cfg.only.clone(),
        data: cfg.data.clone(),
        params: cfg.params.clone(),
        value_runs,
        tasks: selected.iter().map(|&i| records[i].clone()).collect(),
    };
    crate::fs::write_atomic(
        &dir.join("run.json"),
        (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
    )?;
    crate::fs::write_atomic(
        &cfg.runs.join(&plan.pipeline).join("latest"),
        format!("{}\n", crate::rehearse::safe_run_id(&run_id)).as_bytes(),
    )?;
    Ok(Outcome {
        record,
        run_dir: dir,
    })
}

/// A pod has no error file: the runtime's last words in its log say where it failed
/// (`nb2pipe: task 'T' failed in notebook NB, cell N (`first line`), line L: MESSAGE`,
/// N counted from 1).
fn error_from_log(log: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(log).ok()?;
    let re = regex::Regex::new(
        r"^nb2pipe: task '.*' failed in notebook .*, cell (\d+)(?: \(.*?\))?, line (\d+): (.*)$",
    )
    .expect("a valid pattern");
    text.lines().rev().find_map(|l| {
        let c = re.captures(l)?;
        Some(serde_json::json!({
            "cell": c[1].parse::<u64>().ok()?.checked_sub(1)?,
            "line": c[2].parse::<u64>().ok()?,
            "message": &c[3],
        }))
    })
}

/// What to tell the user about a failed task: where it failed (cell, line, the line's
/// text) and the end of its log.
pub fn failure_report(
    rec: &TaskRecord,
    cells: &[crate::notebook::Cell],
    tail_lines: usize,
) -> String {
    let mut out = String::new();
    let status = match (&rec.reason, rec.exit_code) {
        (Some(r), _) => r.clone(),
        (None, Some(c)) => format!("exit status {c}"),
        (None, None) => "no exit status".into(),
    };
    out.push_str(&format!("task `{}` failed ({status})\n", rec.name));
    if let Some(err) = &rec.error {
        let msg = err.get("message").and_then(|m| m.as_str()).unwrap_or("");
        match (
            err.get("cell").and_then(|c| c.as_u64()),
            err.get("line").and_then(|l| l.as_u64()),
        ) {
            (Some(cell), Some(line)) => {
                let c = cells.get(cell as usize);
                let name = crate::diagnostics::render::cell_name(
                    cell as usize + 1,
                    c.and_then(|c| c.execution_count),
                    c.map(|c| c.first_line()).unwrap_or(""),
                );
                out.push_str(&format!("  in notebook {name}, line {line}: {msg}\n"));
                let source = c.map(|c| c.source.as_str()).unwrap_or("");
                if let Some(text) = source.lines().nth((line as usize).saturating_sub(1)) {
                    out.push_str(&format!("  {line:>4} | {text}\n"));
                }
            }
            _ => out.push_str(&format!("  {msg}\n")),
        }
    }
    let log = std::fs::read_to_string(&rec.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(tail_lines);
    out.push_str(&format!(
        "  last {} lines of {}:\n",
        lines.len() - from,
        rec.log.display()
    ));
    for l in &lines[from..] {
        out.push_str("    ");
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
