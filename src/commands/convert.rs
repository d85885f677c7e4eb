//! `nb2pipe convert`: the plan → the output bundle for the chosen targets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::cli::{ConvertArgs, DiagFormat};
use crate::diagnostics::{Code, Diagnostic};
use crate::emit::{self, Templates};
use crate::fs::{read_record, Record};

pub fn execute(args: &ConvertArgs) -> CmdResult {
    check_targets(&args.target)?;
    // The templates compile while the notebook is read and planned.
    let (mut loaded, templates) = crate::parallel::both(
        || load(&args.notebook, &args.settings),
        || Templates::load(args.templates.as_deref()),
    );
    let templates = templates?;
    super::guard_secrets(&mut loaded, &args.notebook, args.allow_secrets);
    let options = emit::EmitOptions {
        skeletons: args.skeletons,
    };
    let out_root = output_root(
        &args.notebook,
        args.out.as_deref(),
        loaded.output.as_deref(),
    );
    if let Some(p) = loaded.plan.as_mut() {
        super::apply_recorded_images(p, &out_root);
    }
    let mut bundle = None;
    let mut targets = Vec::new();
    let mut earlier = None;
    if let (Some(p), 0) = (&loaded.plan, exit_code(&loaded.diagnostics)) {
        let dir = out_root.join(&p.pipeline);
        earlier = read_record(&dir);
        targets = bundle_targets(&args.target, &dir, earlier.as_ref())?;
        let b = emit::bundle_with(p, &templates, &targets, &options)?;
        loaded
            .diagnostics
            .extend(b.notes.iter().map(|n| note_diagnostic(&args.notebook, n)));
        bundle = Some(b);
    }
    print_diagnostics(&loaded.diagnostics, args.format);
    let code = exit_code(&loaded.diagnostics);
    let plan = match (&loaded.plan, code) {
        (Some(p), 0) => p,
        _ => {
            if args.format == DiagFormat::Json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "diagnostics": loaded.diagnostics})
                );
            }
            return Ok(code.max(1));
        }
    };
    let Some(bundle) = bundle else { return Ok(1) };
    let dir = out_root.join(&plan.pipeline);
    let recorded = earlier.is_some();
    let record = Record::of(&bundle, &targets, args.skeletons);
    let removed = crate::fs::write_recorded(&dir, &bundle, &record, earlier.as_ref())
        .with_context(|| format!("writing the bundle to {}", dir.display()))?;
    // A bundle from before records: its other targets' folders are the user's to remove.
    let left: Vec<String> = if recorded {
        Vec::new()
    } else {
        emit::target_names()
            .into_iter()
            .filter(|t| !targets.iter().any(|c| c == t) && dir.join(t).is_dir())
            .map(|t| format!("{t}/"))
            .collect()
    };
    match args.format {
        DiagFormat::Human => {
            eprintln!(
                "wrote {} ({}, {}) for {}",
                dir.display(),
                crate::diagnostics::render::counted(plan.tasks.len(), "task"),
                crate::diagnostics::render::counted(bundle.files.len(), "file"),
                targets.join(", ")
            );
            if !removed.is_empty() {
                eprintln!(
                    "removed {} no longer generated: {}",
                    crate::diagnostics::render::counted(removed.len(), "file"),
                    shorten_list(&removed)
                );
            }
            for l in &left {
                eprintln!("note: {l} was not written by this convert and is left as it is; remove it, or give --target {}", l.trim_end_matches('/'));
            }
        }
        DiagFormat::Json => println!(
            "{}",
            serde_json::json!({"ok": true, "bundle": dir, "targets": targets, "files": bundle.files.keys().collect::<Vec<_>>(), "removed": removed, "left_over": left, "diagnostics": loaded.diagnostics})
        ),
    }
    // The process ends next (only main calls this): freeing the plan's and the bundle's
    // allocations one by one would take about a millisecond for a large notebook.
    std::mem::forget(bundle);
    std::mem::forget(loaded);
    Ok(0)
}

fn shorten_list(paths: &[String]) -> String {
    let mut s = paths.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > 5 {
        s.push_str(&format!(", and {} more", paths.len() - 5));
    }
    s
}

/// The targets a bundle at `dir` is written with: those given, else those its record
/// (`record`, as [`read_record`] found it) lists, else the target folders it has (a
/// bundle written before records), else airflow. `all` is expanded; the order is
/// `--target all`'s.
pub fn bundle_targets(
    given: &[String],
    dir: &Path,
    record: Option<&Record>,
) -> anyhow::Result<Vec<String>> {
    let names = emit::target_names();
    let wanted: Vec<String> = if !given.is_empty() {
        check_targets(given)?
    } else if let Some(r) = record {
        r.targets.clone()
    } else {
        names
            .iter()
            .filter(|t| dir.join(t).is_dir())
            .map(|t| t.to_string())
            .collect()
    };
    let all = wanted.iter().any(|t| t == "all");
    let out: Vec<String> = names
        .iter()
        .filter(|n| all || wanted.iter().any(|w| w == *n))
        .map(|n| n.to_string())
        .collect();
    Ok(if out.is_empty() {
        vec!["airflow".into()]
    } else {
        out
    })
}

/// An emitter's note as a diagnostic (NB301 error / NB302 warning).
fn note_diagnostic(notebook: &Path, n: &emit::Note) -> Diagnostic {
    let code = if n.error {
        Code::TargetUnsafeValue
    } else {
        Code::TargetCannotExpress
    };
    let task = n
        .task
        .as_deref()
        .map(|t| format!(", task `{t}`"))
        .unwrap_or_default();
    Diagnostic::new(code, notebook, format!("{}{task}: {}", n.target, n.message))
}

pub fn check_targets(given: &[String]) -> anyhow::Result<Vec<String>> {
    let known = emit::target_names();
    let mut out = Vec::new();
    for t in given.iter().flat_map(|t| t.split(',')) {
        let t = t.trim().to_ascii_lowercase();
        if t != "all" && !known.contains(&t.as_str()) {
            bail!("unknown target `{t}`; targets: {}, all", known.join(", "));
        }
        out.push(t);
    }
    Ok(out)
}

/// `-o DIR`, else the project/notebook `output` setting (relative to the notebook),
/// else `build/` next to the notebook.
pub fn output_root(notebook: &Path, cli: Option<&Path>, setting: Option<&str>) -> PathBuf {
    if let Some(o) = cli {
        return o.to_path_buf();
    }
    let base = notebook.parent().map(Path::to_path_buf).unwrap_or_default();
    base.join(setting.unwrap_or("build"))
}
