//! Per-task requirements: imported modules → distributions, plus explicit installs.

use crate::analysis::{parse_pip_args, Import};
use crate::plan::Requirement;

const STDLIB: &str = include_str!("stdlib-3.11.txt");

/// Import names whose distribution has another name.
const RENAMES: &[(&str, &str)] = &[
    ("PIL", "pillow"),
    ("bs4", "beautifulsoup4"),
    ("cv2", "opencv-python"),
    ("dateutil", "python-dateutil"),
    ("grpc", "grpcio"),
    ("kafka", "kafka-python"),
    ("sklearn", "scikit-learn"),
    ("skimage", "scikit-image"),
    ("yaml", "pyyaml"),
];

pub fn is_stdlib(module: &str, _python: &str) -> bool {
    let top = module.split('.').next().unwrap_or(module);
    STDLIB.lines().any(|l| l == top) || top == "__future__"
}

pub fn requirements(imports: &[Import], pip_installs: &[String], python: &str) -> Vec<Requirement> {
    let mut out: Vec<Requirement> = Vec::new();
    let mut push = |line: String, source: String| {
        let name = line
            .split(|c: char| "[<>=!~; ".contains(c))
            .next()
            .unwrap_or(&line)
            .to_ascii_lowercase();
        if !out.iter().any(|r| {
            r.line
                .split(|c: char| "[<>=!~; ".contains(c))
                .next()
                .unwrap_or("")
                .eq_ignore_ascii_case(&name)
        }) {
            out.push(Requirement { line, source });
        }
    };
    for args in pip_installs {
        for a in args.split_whitespace().filter(|a| !a.starts_with('-')) {
            push(a.to_string(), "%pip install".into());
        }
    }
    for imp in imports {
        if imp.module.starts_with('.') || imp.type_checking || is_stdlib(&imp.module, python) {
            continue;
        }
        let top = imp.module.split('.').next().unwrap_or(&imp.module);
        let dist = RENAMES
            .iter()
            .find(|(m, _)| *m == top)
            .map(|(_, d)| *d)
            .unwrap_or(top);
        push(dist.to_string(), format!("import {}", imp.module));
    }
    out.sort_by(|a, b| {
        a.line
            .to_ascii_lowercase()
            .cmp(&b.line.to_ascii_lowercase())
    });
    out
}

#[allow(dead_code)]
fn _keep(_: fn(&str) -> Option<Vec<String>>) {}
const _: fn(&str) -> Option<Vec<String>> = parse_pip_args;
