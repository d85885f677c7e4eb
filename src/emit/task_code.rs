//! Each task's folder: `main.py` (the task's cells as plain Python, with loading and
//! saving of passed values around them), `requirements.txt`, `Dockerfile`, the runtime
//! module `nb2pipe_runtime.py`, and the project files that travel with the task:
//! `modules/` (its local modules) and `files/` (the data files its code opens), as
//! copies the bundle writer makes (docs/images.md).
//!
//! IPython syntax is rewritten in place, one line for one line, so a traceback's line
//! in main.py maps back to a notebook cell and line (the runtime does that mapping).

use anyhow::Result;
use serde::Serialize;

use super::pyrepr::{py_json, py_str};
use super::{Bundle, EmitContext, Emitter};
use crate::analysis::{
    classify_line_magic, parse_pip_args, strip_magic_options, CellMagic, EscapeKind, LineMagic,
};
use crate::plan::{Chunk, Plan, Task};

pub struct TaskFiles {
    /// The plan's tasks this one writes (emission is split between threads).
    pub tasks: std::ops::Range<usize>,
}

/// LOAD-BEARING: templates/task/main.py.j2 reads these fields by name.
#[derive(Serialize)]
struct MainInfo {
    version: &'static str,
    pipeline: String,
    task: String,
    notebook: String,
    inputs: String,
    outputs: String,
    parameters: String,
    consumers: String,
    line_map: String,
    staged: String,
    /// A Spark task: it reads a Spark DataFrame it receives with Spark.
    spark: bool,
    /// The task whose random states it restores (its digest is part of the cache key).
    random_from: String,
    code: String,
}

/// LOAD-BEARING: templates/task/Dockerfile.j2.
#[derive(Serialize)]
struct DockerInfo {
    version: &'static str,
    pipeline: String,
    task: String,
    base_image: String,
    notebook_label: String,
    description_label: String,
    content_hash: String,
    /// Built on the task's `image:` setting (which must have Python 3).
    from_setting: bool,
    /// A Spark task: its image needs a JVM.
    spark: bool,
    /// The folder has `modules/` (local modules) and `files/` (data files).
    modules: bool,
    files: bool,
}

/// Rendered in place of the code first, to find the line the code starts on (the line
/// map is absolute, and a user's template may have a longer header); and in place of
/// the line map, in the built-in template.
const CODE_MARK: &str = "#<nb2pipe task code>#";
const MAP_MARK: &str = "#<nb2pipe line map>#";

impl Emitter for TaskFiles {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let runtime = ctx.templates.file("task/nb2pipe_runtime.py")?;
        let tasks = ctx.plan.tasks.get(self.tasks.clone()).unwrap_or_default();
        for task in tasks {
            let dir = format!("tasks/{}", task.name);
            out.add(format!("{dir}/main.py"), main_py(ctx, task)?);
            let reqs: String = task
                .requirements
                .iter()
                .map(|r| format!("{}\n", r.line))
                .collect();
            out.add(
                format!("{dir}/requirements.txt"),
                if reqs.is_empty() {
                    "# no third-party requirements\n".to_string()
                } else {
                    reqs
                },
            );
            out.add_shared(format!("{dir}/nb2pipe_runtime.py"), &runtime);
            out.copies.extend(copies_of(task));
            if !task.image.prebuilt {
                out.add(format!("{dir}/Dockerfile"), dockerfile(ctx, task)?);
            }
        }
        Ok(())
    }
}

/// The project files `task`'s folder holds: path in the bundle → where it comes from.
pub fn copies_of(task: &Task) -> impl Iterator<Item = (String, std::path::PathBuf)> + '_ {
    task.copies
        .iter()
        .map(|c| (format!("tasks/{}/{}", task.name, c.to), c.from.clone()))
}

fn dockerfile(ctx: &EmitContext<'_>, task: &Task) -> Result<String> {
    ctx.templates.render(
        "task/Dockerfile.j2",
        DockerInfo {
            version: env!("CARGO_PKG_VERSION"),
            pipeline: ctx.plan.pipeline.clone(),
            task: task.name.clone(),
            base_image: task
                .image
                .base
                .clone()
                .unwrap_or_else(|| ctx.plan.settings.base_image.clone()),
            notebook_label: docker_quote(&ctx.plan.notebook),
            description_label: docker_quote(&format!(
                "task {} of pipeline {} from notebook {}",
                task.name, ctx.plan.pipeline, ctx.plan.notebook
            )),
            content_hash: task.image.content_hash.clone().unwrap_or_default(),
            from_setting: task.image.base.is_some(),
            spark: task.settings.spark.is_some(),
            modules: has_copies(task, crate::deps::files::MODULES_DIR),
            files: has_copies(task, crate::deps::files::FILES_DIR),
        },
    )
}

fn has_copies(task: &Task, dir: &str) -> bool {
    let prefix = format!("{dir}/");
    task.copies.iter().any(|c| c.to.starts_with(&prefix))
}

/// A double-quoted Dockerfile word holding `s` literally: the notebook's name is user
/// input, so quotes, backslashes, `$` (variable expansion) and line breaks (a new
/// instruction) must not get through.
pub fn docker_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main_py(ctx: &EmitContext<'_>, task: &Task) -> Result<String> {
    let plan = ctx.plan;
    let inputs = format!(
        "{{{}}}",
        task.inputs
            .iter()
            .map(|i| format!("{}: {}", py_str(&i.name), py_str(&i.from)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let outputs = format!(
        "[{}]",
        task.outputs
            .iter()
            .map(|o| py_str(o))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let parameters = format!(
        "{{{}}}",
        plan.parameters
            .iter()
            .filter(|p| task.parameters.contains(&p.name))
            .map(|p| format!("{}: {}", py_str(&p.name), py_json(&p.default)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let consumers = format!(
        "{{{}}}",
        task.outputs
            .iter()
            .map(|o| {
                let readers: Vec<String> = plan
                    .tasks
                    .iter()
                    .filter(|t| t.inputs.iter().any(|i| &i.name == o && i.from == task.name))
                    .map(|t| py_str(&t.name))
                    .collect();
                format!("{}: [{}]", py_str(o), readers.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Data files too big for the image (empty: the argument is left out).
    let staged: Vec<String> = task
        .files
        .iter()
        .filter(|f| f.staged)
        .map(|f| py_str(&f.path))
        .collect();
    let staged = if staged.is_empty() {
        String::new()
    } else {
        format!("[{}]", staged.join(", "))
    };
    let render = |line_map: String, code: String| {
        ctx.templates.render(
            "task/main.py.j2",
            MainInfo {
                version: env!("CARGO_PKG_VERSION"),
                pipeline: plan.pipeline.clone(),
                task: task.name.clone(),
                notebook: plan.notebook.clone(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
                parameters: parameters.clone(),
                consumers: consumers.clone(),
                line_map,
                staged: staged.clone(),
                spark: task.settings.spark.is_some(),
                random_from: task
                    .random_state
                    .as_ref()
                    .and_then(|r| r.from.as_deref())
                    .map(py_str)
                    .unwrap_or_default(),
                code,
            },
        )
    };
    let names = cell_names(task);
    // The built-in template writes the line map and the code once each, as they are: it
    // is rendered once, with a mark in the place of each, unless a value of the plan
    // holds a mark too.
    if ctx.templates.is_builtin("task/main.py.j2") {
        let probe = render(MAP_MARK.to_string(), CODE_MARK.to_string())?;
        let map_at: Vec<usize> = probe.match_indices(MAP_MARK).map(|(i, _)| i).collect();
        let code_at: Vec<usize> = probe.match_indices(CODE_MARK).map(|(i, _)| i).collect();
        if let (&[m], &[c]) = (&map_at[..], &code_at[..]) {
            let first_line = probe[..c].matches('\n').count();
            let (code, map) = task_body(task, first_line + 1);
            let map = map_literal(&map, &names);
            let mut marks = [(m, MAP_MARK.len(), map), (c, CODE_MARK.len(), code)];
            marks.sort_by_key(|k| k.0);
            let mut out = String::with_capacity(probe.len() + marks[0].2.len() + marks[1].2.len());
            let mut at = 0;
            for (i, len, text) in &marks {
                out.push_str(&probe[at..*i]);
                out.push_str(text);
                at = i + len;
            }
            out.push_str(&probe[at..]);
            return Ok(out);
        }
    }
    // The line map's entries have a fixed width per chunk count, so rendering it with
    // zeros first cannot move the code's first line.
    let (_, probe_map) = task_body(task, 1);
    let probe = render(
        map_literal(
            &probe_map.iter().map(|m| (0, 0, m.2, 0)).collect::<Vec<_>>(),
            &names,
        ),
        CODE_MARK.to_string(),
    )?;
    let Some(first_line) = probe.lines().position(|l| l.trim() == CODE_MARK) else {
        anyhow::bail!(
            "the template task/main.py.j2 must have `{{{{{{ code }}}}}}` alone on a line"
        );
    };
    let (code, map) = task_body(task, first_line + 1);
    render(map_literal(&map, &names), code)
}

/// Each entry also names its cell for the runtime's messages.
fn map_literal(
    map: &[(usize, usize, usize, usize)],
    names: &std::collections::BTreeMap<usize, String>,
) -> String {
    format!(
        "[{}]",
        map.iter()
            .map(|(a, b, c, d)| {
                let name = names.get(c).map(String::as_str).unwrap_or_default();
                format!("({a}, {b}, {c}, {d}, {})", py_str(name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// How the runtime names each cell of the task, as diagnostics do (`cell N (`first
/// line`)`), the first line from the cell's earliest chunk. Without the `In [n]` prompt:
/// it changes whenever the notebook is run again, and the task's code should not.
fn cell_names(task: &Task) -> std::collections::BTreeMap<usize, String> {
    let mut first: std::collections::BTreeMap<usize, &Chunk> = Default::default();
    for c in &task.code {
        let e = first.entry(c.cell).or_insert(c);
        if c.first_line < e.first_line {
            *e = c;
        }
    }
    first
        .into_iter()
        .map(|(cell, c)| {
            let line = [&c.python, &c.raw_body]
                .iter()
                .find_map(|t| t.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("");
            (
                cell,
                crate::diagnostics::render::cell_name(cell + 1, None, line),
            )
        })
        .collect()
}

/// The task's code, and the line map: (first line in main.py, line count, cell, first
/// line in the cell) per Python chunk.
pub fn task_body(task: &Task, first_line: usize) -> (String, Vec<(usize, usize, usize, usize)>) {
    let mut out = String::new();
    let mut map = Vec::new();
    let mut line = first_line;
    // The global random states: restored where the previous task's end is reached
    // (runtime lines map to no cell), saved after the last cell.
    let restore = task.random_state.as_ref().and_then(|r| {
        r.from.as_ref().map(|f| {
            (
                r.restore_at,
                format!("_nb2pipe.restore_random_state({})\n", py_str(f)),
            )
        })
    });
    for (i, chunk) in task.code.iter().enumerate() {
        if let Some((at, call)) = &restore {
            if *at == i {
                out.push_str(call);
                line += 1;
            }
        }
        let header = if chunk.prelude {
            format!(
                "# --- cell {}, line {} (prelude)",
                chunk.cell, chunk.first_line
            )
        } else {
            format!("# --- cell {}", chunk.cell)
        };
        out.push_str(&header);
        out.push('\n');
        line += 1;
        let body = chunk_code(chunk);
        let n = body.lines().count().max(1);
        if chunk.syntax_error {
            // Not mapped: these lines are comments.
        } else {
            match &chunk.magic {
                // The timing/capture line before the body maps to nothing.
                Some(m) if m.body_is_python() => map.push((
                    line + 1,
                    chunk.python.lines().count().max(1),
                    chunk.cell,
                    chunk.first_line,
                )),
                // One call runs the whole body: an error in it is the `%%` line's.
                Some(_) => map.push((
                    line + usize::from(chunk.wrapper.is_some()),
                    1,
                    chunk.cell,
                    chunk.first_line.saturating_sub(1).max(1),
                )),
                None => map.push((
                    line,
                    chunk.python.lines().count().max(1),
                    chunk.cell,
                    chunk.first_line,
                )),
            }
        }
        out.push_str(&body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
        line += n;
    }
    if let Some((at, call)) = &restore {
        if *at >= task.code.len() {
            out.push_str(call);
        }
    }
    if task.random_state.as_ref().is_some_and(|r| r.to.is_some()) {
        out.push_str("_nb2pipe.save_random_state()\n");
    }
    (out.trim_end_matches('\n').to_string(), map)
}

fn chunk_code(c: &Chunk) -> String {
    let code = magic_code(c);
    // A wrapper's body is the inner cell magic's one line: the line map allows for it.
    match &c.wrapper {
        Some(CellMagic::Time) => format!(
            "_nb2pipe_t0 = _nb2pipe.timer_start()\n{code}\n_nb2pipe.timer_stop(_nb2pipe_t0)"
        ),
        Some(CellMagic::Capture { var }) if !c.syntax_error => format!(
            "_nb2pipe_cap = _nb2pipe.capture_start()\n{code}\n{}",
            capture_stop(var)
        ),
        _ => code,
    }
}

fn capture_stop(var: &Option<String>) -> String {
    match var {
        Some(v) => format!("{v} = _nb2pipe.capture_stop(_nb2pipe_cap)"),
        None => "_nb2pipe.capture_stop(_nb2pipe_cap)".into(),
    }
}

fn magic_code(c: &Chunk) -> String {
    if c.syntax_error {
        let mut s = format!(
            "# nb2pipe: cell {} is not valid Python 3 (NB010) and was left out:\n",
            c.cell
        );
        for l in c.python.lines() {
            s.push_str("#   ");
            s.push_str(l);
            s.push('\n');
        }
        return s;
    }
    match &c.magic {
        None => rewrite_escapes(&c.python, c),
        Some(CellMagic::Time) => format!(
            "_nb2pipe_t0 = _nb2pipe.timer_start()\n{}\n_nb2pipe.timer_stop(_nb2pipe_t0)",
            rewrite_escapes(&c.python, c)
        ),
        Some(CellMagic::Capture { var }) => format!(
            "_nb2pipe_cap = _nb2pipe.capture_start()\n{}\n{}",
            rewrite_escapes(&c.python, c),
            capture_stop(var)
        ),
        // Run plainly; the first line stands for the `%%` line (the line map skips it).
        Some(CellMagic::Python { name }) => {
            format!("pass  # %%{name}\n{}", rewrite_escapes(&c.python, c))
        }
        Some(CellMagic::WriteFile { path, append }) => {
            format!(
                "_nb2pipe.writefile({}, {}, append={})",
                py_str(path),
                py_str(&c.raw_body),
                if *append { "True" } else { "False" }
            )
        }
        Some(CellMagic::Shell { interpreter }) => format!(
            "_nb2pipe.script({}, {})",
            py_str(interpreter),
            py_str(&c.raw_body)
        ),
        Some(CellMagic::Display { name }) => format!("pass  # %%{name} cell: display only"),
        Some(CellMagic::Unknown { name }) => {
            format!("_nb2pipe.unknown_cell_magic({}, {})", py_str(name), c.cell)
        }
    }
}

/// Replaces each IPython escape by plain Python on the same line.
fn rewrite_escapes(src: &str, c: &Chunk) -> String {
    let mut out = String::with_capacity(src.len());
    let mut pos = 0;
    let mut escapes = c.escapes.clone();
    escapes.sort_by_key(|e| e.start);
    for e in &escapes {
        if e.start < pos || e.end > src.len() {
            continue;
        }
        out.push_str(&src[pos..e.start]);
        let original = &src[e.start..e.end];
        let value = e.value.replace("\\\n", " ");
        let repl = match e.kind {
            // `!pip install x` is a dependency (requirements.txt), never run at task start.
            EscapeKind::Shell | EscapeKind::ShellCapture if parse_pip_args(&value).is_some() => {
                if e.in_expr {
                    "_nb2pipe.SList()".into()
                } else {
                    format!("pass  # {}: installed in the image", ascii_comment(&value))
                }
            }
            EscapeKind::Shell if !e.in_expr => {
                format!("_nb2pipe.sh({}, globals(), locals())", py_str(&value))
            }
            // `x = !cmd` and `!!cmd`: the output lines, as IPython's getoutput.
            EscapeKind::Shell | EscapeKind::ShellCapture => format!(
                "_nb2pipe.sh_capture({}, globals(), locals())",
                py_str(&value)
            ),
            EscapeKind::Magic => {
                let line = if c.prelude {
                    e.line
                } else {
                    c.first_line.saturating_sub(1) + e.line
                };
                magic_replacement(&value, e.in_expr, c.cell, line)
            }
            EscapeKind::Help | EscapeKind::Other => {
                if e.in_expr {
                    "None".into()
                } else {
                    "pass".into()
                }
            }
        };
        out.push_str(&repl);
        // Keep the line count: a continued escape spanned several lines.
        for _ in 0..original.matches('\n').count() {
            out.push('\n');
        }
        pos = e.end;
    }
    out.push_str(&src[pos..]);
    out
}

fn magic_replacement(value: &str, in_expr: bool, cell: usize, line: usize) -> String {
    let name = value.split_whitespace().next().unwrap_or("");
    let rest = value[name.len()..].trim_start();
    let stmt = |s: String| {
        if in_expr {
            format!(
                "_nb2pipe.magic({}, globals(), locals(), {cell}, {line})",
                py_str(value)
            )
        } else {
            s
        }
    };
    match classify_line_magic(name) {
        LineMagic::Install => stmt(format!(
            "pass  # {}: installed in the image",
            ascii_comment(value)
        )),
        LineMagic::Drop | LineMagic::Extension(_) => stmt("pass".into()),
        LineMagic::Time if !in_expr => {
            let body = strip_magic_options(rest);
            format!(
                "with _nb2pipe.timed(): {}",
                if body.trim().is_empty() { "pass" } else { body }
            )
        }
        _ => format!(
            "_nb2pipe.magic({}, globals(), locals(), {cell}, {line})",
            py_str(value)
        ),
    }
}

fn ascii_comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The task code of every task (for `inspect --code` and tests).
pub fn all_code(plan: &Plan) -> Vec<(String, String)> {
    plan.tasks
        .iter()
        .map(|t| (t.name.clone(), task_body(t, 1).0))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{build, BuildInput};

    fn plan_of(cells: &[(&str, &[&str])]) -> Plan {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
            .collect();
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
        let nb = crate::notebook::parse_str(Path::new("t.ipynb"), &nb.to_string())
            .expect("notebook parses");
        build(BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
        .plan
    }

    fn main_of(plan: &Plan, task: &str, templates: &crate::emit::Templates) -> String {
        main_py(
            &EmitContext {
                plan,
                templates,
                options: &crate::emit::EmitOptions::default(),
            },
            plan.task(task).unwrap(),
        )
        .unwrap()
    }

    /// The (main.py line, cell, cell line) triples of the line map, checked by the text:
    /// each mapped main.py line holds the cell line's code.
    fn assert_map_points_at_code(main: &str, cells: &[&str]) {
        let map_line = main
            .lines()
            .find(|l| l.trim_start().starts_with("line_map="))
            .unwrap();
        let entry = regex::Regex::new(r#"\((\d+), (\d+), (\d+), (\d+), "([^"]*)"\)"#).unwrap();
        let entries: Vec<_> = entry.captures_iter(map_line).collect();
        assert!(!entries.is_empty(), "{map_line}");
        for e in entries {
            let n = |i: usize| e[i].parse::<usize>().unwrap();
            let (first, count, cell, cell_line) = (n(1), n(2), n(3), n(4));
            // Named as diagnostics name cells: from 1, with the first line.
            let first_line = cells[cell].lines().find(|l| !l.trim().is_empty()).unwrap();
            if !first_line.starts_with('%') {
                assert_eq!(&e[5], format!("cell {} (`{first_line}`)", cell + 1));
            }
            for k in 0..count {
                let got = main.lines().nth(first - 1 + k).unwrap();
                let want = cells[cell].lines().nth(cell_line - 1 + k).unwrap();
                if !want.trim_start().starts_with(['!', '%']) && !want.contains('!') {
                    assert_eq!(
                        got,
                        want,
                        "main.py line {} should be cell {cell} line {}",
                        first + k,
                        cell_line + k
                    );
                }
            }
        }
    }

    #[test]
    fn line_map_points_at_the_cells_code() {
        let cells = [
            "import os",
            "a = 1\nb = a + 1\n!echo hi\nc = b * 2",
            "%%time\nd = c + 1\ne = d",
        ];
        let plan = plan_of(&[
            (cells[0], &["imports"]),
            (cells[1], &["task:one"]),
            (cells[2], &["task:two"]),
        ]);
        let t = crate::emit::Templates::builtin();
        assert_map_points_at_code(&main_of(&plan, "one", &t), &cells);
        assert_map_points_at_code(&main_of(&plan, "two", &t), &cells);
    }

    /// Templates whose task/main.py.j2 is the user's `text` (the folder lives as long).
    fn user_main_template(text: &str) -> (tempfile::TempDir, crate::emit::Templates) {
        crate::emit::Templates::with_user_file("task/main.py.j2", text)
    }

    #[test]
    fn line_map_follows_a_user_template_with_a_longer_header() {
        let (_dir, t) =
            user_main_template(&include_str!("../../templates/task/main.py.j2").replacen(
                "import nb2pipe_runtime",
                "# one\n# two\n# three\nimport nb2pipe_runtime",
                1,
            ));
        let cells = ["x = 1\ny = x + 1\nprint(y)"];
        let plan = plan_of(&[(cells[0], &["task:one"])]);
        let main = main_of(&plan, "one", &t);
        assert!(main.contains("# three\n"));
        assert_map_points_at_code(&main, &cells);
    }

    /// The built-in template is rendered once, a user's twice: with the built-in text as
    /// the user's, both give the same file, also when a value of the plan holds a mark.
    #[test]
    fn one_render_of_the_builtin_template_equals_two() {
        let (_dir, user) = user_main_template(include_str!("../../templates/task/main.py.j2"));
        let builtin = crate::emit::Templates::builtin();
        assert!(builtin.is_builtin("task/main.py.j2") && !user.is_builtin("task/main.py.j2"));
        let marked = format!("label = '{MAP_MARK} {CODE_MARK}'");
        let cells = [
            marked.as_str(),
            "a = 1\nb = a + 1\n!echo hi\nc = b * 2",
            "%%time\nd = c + len(label)\ne = d",
        ];
        let plan = plan_of(&[
            (cells[0], &["parameters"]),
            (cells[1], &["task:one"]),
            (cells[2], &["task:two"]),
        ]);
        for task in ["one", "two"] {
            let once = main_of(&plan, task, &builtin);
            assert_eq!(once, main_of(&plan, task, &user), "task {task}");
            assert_map_points_at_code(&once, &cells);
        }
        assert!(
            main_of(&plan, "two", &builtin).contains(CODE_MARK),
            "the parameter's default"
        );
    }

    #[test]
    fn ipython_escapes_become_python_on_the_same_lines() {
        let cell = "!pip install -q pandas\n%pip install numpy\nfiles = !ls\n!echo {files}\n%matplotlib inline\n%time z = 1\nw = %pwd";
        let plan = plan_of(&[(cell, &["task:one"])]);
        let body = task_body(plan.task("one").unwrap(), 1).0;
        let lines: Vec<&str> = body.lines().skip(1).collect();
        assert_eq!(lines.len(), cell.lines().count(), "{body}");
        assert!(
            lines[0].starts_with("pass  # pip install -q pandas"),
            "{body}"
        );
        assert!(lines[1].starts_with("pass  # pip install numpy"), "{body}");
        assert_eq!(
            lines[2],
            r#"files = _nb2pipe.sh_capture("ls", globals(), locals())"#
        );
        assert_eq!(
            lines[3],
            r#"_nb2pipe.sh("echo {files}", globals(), locals())"#
        );
        assert_eq!(lines[4], "pass");
        assert_eq!(lines[5], "with _nb2pipe.timed(): z = 1");
        assert!(
            lines[6].starts_with(r#"w = _nb2pipe.magic("pwd", globals(), locals(), 0, 7)"#),
            "{body}"
        );
    }

    #[test]
    fn consumers_are_the_tasks_that_read_each_output() {
        let plan = plan_of(&[
            ("a = 1\nb = 2", &["task:make"]),
            ("print(a)", &["task:one"]),
            ("print(a, b)", &["task:two"]),
        ]);
        let main = main_of(&plan, "make", &crate::emit::Templates::builtin());
        assert!(
            main.contains(r#"consumers={"a": ["one", "two"], "b": ["two"]},"#),
            "{main}"
        );
    }
}

#[cfg(test)]
mod docker_quote_tests {
    use super::docker_quote;

    #[test]
    fn user_text_stays_one_literal_word() {
        assert_eq!(docker_quote("a.ipynb"), "\"a.ipynb\"");
        assert_eq!(
            docker_quote("x\"$HOME\\\nRUN rm -rf /.ipynb"),
            "\"x\\\"\\$HOME\\\\ RUN rm -rf /.ipynb\""
        );
    }
}
