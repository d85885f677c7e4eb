//! A task's code: the facts of every cell, the chunks a task runs (its prelude
//! statements, then its cells), the imports they make, and the requirements those need.

use std::collections::BTreeSet;

use super::edges::sends_values;
use super::prelude::PreludeStmt;
use super::tasks::TaskDraft;
use super::Drafted;
use crate::analysis::{self, CellFacts};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::{CellKind, Notebook};
use crate::plan::Chunk;

/// Facts per code cell (`None` for other cells), diagnosing what cannot run.
pub(super) fn analyse_cells(nb: &Notebook, diags: &mut Vec<Diagnostic>) -> Vec<Option<CellFacts>> {
    let path = &nb.path;
    let facts: Vec<Option<CellFacts>> = nb
        .cells
        .iter()
        .map(|c| (c.kind == CellKind::Code).then(|| analysis::analyse_cell(&c.source)))
        .collect();
    for (cell, f) in nb.cells.iter().zip(&facts) {
        let Some(f) = f else { continue };
        if let Some(e) = &f.syntax_error {
            diags.push(
                Diagnostic::new(
                    Code::CellSyntaxError,
                    path,
                    format!("the cell is not valid Python 3: {}", e.message),
                )
                .at_cell(cell.index, cell.first_line())
                .at_line(e.line, Some(e.column))
                .with_help("the cell is left out of its task's code; fix it or tag it `skip`"),
            );
        }
        for (line, name) in &f.unknown_magics {
            diags.push(
                Diagnostic::new(Code::UnknownMagic, path, format!("unknown magic `{name}`: the task will stop with an error if it reaches this line"))
                    .at_cell(cell.index, cell.first_line())
                    .at_line(*line, None),
            );
        }
    }
    facts
}

pub(super) fn task_chunks(
    d: &TaskDraft,
    facts: &[Option<CellFacts>],
    prelude: &[PreludeStmt],
    included: &[usize],
) -> Vec<Chunk> {
    let mut out = Vec::new();
    for &i in included {
        let s = &prelude[i];
        let Some(f) = &facts[s.cell] else { continue };
        let st = &f.stmts[s.idx];
        out.push(Chunk {
            cell: s.cell,
            first_line: st.line,
            python: f.python[st.start..st.end].to_string(),
            escapes: f
                .escapes
                .iter()
                .filter(|e| e.start >= st.start && e.end <= st.end)
                .map(|e| crate::analysis::Escape {
                    start: e.start - st.start,
                    end: e.end - st.start,
                    ..e.clone()
                })
                .collect(),
            magic: None,
            raw_body: String::new(),
            prelude: true,
            syntax_error: false,
        });
    }
    for &c in &d.cells {
        let Some(f) = &facts[c] else { continue };
        let raw_body = f.raw_body.clone();
        out.push(Chunk {
            cell: c,
            first_line: f.line_offset + 1,
            python: f.python.clone(),
            escapes: f.escapes.clone(),
            magic: f.cell_magic.clone(),
            raw_body,
            prelude: false,
            syntax_error: f.syntax_error.is_some(),
        });
    }
    out
}

pub(super) fn task_imports(
    d: &TaskDraft,
    facts: &[Option<CellFacts>],
    prelude: &[PreludeStmt],
    included: &[usize],
) -> Vec<analysis::Import> {
    let mut out = Vec::new();
    for &i in included {
        let s = &prelude[i];
        let Some(f) = &facts[s.cell] else { continue };
        let st = &f.stmts[s.idx];
        let end_line = st.line + f.python[st.start..st.end].matches('\n').count();
        out.extend(
            f.imports
                .iter()
                .filter(|imp| imp.line >= st.line && imp.line <= end_line)
                .cloned(),
        );
    }
    for &c in &d.cells {
        if let Some(f) = &facts[c] {
            out.extend(f.imports.iter().cloned());
        }
    }
    out
}

/// Every task's requirements, in task order.
pub(super) fn resolve_requirements(
    cx: &Drafted<'_>,
    python: &str,
    python_env: Option<&std::path::Path>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<crate::deps::TaskDeps> {
    let deps_inputs: Vec<crate::deps::TaskInput> = cx
        .drafts
        .iter()
        .enumerate()
        .map(|(t, d)| crate::deps::TaskInput {
            name: d.name.clone(),
            cells: d.cells.clone(),
            prelude_cells: cx.preludes[t]
                .iter()
                .map(|&i| cx.prelude[i].cell)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            imports: task_imports(d, cx.facts, cx.prelude, &cx.preludes[t]),
            receives_from: cx.flow.inputs[t]
                .values()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            exchanges_values: !cx.flow.inputs[t].is_empty() || sends_values(cx.edges, t),
        })
        .collect();
    let resolved = crate::deps::resolve(cx.nb, cx.facts, python, python_env, &deps_inputs);
    diags.extend(resolved.diagnostics);
    resolved.tasks
}
