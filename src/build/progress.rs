//! Per-task progress: a bar per task on a terminal (indicatif), plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn new() -> Progress {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi }
    }

    pub fn plain() -> Progress {
        Progress { multi: None }
    }

    pub fn task(&self, task: &str) -> TaskProgress {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(1));
            b.set_style(
                ProgressStyle::with_template("{prefix:>16} [{bar:20}] {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(task.to_string());
            b
        });
        TaskProgress {
            task: task.to_string(),
            bar,
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

pub struct TaskProgress {
    task: String,
    bar: Option<ProgressBar>,
}

impl TaskProgress {
    pub fn start(&self, what: &str) {
        match &self.bar {
            Some(b) => b.set_message(what.to_string()),
            None => eprintln!("{}: {what}", self.task),
        }
    }

    /// A line of build output: `Step N/M : …` moves the bar.
    pub fn line(&self, line: &str) {
        let Some(rest) = line.strip_prefix("Step ") else {
            return;
        };
        let Some((nm, instr)) = rest.split_once(" : ") else {
            return;
        };
        let short: String = instr.chars().take(60).collect();
        match &self.bar {
            Some(b) => {
                if let Some((n, m)) = nm.split_once('/') {
                    if let (Ok(n), Ok(m)) = (n.parse::<u64>(), m.parse::<u64>()) {
                        b.set_length(m);
                        b.set_position(n.saturating_sub(1));
                    }
                }
                b.set_message(short);
            }
            None => eprintln!("{}: step {nm}: {short}", self.task),
        }
    }

    pub fn finish(&self, what: &str) {
        match &self.bar {
            Some(b) => {
                if let Some(l) = b.length() {
                    b.set_position(l);
                }
                b.finish_with_message(what.to_string());
            }
            None => eprintln!("{}: {what}", self.task),
        }
    }
}
