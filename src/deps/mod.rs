//! Per-task requirements: the distributions a task's code imports, its explicit
//! `%pip install`s, and what it needs to load the values it receives, each pinned from
//! the project's files or the notebook's environment. docs/dependencies.md is the
//! user-facing description of every rule here.
//!
//! Per import, in order: `TYPE_CHECKING` imports and relative imports are skipped; the
//! target version's standard library is skipped; the project's own modules are recorded
//! (copied into the image) and their imports followed; a module that left the standard
//! library becomes its backport (with a warning); anything else is a distribution, named
//! by an explicit install that provides it, else the environment, else the shipped
//! table, else the Google/Azure namespace convention, else the module name.

mod env;
pub mod files;
mod local;

/// The names `from module import *` binds when `module` is a local module next to the
/// notebook (its `__all__` literal, else its public top-level names); `None` when it
/// is not local.
pub fn star_import_names(
    nb_dir: &std::path::Path,
    module: &str,
    sys_paths: &[String],
    written: &[(String, String)],
) -> Option<Vec<String>> {
    let ancestors = pins::ancestors(nb_dir);
    let locals = local::Locals::new(nb_dir, sys_paths, written, &ancestors);
    let found = locals.find(module, &[])?;
    let (_, src) = found.files.last()?;
    let facts = crate::analysis::analyse_cell(src);
    if let Some(all) = crate::analysis::literal_assignments(src)
        .into_iter()
        .flatten()
        .rev()
        .find(|(n, _)| n == "__all__")
        .and_then(|(_, v)| v.as_array().cloned())
    {
        return Some(
            all.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        );
    }
    Some(
        facts
            .binds
            .into_iter()
            .filter(|n| !n.starts_with('_'))
            .collect(),
    )
}
mod names;
mod pins;
mod pip;
mod stdlib;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::analysis::{install_commands, CellFacts, CellMagic, EscapeKind, Import, InstallCommand};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;
use crate::plan::Requirement;

pub use names::{lookup as table_lookup, namespace_convention, normalize, rows as table_rows};
pub use pip::{parse_requirement, Spec};
pub use stdlib::{is_stdlib, minor as python_minor, removed as removed_from_stdlib};

/// Set to `off` to skip dependency inference (used only to measure what it costs).
pub const SKIP_ENV: &str = "NB2PIPE_DEPS";

/// Distributions whose objects a task may hand to another (DataFrames, arrays, fitted
/// models, figures); a consumer needs them to load what it receives.
const VALUE_DISTS: &[&str] = &[
    "numpy",
    "pandas",
    "pyarrow",
    "polars",
    "scipy",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    "torch",
    "tensorflow",
    "keras",
    "jax",
    "networkx",
    "xarray",
    "geopandas",
    "shapely",
    "pillow",
    "sympy",
    "dask",
    "spacy",
    "gensim",
    "prophet",
    "pmdarima",
    "imbalanced-learn",
    "category-encoders",
    "umap-learn",
    "hdbscan",
    "sktime",
    "matplotlib",
    "plotly",
    "cloudpickle",
    "dill",
];

/// boto3 when neither the project nor the environment pins it: the last release of the
/// 1.35 line (January 2025), which supports Python 3.8 and later, the versions nb2pipe
/// targets; the runtime only uses put/get_object and list_objects_v2.
pub const BOTO3_PIN: &str = "boto3==1.35.99";

/// The serialiser every value-passing task gets when the project pins none.
pub const CLOUDPICKLE_PIN: &str = "cloudpickle==3.1.2";

/// The S3 client the runtime needs when the data store is `s3://`: pinned by the
/// project's files or the notebook's environment like any requirement, else
/// [`BOTO3_PIN`].
pub fn store_client(nb: &Notebook, python: &str, python_env: Option<&Path>) -> Requirement {
    let ctx = Ctx::new(nb, &[], python, python_env);
    let mut r = ctx.requirement(
        "boto3",
        "",
        None,
        "the data store's S3 client".into(),
        "the data store is s3:// (the runtime reads and writes it with boto3)".into(),
    );
    if r.pin_source == "unpinned" {
        r.line = BOTO3_PIN.to_string();
        r.pin_source = "nb2pipe's tested version for an S3 data store".into();
    }
    r
}

/// What the plan knows about one task.
#[derive(Debug, Clone, Default)]
pub struct TaskInput {
    pub name: String,
    /// The task's own cells.
    pub cells: Vec<usize>,
    /// `imports`/`functions` cells of which the task runs some statements.
    pub prelude_cells: Vec<usize>,
    /// Imports of the task's code and of the prelude statements it runs.
    pub imports: Vec<Import>,
    /// Tasks (indexes) whose values this task loads.
    pub receives_from: Vec<usize>,
    /// The task loads or saves passed values.
    pub exchanges_values: bool,
    /// A Spark task's Spark version.
    pub spark_version: Option<String>,
}

/// One task's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDeps {
    pub requirements: Vec<Requirement>,
    /// `try: import x / except ImportError` imports not otherwise required.
    pub optional: Vec<Requirement>,
    /// Project files the image needs, relative to the notebook's folder.
    pub local_modules: Vec<String>,
}

pub struct Resolved {
    pub tasks: Vec<TaskDeps>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolves every task's requirements. Never fails: problems are diagnostics.
pub fn resolve(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    python: &str,
    python_env: Option<&Path>,
    tasks: &[TaskInput],
) -> Resolved {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "off") {
        return Resolved {
            tasks: vec![TaskDeps::default(); tasks.len()],
            diagnostics: Vec::new(),
        };
    }
    let mut ctx = Ctx::new(nb, facts, python, python_env);
    ctx.task_names = tasks.iter().map(|t| t.name.clone()).collect();
    let mut out: Vec<TaskDeps> = Vec::with_capacity(tasks.len());
    let mut maps: Vec<BTreeMap<String, Requirement>> = Vec::new();
    for t in tasks {
        let (req, opt, locals) = ctx.task(t);
        maps.push(req);
        out.push(TaskDeps {
            requirements: Vec::new(),
            optional: opt.into_values().collect(),
            local_modules: locals.into_iter().collect(),
        });
    }
    // Tasks are in notebook order, so a producer's list is final before its consumers'.
    for (t, input) in tasks.iter().enumerate() {
        if let Some(v) = &input.spark_version {
            // The driver's pyspark must be the Spark it runs on, whatever the notebook had.
            let r = maps[t].entry("pyspark".into()).or_insert_with(|| {
                ctx.requirement(
                    "pyspark",
                    "",
                    None,
                    "a Spark task".into(),
                    "a Spark task runs pyspark".into(),
                )
            });
            r.line = format!("pyspark=={v}");
            r.pin_source = "the task's Spark version (spark-version)".into();
        }
        for &p in &input.receives_from {
            if p >= maps.len() || p == t {
                continue;
            }
            if input.spark_version.is_none() && tasks[p].spark_version.is_some() {
                // A Spark DataFrame arrives in a task without Spark as pandas (read with pyarrow).
                for dist in ["pandas", "pyarrow"] {
                    if !maps[t].contains_key(dist) {
                        let r = ctx.requirement(
                            dist,
                            "",
                            None,
                            format!(
                                "Spark DataFrames from task `{}` arrive as pandas DataFrames",
                                ctx.task_name(p)
                            ),
                            format!("loads values from Spark task `{}`", ctx.task_name(p)),
                        );
                        maps[t].insert(dist.into(), r);
                    }
                }
            }
            let inherited: Vec<Requirement> = maps[p]
                .values()
                .filter(|r| VALUE_DISTS.contains(&normalize(&r.name).as_str()))
                .cloned()
                .collect();
            for r in inherited {
                let key = normalize(&r.name);
                maps[t].entry(key).or_insert_with(|| Requirement {
                    source: format!("loads values from task `{}`", ctx.task_name(p)),
                    ..r
                });
            }
        }
        if input.exchanges_values
            && maps[t].contains_key("pandas")
            && !maps[t].contains_key("pyarrow")
        {
            let r = ctx.requirement(
                "pyarrow",
                "",
                None,
                "pandas values travel between tasks as Parquet".into(),
                "pandas in a task that passes values".into(),
            );
            maps[t].insert("pyarrow".into(), r);
        }
        // The runtime pickles other values with cloudpickle when it is importable (for
        // functions, lambdas, closures): writer and reader must both have it.
        if input.exchanges_values && !maps[t].contains_key("cloudpickle") {
            let mut r = ctx.requirement(
                "cloudpickle",
                "",
                None,
                "values other than pandas and numpy travel pickled with cloudpickle".into(),
                "a task that passes values".into(),
            );
            if r.pin_source == "unpinned" {
                r.line = CLOUDPICKLE_PIN.to_string();
                r.pin_source = "nb2pipe's tested version of the value serialiser".into();
            }
            maps[t].insert("cloudpickle".into(), r);
        }
    }
    for (t, m) in maps.into_iter().enumerate() {
        out[t]
            .optional
            .retain(|o| !m.contains_key(&normalize(&o.name)));
        // Only required ones warn: an optional import the task may well do without.
        ctx.unpinned.extend(
            m.values()
                .filter(|r| r.pin_source == "unpinned")
                .map(|r| r.name.clone()),
        );
        out[t].requirements = m.into_values().collect();
    }
    ctx.finish();
    Resolved {
        tasks: out,
        diagnostics: ctx.diags,
    }
}

struct Ctx<'a> {
    nb: &'a Notebook,
    facts: &'a [Option<CellFacts>],
    nb_dir: PathBuf,
    minor: u32,
    env: Option<env::Env>,
    env_shown: String,
    pins: pins::Pins,
    locals: local::Locals,
    unpinned: BTreeSet<String>,
    removed_seen: HashSet<String>,
    rejected_seen: HashSet<(usize, String)>,
    diags: Vec<Diagnostic>,
    task_names: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(
        nb: &'a Notebook,
        facts: &'a [Option<CellFacts>],
        python: &str,
        python_env: Option<&Path>,
    ) -> Ctx<'a> {
        let nb_dir = nb
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut diags = Vec::new();
        let env_path = python_env
            .map(Path::to_path_buf)
            .or_else(|| env::discover(&nb_dir));
        let env = env_path.as_ref().and_then(|p| match env::Env::open(p) {
            Ok(e) => Some(e),
            Err(msg) => {
                // A venv found next to the notebook that cannot be read is only a warning.
                let code = if python_env.is_some() { Code::PythonEnvUnusable } else { Code::ProjectFileProblem };
                diags.push(Diagnostic::new(code, &nb.path, format!("cannot read the Python environment: {msg}")).with_help("pass --python with the interpreter of the environment the notebook ran in (e.g. .venv/bin/python)"));
                None
            }
        });
        let env_shown = env
            .as_ref()
            .map(|e| local::relative(&nb_dir, &e.root))
            .unwrap_or_default();
        let pins = pins::Pins::discover(&nb_dir);
        for (file, msg) in &pins.problems {
            diags.push(
                Diagnostic::new(
                    Code::ProjectFileProblem,
                    &nb.path,
                    format!("cannot read pins from {file}: {msg}"),
                )
                .with_help("the file is ignored; fix it or remove it"),
            );
        }
        let mut sys_paths: Vec<String> = facts
            .iter()
            .flatten()
            .flat_map(|f| f.sys_paths.iter().cloned())
            .collect();
        sys_paths.dedup();
        let written: Vec<(String, String)> = facts
            .iter()
            .flatten()
            .filter_map(|f| match &f.cell_magic {
                Some(CellMagic::WriteFile { path, .. }) => Some((path.clone(), f.raw_body.clone())),
                _ => None,
            })
            .collect();
        let ancestors = pins::ancestors(&nb_dir);
        let locals = local::Locals::new(&nb_dir, &sys_paths, &written, &ancestors);
        Ctx {
            nb,
            facts,
            nb_dir,
            minor: stdlib::minor(python),
            env,
            env_shown,
            pins,
            locals,
            unpinned: BTreeSet::new(),
            removed_seen: HashSet::new(),
            rejected_seen: HashSet::new(),
            diags,
            task_names: Vec::new(),
        }
    }

    fn task_name(&self, t: usize) -> String {
        self.task_names
            .get(t)
            .cloned()
            .unwrap_or_else(|| format!("#{t}"))
    }

    /// The requirement for distribution `dist`, pinned by precedence.
    fn requirement(
        &self,
        dist: &str,
        extras: &str,
        explicit: Option<&Spec>,
        name_source: String,
        source: String,
    ) -> Requirement {
        let (line, pin_source) = if let Some(s) = explicit.filter(|s| !s.version.is_empty()) {
            (s.line(), name_source.clone())
        } else if let Some(p) = self.pins.get(dist) {
            let extras = if extras.is_empty() {
                p.extras.as_str()
            } else {
                extras
            };
            (format!("{dist}{extras}{}", p.version), p.source.clone())
        } else if let Some(d) = self
            .env
            .as_ref()
            .and_then(|e| e.dist(dist))
            .filter(|d| !d.version.is_empty())
        {
            (
                format!("{dist}{extras}=={}", d.version),
                format!("installed in {}", self.env_shown),
            )
        } else {
            (format!("{dist}{extras}"), "unpinned".to_string())
        };
        Requirement {
            line,
            name: dist.to_string(),
            source,
            name_source,
            pin_source,
        }
    }

    fn task(
        &mut self,
        input: &TaskInput,
    ) -> (
        BTreeMap<String, Requirement>,
        BTreeMap<String, Requirement>,
        BTreeSet<String>,
    ) {
        let mut required: BTreeMap<String, Requirement> = BTreeMap::new();
        let mut optional: BTreeMap<String, Requirement> = BTreeMap::new();
        let mut locals: BTreeSet<String> = BTreeSet::new();

        // Explicit installs.
        let mut explicit: Vec<(Spec, usize, String)> = Vec::new();
        let mut cells: Vec<usize> = input.prelude_cells.clone();
        cells.extend(&input.cells);
        for &c in &cells {
            for (shown, cmd) in self.install_commands(c) {
                let inst = pip::parse_install(cmd.tool, &cmd.args);
                for f in inst.files.iter() {
                    let mut specs = Vec::new();
                    let mut errors = Vec::new();
                    pip::read_requirements_file(&self.nb_dir.join(f), 0, &mut specs, &mut errors);
                    for e in errors {
                        self.diags.push(self.at_cell(Diagnostic::new(Code::PipFileMissing, &self.nb.path, format!("`{shown} -r {f}`: {e}")), c).with_help("the file's requirements are missing from the task; put the file next to the notebook"));
                    }
                    explicit.extend(specs.into_iter().map(|s| (s, c, shown.clone())));
                }
                // Reported once per cell and word: a prelude cell is read for every task.
                for (word, why) in inst.rejected {
                    if self.rejected_seen.insert((c, word.clone())) {
                        self.diags.push(self.at_cell(Diagnostic::new(Code::NotARequirement, &self.nb.path, format!("`{shown}` argument `{word}` is not a requirement: {why}")), c).with_help("it is left out of requirements.txt; write the requirement itself (`name==version`), or list it in a requirements file next to the notebook"));
                    }
                }
                explicit.extend(inst.specs.into_iter().map(|s| (s, c, shown.clone())));
            }
        }
        for (s, c, shown) in &explicit {
            if let std::collections::btree_map::Entry::Vacant(e) = required.entry(s.key()) {
                e.insert(self.requirement(
                    &s.name,
                    &s.extras,
                    Some(s),
                    shown.clone(),
                    format!("{shown} in cell {c}"),
                ));
            }
        }

        // Imports, and the imports of the local modules they reach.
        let mut queue: VecDeque<(Import, Option<String>)> =
            input.imports.iter().cloned().map(|i| (i, None)).collect();
        for &c in &cells {
            if self
                .facts
                .get(c)
                .and_then(|f| f.as_ref())
                .is_some_and(|f| f.syntax_error.is_some())
            {
                queue.extend(
                    fallback_imports(&self.nb.cells[c].source)
                        .into_iter()
                        .map(|i| (i, None)),
                );
            }
        }
        let mut parsed: HashSet<String> = HashSet::new();
        while let Some((imp, via)) = queue.pop_front() {
            if imp.type_checking || imp.module.starts_with('.') || imp.module.is_empty() {
                continue;
            }
            let top = imp.module.split('.').next().unwrap_or_default().to_string();
            if top == "__future__" || stdlib::is_stdlib(&top, self.minor) {
                continue;
            }
            if let Some(found) = self.locals.find(&imp.module, &imp.names) {
                locals.insert(found.copy.clone());
                for ((file, src), pkg) in found.files.iter().zip(&found.packages) {
                    if parsed.insert(file.clone()) {
                        for mut sub in local::file_imports(src, pkg) {
                            sub.optional |= imp.optional;
                            queue.push_back((sub, Some(file.clone())));
                        }
                    }
                }
                continue;
            }
            let shown = match &via {
                Some(f) => format!("import {} in {f}", imp.module),
                None => format!("import {}", imp.module),
            };
            if let Some(r) = stdlib::removed(&top, self.minor) {
                self.report_removed(&top, r);
                if let Some(b) = r.backport {
                    let r = self.requirement(
                        b,
                        "",
                        None,
                        format!(
                            "backport of `{top}`, removed from the standard library in Python {}",
                            r.removed_in
                        ),
                        shown,
                    );
                    let target = if imp.optional {
                        &mut optional
                    } else {
                        &mut required
                    };
                    target.entry(normalize(b)).or_insert(r);
                }
                continue;
            }
            let in_env = self
                .env
                .as_ref()
                .is_some_and(|e| e.provider(&imp.module).is_some());
            if let Some(py3) = stdlib::python2(&top).filter(|_| !in_env) {
                // `try: import cPickle / except ImportError: import pickle` is the usual
                // Python 2/3 fallback: nothing to report.
                if !imp.optional {
                    self.report_python2(&top, py3);
                }
                continue;
            }
            let candidates: Vec<String> = if imp.names.is_empty() {
                vec![imp.module.clone()]
            } else {
                imp.names
                    .iter()
                    .map(|n| format!("{}.{n}", imp.module))
                    .collect()
            };
            for m in candidates {
                let (dist, name_source, spec) = self.name_for(&m, &explicit);
                if name_source == "module name" && stdlib::is_generated_protobuf(&m) {
                    continue;
                }
                let key = normalize(&dist);
                if required.contains_key(&key) || (imp.optional && optional.contains_key(&key)) {
                    continue;
                }
                let r = self.requirement(&dist, "", spec.as_ref(), name_source, shown.clone());
                if imp.optional {
                    optional.insert(key, r);
                } else {
                    required.insert(key, r);
                }
            }
        }
        optional.retain(|k, _| !required.contains_key(k));
        (required, optional, locals)
    }

    /// The distribution for module `m`, why, and the explicit install that provides it.
    fn name_for(
        &self,
        m: &str,
        explicit: &[(Spec, usize, String)],
    ) -> (String, String, Option<Spec>) {
        let row = names::lookup(m);
        for (s, _, shown) in explicit {
            let by_env = self.env.as_ref().is_some_and(|e| e.provides(&s.name, m));
            let by_table = row.is_some_and(|r| r.all().any(|d| normalize(d) == s.key()));
            if by_env || by_table || (row.is_none() && names::name_matches(&s.name, m)) {
                return (s.name.clone(), shown.clone(), Some(s.clone()));
            }
        }
        if let Some(d) = self.env.as_ref().and_then(|e| e.provider(m)) {
            return (
                d.name.clone(),
                format!("installed in {}", self.env_shown),
                None,
            );
        }
        if let Some(r) = row {
            return (
                r.dist.to_string(),
                format!("mapping table: {} → {}", r.module, r.dist),
                None,
            );
        }
        if let Some(d) = names::namespace_convention(m) {
            return (d, "namespace package convention".into(), None);
        }
        // PyPI treats `_` and `-` alike; `-` is how distributions are usually written.
        (
            m.split('.').next().unwrap_or(m).replace('_', "-"),
            "module name".into(),
            None,
        )
    }

    /// Every install command in cell `c`, with how it is written (`!pip3 install`).
    fn install_commands(&self, c: usize) -> Vec<(String, InstallCommand)> {
        let mut out = Vec::new();
        let Some(Some(f)) = self.facts.get(c) else {
            return out;
        };
        let mut push = |prefix: &str, cmd: &str| {
            for i in install_commands(cmd) {
                out.push((format!("{prefix}{}", i.shown), i));
            }
        };
        if f.syntax_error.is_some() {
            for line in self.nb.cells[c].source.lines() {
                let l = line.trim_start();
                if let Some(cmd) = l.strip_prefix('!') {
                    push("!", cmd);
                } else if let Some(cmd) = l.strip_prefix('%') {
                    push("%", cmd);
                }
            }
            return out;
        }
        for e in &f.escapes {
            match e.kind {
                EscapeKind::Shell | EscapeKind::ShellCapture => push("!", &e.value),
                EscapeKind::Magic => push("%", &e.value),
                _ => {}
            }
        }
        if let Some(CellMagic::Shell { .. }) = &f.cell_magic {
            for line in f.raw_body.lines() {
                push("", line.trim());
            }
        }
        out
    }

    fn at_cell(&self, d: Diagnostic, c: usize) -> Diagnostic {
        match self.nb.cells.get(c) {
            Some(cell) => d.at_cell(cell.index, cell.first_line()),
            None => d,
        }
    }

    fn report_removed(&mut self, top: &str, r: stdlib::Removed) {
        if !self.removed_seen.insert(top.to_string()) {
            return;
        }
        let python = format!("3.{}", self.minor);
        let (help, what) = match r.backport {
            Some(b) => (format!("the task installs `{b}`, which provides it; better, move off `{top}`"), format!("`{b}` is added in its place")),
            None => ("nothing on PyPI replaces it: the task will fail to import it; target an older Python or stop using it".to_string(), "no distribution provides it".to_string()),
        };
        let d = Diagnostic::new(Code::RemovedStdlibModule, &self.nb.path, format!("`{top}` was removed from the standard library in Python {}; the tasks run Python {python}: {what}", r.removed_in)).with_help(help);
        let d = self.at_first_import(d, top);
        self.diags.push(d);
    }

    /// Points `d` at the first import of the top-level module `top`, when there is one.
    fn at_first_import(&self, d: Diagnostic, top: &str) -> Diagnostic {
        let at = self.facts.iter().enumerate().find_map(|(c, f)| {
            f.as_ref()?
                .imports
                .iter()
                .find(|i| i.module.split('.').next() == Some(top))
                .map(|i| (c, i.line))
        });
        match at {
            Some((c, line)) => self.at_cell(d, c).at_line(line, None),
            None => d,
        }
    }

    fn report_python2(&mut self, top: &str, py3: &str) {
        if !self.removed_seen.insert(top.to_string()) {
            return;
        }
        let shown: Vec<String> = py3.split('/').map(|m| format!("`{m}`")).collect();
        let d = Diagnostic::new(
            Code::Python2Module,
            &self.nb.path,
            format!(
                "`{top}` is a Python 2 standard-library module; Python 3 has {} instead",
                shown.join(" and ")
            ),
        )
        .with_help(format!(
            "import {} (no distribution provides `{top}`, so the task would fail to import it)",
            shown.join(" / ")
        ));
        let d = self.at_first_import(d, top);
        self.diags.push(d);
    }

    fn finish(&mut self) {
        if self.unpinned.is_empty() {
            return;
        }
        let names: Vec<&str> = self.unpinned.iter().map(String::as_str).collect();
        self.diags.push(
            Diagnostic::new(Code::UnpinnedRequirement, &self.nb.path, format!("{} unpinned: {}", if names.len() == 1 { "1 requirement is".to_string() } else { format!("{} requirements are", names.len()) }, names.join(", ")))
                .with_help("pin them in a requirements.txt or lock file next to the notebook, or pass --python with the environment the notebook ran in"),
        );
    }
}

/// Imports of a cell that does not parse, found line by line (`import a, b as c`,
/// `from x import y`), so a syntax error elsewhere in the cell loses no requirement.
fn fallback_imports(src: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let l = line.trim_start();
        let indented = l.len() != line.len();
        let mk = |module: &str, names: Vec<String>| Import {
            module: module.to_string(),
            line: i + 1,
            optional: false,
            type_checking: false,
            in_function: indented,
            dynamic: false,
            names,
        };
        if let Some(rest) = l.strip_prefix("import ") {
            for part in rest.split(',') {
                let m = part.split_whitespace().next().unwrap_or("");
                if is_dotted(m) {
                    out.push(mk(m, Vec::new()));
                }
            }
        } else if let Some(rest) = l.strip_prefix("from ") {
            let mut w = rest.split_whitespace();
            if let (Some(m), Some("import")) = (w.next(), w.next()) {
                let names: Vec<String> = w
                    .collect::<Vec<_>>()
                    .join(" ")
                    .split(',')
                    .filter_map(|n| {
                        n.trim()
                            .trim_matches(['(', ')'])
                            .split_whitespace()
                            .next()
                            .map(str::to_string)
                    })
                    .filter(|n| is_dotted(n))
                    .collect();
                if is_dotted(m.trim_start_matches('.')) || m.starts_with('.') {
                    out.push(mk(m, names));
                }
            }
        }
    }
    out
}

fn is_dotted(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}
