//! Rehearsal tier: every executable fixture, for every target the rehearsal knows, is
//! built (through `nb2pipe run --docker`, as `nb2pipe build` does, named under the
//! local registry) and rehearsed from that target's pods on the Docker Engine; what
//! every task printed and the final values must equal the whole notebook's run with
//! nbclient. Needs the exec venv and the Docker tier's services (tests/env/docker.sh).

mod common;

#[path = "docker/helpers.rs"]
mod helpers;

use common::split::*;

/// The targets whose pods the rehearsal runs.
const TARGETS: &[&str] = &["airflow", "argo", "tekton"];

fn rehearse_args(target: &str, name: &str) -> Vec<String> {
    vec![
        "--docker".into(),
        "--target".into(),
        target.into(),
        "--base-image".into(),
        helpers::base_image(),
        "--registry".into(),
        format!("{}/rehearse-{name}", helpers::env("NB2PIPE_TEST_REGISTRY")),
        "--jobs".into(),
        "2".into(),
    ]
}

/// The fixture rehearsed on every target, each compared with the notebook.
fn prove_everywhere(name: &str, params: &[(&str, &str)]) {
    prove_on(TARGETS, name, params);
}

fn prove_on(targets: &[&str], name: &str, params: &[(&str, &str)]) {
    for target in targets {
        let args = rehearse_args(target, name);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, split) = prove(name, params, &argv);
        assert!(
            split
                .done
                .stderr
                .contains(&format!("rehearsing the {target} pods")),
            "{name} on {target}: {}",
            split.done.stderr
        );
    }
}

#[test]
fn values_fixture_rehearsed() {
    prove_everywhere("values", &[]);
}

#[test]
fn closures_fixture_rehearsed() {
    prove_everywhere("closures", &[]);
}

#[test]
fn params_fixture_rehearsed_with_overrides() {
    prove_everywhere("params", &[("n_estimators", "7"), ("label", "override")]);
}

#[test]
fn shell_fixture_rehearsed() {
    prove_everywhere("shell", &[]);
}

#[test]
fn branches_fixture_rehearsed() {
    prove_everywhere("branches", &[]);
}

/// Random states and settings carried between pods (one target: the image is large).
#[test]
fn globals_fixture_rehearsed() {
    prove_on(&["airflow"], "globals", &[]);
}

#[test]
fn values_changed_in_place_rehearsed() {
    // One target: what is proved is the data flow, which every target's pods share.
    prove_on(&["argo"], "inplace", &[]);
}

#[test]
fn fitted_model_rehearsed() {
    // The plotting task hands the model on as a reference to the training task's copy.
    prove_on(&["argo"], "fitted", &[]);
}

#[test]
fn travel_fixture_rehearsed() {
    prove_everywhere("travel", &[]);
}

/// A failing task in a pod is reported like a local one: cell, line, message.
#[test]
fn failing_fixture_rehearsed_names_cell_and_line() {
    let (cells, error) = run_notebook("failing", &[]);
    assert_eq!(error["cell"], 2, "{error}");
    for target in TARGETS {
        let args = rehearse_args(target, "failing");
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let split = nb2pipe_run("failing", &argv);
        assert_eq!(split.done.code, 1, "{target}: {}", split.done.stderr);
        let err = &split.done.stderr;
        assert!(
            err.contains("in notebook cell 3 (`total = int(table['a'].sum())`), line 3: KeyError: 'no_such_column'"),
            "{target}: {err}"
        );
        assert_eq!(split.task("broken")["state"], "failed");
        assert_eq!(split.task("after")["state"], "skipped");
        assert_same_output("failing", &cells, &split);
    }
}

#[test]
fn digits_fixture_rehearsed() {
    prove_everywhere("digits", &[]);
}

/// Everything a cluster does differently at once: a project module and a %%writefile
/// module in the image and the shared working directory, parameters "1.10" and one
/// holding `$$`, `$(VAR)` and `$HOME`, an env value with `$`, an `image:` task, and a
/// pipeline name that needs every Kubernetes name shortened.
#[test]
fn cluster_fixture_rehearsed() {
    prove_on(&["airflow", "argo"], "cluster", &[]);
    // Tekton substitutes `$(...)` everywhere and has no escape: refused, not rewritten.
    let (dir, nb) = copy_fixture("cluster");
    let args = rehearse_args("tekton", "cluster");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = common::nb2pipe();
    cmd.arg("run")
        .arg(&nb)
        .arg("-o")
        .arg(dir.path().join("out"))
        .args(&argv);
    let done = run_bounded(cmd, "rehearsal of cluster on tekton");
    assert_eq!(done.code, 1, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("`pay $5 $(NB2PIPE_DATA) $$x` contains `$(`"),
        "{}",
        done.stderr
    );
}

#[test]
fn cluster_fixture_values_arrive_byte_exact() {
    let (result, _) = prove(
        "cluster",
        &[],
        &rehearse_args("airflow", "cluster-exact")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(result["version"], "1.10");
    assert_eq!(result["type"], "str");
    assert_eq!(result["price"], "costs $$5 $(NB2PIPE_DATA) $HOME");
    assert_eq!(result["greeting"], "pay $5 $(NB2PIPE_DATA) $$x");
}

/// The failure the restricted securityContext prevents is real in the rehearsal: the
/// same pod without fsGroup cannot write the fresh, root-owned claim, as on a cluster.
#[test]
fn without_fs_group_a_fresh_claim_is_not_writable() {
    use nb2pipe::rehearse::{self, docker, Target, Values};
    let dir = common::tempdir();
    let nb = helpers::copy_fixture(dir.path(), "small.ipynb");
    let out = dir.path().join("out");
    let registry = format!("{}/rehearse-fsgroup", helpers::env("NB2PIPE_TEST_REGISTRY"));
    helpers::build_ok(&nb, &out, &["--registry", &registry], &[]);
    let plan: nb2pipe::plan::Plan =
        serde_json::from_value(common::read_json(&out.join("small/plan.json"))).unwrap();
    let run_first = |strip: bool| -> (i64, String) {
        let mut r = rehearse::prepare(
            &plan,
            Target::Airflow,
            &serde_json::Map::new(),
            &Values::Environment(Default::default()),
        )
        .unwrap();
        if strip {
            let sc = r.tasks[0]
                .pod
                .spec
                .as_mut()
                .unwrap()
                .security_context
                .as_mut()
                .unwrap();
            sc.fs_group = None;
            sc.fs_group_change_policy = None;
        }
        let scratch = dir.path().join(if strip { "s1" } else { "s2" });
        let vols = docker::create_volumes(
            &r,
            &format!("fsgroup-{}-{strip}", std::process::id()),
            Some("small-data".into()),
            scratch,
        )
        .unwrap();
        let mut lines = Vec::new();
        let code = rehearse::run_task(&vols, &r.tasks[0], |l| lines.push(l.to_string()));
        docker::remove_volumes(&vols);
        (code.unwrap(), lines.join("\n"))
    };
    let (code, log) = run_first(true);
    assert_ne!(
        code, 0,
        "a root-owned claim was writable without fsGroup:\n{log}"
    );
    assert!(
        log.contains("PermissionError") || log.contains("not writable"),
        "{log}"
    );
    let (code, log) = run_first(false);
    assert_eq!(code, 0, "{log}");
}

/// [`rehearse_args`] under a registry path no earlier run used: image tags hash the
/// task's code, not nb2pipe's runtime, so these tests build images with this runtime
/// (layers still come from the engine's cache).
fn fresh_args(target: &str, name: &str) -> Vec<String> {
    let mut args = rehearse_args(target, name);
    let i = args.iter().position(|a| a == "--registry").unwrap() + 1;
    args[i] = helpers::fresh_registry("NB2PIPE_TEST_REGISTRY", &format!("rehearse-{name}"));
    args
}

/// KFP cannot give a pod fsGroup: a fresh, root-owned claim is not writable by the task
/// user, so the first task fails as it would on a cluster, saying why and what to do.
#[test]
fn kfp_on_a_fresh_claim_fails_like_a_cluster() {
    let (dir, nb) = copy_fixture("values");
    let args = fresh_args("kfp", "values");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = split_in(dir, &nb, &argv);
    assert_eq!(split.done.code, 1, "{}", split.done.stderr);
    assert!(
        split.done.stderr.contains("rehearsing the kfp pods"),
        "{}",
        split.done.stderr
    );
    let first = split.plan["tasks"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(split.task(&first)["state"], "failed");
    let log = split.log(&first);
    for want in [
        "as uid 10001",
        "the data volume is not writable by this user: give the pod fsGroup (all targets but KFP do), make the claim writable for uid 10001, or use an s3:// data store",
        "/nb2pipe/data/values/",
    ] {
        assert!(log.contains(want), "`{want}` not in the log:\n{log}");
        assert!(
            split.done.stderr.contains(want),
            "`{want}` not in stderr:\n{}",
            split.done.stderr
        );
    }
    assert!(!log.contains("Traceback"), "{log}");
}

/// Fixture `name` rehearsed on `target` with an S3 store (moto on 127.0.0.1, which the
/// rehearsal's host network reaches), its credentials from `--secrets`: what every task
/// printed and the RESULT line equal the notebook's; the values are in the bucket.
fn prove_with_s3(target: &str, name: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let scratch = common::tempdir();
    let moto = start_moto(&scratch.path().join("moto.log"));
    let mut mk = std::process::Command::new(python());
    mk.arg("-c").arg("import boto3, os; boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT']).create_bucket(Bucket='bucket')");
    s3_env(&mut mk, &moto.url);
    let d = run_bounded(mk, "creating the bucket");
    assert_eq!(d.code, 0, "{}", d.stderr);

    let (cells, error) = run_notebook(name, params);
    assert!(error.is_null(), "the notebook itself failed: {error}");
    let (dir, nb) = copy_fixture(name);
    std::fs::write(
        dir.path().join("nb2pipe.toml"),
        format!(
            "[data]\nurl = \"s3://bucket/prefix\"\nendpoint = \"{}\"\nsecret = \"s3-creds\"\nregion = \"us-east-1\"\n",
            moto.url
        ),
    )
    .unwrap();
    let secrets = scratch.path().join("secrets");
    std::fs::create_dir_all(secrets.join("s3-creds")).unwrap();
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        std::fs::write(secrets.join("s3-creds").join(k), "testing").unwrap();
    }
    let mut args = fresh_args(target, &format!("{name}-s3"));
    args.push("--secrets".into());
    args.push(secrets.to_string_lossy().into_owned());
    for (k, v) in params {
        args.push("-p".into());
        args.push(format!("{k}={v}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = split_in(dir, &nb, &argv);
    assert_eq!(
        split.done.code, 0,
        "{name} on {target} with S3:\n{}",
        split.done.stderr
    );
    assert!(
        split
            .done
            .stderr
            .contains(&format!("rehearsing the {target} pods")),
        "{}",
        split.done.stderr
    );
    assert_same_output(name, &cells, &split);
    let nb_text: String = cells
        .values()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let last = split.plan["tasks"].as_array().unwrap().last().unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let result = result_line(&nb_text);
    assert_eq!(
        result_line(&split.log(&last)),
        result,
        "{name}: final values differ"
    );

    // The values are in the bucket, under the run, not on a local folder.
    let pipeline = split.plan["pipeline"].as_str().unwrap();
    let run_id = split.record["run_id"].as_str().unwrap().to_string();
    let mut ls = std::process::Command::new(python());
    ls.arg("-c").arg("import boto3, os\nc = boto3.client('s3', endpoint_url=os.environ['NB2PIPE_S3_ENDPOINT'])\nfor o in c.list_objects_v2(Bucket='bucket')['Contents']: print(o['Key'])");
    s3_env(&mut ls, &moto.url);
    let keys = run_bounded(ls, "listing the bucket").stdout;
    let safe = run_id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    assert!(
        keys.lines()
            .any(|k| k.starts_with(&format!("prefix/{pipeline}/{safe}/values/"))),
        "no values of run {safe} in the bucket:\n{keys}"
    );
    assert!(
        !split.run_dir.join("values").exists(),
        "values written locally"
    );
    result
}

/// Parameters through KFP's placeholders (defaults as the pipeline spec writes them,
/// overrides as given) and a `metrics` task writing its artifact under KFP's scratch.
#[test]
fn kfp_rehearsed_with_an_s3_store() {
    prove_with_s3("kfp", "digits", &[]);
    prove_with_s3(
        "kfp",
        "params",
        &[("n_estimators", "7"), ("label", "override")],
    );
}

/// Values with `$`, `$$` and `$(VAR)` reach the task byte for byte through KFP's args.
#[test]
fn kfp_cluster_fixture_with_an_s3_store() {
    let result = prove_with_s3("kfp", "cluster", &[]);
    assert_eq!(result["version"], "1.10");
    assert_eq!(result["price"], "costs $$5 $(NB2PIPE_DATA) $HOME");
    assert_eq!(result["greeting"], "pay $5 $(NB2PIPE_DATA) $$x");
}

#[test]
fn airflow_rehearsed_with_an_s3_store() {
    prove_with_s3("airflow", "values", &[]);
}

/// The Job target's one pod: independent branches (`left`, `right`) run one after the
/// other as containers in the Job's order, on the pod's shared emptyDir, and what every
/// task printed and the final values equal the notebook's.
#[test]
fn job_branches_rehearsed_one_container_after_another() {
    let args = rehearse_args("job", "branches");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, split) = prove("branches", &[], &argv);
    assert!(
        split.done.stderr.contains("rehearsing the job pods"),
        "{}",
        split.done.stderr
    );
    let plan: nb2pipe::plan::Plan = serde_json::from_value(split.plan.clone()).unwrap();
    let order: Vec<&str> = nb2pipe::emit::job::order(&plan)
        .into_iter()
        .map(|i| plan.tasks[i].name.as_str())
        .collect();
    assert_eq!(order, ["start", "left", "right", "join"]);
    // `--jobs 2` given, yet no container starts before the one before it ended.
    for w in order.windows(2) {
        let (a, b) = (split.task(w[0]), split.task(w[1]));
        assert!(
            a["ended_ms"].as_u64().unwrap() <= b["started_ms"].as_u64().unwrap(),
            "{} overlapped {}: {a} {b}",
            w[1],
            w[0]
        );
    }
    // The values were on the pod's emptyDir, exported where a local run leaves them.
    assert!(split.run_dir.join("values").join("left").is_dir());
}

/// The churn notebook (a CronJob: @daily) from the CronJob's pod template: parameters
/// as the env defaults, its tasks' resources and retries, one pod.
#[test]
fn job_churn_cronjob_rehearsed() {
    let dir = common::tempdir();
    let nb = dir.path().join("churn.ipynb");
    std::fs::copy(common::fixture("notebooks/churn.ipynb"), &nb).unwrap();
    let (cells, error) = run_notebook_at(dir.path(), &nb, &[]);
    assert!(error.is_null(), "the notebook itself failed: {error}");
    let args = rehearse_args("job", "churn");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = split_in(dir, &nb, &argv);
    assert_eq!(split.done.code, 0, "{}", split.done.stderr);
    assert!(
        split.done.stderr.contains("rehearsing the job pods"),
        "{}",
        split.done.stderr
    );
    // What each task printed, its cells' output in the notebook; a warning names the
    // file it came from, in the image's environment rather than the notebook's.
    let site = regex::Regex::new(r"\S*/site-packages/").unwrap();
    for task in split.plan["tasks"].as_array().unwrap() {
        let name = task["name"].as_str().unwrap();
        assert_eq!(split.task(name)["state"], "succeeded", "{name}");
        let expected: String = task["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| cells.get(&c.to_string()).and_then(|v| v.as_str()))
            .collect();
        assert_eq!(
            site.replace_all(&normalise(&split.log(name)), "site-packages/"),
            site.replace_all(&normalise(&expected), "site-packages/"),
            "churn: task `{name}`"
        );
    }
    assert!(split.log("evaluate").contains("accuracy="));
}

/// `-p` overrides reach the Job's containers (the env a user edits before `kubectl
/// create`), and a failed container ends the pod: nothing after it runs.
#[test]
fn job_params_overridden_and_a_failure_ends_the_pod() {
    let args = rehearse_args("job", "params");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    prove(
        "params",
        &[("n_estimators", "7"), ("label", "override")],
        &argv,
    );
    let args = rehearse_args("job", "failing");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let split = nb2pipe_run("failing", &argv);
    assert_eq!(split.done.code, 1, "{}", split.done.stderr);
    assert!(
        split.done.stderr.contains("KeyError: 'no_such_column'"),
        "{}",
        split.done.stderr
    );
    assert_eq!(split.task("broken")["state"], "failed");
    let after = split.task("after");
    assert_eq!(after["state"], "skipped");
    assert!(
        after["reason"].as_str().unwrap().contains("ends the pod"),
        "{after}"
    );
}

/// The Spark fixture on Argo: the SparkApplication's driver runs in the Spark task's
/// image (built on the Spark base image, `spark-image:`, with Java and pyspark) in local
/// mode, and its Parquet dataset reaches the pandas task's pod on the data volume. The
/// whole notebook's run is compared in tests/run.rs; here its RESULT is.
#[test]
fn spark_fixture_rehearsed_on_argo() {
    let (dir, nb) = copy_fixture("spark");
    std::fs::write(
        dir.path().join("nb2pipe.toml"),
        format!(
            "[defaults.spark]\nimage = \"{}\"\n",
            helpers::env("NB2PIPE_TEST_SPARK_IMAGE")
        ),
    )
    .unwrap();
    let args = rehearse_args("argo", "spark");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // Two image builds (pyspark is in the base, the pandas stack is not) and a JVM start.
    let split = split_in_for(dir, &nb, &argv, std::time::Duration::from_secs(1200));
    assert_eq!(split.done.code, 0, "{}", split.done.stderr);
    assert!(
        split.done.stderr.contains("rehearsing the argo pods"),
        "{}",
        split.done.stderr
    );
    let log = split.log("aggregate");
    assert!(log.contains("stores 5"), "{log}");
    assert_eq!(
        result_line(&split.log("train")),
        serde_json::json!({"best": "e", "coef": 8.1034, "stores": ["a", "b", "c", "d", "e"], "units": 322})
    );
}
