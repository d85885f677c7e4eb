use super::run_id::utc_stamp;
use super::*;

#[test]
fn utc_stamps() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    assert_eq!(utc_stamp(1_767_225_599), "20251231T235959Z");
}

#[test]
fn run_ids_sort_by_time_and_differ() {
    let a = new_run_id();
    let b = new_run_id();
    assert_ne!(a, b);
    assert_eq!(a.len(), "20250101T000000Z-0123abcd".len());
    assert!(a.is_char_boundary(16) && a.as_bytes()[16] == b'-');
}

#[test]
fn failure_report_quotes_the_cell_line_and_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    std::fs::write(
        &log,
        (1..=30).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .unwrap();
    let rec = TaskRecord {
        name: "train".into(),
        state: State::Failed,
        exit_code: Some(1),
        started_ms: Some(0),
        ended_ms: Some(5),
        log: log.clone(),
        inputs: Default::default(),
        outputs: Vec::new(),
        error: Some(serde_json::json!({"cell": 1, "line": 2, "message": "KeyError: 'x'"})),
        reason: None,
        cache_key: None,
    };
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# first"},
        {"cell_type": "code", "metadata": {}, "source": "a = 1\nb = d['x']\n", "outputs": [], "execution_count": 4},
    ]});
    let cells = crate::notebook::parse_str(std::path::Path::new("n.ipynb"), &nb.to_string())
        .unwrap()
        .cells;
    let text = failure_report(&rec, &cells, 5);
    assert!(
        text.contains("task `train` failed (exit status 1)"),
        "{text}"
    );
    assert!(
        text.contains("in notebook cell 2 (In [4]: `a = 1`), line 2: KeyError: 'x'"),
        "{text}"
    );
    assert!(text.contains("   2 | b = d['x']"), "{text}");
    assert!(
        text.contains("line 30") && text.contains("line 26") && !text.contains("line 25\n"),
        "{text}"
    );
}

#[test]
fn rerun_forces_the_task_and_its_downstream_and_no_cache_turns_it_off() {
    let nb = crate::notebook::load(std::path::Path::new("fixtures/exec/values.ipynb")).unwrap();
    let plan = crate::plan::build(crate::plan::BuildInput {
        notebook: &nb,
        project: None,
        cli: Default::default(),
        profile: None,
        python_env: None,
    })
    .plan;
    let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["load", "prepare", "train", "report"]);
    assert_eq!(
        super::cache_modes(&plan, false, &[]),
        ["on", "on", "on", "on"]
    );
    assert_eq!(
        super::cache_modes(&plan, false, &["prepare".into()]),
        ["on", "write", "write", "write"]
    );
    assert_eq!(
        super::cache_modes(&plan, false, &["report".into()]),
        ["on", "on", "on", "write"]
    );
    assert_eq!(
        super::cache_modes(&plan, true, &["prepare".into()]),
        ["off", "off", "off", "off"]
    );
}

#[test]
fn a_pods_last_words_give_the_cell_it_failed_in() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    std::fs::write(
        &log,
        "Traceback ...\nnb2pipe: task 'broken' failed in notebook f.ipynb, cell 3 (`x = f(1), line 2`), line 4: KeyError: 'k'\n",
    )
    .unwrap();
    let e = error_from_log(&log).unwrap();
    assert_eq!(e["cell"], 2, "{e}");
    assert_eq!(e["line"], 4, "{e}");
    assert_eq!(e["message"], "KeyError: 'k'", "{e}");
}
