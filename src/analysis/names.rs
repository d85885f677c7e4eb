//! Name binding and reading for one top-level statement, with Python's scoping rules
//! (function locals, class bodies, comprehensions, lambdas, `global`).

use std::collections::{BTreeSet, HashSet};

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ExprContext, IpyEscapeKind, Stmt};
use ruff_text_size::Ranged;

use super::magics::{classify_line_magic, parse_pip_args, strip_magic_options, LineMagic};
use super::{Escape, EscapeKind, Import, LineIndex};

#[derive(Default)]
pub(super) struct StmtResult {
    pub(super) binds: BTreeSet<String>,
    pub(super) reads: BTreeSet<String>,
    /// Module-level names the statement may change in place (see [`Names::mutate`]).
    pub(super) mutates: BTreeSet<String>,
    /// Module-level names its function bodies may change, when they are called.
    pub(super) deferred_mutates: BTreeSet<String>,
    pub(super) deferred: BTreeSet<String>,
    pub(super) imports: Vec<Import>,
    pub(super) escapes: Vec<Escape>,
    pub(super) pip_installs: Vec<(usize, String)>,
    pub(super) unknown_magics: Vec<(usize, String)>,
    pub(super) unserialisable: Vec<(String, &'static str)>,
    pub(super) sys_paths: Vec<String>,
    /// `from M import *` at the cell's top level.
    pub(super) star_import: Option<String>,
    pub(super) extension_magics: Vec<(usize, String, &'static str)>,
    pub(super) loaded_extensions: Vec<(usize, String)>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum FrameKind {
    Module,
    Function,
    Class,
    Comprehension,
}

struct Frame {
    kind: FrameKind,
    bound: HashSet<String>,
    globals: HashSet<String>,
}

struct Names<'s> {
    frames: Vec<Frame>,
    out: StmtResult,
    lines: &'s LineIndex,
    line_offset: usize,
    optional: usize,
    type_checking: usize,
    /// When re-parsing a `%time` statement, offsets are relative to this base.
    base: usize,
    /// Escapes nested in a `%time` line are not rewritten separately.
    record_escapes: bool,
    /// Names that hold a part of other names' objects (`for m in models:`,
    /// `m = models['lr']`): changing one changes those. Kept across a cell's statements.
    aliases: &'s mut Aliases,
}

/// Name → the module-level names whose objects it may be a part of.
pub(super) type Aliases = std::collections::HashMap<String, BTreeSet<String>>;

pub(super) fn analyse_stmt(
    stmt: &Stmt,
    _src: &str,
    lines: &LineIndex,
    line_offset: usize,
    aliases: &mut Aliases,
) -> StmtResult {
    let mut n = Names {
        frames: vec![Frame {
            kind: FrameKind::Module,
            bound: HashSet::new(),
            globals: HashSet::new(),
        }],
        out: StmtResult::default(),
        lines,
        line_offset,
        optional: 0,
        type_checking: 0,
        base: 0,
        record_escapes: true,
        aliases,
    };
    n.visit_stmt(stmt);
    n.out
}

impl Names<'_> {
    fn line(&self, offset: usize) -> usize {
        self.lines.line_col(self.base + offset).0 + self.line_offset
    }

    fn in_function(&self) -> bool {
        self.frames.iter().any(|f| f.kind == FrameKind::Function)
    }

    fn load(&mut self, name: &str) {
        let innermost = self.frames.len() - 1;
        for (i, f) in self.frames.iter().enumerate().rev() {
            // A class body's names are visible only inside that body, not in its methods.
            if f.kind == FrameKind::Class && i != innermost {
                continue;
            }
            if f.bound.contains(name) && !f.globals.contains(name) {
                return;
            }
            if f.globals.contains(name) {
                break;
            }
        }
        if self.in_function() {
            self.out.deferred.insert(name.to_string());
        } else {
            self.out.reads.insert(name.to_string());
        }
    }

    /// The statement may change the object `name` holds, if it is a module-level name; in
    /// a function body, when the function is called.
    fn mutate(&mut self, name: &str) {
        let deferred = self.in_function();
        let out = if deferred {
            &mut self.out.deferred_mutates
        } else {
            &mut self.out.mutates
        };
        if let Some(owners) = self.aliases.get(name) {
            out.extend(owners.iter().cloned());
        }
        let innermost = self.frames.len() - 1;
        for (i, f) in self.frames.iter().enumerate().rev() {
            match f.kind {
                FrameKind::Module => break,
                FrameKind::Class if i != innermost => continue,
                _ if f.globals.contains(name) => break,
                _ if f.bound.contains(name) => return,
                _ => {}
            }
        }
        out.insert(name.to_string());
    }

    /// `target` now holds parts of what `source` reaches (loop variables, `a = b[i]`).
    fn alias(&mut self, target: &Expr, source: &Expr) {
        let mut owners = BTreeSet::new();
        part_roots(source, &mut owners, 0);
        for o in owners.clone() {
            if let Some(more) = self.aliases.get(&o) {
                owners.extend(more.iter().cloned());
            }
        }
        if owners.is_empty() {
            return;
        }
        let mut names = Vec::new();
        target_names(target, &mut names, 0);
        for n in names {
            self.aliases
                .entry(n)
                .or_default()
                .extend(owners.iter().cloned());
        }
    }

    /// `NAME[..] = `, `NAME.a.b = `, `del NAME[..]`: the root name of the target.
    fn mutate_root(&mut self, expr: &Expr) {
        if let Some(n) = root_name(expr) {
            self.mutate(n);
        }
    }

    /// A call may change its receiver (`NAME.method(...)`) and every value passed to it
    /// (`f(NAME)`), unless it is one that only reads (see [`reads_only`]).
    fn note_call_mutations(&mut self, call: &ast::ExprCall) {
        let inplace = call
            .arguments
            .keywords
            .iter()
            .any(|k| k.arg.as_ref().is_some_and(|a| a.id.as_str() == "inplace"));
        if !inplace && reads_only(&call.func) {
            return;
        }
        if let Expr::Attribute(a) = &*call.func {
            self.mutate_root(&a.value);
            if ARGS_KEPT_METHODS.contains(&a.attr.id.as_str()) {
                return;
            }
        }
        for arg in &call.arguments.args {
            let arg = match arg {
                Expr::Starred(s) => &*s.value,
                other => other,
            };
            self.mutate_root(arg);
        }
        for k in &call.arguments.keywords {
            self.mutate_root(&k.value);
        }
    }

    fn store(&mut self, name: &str) {
        let frame = self.frames.last_mut().expect("module frame");
        match frame.kind {
            FrameKind::Module => {
                frame.bound.insert(name.to_string());
                self.out.binds.insert(name.to_string());
            }
            FrameKind::Function if frame.globals.contains(name) => {
                self.out.binds.insert(name.to_string());
            }
            _ => {
                frame.bound.insert(name.to_string());
            }
        }
    }

    fn import(&mut self, module: String, offset: usize, dynamic: bool, names: Vec<String>) {
        let line = self.line(offset);
        self.out.imports.push(Import {
            module,
            line,
            optional: self.optional > 0,
            type_checking: self.type_checking > 0,
            in_function: self.in_function(),
            dynamic,
            names,
        });
    }

    fn with_frame(
        &mut self,
        kind: FrameKind,
        bound: HashSet<String>,
        globals: HashSet<String>,
        f: impl FnOnce(&mut Self),
    ) {
        self.frames.push(Frame {
            kind,
            bound,
            globals,
        });
        f(self);
        self.frames.pop();
    }

    fn escape(
        &mut self,
        kind: IpyEscapeKind,
        value: &str,
        start: usize,
        end: usize,
        in_expr: bool,
    ) {
        let line = self.line(start);
        let value = value.to_string();
        let ekind = match kind {
            IpyEscapeKind::Shell => EscapeKind::Shell,
            IpyEscapeKind::ShCap => EscapeKind::ShellCapture,
            IpyEscapeKind::Magic | IpyEscapeKind::Magic2 => EscapeKind::Magic,
            IpyEscapeKind::Help | IpyEscapeKind::Help2 => EscapeKind::Help,
            _ => EscapeKind::Other,
        };
        match ekind {
            EscapeKind::Shell | EscapeKind::ShellCapture => {
                if let Some(args) = parse_pip_args(&value) {
                    self.out.pip_installs.push((line, args.join(" ")));
                }
                for var in shell_interpolations(&value) {
                    self.load(&var);
                }
            }
            EscapeKind::Magic => {
                let name = value.split_whitespace().next().unwrap_or("").to_string();
                match classify_line_magic(&name) {
                    LineMagic::Install => {
                        if let Some(args) = parse_pip_args(&value) {
                            self.out.pip_installs.push((line, args.join(" ")));
                        }
                    }
                    LineMagic::Time => {
                        let rest = value[name.len()..].trim_start();
                        // Options of %timeit (-n 10 -r 3) come before the statement.
                        let stmt_src = strip_magic_options(rest);
                        self.nested_python(stmt_src);
                    }
                    LineMagic::Unknown => self.out.unknown_magics.push((line, format!("%{name}"))),
                    LineMagic::Extension(ext) => {
                        self.out
                            .extension_magics
                            .push((line, format!("%{name}"), ext))
                    }
                    LineMagic::Drop if name == "load_ext" => {
                        for ext in value[name.len()..].split_whitespace() {
                            self.out.loaded_extensions.push((line, ext.to_string()));
                        }
                    }
                    LineMagic::Drop | LineMagic::Runtime => {}
                }
            }
            _ => {}
        }
        if self.record_escapes {
            let indent = self.lines.line_col(self.base + start).1 - 1;
            self.out.escapes.push(Escape {
                start: self.base + start,
                end: self.base + end,
                line,
                kind: ekind,
                value,
                in_expr,
                indent,
            });
        }
    }

    /// Facts of the statement inside `%time stmt`, which runs in the current scope.
    fn nested_python(&mut self, src: &str) {
        // The cell passed the depth check, but this text is parsed on its own.
        let Ok(parsed) = super::parse_python(src) else {
            return;
        };
        if !parsed.errors().is_empty() {
            return;
        }
        let Some(module) = parsed.syntax().as_module() else {
            return;
        };
        let saved = self.record_escapes;
        self.record_escapes = false;
        for s in &module.body {
            self.visit_stmt(s);
        }
        self.record_escapes = saved;
    }

    fn visit_function_like(&mut self, params: Option<&ast::Parameters>, body: FnBody<'_>) {
        let mut locals = HashSet::new();
        let mut globals = HashSet::new();
        if let Some(p) = params {
            for param in p.iter() {
                locals.insert(param.name().id.to_string());
            }
        }
        if let FnBody::Stmts(stmts) = &body {
            let mut c = LocalCollector {
                locals: &mut locals,
                globals: &mut globals,
            };
            for s in *stmts {
                c.visit_stmt(s);
            }
        }
        for g in &globals {
            locals.remove(g);
        }
        self.with_frame(FrameKind::Function, locals, globals, |n| match body {
            FnBody::Stmts(stmts) => {
                for s in stmts {
                    n.visit_stmt(s);
                }
            }
            FnBody::Expr(e) => n.visit_expr(e),
        });
    }

    fn visit_parameter_defaults(&mut self, params: &ast::Parameters) {
        for p in params.iter_non_variadic_params() {
            if let Some(d) = &p.default {
                self.visit_expr(d);
            }
        }
        for p in params.iter() {
            if let Some(a) = p.annotation() {
                self.visit_annotation(a);
            }
        }
    }

    fn comprehension(&mut self, generators: &[ast::Comprehension], elts: &[&Expr]) {
        if let Some(first) = generators.first() {
            self.visit_expr(&first.iter);
        }
        self.with_frame(
            FrameKind::Comprehension,
            HashSet::new(),
            HashSet::new(),
            |n| {
                for (i, g) in generators.iter().enumerate() {
                    if i > 0 {
                        n.visit_expr(&g.iter);
                    }
                    n.alias(&g.target, &g.iter);
                    n.visit_expr(&g.target);
                    for cond in &g.ifs {
                        n.visit_expr(cond);
                    }
                }
                for e in elts {
                    n.visit_expr(e);
                }
            },
        );
    }

    fn note_unserialisable(&mut self, targets: &[Expr], value: &Expr) {
        let what = match value {
            Expr::Generator(_) => Some("a generator"),
            Expr::Call(call) => match dotted(&call.func).as_deref() {
                Some(
                    "open"
                    | "io.open"
                    | "gzip.open"
                    | "bz2.open"
                    | "tempfile.TemporaryFile"
                    | "tempfile.NamedTemporaryFile",
                ) => Some("an open file"),
                Some(f)
                    if f.ends_with(".connect")
                        || f.ends_with("create_engine")
                        || f.ends_with(".cursor") =>
                {
                    Some("a database connection")
                }
                Some(
                    "threading.Lock" | "threading.RLock" | "multiprocessing.Lock" | "socket.socket",
                ) => Some("a lock or socket"),
                _ => None,
            },
            _ => None,
        };
        if let Some(what) = what {
            for t in targets {
                if let Expr::Name(n) = t {
                    self.out.unserialisable.push((n.id.to_string(), what));
                }
            }
        }
    }
}

enum FnBody<'a> {
    Stmts(&'a [Stmt]),
    Expr(&'a Expr),
}

impl<'a> Visitor<'a> for Names<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                for d in &f.decorator_list {
                    self.visit_decorator(d);
                }
                self.visit_parameter_defaults(&f.parameters);
                if let Some(r) = &f.returns {
                    self.visit_annotation(r);
                }
                self.store(&f.name.id);
                self.visit_function_like(Some(&f.parameters), FnBody::Stmts(&f.body));
            }
            Stmt::ClassDef(c) => {
                for d in &c.decorator_list {
                    self.visit_decorator(d);
                }
                if let Some(args) = &c.arguments {
                    self.visit_arguments(args);
                }
                self.with_frame(FrameKind::Class, HashSet::new(), HashSet::new(), |n| {
                    for s in &c.body {
                        n.visit_stmt(s);
                    }
                });
                self.store(&c.name.id);
            }
            Stmt::Import(i) => {
                for alias in &i.names {
                    self.import(
                        alias.name.id.to_string(),
                        alias.range().start().to_usize(),
                        false,
                        Vec::new(),
                    );
                    match &alias.asname {
                        Some(as_) => self.store(&as_.id),
                        None => self.store(alias.name.id.split('.').next().unwrap_or_default()),
                    }
                }
            }
            Stmt::ImportFrom(i) => {
                let base = format!(
                    "{}{}",
                    ".".repeat(i.level as usize),
                    i.module.as_ref().map(|m| m.id.as_str()).unwrap_or("")
                );
                let names = i
                    .names
                    .iter()
                    .map(|a| a.name.id.to_string())
                    .filter(|n| n != "*")
                    .collect();
                if i.names.iter().any(|a| a.name.id.as_str() == "*") {
                    self.out.star_import = Some(base.clone());
                }
                self.import(base, i.range().start().to_usize(), false, names);
                for alias in &i.names {
                    if alias.name.id.as_str() != "*" {
                        self.store(alias.asname.as_ref().unwrap_or(&alias.name).id.as_str());
                    }
                }
            }
            Stmt::AugAssign(a) => {
                if let Expr::Name(n) = &*a.target {
                    self.load(&n.id);
                } else {
                    self.visit_expr(&a.target);
                }
                self.visit_expr(&a.value);
                if let Expr::Name(n) = &*a.target {
                    self.store(&n.id);
                }
            }
            Stmt::For(f) => {
                self.alias(&f.target, &f.iter);
                visitor::walk_stmt(self, stmt);
            }
            Stmt::Assign(a) => {
                if matches!(&*a.value, Expr::Subscript(_) | Expr::Attribute(_)) {
                    for t in &a.targets {
                        self.alias(t, &a.value);
                    }
                }
                self.visit_expr(&a.value);
                for t in &a.targets {
                    self.visit_expr(t);
                }
                self.note_unserialisable(&a.targets, &a.value);
            }
            Stmt::Try(t) => {
                let guards_import = t.handlers.iter().any(|h| {
                    let ast::ExceptHandler::ExceptHandler(h) = h;
                    match h.type_.as_deref() {
                        None => true,
                        Some(ty) => mentions_import_error(ty),
                    }
                });
                if guards_import {
                    self.optional += 1;
                }
                self.visit_body(&t.body);
                if guards_import {
                    self.optional -= 1;
                }
                for h in &t.handlers {
                    self.visit_except_handler(h);
                }
                self.visit_body(&t.orelse);
                self.visit_body(&t.finalbody);
            }
            Stmt::If(i) if is_type_checking(&i.test) => {
                self.visit_expr(&i.test);
                self.type_checking += 1;
                self.visit_body(&i.body);
                self.type_checking -= 1;
                for clause in &i.elif_else_clauses {
                    self.visit_elif_else_clause(clause);
                }
            }
            Stmt::IpyEscapeCommand(e) => {
                let r = e.range();
                self.escape(
                    e.kind,
                    &e.value,
                    r.start().to_usize(),
                    r.end().to_usize(),
                    false,
                );
            }
            Stmt::Expr(e) => {
                if let Expr::Call(call) = &*e.value {
                    if let (Some(f), Some(Expr::StringLiteral(s))) =
                        (dotted(&call.func), call.arguments.args.first())
                    {
                        if f == "sys.path.append" || f == "sys.path.insert" {
                            let _ = s;
                        }
                    }
                    if let Some(f) = dotted(&call.func) {
                        let lit = match f.as_str() {
                            "sys.path.append" => call.arguments.args.first(),
                            "sys.path.insert" => call.arguments.args.get(1),
                            _ => None,
                        };
                        if let Some(Expr::StringLiteral(s)) = lit {
                            self.out.sys_paths.push(s.value.to_str().to_string());
                        }
                    }
                }
                visitor::walk_stmt(self, stmt);
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ast::ExceptHandler) {
        let ast::ExceptHandler::ExceptHandler(h) = handler;
        if let Some(t) = &h.type_ {
            self.visit_expr(t);
        }
        if let Some(name) = &h.name {
            self.store(&name.id);
        }
        self.visit_body(&h.body);
    }

    fn visit_pattern(&mut self, pattern: &'a ast::Pattern) {
        visitor::walk_pattern(self, pattern);
        match pattern {
            ast::Pattern::MatchAs(p) => {
                if let Some(n) = &p.name {
                    self.store(&n.id);
                }
            }
            ast::Pattern::MatchStar(p) => {
                if let Some(n) = &p.name {
                    self.store(&n.id);
                }
            }
            ast::Pattern::MatchMapping(p) => {
                if let Some(n) = &p.rest {
                    self.store(&n.id);
                }
            }
            _ => {}
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) => match n.ctx {
                ExprContext::Load | ExprContext::Del => self.load(&n.id),
                ExprContext::Store => self.store(&n.id),
                ExprContext::Invalid => {}
            },
            Expr::Lambda(l) => {
                if let Some(p) = &l.parameters {
                    self.visit_parameter_defaults(p);
                }
                self.visit_function_like(l.parameters.as_deref(), FnBody::Expr(&l.body));
            }
            Expr::ListComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::SetComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::Generator(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::DictComp(c) => match c.key.as_deref() {
                Some(k) => self.comprehension(&c.generators, &[k, &c.value]),
                None => self.comprehension(&c.generators, &[&c.value]),
            },
            Expr::Named(n) => {
                self.visit_expr(&n.value);
                // The walrus binds in the enclosing non-comprehension scope.
                if let Expr::Name(t) = &*n.target {
                    let idx = self
                        .frames
                        .iter()
                        .rposition(|f| f.kind != FrameKind::Comprehension)
                        .unwrap_or(0);
                    let frame = &mut self.frames[idx];
                    match frame.kind {
                        FrameKind::Module => {
                            frame.bound.insert(t.id.to_string());
                            self.out.binds.insert(t.id.to_string());
                        }
                        _ => {
                            frame.bound.insert(t.id.to_string());
                        }
                    }
                }
            }
            Expr::IpyEscapeCommand(e) => {
                let r = e.range();
                self.escape(
                    e.kind,
                    &e.value,
                    r.start().to_usize(),
                    r.end().to_usize(),
                    true,
                );
            }
            Expr::Subscript(ast::ExprSubscript { value, ctx, .. })
            | Expr::Attribute(ast::ExprAttribute { value, ctx, .. })
                if matches!(ctx, ExprContext::Store | ExprContext::Del) =>
            {
                self.mutate_root(value);
                visitor::walk_expr(self, expr);
            }
            Expr::Call(call) => {
                self.note_call_mutations(call);
                if let Some(f) = dotted(&call.func) {
                    if matches!(
                        f.as_str(),
                        "importlib.import_module" | "import_module" | "__import__"
                    ) {
                        if let Some(Expr::StringLiteral(s)) = call.arguments.args.first() {
                            self.import(
                                s.value.to_str().to_string(),
                                call.range().start().to_usize(),
                                true,
                                Vec::new(),
                            );
                        }
                    }
                }
                visitor::walk_expr(self, expr);
            }
            _ => visitor::walk_expr(self, expr),
        }
    }
}

/// Collects the names a function body binds locally (Python decides locality per body).
struct LocalCollector<'c> {
    locals: &'c mut HashSet<String>,
    globals: &'c mut HashSet<String>,
}

impl<'a> Visitor<'a> for LocalCollector<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                self.locals.insert(f.name.id.to_string());
            }
            Stmt::ClassDef(c) => {
                self.locals.insert(c.name.id.to_string());
            }
            Stmt::Global(g) => self
                .globals
                .extend(g.names.iter().map(|n| n.id.to_string())),
            Stmt::Nonlocal(g) => self
                .globals
                .extend(g.names.iter().map(|n| n.id.to_string())),
            Stmt::Import(i) => {
                for a in &i.names {
                    let n = a
                        .asname
                        .as_ref()
                        .map(|x| x.id.to_string())
                        .unwrap_or_else(|| {
                            a.name.id.split('.').next().unwrap_or_default().to_string()
                        });
                    self.locals.insert(n);
                }
            }
            Stmt::ImportFrom(i) => {
                for a in &i.names {
                    self.locals
                        .insert(a.asname.as_ref().unwrap_or(&a.name).id.to_string());
                }
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ast::ExceptHandler) {
        let ast::ExceptHandler::ExceptHandler(h) = handler;
        if let Some(n) = &h.name {
            self.locals.insert(n.id.to_string());
        }
        visitor::walk_except_handler(self, handler);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) if n.ctx == ExprContext::Store => {
                self.locals.insert(n.id.to_string());
            }
            Expr::Lambda(_) => {}
            _ => visitor::walk_expr(self, expr),
        }
    }
}

/// The name at the root of `NAME`, `NAME.a`, `NAME[i].b`: the object a change reaches.
fn root_name(expr: &Expr) -> Option<&str> {
    let mut e = expr;
    loop {
        match e {
            Expr::Name(n) => return Some(n.id.as_str()),
            Expr::Attribute(a) => e = &a.value,
            Expr::Subscript(s) => e = &s.value,
            _ => return None,
        }
    }
}

/// Names whose objects `expr` yields parts of: `models`, `models['lr']`, `models.items()`,
/// `zip(xs, ys)`, `enumerate(models.values())`. Bounded like every walk (MAX_DEPTH).
fn part_roots(expr: &Expr, out: &mut BTreeSet<String>, depth: usize) {
    if depth > super::MAX_DEPTH {
        return;
    }
    match expr {
        Expr::Name(n) => {
            out.insert(n.id.to_string());
        }
        Expr::Attribute(a) => part_roots(&a.value, out, depth + 1),
        Expr::Subscript(s) => part_roots(&s.value, out, depth + 1),
        Expr::Call(c) => {
            if let Expr::Attribute(a) = &*c.func {
                part_roots(&a.value, out, depth + 1);
            }
            for a in &c.arguments.args {
                part_roots(a, out, depth + 1);
            }
        }
        Expr::Starred(s) => part_roots(&s.value, out, depth + 1),
        Expr::Tuple(t) => t.elts.iter().for_each(|e| part_roots(e, out, depth + 1)),
        Expr::List(t) => t.elts.iter().for_each(|e| part_roots(e, out, depth + 1)),
        _ => {}
    }
}

/// The names an assignment or loop target binds.
fn target_names(expr: &Expr, out: &mut Vec<String>, depth: usize) {
    if depth > super::MAX_DEPTH {
        return;
    }
    match expr {
        Expr::Name(n) => out.push(n.id.to_string()),
        Expr::Starred(s) => target_names(&s.value, out, depth + 1),
        Expr::Tuple(t) => t.elts.iter().for_each(|e| target_names(e, out, depth + 1)),
        Expr::List(t) => t.elts.iter().for_each(|e| target_names(e, out, depth + 1)),
        _ => {}
    }
}

/// Builtins that never change their arguments (iterating builtins such as `list` and
/// `sorted` are here too: they change an iterator passed to them, not a container).
const PURE_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "callable",
    "chr",
    "dict",
    "dir",
    "display",
    "divmod",
    "enumerate",
    "float",
    "format",
    "frozenset",
    "getattr",
    "hasattr",
    "hash",
    "hex",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "len",
    "list",
    "max",
    "min",
    "oct",
    "ord",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
];

/// Methods that only read their receiver and arguments in Python's containers, pandas,
/// NumPy and scikit-learn (unless called with `inplace=`).
const READ_ONLY_METHODS: &[&str] = &[
    "abs",
    "agg",
    "all",
    "any",
    "argmax",
    "argmin",
    "astype",
    "between",
    "clip",
    "copy",
    "corr",
    "count",
    "cov",
    "cumsum",
    "decision_function",
    "describe",
    "diff",
    "drop",
    "drop_duplicates",
    "dropna",
    "duplicated",
    "endswith",
    "equals",
    "explode",
    "fillna",
    "filter",
    "format",
    "get",
    "get_params",
    "groupby",
    "head",
    "idxmax",
    "idxmin",
    "isin",
    "isna",
    "isnull",
    "items",
    "iterrows",
    "itertuples",
    "join",
    "keys",
    "lower",
    "max",
    "mean",
    "median",
    "melt",
    "merge",
    "min",
    "nlargest",
    "notna",
    "notnull",
    "nsmallest",
    "nunique",
    "pct_change",
    "pivot_table",
    "predict",
    "predict_log_proba",
    "predict_proba",
    "quantile",
    "query",
    "rename",
    "replace",
    "reset_index",
    "reshape",
    "round",
    "score",
    "select_dtypes",
    "set_index",
    "shift",
    "sort_index",
    "sort_values",
    "split",
    "startswith",
    "std",
    "strip",
    "sum",
    "tail",
    "to_csv",
    "to_dict",
    "to_frame",
    "to_json",
    "to_list",
    "to_numpy",
    "to_string",
    "tolist",
    "transform",
    "unique",
    "upper",
    "value_counts",
    "values",
    "var",
    "where",
];

/// Methods that change their receiver but not what they are passed (`model.fit(X, y)`,
/// `xs.append(x)`, `ax.plot(v)`).
const ARGS_KEPT_METHODS: &[&str] = &[
    "add",
    "append",
    "bar",
    "extend",
    "fit",
    "fit_predict",
    "fit_transform",
    "hist",
    "imshow",
    "insert",
    "partial_fit",
    "plot",
    "scatter",
    "update",
];

/// A call that changes neither its receiver nor its arguments.
fn reads_only(func: &Expr) -> bool {
    match func {
        Expr::Name(n) => PURE_BUILTINS.contains(&n.id.as_str()),
        Expr::Attribute(a) => READ_ONLY_METHODS.contains(&a.attr.id.as_str()),
        _ => false,
    }
}

/// `a.b.c` for a Name/Attribute chain.
pub(super) fn dotted(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Name(n) => Some(n.id.to_string()),
        Expr::Attribute(a) => dotted(&a.value).map(|base| format!("{base}.{}", a.attr.id)),
        _ => None,
    }
}

fn mentions_import_error(ty: &Expr) -> bool {
    match ty {
        Expr::Tuple(t) => t.elts.iter().any(mentions_import_error),
        other => matches!(
            dotted(other).as_deref(),
            Some("ImportError" | "ModuleNotFoundError" | "Exception" | "BaseException")
        ),
    }
}

fn is_type_checking(test: &Expr) -> bool {
    matches!(
        dotted(test).as_deref(),
        Some("TYPE_CHECKING" | "typing.TYPE_CHECKING" | "t.TYPE_CHECKING")
    )
}

/// Python names interpolated into a shell line: `$name`, `{expr}` (names only).
fn shell_interpolations(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = cmd.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if i + 1 < bytes.len() && bytes[i + 1] != b'$' && bytes[i + 1] != b'{' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j > start && !bytes[start].is_ascii_digit() {
                    out.push(cmd[start..j].to_string());
                }
                i = j;
            }
            // `$$` is a literal `$`; `${expr}` is `$` then an expression.
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 2,
            b'$' => i += 1,
            b'{' => {
                if let Some(close) = cmd[i + 1..].find('}') {
                    let inner = &cmd[i + 1..i + 1 + close];
                    let head: String = inner
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !head.is_empty() && !head.chars().next().unwrap().is_ascii_digit() {
                        out.push(head);
                    }
                    i += close + 2;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}
