//! Python literals for generated code. Every user-provided string reaches a generated
//! Python file only through these functions, so no name, tag or value can break out
//! of its literal.

/// A Python string literal: double quotes; `\`, `"`, control and non-ASCII characters
/// escaped, so the generated file is pure ASCII and one line per literal.
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_ascii() => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A Python literal for any template value (strings, numbers, bools, None, lists, dicts).
pub fn py_value(v: &minijinja::Value) -> String {
    let json: serde_json::Value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    py_json(&json)
}

pub fn py_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| !n.is_i64() && !n.is_u64()) {
                if f.is_finite() {
                    let s = format!("{f:?}");
                    return s;
                }
                return "None".into();
            }
            n.to_string()
        }
        Value::String(s) => py_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
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
