//! Literal assignments (`name = <literal>`) in a `parameters` cell, as JSON values.

use ruff_python_ast::{self as ast, Expr, Number, Stmt, UnaryOp};

/// Levels of lists and dicts a parameter may nest. Its value travels as JSON, and
/// readers limit nesting (serde_json at 128), so a deeper one could not be read back.
pub const MAX_LITERAL_DEPTH: usize = 100;

/// Why a statement of a `parameters` cell is not a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotParameter {
    /// Not `name = <literal>`.
    NotLiteral,
    /// A literal nested more than [`MAX_LITERAL_DEPTH`] levels.
    TooDeep,
    /// The name, and a control character in one of its strings.
    Control(String, char),
}

/// String literals passed as call arguments anywhere in `stmt`, in visiting order
/// (`pd.read_csv("data.csv")`, `open(file="cfg.json")`).
pub(super) fn call_literals(stmt: &Stmt) -> Vec<String> {
    use ruff_python_ast::visitor::{self, Visitor};
    struct Lits(Vec<String>);
    impl<'a> Visitor<'a> for Lits {
        fn visit_expr(&mut self, expr: &'a Expr) {
            if let Expr::Call(call) = expr {
                let args = call.arguments.args.iter();
                let kwargs = call.arguments.keywords.iter().map(|k| &k.value);
                for a in args.chain(kwargs) {
                    if let Expr::StringLiteral(s) = a {
                        self.0.push(s.value.to_str().to_string());
                    }
                }
            }
            visitor::walk_expr(self, expr);
        }
    }
    let mut lits = Lits(Vec::new());
    lits.visit_stmt(stmt);
    lits.0
}

/// For each top-level statement: the name and value when it assigns a literal to a name.
pub fn literal_assignments(python: &str) -> Vec<Result<(String, serde_json::Value), NotParameter>> {
    let Ok(parsed) = super::parse_python(python) else {
        return Vec::new();
    };
    let Some(module) = parsed.syntax().as_module() else {
        return Vec::new();
    };
    module
        .body
        .iter()
        .map(|stmt| {
            let (target, value) = match stmt {
                Stmt::Assign(a) if a.targets.len() == 1 => (&a.targets[0], &*a.value),
                Stmt::AnnAssign(a) => (
                    &*a.target,
                    a.value.as_deref().ok_or(NotParameter::NotLiteral)?,
                ),
                _ => return Err(NotParameter::NotLiteral),
            };
            let Expr::Name(n) = target else {
                return Err(NotParameter::NotLiteral);
            };
            let v = literal(value, 0)?;
            if let Some(c) = control_char(&v) {
                return Err(NotParameter::Control(n.id.to_string(), c));
            }
            Ok((n.id.to_string(), v))
        })
        .collect()
}

/// The first character of a string in `v` (keys too) that [`crate::plan::values`] refuses.
fn control_char(v: &serde_json::Value) -> Option<char> {
    use serde_json::Value;
    match v {
        Value::String(s) => crate::plan::values::first_control(s),
        Value::Array(a) => a.iter().find_map(control_char),
        Value::Object(m) => m
            .iter()
            .find_map(|(k, v)| crate::plan::values::first_control(k).or_else(|| control_char(v))),
        _ => None,
    }
}

fn literal(e: &Expr, depth: usize) -> Result<serde_json::Value, NotParameter> {
    use serde_json::Value;
    use NotParameter::NotLiteral;
    if depth >= MAX_LITERAL_DEPTH {
        return Err(NotParameter::TooDeep);
    }
    let all = |elts: &[Expr]| -> Result<Value, NotParameter> {
        Ok(Value::Array(
            elts.iter()
                .map(|x| literal(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ))
    };
    Ok(match e {
        Expr::NumberLiteral(n) => match &n.value {
            Number::Int(i) => Value::from(i.as_i64().ok_or(NotLiteral)?),
            Number::Float(f) => Value::from(serde_json::Number::from_f64(*f).ok_or(NotLiteral)?),
            Number::Complex { .. } => return Err(NotLiteral),
        },
        Expr::StringLiteral(s) => Value::String(s.value.to_str().to_string()),
        Expr::BooleanLiteral(b) => Value::Bool(b.value),
        Expr::NoneLiteral(_) => Value::Null,
        Expr::UnaryOp(ast::ExprUnaryOp {
            op: UnaryOp::USub,
            operand,
            ..
        }) => match literal(operand, depth + 1)? {
            Value::Number(n) if n.is_i64() => Value::from(-n.as_i64().ok_or(NotLiteral)?),
            Value::Number(n) => Value::from(
                serde_json::Number::from_f64(-n.as_f64().ok_or(NotLiteral)?).ok_or(NotLiteral)?,
            ),
            _ => return Err(NotLiteral),
        },
        Expr::List(l) => all(&l.elts)?,
        Expr::Tuple(t) => all(&t.elts)?,
        Expr::Dict(d) => {
            let mut m = serde_json::Map::new();
            for item in &d.items {
                let Value::String(k) = literal(item.key.as_ref().ok_or(NotLiteral)?, depth + 1)?
                else {
                    return Err(NotLiteral);
                };
                m.insert(k, literal(&item.value, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => return Err(NotLiteral),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_literals_and_control_characters_are_not_parameters() {
        let ok = format!(
            "v = {}{}",
            "[".repeat(MAX_LITERAL_DEPTH),
            "]".repeat(MAX_LITERAL_DEPTH)
        );
        assert!(literal_assignments(&ok)[0].is_ok());
        let d = MAX_LITERAL_DEPTH + 1;
        let deep = format!("v = {}{}", "[".repeat(d), "]".repeat(d));
        assert_eq!(literal_assignments(&deep)[0], Err(NotParameter::TooDeep));
        let neg = format!("v = {}1", "-".repeat(d));
        assert_eq!(literal_assignments(&neg)[0], Err(NotParameter::TooDeep));
        // Past the syntax tree's limit the cell is not analysed at all (a syntax problem).
        let very = format!("v = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(literal_assignments(&very).is_empty());
        assert_eq!(
            literal_assignments("s = {'k': ['a\\x00b']}")[0],
            Err(NotParameter::Control("s".into(), '\0'))
        );
        assert!(literal_assignments("s = 'tab\\tand\\nnewline'")[0].is_ok());
    }
}
