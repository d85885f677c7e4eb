//! Python literals for generated code. Every user-provided string reaches a generated
//! Python file only through these functions, so no name, tag or value can break out
//! of its literal.

/// A Python string literal: double quotes; `\`, `"`, control and non-ASCII characters
/// escaped, so the generated file is pure ASCII and one line per literal.
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_py_str(&mut out, s);
    out
}

fn push_py_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() => out.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// A Python literal for any template value (strings, numbers, bools, None, lists, dicts).
pub fn py_value(v: &minijinja::Value) -> String {
    let json: serde_json::Value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    py_json(&json)
}

pub fn py_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    push_py_json(&mut out, v);
    out
}

/// The plan's JSON values nest at most [`crate::plan::values::MAX_JSON_DEPTH`] levels.
fn push_py_json(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            use std::fmt::Write;
            match n.as_f64().filter(|_| !n.is_i64() && !n.is_u64()) {
                Some(f) if f.is_finite() => {
                    let _ = write!(out, "{f:?}");
                }
                Some(_) => out.push_str("None"),
                None => {
                    let _ = write!(out, "{n}");
                }
            }
        }
        Value::String(s) => push_py_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_py_json(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_py_str(out, k);
                out.push_str(": ");
                push_py_json(out, x);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(py_str("a\"b"), r#""a\"b""#);
        assert_eq!(py_str("x\ny"), r#""x\ny""#);
        assert_eq!(py_str("\\"), r#""\\""#);
        assert_eq!(py_str("é☃𝄞"), r#""\u00e9\u2603\U0001d11e""#);
        assert_eq!(py_str("\"\"\""), r#""\"\"\"""#);
        assert_eq!(py_str("\u{7f}\u{0}"), r#""\x7f\x00""#);
        assert_eq!(
            py_json(&serde_json::json!({"a": [1, 2.5, true, null]})),
            r#"{"a": [1, 2.5, True, None]}"#
        );
    }
}
