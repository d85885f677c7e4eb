//! Nesting limits on a cell's Python, checked before any recursive walk.
//!
//! ruff's parser grows its own stack, so it parses any depth; but every walk of the
//! syntax tree after it (names, imports, secrets, literals, and dropping the tree)
//! recurses once per level. A cell nested past these limits is reported as not valid
//! Python, as CPython reports it, and its tree is never walked.

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, InterpolatedStringElement, Pattern, Stmt};
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions, Parsed};
use ruff_text_size::Ranged;

/// Brackets (`(`, `[`, `{`) open at once. CPython's tokenizer refuses more ("too many
/// nested parentheses"), so such a cell could not run in a task either.
pub const MAX_BRACKETS: usize = 200;

/// Levels of the syntax tree (statements, expressions, patterns). CPython compiles
/// somewhat deeper expression chains, but no hand-written cell comes near this, and it
/// keeps every walk far inside a thread's stack.
pub const MAX_DEPTH: usize = 256;

/// A cell nested too deeply: where, and what was exceeded.
#[derive(Debug, Clone)]
pub struct TooDeep {
    pub offset: usize,
    pub message: String,
}

/// Parses a cell's Python; a too deep cell is an error and its tree is never walked.
pub fn parse_python(src: &str) -> Result<Parsed<ruff_python_ast::Mod>, TooDeep> {
    // ruff_python_parser 0.0.10 hits an `unreachable!` on some IPython escapes in
    // expression position (found by fuzzing): such a cell is reported as not parseable.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_unchecked(src, ParseOptions::from(Mode::Ipython))
    }))
    .map_err(|_| TooDeep {
        offset: 0,
        message: "the Python parser cannot read this cell's IPython escapes".into(),
    })?;
    match check(&parsed) {
        Ok(()) => Ok(parsed),
        Err(e) => {
            // Dropping the tree recurses as deep as it is nested; the memory is bounded
            // by the cell's size and the process is short-lived, so it is leaked instead.
            std::mem::forget(parsed);
            Err(e)
        }
    }
}

fn check(parsed: &Parsed<ruff_python_ast::Mod>) -> Result<(), TooDeep> {
    let mut open = 0usize;
    for t in parsed.tokens().iter() {
        match t.kind() {
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                open += 1;
                if open > MAX_BRACKETS {
                    return Err(TooDeep {
                        offset: t.start().to_usize(),
                        message: format!(
                            "more than {MAX_BRACKETS} nested brackets (CPython refuses them: too many nested parentheses)"
                        ),
                    });
                }
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => open = open.saturating_sub(1),
            _ => {}
        }
    }
    let Some(module) = parsed.syntax().as_module() else {
        return Ok(());
    };
    let mut d = Depth {
        depth: 0,
        deepest: None,
    };
    for s in &module.body {
        d.visit_stmt(s);
        if d.deepest.is_some() {
            break;
        }
    }
    match d.deepest {
        Some(offset) => Err(TooDeep {
            offset,
            message: format!("the code is nested more than {MAX_DEPTH} levels deep"),
        }),
        None => Ok(()),
    }
}

/// Counts levels and stops descending at the limit, so it recurses at most that deep.
struct Depth {
    depth: usize,
    deepest: Option<usize>,
}

impl Depth {
    fn enter(&mut self, offset: usize) -> bool {
        if self.deepest.is_some() {
            return false;
        }
        if self.depth >= MAX_DEPTH {
            self.deepest = Some(offset);
            return false;
        }
        self.depth += 1;
        true
    }
}

impl<'a> Visitor<'a> for Depth {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if self.enter(stmt.start().to_usize()) {
            visitor::walk_stmt(self, stmt);
            self.depth -= 1;
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if self.enter(expr.start().to_usize()) {
            visitor::walk_expr(self, expr);
            self.depth -= 1;
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        if self.enter(pattern.start().to_usize()) {
            visitor::walk_pattern(self, pattern);
            self.depth -= 1;
        }
    }

    fn visit_interpolated_string_element(&mut self, e: &'a InterpolatedStringElement) {
        if self.enter(e.start().to_usize()) {
            visitor::walk_interpolated_string_element(self, e);
            self.depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(src: &str) -> Option<String> {
        parse_python(src).err().map(|e| e.message)
    }

    #[test]
    fn ordinary_code_passes_and_deep_code_is_refused() {
        let ok = format!(
            "x = {}1{}",
            "[".repeat(MAX_BRACKETS),
            "]".repeat(MAX_BRACKETS)
        );
        assert_eq!(deep(&ok), None);
        assert_eq!(
            deep("def f():\n    if x:\n        return [a + b for a in c]\n"),
            None
        );
        let brackets = format!("x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(deep(&brackets).unwrap().contains("200 nested brackets"));
        // Brackets inside strings and comments are text.
        let text = format!("x = '{}'  # {}", "[".repeat(1000), "(".repeat(1000));
        assert_eq!(deep(&text), None);
        // Chains nest without brackets.
        for src in [
            format!("x = 1{}", " + 1".repeat(10_000)),
            format!("x = {}1", "lambda: ".repeat(10_000)),
            format!("x = {}1", "-".repeat(10_000)),
            format!("x = {}1", "not ".repeat(10_000)),
            format!("x = {}", "1 if y else ".repeat(10_000) + "1"),
        ] {
            let e = deep(&src).unwrap_or_else(|| panic!("{}", &src[..20]));
            assert!(e.contains("256 levels"), "{e}");
        }
        let offset = parse_python(&format!("a = 1\nx = {}1", "-".repeat(1000)))
            .err()
            .unwrap()
            .offset;
        assert!(offset > 6, "{offset}");
    }
}
