//! Edges between tasks: explicit (`after:`) ∪ inferred (passed values, written
//! modules), and what makes them invalid: cycles, values that cannot be passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::diag_at;
use super::flow::Flow;
use super::tasks::TaskDraft;
use crate::analysis::CellFacts;
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;
use crate::plan::Edge;

/// (producer, consumer) → (values passed, named by `after:`).
pub(super) type Edges = BTreeMap<(usize, usize), (BTreeSet<String>, bool)>;

pub(super) fn task_edges(
    nb: &Notebook,
    drafts: &[TaskDraft],
    flow: &Flow,
    diags: &mut Vec<Diagnostic>,
) -> Edges {
    let mut edges: Edges = BTreeMap::new();
    for ((from, to), values) in &flow.passed {
        edges
            .entry((*from, *to))
            .or_default()
            .0
            .extend(values.iter().cloned());
    }
    for &(from, to) in &flow.file_edges {
        edges.entry((from, to)).or_default();
    }
    add_after_edges(nb, drafts, &mut edges, diags);
    edges
}

fn add_after_edges(
    nb: &Notebook,
    drafts: &[TaskDraft],
    edges: &mut Edges,
    diags: &mut Vec<Diagnostic>,
) {
    let index_of: HashMap<&str, usize> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    for (to, d) in drafts.iter().enumerate() {
        for a in &d.after {
            let (up, cell) = (&a.name, &a.cell);
            match index_of.get(up.as_str()) {
                Some(&from) if from == to => {
                    let help = if a.continues {
                        format!("the cell has no task name of its own (`block:` without a name, or no task tag), so it continues task `{up}` of the cells before it, and `{}` makes `{up}` wait for itself; to start a new task after `{up}`, name it: `block:NAME`", a.written)
                    } else {
                        format!("the cell's own task tag names `{up}`; remove `{}` or give the cell another task", a.written)
                    };
                    diags.push(
                        diag_at(
                            nb,
                            Code::DependencyCycle,
                            *cell,
                            format!("task `{up}` cannot run after itself (`{}`)", a.written),
                        )
                        .with_help(help),
                    )
                }
                Some(&from) => edges.entry((from, to)).or_default().1 = true,
                None => {
                    let known: Vec<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
                    let msg = if a.written.ends_with(&format!(":{up}")) && !a.written.contains(',')
                    {
                        format!("`{}` names a task that does not exist", a.written)
                    } else {
                        format!("`{}` names `{up}`, a task that does not exist", a.written)
                    };
                    diags.push(
                        diag_at(nb, Code::UnknownUpstream, *cell, msg)
                            .with_help(format!("tasks: {}", known.join(", "))),
                    );
                }
            }
        }
    }
}

pub(super) fn report_cycle(
    nb: &Notebook,
    drafts: &[TaskDraft],
    edges: &Edges,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(cycle) = find_cycle(drafts.len(), edges.keys().copied()) {
        let names: Vec<&str> = cycle.iter().map(|&i| drafts[i].name.as_str()).collect();
        diags.push(
            diag_at(
                nb,
                Code::DependencyCycle,
                drafts[cycle[0]].first_cell,
                format!(
                    "tasks depend on each other in a cycle: {} → {}",
                    names.join(" → "),
                    names[0]
                ),
            )
            .with_help(
                "a task reads a value that a later task binds, or `after:` tags point both ways",
            ),
        );
    }
}

fn find_cycle(n: usize, edges: impl Iterator<Item = (usize, usize)>) -> Option<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for (a, b) in edges {
        adj[a].push(b);
    }
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; n];
    let mut stack: Vec<usize> = Vec::new();
    fn dfs(
        v: usize,
        adj: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[v] = 1;
        stack.push(v);
        for &w in &adj[v] {
            if state[w] == 1 {
                let pos = stack.iter().position(|&x| x == w).unwrap_or(0);
                return Some(stack[pos..].to_vec());
            }
            if state[w] == 0 {
                if let Some(c) = dfs(w, adj, state, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        state[v] = 2;
        None
    }
    (0..n).find_map(|v| {
        if state[v] == 0 {
            dfs(v, &adj, &mut state, &mut stack)
        } else {
            None
        }
    })
}

/// A value on an edge must survive serialisation between pods.
pub(super) fn report_unserialisable(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    edges: &Edges,
    diags: &mut Vec<Diagnostic>,
) {
    for ((from, to), (values, _)) in edges {
        for v in values {
            if let Some((cell, what)) = unserialisable_binding(facts, &drafts[*from], v) {
                diags.push(
                    diag_at(
                        nb,
                        Code::UnserialisableValue,
                        cell,
                        format!(
                            "`{v}` is {what}; task `{}` cannot hand it to task `{}`",
                            drafts[*from].name, drafts[*to].name
                        ),
                    )
                    .with_help(format!(
                        "recreate `{v}` in `{}` instead of passing it",
                        drafts[*to].name
                    )),
                );
            }
        }
    }
}

fn unserialisable_binding(
    facts: &[Option<CellFacts>],
    d: &TaskDraft,
    name: &str,
) -> Option<(usize, &'static str)> {
    // The latest binding in the producing task decides.
    d.cells.iter().rev().find_map(|&c| {
        let f = facts[c].as_ref()?;
        if !f.binds.contains(name) {
            return None;
        }
        Some(
            f.unserialisable
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, w)| (c, *w)),
        )
    })?
}

/// The values task `t` hands on, sorted and distinct.
pub(super) fn task_outputs(edges: &Edges, t: usize) -> Vec<String> {
    edges
        .iter()
        .filter(|((f, _), _)| *f == t)
        .flat_map(|(_, (v, _))| v.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Whether task `t` hands any value on.
pub(super) fn sends_values(edges: &Edges, t: usize) -> bool {
    edges
        .iter()
        .any(|((f, _), (v, _))| *f == t && !v.is_empty())
}

pub(super) fn plan_edges(drafts: &[TaskDraft], edges: Edges) -> Vec<Edge> {
    edges
        .into_iter()
        .map(|((f, t), (values, explicit))| Edge {
            from: drafts[f].name.clone(),
            to: drafts[t].name.clone(),
            values: values.into_iter().collect(),
            explicit,
        })
        .collect()
}
