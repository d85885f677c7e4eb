//! Python facts per cell, from a real parser (ruff_python_parser in IPython mode).
//!
//! For every code cell: the names it binds, the names it reads before binding them,
//! its imports (with the context that decides whether they are run-time needs), its
//! IPython escapes (`%magic`, `!shell`) with their byte ranges so task code can rewrite
//! them in place, and a syntax error if the cell is not Python 3. Cell magics
//! (`%%bash`, `%%writefile`, ...) are split off before parsing.

mod builtins;
mod depth;
mod globals;
mod literals;
mod magics;
mod names;
mod nondet;
mod secrets;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use ruff_text_size::Ranged;

pub use builtins::is_builtin;
pub use depth::{caught, in_parser, parse_python, MAX_BRACKETS, MAX_DEPTH};
pub use globals::TopLevel;
pub use literals::{literal_assignments, type_name, NotParameter, MAX_LITERAL_DEPTH};
pub use magics::{
    classify_line_magic, install_commands, parse_pip_args, strip_magic_options, CellMagic,
    InstallCommand, LineMagic, ShellWord,
};
pub use nondet::EffectCall;
pub use secrets::{find_secrets, SecretFinding};

/// An import found in a cell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Import {
    /// The absolute module path (`os.path`, `sklearn.ensemble`); for relative imports
    /// the dots are kept (`.utils`).
    pub module: String,
    /// 1-based line within the cell.
    pub line: usize,
    /// Inside `try: ... except ImportError`.
    pub optional: bool,
    /// Inside `if TYPE_CHECKING:`.
    pub type_checking: bool,
    /// Inside a function body: needed only by tasks that call it.
    pub in_function: bool,
    /// `importlib.import_module("x")` or `__import__("x")`.
    pub dynamic: bool,
    /// For `from M import a, b`: `a`, `b` (each may be a submodule, e.g. `from google.cloud
    /// import storage`, which decides the distribution of a namespace package).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// A line magic or shell escape (`%time x = f()`, `!ls`, `files = !ls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    /// Byte range in [`CellFacts::python`].
    pub start: usize,
    pub end: usize,
    pub line: usize,
    /// The escape character(s): `!`, `!!`, `%`, `%%`, `?`, `??`, ...
    pub kind: EscapeKind,
    /// The text after the escape characters.
    pub value: String,
    /// Part of an expression (`x = !ls`), not a statement.
    pub in_expr: bool,
    /// For statement escapes: the column where the statement starts.
    pub indent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeKind {
    Shell,
    ShellCapture,
    Magic,
    Help,
    Other,
}

/// A top-level statement of a cell.
#[derive(Debug, Clone, Default)]
pub struct StmtFacts {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub binds: BTreeSet<String>,
    /// Names read before this statement binds them (function-body globals included).
    pub reads: BTreeSet<String>,
    /// Module-level names whose object the statement may change in place: subscript or
    /// attribute assignment or `del` (`df['a'] = ...`, `m.x = 1`, `del d[k]`), augmented
    /// assignment to one (`d[k] += 1`), a method call on it (`xs.append(5)`, `model.fit(X)`),
    /// or passing it to a call (`f(xs)`). Calls that only read are left out
    /// (`print`, `len`, `df.head()`, `model.predict(X)`, but not with `inplace=`).
    pub mutates: BTreeSet<String>,
    /// Module-level names the functions (and classes, lambdas) this statement binds may
    /// change in place when called (`def f(): df['a'] = 1`).
    pub effects: BTreeSet<String>,
    pub is_import: bool,
    /// `from M import *`: M, whose names the plan adds to `binds` when it can read M.
    pub star_import: Option<String>,
    /// What the statement may do to process-wide state (globals.rs).
    pub form: TopLevel,
    /// String literals passed as call arguments, in order: the data files a task may
    /// open (deps/files.rs).
    pub call_literals: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SyntaxProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Everything nb2pipe knows about one code cell.
#[derive(Debug, Clone, Default)]
pub struct CellFacts {
    pub cell_magic: Option<CellMagic>,
    /// `%%time` / `%%capture` whose body is itself a cell magic (`%%capture` over
    /// `%%sh`): this is the outer one, [`CellFacts::cell_magic`] the inner.
    pub wrapper: Option<CellMagic>,
    /// `from M import *` of a module nb2pipe cannot read (stdlib, third party): the
    /// names it binds are unknown.
    pub opaque_star: bool,
    /// The Python text that was parsed: the cell, or a Python-bodied cell magic's body.
    pub python: String,
    /// The body of a non-Python cell magic (`%%bash`, `%%writefile`).
    pub raw_body: String,
    /// Lines of the cell before [`CellFacts::python`] starts (1 for `%%time`).
    pub line_offset: usize,
    pub stmts: Vec<StmtFacts>,
    pub binds: BTreeSet<String>,
    pub reads: BTreeSet<String>,
    /// Every statement's [`StmtFacts::mutates`].
    pub mutates: BTreeSet<String>,
    pub imports: Vec<Import>,
    pub escapes: Vec<Escape>,
    /// Arguments of each `%pip install` / `!pip install` line, with the line.
    pub pip_installs: Vec<(usize, String)>,
    /// Unknown magics `(line, name)`.
    pub unknown_magics: Vec<(usize, String)>,
    /// Magics of an IPython extension `(line, name, extension)`: known once the
    /// notebook has loaded the extension.
    pub extension_magics: Vec<(usize, String, &'static str)>,
    /// `%load_ext NAME` `(line, name)`.
    pub loaded_extensions: Vec<(usize, String)>,
    /// Names bound to something that cannot be pickled, with what it is.
    pub unserialisable: Vec<(String, &'static str)>,
    /// Folders added with `sys.path.append/insert("literal")`.
    pub sys_paths: Vec<String>,
    pub syntax_error: Option<SyntaxProblem>,
    /// Calls that may read the clock, a generator or the network (nondet.rs), and the
    /// import aliases the cell makes, for the plan to resolve them.
    pub effect_calls: Vec<EffectCall>,
    pub aliases: Vec<(String, String)>,
}

/// Analyses one code cell's source. Never fails: problems are facts.
pub fn analyse_cell(source: &str) -> CellFacts {
    let mut facts = CellFacts::default();
    // IPython removes the first line's indentation from every line (pasted code),
    // before it looks for a cell magic; line numbers do not move.
    let source = dedent(source);
    let (mut magic, mut body, mut offset) = magics::split_cell_magic(&source);
    // `%%time` and `%%capture` run their body as a cell, which may be a cell magic.
    if magic.as_ref().is_some_and(CellMagic::body_is_python) {
        if let (Some(inner), inner_body, inner_offset) = magics::split_cell_magic(body) {
            facts.wrapper = magic.take();
            magic = Some(inner);
            body = inner_body;
            offset += inner_offset;
        }
    }
    facts.line_offset = offset;
    if let Some(CellMagic::Capture { var: Some(v) }) = &facts.wrapper {
        facts.binds.insert(v.clone());
    }
    if let Some(m) = &magic {
        if !m.body_is_python() {
            if let CellMagic::Unknown { name } = m {
                facts.unknown_magics.push((1, format!("%%{name}")));
            }
            facts.raw_body = body.to_string();
            facts.cell_magic = magic;
            return facts;
        }
        if let CellMagic::Capture { var: Some(v) } = m {
            facts.binds.insert(v.clone());
        }
    }
    facts.cell_magic = magic;
    facts.python = body.to_string();
    analyse_python(&mut facts);
    facts
}

fn analyse_python(facts: &mut CellFacts) {
    let src = facts.python.clone();
    let lines = LineIndex::new(&src);
    // CPython refuses a NUL anywhere in source, so the task could not run the cell.
    if let Some(at) = src.find('\0') {
        let (line, column) = lines.line_col(at);
        facts.syntax_error = Some(SyntaxProblem {
            line: line + facts.line_offset,
            column,
            message: "source code cannot contain a NUL character".into(),
        });
        return;
    }
    let parsed = match parse_python(&src) {
        Ok(p) => p,
        Err(e) => {
            let (line, column) = lines.line_col(e.offset);
            facts.syntax_error = Some(SyntaxProblem {
                line: line + facts.line_offset,
                column,
                message: e.message,
            });
            return;
        }
    };
    if let Some(err) = parsed.errors().first() {
        let (line, column) = lines.line_col(err.location.start().to_usize());
        facts.syntax_error = Some(SyntaxProblem {
            line: line + facts.line_offset,
            column,
            message: err.error.to_string(),
        });
        return;
    }
    let module = parsed
        .syntax()
        .as_module()
        .expect("Ipython mode parses a module");
    (facts.effect_calls, facts.aliases) =
        nondet::effect_calls(&module.body, &lines, facts.line_offset);
    let mut bound_so_far: BTreeSet<String> = facts.binds.clone();
    let mut deferred: BTreeSet<String> = BTreeSet::new();
    let mut aliases = names::Aliases::new();
    for stmt in &module.body {
        let r = names::analyse_stmt(stmt, &src, &lines, facts.line_offset, &mut aliases);
        let start = stmt.range().start().to_usize();
        let mut reads = r.reads.clone();
        reads.extend(r.deferred.iter().cloned());
        for name in &r.reads {
            if !bound_so_far.contains(name) {
                facts.reads.insert(name.clone());
            }
        }
        deferred.extend(r.deferred.iter().cloned());
        bound_so_far.extend(r.binds.iter().cloned());
        facts.binds.extend(r.binds.iter().cloned());
        facts.mutates.extend(r.mutates.iter().cloned());
        facts.imports.extend(r.imports);
        facts.escapes.extend(r.escapes);
        facts.pip_installs.extend(r.pip_installs);
        facts.unknown_magics.extend(r.unknown_magics);
        facts.extension_magics.extend(r.extension_magics);
        facts.loaded_extensions.extend(r.loaded_extensions);
        facts.unserialisable.extend(r.unserialisable);
        facts.sys_paths.extend(r.sys_paths);
        facts.stmts.push(StmtFacts {
            start,
            end: stmt.range().end().to_usize(),
            line: lines.line_col(start).0 + facts.line_offset,
            is_import: matches!(
                stmt,
                ruff_python_ast::Stmt::Import(_) | ruff_python_ast::Stmt::ImportFrom(_)
            ),
            binds: r.binds,
            reads,
            mutates: r.mutates,
            effects: r.deferred_mutates,
            star_import: r.star_import,
            form: globals::form(stmt),
            call_literals: literals::call_literals(stmt),
        });
    }
    // A function body's globals are read when it is called, by then the cell has run.
    for name in deferred {
        if !facts.binds.contains(&name) {
            facts.reads.insert(name);
        }
    }
    facts.reads.retain(|n| !is_builtin(n));
    for s in &mut facts.stmts {
        s.reads.retain(|n| !is_builtin(n));
    }
}

/// IPython's `leading_indent` (`textwrap.dedent`): the whitespace every non-blank line
/// starts with is removed, and blank lines are emptied; line numbers do not move.
fn dedent(source: &str) -> std::borrow::Cow<'_, str> {
    let mut margin: Option<&str> = None;
    for l in source.lines().filter(|l| !l.trim().is_empty()) {
        let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        margin = Some(match margin {
            None => indent,
            Some(m) => {
                let common = m
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &m[..common]
            }
        });
    }
    let margin = margin.unwrap_or("");
    if margin.is_empty() {
        return source.into();
    }
    source
        .split_inclusive('\n')
        .map(|l| {
            if l.trim().is_empty() {
                &l[l.trim_end_matches(['\n', '\r']).len()..]
            } else {
                l.strip_prefix(margin).unwrap_or(l)
            }
        })
        .collect::<String>()
        .into()
}

/// Byte offset → 1-based (line, column).
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset);
        (line, offset - self.starts[line - 1] + 1)
    }
}
