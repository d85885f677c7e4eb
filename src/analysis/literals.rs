//! Literal assignments (`name = <literal>`) in a `parameters` cell, as JSON values.

use ruff_python_ast::{self as ast, Expr, Number, Stmt, UnaryOp};
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions};

/// For each top-level statement: `Some((name, value))` when it assigns a literal to a name.
pub fn literal_assignments(python: &str) -> Vec<Option<(String, serde_json::Value)>> {
    let parsed = parse_unchecked(python, ParseOptions::from(Mode::Ipython));
    let Some(module) = parsed.syntax().as_module() else {
        return Vec::new();
    };
    module
        .body
        .iter()
        .map(|stmt| {
            let (target, value) = match stmt {
                Stmt::Assign(a) if a.targets.len() == 1 => (&a.targets[0], &*a.value),
                Stmt::AnnAssign(a) => (&*a.target, a.value.as_deref()?),
                _ => return None,
            };
            let Expr::Name(n) = target else { return None };
            literal(value).map(|v| (n.id.to_string(), v))
        })
        .collect()
}

fn literal(e: &Expr) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match e {
        Expr::NumberLiteral(n) => match &n.value {
            Number::Int(i) => Value::from(i.as_i64()?),
            Number::Float(f) => Value::from(serde_json::Number::from_f64(*f)?),
            Number::Complex { .. } => return None,
        },
        Expr::StringLiteral(s) => Value::String(s.value.to_str().to_string()),
        Expr::BooleanLiteral(b) => Value::Bool(b.value),
        Expr::NoneLiteral(_) => Value::Null,
        Expr::UnaryOp(ast::ExprUnaryOp {
            op: UnaryOp::USub,
            operand,
            ..
        }) => match literal(operand)? {
            Value::Number(n) if n.is_i64() => Value::from(-n.as_i64()?),
            Value::Number(n) => Value::from(serde_json::Number::from_f64(-n.as_f64()?)?),
            _ => return None,
        },
        Expr::List(l) => Value::Array(l.elts.iter().map(literal).collect::<Option<_>>()?),
        Expr::Tuple(t) => Value::Array(t.elts.iter().map(literal).collect::<Option<_>>()?),
        Expr::Dict(d) => {
            let mut m = serde_json::Map::new();
            for item in &d.items {
                let Value::String(k) = literal(item.key.as_ref()?)? else {
                    return None;
                };
                m.insert(k, literal(&item.value)?);
            }
            Value::Object(m)
        }
        _ => return None,
    })
}

/// The parameter type name of a JSON value.
pub fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        serde_json::Value::Number(_) => "float",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "dict",
    }
}
