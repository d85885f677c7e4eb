//! Role cells: which statements become pipeline parameters, and which prelude
//! statements (imports, functions, non-literal parameters) each task runs.

use std::collections::{BTreeMap, BTreeSet};

use super::diag_at;
use crate::analysis::{self, CellFacts};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;
use crate::plan::tags::Role;
use crate::plan::{Parameter, StmtRef};

/// A statement of a role cell that tasks may run before their own code.
pub(super) struct PreludeStmt {
    pub(super) cell: usize,
    pub(super) idx: usize,
    pub(super) binds: BTreeSet<String>,
    pub(super) reads: BTreeSet<String>,
    pub(super) is_import: bool,
    /// An import of a task's cell: replayed only in the later tasks that use what it binds
    /// (flow.rs), never by [`select_prelude`].
    pub(super) task_import: bool,
}

/// `name = <literal>` in a `parameters` cell is a parameter (the latest one of a name
/// wins); every other statement of a role cell is prelude.
pub(super) fn parameters_and_prelude(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    roles: &BTreeMap<usize, Role>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Parameter>, Vec<PreludeStmt>) {
    let mut parameters: Vec<Parameter> = Vec::new();
    let mut prelude: Vec<PreludeStmt> = Vec::new();
    let mut param_stmt: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (&cell, &role) in roles {
        let Some(f) = &facts[cell] else { continue };
        if role == Role::Parameters {
            for (idx, lit) in analysis::literal_assignments(&f.python)
                .into_iter()
                .enumerate()
            {
                let Some(stmt) = f.stmts.get(idx) else {
                    continue;
                };
                match lit {
                    Ok((name, value)) => {
                        param_stmt.insert((cell, idx));
                        parameters.retain(|p| p.name != name);
                        // A credential never goes into the plan, and so into no
                        // target file: NB040 reports it (`nb2pipe check`, and
                        // `convert` without --allow-secrets).
                        let text = f.python.get(stmt.start..stmt.end).unwrap_or_default();
                        let redacted = !analysis::find_secrets(text).is_empty();
                        let (ty, default) = if redacted {
                            ("str", serde_json::Value::String(String::new()))
                        } else {
                            (analysis::type_name(&value), value)
                        };
                        parameters.push(Parameter {
                            ty: ty.into(),
                            name,
                            default,
                            cell,
                            line: stmt.line,
                            redacted,
                        });
                    }
                    Err(analysis::NotParameter::NotLiteral) => diags.push(
                        diag_at(nb, Code::NonLiteralParameter, cell, "this statement in a `parameters` cell is not `name = <literal>`, so it cannot be a pipeline parameter".into())
                            .at_line(stmt.line, None)
                            .with_help("it runs as ordinary code in the tasks that need what it binds"),
                    ),
                    Err(analysis::NotParameter::TooDeep) => diags.push(
                        diag_at(nb, Code::NonLiteralParameter, cell, format!("this literal is nested more than {} levels deep, so it cannot be a pipeline parameter", analysis::MAX_LITERAL_DEPTH))
                            .at_line(stmt.line, None)
                            .with_help("it runs as ordinary code in the tasks that need what it binds"),
                    ),
                    Err(analysis::NotParameter::Control(name, c)) => diags.push(
                        diag_at(nb, Code::UnsafeParameterValue, cell, format!("parameter `{name}` holds the control character U+{:04X}, which no target can carry", c as u32))
                            .at_line(stmt.line, None)
                            .with_help("write the text without it, or build the value in a task"),
                    ),
                }
            }
        }
        for (idx, stmt) in f.stmts.iter().enumerate() {
            if !param_stmt.contains(&(cell, idx)) {
                prelude.push(PreludeStmt {
                    cell,
                    idx,
                    binds: stmt.binds.clone(),
                    reads: stmt.reads.clone(),
                    is_import: stmt.is_import,
                    task_import: false,
                });
            }
        }
    }
    (parameters, prelude)
}

/// The prelude statements a task needs (indices into `prelude`, in notebook order), and
/// the names those statements read that the prelude itself does not bind. Every import
/// of a role cell before the task's last cell runs, used or not, as in the one kernel:
/// imports register pandas accessors, styles and warning filters, and libraries look
/// for each other (`load_iris(as_frame=True)` needs pandas imported nowhere in the task).
/// With `used_imports_only` (`imports:used`) an import runs only when its names are read.
pub(super) fn select_prelude(
    prelude: &[PreludeStmt],
    needed: &BTreeSet<String>,
    before_cell: usize,
    used_imports_only: bool,
) -> (Vec<usize>, BTreeSet<String>) {
    let mut needed = needed.clone();
    let mut included: Vec<bool> = prelude
        .iter()
        .map(|s| !used_imports_only && s.is_import && !s.task_import && s.cell < before_cell)
        .collect();
    loop {
        let mut changed = false;
        for (i, s) in prelude.iter().enumerate() {
            if !included[i] && !s.task_import && s.binds.iter().any(|b| needed.contains(b)) {
                included[i] = true;
                needed.extend(s.reads.iter().cloned());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let bound: BTreeSet<&String> = prelude
        .iter()
        .enumerate()
        .filter(|(i, _)| included[*i])
        .flat_map(|(_, s)| s.binds.iter())
        .collect();
    // Statements that bind nothing (`warnings.filterwarnings(...)`, `np.random.seed(0)`)
    // run when everything they read is there.
    for (i, s) in prelude.iter().enumerate() {
        if !included[i] && s.binds.is_empty() && s.reads.iter().all(|r| bound.contains(r)) {
            included[i] = true;
        }
    }
    let all_bound: BTreeSet<&String> = prelude
        .iter()
        .filter(|s| !s.task_import)
        .flat_map(|s| s.binds.iter())
        .collect();
    let outside: BTreeSet<String> = prelude
        .iter()
        .enumerate()
        .filter(|(i, _)| included[*i])
        .flat_map(|(_, s)| s.reads.iter())
        .filter(|r| !all_bound.contains(r))
        .cloned()
        .collect();
    (
        (0..prelude.len()).filter(|&i| included[i]).collect(),
        outside,
    )
}

/// Where each statement the task runs before its cells is, for the plan.
pub(super) fn prelude_refs(facts: &[Option<CellFacts>], before: &[(usize, usize)]) -> Vec<StmtRef> {
    before
        .iter()
        .map(|&(cell, idx)| StmtRef {
            cell,
            line: facts[cell].as_ref().map(|f| f.stmts[idx].line).unwrap_or(1),
        })
        .collect()
}
