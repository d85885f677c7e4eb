//! Nesting limits on a cell's Python, checked before any recursive walk.
//!
//! ruff's parser grows its own stack as it descends, so it parses any depth; but every
//! walk of the syntax tree after it (names, imports, secrets, literals, and dropping the
//! tree) recurses once per level. A cell nested past these limits is reported as not
//! valid Python, as CPython reports it, and its tree is never walked.
//!
//! One recursion inside the parser does not grow the stack: marking an assignment
//! target's names (`set_expr_ctx`) descends nested lists, tuples, starred and unary
//! expressions plainly, and a target nested some 250,000 levels overflowed the main
//! thread's 8 MiB stack (found by fuzzing). The cell's tokens bound that chain, so a
//! cell is lexed before it is parsed when it could nest that far.

use std::cell::{Cell, RefCell};

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::visitor::transformer::{self, Transformer};
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, AtomicNodeIndex};
use ruff_python_ast::{Expr, InterpolatedStringElement, Pattern, Stmt};
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions, Parsed};
use ruff_text_size::{Ranged, TextRange};

/// Brackets (`(`, `[`, `{`) open at once. CPython's tokenizer refuses more ("too many
/// nested parentheses"), so such a cell could not run in a task either.
pub const MAX_BRACKETS: usize = 200;

/// Levels of the syntax tree (statements, expressions, patterns). CPython compiles
/// somewhat deeper expression chains, but no hand-written cell comes near this, and it
/// keeps every walk far inside a thread's stack.
pub const MAX_DEPTH: usize = 256;

/// Brackets and operators a cell's tokens may chain before it is parsed. Valid code
/// past this has more than [`MAX_BRACKETS`] brackets open or, since each operator in a
/// chain is a level of its tree, a tree deeper than [`MAX_DEPTH`]: it is refused after
/// parsing anyway. The parser's unguarded recursion stays within twice this.
const MAX_CHAIN: usize = MAX_BRACKETS + MAX_DEPTH;

/// A cell nested too deeply: where, and what was exceeded.
#[derive(Debug, Clone)]
pub struct TooDeep {
    pub offset: usize,
    pub message: String,
}

thread_local! {
    static IN_PARSER: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a third-party parser under [`caught`] (ruff's in
/// [`parse_python`], pep508_rs for requirement lines), whose panics are caught and
/// reported: a panic hook can keep quiet about them.
pub fn in_parser() -> bool {
    IN_PARSER.with(Cell::get)
}

/// `f()`, or `None` when it panics: for parsers of user input that panic on inputs they
/// should refuse (found by fuzzing).
pub fn caught<T>(f: impl FnOnce() -> T) -> Option<T> {
    let outer = IN_PARSER.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_PARSER.with(|g| g.set(outer));
    r.ok()
}

/// Parses a cell's Python; a too deep cell is an error and its tree is never walked.
pub fn parse_python(src: &str) -> Result<Parsed<ruff_python_ast::Mod>, TooDeep> {
    match chain_fits(src) {
        Some(true) => parse_checked(src),
        Some(false) => Err(too_long_a_chain(src)),
        None => Err(unreadable_escapes()),
    }
}

fn parse_checked(src: &str) -> Result<Parsed<ruff_python_ast::Mod>, TooDeep> {
    parse_ipython(src)
        .ok_or_else(unreadable_escapes)
        .and_then(checked)
}

/// ruff's parse of a cell; `None` when it panics: ruff_python_parser 0.0.10 hits an
/// `unreachable!` on some IPython escapes in expression position (found by fuzzing).
fn parse_ipython(src: &str) -> Option<Parsed<ruff_python_ast::Mod>> {
    caught(|| parse_unchecked(src, ParseOptions::from(Mode::Ipython)))
}

/// The tree if it is within the limits; otherwise it is taken apart without walking it.
fn checked(parsed: Parsed<ruff_python_ast::Mod>) -> Result<Parsed<ruff_python_ast::Mod>, TooDeep> {
    match check(&parsed) {
        Ok(()) => Ok(parsed),
        Err(e) => {
            drop_flat(parsed.into_syntax());
            Err(e)
        }
    }
}

fn unreadable_escapes() -> TooDeep {
    TooDeep {
        offset: 0,
        message: "the Python parser cannot read this cell's IPython escapes".into(),
    }
}

/// Whether no chain of brackets and operators in the cell's tokens is longer than
/// [`MAX_CHAIN`]; `None` when the lexer panics. A chain: each open bracket, plus the
/// operators (`-`, `+`, `~`, `not`, `*`) right before the next bracket or the end of
/// the chain. A bracket closes its own kind only: the parser may not.
fn chain_fits(src: &str) -> Option<bool> {
    // Each link is at least a byte of one of these, so most cells need no lexing.
    let b = src.as_bytes();
    let links = b
        .iter()
        .enumerate()
        .filter(|&(i, c)| {
            matches!(c, b'(' | b'[' | b'{' | b'-' | b'+' | b'~' | b'*')
                || (*c == b'n' && b[i + 1..].starts_with(b"ot"))
        })
        .count();
    if links <= MAX_CHAIN {
        return Some(true);
    }
    caught(|| {
        let mut lexer = ruff_python_parser::lexer::lex(src, Mode::Ipython);
        // The chain's length at each open bracket, and the bracket.
        let mut open: Vec<(usize, TokenKind)> = Vec::new();
        let (mut base, mut run) = (0usize, 0usize);
        loop {
            let kind = lexer.next_token();
            match kind {
                TokenKind::EndOfFile => return true,
                TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                    open.push((base, kind));
                    base += run + 1;
                    run = 0;
                }
                TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                    let opener = match kind {
                        TokenKind::Rpar => TokenKind::Lpar,
                        TokenKind::Rsqb => TokenKind::Lsqb,
                        _ => TokenKind::Lbrace,
                    };
                    if open.last().is_some_and(|&(_, k)| k == opener) {
                        base = open.pop().map_or(0, |(b, _)| b);
                    }
                    run = 0;
                }
                TokenKind::Minus
                | TokenKind::Plus
                | TokenKind::Tilde
                | TokenKind::Not
                | TokenKind::Star => run += 1,
                TokenKind::Comment | TokenKind::NonLogicalNewline => {}
                _ => run = 0,
            }
            if base + run > MAX_CHAIN {
                return false;
            }
        }
    })
}

/// The diagnostic for a cell whose chain is too long, as the checks after parsing would
/// give it: they run on the longest start of the cell that is safe to parse (the
/// lexer gives no positions), which holds the place where the limit is passed.
fn too_long_a_chain(src: &str) -> TooDeep {
    let (mut fits, mut not) = (0, src.len());
    while not - fits > 1 {
        let mut mid = fits + (not - fits) / 2;
        while !src.is_char_boundary(mid) {
            mid -= 1;
        }
        if mid == fits {
            break;
        }
        if chain_fits(&src[..mid]) == Some(true) {
            fits = mid;
        } else {
            not = mid;
        }
    }
    match parse_ipython(&src[..fits]).map(checked) {
        Some(Err(e)) => e,
        _ => TooDeep {
            offset: fits,
            message: format!("the code is nested more than {MAX_DEPTH} levels deep"),
        },
    }
}

/// Levels a tree keeps when [`drop_flat`] takes it apart; its own walk recurses this deep.
const DROP_LEVELS: usize = 64;

/// Drops a tree of any depth with bounded recursion: the default drop recurses once per
/// level and overflows the stack on a deep cell (leaking it instead grows a long-lived
/// process, such as a kernel with the extension, without bound). Subtrees below
/// [`DROP_LEVELS`] are cut off onto a heap worklist and taken apart the same way.
fn drop_flat(tree: ruff_python_ast::Mod) {
    let cutter = Cutter {
        depth: Cell::new(0),
        cut: RefCell::new(Vec::new()),
    };
    let mut tree = tree;
    match &mut tree {
        ruff_python_ast::Mod::Module(m) => cutter.visit_body(&mut m.body),
        ruff_python_ast::Mod::Expression(e) => cutter.visit_expr(&mut e.body),
    }
    drop(tree);
    loop {
        let Some(mut node) = cutter.cut.borrow_mut().pop() else {
            break;
        };
        let _ = match &mut node {
            Cut::Stmt(s) => cutter.walk(|| transformer::walk_stmt(&cutter, s)),
            Cut::Expr(e) => cutter.walk(|| transformer::walk_expr(&cutter, e)),
            Cut::Pattern(p) => cutter.walk(|| transformer::walk_pattern(&cutter, p)),
            Cut::Element(e) => {
                cutter.walk(|| transformer::walk_interpolated_string_element(&cutter, e))
            }
        };
        drop(node);
    }
}

/// A subtree cut off by [`drop_flat`].
enum Cut {
    Stmt(Stmt),
    Expr(Expr),
    Pattern(Pattern),
    Element(InterpolatedStringElement),
}

struct Cutter {
    depth: Cell<usize>,
    cut: RefCell<Vec<Cut>>,
}

impl Cutter {
    /// Runs one level of the walk; false (and nothing run) at the cut-off depth.
    fn walk(&self, f: impl FnOnce()) -> bool {
        let d = self.depth.get();
        if d >= DROP_LEVELS {
            return false;
        }
        self.depth.set(d + 1);
        f();
        self.depth.set(d);
        true
    }
}

fn no_range() -> (AtomicNodeIndex, TextRange) {
    (AtomicNodeIndex::NONE, TextRange::default())
}

impl Transformer for Cutter {
    fn visit_stmt(&self, stmt: &mut Stmt) {
        if !self.walk(|| transformer::walk_stmt(self, stmt)) {
            let (node_index, range) = no_range();
            let s = std::mem::replace(stmt, Stmt::Pass(ast::StmtPass { node_index, range }));
            self.cut.borrow_mut().push(Cut::Stmt(s));
        }
    }

    fn visit_expr(&self, expr: &mut Expr) {
        if !self.walk(|| transformer::walk_expr(self, expr)) {
            let (node_index, range) = no_range();
            let placeholder = Expr::NoneLiteral(ast::ExprNoneLiteral { node_index, range });
            let e = std::mem::replace(expr, placeholder);
            self.cut.borrow_mut().push(Cut::Expr(e));
        }
    }

    fn visit_pattern(&self, pattern: &mut Pattern) {
        if !self.walk(|| transformer::walk_pattern(self, pattern)) {
            let (node_index, range) = no_range();
            let placeholder = Pattern::MatchAs(ast::PatternMatchAs {
                node_index,
                range,
                pattern: None,
                name: None,
            });
            let p = std::mem::replace(pattern, placeholder);
            self.cut.borrow_mut().push(Cut::Pattern(p));
        }
    }

    fn visit_interpolated_string_element(&self, e: &mut InterpolatedStringElement) {
        if !self.walk(|| transformer::walk_interpolated_string_element(self, e)) {
            let (node_index, range) = no_range();
            let placeholder =
                InterpolatedStringElement::Literal(ast::InterpolatedStringLiteralElement {
                    node_index,
                    range,
                    value: "".into(),
                });
            let e = std::mem::replace(e, placeholder);
            self.cut.borrow_mut().push(Cut::Element(e));
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

    /// The parser marks assignment targets with a plain recursion; before the tokens were
    /// checked, targets like these overflowed a 2 MiB stack.
    #[test]
    fn deep_targets_are_refused_before_parsing_on_a_small_stack() {
        let n = 300_000;
        let cells = [
            format!("{}{} = 1", "[".repeat(n), "]".repeat(n)),
            format!("{}x = 1", "-".repeat(n)),
            format!("{}x, = 1", "*".repeat(n)),
            format!("{}x = 1", "not ".repeat(n)),
            format!("{}x{} = 1", "[x, ".repeat(n), "]".repeat(n)),
            format!("{}{} = 1", "[)".repeat(n), "]".repeat(n)),
            format!("del {}x{}", "(-".repeat(n), ")".repeat(n)),
            format!(
                "{}[a for {}{} in b]{}",
                "(".repeat(n / 3),
                "[".repeat(n / 3),
                "]".repeat(n / 3),
                ")".repeat(n / 3)
            ),
        ];
        let t = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                cells
                    .iter()
                    .map(|c| parse_python(c).err().map(|e| (e.offset, e.message)))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        let refused = t.join().unwrap();
        for r in &refused {
            assert!(r.is_some());
        }
        // Told as the checks after parsing tell it of a cell short enough to parse: the
        // 201st bracket, or the level past the limit.
        let brackets = |n: usize| format!("{}{} = 1", "[".repeat(n), "]".repeat(n));
        let short = parse_python(&brackets(MAX_BRACKETS + 1)).err().unwrap();
        assert_eq!(refused[0], Some((short.offset, short.message)));
        assert_eq!(short.offset, MAX_BRACKETS);
        let (offset, message) = refused[1].clone().unwrap();
        assert!(message.contains("256 levels"), "{message}");
        assert!(offset > MAX_DEPTH - 10 && offset <= MAX_CHAIN, "{offset}");
    }

    /// Ordinary cells longer than the gate are lexed and pass.
    #[test]
    fn long_ordinary_cells_pass_the_token_check() {
        let cell = "df = df[(df['a'] > -1) & ~df['b'].isna()]  # [[[ not (\n".repeat(400);
        assert_eq!(chain_fits(&cell), Some(true));
        assert_eq!(deep(&cell), None);
        let strings = format!(
            "x = '{}'\ny = [{}]\n",
            "[".repeat(5_000),
            "-1, ".repeat(5_000)
        );
        assert_eq!(chain_fits(&strings), Some(true));
        assert_eq!(deep(&strings), None);
    }

    #[test]
    fn deep_trees_are_dropped_on_a_small_stack() {
        // Every node kind that nests: the plain drop of these trees overflows 2 MiB.
        let cells = [
            format!("x = {}1", "-".repeat(100_000)),
            format!("x = {}1", "lambda: not ".repeat(30_000)),
            format!("x = 1{}", " + 1".repeat(50_000)),
            format!("x = {}1{}", "f'{".repeat(5_000), "}'".repeat(5_000)),
            // Statements, and below them a pattern nested 150 levels.
            (0..300)
                .map(|i| format!("{}if x:\n", " ".repeat(i)))
                .collect::<String>()
                + &format!(
                    "{}match x:\n{}case {}1{}:\n{}pass\n",
                    " ".repeat(300),
                    " ".repeat(301),
                    "[".repeat(150),
                    "]".repeat(150),
                    " ".repeat(302)
                ),
        ];
        let t = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for c in &cells {
                    assert!(parse_python(c).is_err(), "{}", &c[..20]);
                }
            })
            .unwrap();
        t.join().unwrap();
    }
}
