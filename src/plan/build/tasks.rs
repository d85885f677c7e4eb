//! Which cells form which task, from tags and cell metadata, and the roles of the
//! cells that form none.

use std::collections::BTreeMap;

use super::diag_at;
use crate::analysis::CellFacts;
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::{Cell, CellKind, Notebook};
use crate::plan::config::layer_from_json;
use crate::plan::settings::{PipelineLayer, TaskLayer};
use crate::plan::tags::{parse_tag, CellTag, Role};
use crate::plan::values::{check_task_name, k8s_name, sanitise_name};

/// A task as the cells' tags make it, before any other decision.
pub(super) struct TaskDraft {
    pub(super) name: String,
    pub(super) cells: Vec<usize>,
    /// Upstream task names with the cell and tag that named them.
    pub(super) after: Vec<AfterTag>,
    pub(super) cell_layer: TaskLayer,
    pub(super) meta_layer: TaskLayer,
    pub(super) metrics: bool,
    pub(super) first_cell: usize,
}

/// One upstream named by `after:` / `prev:` (or `nb2pipe.after`).
#[derive(Debug, Clone)]
pub(super) struct AfterTag {
    pub(super) name: String,
    pub(super) cell: usize,
    /// The tag as the user wrote it (`prev:load`).
    pub(super) written: String,
    /// The cell names no task of its own: it continues the task before it.
    pub(super) continues: bool,
}

/// What one cell's tags and metadata say.
#[derive(Default)]
struct CellMarks {
    role: Option<Role>,
    task: Option<String>,
    /// (upstream, the tag as written).
    after: Vec<(String, String)>,
    layer: TaskLayer,
    meta_layer: TaskLayer,
    metrics: bool,
    has_setting: bool,
}

/// Walks the code cells in order: a cell joins the task it names, else the current one
/// (the first defaults to the pipeline's name); role cells join none.
pub(super) fn draft_tasks(
    nb: &Notebook,
    merged: &PipelineLayer,
    facts: &[Option<CellFacts>],
    diags: &mut Vec<Diagnostic>,
) -> (Vec<TaskDraft>, BTreeMap<usize, Role>) {
    // A task has a cell at least; sized once, as drafts are large to move.
    let mut drafts: Vec<TaskDraft> = Vec::with_capacity(nb.cells.len());
    let mut roles: BTreeMap<usize, Role> = BTreeMap::new();
    let mut current: Option<usize> = None;
    let default_name = merged
        .name
        .clone()
        .map(|n| sanitise_name(&n))
        .unwrap_or_else(|| sanitise_name(&nb.stem));
    for cell in &nb.cells {
        if cell.kind != CellKind::Code {
            continue;
        }
        let mut marks = read_tags(nb, cell, &merged.allow_tags, diags);
        read_metadata(nb, cell, &mut marks, diags);
        if let Some(r) = marks.role {
            ignore_kale_prev(nb, cell, r, &mut marks, diags);
            report_orphan_settings(nb, cell, r, &marks, diags);
            if r != Role::Skip {
                roles.insert(cell.index, r);
            }
            continue;
        }
        if joins_nothing(facts[cell.index].as_ref(), &marks) {
            continue;
        }
        // Untagged imports above every task set up the kernel, as an `imports` cell does:
        // a task of their own would only pass modules around.
        if current.is_none()
            && marks.task.is_none()
            && !marks.has_setting
            && marks.after.is_empty()
            && !marks.metrics
            && imports_only(facts[cell.index].as_ref())
        {
            roles.insert(cell.index, Role::Imports);
            continue;
        }
        let continues = marks.task.is_none() && current.is_some();
        let idx = match marks
            .task
            .take()
            .or_else(|| current.is_none().then(|| default_name.clone()))
        {
            Some(name) => match drafts.iter().position(|d| d.name == name) {
                Some(i) => i,
                None => {
                    drafts.push(new_draft(name, cell.index));
                    drafts.len() - 1
                }
            },
            None => current.expect("a current task once one exists"),
        };
        let d = &mut drafts[idx];
        d.cells.push(cell.index);
        d.after
            .extend(marks.after.into_iter().map(|(name, written)| AfterTag {
                name,
                cell: cell.index,
                written,
                continues,
            }));
        d.cell_layer = marks.layer.over(&d.cell_layer);
        d.meta_layer = marks.meta_layer.over(&d.meta_layer);
        d.metrics |= marks.metrics;
        current = Some(idx);
    }
    (drafts, roles)
}

fn at(nb: &Notebook, cell: &Cell, code: Code, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(code, &nb.path, msg).at_cell(cell.index, cell.first_line())
}

fn read_tags(
    nb: &Notebook,
    cell: &Cell,
    allow_tags: &[String],
    diags: &mut Vec<Diagnostic>,
) -> CellMarks {
    let mut marks = CellMarks::default();
    for tag in &cell.tags {
        match parse_tag(tag, allow_tags) {
            Ok(CellTag::Task(n)) => {
                if let Some(prev) = &marks.task {
                    if prev != &n {
                        diags.push(
                            at(
                                nb,
                                cell,
                                Code::DuplicateTask,
                                format!("the cell starts two tasks, `{prev}` and `{n}`"),
                            )
                            .at_tag(tag),
                        );
                    }
                }
                marks.task = Some(n);
            }
            // `block:` alone continues the current task, as an untagged cell does.
            Ok(CellTag::Continue) => {}
            Ok(CellTag::After(names)) => marks
                .after
                .extend(names.into_iter().map(|n| (n, tag.trim().to_string()))),
            Ok(CellTag::Role(r)) => marks.role = Some(r),
            Ok(CellTag::Metrics) => marks.metrics = true,
            Ok(CellTag::Setting(l)) => {
                marks.layer = l.over(&marks.layer);
                marks.has_setting = true;
            }
            Ok(CellTag::Ignored) => {}
            Err((unknown, msg, help)) => {
                let code = if unknown {
                    Code::UnknownTag
                } else if msg.contains("task name") {
                    Code::InvalidName
                } else {
                    Code::InvalidTagValue
                };
                let mut d = at(nb, cell, code, msg).at_tag(tag);
                if let Some(h) = help {
                    d = d.with_help(h);
                }
                diags.push(d);
            }
        }
    }
    marks
}

/// Structured cell metadata: {"task": ..., "after": [...], "skip": true, ...settings}.
fn read_metadata(nb: &Notebook, cell: &Cell, marks: &mut CellMarks, diags: &mut Vec<Diagnostic>) {
    let Some(settings) = &cell.settings else {
        return;
    };
    let serde_json::Value::Object(m) = settings else {
        diags.push(at(
            nb,
            cell,
            Code::InvalidSettings,
            "cell metadata `nb2pipe` must be an object",
        ));
        return;
    };
    let mut rest = m.clone();
    if let Some(v) = rest.remove("task") {
        match v.as_str().map(|s| (s, check_task_name(s))) {
            Some((s, Ok(()))) => marks.task = Some(s.to_string()),
            Some((_, Err(e))) => diags.push(at(nb, cell, Code::InvalidName, e)),
            None => diags.push(at(
                nb,
                cell,
                Code::InvalidSettings,
                "`nb2pipe.task` must be a string",
            )),
        }
    }
    if let Some(v) = rest.remove("after") {
        match serde_json::from_value::<Vec<String>>(v) {
            Ok(list) => {
                let written = format!(
                    "\"after\": {}",
                    serde_json::to_string(&list).unwrap_or_default()
                );
                marks
                    .after
                    .extend(list.into_iter().map(|n| (n, written.clone())));
            }
            Err(_) => diags.push(at(
                nb,
                cell,
                Code::InvalidSettings,
                "`nb2pipe.after` must be a list of task names",
            )),
        }
    }
    if let Some(v) = rest.remove("skip") {
        if v == serde_json::Value::Bool(true) {
            marks.role = Some(Role::Skip);
        }
    }
    match layer_from_json::<TaskLayer>(&serde_json::Value::Object(rest)) {
        Ok(l) => {
            marks.has_setting |= l != TaskLayer::default();
            marks.meta_layer = l;
        }
        Err(e) => diags.push(at(
            nb,
            cell,
            Code::InvalidSettings,
            format!("invalid cell metadata `nb2pipe`: {e}"),
        )),
    }
}

/// Kale ignores `prev:` on a `skip` or `functions` cell (its examples have them): so do
/// we, saying so.
fn ignore_kale_prev(
    nb: &Notebook,
    cell: &Cell,
    role: Role,
    marks: &mut CellMarks,
    diags: &mut Vec<Diagnostic>,
) {
    if !matches!(role, Role::Skip | Role::Functions) {
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (_, written) in &marks.after {
        if written.starts_with("prev:") && !seen.contains(&written.as_str()) {
            seen.push(written);
            diags.push(
                at(
                    nb,
                    cell,
                    Code::IgnoredTag,
                    format!(
                        "`{written}` is ignored: a `{}` cell belongs to no task, so it runs after nothing",
                        role_name(role)
                    ),
                )
                .with_help("remove the tag (Kale ignores it too)"),
            );
        }
    }
    marks.after.retain(|(_, w)| !w.starts_with("prev:"));
}

/// A role cell belongs to no task, so task tags on it would silently do nothing.
fn report_orphan_settings(
    nb: &Notebook,
    cell: &Cell,
    role: Role,
    marks: &CellMarks,
    diags: &mut Vec<Diagnostic>,
) {
    if marks.task.is_some() || !marks.after.is_empty() || marks.has_setting || marks.metrics {
        diags.push(
            at(
                nb,
                cell,
                Code::OrphanSetting,
                format!(
                    "this `{}` cell belongs to no task, so its task tags would be lost",
                    role_name(role)
                ),
            )
            .with_help("move the task tags to a cell of the task"),
        );
    }
}

/// An empty cell joins nothing, unless its tags say which task it marks.
fn joins_nothing(facts: Option<&CellFacts>, marks: &CellMarks) -> bool {
    facts.is_some_and(|f| f.python.trim().is_empty() && f.cell_magic.is_none())
        && marks.task.is_none()
        && !marks.has_setting
        && marks.after.is_empty()
}

/// A cell of nothing but top-level imports, and line magics that do nothing in a task
/// (`%matplotlib inline`, `%load_ext`).
fn imports_only(facts: Option<&CellFacts>) -> bool {
    let dropped = |e: &crate::analysis::Escape| {
        !e.in_expr
            && e.kind == crate::analysis::EscapeKind::Magic
            && matches!(
                crate::analysis::classify_line_magic(
                    e.value.split_whitespace().next().unwrap_or("")
                ),
                crate::analysis::LineMagic::Drop
            )
    };
    facts.is_some_and(|f| {
        f.cell_magic.is_none()
            && f.syntax_error.is_none()
            && f.escapes.iter().all(dropped)
            && f.stmts.iter().any(|s| s.is_import)
            && f.stmts
                .iter()
                .all(|s| s.is_import || f.escapes.iter().any(|e| e.start == s.start && dropped(e)))
    })
}

fn new_draft(name: String, first_cell: usize) -> TaskDraft {
    TaskDraft {
        name,
        cells: Vec::new(),
        after: Vec::new(),
        cell_layer: TaskLayer::default(),
        meta_layer: TaskLayer::default(),
        metrics: false,
        first_cell,
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Parameters => "parameters",
        Role::Imports => "imports",
        Role::Functions => "functions",
        Role::Skip => "skip",
    }
}

/// Task names must stay distinct once turned into Kubernetes names.
pub(super) fn report_k8s_name_clashes(
    nb: &Notebook,
    drafts: &[TaskDraft],
    diags: &mut Vec<Diagnostic>,
) {
    let mut k8s: BTreeMap<String, &str> = BTreeMap::new();
    for d in drafts {
        if let Some(other) = k8s.insert(k8s_name(&d.name), &d.name) {
            diags.push(diag_at(
                nb,
                Code::DuplicateTask,
                d.first_cell,
                format!(
                    "tasks `{other}` and `{}` have the same Kubernetes name `{}`",
                    d.name,
                    k8s_name(&d.name)
                ),
            ));
        }
    }
}
