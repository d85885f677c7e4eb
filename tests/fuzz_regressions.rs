//! Every input a fuzz target once failed on (fuzz/regressions/<target>/), replayed through
//! the same harness as the fuzzer: no panic, no broken invariant, and for inputs the
//! reader or the planner refuses, a diagnostic.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    v.sort();
    v
}

fn replay(target: &str) {
    for p in inputs(target) {
        let data = std::fs::read(&p).unwrap();
        let outcome = std::panic::catch_unwind(|| harness::run(target, &data));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{}: invariant broken: {e}", p.display()),
            Err(_) => panic!("{}: panicked", p.display()),
        }
    }
}

#[test]
fn notebook_reader() {
    replay("notebook");
}

#[test]
fn tags_and_settings() {
    replay("settings");
}

#[test]
fn python_analysis() {
    replay("analysis");
}

#[test]
fn convert() {
    replay("convert");
}

#[test]
fn every_target_has_a_regression_folder() {
    for t in harness::TARGETS {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions")
                .join(t)
                .is_dir(),
            "fuzz/regressions/{t} is missing"
        );
    }
}

/// The seeds hold the invariants too: every fixture notebook, read and converted, either
/// stops at a diagnostic or gives every target's files, the same twice.
#[test]
fn fixture_notebooks_hold_the_invariants() {
    let mut todo = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
    let mut n = 0;
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "ipynb") {
                let data = std::fs::read(&p).unwrap();
                for target in ["notebook", "convert"] {
                    if let Err(e) = harness::run(target, &data) {
                        panic!("{target} {}: {e}", p.display());
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n >= 50, "only {n} fixture notebooks");
}

/// The cells that crashed ruff's parser (an `unreachable!` on IPython escapes in
/// expression position) are reported as cells nb2pipe cannot read.
#[test]
fn parser_crashes_are_syntax_problems() {
    for p in inputs("analysis") {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        let facts = nb2pipe::analysis::analyse_cell(&text);
        assert!(facts.syntax_error.is_some(), "{}", p.display());
    }
}
