//! The run's progress on stderr: a live table (task, state, elapsed) on a terminal,
//! plain lines otherwise (CI logs, pipes).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::State;

pub struct Display {
    live: Option<Live>,
    /// `--progress jsonl`: one JSON object per event on stdout, for programs (the
    /// JupyterLab panel) that show the run's states as they change.
    jsonl: bool,
    width: usize,
    started: BTreeMap<String, Instant>,
    t0: Instant,
}

struct Live {
    _multi: MultiProgress,
    bars: BTreeMap<String, (ProgressBar, State)>,
}

impl Display {
    /// Live when stderr is a terminal.
    pub fn new() -> Display {
        Display::with_live(std::io::stderr().is_terminal())
    }

    pub fn with_live(live: bool) -> Display {
        Display {
            live: live.then(|| Live {
                _multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: BTreeMap::new(),
            }),
            jsonl: false,
            width: 4,
            started: BTreeMap::new(),
            t0: Instant::now(),
        }
    }

    /// JSON lines on stdout as well as the plain lines on stderr.
    pub fn jsonl() -> Display {
        Display {
            jsonl: true,
            ..Display::with_live(false)
        }
    }

    fn emit(&self, event: serde_json::Value) {
        use std::io::Write;
        if self.jsonl {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        }
    }

    pub fn begin(&mut self, run_id: &str, run_dir: &Path, tasks: Vec<&str>) {
        self.emit(serde_json::json!({
            "event": "begin", "run_id": run_id, "run_dir": run_dir, "tasks": tasks,
        }));
        eprintln!(
            "run {run_id}: {}; logs in {}",
            crate::diagnostics::render::counted(tasks.len(), "task"),
            run_dir.join("logs").display()
        );
        self.width = tasks.iter().map(|t| t.len()).max().unwrap_or(4);
        self.t0 = Instant::now();
        if let Some(live) = &mut self.live {
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for t in tasks {
                let bar = live._multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{t:<w$}", w = self.width));
                bar.set_message("waiting");
                live.bars.insert(t.to_string(), (bar, State::Waiting));
            }
        }
    }

    pub fn update(&mut self, task: &str, state: State, took: Option<Duration>) {
        if state == State::Running {
            self.started.insert(task.to_string(), Instant::now());
        }
        self.emit(serde_json::json!({
            "event": "task", "task": task, "state": state,
            "seconds": took.map(|d| d.as_secs_f64()),
        }));
        let text = describe(state, took);
        match &mut self.live {
            Some(live) => {
                if let Some((bar, s)) = live.bars.get_mut(task) {
                    *s = state;
                    bar.set_message(text);
                    if state != State::Running {
                        bar.finish();
                    }
                }
            }
            None => eprintln!(
                "[{:>7.1}s] {task:<w$}  {text}",
                self.t0.elapsed().as_secs_f64(),
                w = self.width
            ),
        }
    }

    /// Refreshes the elapsed time of running tasks.
    pub fn tick(&mut self) {
        if let Some(live) = &mut self.live {
            for (name, (bar, state)) in &live.bars {
                if *state == State::Running {
                    let el = self
                        .started
                        .get(name)
                        .map(|s| s.elapsed())
                        .unwrap_or_default();
                    bar.set_message(format!("running    {:.1}s", el.as_secs_f64()));
                    bar.tick();
                }
            }
        }
    }

    pub fn end(&mut self) {
        self.emit(serde_json::json!({"event": "end"}));
        if let Some(live) = &mut self.live {
            for (bar, _) in live.bars.values() {
                bar.finish();
            }
        }
    }
}

impl Default for Display {
    fn default() -> Self {
        Display::new()
    }
}

fn describe(state: State, took: Option<Duration>) -> String {
    let took = took
        .map(|d| format!(" {:.1}s", d.as_secs_f64()))
        .unwrap_or_default();
    match state {
        State::Waiting => "waiting".into(),
        State::Running => "running".into(),
        State::Succeeded => format!("succeeded{took}"),
        State::Failed => format!("FAILED{took}"),
        State::Skipped => "skipped (an upstream task failed)".into(),
        State::Cached => format!("cached{took}"),
    }
}
