//! The shape of each top-level statement that may change process-wide state: an
//! import (what it binds), a call of a dotted name (`np.random.seed(0)`), or a store
//! into a dotted name (`pd.options.display.max_rows = 5`, `plt.rcParams["x"] = 1`).
//! The plan resolves the names through the notebook's imports and decides what each is
//! (plan/build/globals.rs).

use ruff_python_ast::{Expr, Stmt};

use super::names::dotted;

/// One top-level statement of a cell, in the cell's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TopLevel {
    /// `import a.b as x` / `from a import b as c`: (local name, dotted path) per name.
    Import(Vec<(String, String)>),
    /// `a.b.c(...)` as a statement: the callee as written.
    Call(String),
    /// `a.b.c = ...`, `a.b[...] = ...`, `del a.b[...]`: the dotted name stored into (for
    /// a subscript, the subscripted name).
    Store(String),
    #[default]
    Other,
}

/// The form of one top-level statement.
pub(super) fn form(stmt: &Stmt) -> TopLevel {
    match stmt {
        Stmt::Import(i) => TopLevel::Import(
            i.names
                .iter()
                .map(|a| match &a.asname {
                    Some(as_) => (as_.id.to_string(), a.name.id.to_string()),
                    None => {
                        let top = a.name.id.split('.').next().unwrap_or_default();
                        (top.to_string(), top.to_string())
                    }
                })
                .collect(),
        ),
        Stmt::ImportFrom(i) if i.level == 0 => {
            let base = i
                .module
                .as_ref()
                .map(|m| m.id.to_string())
                .unwrap_or_default();
            TopLevel::Import(
                i.names
                    .iter()
                    .filter(|a| a.name.id.as_str() != "*")
                    .map(|a| {
                        let local = a.asname.as_ref().unwrap_or(&a.name).id.to_string();
                        (local, format!("{base}.{}", a.name.id))
                    })
                    .collect(),
            )
        }
        Stmt::Expr(e) => match &*e.value {
            Expr::Call(c) => dotted(&c.func).map_or(TopLevel::Other, TopLevel::Call),
            _ => TopLevel::Other,
        },
        Stmt::Assign(a) => a
            .targets
            .iter()
            .find_map(stored)
            .map_or(TopLevel::Other, TopLevel::Store),
        Stmt::AugAssign(a) => stored(&a.target).map_or(TopLevel::Other, TopLevel::Store),
        Stmt::Delete(d) => d
            .targets
            .iter()
            .find_map(stored)
            .map_or(TopLevel::Other, TopLevel::Store),
        _ => TopLevel::Other,
    }
}

/// The dotted name an assignment target stores into (a plain name is a binding, not a
/// store into shared state).
fn stored(target: &Expr) -> Option<String> {
    match target {
        Expr::Attribute(_) => dotted(target),
        Expr::Subscript(s) => dotted(&s.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forms the cell analysis records; none when the cell does not parse.
    fn forms(src: &str) -> Vec<TopLevel> {
        super::super::analyse_cell(src)
            .stmts
            .into_iter()
            .map(|s| s.form)
            .collect()
    }

    #[test]
    fn imports_calls_and_stores() {
        let got = forms(
            "import numpy as np, os.path\nfrom sklearn import set_config as sc\nnp.random.seed(0)\n\
             pd.options.display.max_rows = 5\nplt.rcParams['figure.dpi'] = 80\ndel os.environ['X']\n\
             x = 1\nf()(1)\nfrom . import local\nfrom m import *",
        );
        assert_eq!(
            got,
            vec![
                TopLevel::Import(vec![
                    ("np".into(), "numpy".into()),
                    ("os".into(), "os".into())
                ]),
                TopLevel::Import(vec![("sc".into(), "sklearn.set_config".into())]),
                TopLevel::Call("np.random.seed".into()),
                TopLevel::Store("pd.options.display.max_rows".into()),
                TopLevel::Store("plt.rcParams".into()),
                TopLevel::Store("os.environ".into()),
                TopLevel::Other,
                TopLevel::Other,
                TopLevel::Other,
                TopLevel::Import(vec![]),
            ]
        );
    }

    #[test]
    fn nothing_for_a_cell_that_does_not_parse() {
        assert!(forms("np.random.seed(0\n").is_empty());
    }
}
