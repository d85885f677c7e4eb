//! Rendering diagnostics: `human` (compiler style) and `json` (for tools and the
//! Jupyter button). The model is in the parent module.

use super::{Diagnostic, Severity, Shown};

/// Compiler-style text, one block per diagnostic.
pub fn human(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{sev}[{}]: {}\n", d.code, printable(&d.message)));
        let loc = &d.location;
        let none = Shown::default();
        let shown = loc.shown.as_deref().unwrap_or(&none);
        let mut at = format!("  --> {}", loc.notebook.display());
        if let Some(cell) = loc.cell {
            // As the notebook shows it: cells counted from 1, markdown included, and
            // the `In [n]` prompt of a cell that has run.
            let number = shown.cell_number.unwrap_or(cell + 1);
            let first = loc.cell_first_line.as_deref().unwrap_or("");
            at.push_str(&format!(
                ", {}",
                cell_name(number, shown.execution_count, first)
            ));
        }
        if let Some(line) = loc.line {
            at.push_str(&format!(", line {line}"));
            if let Some(col) = loc.column {
                at.push_str(&format!(", column {col}"));
            }
        }
        // Without the cell's tags to show it among, the tag is named here.
        if let (Some(tag), true) = (&shown.tag, shown.cell_tags.is_empty()) {
            at.push_str(&format!(", tag `{}`", printable(&shorten(tag, 48))));
        }
        out.push_str(&at);
        out.push('\n');
        out.push_str(&snippet(loc, shown));
        if let Some(help) = &d.help {
            out.push_str(&format!("   = help: {}\n", printable(help)));
        }
    }
    out
}

/// A cell as diagnostics and run reports name it: `cell N (In [n]: `first line`)`, N
/// counted from 1 with markdown cells, the prompt only for a cell that has run.
pub fn cell_name(number: usize, execution_count: Option<u64>, first_line: &str) -> String {
    let first = Some(first_line.trim())
        .filter(|f| !f.is_empty())
        .map(|f| format!("`{}`", printable(&shorten(f, 48))));
    match (execution_count, first) {
        (Some(n), Some(f)) => format!("cell {number} (In [{n}]: {f})"),
        (Some(n), None) => format!("cell {number} (In [{n}])"),
        (None, Some(f)) => format!("cell {number} ({f})"),
        (None, None) => format!("cell {number}"),
    }
}

/// The quoted line with a caret under the column, as rustc and ruff show it; for a tag
/// diagnostic, the cell's tags with the tag underlined.
fn snippet(loc: &super::Location, shown: &Shown) -> String {
    let (label, text, start, len) = match (&shown.source_line, &shown.tag) {
        (Some(src), _) if loc.cell.is_some() && loc.line.is_some() => {
            let line = loc.line.unwrap_or_default();
            // The column counts bytes; the caret goes under the character there.
            let start = loc.column.map(|c| {
                let c = c.saturating_sub(1).min(src.len());
                let mut b = c;
                while !src.is_char_boundary(b) {
                    b -= 1;
                }
                b
            });
            (line.to_string(), src.clone(), start, 1)
        }
        (_, Some(tag)) if !shown.cell_tags.is_empty() => {
            let mut text = String::from("tags: ");
            let mut start = None;
            for (i, t) in shown.cell_tags.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                if t == tag && start.is_none() {
                    start = Some(text.len());
                }
                text.push_str(t);
            }
            (String::new(), text, start, tag.chars().count().max(1))
        }
        _ => return String::new(),
    };
    let gutter = " ".repeat(label.len().max(2));
    let (shown, caret_at) = visible(&text, start);
    let mut out = format!("{gutter} |\n{label:>w$} | {shown}\n", w = gutter.len());
    if let Some(col) = caret_at {
        let width = shown.chars().count().saturating_sub(col).clamp(1, len);
        out.push_str(&format!(
            "{gutter} | {}{}\n",
            " ".repeat(col),
            "^".repeat(width)
        ));
    }
    out
}

/// The line as printed (tabs as 4 spaces, control characters escaped, a long line cut
/// around the caret) and the caret's character position in it.
fn visible(line: &str, caret_byte: Option<usize>) -> (String, Option<usize>) {
    const MAX: usize = 100;
    let render = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '\t' => "    ".to_string(),
                c if c.is_control() => c.escape_debug().to_string(),
                c => c.to_string(),
            })
            .collect()
    };
    let (before, after) = match caret_byte {
        Some(b) => (render(&line[..b]), render(&line[b..])),
        None => (String::new(), render(line)),
    };
    let mut before: Vec<char> = before.chars().collect();
    let mut after: Vec<char> = after.chars().collect();
    let mut cut_front = false;
    if before.len() > MAX / 2 {
        before.drain(..before.len() - MAX / 2);
        cut_front = true;
    }
    let cut_back = before.len() + after.len() > MAX;
    after.truncate(MAX - before.len());
    let mut shown = String::new();
    if cut_front {
        shown.push('…');
    }
    shown.extend(before.iter());
    let col = caret_byte.map(|_| shown.chars().count());
    shown.extend(after.iter());
    if cut_back {
        shown.push('…');
    }
    (shown, col)
}

/// `s` with control characters escaped (`\0`, `\u{1b}`), so a value quoted from a
/// notebook cannot garble or drive the terminal. Newlines and tabs stay.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// One JSON array, stable field order.
pub fn json(diags: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(diags).expect("diagnostics serialise") + "\n"
}

/// A one-line summary: `2 errors, 1 warning`.
pub fn summary(diags: &[Diagnostic]) -> String {
    let e = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let w = diags.len() - e;
    format!("{e} error{}, {w} warning{}", plural(e), plural(w))
}

/// `1 task`, `2 tasks`: a count and its noun.
pub fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", plural(n))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// At most `max` characters, with an ellipsis; control characters shown escaped so a
/// hostile cell cannot rewrite the terminal.
pub fn shorten(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Code;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        let d = Diagnostic::new(
            Code::InvalidSettings,
            std::path::Path::new("n.ipynb"),
            "value `a\0b\u{1b}[31m`\n\tnext",
        )
        .at_cell(0, "x = '\u{7}'")
        .with_help("h\u{9b}");
        let out = human(&[d]);
        assert!(out.contains("value `a\\0b\\u{1b}[31m`\n\tnext"), "{out}");
        assert!(
            out.contains("x = '\\u{7}'") && out.contains("h\\u{9b}"),
            "{out}"
        );
        assert!(!out
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'));
    }

    fn at(line: usize, column: usize, source: &str) -> Diagnostic {
        let mut d = Diagnostic::new(
            Code::CellSyntaxError,
            std::path::Path::new("n.ipynb"),
            "bad",
        )
        .at_cell(0, "x")
        .at_line(line, Some(column));
        d.location.shown_mut().source_line = Some(source.into());
        d
    }

    #[test]
    fn the_caret_sits_under_the_character_at_the_column() {
        // The column counts bytes: `é` is two, a tab shows as four spaces.
        let out = human(&[at(12, 7, "\té = (1")]);
        assert!(
            out.contains("   |\n12 |     é = (1\n   |         ^\n"),
            "{out}"
        );
        // A column inside a character, or past the end, still renders.
        let out = human(&[at(1, 2, "é"), at(1, 99, "ab")]);
        assert!(out.contains(" 1 | é\n   | ^\n"), "{out}");
        assert!(out.contains(" 1 | ab\n   |   ^\n"), "{out}");
    }

    #[test]
    fn a_long_line_is_cut_around_the_caret() {
        let line = format!("{}BAD{}", "a".repeat(500), "b".repeat(500));
        let out = human(&[at(1, 501, &line)]);
        let shown = out.lines().find(|l| l.starts_with(" 1 | ")).unwrap();
        let caret = out.lines().find(|l| l.trim_end().ends_with('^')).unwrap();
        assert!(shown.chars().count() < 120, "{shown}");
        let col = caret.find('^').unwrap();
        assert_eq!(shown.chars().nth(col), Some('B'), "{shown}\n{caret}");
    }
}
