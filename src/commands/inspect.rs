//! `nb2pipe inspect`: the plan as a table, JSON, Mermaid or Graphviz dot.

use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::cli::{DiagFormat, InspectArgs, InspectFormat};
use crate::plan::Plan;

pub fn execute(args: &InspectArgs) -> CmdResult {
    let loaded = load(&args.notebook, &args.settings);
    let fmt = if args.format == InspectFormat::Json {
        DiagFormat::Json
    } else {
        DiagFormat::Human
    };
    print_diagnostics(&loaded.diagnostics, fmt);
    let code = exit_code(&loaded.diagnostics);
    match (&loaded.plan, args.format) {
        (Some(plan), InspectFormat::Table) => {
            print!("{}", table(plan));
            let out = super::convert::output_root(&args.notebook, None, loaded.output.as_deref());
            print!("{}", last_run(plan, &out.join("nb2pipe-data")));
        }
        (Some(plan), InspectFormat::Mermaid) => print!("{}", mermaid(plan)),
        (Some(plan), InspectFormat::Dot) => print!("{}", dot(plan)),
        (plan, InspectFormat::Json) => {
            let doc = serde_json::json!({"plan": plan, "diagnostics": loaded.diagnostics});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        (None, _) => {}
    }
    Ok(code)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// Seconds as a tag writes them: `1h30m`, `2m`, `45s`, `0s`.
fn duration(secs: u64) -> String {
    let mut out = String::new();
    let mut rest = secs;
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

/// A value on one table line: newlines and other control characters escaped.
fn one_line(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn table(plan: &Plan) -> String {
    let mut out = format!(
        "pipeline {} (from {}, python {})\n",
        plan.pipeline, plan.notebook, plan.python
    );
    let s = &plan.settings;
    out.push_str(&format!(
        "schedule {}  namespace {}  base image {}\n",
        s.schedule.as_deref().unwrap_or("none"),
        s.namespace,
        s.base_image
    ));
    if !plan.parameters.is_empty() {
        out.push_str("\nparameters\n");
        for p in &plan.parameters {
            out.push_str(&format!("  {} ({}) = {}\n", p.name, p.ty, p.default));
        }
    }
    let rows: Vec<[String; 5]> = plan
        .tasks
        .iter()
        .map(|t| {
            let inputs: Vec<String> = t
                .inputs
                .iter()
                .map(|i| format!("{} ← {}", i.name, i.from))
                .collect();
            let mut settings: Vec<String> = t
                .settings
                .resources
                .requests
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            // Names and keys only: the plan holds no secret value.
            settings.extend(t.settings.secrets.iter().map(|s| {
                match (&s.key, &s.env, &s.mount_path) {
                    (Some(k), Some(e), _) => format!("secret:{}:{k}→{e}", s.name),
                    (_, _, Some(m)) => format!("secret:{}@{m}", s.name),
                    _ => format!("secret:{} (every key)", s.name),
                }
            }));
            settings.extend(
                t.settings
                    .env
                    .iter()
                    .map(|(k, v)| format!("env:{k}={}", one_line(v))),
            );
            if t.settings.retries > 0 {
                settings.push(format!("retries={}", t.settings.retries));
                settings.push(format!(
                    "retry-delay={}",
                    duration(t.settings.retry_delay_seconds)
                ));
            }
            if let Some(secs) = t.settings.timeout_seconds {
                settings.push(format!("timeout={}", duration(secs)));
            }
            if t.image.prebuilt {
                settings.push(format!("image={}", t.image.reference));
            }
            [
                t.name.clone(),
                t.cells
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                list(&inputs),
                list(
                    &t.outputs
                        .iter()
                        .map(|o| {
                            if t.changes.contains(o) {
                                format!("{o} (changed)")
                            } else {
                                o.clone()
                            }
                        })
                        .collect::<Vec<_>>(),
                ),
                list(&settings),
            ]
        })
        .collect();
    let head = ["task", "cells", "inputs", "outputs", "settings"];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cols: [&str; 5]| -> String {
        let mut l = String::from("  ");
        for (i, c) in cols.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            l.push_str(c);
            if i + 1 < cols.len() {
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str("\ntasks\n");
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    if plan.tasks.iter().any(|t| !t.changes.is_empty()) {
        out.push_str("  (changed): the task received the value and may change it in place, so later tasks receive it from this task\n");
    }
    out.push_str("\ncache\n");
    for t in &plan.tasks {
        match (&t.cache.key, &t.cache.reason) {
            (Some(k), _) if t.cache.enabled => {
                out.push_str(&format!("  {}  key {}\n", t.name, &k[..k.len().min(16)]))
            }
            (_, r) => out.push_str(&format!(
                "  {}  not cached: {}\n",
                t.name,
                r.as_deref().unwrap_or("off")
            )),
        }
    }
    out.push_str("\nedges\n");
    if plan.edges.is_empty() {
        out.push_str("  (none: every task is independent)\n");
    }
    for e in &plan.edges {
        // The notebook seeds a global random generator: each task starts from the
        // states the one before it left (docs/running.md).
        let random = plan
            .task(&e.to)
            .and_then(|t| t.random_state.as_ref())
            .is_some_and(|r| r.from.as_deref() == Some(e.from.as_str()));
        let what = match (e.values.is_empty(), random) {
            (true, true) => "(random state)".to_string(),
            (true, false) => "(after)".to_string(),
            (false, true) => format!("{} (and random state)", e.values.join(", ")),
            (false, false) => e.values.join(", "),
        };
        out.push_str(&format!(
            "  {} → {}  {}{}\n",
            e.from,
            e.to,
            what,
            if e.explicit && !e.values.is_empty() {
                " (also after)"
            } else {
                ""
            }
        ));
    }
    out
}

/// Whether the latest `nb2pipe run` (in the default data folder) ran each task with
/// the key it has now: the runtime can then reuse its outputs, when what it receives is
/// unchanged too.
fn last_run(plan: &Plan, runs: &std::path::Path) -> String {
    let Ok(rec) = crate::exec::latest(runs, &plan.pipeline) else {
        return String::new();
    };
    let mut out = format!("\nlast run {}\n", rec.run_id);
    for t in plan.tasks.iter().filter(|t| t.cache.enabled) {
        let Some(r) = rec.tasks.iter().find(|r| r.name == t.name) else {
            continue;
        };
        let same = r.cache_key.is_some() && r.cache_key == t.cache.key && r.state.ok();
        out.push_str(&format!(
            "  {}  {}\n",
            t.name,
            if same {
                "can be reused (same key; it runs again only if what it receives changed)"
            } else {
                "runs again (its key changed, or it did not succeed)"
            }
        ));
    }
    out
}

/// Mermaid node ids are the plan indexes; labels are quoted and escaped.
pub fn mermaid(plan: &Plan) -> String {
    let esc = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart TD\n");
    for (i, t) in plan.tasks.iter().enumerate() {
        out.push_str(&format!("    t{i}[\"{}\"]\n", esc(&t.name)));
    }
    for e in &plan.edges {
        let (Some(a), Some(b)) = (
            plan.tasks.iter().position(|t| t.name == e.from),
            plan.tasks.iter().position(|t| t.name == e.to),
        ) else {
            continue;
        };
        if e.values.is_empty() {
            out.push_str(&format!("    t{a} --> t{b}\n"));
        } else {
            out.push_str(&format!(
                "    t{a} -->|\"{}\"| t{b}\n",
                esc(&e.values.join(", "))
            ));
        }
    }
    out
}

pub fn dot(plan: &Plan) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box];\n",
        esc(&plan.pipeline)
    );
    for t in &plan.tasks {
        out.push_str(&format!("    \"{}\";\n", esc(&t.name)));
    }
    for e in &plan.edges {
        let label = if e.values.is_empty() {
            String::new()
        } else {
            format!(" [label=\"{}\"]", esc(&e.values.join(", ")))
        };
        out.push_str(&format!(
            "    \"{}\" -> \"{}\"{label};\n",
            esc(&e.from),
            esc(&e.to)
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_tags_write_them() {
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90061), "1d1h1m1s");
        assert_eq!(one_line("a\nb\tc ü"), "a\\nb\\tc ü");
    }
}
