//! What each fuzz target runs on one input, and the invariants it checks. Shared by the
//! fuzz targets (fuzz/fuzz_targets/) and by tests/fuzz_regressions.rs, which replays
//! every input kept in fuzz/regressions/<target>/.
//!
//! A check returns `Err` for a broken invariant; a panic is a finding too.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use nb2pipe::diagnostics::{Diagnostic, Severity};
use nb2pipe::emit::{self, EmitOptions, Templates};
use nb2pipe::notebook::{self, Notebook};
use nb2pipe::plan::{self, settings::PipelineLayer};

/// A folder that does not exist, so no project file, environment or data file is found.
const NOTEBOOK: &str = "/nonexistent-nb2pipe-fuzz/fuzz.ipynb";

/// Names of the fuzz targets, each with its folder of regression inputs.
pub const TARGETS: &[&str] = &["notebook", "settings", "analysis", "convert"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) -> Result<(), String> {
    match name {
        "notebook" => notebook(data),
        "settings" => settings(data),
        "analysis" => analysis(data),
        "convert" => convert(data),
        _ => Err(format!("unknown fuzz target `{name}`")),
    }
}

/// Wraps the panic hook (the fuzzer's aborts) so that it ignores the panics of ruff's
/// parser that nb2pipe catches and reports as a cell it cannot read; every other panic
/// is still a finding.
pub fn ignore_caught_parser_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !nb2pipe::analysis::in_parser() {
            hook(info)
        }
    }));
}

/// Keeps the input about to run in the file `$NB2PIPE_FUZZ_CURRENT` (when set). Without
/// a sanitizer libFuzzer cannot save an input that overflows the stack (its handler has
/// no stack left to run on); run.sh keeps this file when the process dies of a signal.
pub fn note_input(data: &[u8]) {
    use std::io::{Seek, Write};
    use std::sync::{Mutex, OnceLock};
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let path = std::env::var_os("NB2PIPE_FUZZ_CURRENT")?;
        std::fs::File::create(path).ok().map(Mutex::new)
    });
    if let Some(f) = file {
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = f.write_all(data);
    }
}

fn path() -> &'static Path {
    Path::new(NOTEBOOK)
}

/// A diagnostic the user can act on: a code, a message and the notebook it is about.
fn check_diagnostic(d: &Diagnostic) -> Result<(), String> {
    if d.message.trim().is_empty() {
        return Err(format!("diagnostic {} without a message", d.code.as_str()));
    }
    if d.location.notebook.as_os_str().is_empty() {
        return Err(format!("diagnostic {} names no notebook", d.code.as_str()));
    }
    Ok(())
}

/// The notebook reader: a notebook, or one error diagnostic, the same whether the
/// bytes are parsed whole or streamed.
pub fn notebook(data: &[u8]) -> Result<(), String> {
    let whole = notebook::parse_bytes(path(), data);
    let streamed = notebook::parse_reader(path(), data);
    if format!("{whole:?}") != format!("{streamed:?}") {
        return Err(format!(
            "read whole and streamed differ:\n{whole:?}\n{streamed:?}"
        ));
    }
    match whole {
        Ok(nb) => {
            for (i, c) in nb.cells.iter().enumerate() {
                let _ = c.first_line();
                if c.index != i {
                    return Err(format!("cell {i} has index {}", c.index));
                }
            }
            Ok(())
        }
        Err(d) => {
            if d.severity != Severity::Error {
                return Err(format!("reader failed with a {:?}", d.severity));
            }
            check_diagnostic(&d)
        }
    }
}

/// The tag and settings parsers: an even first byte makes the rest tag lines
/// ([`tags`]), an odd one a project file ([`project_file`]).
pub fn settings(data: &[u8]) -> Result<(), String> {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => tags(rest),
        Some((_, rest)) => project_file(rest),
        None => Ok(()),
    }
}

/// The tag grammar: each line is one tag; then all of them on one code cell, planned
/// and emitted.
pub fn tags(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let tags: Vec<&str> = text.lines().take(16).collect();
    for t in &tags {
        let _ = plan::tags::parse_tag(t, &[]);
        if let Some(v) = t.strip_prefix("secret:") {
            let _ = plan::tags::parse_secret(v);
        }
        if let Some(v) = t.strip_prefix("toleration:") {
            let _ = plan::tags::parse_toleration(v);
        }
    }
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "n = 3\n", "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {"tags": tags}, "source": "x = n * 2\n", "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {"tags": ["task:report"]}, "source": "print(x)\n", "outputs": [], "execution_count": null},
        ]
    });
    convert_text(&nb.to_string(), None)
}

/// The project-file parser (`nb2pipe.toml`, then `[tool.nb2pipe]`); a layer that parses
/// is the project layer of a small notebook, planned and emitted.
pub fn project_file(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let toml_path = Path::new("/nonexistent-nb2pipe-fuzz/nb2pipe.toml");
    let _ = plan::config::parse_project_toml(toml_path, text, true);
    let layer = match plan::config::parse_project_toml(toml_path, text, false) {
        Ok(l) => l.unwrap_or_default(),
        Err(d) => return check_diagnostic(&d),
    };
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "n = 3\n", "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {"tags": ["task:load"]}, "source": "import json\nx = json.dumps(n)\n", "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {"tags": ["task:train"]}, "source": "print(x)\n", "outputs": [], "execution_count": null},
        ]
    });
    convert_text(&nb.to_string(), Some(&layer))
}

/// The Python analysis of one cell.
pub fn analysis(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let facts = nb2pipe::analysis::analyse_cell(text);
    let py = &facts.python;
    for e in &facts.escapes {
        let r = e.start..e.end;
        if r.start > r.end || r.end > py.len() {
            return Err(format!("escape range {r:?} outside the cell"));
        }
        if !py.is_char_boundary(r.start) || !py.is_char_boundary(r.end) {
            return Err(format!("escape range {r:?} splits a character"));
        }
    }
    Ok(())
}

/// The whole convert path on a notebook's text.
pub fn convert(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    convert_text(text, None)
}

/// Reads, plans and emits every target. Invariant: either an error diagnostic (or an
/// emitter's error note) stops it, or every target's files are in the bundle, and
/// emitting twice gives the same bytes.
fn convert_text(text: &str, project: Option<&PipelineLayer>) -> Result<(), String> {
    let nb: Notebook = match notebook::parse_str(path(), text) {
        Ok(nb) => nb,
        Err(d) => return check_diagnostic(&d),
    };
    let built = plan::build(plan::BuildInput {
        notebook: &nb,
        project,
        cli: PipelineLayer::default(),
        profile: None,
        python_env: None,
    });
    for d in &built.diagnostics {
        check_diagnostic(d)?;
    }
    if nb2pipe::diagnostics::has_errors(&built.diagnostics) {
        return Ok(());
    }
    let templates = Templates::load(None).map_err(|e| e.to_string())?;
    let all = vec!["all".to_string()];
    let options = EmitOptions { skeletons: true };
    let bundle = emit::bundle_with(&built.plan, &templates, &all, &options)
        .map_err(|e| format!("emit failed without a diagnostic: {e:#}"))?;
    if bundle.notes.iter().any(|n| n.is_error()) {
        return Ok(());
    }
    for t in emit::target_names() {
        let prefix = format!("{t}/");
        if !bundle.files.keys().any(|k| k.starts_with(&prefix)) {
            return Err(format!("no file for target {t}"));
        }
    }
    for task in &built.plan.tasks {
        let main = format!("tasks/{}/main.py", task.name);
        if !bundle.has(&main) {
            return Err(format!("no {main}"));
        }
    }
    let again = emit::bundle_with(&built.plan, &templates, &all, &options)
        .map_err(|e| format!("second emit failed: {e:#}"))?;
    if again != bundle {
        return Err("emitting the same plan twice gave different files".into());
    }
    Ok(())
}
