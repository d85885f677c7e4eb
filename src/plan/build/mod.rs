//! Notebook + facts + settings → [`Plan`]. Every decision is made in this module, one
//! file per kind of decision: which cells form which task (tasks.rs), parameters and
//! preludes (prelude.rs), data flow (flow.rs), edges and their checks (edges.rs),
//! process-wide state carried between tasks (globals.rs),
//! settings precedence and checks (layers.rs), task code and requirements (code.rs),
//! images (images.rs). This file only runs them in order.

pub mod cache;
mod cluster;
mod code;
mod edges;
mod flow;
mod globals;
mod images;
mod layers;
mod prelude;
mod tasks;

use std::collections::BTreeSet;

use super::settings::PipelineLayer;
use super::values::k8s_name;
use super::*;
use crate::analysis::CellFacts;
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;

pub use layers::check_schedule;
pub use layers::DEFAULT_REQUESTS;

use edges::Edges;
use flow::Flow;
use globals::Globals;
use prelude::PreludeStmt;
use tasks::TaskDraft;

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
    /// What the plan was read from: the facts of each cell. Handed back so a caller
    /// that ends the process next need not free their many small allocations.
    pub facts: Vec<Option<CellFacts>>,
}

/// The notebook cut into tasks, with its data flow: what each task's own decisions read.
struct Drafted<'a> {
    nb: &'a Notebook,
    facts: &'a [Option<CellFacts>],
    drafts: &'a [TaskDraft],
    /// Per task, its settings layers laid over one another (resolved once per task).
    layers: &'a [super::settings::TaskLayer],
    prelude: &'a [PreludeStmt],
    /// Per task, the prelude statements it runs (indices into `prelude`).
    preludes: &'a [Vec<usize>],
    flow: &'a Flow,
    edges: &'a Edges,
    globals: &'a Globals,
}

pub fn build(input: BuildInput<'_>) -> Built {
    let nb = input.notebook;
    let mut diags: Vec<Diagnostic> = Vec::new();
    let merged = layers::merged_pipeline_layer(&input, &mut diags);
    let facts = code::analyse_cells(nb, &mut diags);
    let (drafts, roles) = tasks::draft_tasks(nb, &merged, &facts, &mut diags);
    code::report_syntax_errors(nb, &facts, &drafts, &roles, &mut diags);

    let (mut parameters, mut prelude) =
        prelude::parameters_and_prelude(nb, &facts, &roles, &mut diags);
    prelude.extend(flow::task_import_stmts(&facts, &drafts));
    let param_names: BTreeSet<String> = parameters.iter().map(|p| p.name.clone()).collect();
    let task_layers: Vec<super::settings::TaskLayer> = drafts
        .iter()
        .map(|d| layers::resolve_task_layer(&merged, &d.name, d))
        .collect();
    let used_imports_only: Vec<bool> = task_layers
        .iter()
        .map(|l| l.imports == Some(super::settings::ImportsMode::Used))
        .collect();
    let (flow, preludes) = flow::flow_with_preludes(
        nb,
        &facts,
        &drafts,
        &roles,
        &param_names,
        &prelude,
        &used_imports_only,
    );
    flow::report_undefined(nb, &flow, &mut diags);
    flow::report_scattered_tasks(nb, &facts, &drafts, &mut diags);

    let globals = globals::global_state(nb, &facts, &drafts, &roles, &mut diags);
    let mut edges = edges::task_edges(nb, &drafts, &flow, &mut diags);
    globals::add_random_edges(&globals, &mut edges);
    edges::report_cycle(nb, &drafts, &edges, &mut diags);
    edges::report_unserialisable(nb, &facts, &drafts, &edges, &mut diags);
    tasks::report_k8s_name_clashes(nb, &drafts, &mut diags);

    let pipeline = layers::pipeline_name(nb, &merged, &mut diags);
    let python = layers::python_version(nb, &merged);
    let settings = layers::pipeline_settings(
        &merged,
        &pipeline,
        &python,
        input.profile,
        &nb.path,
        &mut diags,
    );

    let cx = Drafted {
        nb,
        facts: &facts,
        drafts: &drafts,
        layers: &task_layers,
        prelude: &prelude,
        preludes: &preludes,
        flow: &flow,
        edges: &edges,
        globals: &globals,
    };
    // The tasks' requirements (a consumer's depend on its producers') are resolved
    // while the tasks are planned: neither reads the other. Their diagnostics keep the
    // order of a one-thread run.
    let python_env = input.python_env.as_deref();
    let requirements = || {
        let mut d = Vec::new();
        let deps = code::resolve_requirements(&cx, &python, python_env, &mut d);
        (deps, d)
    };
    let planned = || {
        let mut d = Vec::new();
        let tasks: Vec<(Task, Option<String>)> = (0..drafts.len())
            .map(|t| {
                let task = plan_task(&cx, t, &mut d);
                let no_cache = cache::reason(&task, nb, &facts);
                (task, no_cache)
            })
            .collect();
        (tasks, d)
    };
    // A few tasks take less time than waking a helper.
    let ((task_deps, deps_diags), (tasks, task_diags)) = if drafts.len() >= 16 {
        crate::parallel::both(requirements, planned)
    } else {
        (requirements(), planned())
    };
    diags.extend(deps_diags);
    diags.extend(task_diags);
    let (mut tasks, no_cache): (Vec<Task>, Vec<Option<String>>) = tasks.into_iter().unzip();
    for (task, deps) in tasks.iter_mut().zip(task_deps) {
        task.requirements = deps.requirements;
        task.optional_requirements = deps.optional;
        task.local_modules = deps.local_modules;
    }

    crate::plan::files::add_store_client(&mut tasks, &settings, &python, nb, python_env);
    // What travels with each task, its image and its cache key: each from the task
    // alone, so shared over threads when there are many.
    let nb_dir = crate::plan::files::notebook_dir(nb);
    let workers = if tasks.len() >= 32 { 4 } else { 1 };
    let mut pairs: Vec<(&mut Task, Option<String>)> = tasks.iter_mut().zip(no_cache).collect();
    crate::parallel::each_mut(&mut pairs, workers, |(t, no_cache)| {
        crate::plan::files::attach(t, &settings, &pipeline, &python, nb_dir);
        cache::decide(t, no_cache.take(), &python, &settings.base_image);
    });
    let edges = edges::plan_edges(&drafts, edges);
    parameters.sort_by_key(|p| (p.cell, p.line));
    let mut settings = settings;
    cluster::decide(&mut settings, &tasks, &edges, &nb.path, &mut diags);
    crate::diagnostics::sort(&mut diags);
    diags.dedup();
    let notebook = nb
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plan = Plan {
        format: PLAN_FORMAT,
        pipeline,
        notebook,
        python,
        settings,
        parameters,
        tasks,
        edges,
    };
    Built {
        plan,
        diagnostics: diags,
        facts,
    }
}

/// Task `t` of the plan, from its draft and the decisions made about it.
/// Its requirements and local modules are left empty: [`build`] fills them in.
fn plan_task(cx: &Drafted<'_>, t: usize, diags: &mut Vec<Diagnostic>) -> Task {
    let d = &cx.drafts[t];
    let layer = &cx.layers[t];
    let first_line = cx.nb.cells[d.first_cell].first_line();
    let ts = layers::task_settings(layer, &cx.nb.path, d.first_cell, first_line, diags);
    let inputs = flow::task_inputs(cx.flow, cx.drafts, t);
    let outputs = edges::task_outputs(cx.edges, t);
    let changes = flow::task_changes(cx.flow, &outputs, t);
    let before = code::before_cells(cx.prelude, &cx.preludes[t], &cx.globals.replays[t]);
    let code = code::task_chunks(d, cx.facts, &before);
    let imports = code::task_imports(d, cx.facts, &before);
    let prelude_refs = prelude::prelude_refs(cx.facts, &before);
    let random_state = globals::random_carry(cx.globals, cx.drafts, t, &code);
    let image = images::task_image(layer.image.as_ref());
    Task {
        name: d.name.clone(),
        k8s_name: k8s_name(&d.name),
        cells: d.cells.clone(),
        inputs,
        outputs,
        changes,
        parameters: cx.flow.params[t].iter().cloned().collect(),
        prelude: prelude_refs,
        imports: imports
            .into_iter()
            .map(|i| i.module)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        requirements: Vec::new(),
        optional_requirements: Vec::new(),
        local_modules: Vec::new(),
        files: Vec::new(),
        copies: Vec::new(),
        metrics: d.metrics,
        random_state,
        settings: ts,
        image,
        cache: TaskCache::default(),
        code,
    }
}

/// A diagnostic pointing at cell `cell` of the notebook.
fn diag_at(nb: &Notebook, code: Code, cell: usize, msg: String) -> Diagnostic {
    Diagnostic::new(code, &nb.path, msg).at_cell(cell, nb.cells[cell].first_line())
}
