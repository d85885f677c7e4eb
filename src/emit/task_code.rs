//! Each task's folder: `main.py` (the task's cells as plain Python, with loading and
//! saving of passed values around them), `requirements.txt`, `Dockerfile`, and the
//! runtime module `nb2pipe_runtime.py`.
//!
//! IPython syntax is rewritten in place, one line for one line, so a traceback's line
//! in main.py maps back to a notebook cell and line (the runtime does that mapping).

use anyhow::Result;
use serde::Serialize;

use super::pyrepr::{py_json, py_str};
use super::{Bundle, EmitContext, Emitter};
use crate::analysis::{CellMagic, EscapeKind};
use crate::plan::{Chunk, Plan, Task};

pub struct TaskFiles;

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
    line_map: String,
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
    /// Project modules are copied from the context's `modules/` folder.
    local_modules: bool,
}

/// Lines of the template before `{{{ code }}}` (the line map is absolute).
const HEADER_LINES: usize = 14;

impl Emitter for TaskFiles {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let runtime = ctx.templates.source("task/nb2pipe_runtime.py")?;
        for task in &ctx.plan.tasks {
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
            out.add(format!("{dir}/nb2pipe_runtime.py"), runtime.clone());
            if !task.image.prebuilt {
                out.add(format!("{dir}/Dockerfile"), dockerfile(ctx, task)?);
            }
        }
        Ok(())
    }
}

fn dockerfile(ctx: &EmitContext<'_>, task: &Task) -> Result<String> {
    ctx.templates.render(
        "task/Dockerfile.j2",
        DockerInfo {
            version: env!("CARGO_PKG_VERSION"),
            pipeline: ctx.plan.pipeline.clone(),
            task: task.name.clone(),
            base_image: ctx.plan.settings.base_image.clone(),
            notebook_label: docker_quote(&ctx.plan.notebook),
            description_label: docker_quote(&format!(
                "task {} of pipeline {} from notebook {}",
                task.name, ctx.plan.pipeline, ctx.plan.notebook
            )),
            content_hash: task.image.content_hash.clone().unwrap_or_default(),
            local_modules: false,
        },
    )
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
    let (code, map) = task_body(task, HEADER_LINES + 1);
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
    let line_map = format!(
        "[{}]",
        map.iter()
            .map(|(a, b, c, d)| format!("({a}, {b}, {c}, {d})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text = ctx.templates.render(
        "task/main.py.j2",
        MainInfo {
            version: env!("CARGO_PKG_VERSION"),
            pipeline: plan.pipeline.clone(),
            task: task.name.clone(),
            notebook: plan.notebook.clone(),
            inputs,
            outputs,
            parameters,
            line_map,
            code,
        },
    )?;
    Ok(text)
}

/// The task's code, and the line map: (first line in main.py, line count, cell, first
/// line in the cell) per Python chunk.
pub fn task_body(task: &Task, first_line: usize) -> (String, Vec<(usize, usize, usize, usize)>) {
    let mut out = String::new();
    let mut map = Vec::new();
    let mut line = first_line;
    for chunk in &task.code {
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
            let python_start = match &chunk.magic {
                Some(m) if m.body_is_python() => line + 1,
                _ => line,
            };
            let cell_first = chunk.first_line;
            map.push((
                python_start,
                chunk.python.lines().count().max(1),
                chunk.cell,
                cell_first,
            ));
        }
        out.push_str(&body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
        line += n;
    }
    (out.trim_end_matches('\n').to_string(), map)
}

fn chunk_code(c: &Chunk) -> String {
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
        Some(CellMagic::Capture { var }) => {
            let assign = match var {
                Some(v) => format!("{v} = _nb2pipe.capture_stop(_nb2pipe_cap)"),
                None => "_nb2pipe.capture_stop(_nb2pipe_cap)".into(),
            };
            format!(
                "_nb2pipe_cap = _nb2pipe.capture_start()\n{}\n{assign}",
                rewrite_escapes(&c.python, c)
            )
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
            // `!pip install x` is a dependency, installed in the image, like `%pip`.
            EscapeKind::Shell | EscapeKind::ShellCapture
                if !e.in_expr && crate::analysis::parse_pip_args(&value).is_some() =>
            {
                format!("pass  # {}: installed in the image", ascii_comment(&value))
            }
            // `x = !cmd` and `!!cmd` capture the output as a list of lines, as IPython does.
            EscapeKind::Shell if e.in_expr => format!(
                "_nb2pipe.sh_capture({}, globals(), locals())",
                py_str(&value)
            ),
            EscapeKind::Shell => format!("_nb2pipe.sh({}, globals(), locals())", py_str(&value)),
            EscapeKind::ShellCapture => format!(
                "_nb2pipe.sh_capture({}, globals(), locals())",
                py_str(&value)
            ),
            EscapeKind::Magic => magic_replacement(&value, e.in_expr, c.cell, e.line),
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
    match name {
        "pip" | "conda" | "mamba" => stmt(format!(
            "pass  # {}: installed in the image",
            ascii_comment(value)
        )),
        "matplotlib"
        | "load_ext"
        | "unload_ext"
        | "reload_ext"
        | "autoreload"
        | "aimport"
        | "config"
        | "who"
        | "whos"
        | "who_ls"
        | "history"
        | "lsmagic"
        | "magic"
        | "precision"
        | "pprint"
        | "xmode"
        | "colors"
        | "autocall"
        | "automagic"
        | "doctest_mode"
        | "pdb"
        | "debug"
        | "tb"
        | "reset"
        | "reset_selective"
        | "notebook"
        | "qtconsole"
        | "connect_info"
        | "page"
        | "pinfo"
        | "pinfo2"
        | "psearch"
        | "quickref"
        | "config_inlinebackend"
        | "load" => stmt("pass".into()),
        "time" | "timeit" | "prun" if !in_expr => {
            let body = strip_options(rest);
            format!("with _nb2pipe.timed(): {body}")
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

fn strip_options(s: &str) -> &str {
    let mut rest = s;
    loop {
        let t = rest.trim_start();
        if let Some(after) = t.strip_prefix('-') {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let flag = &after[..end];
            let mut r = &after[end..];
            if matches!(flag, "n" | "r" | "o" | "p" | "s" | "T" | "D" | "l") {
                let v = r.trim_start();
                let vend = v.find(char::is_whitespace).unwrap_or(v.len());
                r = &v[vend..];
            }
            rest = r;
        } else {
            return t;
        }
    }
}

/// The task code of every task (for `inspect --code` and tests).
pub fn all_code(plan: &Plan) -> Vec<(String, String)> {
    plan.tasks
        .iter()
        .map(|t| (t.name.clone(), task_body(t, 1).0))
        .collect()
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
