//! nb2pipe reads IPython syntax as IPython does: checked against IPython itself (the
//! exec virtualenv), not a copy of its rules.

mod common;

use std::process::Command;

use nb2pipe::analysis::{analyse_cell, classify_line_magic, CellMagic, LineMagic};

fn ipython(script: &str) -> String {
    let out = Command::new(common::python_env("EXEC"))
        .arg("-c")
        .arg(script)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Cells seen on real notebooks that IPython reads differently from plain Python.
const CELLS: &[&str] = &[
    "    a = 1\n    b = a + 1\n    print(b)",
    "\n  for i in range(2):\n      print(i)\n",
    "\tx = 1\n\ty = x",
    "  x = 1\n y = 2",
    "    s = '''\n  text\n'''\n    print(s)",
    "%%capture\n%%sh\necho hi",
    "%%capture out\n%%bash\necho hi",
    "%%time\n%%script bash\necho hi",
    "%%time\n%%writefile w.py\nx = 1",
    "%%capture\nx = 1",
    "x = 1\n  y = 2",
];

#[test]
fn a_cell_is_valid_for_nb2pipe_exactly_when_it_is_for_ipython() {
    let script = format!(
        "import json, sys\nfrom IPython.core.inputtransformer2 import TransformerManager\n\
         out = []\nfor src in json.loads(sys.argv[1] if len(sys.argv) > 1 else {cells:?}):\n    \
         try:\n        compile(TransformerManager().transform_cell(src), 'cell', 'exec')\n        \
         out.append(True)\n    except SyntaxError:\n        out.append(False)\nprint(json.dumps(out))",
        cells = serde_json::to_string(CELLS).unwrap()
    );
    let valid: Vec<bool> = serde_json::from_str(&ipython(&script)).unwrap();
    assert!(valid.iter().any(|v| !v) && valid.iter().any(|v| *v));
    for (src, ipy) in CELLS.iter().zip(valid) {
        let f = analyse_cell(src);
        assert_eq!(
            f.syntax_error.is_none(),
            ipy,
            "IPython says valid={ipy} for {src:?}; nb2pipe: {:?}",
            f.syntax_error
        );
    }
}

#[test]
fn every_magic_ipython_registers_is_known() {
    let out = ipython(
        "import json\nfrom IPython.core.interactiveshell import InteractiveShell\n\
         m = InteractiveShell.instance().magics_manager.lsmagic()\n\
         print(json.dumps([sorted(m['line']), sorted(m['cell'])]))",
    );
    let (line, cell): (Vec<String>, Vec<String>) = serde_json::from_str(&out).unwrap();
    assert!(line.len() > 50 && cell.len() > 10, "{out}");
    let unknown: Vec<&String> = line
        .iter()
        .filter(|m| matches!(classify_line_magic(m), LineMagic::Unknown))
        .collect();
    assert!(
        unknown.is_empty(),
        "line magics nb2pipe does not know: {unknown:?}"
    );
    let unknown: Vec<&String> = cell
        .iter()
        .filter(|m| {
            matches!(
                analyse_cell(&format!("%%{m}\n")).cell_magic,
                None | Some(CellMagic::Unknown { .. })
            )
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "cell magics nb2pipe does not know: {unknown:?}"
    );
}

fn notebook(dir: &std::path::Path, cells: &[(&str, &str)]) -> std::path::PathBuf {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(src, tag)| serde_json::json!({"cell_type": "code", "metadata": {"tags": [tag]}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    let p = dir.join("nb.ipynb");
    std::fs::write(&p, nb.to_string()).unwrap();
    p
}

#[test]
fn ipython_cells_plan_without_warnings_and_their_tasks_run() {
    let dir = common::tempdir();
    std::fs::write(
        dir.path().join("helpers.py"),
        "__all__ = ['helper']\ndef helper(x):\n    return x * 2\ndef hidden():\n    pass\n",
    )
    .unwrap();
    let nb = notebook(
        dir.path(),
        &[
            ("import os\n%load_ext watermark\n%load_ext tensorboard", "imports"),
            ("    base = 20\n    word = 'hey'\n    print(base)", "task:make"),
            ("%%capture out\n%%sh\necho captured", "task:shell"),
            ("%watermark\n%tensorboard --logdir logs\ntmp = base + 1\n%xdel tmp\nprint('x' + str(base))", "task:magics"),
            ("from math import *\nprint(sqrt(base))\n!echo said $word", "task:star"),
            ("from helpers import *\nprint(helper(base))", "task:local"),
        ],
    );
    let (code, _, stderr) = common::run(&["check", nb.to_str().unwrap()]);
    for bad in ["NB010", "NB011", "NB101"] {
        assert!(!stderr.contains(bad), "{bad} in:\n{stderr}");
    }
    let _ = code;
    let out = dir.path().join("build");
    let py = common::python_env("EXEC");
    let (code, stdout, stderr) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "--python",
        py.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let logs = walk(&out);
    for want in ["said hey", "40", "4.47", "x20"] {
        assert!(logs.contains(want), "{want} not in the task logs:\n{logs}");
    }
}

/// The text of every task log under `dir`.
fn walk(dir: &std::path::Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            s.push_str(&walk(&p));
        } else if p.extension().is_some_and(|x| x == "log") {
            s.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    s
}

#[test]
fn an_extension_magic_before_its_load_ext_is_reported() {
    let dir = common::tempdir();
    let nb = notebook(
        dir.path(),
        &[("%watermark\n%load_ext watermark", "task:one")],
    );
    let (_, _, stderr) = common::run(&["check", nb.to_str().unwrap()]);
    assert!(
        stderr.contains("NB011") && stderr.contains("%load_ext watermark"),
        "{stderr}"
    );
}

#[test]
fn a_local_star_import_binds_only_what_the_module_exports() {
    let dir = common::tempdir();
    std::fs::write(
        dir.path().join("helpers.py"),
        "__all__ = ['helper']\ndef helper(x):\n    return x\ndef hidden():\n    pass\n",
    )
    .unwrap();
    let nb = notebook(
        dir.path(),
        &[(
            "from helpers import *\nprint(helper(1), hidden())",
            "task:one",
        )],
    );
    let (_, _, stderr) = common::run(&["check", nb.to_str().unwrap()]);
    assert!(stderr.contains("`hidden` is read here"), "{stderr}");
    assert!(!stderr.contains("`helper` is read here"), "{stderr}");
}

/// Cells run in a real kernel (tests/run/kernel.py) in `folder`, with the extension's
/// source (python/) importable: per cell, its printed text and its error.
fn kernel(folder: &std::path::Path, cells: &[String]) -> Vec<serde_json::Value> {
    let dir = common::tempdir();
    let (input, out) = (dir.path().join("cells.json"), dir.path().join("out.json"));
    std::fs::write(&input, serde_json::to_string(cells).unwrap()).unwrap();
    let mut cmd = Command::new(common::python_env("EXEC"));
    cmd.arg(common::root().join("tests/run/kernel.py"))
        .arg(&input)
        .arg(folder)
        .arg(&out)
        .env("PYTHONPATH", common::root().join("wheel/python"));
    let done = common::split::run_bounded(cmd, "kernel.py");
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    common::read_json(&out).as_array().unwrap().clone()
}

fn source(nb: &serde_json::Value, tag: &str) -> String {
    let cell = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metadata"]["tags"].to_string().contains(tag))
        .unwrap();
    match &cell["source"] {
        serde_json::Value::String(s) => s.clone(),
        lines => lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect(),
    }
}

/// `%nb2pipe inputs/outputs TASK` after a real `nb2pipe run`: the kernel gets the very
/// values the task received and handed on, which the notebook's own cells, run in the
/// kernel, compute again; after `--only`, inputs come from the run that made them.
#[test]
fn the_extension_loads_the_values_a_task_received_into_a_kernel() {
    let split = common::split::nb2pipe_run("values", &[]);
    assert_eq!(split.done.code, 0, "{}", split.done.stderr);
    let nb = common::read_json(&common::fixture("exec/values.ipynb"));
    let first_run = split.record["run_id"].as_str().unwrap().to_string();
    let cells: Vec<String> = vec![
        // What the notebook computes, kept under other names.
        format!("{}\n{}\nexpected_df = df\ndel df", source(&nb, "imports"), source(&nb, "task:load")),
        "%load_ext nb2pipe".into(),
        "%nb2pipe runs".into(),
        "%nb2pipe inputs prepare".into(),
        "print('DF', type(df).__name__, df.equals(expected_df), df is expected_df)".into(),
        format!("{}\nexpected = (labels, scaled)\ndel labels, scaled", source(&nb, "task:prepare")),
        "%nb2pipe outputs prepare".into(),
        "print('OUT', np.array_equal(labels, expected[0]), np.array_equal(scaled, expected[1]), scaled.dtype)".into(),
        "%nb2pipe inputs nosuch".into(),
        "%nb2pipe outputs prepare --run 1999".into(),
        "%nb2pipe bogus".into(),
    ];
    let out = kernel(&split.folder, &cells);
    for (i, o) in out.iter().enumerate().take(8) {
        assert!(o["error"].is_null(), "cell {i} {:?}: {o}", cells[i]);
    }
    let runs = out[2]["text"].as_str().unwrap();
    assert!(
        runs.contains(&format!("values  run {first_run}  (latest)"))
            && runs.contains("prepare  succeeded"),
        "{runs}"
    );
    assert!(
        out[3]["text"].as_str().unwrap().contains(&format!(
            "inputs of task 'prepare', run {first_run} (succeeded): df (pandas.DataFrame)"
        )),
        "{}",
        out[3]
    );
    assert_eq!(out[4]["text"], "DF DataFrame True False\n");
    assert_eq!(out[7]["text"], "OUT True True float64\n");
    // IPython prints a UsageError on stderr, without a traceback.
    let err = |i: usize| out[i]["text"].as_str().unwrap().to_string();
    assert_eq!(err(8), "UsageError: no run has a task 'nosuch'\n");
    assert!(
        err(9).starts_with("UsageError: no run '1999' of task 'prepare'; runs: "),
        "{}",
        err(9)
    );
    assert!(
        err(10).starts_with("UsageError: usage:\n    %nb2pipe runs"),
        "{}",
        err(10)
    );

    // `--only train` reads prepare's values from the first run; so does the extension.
    let nb_path = split.folder.join("values.ipynb");
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(&nb_path)
        .args(["--only", "train", "--python"])
        .arg(common::split::python())
        .arg("-o")
        .arg(split.folder.join("build"));
    let done = common::split::run_bounded(cmd, "nb2pipe run --only train");
    assert_eq!(done.code, 0, "{}", done.stderr);
    let out = kernel(
        &split.folder,
        &[
            "%load_ext nb2pipe".into(),
            "%nb2pipe inputs train".into(),
            "got = scaled\ndel scaled".into(),
            "%nb2pipe outputs prepare".into(),
            "import numpy as np\nprint('SAME', np.array_equal(got, scaled))".into(),
        ],
    );
    let text = out[1]["text"].as_str().unwrap();
    assert!(out[1]["error"].is_null(), "{}", out[1]);
    assert!(
        !text.contains(&first_run)
            && text.contains("labels (numpy.ndarray), scaled (numpy.ndarray)"),
        "{text}"
    );
    // prepare is not in the --only run: its outputs are found in the first run.
    assert!(
        out[3]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("run {first_run}")),
        "{}",
        out[3]
    );
    assert_eq!(out[4]["text"], "SAME True\n", "{}", out[4]);
}
