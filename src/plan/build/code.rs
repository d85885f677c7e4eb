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
    // Cells are analysed independently; a thread pays off from a few dozen on.
    let cells = &nb.cells;
    let workers = if cells.len() >= 32 { 4 } else { 1 };
    let mut facts: Vec<Option<CellFacts>> = crate::parallel::indexed(cells.len(), workers, |i| {
        let c = &cells[i];
        (c.kind == CellKind::Code).then(|| analysis::analyse_cell(&c.source))
    });
    bind_star_imports(nb, &mut facts);
    let mut loaded: BTreeSet<&str> = BTreeSet::new();
    for (cell, f) in nb.cells.iter().zip(&facts) {
        let Some(f) = f else { continue };
        for (line, name, ext) in &f.extension_magics {
            let before = |l: &usize| l <= line;
            if !loaded.contains(ext)
                && !f
                    .loaded_extensions
                    .iter()
                    .any(|(l, e)| e == ext && before(l))
            {
                diags.push(
                    Diagnostic::new(Code::UnknownMagic, path, format!("`{name}` is a magic of the IPython extension `{ext}`, which no earlier line loads: IPython stops here; the task drops the line"))
                        .at_cell(cell.index, cell.first_line())
                        .at_line(*line, column_of(&cell.source, *line, name))
                        .with_help(format!("add `%load_ext {ext}` before it")),
                );
            }
        }
        loaded.extend(f.loaded_extensions.iter().map(|(_, e)| e.as_str()));
        for (line, name) in &f.unknown_magics {
            diags.push(
                Diagnostic::new(Code::UnknownMagic, path, format!("unknown magic `{name}`: the task will stop with an error if it reaches this line"))
                    .at_cell(cell.index, cell.first_line())
                    .at_line(*line, column_of(&cell.source, *line, name)),
            );
        }
    }
    facts
}

/// The column (1-based, bytes) of `token` on line `line` of a cell's source.
fn column_of(src: &str, line: usize, token: &str) -> Option<usize> {
    let text = src.lines().nth(line.checked_sub(1)?)?;
    text.find(token).map(|i| i + 1)
}

/// A cell that does not parse cannot become task code: an error when a task (or a
/// prelude) would run it; a `skip` cell is the way to leave it out.
pub(super) fn report_syntax_errors(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    roles: &std::collections::BTreeMap<usize, crate::plan::tags::Role>,
    diags: &mut Vec<Diagnostic>,
) {
    for (cell, f) in nb.cells.iter().zip(facts) {
        let Some(e) = f.as_ref().and_then(|f| f.syntax_error.as_ref()) else {
            continue;
        };
        let task = drafts.iter().find(|d| d.cells.contains(&cell.index));
        let what = match (task, roles.get(&cell.index)) {
            (Some(d), _) => format!("task `{}` would run without it", d.name),
            (None, Some(_)) => "the tasks that use this cell would run without it".to_string(),
            (None, None) => continue,
        };
        diags.push(
            Diagnostic::new(
                Code::CellSyntaxError,
                &nb.path,
                format!("the cell is not valid Python 3: {}; {what}", e.message),
            )
            .at_cell(cell.index, cell.first_line())
            .at_line(e.line, Some(e.column))
            .with_help("fix the cell, or tag it `skip` to leave it out of the pipeline"),
        );
    }
}

/// `from M import *` binds M's names: read from M when it is a local module, unknown
/// otherwise.
fn bind_star_imports(nb: &Notebook, facts: &mut [Option<CellFacts>]) {
    if !facts
        .iter()
        .flatten()
        .any(|f| f.stmts.iter().any(|s| s.star_import.is_some()))
    {
        return;
    }
    let nb_dir = nb
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let sys_paths: Vec<String> = facts
        .iter()
        .flatten()
        .flat_map(|f| f.sys_paths.iter().cloned())
        .collect();
    let written: Vec<(String, String)> = facts
        .iter()
        .flatten()
        .filter_map(|f| match &f.cell_magic {
            Some(analysis::CellMagic::WriteFile { path, .. }) => {
                Some((path.clone(), f.raw_body.clone()))
            }
            _ => None,
        })
        .collect();
    for f in facts.iter_mut().flatten() {
        for i in 0..f.stmts.len() {
            let Some(module) = f.stmts[i].star_import.clone() else {
                continue;
            };
            match crate::deps::star_import_names(&nb_dir, &module, &sys_paths, &written) {
                Some(names) => {
                    // Read only after the import: bound by it, not read from earlier cells.
                    for n in &names {
                        if !f.stmts[..i].iter().any(|s| s.reads.contains(n)) {
                            f.reads.remove(n);
                        }
                    }
                    f.stmts[i].binds.extend(names.iter().cloned());
                    f.binds.extend(names);
                }
                None => f.opaque_star = true,
            }
        }
    }
}

/// The statements a task runs before its cells, as (cell, statement), in notebook order:
/// its prelude and the settings it replays from earlier tasks' cells.
pub(super) fn before_cells(
    prelude: &[PreludeStmt],
    included: &[usize],
    replays: &[(usize, usize)],
) -> Vec<(usize, usize)> {
    let mut all: BTreeSet<(usize, usize)> = included
        .iter()
        .map(|&i| (prelude[i].cell, prelude[i].idx))
        .collect();
    all.extend(replays.iter().copied());
    all.into_iter().collect()
}

/// One top-level statement of a cell, as a chunk that runs before the task's cells.
fn stmt_chunk(f: &CellFacts, cell: usize, idx: usize) -> Chunk {
    let st = &f.stmts[idx];
    Chunk {
        cell,
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
        wrapper: None,
        raw_body: String::new(),
        prelude: true,
        syntax_error: false,
        call_literals: st.call_literals.clone(),
    }
}

pub(super) fn task_chunks(
    d: &TaskDraft,
    facts: &[Option<CellFacts>],
    before: &[(usize, usize)],
) -> Vec<Chunk> {
    let mut out = Vec::new();
    for &(cell, idx) in before {
        if let Some(f) = &facts[cell] {
            out.push(stmt_chunk(f, cell, idx));
        }
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
            wrapper: f.wrapper.clone(),
            raw_body,
            prelude: false,
            syntax_error: f.syntax_error.is_some(),
            call_literals: f
                .stmts
                .iter()
                .flat_map(|s| s.call_literals.iter().cloned())
                .collect(),
        });
    }
    out
}

pub(super) fn task_imports(
    d: &TaskDraft,
    facts: &[Option<CellFacts>],
    before: &[(usize, usize)],
) -> Vec<analysis::Import> {
    let mut out = Vec::new();
    for &(cell, idx) in before {
        let Some(f) = &facts[cell] else { continue };
        let st = &f.stmts[idx];
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
        .map(|(t, d)| {
            let before = before_cells(cx.prelude, &cx.preludes[t], &cx.globals.replays[t]);
            crate::deps::TaskInput {
                name: d.name.clone(),
                cells: d.cells.clone(),
                prelude_cells: cx.preludes[t]
                    .iter()
                    .map(|&i| cx.prelude[i].cell)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                imports: task_imports(d, cx.facts, &before),
                receives_from: cx.flow.inputs[t]
                    .values()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                exchanges_values: !cx.flow.inputs[t].is_empty() || sends_values(cx.edges, t),
                // Its problems are reported with the task's other settings.
                spark_version: super::layers::spark(&cx.layers[t], &mut |_| {}).map(|s| s.version),
            }
        })
        .collect();
    let resolved = crate::deps::resolve(cx.nb, cx.facts, python, python_env, &deps_inputs);
    diags.extend(resolved.diagnostics);
    resolved.tasks
}
