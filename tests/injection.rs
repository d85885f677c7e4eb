//! Injection-proofing: whatever a user puts in a task name, tag value, parameter or env
//! value, the generated Python parses and carries the value unchanged, or nb2pipe
//! refuses it with a diagnostic. Python files are parsed back with the same real
//! parser nb2pipe uses; tests/airflow.rs renders the values through real Airflow.

mod common;

use proptest::prelude::*;
use ruff_python_ast::{Expr, Stmt};
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions};

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\"", "'", "\"\"\"", "'''", "\n", "\r\n", "\\", "\\n", "{{", "}}", "{%", "%}", "{#", "$(",
        "${x}", "é", "☃", "𝄞", "\t", "\0", " ", "a", "Z", "9", "=", ":", ",", "#", ".yaml", "json",
        "#}", "\u{7f}", "\u{2028}",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

fn string_literals(src: &str) -> Vec<String> {
    let parsed = parse_unchecked(src, ParseOptions::from(Mode::Module));
    assert!(
        parsed.errors().is_empty(),
        "generated Python does not parse: {:?}\n{src}",
        parsed.errors()
    );
    let mut out = Vec::new();
    fn walk(e: &Expr, out: &mut Vec<String>) {
        use ruff_python_ast::visitor::{walk_expr, Visitor};
        struct V<'o>(&'o mut Vec<String>);
        impl<'a> Visitor<'a> for V<'_> {
            fn visit_expr(&mut self, e: &'a Expr) {
                if let Expr::StringLiteral(s) = e {
                    self.0.push(s.value.to_str().to_string());
                }
                walk_expr(self, e);
            }
        }
        V(out).visit_expr(e);
    }
    for stmt in parsed.syntax().as_module().unwrap().body.iter() {
        use ruff_python_ast::visitor::{walk_stmt, Visitor};
        struct S<'o>(&'o mut Vec<String>);
        impl<'a> Visitor<'a> for S<'_> {
            fn visit_expr(&mut self, e: &'a Expr) {
                walk(e, self.0);
            }
        }
        let mut s = S(&mut out);
        walk_stmt(&mut s, stmt);
        let _ = matches!(stmt, Stmt::Pass(_));
    }
    out
}

fn notebook(
    env_value: &str,
    annotation: &str,
    param: &str,
    description: &str,
    task: &str,
) -> String {
    let cells = serde_json::json!([
        {"cell_type": "code", "source": format!("p = {}", serde_json::to_string(param).unwrap().replace("\\u0000", "\\x00")), "metadata": {"tags": ["parameters"]}},
        {"cell_type": "code", "source": "x = p * 2", "metadata": {"tags": [format!("task:{task}")], "nb2pipe": {"env": {"HOSTILE": env_value}, "annotations": {"note": annotation}}}},
        {"cell_type": "code", "source": "print(x)", "metadata": {"tags": [format!("env:TAGGED={env_value}")]}},
    ]);
    serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {"nb2pipe": {"description": description}}, "cells": cells}).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn python_literals_round_trip(s in hostile()) {
        let lit = nb2pipe::emit::pyrepr::py_str(&s);
        prop_assert!(lit.is_ascii() && !lit.contains('\n'));
        let got = string_literals(&format!("x = {lit}\n"));
        prop_assert_eq!(got, vec![s]);
    }

    #[test]
    fn hostile_values_reach_the_dag_unchanged_or_are_refused(env in hostile(), ann in hostile(), param in hostile(), desc in hostile(), task in prop_oneof![3 => Just("ok_task".to_string()), 1 => hostile()]) {
        let tmp = common::tempdir();
        let nb = tmp.path().join("hostile.ipynb");
        std::fs::write(&nb, notebook(&env, &ann, &param, &desc, &task)).unwrap();
        let out = tmp.path().join("out");
        let (code, stdout, stderr) = common::run(&["convert", nb.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        prop_assert!(code == 0 || code == 1, "exit {} {} {}", code, stdout, stderr);
        // Control characters (tab, newline and carriage return aside) cannot pass
        // through execve, YAML or Python source unchanged: refused, by name.
        let control = |v: &str| v.chars().any(|c| c.is_control() && !"\t\n\r".contains(c));
        let refused = [&env, &ann, &param, &desc].iter().any(|v| control(v));
        if task == "ok_task" && !refused {
            prop_assert_eq!(code, 0, "values alone are never refused: {}", stderr);
        }
        if refused {
            prop_assert_eq!(code, 1, "a control character was accepted: {}", stderr);
            prop_assert!(stderr.contains("control character U+"), "{}", stderr);
        }
        if code == 1 {
            // Refused: with a diagnostic naming the cell, never a crash.
            prop_assert!(stderr.contains("error[NB0"), "{}", stderr);
            return Ok(());
        }
        let dir = out.join("hostile");
        let dag = std::fs::read_to_string(dir.join("airflow/hostile.py")).unwrap();
        let lits = string_literals(&dag);
        let wrapped = |v: &str| nb2pipe::emit::airflow::templated(v);
        // Env values are also `$`-escaped for Kubernetes; annotations are not expanded.
        for (v, in_env) in [(&env, true), (&ann, false)] {
            let k8s = if in_env { nb2pipe::emit::k8s::k8s_env_escape(v) } else { v.to_string() };
            let as_lit = string_literals(&format!("x = {}\n", wrapped(&k8s)))[0].clone();
            prop_assert!(lits.contains(&as_lit), "value {:?} missing from DAG", v);
        }
        prop_assert!(lits.contains(&desc), "description {:?} missing", desc);
        let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
        prop_assert_eq!(plan["parameters"][0]["default"].as_str(), Some(param.as_str()));
        for entry in std::fs::read_dir(dir.join("tasks")).unwrap() {
            let main = std::fs::read_to_string(entry.unwrap().path().join("main.py")).unwrap();
            let lits = string_literals(&main);
            if main.contains("parameters({\"p\"") {
                prop_assert!(lits.contains(&param), "param default {:?} missing from main.py", param);
            }
        }
    }
}
