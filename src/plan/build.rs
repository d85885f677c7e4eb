//! Notebook + facts + settings → [`Plan`]. Every decision is made here: task
//! boundaries, roles, edges (explicit ∪ data flow), passed values, parameters,
//! preludes, settings precedence, images.
//!
//! Settings precedence, highest first. Pipeline keys: command line > profile >
//! notebook metadata > project file > built-in. Task keys: cell (tags over cell
//! metadata) > `tasks.NAME` > `defaults` > built-in, where `tasks.NAME` and `defaults`
//! are each merged command line > profile > notebook > project.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::config::layer_from_json;
use super::settings::{Duration, PipelineLayer, SecretSpec, TaskLayer, TolerationSpec};
use super::tags::{parse_secret, parse_tag, parse_toleration, CellTag, Role};
use super::values::*;
use super::*;
use crate::analysis::{self, CellFacts};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::{CellKind, Notebook};

/// What the plan is built from.
pub struct BuildInput<'a> {
    pub notebook: &'a Notebook,
    /// `nb2pipe.toml` / `[tool.nb2pipe]`.
    pub project: Option<&'a PipelineLayer>,
    /// Command-line settings.
    pub cli: PipelineLayer,
    pub profile: Option<String>,
    /// `--python`: the interpreter (or venv folder) of the environment the notebook ran in.
    pub python_env: Option<std::path::PathBuf>,
}

/// The plan, and every diagnostic found on the way (the plan is best effort when
/// there are errors, so `inspect` can still show it).
pub struct Built {
    pub plan: Plan,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Binder {
    Task(usize),
    Param,
    Prelude,
}

struct TaskDraft {
    name: String,
    cells: Vec<usize>,
    after: Vec<(String, usize)>,
    cell_layer: TaskLayer,
    meta_layer: TaskLayer,
    metrics: bool,
    first_cell: usize,
}

struct PreludeStmt {
    cell: usize,
    idx: usize,
    binds: BTreeSet<String>,
    reads: BTreeSet<String>,
}

pub fn build(input: BuildInput<'_>) -> Built {
    let nb = input.notebook;
    let path = &nb.path;
    let mut diags: Vec<Diagnostic> = Vec::new();
    let empty = PipelineLayer::default();

    // 1. Pipeline settings.
    let nb_layer: PipelineLayer = match &nb.settings {
        Some(v) => layer_from_json(v).unwrap_or_else(|e| {
            diags.push(Diagnostic::new(
                Code::InvalidSettings,
                path,
                format!("invalid notebook metadata `nb2pipe`: {e}"),
            ));
            PipelineLayer::default()
        }),
        None => PipelineLayer::default(),
    };
    let base = nb_layer.over(input.project.unwrap_or(&empty));
    let profile_layer = match &input.profile {
        Some(p) => match base.profile.get(p) {
            Some(l) => l.clone(),
            None => {
                let known: Vec<&str> = base.profile.keys().map(String::as_str).collect();
                diags.push(
                    Diagnostic::new(
                        Code::UnknownProfile,
                        path,
                        format!("no profile named `{p}`"),
                    )
                    .with_help(if known.is_empty() {
                        "no profiles are defined; add `[profile.NAME]` to nb2pipe.toml".to_string()
                    } else {
                        format!("known profiles: {}", known.join(", "))
                    }),
                );
                PipelineLayer::default()
            }
        },
        None => PipelineLayer::default(),
    };
    let merged = input.cli.over(&profile_layer.over(&base));

    // 2. Facts per code cell.
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

    // 3. Tags → roles and tasks.
    let mut drafts: Vec<TaskDraft> = Vec::new();
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
        let at = |d: Diagnostic| d.at_cell(cell.index, cell.first_line());
        let mut role = None;
        let mut task_tag: Option<String> = None;
        let mut cont = false;
        let mut after: Vec<String> = Vec::new();
        let mut layer = TaskLayer::default();
        let mut metrics = false;
        let mut has_setting = false;
        for tag in &cell.tags {
            match parse_tag(tag, &merged.allow_tags) {
                Ok(CellTag::Task(n)) => {
                    if let Some(prev) = &task_tag {
                        if prev != &n {
                            diags.push(at(Diagnostic::new(
                                Code::DuplicateTask,
                                path,
                                format!("the cell starts two tasks, `{prev}` and `{n}`"),
                            )));
                        }
                    }
                    task_tag = Some(n);
                }
                Ok(CellTag::Continue) => cont = true,
                Ok(CellTag::After(names)) => after.extend(names),
                Ok(CellTag::Role(r)) => role = Some(r),
                Ok(CellTag::Metrics) => metrics = true,
                Ok(CellTag::Setting(l)) => {
                    layer = l.over(&layer);
                    has_setting = true;
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
                    let mut d = at(Diagnostic::new(code, path, msg));
                    if let Some(h) = help {
                        d = d.with_help(h);
                    }
                    diags.push(d);
                }
            }
        }
        // Structured cell metadata: {"task": ..., "after": [...], "skip": true, ...settings}.
        let mut meta_layer = TaskLayer::default();
        if let Some(serde_json::Value::Object(m)) = &cell.settings {
            let mut rest = m.clone();
            if let Some(v) = rest.remove("task") {
                match v.as_str().map(|s| (s, check_task_name(s))) {
                    Some((s, Ok(()))) => task_tag = Some(s.to_string()),
                    Some((_, Err(e))) => {
                        diags.push(at(Diagnostic::new(Code::InvalidName, path, e)))
                    }
                    None => diags.push(at(Diagnostic::new(
                        Code::InvalidSettings,
                        path,
                        "`nb2pipe.task` must be a string",
                    ))),
                }
            }
            if let Some(v) = rest.remove("after") {
                match serde_json::from_value::<Vec<String>>(v) {
                    Ok(list) => after.extend(list),
                    Err(_) => diags.push(at(Diagnostic::new(
                        Code::InvalidSettings,
                        path,
                        "`nb2pipe.after` must be a list of task names",
                    ))),
                }
            }
            if let Some(v) = rest.remove("skip") {
                if v == serde_json::Value::Bool(true) {
                    role = Some(Role::Skip);
                }
            }
            match layer_from_json::<TaskLayer>(&serde_json::Value::Object(rest)) {
                Ok(l) => {
                    has_setting |= l != TaskLayer::default();
                    meta_layer = l;
                }
                Err(e) => diags.push(at(Diagnostic::new(
                    Code::InvalidSettings,
                    path,
                    format!("invalid cell metadata `nb2pipe`: {e}"),
                ))),
            }
        } else if cell.settings.is_some() {
            diags.push(at(Diagnostic::new(
                Code::InvalidSettings,
                path,
                "cell metadata `nb2pipe` must be an object",
            )));
        }
        if let Some(r) = role {
            if task_tag.is_some() || !after.is_empty() || has_setting || metrics {
                diags.push(at(Diagnostic::new(
                    Code::OrphanSetting,
                    path,
                    format!(
                        "this `{}` cell belongs to no task, so its task tags would be lost",
                        role_name(r)
                    ),
                )
                .with_help("move the task tags to a cell of the task")));
            }
            if r != Role::Skip {
                roles.insert(cell.index, r);
            }
            continue;
        }
        if facts[cell.index]
            .as_ref()
            .is_some_and(|f| f.python.trim().is_empty() && f.cell_magic.is_none())
            && task_tag.is_none()
            && !has_setting
            && after.is_empty()
        {
            continue; // an empty cell joins nothing
        }
        let idx = match task_tag.or_else(|| current.is_none().then(|| default_name.clone())) {
            Some(name) => match drafts.iter().position(|d| d.name == name) {
                Some(i) => i,
                None => {
                    drafts.push(new_draft(name, cell.index));
                    drafts.len() - 1
                }
            },
            None => current.expect("a current task once one exists"),
        };
        let _ = cont; // `block:` alone continues the current task, as an untagged cell does
        let d = &mut drafts[idx];
        d.cells.push(cell.index);
        d.after.extend(after.into_iter().map(|a| (a, cell.index)));
        d.cell_layer = layer.over(&d.cell_layer);
        d.meta_layer = meta_layer.over(&d.meta_layer);
        d.metrics |= metrics;
        current = Some(idx);
    }
    Built::finish(
        nb,
        merged,
        input.profile,
        facts,
        drafts,
        roles,
        diags,
        input.python_env.as_deref(),
    )
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

impl Built {
    #[allow(clippy::too_many_arguments)]
    fn finish(
        nb: &Notebook,
        merged: PipelineLayer,
        profile: Option<String>,
        facts: Vec<Option<CellFacts>>,
        drafts: Vec<TaskDraft>,
        roles: BTreeMap<usize, Role>,
        mut diags: Vec<Diagnostic>,
        python_env: Option<&std::path::Path>,
    ) -> Built {
        let path = &nb.path;
        let cell_at = |i: usize| &nb.cells[i];
        let diag_at = |code: Code, cell: usize, msg: String| {
            Diagnostic::new(code, path, msg).at_cell(cell, cell_at(cell).first_line())
        };

        // Parameters and prelude statements.
        let mut parameters: Vec<Parameter> = Vec::new();
        let mut prelude: Vec<PreludeStmt> = Vec::new();
        let mut param_stmt: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (&cell, &role) in &roles {
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
                        Some((name, value)) => {
                            param_stmt.insert((cell, idx));
                            parameters.retain(|p| p.name != name);
                            parameters.push(Parameter { ty: analysis::type_name(&value).into(), name, default: value, cell, line: stmt.line });
                        }
                        None => diags.push(
                            diag_at(Code::NonLiteralParameter, cell, "this statement in a `parameters` cell is not `name = <literal>`, so it cannot be a pipeline parameter".into())
                                .at_line(stmt.line, None)
                                .with_help("it runs as ordinary code in the tasks that need what it binds"),
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
                    });
                }
            }
        }
        let param_names: BTreeSet<String> = parameters.iter().map(|p| p.name.clone()).collect();

        // Data flow, twice: the second pass adds what each task's prelude reads.
        let mut extra: Vec<BTreeSet<String>> = vec![BTreeSet::new(); drafts.len()];
        let mut flow = data_flow(nb, &facts, &drafts, &roles, &param_names, &prelude, &extra);
        let mut preludes: Vec<Vec<usize>> = Vec::new();
        for (t, needed) in flow.prelude_names.iter().enumerate() {
            let (included, reads) = select_prelude(&prelude, needed);
            extra[t] = reads;
            preludes.push(included);
        }
        if extra.iter().any(|e| !e.is_empty()) {
            flow = data_flow(nb, &facts, &drafts, &roles, &param_names, &prelude, &extra);
        }
        for (cell, line, name) in &flow.undefined {
            let mut d = diag_at(
                Code::UndefinedName,
                *cell,
                format!("`{name}` is read here but no earlier cell binds it"),
            );
            if let Some(l) = line {
                d = d.at_line(*l, None);
            }
            diags.push(d);
        }

        // Edges: explicit ∪ inferred.
        let index_of: HashMap<&str, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let mut edges: BTreeMap<(usize, usize), (BTreeSet<String>, bool)> = BTreeMap::new();
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
        for (to, d) in drafts.iter().enumerate() {
            for (up, cell) in &d.after {
                match index_of.get(up.as_str()) {
                    Some(&from) if from == to => diags.push(diag_at(
                        Code::DependencyCycle,
                        *cell,
                        format!("task `{up}` cannot run after itself"),
                    )),
                    Some(&from) => edges.entry((from, to)).or_default().1 = true,
                    None => {
                        let known: Vec<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
                        diags.push(
                            diag_at(
                                Code::UnknownUpstream,
                                *cell,
                                format!("`after:{up}` names a task that does not exist"),
                            )
                            .with_help(format!("tasks: {}", known.join(", "))),
                        );
                    }
                }
            }
        }
        if let Some(cycle) = find_cycle(drafts.len(), edges.keys().copied()) {
            let names: Vec<&str> = cycle.iter().map(|&i| drafts[i].name.as_str()).collect();
            diags.push(diag_at(
                Code::DependencyCycle,
                drafts[cycle[0]].first_cell,
                format!("tasks depend on each other in a cycle: {} → {}", names.join(" → "), names[0]),
            ).with_help("a task reads a value that a later task binds, or `after:` tags point both ways"));
        }

        // Unserialisable values on edges.
        for ((from, to), (values, _)) in &edges {
            for v in values {
                if let Some((cell, what)) = unserialisable_binding(&facts, &drafts[*from], v) {
                    diags.push(
                        diag_at(
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

        // Names: Kubernetes forms must not collide.
        let mut k8s: BTreeMap<String, &str> = BTreeMap::new();
        for d in &drafts {
            if let Some(other) = k8s.insert(k8s_name(&d.name), &d.name) {
                diags.push(diag_at(
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

        // Pipeline settings.
        let pipeline = merged
            .name
            .clone()
            .unwrap_or_else(|| sanitise_name(&nb.stem));
        if let Err(e) = check_task_name(&pipeline) {
            diags.push(
                Diagnostic::new(
                    Code::InvalidName,
                    path,
                    format!("invalid pipeline name: {e}"),
                )
                .with_help(format!("try `{}`", sanitise_name(&pipeline))),
            );
        }
        let python = merged
            .python
            .clone()
            .or_else(|| {
                nb.python_version
                    .as_ref()
                    .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
            })
            .filter(|v| v.split('.').count() == 2 && v.split('.').all(|p| p.parse::<u32>().is_ok()))
            .unwrap_or_else(|| "3.11".into());
        let settings = pipeline_settings(&merged, &pipeline, &python, profile, path, &mut diags);

        // Requirements of every task first: a consumer's depend on its producers'.
        let deps_inputs: Vec<crate::deps::TaskInput> = drafts
            .iter()
            .enumerate()
            .map(|(t, d)| crate::deps::TaskInput {
                name: d.name.clone(),
                cells: d.cells.clone(),
                prelude_cells: preludes[t]
                    .iter()
                    .map(|&i| prelude[i].cell)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                imports: task_imports(d, &facts, &prelude, &preludes[t]),
                receives_from: flow.inputs[t]
                    .values()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                exchanges_values: !flow.inputs[t].is_empty()
                    || edges
                        .iter()
                        .any(|((f, _), (v, _))| *f == t && !v.is_empty()),
            })
            .collect();
        let resolved = crate::deps::resolve(nb, &facts, &python, python_env, &deps_inputs);
        diags.extend(resolved.diagnostics);
        let mut task_deps = resolved.tasks.into_iter();

        // Tasks.
        let mut tasks: Vec<Task> = Vec::new();
        for (t, d) in drafts.iter().enumerate() {
            let layer = resolve_task_layer(&merged, &d.name, d);
            let ts = task_settings(
                &layer,
                path,
                d.first_cell,
                cell_at(d.first_cell).first_line(),
                &mut diags,
            );
            let mut inputs: Vec<Input> = flow.inputs[t]
                .iter()
                .map(|(n, from)| Input {
                    name: n.clone(),
                    from: drafts[*from].name.clone(),
                })
                .collect();
            inputs.sort();
            let outputs: Vec<String> = edges
                .iter()
                .filter(|((f, _), _)| *f == t)
                .flat_map(|(_, (v, _))| v.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let code = task_chunks(d, &facts, &prelude, &preludes[t]);
            let imports = task_imports(d, &facts, &prelude, &preludes[t]);
            let deps = task_deps.next().unwrap_or_default();
            let requirements = deps.requirements;
            let prelude_refs = preludes[t]
                .iter()
                .map(|&i| StmtRef {
                    cell: prelude[i].cell,
                    line: facts[prelude[i].cell]
                        .as_ref()
                        .map(|f| f.stmts[prelude[i].idx].line)
                        .unwrap_or(1),
                })
                .collect();
            let image = match &layer.image {
                Some(img) => Image {
                    reference: img.clone(),
                    prebuilt: true,
                    base: None,
                    content_hash: None,
                },
                None => {
                    let hash = content_hash(
                        &settings.base_image,
                        &python,
                        &requirements,
                        &code,
                        &inputs,
                        &outputs,
                        &flow.params[t],
                    );
                    let repo = format!("{pipeline}-{}", k8s_name(&d.name));
                    let reference = match &settings.registry {
                        Some(r) => format!("{}/{repo}:{hash}", r.trim_end_matches('/')),
                        None => format!("{repo}:{hash}"),
                    };
                    Image {
                        reference,
                        prebuilt: false,
                        base: None,
                        content_hash: Some(hash),
                    }
                }
            };
            tasks.push(Task {
                name: d.name.clone(),
                k8s_name: k8s_name(&d.name),
                cells: d.cells.clone(),
                inputs,
                outputs,
                parameters: flow.params[t].iter().cloned().collect(),
                prelude: prelude_refs,
                imports: imports
                    .into_iter()
                    .map(|i| i.module)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                requirements,
                optional_requirements: deps.optional,
                local_modules: deps.local_modules,
                files: Vec::new(),
                metrics: d.metrics,
                settings: ts,
                image,
                code,
                copies: Vec::new(),
            });
        }
        super::files::attach(&mut tasks, &settings, &pipeline, &python, nb, python_env);
        let edges = edges
            .into_iter()
            .map(|((f, t), (values, explicit))| Edge {
                from: drafts[f].name.clone(),
                to: drafts[t].name.clone(),
                values: values.into_iter().collect(),
                explicit,
            })
            .collect();
        parameters.sort_by_key(|p| (p.cell, p.line));
        crate::diagnostics::sort(&mut diags);
        diags.dedup();
        let notebook = nb
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Built {
            plan: Plan {
                format: PLAN_FORMAT,
                pipeline,
                notebook,
                python,
                settings,
                parameters,
                tasks,
                edges,
            },
            diagnostics: diags,
        }
    }
}

struct Flow {
    /// (producer, consumer) → values.
    passed: BTreeMap<(usize, usize), BTreeSet<String>>,
    inputs: Vec<BTreeMap<String, usize>>,
    params: Vec<BTreeSet<String>>,
    prelude_names: Vec<BTreeSet<String>>,
    undefined: Vec<(usize, Option<usize>, String)>,
    /// (writer, importer): a task imports a module an earlier task writes (`%%writefile`).
    file_edges: BTreeSet<(usize, usize)>,
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
            match binder.get(name) {
                Some(Binder::Task(a)) if *a == t => {}
                Some(Binder::Task(a)) => {
                    flow.passed.entry((*a, t)).or_default().insert(name.clone());
                    flow.inputs[t].entry(name.clone()).or_insert(*a);
                }
                Some(Binder::Param) => {
                    flow.params[t].insert(name.clone());
                }
                Some(Binder::Prelude) => {
                    flow.prelude_names[t].insert(name.clone());
                }
                None => {
                    if !flow
                        .undefined
                        .iter()
                        .any(|(c, _, n)| *c == cell.index && n == name)
                    {
                        flow.undefined.push((
                            cell.index,
                            first_line_mentioning(&cell.source, name),
                            name.clone(),
                        ));
                    }
                }
            }
        }
        for b in &f.binds {
            binder.insert(b.clone(), Binder::Task(t));
        }
        for imp in f.imports.iter().filter(|i| !i.module.starts_with('.')) {
            let top = imp.module.split('.').next().unwrap_or_default();
            if let Some(&w) = writers.get(top) {
                if w != t {
                    flow.file_edges.insert((w, t));
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
    flow
}

fn first_line_mentioning(src: &str, name: &str) -> Option<usize> {
    let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(name))).ok()?;
    src.lines().position(|l| re.is_match(l)).map(|i| i + 1)
}

/// The prelude statements a task needs (indices into `prelude`, in notebook order), and
/// the names those statements read that the prelude itself does not bind.
fn select_prelude(
    prelude: &[PreludeStmt],
    needed: &BTreeSet<String>,
) -> (Vec<usize>, BTreeSet<String>) {
    let mut needed = needed.clone();
    let mut included = vec![false; prelude.len()];
    loop {
        let mut changed = false;
        for (i, s) in prelude.iter().enumerate() {
            if !included[i] && s.binds.iter().any(|b| needed.contains(b)) {
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
    let all_bound: BTreeSet<&String> = prelude.iter().flat_map(|s| s.binds.iter()).collect();
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

fn resolve_task_layer(merged: &PipelineLayer, name: &str, d: &TaskDraft) -> TaskLayer {
    // `merged` already holds notebook over project; the profile's task and default
    // layers are laid on top in `pipeline_settings` order (see the module doc).
    let named = merged.tasks.get(name).cloned().unwrap_or_default();
    let cell = d.cell_layer.over(&d.meta_layer);
    cell.over(&named.over(&merged.defaults))
}

fn pipeline_settings(
    m: &PipelineLayer,
    pipeline: &str,
    python: &str,
    profile: Option<String>,
    path: &std::path::Path,
    diags: &mut Vec<Diagnostic>,
) -> PipelineSettings {
    let mut bad = |msg: String| diags.push(Diagnostic::new(Code::InvalidSettings, path, msg));
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
    if let Err(e) = check_dns_label(&namespace, "namespace") {
        bad(e);
    }
    if let Some(r) = &m.registry {
        if let Err(e) = check_registry(r.trim_end_matches('/')) {
            bad(e);
        }
    }
    let base_image = m
        .base_image
        .clone()
        .unwrap_or_else(|| format!("python:{python}-slim"));
    if let Err(e) = check_image(&base_image) {
        bad(format!("base_image: {e}"));
    }
    if let Some(s) = &m.schedule {
        if let Err(e) = check_schedule(s) {
            bad(e);
        }
    }
    let start_date = m.start_date.clone().unwrap_or_else(|| "2024-01-01".into());
    if !regex::Regex::new(r"^\d{4}-\d{2}-\d{2}$")
        .unwrap()
        .is_match(&start_date)
    {
        bad(format!("start_date `{start_date}` is not YYYY-MM-DD"));
    }
    if let Some(sa) = &m.service_account {
        if let Err(e) = check_dns_subdomain(sa, "service account name") {
            bad(e);
        }
    }
    for s in &m.image_pull_secrets {
        if let Err(e) = check_dns_subdomain(s, "image pull secret name") {
            bad(e);
        }
    }
    for t in &m.tags {
        if t.is_empty() || t.len() > 100 {
            bad(format!("DAG tag `{t}` must be 1 to 100 characters"));
        }
    }
    let d = &m.data;
    let data = match d.url.as_deref() {
        Some(u) if u.starts_with("s3://") => {
            if u.len() <= 5 || u.contains(['\n', '\r', ' ']) {
                bad(format!("data url `{u}` is not an s3://bucket/prefix URL"));
            }
            if let Some(s) = &d.secret {
                if let Err(e) = check_dns_subdomain(s, "Secret name") {
                    bad(e);
                }
            }
            DataStore::S3 {
                url: u.to_string(),
                endpoint: d.endpoint.clone(),
                secret: d.secret.clone(),
                region: d.region.clone(),
            }
        }
        other => {
            let claim = match other {
                Some(u) => match u.strip_prefix("pvc://") {
                    Some(c) => c.to_string(),
                    None => {
                        bad(format!("data url `{u}` must start with pvc:// or s3://"));
                        format!("{}-data", k8s_name(pipeline))
                    }
                },
                None => format!("{}-data", k8s_name(pipeline)),
            };
            if let Err(e) = check_dns_subdomain(&claim, "PersistentVolumeClaim name") {
                bad(e);
            }
            let size = d.size.clone().unwrap_or_else(|| "10Gi".into());
            if let Err(e) = check_quantity(&size) {
                bad(format!("data.size: {e}"));
            }
            let mount_path = d
                .mount_path
                .clone()
                .unwrap_or_else(|| "/nb2pipe/data".into());
            if !mount_path.starts_with('/') || mount_path.contains(['\n', '\r', ':']) {
                bad(format!(
                    "data.mount_path `{mount_path}` must be an absolute path"
                ));
            }
            DataStore::Volume {
                claim,
                size,
                storage_class: d.storage_class.clone(),
                mount_path,
            }
        }
    };
    PipelineSettings {
        profile,
        description: m.description.clone(),
        schedule: m.schedule.clone(),
        catchup: m.catchup.unwrap_or(false),
        start_date,
        max_active_runs: m.max_active_runs,
        namespace,
        registry: m
            .registry
            .clone()
            .map(|r| r.trim_end_matches('/').to_string()),
        base_image,
        service_account: m.service_account.clone(),
        image_pull_secrets: m.image_pull_secrets.clone(),
        tags: m.tags.clone(),
        data,
    }
}

/// Cron (5 fields) or a preset.
pub fn check_schedule(s: &str) -> Result<(), String> {
    const PRESETS: &[&str] = &[
        "@once",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@quarterly",
        "@yearly",
        "@annually",
        "@midnight",
    ];
    if PRESETS.contains(&s) {
        return Ok(());
    }
    let field = regex::Regex::new(r"^[0-9A-Za-z*/,?LW#-]+$").unwrap();
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() == 5 && fields.iter().all(|f| field.is_match(f)) && !s.contains(['\n', '\r']) {
        Ok(())
    } else {
        Err(format!(
            "schedule `{s}` is not a cron expression (5 fields) or a preset like @daily"
        ))
    }
}

fn task_settings(
    l: &TaskLayer,
    path: &std::path::Path,
    cell: usize,
    first_line: &str,
    diags: &mut Vec<Diagnostic>,
) -> TaskSettings {
    let mut bad = |msg: String| {
        diags.push(Diagnostic::new(Code::InvalidSettings, path, msg).at_cell(cell, first_line))
    };
    let mut requests = BTreeMap::new();
    for (key, v) in [
        ("cpu", &l.cpu),
        ("memory", &l.memory),
        ("ephemeral-storage", &l.ephemeral_storage),
    ] {
        if let Some(v) = v {
            match check_quantity(v) {
                Ok(()) => {
                    requests.insert(key.to_string(), v.clone());
                }
                Err(e) => bad(format!("{key}: {e}")),
            }
        }
    }
    if let Some(g) = &l.gpu {
        match check_count(g) {
            Ok(_) => {
                requests.insert("nvidia.com/gpu".to_string(), g.clone());
            }
            Err(e) => bad(format!("gpu: {e}")),
        }
    }
    let mut limits = requests.clone();
    for (k, v) in &l.limits {
        let k = if k == "gpu" {
            "nvidia.com/gpu"
        } else {
            k.as_str()
        };
        match check_label_key(k).and_then(|()| check_quantity(v)) {
            Ok(()) => {
                limits.insert(k.to_string(), v.clone());
            }
            Err(e) => bad(format!("limits: {e}")),
        }
    }
    let mut secrets = Vec::new();
    for s in &l.secrets {
        let r = match s {
            SecretSpec::Text(t) => parse_secret(t),
            SecretSpec::Full(r) => check_dns_subdomain(&r.name, "Secret name")
                .and_then(|()| r.env.as_deref().map(check_env_name).unwrap_or(Ok(())))
                .and_then(|()| match (&r.key, &r.env) {
                    (Some(_), None) | (None, Some(_)) => Err(format!(
                        "secret `{}`: give both `key` and `env`, or neither",
                        r.name
                    )),
                    _ => Ok(()),
                })
                .map(|()| r.clone()),
        };
        match r {
            Ok(r) if !secrets.contains(&r) => secrets.push(r),
            Ok(_) => {}
            Err(e) => bad(e),
        }
    }
    for c in &l.config_maps {
        if let Err(e) = check_dns_subdomain(c, "ConfigMap name") {
            bad(e);
        }
    }
    for k in l.env.keys() {
        if let Err(e) = check_env_name(k) {
            bad(e);
        }
        if k.starts_with("NB2PIPE_") {
            bad(format!(
                "env `{k}`: names starting with NB2PIPE_ are reserved for nb2pipe"
            ));
        }
    }
    let mut tolerations = Vec::new();
    for t in &l.tolerations {
        match t {
            TolerationSpec::Text(s) => match parse_toleration(s) {
                Ok(t) => tolerations.push(t),
                Err(e) => bad(e),
            },
            TolerationSpec::Full(t) => tolerations.push(t.clone()),
        }
    }
    for (k, v) in &l.node_selector {
        if let Err(e) = check_label_key(k).and_then(|()| check_label_value(v)) {
            bad(format!("node_selector: {e}"));
        }
    }
    for (k, v) in &l.labels {
        if let Err(e) = check_label_key(k).and_then(|()| check_label_value(v)) {
            bad(format!("labels: {e}"));
        }
    }
    for k in l.annotations.keys() {
        if let Err(e) = check_label_key(k) {
            bad(format!("annotations: {e}"));
        }
    }
    if let Some(p) = &l.pool {
        if let Err(e) = check_pool(p) {
            bad(e);
        }
    }
    if let Some(img) = &l.image {
        if let Err(e) = check_image(img) {
            bad(e);
        }
    }
    let secs = |d: &Option<Duration>, what: &str, bad: &mut dyn FnMut(String)| -> Option<u64> {
        match d {
            None => None,
            Some(Duration::Seconds(s)) => Some(*s),
            Some(Duration::Text(t)) => parse_duration(t)
                .map_err(|e| bad(format!("{what}: {e}")))
                .ok(),
        }
    };
    let retry_delay_seconds = secs(&l.retry_delay, "retry_delay", &mut bad).unwrap_or(300);
    let timeout_seconds = secs(&l.timeout, "timeout", &mut bad);
    let image_pull_policy = l
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".into());
    if !matches!(
        image_pull_policy.as_str(),
        "Always" | "IfNotPresent" | "Never"
    ) {
        bad(format!(
            "image_pull_policy `{image_pull_policy}` is not Always, IfNotPresent or Never"
        ));
    }
    TaskSettings {
        resources: Resources { requests, limits },
        secrets,
        config_maps: l.config_maps.clone(),
        env: l.env.clone(),
        retries: l.retries.unwrap_or(0),
        retry_delay_seconds,
        timeout_seconds,
        pool: l.pool.clone(),
        node_selector: l.node_selector.clone(),
        tolerations,
        affinity: l.affinity.clone(),
        labels: l.labels.clone(),
        annotations: l.annotations.clone(),
        cache: l.cache.unwrap_or(true),
        image_pull_policy,
    }
}

fn task_chunks(
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

fn task_imports(
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

fn content_hash(
    base: &str,
    python: &str,
    reqs: &[Requirement],
    code: &[Chunk],
    inputs: &[Input],
    outputs: &[String],
    params: &BTreeSet<String>,
) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update([0]);
    h.update(base);
    h.update([0]);
    h.update(python);
    for r in reqs {
        h.update([1]);
        h.update(&r.line);
    }
    for c in code {
        h.update([2]);
        h.update(c.cell.to_le_bytes());
        h.update(&c.python);
        h.update(&c.raw_body);
        h.update(format!("{:?}", c.magic));
    }
    for i in inputs {
        h.update([3]);
        h.update(&i.name);
        h.update(&i.from);
    }
    for o in outputs {
        h.update([4]);
        h.update(o);
    }
    for p in params {
        h.update([5]);
        h.update(p);
    }
    let digest = h.finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
