//! Task caching through `nb2pipe run` (docs/running.md, "Caching"): what is served from
//! the cache, what runs again, and that a damaged, incomplete or concurrent entry is
//! never reused. Needs the "exec" venv (NB2PIPE_PY_EXEC).

mod common;

#[path = "docker/helpers.rs"]
mod helpers;

use std::path::{Path, PathBuf};

use common::split::{python, run_bounded, s3_env, start_moto, Done};
use serde_json::Value;

/// A notebook of tasks `a` → `b` → `c` (stdlib only, fast) in a fresh folder.
fn notebook(dir: &Path, a: &str, c: &str) -> PathBuf {
    let cells = [
        ("n = 3", vec!["parameters"]),
        (a, vec!["task:a"]),
        ("y = [v * 2 for v in x]\nprint('b made', y)", vec!["task:b"]),
        (c, vec!["task:c"]),
    ];
    let cells: Vec<Value> = cells
        .iter()
        .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    let path = dir.join("chain.ipynb");
    std::fs::write(&path, nb.to_string()).unwrap();
    path
}

const A: &str = "x = list(range(n))\nprint('a made', x)";
const C: &str = "print('RESULT', sum(y))";

struct Run {
    done: Done,
    record: Value,
    dir: PathBuf,
}

impl Run {
    fn states(&self) -> Vec<(String, String)> {
        self.record["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn log(&self, task: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{task}.log"))).unwrap()
    }
}

fn states(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn run(nb: &Path, out: &Path, data: &Path, extra: &[&str]) -> Run {
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(nb)
        .arg("--python")
        .arg(python())
        .arg("-o")
        .arg(out)
        .arg("--data")
        .arg(data)
        .args(extra);
    let done = run_bounded(cmd, "nb2pipe run");
    let latest = std::fs::read_to_string(data.join("chain/latest")).unwrap();
    let dir = data.join("chain").join(latest.trim());
    let record = common::read_json(&dir.join("run.json"));
    Run { done, record, dir }
}

fn entries(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join(".nb2pipe/cache"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn result(r: &Run) -> String {
    r.log("c")
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT in c's log: {}", r.log("c")))
        .to_string()
}

#[test]
fn unchanged_tasks_are_served_from_the_cache_and_the_flags_run_them() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let nb = notebook(d, A, C);
    let first = run(&nb, &out, &data, &[]);
    assert_eq!(first.done.code, 0, "{}", first.done.stderr);
    assert_eq!(
        first.states(),
        states(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert_eq!(entries(&data).len(), 3);
    assert_eq!(result(&first), "RESULT 6");

    // Nothing changed: nothing runs, and the values are in the new run.
    let second = run(&nb, &out, &data, &[]);
    assert_eq!(second.done.code, 0, "{}", second.done.stderr);
    assert_eq!(
        second.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );
    assert!(
        second
            .done
            .stderr
            .contains("3 of 3 task(s) succeeded (3 from the cache)"),
        "{}",
        second.done.stderr
    );
    assert!(
        second.log("b").contains("served from the cache"),
        "{}",
        second.log("b")
    );
    assert!(
        !second.log("b").contains("b made"),
        "b's code ran: {}",
        second.log("b")
    );
    for (task, value) in [("a", "x.pkl"), ("b", "y.pkl")] {
        let v = second.dir.join("values").join(task).join(value);
        assert_eq!(
            std::fs::read(&v).unwrap(),
            std::fs::read(first.dir.join("values").join(task).join(value)).unwrap()
        );
    }

    // The last task edited: only it runs.
    let nb = notebook(d, A, "print('RESULT', sum(y) + 1)");
    let third = run(&nb, &out, &data, &[]);
    assert_eq!(
        third.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "succeeded")])
    );
    assert_eq!(result(&third), "RESULT 7");

    // A parameter override reaches the tasks that read it, and what they feed.
    let p = run(&nb, &out, &data, &["-p", "n=4"]);
    assert_eq!(
        p.states(),
        states(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert_eq!(result(&p), "RESULT 13");

    // --rerun: that task and everything downstream.
    let rerun = run(&nb, &out, &data, &["--rerun", "b"]);
    assert_eq!(
        rerun.states(),
        states(&[("a", "cached"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert!(rerun.log("b").contains("b made"));

    // --no-cache: everything runs and nothing is recorded.
    let before = entries(&data);
    let nb = notebook(d, A, "print('RESULT', sum(y) + 2)");
    let off = run(&nb, &out, &data, &["--no-cache"]);
    assert_eq!(
        off.states(),
        states(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert_eq!(entries(&data), before, "--no-cache recorded an entry");
    assert_eq!(result(&off), "RESULT 8");

    // An unknown task for --rerun is a usage error.
    let bad = run(&nb, &out, &data, &["--rerun", "nope"]);
    assert_eq!(bad.done.code, 2, "{}", bad.done.stderr);
    assert!(
        bad.done.stderr.contains("no task named `nope`"),
        "{}",
        bad.done.stderr
    );
}

#[test]
fn an_upstream_task_that_makes_the_same_bytes_does_not_rerun_its_consumers() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let first = run(&notebook(d, A, C), &out, &data, &[]);
    assert_eq!(first.done.code, 0, "{}", first.done.stderr);
    // Other code, the same value.
    let same = "x = [i for i in range(n)]\nprint('a made', x)";
    let second = run(&notebook(d, same, C), &out, &data, &[]);
    assert_eq!(
        second.states(),
        states(&[("a", "succeeded"), ("b", "cached"), ("c", "cached")])
    );
    // Another value: its consumers run.
    let other = "x = list(range(n + 1))";
    let third = run(&notebook(d, other, C), &out, &data, &[]);
    assert_eq!(
        third.states(),
        states(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert_eq!(result(&third), "RESULT 12");
}

/// The entry of `task`, from the run that recorded it.
fn entry_of(data: &Path, task: &str) -> (PathBuf, Value) {
    entries(data)
        .into_iter()
        .map(|p| (p.clone(), common::read_json(&p)))
        .find(|(_, v)| v["task"] == task)
        .unwrap_or_else(|| panic!("no entry for {task}"))
}

#[test]
fn a_damaged_or_incomplete_entry_is_never_reused() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let nb = notebook(d, A, C);
    assert_eq!(run(&nb, &out, &data, &[]).done.code, 0);

    // A truncated object (a pod killed mid-write on a store without atomic renames).
    let (_, e) = entry_of(&data, "b");
    let obj = data
        .join(".nb2pipe/objects/sha256")
        .join(e["outputs"]["y"]["sha256"].as_str().unwrap());
    let bytes = std::fs::read(&obj).unwrap();
    // The runs' values are hard links to the object: write a new file, not through them.
    std::fs::remove_file(&obj).unwrap();
    std::fs::write(&obj, &bytes[..bytes.len() / 2]).unwrap();
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(r.done.code, 0, "{}", r.done.stderr);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "succeeded"), ("c", "cached")])
    );
    assert!(r.log("b").contains("not used: object"), "{}", r.log("b"));
    assert_eq!(
        std::fs::read(&obj).unwrap(),
        bytes,
        "the object was written again"
    );

    // The same size, other bytes: the digest catches it.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    std::fs::remove_file(&obj).unwrap();
    std::fs::write(&obj, &flipped).unwrap();
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "succeeded"), ("c", "cached")])
    );

    // An entry that does not list every output, and one cut short.
    let (path, mut e) = entry_of(&data, "a");
    e["outputs"].as_object_mut().unwrap().clear();
    std::fs::write(&path, e.to_string()).unwrap();
    let (cpath, _) = entry_of(&data, "c");
    let text = std::fs::read(&cpath).unwrap();
    std::fs::write(&cpath, &text[..text.len() - 5]).unwrap();
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "succeeded"), ("b", "cached"), ("c", "succeeded")])
    );
    assert_eq!(result(&r), "RESULT 6");
    // Each was written again, whole.
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );
}

#[test]
fn two_runs_sharing_a_store_at_once_each_get_whole_values() {
    let tmp = common::tempdir();
    let data = tmp.path().join("data");
    // Two folders, one store; a slow task widens the window where both write.
    let slow = "import time\ntime.sleep(1)\nx = list(range(n))";
    let spawn = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let nb = notebook(&d, slow, C);
        let mut cmd = common::nb2pipe();
        cmd.arg("run")
            .arg(&nb)
            .arg("--python")
            .arg(python())
            .arg("-o")
            .arg(d.join("build"))
            .arg("--data")
            .arg(&data)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        (nb, cmd.spawn().unwrap())
    };
    let (nb, one) = spawn("one");
    let (_, two) = spawn("two");
    for child in [one, two] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut leftovers = Vec::new();
    for e in walk(&data.join(".nb2pipe")) {
        if e.to_string_lossy().contains(".tmp-") {
            leftovers.push(e);
        }
    }
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Both recorded the same entries; a third run reuses them whole.
    assert_eq!(entries(&data).len(), 3);
    let out = tmp.path().join("one/build");
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );
    // c run on the values the cache linked into that run.
    let r = run(&nb, &out, &data, &["--only", "c"]);
    assert_eq!(r.states(), states(&[("c", "succeeded")]));
    assert_eq!(result(&r), "RESULT 6");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn nondeterministic_and_cache_false_tasks_always_run_and_inspect_says_why() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let clock = "import time\nstarted = time.time()\nx = list(range(n))";
    let nb = notebook(d, clock, C);
    let (code, table, err) = common::run(&["inspect", nb.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("a  not cached: reads the clock: `time.time()` in cell 2, line 2"),
        "{table}"
    );
    assert!(table.contains("b  key "), "{table}");
    run(&nb, &out, &data, &[]);
    let again = run(&nb, &out, &data, &[]);
    assert_eq!(
        again.states(),
        states(&[("a", "succeeded"), ("b", "cached"), ("c", "cached")])
    );

    // `cache:false` on a task.
    let mut v: Value = common::read_json(&nb);
    v["cells"][3]["metadata"]["tags"] = serde_json::json!(["task:c", "cache:false"]);
    std::fs::write(&nb, v.to_string()).unwrap();
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "succeeded"), ("b", "cached"), ("c", "succeeded")])
    );
    let (_, table, _) = common::run(&["inspect", nb.to_str().unwrap()]);
    assert!(table.contains("c  not cached: cache:false"), "{table}");
}

#[test]
fn inspect_tells_which_tasks_the_last_run_can_reuse() {
    let tmp = common::tempdir();
    let d = tmp.path();
    let nb = notebook(d, A, C);
    // The default data folder, where inspect looks.
    let mut cmd = common::nb2pipe();
    cmd.arg("run").arg(&nb).arg("--python").arg(python());
    assert_eq!(run_bounded(cmd, "nb2pipe run").code, 0);
    let nb = notebook(d, A, "print('RESULT', sum(y) * 10)");
    let (code, table, err) = common::run(&["inspect", nb.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("\nlast run "), "{table}");
    assert!(table.contains("  b  can be reused"), "{table}");
    assert!(table.contains("  c  runs again"), "{table}");
}

#[test]
fn prune_removes_entries_by_age_and_size() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let nb = notebook(d, A, C);
    assert_eq!(run(&nb, &out, &data, &[]).done.code, 0);
    let prune = |args: &[&str]| {
        let mut a = vec![
            "cache",
            "prune",
            "--data",
            data.to_str().unwrap(),
            "--python",
        ];
        let py = python();
        let py = py.to_str().unwrap().to_string();
        a.push(&py);
        a.extend_from_slice(args);
        common::run(&a)
    };
    let (code, said, err) = prune(&["--older-than", "7d"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        said.contains("removed 0 cache entries and 0 object(s)"),
        "{said}"
    );
    assert_eq!(entries(&data).len(), 3);
    let (code, _, err) = prune(&[]);
    assert_eq!(code, 2, "nothing to do is a usage error: {err}");
    let (code, _, err) = prune(&["--max-size", "lots"]);
    assert_eq!(code, 2, "{err}");
    // Room for nothing: every entry and object goes, and the next run runs everything.
    let (code, said, err) = prune(&["--max-size", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(said.contains("removed 3 cache entries"), "{said}");
    assert!(entries(&data).is_empty());
    assert!(walk(&data.join(".nb2pipe/objects")).is_empty());
    let r = run(&nb, &out, &data, &[]);
    assert_eq!(
        r.states(),
        states(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])
    );
    // The older runs' values are still readable (links, not the objects themselves).
    let r = run(&nb, &out, &data, &["--only", "c"]);
    assert_eq!(r.states(), states(&[("c", "succeeded")]));
}

/// The cluster rehearsal shares the cache with local runs: its pods find the entries
/// local runs recorded (seeded into the fresh claim), and what they record comes back.
#[test]
fn a_rehearsal_reuses_and_records_the_same_cache() {
    let tmp = common::tempdir();
    let (d, out, data) = (
        tmp.path(),
        tmp.path().join("build"),
        tmp.path().join("data"),
    );
    let nb = notebook(d, A, C);
    // The base image is part of the key: the local runs name the rehearsal's.
    let base = helpers::base_image();
    let local = ["--base-image", base.as_str()];
    assert_eq!(run(&nb, &out, &data, &local).done.code, 0);
    let registry = helpers::fresh_registry("NB2PIPE_TEST_REGISTRY", "cache");
    let docker = [
        "--docker",
        "--target",
        "airflow",
        "--base-image",
        &base,
        "--registry",
        &registry,
    ];
    let r = run(&nb, &out, &data, &docker);
    assert_eq!(r.done.code, 0, "{}", r.done.stderr);
    assert!(
        r.done.stderr.contains("rehearsing the airflow pods"),
        "{}",
        r.done.stderr
    );
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );

    // The last task edited: the pod runs it alone; a local run then reuses its entry.
    let nb = notebook(d, A, "print('RESULT', sum(y) * 100)");
    let r = run(&nb, &out, &data, &docker);
    assert_eq!(r.done.code, 0, "{}", r.done.stderr);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "succeeded")])
    );
    assert_eq!(result(&r), "RESULT 600");
    let local = run(&nb, &out, &data, &local);
    assert_eq!(
        local.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );

    // --rerun through the rehearsal.
    let mut rerun = docker.to_vec();
    rerun.extend(["--rerun", "b"]);
    let r = run(&nb, &out, &data, &rerun);
    assert_eq!(
        r.states(),
        states(&[("a", "cached"), ("b", "succeeded"), ("c", "succeeded")])
    );
    assert!(r.log("b").contains("b made"), "{}", r.log("b"));

    let plan = common::read_json(&out.join("chain/plan.json"));
    for t in plan["tasks"].as_array().unwrap() {
        helpers::docker(&["rmi", "-f", t["image"]["reference"].as_str().unwrap()]);
    }
}

/// The same on S3: entries and objects in the bucket, a damaged object never reused.
#[test]
fn an_s3_store_caches_the_same_way() {
    let tmp = common::tempdir();
    let moto = start_moto(&tmp.path().join("moto.log"));
    let boto = |code: &str| {
        let mut cmd = std::process::Command::new(python());
        cmd.arg("-c").arg(format!("import boto3, os\nc = boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT'])\n{code}"));
        s3_env(&mut cmd, &moto.url);
        let d = run_bounded(cmd, "boto3");
        assert_eq!(d.code, 0, "boto3 failed:\n{}", d.stderr);
        d.stdout
    };
    boto("c.create_bucket(Bucket='pipes')");
    let nb = notebook(tmp.path(), A, C);
    let out = tmp.path().join("build");
    let s3_run = |extra: &[&str]| {
        let mut cmd = common::nb2pipe();
        cmd.arg("run")
            .arg(&nb)
            .arg("--python")
            .arg(python())
            .arg("-o")
            .arg(&out)
            .args(["--data", "s3://pipes/team"])
            .args(extra);
        s3_env(&mut cmd, &moto.url);
        let done = run_bounded(cmd, "nb2pipe run --data s3://");
        let runs = out.join("nb2pipe-runs/chain");
        let latest = std::fs::read_to_string(runs.join("latest")).unwrap();
        let dir = runs.join(latest.trim());
        let record = common::read_json(&dir.join("run.json"));
        Run { done, record, dir }
    };
    let first = s3_run(&[]);
    assert_eq!(first.done.code, 0, "{}", first.done.stderr);
    let keys = boto("for o in c.list_objects_v2(Bucket='pipes')['Contents']: print(o['Key'])");
    assert_eq!(
        keys.lines()
            .filter(|k| k.starts_with("team/.nb2pipe/cache/"))
            .count(),
        3,
        "{keys}"
    );
    let second = s3_run(&[]);
    assert_eq!(
        second.states(),
        states(&[("a", "cached"), ("b", "cached"), ("c", "cached")])
    );
    // b's value, linked into the second run, is whole.
    let run_id = second.record["run_id"].as_str().unwrap().to_string();
    let copied = boto(&format!("import hashlib\nprint(hashlib.sha256(c.get_object(Bucket='pipes', Key='team/chain/{run_id}/values/b/y.pkl')['Body'].read()).hexdigest())"));
    let side = boto(&format!("print(c.get_object(Bucket='pipes', Key='team/chain/{run_id}/values/b/y.sha256')['Body'].read().decode())"));
    assert_eq!(copied.trim(), side.trim());
    // A truncated object in the bucket: b runs again, its consumer is still reused.
    boto(&format!("k = 'team/.nb2pipe/objects/sha256/{}'\nb = c.get_object(Bucket='pipes', Key=k)['Body'].read()\nc.put_object(Bucket='pipes', Key=k, Body=b[:3])", side.trim()));
    let third = s3_run(&[]);
    assert_eq!(third.done.code, 0, "{}", third.done.stderr);
    assert_eq!(
        third.states(),
        states(&[("a", "cached"), ("b", "succeeded"), ("c", "cached")])
    );
    drop(moto);
}
