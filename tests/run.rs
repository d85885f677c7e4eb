//! Proof tier for `nb2pipe run`: each executable fixture in fixtures/exec/ runs whole with
//! nbclient (tests/run/nbrun.py) and split with `nb2pipe run`, each in its own copy of
//! the fixture folder, and what every task printed must equal what its cells printed in
//! the notebook. Needs the "exec" venv (NB2PIPE_PY_EXEC, tests/env/python-envs.sh exec).

mod common;

use common::split::*;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn values_dataframe_array_and_model() {
    let (result, split) = prove("values", &[], &[]);
    assert_eq!(result["rows"], 150);
    assert_eq!(store_formats(&split, "load"), ["df.parquet"]);
    assert_eq!(
        store_formats(&split, "prepare"),
        ["labels.npy", "scaled.npy"]
    );
    assert_eq!(store_formats(&split, "train"), ["model.pkl"]);
    assert!(
        split.folder.join("values-hist.png").is_file(),
        "the figure was not saved"
    );
    assert!(
        split.log("train").contains("CPU times: user "),
        "%time printed no timing"
    );
}

#[test]
fn closures_lambdas_and_rebinding() {
    let (result, split) = prove("closures", &[], &[]);
    // make binds value=10, rebind makes it 15, finish doubles the latest binding.
    assert_eq!(result["value"], 30);
    assert_eq!(result["again"], 90);
    assert_eq!(
        store_formats(&split, "make"),
        ["scale.pkl", "square.pkl", "value.pkl"]
    );
}

#[test]
fn params_overridden_and_functions_cell() {
    let (result, split) = prove(
        "params",
        &[("n_estimators", "7"), ("label", "override")],
        &[],
    );
    assert_eq!(result["trees"], 7);
    assert_eq!(result["label"], "override");
    assert!(
        split.log("load").contains("wine: 178 rows"),
        "{}",
        split.log("load")
    );
    assert!(
        split.log("fit").contains("trees: 7 rows"),
        "{}",
        split.log("fit")
    );
}

#[test]
fn params_defaults_without_overrides() {
    let (result, _) = prove("params", &[], &[]);
    assert_eq!(result["trees"], 3);
    assert_eq!(result["label"], "default");
}

#[test]
fn shell_writefile_echo_and_bash() {
    let (result, split) = prove("shell", &[], &[]);
    assert_eq!(result["loud"], "PIPELINE!");
    let log = split.log("write");
    assert!(
        log.contains("hello pipeline\n") && log.contains("from bash\n42\n"),
        "{log}"
    );
    assert!(split.folder.join("exec_shell_helpers.py").is_file());
    // Kept in the store too, for tasks that run in other pods.
    assert!(split.run_dir.join("files/exec_shell_helpers.py").is_file());
}

#[test]
fn independent_branches_run_in_parallel() {
    let (_, split) = prove("branches", &[], &["--jobs", "2"]);
    let (l, r) = (split.task("left"), split.task("right"));
    let span = |t: &Value| {
        (
            t["started_ms"].as_u64().unwrap(),
            t["ended_ms"].as_u64().unwrap(),
        )
    };
    let ((ls, le), (rs, re)) = (span(l), span(r));
    assert!(
        ls < re && rs < le,
        "left {ls}..{le} and right {rs}..{re} did not overlap"
    );
    let join = span(split.task("join")).0;
    assert!(
        join >= le.max(re),
        "join started before both branches ended"
    );
}

#[test]
fn one_job_runs_branches_one_after_the_other() {
    let split = nb2pipe_run("branches", &["--jobs", "1"]);
    assert_eq!(split.done.code, 0, "{}", split.done.stderr);
    let span = |n: &str| {
        (
            split.task(n)["started_ms"].as_u64().unwrap(),
            split.task(n)["ended_ms"].as_u64().unwrap(),
        )
    };
    let ((ls, le), (rs, re)) = (span("left"), span("right"));
    assert!(
        le <= rs || re <= ls,
        "with --jobs 1 the branches overlapped"
    );
}

#[test]
fn digits_series_and_float_array() {
    let (result, split) = prove("digits", &[], &[]);
    assert_eq!(result["depth"], 4);
    assert_eq!(
        store_formats(&split, "load"),
        ["images.npy", "target.parquet-series"]
    );
    assert_eq!(store_formats(&split, "train"), ["flat.parquet", "tree.pkl"]);
}

#[test]
fn global_random_states_and_settings_carry_between_tasks() {
    let (result, split) = prove("globals", &[], &[]);
    // Settings made in the first task hold in the later ones.
    assert_eq!(result["routed"], "LogisticRegression");
    assert_eq!(result["caught"], "raised");
    assert_eq!(result["shown"], 7, "display.max_rows was not replayed");
    // The random states travel as JSON, through the chain of tasks.
    for task in ["seed", "draw", "forest", "routing", "show"] {
        let state = split.run_dir.join("state").join(task).join("random.json");
        let doc = common::read_json(&state);
        assert_eq!(doc["numpy"][0], "MT19937", "{task}");
    }
    assert!(!split.run_dir.join("state/report").exists());
}

#[test]
fn a_seed_in_the_imports_cell_continues_in_each_task() {
    let (result, _) = prove("seeded_prelude", &[], &[]);
    assert_ne!(
        result["a"], result["b"],
        "each task restarted from the seed"
    );
    assert_ne!(result["b"], result["c"]);
}

#[test]
fn failing_task_names_cell_and_line_like_the_notebook() {
    let (cells, error) = run_notebook("failing", &[]);
    assert_eq!(error["cell"], 2, "{error}");
    assert_eq!(error["ename"], "KeyError");
    let split = nb2pipe_run("failing", &[]);
    assert_eq!(split.done.code, 1, "{}", split.done.stderr);
    let err = &split.done.stderr;
    assert!(
        err.contains("task `broken` failed (exit status 1)"),
        "{err}"
    );
    assert!(err.contains("in notebook cell 3 (`total = int(table['a'].sum())`), line 3: KeyError: 'no_such_column'"), "{err}");
    assert!(
        err.contains("   3 | missing = table['no_such_column']"),
        "{err}"
    );
    assert!(err.contains("last ") && err.contains("broken.log"), "{err}");
    assert_eq!(split.task("load")["state"], "succeeded");
    assert_eq!(split.task("broken")["state"], "failed");
    assert_eq!(split.task("broken")["error"]["cell"], 2);
    assert_eq!(split.task("broken")["error"]["line"], 3);
    assert_eq!(split.task("after")["state"], "skipped");
    // What ran before the error printed the same as in the notebook.
    assert_same_output("failing", &cells, &split);
    let log = split.log("broken");
    assert!(
        log.contains("total 6\n") && !log.contains("not reached"),
        "{log}"
    );
    assert!(
        log.contains("nb2pipe: task 'broken' failed in notebook failing.ipynb, cell 3 (`total = int(table['a'].sum())`), line 3: KeyError"),
        "{log}"
    );
}

#[test]
fn only_reruns_one_task_against_the_latest_run() {
    let (dir, nb) = copy_fixture("closures");
    let first = split_in(dir, &nb, &[]);
    assert_eq!(first.done.code, 0, "{}", first.done.stderr);
    let first_id = first.record["run_id"].as_str().unwrap().to_string();
    let build = first.folder.join("build");
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "--python",
        python().to_str().unwrap(),
        "-o",
        build.to_str().unwrap(),
        "--only",
        "finish",
    ]);
    assert_eq!(code, 0, "{err}");
    let latest = std::fs::read_to_string(build.join("nb2pipe-data/closures/latest")).unwrap();
    let second = common::read_json(
        &build
            .join("nb2pipe-data/closures")
            .join(latest.trim())
            .join("run.json"),
    );
    assert_ne!(second["run_id"], first_id.as_str());
    assert_eq!(second["only"], "finish");
    assert_eq!(second["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(second["value_runs"]["apply"], first_id.as_str());
    assert_eq!(second["value_runs"]["finish"], second["run_id"]);
    let log2 = std::fs::read_to_string(
        build
            .join("nb2pipe-data/closures")
            .join(latest.trim())
            .join("logs/finish.log"),
    )
    .unwrap();
    assert_eq!(log2, first.log("finish"));

    // A value of the first run gone: the re-run names the task that should have made it.
    std::fs::remove_file(first.run_dir.join("values/apply/scaled.format")).unwrap();
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "--python",
        python().to_str().unwrap(),
        "-o",
        build.to_str().unwrap(),
        "--only",
        "finish",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "input 'scaled' of task 'finish' is missing: task 'apply' should have produced it"
        ),
        "{err}"
    );
}

#[test]
fn only_without_an_earlier_run_is_a_usage_error() {
    let (dir, nb) = copy_fixture("closures");
    let out = dir.path().join("build");
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "--python",
        python().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--only",
        "finish",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no earlier run of `closures`"), "{err}");
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--only",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no task named `nope`; tasks: make, rebind, apply, finish"),
        "{err}"
    );
}

#[test]
fn unknown_parameter_is_a_usage_error() {
    let (dir, nb) = copy_fixture("params");
    let out = dir.path().join("build");
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "n_trees=3",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown parameter `n_trees`; parameters: n_estimators, label, seed"),
        "{err}"
    );
    let (code, _, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "label",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("expected NAME=VALUE"), "{err}");
}

/// Writes a notebook (cells: (source, tags)) into a fresh folder.
fn scratch_notebook(name: &str, cells: &[(&str, &[&str])]) -> (tempfile::TempDir, PathBuf) {
    let dir = common::tempdir();
    let cells: Vec<Value> = cells
        .iter()
        .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    let path = dir.path().join(format!("{name}.ipynb"));
    std::fs::write(&path, nb.to_string()).unwrap();
    (dir, path)
}

#[test]
fn unserialisable_value_names_variable_producer_and_consumer() {
    let (dir, nb) = scratch_notebook(
        "gen",
        &[
            (
                "numbers = (i * i for i in range(4))\nhandle = open('scratch.txt', 'w')",
                &["task:make"],
            ),
            ("print(sum(numbers))\nhandle.write('x')", &["task:use"]),
        ],
    );
    let split = split_in(dir, &nb, &[]);
    assert_eq!(split.done.code, 1, "{}", split.done.stderr);
    let err = &split.done.stderr;
    assert!(
        err.contains("cannot pass 'handle' (a _io.TextIOWrapper) from task 'make' to task 'use'"),
        "{err}"
    );
    assert_eq!(split.task("use")["state"], "skipped");
}

#[test]
fn unknown_magic_is_a_clear_error_at_run_time() {
    let (dir, nb) = scratch_notebook(
        "magic",
        &[("x = 1\n%no_such_magic_here 3\nprint(x)", &["task:one"])],
    );
    let split = split_in(dir, &nb, &[]);
    assert!(
        split.done.stderr.contains("NB011"),
        "convert should warn: {}",
        split.done.stderr
    );
    assert_eq!(split.done.code, 1);
    let err = &split.done.stderr;
    assert!(err.contains("the magic %no_such_magic_here (cell 1 (`x = 1`), line 2) has no equivalent outside IPython"), "{err}");
    assert!(
        err.contains("in notebook cell 1 (`x = 1`), line 2"),
        "{err}"
    );
}

#[test]
fn s3_store_against_a_local_server() {
    let scratch = common::tempdir();
    let moto = start_moto(&scratch.path().join("moto.log"));
    let boto = |code: &str| {
        let mut cmd = Command::new(python());
        cmd.arg("-c").arg(code);
        s3_env(&mut cmd, &moto.url);
        let d = run_bounded(cmd, "boto3");
        assert_eq!(d.code, 0, "boto3 failed:\n{}", d.stderr);
        d.stdout
    };
    boto("import boto3, os; boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT']).create_bucket(Bucket='pipes')");

    let (cells, _) = run_notebook("digits", &[]);
    let (dir, nb) = copy_fixture("digits");
    let out = dir.path().join("build");
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(&nb)
        .arg("--python")
        .arg(python())
        .arg("-o")
        .arg(&out)
        .args(["--data", "s3://pipes/team/a"]);
    s3_env(&mut cmd, &moto.url);
    let done = run_bounded(cmd, "nb2pipe run --data s3://");
    assert_eq!(done.code, 0, "{}", done.stderr);
    let runs = out.join("nb2pipe-runs/digits");
    let run_id = std::fs::read_to_string(runs.join("latest"))
        .unwrap()
        .trim()
        .to_string();
    let split = Split {
        folder: dir.path().to_path_buf(),
        _dir: dir,
        done,
        plan: find_plan(&out),
        record: common::read_json(&runs.join(&run_id).join("run.json")),
        run_dir: runs.join(&run_id),
    };
    assert_same_output("digits", &cells, &split);
    assert!(
        !split.run_dir.join("values").exists(),
        "values were written locally"
    );

    let keys = boto("import boto3, os\nc = boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT'])\nfor o in c.list_objects_v2(Bucket='pipes')['Contents']: print(o['Key'])");
    let prefix = format!("team/a/digits/{run_id}/values/");
    let mut got: Vec<&str> = keys
        .lines()
        .filter_map(|k| k.strip_prefix(&prefix))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "load/images.format",
            "load/images.npy",
            "load/images.sha256",
            "load/target.format",
            "load/target.parquet-series",
            "load/target.sha256",
            "train/flat.format",
            "train/flat.parquet",
            "train/flat.sha256",
            "train/tree.format",
            "train/tree.pkl",
            "train/tree.sha256"
        ],
        "all keys: {keys}"
    );
    drop(moto);
}

#[test]
fn travel_local_module_data_file_and_a_file_handed_on_by_open() {
    let (result, split) = prove("travel", &[], &[]);
    assert_eq!(
        result,
        serde_json::json!({"loud": "TOTAL=12!", "note": "total=12", "total": 12})
    );
    // Locally the tasks run in the notebook's folder, as its kernel did.
    assert!(split.folder.join("travel-note.txt").is_file());
}

#[test]
fn s3_store_shares_the_working_directory_between_tasks() {
    let scratch = common::tempdir();
    let moto = start_moto(&scratch.path().join("moto.log"));
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg("import boto3, os; boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT']).create_bucket(Bucket='pipes')");
    s3_env(&mut cmd, &moto.url);
    assert_eq!(run_bounded(cmd, "create bucket").code, 0);

    let (dir, nb) = copy_fixture("travel");
    let bundle = common::convert(&nb, &dir.path().join("out"), &[]);
    // As in pods: each task in a folder of its own (not the notebook's), the store shared.
    let mut printed = String::new();
    for task in ["load", "note", "report"] {
        let cwd = scratch.path().join(format!("pod-{task}"));
        std::fs::create_dir_all(&cwd).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(bundle.join(format!("tasks/{task}/main.py")))
            .current_dir(&cwd)
            .env("NB2PIPE_WORKDIR", "store")
            .env("NB2PIPE_DATA", "s3://pipes/w")
            .env("NB2PIPE_RUN_ID", "r1")
            .env("HOME", &cwd);
        s3_env(&mut cmd, &moto.url);
        let d = run_bounded(cmd, task);
        assert_eq!(d.code, 0, "{task}:\n{}\n{}", d.stdout, d.stderr);
        // Nothing lands in the task's own folder but what it writes to HOME.
        let left: Vec<String> = std::fs::read_dir(&cwd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".travel-cache")
            .collect();
        assert!(
            left.is_empty(),
            "{task} wrote {left:?} outside the working directory"
        );
        printed.push_str(&d.stdout);
    }
    assert_eq!(
        result_line(&printed),
        serde_json::json!({"loud": "TOTAL=12!", "note": "total=12", "total": 12})
    );
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg("import boto3, os\nc = boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT'])\nfor o in c.list_objects_v2(Bucket='pipes', Prefix='w/travel/r1/work/')['Contents']: print(o['Key'])");
    s3_env(&mut cmd, &moto.url);
    let d = run_bounded(cmd, "list");
    // The file load wrote, uploaded; the data file it brought is not (it is in the image).
    assert_eq!(
        d.stdout.trim(),
        "w/travel/r1/work/travel-note.txt",
        "{}",
        d.stderr
    );
    drop(moto);
}

#[test]
fn values_changed_in_place_reach_later_tasks() {
    let (result, split) = prove("inplace", &[], &[]);
    // The notebook: sum 30.0 cfg {'k': 2} xs [1, 5]; the producer's values were 3.0, 1, [1].
    assert_eq!(result["sum"], 30.0);
    assert_eq!(result["b"], 33.0);
    assert_eq!(result["cfg"]["k"], 2);
    assert_eq!(result["xs"], serde_json::json!([1, 5]));
    assert_eq!(
        (result["n"].clone(), result["size"].clone()),
        (1.into(), 3.into())
    );
    let enrich = split.plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "enrich")
        .unwrap();
    assert_eq!(
        enrich["changes"],
        serde_json::json!(["box", "cfg", "counts", "df", "xs"])
    );
    assert_eq!(store_formats(&split, "widen"), ["df.parquet"]);
}

#[test]
fn a_model_fitted_in_a_middle_task_reaches_evaluation() {
    let (result, split) = prove("fitted", &[], &[]);
    assert!(result["accuracy"].as_f64().unwrap() > 0.9, "{result}");
    assert_ne!(
        result["first"], result["second"],
        "the generator was not advanced"
    );
    let inputs = |task: &str| -> Vec<(String, String)> {
        split.plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == task)
            .unwrap()["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().into(),
                    i["from"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    // The last task that may have changed each object hands it on.
    assert!(inputs("plot").contains(&("model".into(), "train".into())));
    assert!(inputs("macro").contains(&("rng".into(), "train".into())));
    assert!(inputs("report").contains(&("fpr".into(), "macro".into())));
    let (train, plot) = (split.task("train"), split.task("plot"));
    assert!(plot["started_ms"].as_u64() >= train["ended_ms"].as_u64());
    // `plot` may have changed the model (`weight(model)`) but did not: it stores
    // where the model is instead of a second copy.
    assert_eq!(store_formats(&split, "plot"), ["coef.pkl", "model.ref"]);
    let r: Value = serde_json::from_slice(
        &std::fs::read(split.run_dir.join("values/plot/model.ref")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["task"], "train");
    assert_eq!(
        store_formats(&split, "train"),
        ["first.pkl", "model.pkl", "rng.pkl"]
    );
}

#[test]
fn imports_are_replayed_never_passed() {
    let (result, split) = prove("imports_top", &[], &[]);
    assert_eq!(result["median"], 3);
    // The untagged imports above every task are set-up, not a task.
    let names: Vec<&str> = split.plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(store_formats(&split, "first"), ["root.pkl"]);
    let main = std::fs::read_to_string(split.folder.join("build/imports_top/tasks/second/main.py"))
        .or_else(|_| {
            // The bundle folder is named after the pipeline.
            std::fs::read_to_string(
                std::fs::read_dir(split.folder.join("build"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.path().join("tasks/second/main.py"))
                    .find(|p| p.exists())
                    .unwrap(),
            )
        })
        .unwrap();
    assert!(main.contains("import statistics"), "{main}");
}

#[test]
fn a_scattered_task_is_warned_about() {
    let (cells, _) = run_notebook("scattered", &[]);
    let split = nb2pipe_run("scattered", &[]);
    assert_eq!(split.done.code, 0, "{}", split.done.stderr);
    let err = &split.done.stderr;
    assert_eq!(err.matches("warning[NB105]").count(), 2, "{err}");
    assert!(
        err.contains("task `prep`") && err.contains("`price` crosses"),
        "{err}"
    );
    // What the warning is about: the split run computes another total.
    let nb_text: String = cells.values().filter_map(Value::as_str).collect();
    assert_eq!(result_line(&nb_text)["total"], 43.98);
    assert_eq!(result_line(&split.log("report"))["total"], 94.25);
}

/// `--progress jsonl`: the JSON lines a program follows (the JupyterLab panel) give the
/// run id and every state change in order; run.json names each task's inputs and outputs.
#[test]
fn progress_jsonl_reports_each_state_change() {
    let dir = common::tempdir();
    let nb = dir.path().join("plain.ipynb");
    let cell = |src: &str, tag: &str| {
        serde_json::json!({"cell_type": "code", "execution_count": null,
        "metadata": {"tags": [tag]}, "outputs": [], "source": src})
    };
    let doc = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        cell("xs = [1, 2]", "task:make"),
        cell("total = sum(xs)\nprint(total)", "task:add"),
    ]});
    std::fs::write(&nb, doc.to_string()).unwrap();
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(&nb)
        .args(["--progress", "jsonl", "--python"])
        .arg(python());
    let done = run_bounded(cmd, "nb2pipe run --progress jsonl");
    assert_eq!(done.code, 0, "{}", done.stderr);
    let events: Vec<Value> = done
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(events[0]["event"], "begin");
    assert_eq!(events[0]["tasks"], serde_json::json!(["make", "add"]));
    let run_dir = PathBuf::from(events[0]["run_dir"].as_str().unwrap());
    let changes: Vec<(String, String)> = events[1..events.len() - 1]
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "task");
            (
                e["task"].as_str().unwrap().into(),
                e["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let s = |t: &str, st: &str| (t.to_string(), st.to_string());
    assert_eq!(
        changes,
        [
            s("make", "running"),
            s("make", "succeeded"),
            s("add", "running"),
            s("add", "succeeded")
        ]
    );
    assert!(events[2]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(events.last().unwrap()["event"], "end");
    let record = common::read_json(&run_dir.join("run.json"));
    assert_eq!(record["run_id"], events[0]["run_id"]);
    assert_eq!(record["tasks"][0]["outputs"], serde_json::json!(["xs"]));
    assert_eq!(
        record["tasks"][1]["inputs"],
        serde_json::json!({"xs": "make"})
    );
}

#[test]
fn spark_dataframe_to_a_pandas_task_that_trains_a_model() {
    // Real PySpark in local mode: the Spark task's DataFrame travels as Parquet files
    // Spark wrote; the pandas task reads them with pyarrow, without a JVM.
    let (result, split) = prove("spark", &[], &[]);
    assert_eq!(
        result,
        serde_json::json!({"best": "e", "coef": 8.1034, "stores": ["a", "b", "c", "d", "e"], "units": 322})
    );
    assert_eq!(
        store_formats(&split, "aggregate"),
        ["totals.spark-parquet", "totals.spark-parquet.d"]
    );
    let dir = split
        .run_dir
        .join("values/aggregate/totals.spark-parquet.d");
    let parts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet") && !n.starts_with('.'))
        .collect();
    assert!(
        !parts.is_empty(),
        "Spark wrote no Parquet files in {}",
        dir.display()
    );
    let tasks = split.plan["tasks"].as_array().unwrap();
    let reqs = |t: &str| -> Vec<String> {
        tasks.iter().find(|x| x["name"] == t).unwrap()["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(reqs("aggregate").contains(&"pyspark".to_string()));
    let train = reqs("train");
    assert!(
        train.contains(&"pyarrow".to_string()) && train.contains(&"pandas".to_string()),
        "{train:?}"
    );
    assert!(!train.contains(&"pyspark".to_string()), "{train:?}");
    // A Spark consumer reads the dataset with Spark: no pandas stack added.
    let top = reqs("top");
    assert!(
        top.contains(&"pyspark".to_string()) && !top.contains(&"pyarrow".to_string()),
        "{top:?}"
    );
    assert!(split.log("top").contains("best e"));
}
