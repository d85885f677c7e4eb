//! Data flow between tasks: which values a task receives and from whom, which
//! parameters and prelude names it reads, which names nothing binds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::diag_at;
use super::prelude::{select_prelude, PreludeStmt};
use super::tasks::TaskDraft;
use crate::analysis::{self, CellFacts};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::{Cell, Notebook};
use crate::plan::tags::Role;
use crate::plan::Input;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Binder {
    Task(usize),
    Param,
    Prelude,
    /// An import statement of a task's cell (task, index into the prelude statements).
    Import(usize, usize),
}

pub(super) struct Flow {
    /// (producer, consumer) → values.
    pub(super) passed: BTreeMap<(usize, usize), BTreeSet<String>>,
    /// Per task: value → producing task.
    pub(super) inputs: Vec<BTreeMap<String, usize>>,
    pub(super) params: Vec<BTreeSet<String>>,
    pub(super) prelude_names: Vec<BTreeSet<String>>,
    /// (cell, line, name) read before anything binds it.
    pub(super) undefined: Vec<(usize, Option<LineColumn>, String)>,
    /// (writer, importer): a task imports a module an earlier task writes (`%%writefile`).
    pub(super) file_edges: BTreeSet<(usize, usize)>,
    /// Per task: values it received (from a task, a parameter or a prelude) and may change
    /// in place, so later readers receive them from it.
    pub(super) changed: Vec<BTreeSet<String>>,
    /// Per task: import statements of other tasks' cells it runs first (indices into the
    /// prelude statements), since modules are never passed as values.
    pub(super) reimports: Vec<BTreeSet<usize>>,
    opaque_star: bool,
}

/// Data flow, and per task the prelude statements it runs. Twice: the second pass adds
/// what each task's prelude reads, since those names must reach the task too.
pub(super) fn flow_with_preludes(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    roles: &BTreeMap<usize, Role>,
    param_names: &BTreeSet<String>,
    prelude: &[PreludeStmt],
    used_imports_only: &[bool],
) -> (Flow, Vec<Vec<usize>>) {
    let mut extra: Vec<BTreeSet<String>> = vec![BTreeSet::new(); drafts.len()];
    let mut flow = data_flow(nb, facts, drafts, roles, param_names, prelude, &extra);
    let mut preludes: Vec<Vec<usize>> = Vec::new();
    for (t, needed) in flow.prelude_names.iter().enumerate() {
        let last = drafts[t].cells.iter().max().copied().unwrap_or(0);
        let prune = used_imports_only.get(t).copied().unwrap_or(false);
        let (included, reads) = select_prelude(prelude, needed, last, prune);
        extra[t] = reads;
        preludes.push(included);
    }
    if extra.iter().any(|e| !e.is_empty()) {
        flow = data_flow(nb, facts, drafts, roles, param_names, prelude, &extra);
    }
    for (t, included) in preludes.iter_mut().enumerate() {
        included.extend(flow.reimports[t].iter().copied());
        included.sort_by_key(|&i| (prelude[i].cell, prelude[i].idx));
        included.dedup();
    }
    (flow, preludes)
}

/// The top-level imports of tasks' cells, as prelude statements that later tasks using
/// what they bind replay (appended after the role cells' statements).
pub(super) fn task_import_stmts(
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
) -> Vec<PreludeStmt> {
    let mut cells: Vec<usize> = drafts
        .iter()
        .flat_map(|d| d.cells.iter().copied())
        .collect();
    cells.sort_unstable();
    let mut out = Vec::new();
    for c in cells {
        let Some(f) = &facts[c] else { continue };
        for (idx, s) in f.stmts.iter().enumerate().filter(|(_, s)| s.is_import) {
            out.push(PreludeStmt {
                cell: c,
                idx,
                binds: s.binds.clone(),
                reads: s.reads.clone(),
                is_import: true,
                task_import: true,
            });
        }
    }
    out
}

/// Walks the cells in notebook order, as a kernel would run them: a name read by task B
/// whose latest binding is in task A ≠ B is handed from A to B.
fn data_flow(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    roles: &BTreeMap<usize, Role>,
    params: &BTreeSet<String>,
    prelude: &[PreludeStmt],
    extra: &[BTreeSet<String>],
) -> Flow {
    let n = drafts.len();
    let mut flow = Flow {
        passed: BTreeMap::new(),
        inputs: vec![BTreeMap::new(); n],
        params: vec![BTreeSet::new(); n],
        prelude_names: vec![BTreeSet::new(); n],
        undefined: Vec::new(),
        file_edges: BTreeSet::new(),
        changed: vec![BTreeSet::new(); n],
        reimports: vec![BTreeSet::new(); n],
        opaque_star: false,
    };
    let task_import: HashMap<(usize, usize), usize> = prelude
        .iter()
        .enumerate()
        .filter(|(_, s)| s.task_import)
        .map(|(i, s)| ((s.cell, s.idx), i))
        .collect();
    // Names whose latest binding is an import: modules and what was imported from them.
    let mut imported: BTreeSet<String> = BTreeSet::new();
    // Function → the notebook names its body may change when it is called.
    let mut effects: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut writers: HashMap<String, usize> = HashMap::new();
    let task_of: HashMap<usize, usize> = drafts
        .iter()
        .enumerate()
        .flat_map(|(t, d)| d.cells.iter().map(move |&c| (c, t)))
        .collect();
    let mut binder: HashMap<String, Binder> = HashMap::new();
    let mut seen_task: Vec<bool> = vec![false; n];
    for cell in &nb.cells {
        let Some(f) = &facts[cell.index] else {
            continue;
        };
        // After `from M import *` of a module nb2pipe cannot read, an unbound name
        // may be one of M's.
        flow.opaque_star |= f.opaque_star;
        if roles.contains_key(&cell.index) {
            for s in prelude.iter().filter(|s| s.cell == cell.index) {
                for b in &s.binds {
                    binder.insert(b.clone(), Binder::Prelude);
                    note_import(&mut imported, b, s.is_import);
                }
            }
            for p in params {
                if f.binds.contains(p) {
                    binder.insert(p.clone(), Binder::Param);
                    imported.remove(p);
                }
            }
            cell_changes(f, &mut effects);
            continue;
        }
        let Some(&t) = task_of.get(&cell.index) else {
            continue;
        };
        let mut reads: Vec<&String> = f.reads.iter().collect();
        if !seen_task[t] {
            seen_task[t] = true;
            reads.extend(extra[t].iter());
        }
        for name in reads {
            flow.read(t, cell, name, binder.get(name));
        }
        for b in &f.binds {
            binder.insert(b.clone(), Binder::Task(t));
            imported.remove(b);
        }
        for (idx, s) in f.stmts.iter().enumerate() {
            for b in &s.binds {
                let by = match task_import.get(&(cell.index, idx)) {
                    Some(&p) => Binder::Import(t, p),
                    None => Binder::Task(t),
                };
                binder.insert(b.clone(), by);
                note_import(&mut imported, b, s.is_import);
            }
        }
        let changes = cell_changes(f, &mut effects);
        flow.note_changes(t, &changes, &mut binder, &imported);
        note_module_files(f, t, &mut writers, &mut flow.file_edges);
    }
    flow
}

/// What a cell may change in place: its own changes, and those of the functions it uses
/// (defined in it or in an earlier cell).
fn cell_changes(
    f: &CellFacts,
    effects: &mut HashMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut out = f.mutates.clone();
    for s in &f.stmts {
        for r in &s.reads {
            if let Some(e) = effects.get(r) {
                out.extend(e.iter().cloned());
            }
        }
        for b in &s.binds {
            if s.effects.is_empty() {
                effects.remove(b);
            } else {
                effects.insert(b.clone(), s.effects.clone());
            }
        }
    }
    out
}

fn note_import(imported: &mut BTreeSet<String>, name: &str, is_import: bool) {
    if is_import {
        imported.insert(name.to_string());
    } else {
        imported.remove(name);
    }
}

impl Flow {
    /// A cell of task `t` may change values in place: as in the notebook's one namespace,
    /// the changed object is the one later cells see, so `t` becomes their producer.
    /// Modules and what was imported are never values (their readers import them).
    fn note_changes(
        &mut self,
        t: usize,
        changes: &BTreeSet<String>,
        binder: &mut HashMap<String, Binder>,
        imported: &BTreeSet<String>,
    ) {
        for name in changes {
            if imported.contains(name) {
                continue;
            }
            match binder.get(name) {
                Some(Binder::Task(a)) if *a == t => {}
                Some(Binder::Task(_) | Binder::Param | Binder::Prelude) => {
                    binder.insert(name.clone(), Binder::Task(t));
                    self.changed[t].insert(name.clone());
                }
                Some(Binder::Import(..)) | None => {}
            }
        }
    }

    /// Task `t` reads `name` in `cell`: where does the value come from?
    fn read(&mut self, t: usize, cell: &Cell, name: &String, binder: Option<&Binder>) {
        match binder {
            Some(Binder::Task(a)) if *a == t => {}
            Some(Binder::Task(a)) => {
                self.passed.entry((*a, t)).or_default().insert(name.clone());
                self.inputs[t].entry(name.clone()).or_insert(*a);
            }
            Some(Binder::Param) => {
                self.params[t].insert(name.clone());
            }
            Some(Binder::Prelude) => {
                self.prelude_names[t].insert(name.clone());
            }
            Some(Binder::Import(a, _)) if *a == t => {}
            Some(Binder::Import(_, p)) => {
                self.reimports[t].insert(*p);
            }
            None if self.opaque_star => {}
            None => {
                if !self
                    .undefined
                    .iter()
                    .any(|(c, _, n)| *c == cell.index && n == name)
                {
                    self.undefined.push((
                        cell.index,
                        first_line_mentioning(&cell.source, name),
                        name.clone(),
                    ));
                }
            }
        }
    }
}

/// A module written by `%%writefile` in one task and imported by another orders them.
fn note_module_files(
    f: &CellFacts,
    t: usize,
    writers: &mut HashMap<String, usize>,
    file_edges: &mut BTreeSet<(usize, usize)>,
) {
    for imp in f.imports.iter().filter(|i| !i.module.starts_with('.')) {
        let top = imp.module.split('.').next().unwrap_or_default();
        if let Some(&w) = writers.get(top) {
            if w != t {
                file_edges.insert((w, t));
            }
        }
    }
    if let Some(analysis::CellMagic::WriteFile { path, .. }) = &f.cell_magic {
        if let Some(stem) = path.strip_suffix(".py") {
            let module = stem.rsplit('/').next().unwrap_or(stem);
            writers.insert(module.to_string(), t);
        }
    }
}

/// Line and column in a cell (1-based; the column counts bytes).
type LineColumn = (usize, usize);

/// Where `name` is first mentioned.
fn first_line_mentioning(src: &str, name: &str) -> Option<LineColumn> {
    let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(name))).ok()?;
    src.lines()
        .enumerate()
        .find_map(|(i, l)| re.find(l).map(|m| (i + 1, m.start() + 1)))
}

pub(super) fn report_undefined(nb: &Notebook, flow: &Flow, diags: &mut Vec<Diagnostic>) {
    for (cell, line, name) in &flow.undefined {
        let mut d = diag_at(
            nb,
            Code::UndefinedName,
            *cell,
            format!("`{name}` is read here but no earlier cell binds it"),
        );
        if let Some((l, column)) = line {
            d = d.at_line(*l, Some(*column));
        }
        diags.push(d);
    }
}

/// The values task `t` hands on because it may have changed them (sorted).
pub(super) fn task_changes(flow: &Flow, outputs: &[String], t: usize) -> Vec<String> {
    flow.changed[t]
        .iter()
        .filter(|n| outputs.contains(n))
        .cloned()
        .collect()
}

/// The values task `t` receives, sorted.
pub(super) fn task_inputs(flow: &Flow, drafts: &[TaskDraft], t: usize) -> Vec<Input> {
    let mut inputs: Vec<Input> = flow.inputs[t]
        .iter()
        .map(|(n, from)| Input {
            name: n.clone(),
            from: drafts[*from].name.clone(),
        })
        .collect();
    inputs.sort();
    inputs
}

/// A task whose cells are not together in notebook order runs its later cells before the
/// other tasks' cells in between (or its earlier ones after them): warn when a name
/// crosses those cells, since the result then differs from the notebook's.
pub(super) fn report_scattered_tasks(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    diags: &mut Vec<Diagnostic>,
) {
    let task_of: HashMap<usize, usize> = drafts
        .iter()
        .enumerate()
        .flat_map(|(t, d)| d.cells.iter().map(move |&c| (c, t)))
        .collect();
    let empty = CellFacts::default();
    let f = |c: usize| facts[c].as_ref().unwrap_or(&empty);
    let writes = |c: usize| f(c).binds.iter().chain(f(c).mutates.iter()).cloned();
    let uses = |c: usize| writes(c).chain(f(c).reads.iter().cloned());
    for (t, d) in drafts.iter().enumerate() {
        for pair in d.cells.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let between: Vec<usize> = (before + 1..after)
                .filter(|c| task_of.get(c).is_some_and(|&o| o != t))
                .collect();
            if between.is_empty() {
                continue;
            }
            let (early, late): (Vec<usize>, Vec<usize>) =
                d.cells.iter().partition(|&&c| c <= before);
            let g_writes: BTreeSet<String> = between.iter().flat_map(|&c| writes(c)).collect();
            let g_uses: BTreeSet<String> = between.iter().flat_map(|&c| uses(c)).collect();
            let mut crossing: BTreeSet<String> = BTreeSet::new();
            for &c in &late {
                crossing.extend(writes(c).filter(|n| g_uses.contains(n)));
                crossing.extend(uses(c).filter(|n| g_writes.contains(n)));
            }
            for &c in &early {
                crossing.extend(f(c).reads.iter().filter(|n| g_writes.contains(*n)).cloned());
            }
            if crossing.is_empty() {
                continue;
            }
            let others: BTreeSet<&str> = between
                .iter()
                .map(|c| drafts[task_of[c]].name.as_str())
                .collect();
            let names: Vec<String> = crossing.iter().take(3).map(|n| format!("`{n}`")).collect();
            diags.push(
                diag_at(
                    nb,
                    Code::ScatteredTask,
                    after,
                    format!(
                        "this cell of task `{}` is below cells of {} that the notebook runs before it; the task runs all its cells in one go, and {} {} those cells, so the pipeline computes something else than the notebook",
                        d.name,
                        others
                            .iter()
                            .map(|o| format!("task `{o}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        names.join(", "),
                        if names.len() == 1 { "crosses" } else { "cross" }
                    ),
                )
                .with_help("give this cell its own task (`task:NAME`), or move it next to the task's other cells"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnostics::Code;

    fn build(cells: &[(&str, &[&str])]) -> super::super::Built {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
            .collect();
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
        let nb = crate::notebook::parse_str(std::path::Path::new("t.ipynb"), &nb.to_string())
            .expect("notebook parses");
        crate::plan::build(crate::plan::BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
    }

    fn inputs(b: &super::super::Built, task: &str) -> Vec<(String, String)> {
        b.plan
            .task(task)
            .unwrap()
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.from.clone()))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn the_last_task_that_may_change_a_value_hands_it_on() {
        let b = build(&[
            ("cfg = {'k': 1}", &["parameters"]),
            ("xs = [1]", &["task:make"]),
            ("cfg['k'] = 2\nxs.append(5)", &["task:change"]),
            ("print(len(xs))", &["task:look"]),
            ("print(cfg, xs)", &["task:use"]),
        ]);
        assert_eq!(inputs(&b, "change"), [pair("xs", "make")]);
        assert_eq!(b.plan.task("change").unwrap().changes, ["cfg", "xs"]);
        // Reading does not change: `look` hands nothing on.
        assert!(b.plan.task("look").unwrap().outputs.is_empty());
        // A changed parameter arrives as the changing task's value.
        assert_eq!(
            inputs(&b, "use"),
            [pair("cfg", "change"), pair("xs", "change")]
        );
        assert!(b.plan.task("use").unwrap().parameters.is_empty());
        let table = crate::commands::inspect::table(&b.plan);
        assert!(table.contains("cfg (changed), xs (changed)"), "{table}");
        assert!(b.plan.task("make").unwrap().changes.is_empty());
    }

    #[test]
    fn calling_a_function_that_changes_a_notebook_name_changes_it() {
        let b = build(&[
            ("def widen():\n    df['b'] = 1", &["functions"]),
            ("df = {'a': 0}", &["task:make"]),
            ("widen()", &["task:change"]),
            ("print(df)", &["task:use"]),
        ]);
        assert_eq!(inputs(&b, "change"), [pair("df", "make")]);
        assert_eq!(inputs(&b, "use"), [pair("df", "change")]);
    }

    #[test]
    fn modules_are_imported_again_never_passed() {
        let b = build(&[
            ("import numpy as np", &["imports"]),
            ("import json\nnp.random.seed(0)\nx = 1", &["task:a"]),
            ("print(json.dumps(x), np.zeros(1))", &["task:b"]),
        ]);
        assert_eq!(inputs(&b, "b"), [pair("x", "a")]);
        assert_eq!(b.plan.task("a").unwrap().outputs, ["x"]);
        let code = &b.plan.task("b").unwrap().code;
        assert!(code.iter().any(|c| c.prelude && c.python == "import json"));
        // The task's own imports are not replayed into itself.
        assert!(!b
            .plan
            .task("a")
            .unwrap()
            .code
            .iter()
            .any(|c| c.prelude && c.python == "import json"));
    }

    #[test]
    fn untagged_imports_above_every_task_are_set_up() {
        let names = |b: &super::super::Built| -> Vec<String> {
            b.plan.tasks.iter().map(|t| t.name.clone()).collect()
        };
        let b = build(&[
            ("%matplotlib inline\nimport json", &[]),
            ("x = json.dumps(1)", &["task:a"]),
        ]);
        assert_eq!(names(&b), ["a"]);
        assert!(b.plan.task("a").unwrap().inputs.is_empty());
        // Other code, or a magic that does something, makes it a task.
        for first in [
            "import json
n = 1",
            "%cd /tmp
import json",
        ] {
            let b = build(&[(first, &[]), ("x = json.dumps(1)", &["task:a"])]);
            assert_eq!(names(&b), ["t", "a"], "{first}");
            assert!(b.plan.task("t").unwrap().outputs.is_empty(), "{first}");
        }
    }

    #[test]
    fn a_scattered_task_warns_only_when_a_name_crosses() {
        let scattered = |b: &super::super::Built| {
            b.diagnostics
                .iter()
                .filter(|d| d.code == Code::ScatteredTask)
                .count()
        };
        let crossing = build(&[
            ("v = 1", &["task:prep"]),
            ("w = v + 1", &["task:other"]),
            ("v = 100", &["task:prep"]),
        ]);
        assert_eq!(scattered(&crossing), 1);
        let unrelated = build(&[
            ("v = 1", &["task:prep"]),
            ("w = 2", &["task:other"]),
            ("u = v + 1", &["task:prep"]),
        ]);
        assert_eq!(scattered(&unrelated), 0);
        let together = build(&[
            ("v = 1", &["task:prep"]),
            ("v = v + 1", &["task:prep"]),
            ("w = v", &["task:other"]),
        ]);
        assert_eq!(scattered(&together), 0);
        // The task's later cell reads what the cells between change.
        let changed = build(&[
            ("xs = [1]", &["task:prep"]),
            ("xs.append(2)", &["task:other"]),
            ("n = len(xs)", &["task:prep"]),
        ]);
        assert_eq!(scattered(&changed), 1);
    }
}
