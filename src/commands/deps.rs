//! `nb2pipe deps`: each task's requirements, with where every name and pin came from.
//! The requirement lines are exactly the bundle's `tasks/<task>/requirements.txt`.

use anyhow::bail;

use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::cli::{DepsArgs, DepsFormat, DiagFormat};
use crate::plan::{Plan, Task};

pub fn execute(args: &DepsArgs) -> CmdResult {
    let loaded = load(&args.notebook, &args.settings);
    let diag_format = if args.format == DepsFormat::Json {
        DiagFormat::Json
    } else {
        DiagFormat::Human
    };
    print_diagnostics(&loaded.diagnostics, diag_format);
    let code = exit_code(&loaded.diagnostics);
    let Some(plan) = &loaded.plan else {
        if args.format == DepsFormat::Json {
            println!(
                "{}",
                serde_json::json!({"tasks": [], "diagnostics": loaded.diagnostics})
            );
        }
        return Ok(code.max(1));
    };
    let tasks: Vec<&Task> = match &args.task {
        Some(name) => match plan.task(name) {
            Some(t) => vec![t],
            None => bail!(
                "no task named `{name}`; tasks: {}",
                plan.tasks
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => plan.tasks.iter().collect(),
    };
    match args.format {
        DepsFormat::Requirements => print!("{}", requirements_text(plan, &tasks)),
        DepsFormat::Json => {
            let doc = serde_json::json!({
                "pipeline": plan.pipeline,
                "python": plan.python,
                "tasks": tasks.iter().map(|t| serde_json::json!({
                    "task": t.name,
                    "requirements": t.requirements,
                    "optional": t.optional_requirements,
                    "local_modules": t.local_modules,
                })).collect::<Vec<_>>(),
                "diagnostics": loaded.diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(code)
}

/// Per task: a `# task` header, then each requirement line with a trailing comment.
/// Stripping the comments gives the task's requirements.txt.
pub fn requirements_text(plan: &Plan, tasks: &[&Task]) -> String {
    let mut out = String::new();
    for (i, t) in tasks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("# task {} (python {})\n", t.name, plan.python));
        if t.requirements.is_empty() {
            out.push_str("# no third-party requirements\n");
        }
        let width = t
            .requirements
            .iter()
            .map(|r| r.line.chars().count())
            .max()
            .unwrap_or(0);
        for r in &t.requirements {
            let pad = width - r.line.chars().count();
            out.push_str(&format!(
                "{}{}  # {}; name: {}; pin: {}\n",
                r.line,
                " ".repeat(pad),
                r.source,
                r.name_source,
                r.pin_source
            ));
        }
        for r in &t.optional_requirements {
            out.push_str(&format!(
                "# optional, not installed: {}  ({}, in try/except ImportError)\n",
                r.line, r.source
            ));
        }
        for m in &t.local_modules {
            out.push_str(&format!("# project module, copied into the image: {m}\n"));
        }
    }
    out
}
