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
}

pub(super) struct Flow {
    /// (producer, consumer) → values.
    pub(super) passed: BTreeMap<(usize, usize), BTreeSet<String>>,
    /// Per task: value → producing task.
    pub(super) inputs: Vec<BTreeMap<String, usize>>,
    pub(super) params: Vec<BTreeSet<String>>,
    pub(super) prelude_names: Vec<BTreeSet<String>>,
    /// (cell, line, name) read before anything binds it.
    pub(super) undefined: Vec<(usize, Option<usize>, String)>,
    /// (writer, importer): a task imports a module an earlier task writes (`%%writefile`).
    pub(super) file_edges: BTreeSet<(usize, usize)>,
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
    (flow, preludes)
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
        opaque_star: false,
    };
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
                }
            }
            for p in params {
                if f.binds.contains(p) {
                    binder.insert(p.clone(), Binder::Param);
                }
            }
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
        }
        note_module_files(f, t, &mut writers, &mut flow.file_edges);
    }
    flow
}

impl Flow {
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

fn first_line_mentioning(src: &str, name: &str) -> Option<usize> {
    let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(name))).ok()?;
    src.lines().position(|l| re.is_match(l)).map(|i| i + 1)
}

pub(super) fn report_undefined(nb: &Notebook, flow: &Flow, diags: &mut Vec<Diagnostic>) {
    for (cell, line, name) in &flow.undefined {
        let mut d = diag_at(
            nb,
            Code::UndefinedName,
            *cell,
            format!("`{name}` is read here but no earlier cell binds it"),
        );
        if let Some(l) = line {
            d = d.at_line(*l, None);
        }
        diags.push(d);
    }
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
