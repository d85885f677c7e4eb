//! Rendering diagnostics: `human` (compiler style) and `json` (for tools and the
//! Jupyter button). The model is in the parent module.

use super::{Diagnostic, Severity};

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
        let mut at = format!("  --> {}", loc.notebook.display());
        if let Some(cell) = loc.cell {
            at.push_str(&format!(", cell {cell}"));
            if let Some(first) = &loc.cell_first_line {
                if !first.is_empty() {
                    at.push_str(&format!(" (`{}`)", printable(&shorten(first, 48))));
                }
            }
        }
        if let Some(line) = loc.line {
            at.push_str(&format!(", line {line}"));
            if let Some(col) = loc.column {
                at.push_str(&format!(", column {col}"));
            }
        }
        out.push_str(&at);
        out.push('\n');
        if let Some(help) = &d.help {
            out.push_str(&format!("   = help: {}\n", printable(help)));
        }
    }
    out
}

/// `s` with control characters escaped (`\0`, `\u{1b}`), so a value quoted from a
/// notebook cannot garble or drive the terminal. Newlines and tabs stay.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_debug().to_string(),
            c => c.to_string(),
        })
        .collect()
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
}
