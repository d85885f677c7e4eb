//! `nb2pipe convert`: the plan → the output bundle for the chosen targets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::cli::{ConvertArgs, DiagFormat};
use crate::emit::{self, Templates};

pub fn execute(args: &ConvertArgs) -> CmdResult {
    let targets = check_targets(&args.target)?;
    let loaded = load(&args.notebook, &args.settings);
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
    let templates = Templates::load(args.templates.as_deref())?;
    let out_root = output_root(
        &args.notebook,
        args.out.as_deref(),
        loaded.output.as_deref(),
    );
    let dir = out_root.join(&plan.pipeline);
    // Images pushed by `build --push` are referred to by digest while their tag matches.
    let mut plan = plan.clone();
    crate::build::images::apply(&mut plan, &crate::build::images::Images::read(&dir));
    let plan = &plan;
    let bundle = emit::bundle(plan, &templates, &targets)?;
    crate::fs::write_bundle(&dir, &bundle)
        .with_context(|| format!("writing the bundle to {}", dir.display()))?;
    match args.format {
        DiagFormat::Human => eprintln!(
            "wrote {} ({} tasks, {} files)",
            dir.display(),
            plan.tasks.len(),
            bundle.files.len()
        ),
        DiagFormat::Json => println!(
            "{}",
            serde_json::json!({"ok": true, "bundle": dir, "files": bundle.files.keys().collect::<Vec<_>>(), "diagnostics": loaded.diagnostics})
        ),
    }
    Ok(0)
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
