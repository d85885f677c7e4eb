//! Calls that make a cell's results differ from run to run: reading the clock, drawing
//! from a generator, reading the network. Recorded as facts; the plan decides, with the
//! notebook's seeds and imports, whether a task's cache key can be trusted.

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;

use super::names::dotted;
use super::LineIndex;

/// A call of a dotted name as written (`np.random.rand`), before import aliases are
/// resolved; only calls whose last part could matter are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectCall {
    pub line: usize,
    pub name: String,
    /// It has arguments (`default_rng(0)` is seeded, `default_rng()` is not).
    pub has_args: bool,
    /// Its first argument is a literal URL (`pd.read_csv("https://...")`).
    pub url_arg: bool,
}

/// Last parts of dotted names that may read the clock, a generator or the network.
const LAST: &[&str] = &[
    "now",
    "today",
    "utcnow",
    "time",
    "time_ns",
    "perf_counter",
    "perf_counter_ns",
    "monotonic",
    "monotonic_ns",
    "uuid1",
    "uuid4",
    "urandom",
    "urlopen",
    "urlretrieve",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "request",
    "stream",
    "Client",
    "Session",
    "default_rng",
    "RandomState",
    "seed",
    "setstate",
    "set_state",
];

const URL_PREFIXES: &[&str] = &[
    "http://", "https://", "ftp://", "s3://", "gs://", "gcs://", "az://", "abfs://",
];

/// Calls in `body` (function bodies included: a function is called later) and the
/// import aliases the statements make (`np` → `numpy`).
pub(super) fn effect_calls(
    body: &[Stmt],
    lines: &LineIndex,
    offset: usize,
) -> (Vec<EffectCall>, Vec<(String, String)>) {
    let mut v = Calls {
        lines,
        offset,
        calls: Vec::new(),
        aliases: Vec::new(),
    };
    for s in body {
        v.visit_stmt(s);
    }
    (v.calls, v.aliases)
}

struct Calls<'l> {
    lines: &'l LineIndex,
    offset: usize,
    calls: Vec<EffectCall>,
    aliases: Vec<(String, String)>,
}

impl<'a> Visitor<'a> for Calls<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(i) => {
                for a in &i.names {
                    let full = a.name.id.to_string();
                    match &a.asname {
                        Some(as_) => self.aliases.push((as_.id.to_string(), full)),
                        None => {
                            let top = full.split('.').next().unwrap_or_default().to_string();
                            self.aliases.push((top.clone(), top));
                        }
                    }
                }
            }
            Stmt::ImportFrom(i) if i.level == 0 => {
                let base = i
                    .module
                    .as_ref()
                    .map(|m| m.id.to_string())
                    .unwrap_or_default();
                for a in i.names.iter().filter(|a| a.name.id.as_str() != "*") {
                    let local = a.asname.as_ref().unwrap_or(&a.name).id.to_string();
                    self.aliases.push((local, format!("{base}.{}", a.name.id)));
                }
            }
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(c) = expr {
            if let Some(name) = dotted(&c.func) {
                let url_arg = c.arguments.args.first().is_some_and(|a| match a {
                    Expr::StringLiteral(s) => {
                        let s = s.value.to_str();
                        URL_PREFIXES.iter().any(|p| s.starts_with(p))
                    }
                    _ => false,
                });
                let last = name.rsplit('.').next().unwrap_or_default();
                let random = name.contains("random") || name.starts_with("uuid");
                if url_arg || random || LAST.contains(&last) {
                    self.calls.push(EffectCall {
                        line: self.lines.line_col(expr.start().to_usize()).0 + self.offset,
                        name,
                        has_args: !c.arguments.args.is_empty() || !c.arguments.keywords.is_empty(),
                        url_arg,
                    });
                }
            }
        }
        visitor::walk_expr(self, expr);
    }
}
