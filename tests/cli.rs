//! The command line as a user meets it: diagnostics for every broken notebook, exit
//! codes, determinism, the input left untouched, settings precedence and profiles.

mod common;

use std::path::Path;

use serde_json::Value;

#[test]
fn every_broken_notebook_gets_its_diagnostic() {
    let expected: Value = common::read_json(&common::fixture("broken/expected.json"));
    let files = common::fixtures_in("broken");
    assert_eq!(
        files.len(),
        expected.as_object().unwrap().len(),
        "one expectation per broken fixture"
    );
    for nb in files {
        let stem = nb.file_stem().unwrap().to_str().unwrap();
        let want = &expected[stem];
        let code = &stem[..5];
        let tmp = common::tempdir();
        let (exit, stdout, stderr) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            tmp.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(
            exit as i64,
            want["exit"].as_i64().unwrap(),
            "{stem}: exit {exit}\n{stdout}\n{stderr}"
        );
        let doc: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{stem}: JSON output ({e}): {stdout}"));
        let diags = doc["diagnostics"].as_array().unwrap();
        // A fixture may show that a diagnostic is not given (`skip` leaves a cell out).
        if let Some(absent) = want.get("absent").and_then(Value::as_str) {
            assert!(
                !diags.iter().any(|d| d["code"] == absent),
                "{stem}: {absent} in {diags:?}"
            );
            if want.get("message").is_none() {
                assert!(
                    tmp.path().read_dir().unwrap().next().is_some(),
                    "{stem}: converts"
                );
                continue;
            }
        }
        let d = diags
            .iter()
            .find(|d| d["code"] == code)
            .unwrap_or_else(|| panic!("{stem}: no {code} in {diags:?}"));
        let msg = d["message"].as_str().unwrap();
        assert!(
            msg.contains(want["message"].as_str().unwrap()),
            "{stem}: message {msg:?}"
        );
        assert!(
            d["location"]["notebook"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{stem}.ipynb")),
            "{stem}: names the notebook"
        );
        if let Some(cell) = want.get("cell") {
            assert_eq!(&d["location"]["cell"], cell, "{stem}: cell");
            assert!(
                d["location"]["cell_first_line"].is_string(),
                "{stem}: the cell's first line"
            );
        }
        if let Some(line) = want.get("line") {
            assert_eq!(&d["location"]["line"], line, "{stem}: line");
        }
        if let Some(help) = want.get("help").and_then(Value::as_str) {
            assert!(
                d["help"].as_str().unwrap_or("").contains(help),
                "{stem}: help {:?}",
                d["help"]
            );
        }
        // The human form names code, notebook and cell too.
        let (_, _, human) = common::run(&["inspect", nb.to_str().unwrap()]);
        assert!(human.contains(&format!("[{code}]")), "{stem}: {human}");
        // Errors write nothing; warnings still convert.
        let wrote = tmp.path().read_dir().unwrap().next().is_some();
        assert_eq!(
            wrote,
            want["exit"] == 0,
            "{stem}: bundle written only without errors"
        );
    }
}

/// Hostile notebooks (nesting past every limit, out-of-range values, control characters)
/// give diagnostics from every command that reads them, on the main thread's ordinary
/// stack, and never a crash: exit 0 or 1, nothing on stderr about a panic or overflow.
#[test]
fn no_broken_notebook_crashes_any_command() {
    for nb in common::fixtures_in("broken") {
        let nb = nb.to_str().unwrap();
        let tmp = common::tempdir();
        let out = tmp.path().to_str().unwrap();
        for args in [
            vec!["inspect", nb],
            vec!["inspect", nb, "--format", "json"],
            vec!["convert", nb, "-o", out],
            vec!["check", nb],
            vec!["deps", nb],
        ] {
            let (exit, _, stderr) = common::run(&args);
            assert!(exit == 0 || exit == 1, "{args:?}: exit {exit}\n{stderr}");
            assert!(
                !stderr.contains("panicked") && !stderr.contains("overflow"),
                "{args:?}: {stderr}"
            );
            assert!(
                !stderr
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{args:?}: a control character reached the terminal: {stderr:?}"
            );
        }
    }
}

/// A `-p` override of the wrong type stops `run` before its first task, not when the
/// task that reads it starts.
#[test]
fn run_checks_every_override_before_any_task() {
    let nb = common::fixture("exec/params.ipynb");
    let tmp = common::tempdir();
    let out = tmp.path().join("build");
    let (exit, stdout, err) = common::run(&[
        "run",
        nb.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "label=fine",
        "-p",
        "n_estimators=abc",
    ]);
    assert_eq!(exit, 2, "{stdout}\n{err}");
    assert!(
        err.contains("`-p n_estimators=abc`: parameter `n_estimators` is int (default 3), so the value must be a whole number"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written or run");
    assert!(
        !stdout.contains("load") && !err.contains("load"),
        "{stdout}\n{err}"
    );
}

#[test]
fn convert_counts_in_words() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("one.ipynb");
    let cells = serde_json::json!([{"cell_type": "code", "metadata": {"tags": ["task:only"]}, "source": "x = 1", "outputs": [], "execution_count": null}]);
    let doc = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    std::fs::write(&nb, doc.to_string()).unwrap();
    let out = tmp.path().join("out");
    let (exit, _, err) =
        common::run(&["convert", nb.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(exit, 0, "{err}");
    assert!(
        err.contains(" (1 task, ") && err.contains(" files)"),
        "{err}"
    );
}

/// The table shows what a task will get: timeout, retry delay, env, and each secret by
/// name and key (the plan has no secret values to show).
#[test]
fn inspect_shows_timeouts_env_and_secret_mappings() {
    let nb = common::fixture("notebooks/settings_all.ipynb");
    let (exit, out, err) = common::run(&["inspect", nb.to_str().unwrap()]);
    assert_eq!(exit, 0, "{err}");
    let prepare = out
        .lines()
        .find(|l| l.trim_start().starts_with("prepare "))
        .unwrap_or_else(|| panic!("{out}"));
    for want in [
        "secret:db-credentials (every key)",
        "secret:api-keys:token→API_TOKEN",
        "secret:tls-cert@/etc/tls",
        "env:GREETING=hello world",
        "env:LOG_LEVEL=debug",
        "retries=3",
        "retry-delay=2m",
        "timeout=1h30m",
    ] {
        assert!(prepare.contains(want), "{want}: {prepare}");
    }
    // A multi-line env value stays on its task's line.
    let nb = common::fixture("notebooks/injection.ipynb");
    let (_, out, _) = common::run(&["inspect", nb.to_str().unwrap()]);
    let show = out
        .lines()
        .find(|l| l.trim_start().starts_with("show "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(show.contains("env:MULTILINE=a\\nb"), "{show}");
    // The JSON form carries the same settings.
    let plan = plan_of(&common::fixture("notebooks/settings_all.ipynb"), &[]);
    let s = &plan["tasks"][0]["settings"];
    assert_eq!(s["timeout_seconds"], 5400);
    assert_eq!(s["retry_delay_seconds"], 120);
    assert_eq!(s["env"]["LOG_LEVEL"], "debug");
    assert_eq!(s["secrets"][1]["key"], "token");
    assert_eq!(s["secrets"][1]["env"], "API_TOKEN");
}

/// Each subcommand's `--help` opens with the summary the command list gives it (a doc
/// comment on a flattened group of options would replace it).
#[test]
fn every_subcommand_help_opens_with_its_own_summary() {
    for parent in [vec![], vec!["cache"]] {
        let mut args = parent.clone();
        args.push("--help");
        let (code, out, err) = common::run(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let listed: Vec<(String, String)> = out
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let (name, about) = l.trim().split_once(char::is_whitespace)?;
                Some((name.to_string(), about.trim().to_string()))
            })
            .filter(|(name, _)| name != "help")
            .collect();
        let least = if parent.is_empty() { 7 } else { 1 };
        assert!(listed.len() >= least, "{args:?}: {out}");
        for (name, about) in listed {
            let mut args = parent.clone();
            args.extend([name.as_str(), "--help"]);
            let (code, out, err) = common::run(&args);
            assert_eq!(code, 0, "{args:?}: {err}");
            assert_eq!(out.lines().next(), Some(about.as_str()), "{args:?}:\n{out}");
        }
    }
}

#[test]
fn missing_notebook_and_bad_usage() {
    let (exit, _, err) = common::run(&["convert", "/nonexistent/x.ipynb"]);
    assert_eq!(exit, 1);
    assert!(
        err.contains("NB001") && err.contains("/nonexistent/x.ipynb"),
        "{err}"
    );
    let (exit, _, _) = common::run(&["convert"]);
    assert_eq!(exit, 2);
    let (exit, _, err) = common::run(&[
        "convert",
        common::fixture("notebooks/churn.ipynb").to_str().unwrap(),
        "--target",
        "jenkins",
    ]);
    assert_eq!(exit, 2);
    assert!(err.contains("unknown target `jenkins`"), "{err}");
    let (exit, _, err) = common::run(&[
        "inspect",
        common::fixture("notebooks/churn.ipynb").to_str().unwrap(),
        "--profile",
        "nope",
    ]);
    assert_eq!(exit, 1);
    assert!(err.contains("NB028"), "{err}");
}

#[test]
fn convert_is_deterministic_and_leaves_the_notebook_alone() {
    for nb in common::fixtures_in("notebooks") {
        let before = std::fs::read(&nb).unwrap();
        let (a, b) = (common::tempdir(), common::tempdir());
        let da = common::convert(&nb, a.path(), &[]);
        let db = common::convert(&nb, b.path(), &[]);
        let ta = nb2pipe::fs::read_tree(&da).unwrap();
        let tb = nb2pipe::fs::read_tree(&db).unwrap();
        assert!(!ta.is_empty());
        assert_eq!(ta, tb, "{}: two converts differ", nb.display());
        assert_eq!(
            before,
            std::fs::read(&nb).unwrap(),
            "{}: the notebook was modified",
            nb.display()
        );
        // Converting again over the same folder changes nothing and removes nothing.
        common::convert(&nb, a.path(), &[]);
        assert_eq!(ta, nb2pipe::fs::read_tree(&da).unwrap());
    }
}

#[test]
fn a_removed_task_leaves_no_stale_folder() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("p.ipynb");
    let write = |cells: &str| {
        std::fs::write(
            &nb,
            format!(r#"{{"nbformat":4,"nbformat_minor":5,"metadata":{{}},"cells":[{cells}]}}"#),
        )
        .unwrap()
    };
    write(
        r#"{"cell_type":"code","source":"x = 1","metadata":{"tags":["task:a"]}},{"cell_type":"code","source":"y = x","metadata":{"tags":["task:b"]}}"#,
    );
    let out = tmp.path().join("out");
    let dir = common::convert(&nb, &out, &[]);
    assert!(dir.join("tasks/b/main.py").exists());
    write(r#"{"cell_type":"code","source":"x = 1","metadata":{"tags":["task:a"]}}"#);
    common::convert(&nb, &out, &[]);
    assert!(!dir.join("tasks/b").exists(), "stale task folder kept");
    assert!(dir.join("tasks/a/main.py").exists());
}

fn plan_of(nb: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", nb.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let (exit, out, err) = common::run(&args);
    assert!(exit == 0, "inspect failed: {err}");
    serde_json::from_str::<Value>(&out).unwrap()["plan"].clone()
}

#[test]
fn settings_precedence_cli_profile_notebook_project() {
    let tmp = common::tempdir();
    let sub = tmp.path().join("analysis");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(
        tmp.path().join("pyproject.toml"),
        "[project]\nname = \"x\"\n\n[tool.nb2pipe]\nnamespace = \"from-project\"\nregistry = \"reg.example.com/project\"\nschedule = \"@hourly\"\n[tool.nb2pipe.defaults]\ncpu = \"250m\"\nretries = 4\n[tool.nb2pipe.tasks.b]\nmemory = \"3Gi\"\n[tool.nb2pipe.profile.prod]\nnamespace = \"prod\"\nschedule = \"@daily\"\n[tool.nb2pipe.profile.prod.defaults]\ncpu = \"1\"\n",
    )
    .unwrap();
    let nb = sub.join("p.ipynb");
    std::fs::write(
        &nb,
        r#"{"nbformat":4,"nbformat_minor":5,"metadata":{"nb2pipe":{"namespace":"from-notebook"}},"cells":[
        {"cell_type":"code","source":"x = 1","metadata":{"tags":["task:a","cpu:3"]}},
        {"cell_type":"code","source":"y = x","metadata":{"tags":["task:b"],"nb2pipe":{"retries":1}}}]}"#,
    )
    .unwrap();
    let p = plan_of(&nb, &[]);
    assert_eq!(
        p["settings"]["namespace"], "from-notebook",
        "notebook over project"
    );
    assert_eq!(p["settings"]["registry"], "reg.example.com/project");
    assert_eq!(p["settings"]["schedule"], "@hourly");
    assert_eq!(
        p["tasks"][0]["settings"]["resources"]["requests"]["cpu"], "3",
        "cell over defaults"
    );
    assert_eq!(p["tasks"][0]["settings"]["retries"], 4, "project defaults");
    assert_eq!(
        p["tasks"][1]["settings"]["resources"]["requests"]["cpu"],
        "250m"
    );
    assert_eq!(
        p["tasks"][1]["settings"]["resources"]["requests"]["memory"], "3Gi",
        "tasks.NAME"
    );
    assert_eq!(
        p["tasks"][1]["settings"]["retries"], 1,
        "cell metadata over defaults"
    );
    assert!(p["tasks"][0]["image"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("reg.example.com/project/p-a:"));
    let p = plan_of(&nb, &["--profile", "prod"]);
    assert_eq!(p["settings"]["namespace"], "prod", "profile over notebook");
    assert_eq!(p["settings"]["schedule"], "@daily");
    assert_eq!(p["settings"]["profile"], "prod");
    assert_eq!(
        p["tasks"][1]["settings"]["resources"]["requests"]["cpu"], "1",
        "profile defaults over project defaults"
    );
    assert_eq!(
        p["tasks"][0]["settings"]["resources"]["requests"]["cpu"], "3",
        "cell still wins"
    );
    let p = plan_of(
        &nb,
        &[
            "--profile",
            "prod",
            "--namespace",
            "cli",
            "--schedule",
            "0 5 * * *",
        ],
    );
    assert_eq!(
        p["settings"]["namespace"], "cli",
        "command line over everything"
    );
    assert_eq!(p["settings"]["schedule"], "0 5 * * *");
    // nb2pipe.toml next to the notebook wins over pyproject.toml above it.
    std::fs::write(sub.join("nb2pipe.toml"), "namespace = \"own-file\"\n").unwrap();
    std::fs::write(
        &nb,
        std::fs::read_to_string(&nb)
            .unwrap()
            .replace(r#""nb2pipe":{"namespace":"from-notebook"}"#, r#""x":1"#),
    )
    .unwrap();
    let p = plan_of(&nb, &[]);
    assert_eq!(p["settings"]["namespace"], "own-file");
    assert!(
        p["settings"]["registry"].is_null(),
        "the nearest project file is the only one read"
    );
    // A bad project file is a diagnostic with its line.
    std::fs::write(sub.join("nb2pipe.toml"), "namespace = \"ok\"\ncpu = [\n").unwrap();
    let (exit, _, err) = common::run(&["inspect", nb.to_str().unwrap()]);
    assert_eq!(exit, 1);
    assert!(
        err.contains("NB025") && err.contains("nb2pipe.toml") && err.contains("line"),
        "{err}"
    );
}

#[test]
fn inspect_formats() {
    let nb = common::fixture("notebooks/diamond.ipynb");
    let nbs = nb.to_str().unwrap();
    let (_, table, _) = common::run(&["inspect", nbs]);
    assert!(
        table.contains("square")
            && table.contains("raw ← load")
            && table.contains("load → square  raw"),
        "{table}"
    );
    let (_, mermaid, _) = common::run(&["inspect", nbs, "--format", "mermaid"]);
    assert!(
        mermaid.starts_with("flowchart TD") && mermaid.contains("-->|\"raw\"|"),
        "{mermaid}"
    );
    assert_eq!(mermaid.matches("-->").count(), 4);
    let (_, dot, _) = common::run(&["inspect", nbs, "--format", "dot"]);
    assert!(
        dot.contains("\"load\" -> \"square\" [label=\"raw\"]"),
        "{dot}"
    );
    let (_, json, _) = common::run(&["inspect", nbs, "--format", "json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plan"]["tasks"].as_array().unwrap().len(), 4);
    // The unpinned-requirements warning (no lock file), no registry set, and a
    // ReadWriteMany claim without a storage class for its parallel branches.
    let codes: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["NB201", "NB303", "NB304"], "{}", v["diagnostics"]);
}

#[test]
fn rule_docs_and_generated_reference() {
    let (exit, out, _) = common::run(&["rule", "NB021"]);
    assert_eq!(exit, 0);
    assert!(out.contains("invalid-tag-value") && out.contains("## What it does"));
    let (exit, _, _) = common::run(&["rule", "NB999"]);
    assert_eq!(exit, 2);
    let generated = nb2pipe::commands::rule::rules_markdown();
    let path = common::root().join("docs/rules.md");
    if std::env::var_os("NB2PIPE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/rules.md is stale: run `NB2PIPE_UPDATE_DOCS=1 cargo test --test cli`"
    );
}

#[test]
fn check_reports_staleness_secrets_and_fixes() {
    let tmp = common::tempdir();
    let a = tmp.path().join("a.ipynb");
    let b = tmp.path().join("b.ipynb");
    std::fs::copy(common::fixture("notebooks/diamond.ipynb"), &a).unwrap();
    std::fs::copy(common::fixture("notebooks/parallel.ipynb"), &b).unwrap();
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    // No bundle yet: stale, both reported, in one run.
    let (code, _, err) = common::run(&["check", sa, sb]);
    assert_eq!(code, 1);
    assert_eq!(err.matches("NB050").count(), 2, "{err}");
    assert!(err.contains("no generated bundle"), "{err}");
    let (code, _, err) = common::run(&["check", "--fix", sa, sb]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = common::run(&["check", sa, sb]);
    assert_eq!(code, 0, "{err}");
    // A generated file edited by hand, and a left-over task folder, are stale.
    let dag = tmp.path().join("build/a/airflow/a.py");
    std::fs::write(&dag, std::fs::read_to_string(&dag).unwrap() + "# edited\n").unwrap();
    std::fs::create_dir_all(tmp.path().join("build/a/tasks/old")).unwrap();
    std::fs::write(tmp.path().join("build/a/tasks/old/main.py"), "x = 1\n").unwrap();
    let (code, _, err) = common::run(&["check", sa]);
    assert_eq!(code, 1);
    assert!(
        err.contains("airflow/a.py changed") && err.contains("tasks/old/main.py left over"),
        "{err}"
    );
    // --no-bundle only lints.
    let (code, _, _) = common::run(&["check", "--no-bundle", sa]);
    assert_eq!(code, 0);
    // A secret: JSON output names cell and line, never the value.
    let mut nb: Value = common::read_json(&b);
    nb["cells"][1]["source"] =
        serde_json::json!("token = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789AB'\na_sum = sum(a)");
    std::fs::write(&b, nb.to_string()).unwrap();
    let (code, out, _) = common::run(&["check", sb, "--format", "json", "--no-bundle"]);
    assert_eq!(code, 1);
    assert!(!out.contains("ghp_abcdef"), "secret leaked: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let d = v["notebooks"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "NB040")
        .unwrap_or_else(|| panic!("no NB040 in {out}"));
    assert_eq!(d["code"], "NB040");
    assert_eq!(d["location"]["cell"], 1);
    assert_eq!(d["location"]["line"], 1);
    assert!(
        d["message"].as_str().unwrap().contains("GitHub token"),
        "{d}"
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::Read;
    // A plan far larger than a pipe's buffer, so writes happen after the reader is gone.
    let tmp = common::tempdir();
    let nb = tmp.path().join("wide.ipynb");
    let cells: Vec<Value> = (0..400).map(|i| serde_json::json!({"cell_type": "code", "source": format!("v{i} = {i}"), "metadata": {"tags": [format!("task:t{i}")]}})).collect();
    std::fs::write(
        &nb,
        serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
            .to_string(),
    )
    .unwrap();
    let mut child = common::nb2pipe()
        .args(["inspect", nb.to_str().unwrap(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    // Ended by SIGPIPE, as `cat` or `grep` would be, or finished: never an error exit.
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(13),
        "{status:?} {err}"
    );
}

/// A notebook of code cells (source, tags) at `path`.
fn write_notebook(path: &Path, cells: &[(&str, &[&str])]) {
    let cells: Vec<Value> = cells
        .iter()
        .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
        .collect();
    let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
    std::fs::write(path, nb.to_string()).unwrap();
}

/// Every file and folder under `dir` with its permission bits.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.push((rel, m.is_dir(), m.permissions().mode() & 0o7777));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn written_files_are_0644_and_folders_0755_whatever_the_umask() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("modes.ipynb");
    std::fs::write(tmp.path().join("helpers.py"), "def f():\n    return 1\n").unwrap();
    write_notebook(
        &nb,
        &[
            ("import helpers", &["imports"]),
            ("x = helpers.f()", &["task:one"]),
            ("print(x)", &["task:two"]),
        ],
    );
    let out = tmp.path().join("out");
    // A strict umask would make folders 0700 if the mode were left to it; the temporary
    // files nb2pipe renames into place are 0600.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" convert \"$1\" -o \"$2\" -t all")
        .arg(env!("CARGO_BIN_EXE_nb2pipe"))
        .arg(&nb)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let all = modes(&out);
    assert!(
        all.iter()
            .any(|(p, _, _)| p == "modes/tasks/one/modules/helpers.py"),
        "{all:?}"
    );
    assert!(all.len() > 10, "{all:?}");
    for (path, is_dir, mode) in &all {
        let want = if *is_dir { 0o755 } else { 0o644 };
        assert_eq!(*mode, want, "{path} is {mode:o}");
    }
}

#[test]
fn modules_and_data_files_travel_with_their_tasks() {
    let tmp = common::tempdir();
    let proj = tmp.path().join("proj");
    std::fs::create_dir_all(proj.join("pkg/sub")).unwrap();
    std::fs::create_dir_all(proj.join("cfg")).unwrap();
    std::fs::create_dir_all(proj.join("lib")).unwrap();
    std::fs::write(proj.join("pkg/__init__.py"), "from .sub import m\n").unwrap();
    std::fs::write(proj.join("pkg/sub/__init__.py"), "").unwrap();
    std::fs::write(proj.join("pkg/sub/m.py"), "V = 2\n").unwrap();
    std::fs::write(proj.join("lib/helpers.py"), "def f():\n    return 1\n").unwrap();
    std::fs::write(proj.join("data.csv"), "a\n1\n").unwrap();
    std::fs::write(proj.join("cfg/x.json"), [0xffu8, 0x00, 0x7b]).unwrap();
    std::fs::write(proj.join("outside.txt"), "no").unwrap();
    std::fs::write(proj.join(".env"), "TOKEN=do-not-ship").unwrap();
    let big = std::fs::File::create(proj.join("big.bin")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    let nb = proj.join("travel.ipynb");
    write_notebook(
        &nb,
        &[
            ("import sys\nsys.path.append('lib')\nimport helpers", &["imports"]),
            (
                "import pkg\nrows = open('data.csv').read() * helpers.f()\ncfg = open(file='./cfg/x.json', mode='rb').read()\nbig = open('big.bin', 'rb').read(1)\nprint('not-there.csv', '.env')",
                &["task:load"],
            ),
            ("total = helpers.f() + len(rows)", &["task:use"]),
        ],
    );
    let out = tmp.path().join("out");
    let bundle = common::convert(&nb, &out, &[]);
    let load = bundle.join("tasks/load");
    assert_eq!(
        std::fs::read(load.join("files/cfg/x.json")).unwrap(),
        [0xffu8, 0x00, 0x7b]
    );
    assert_eq!(
        std::fs::read_to_string(load.join("files/data.csv")).unwrap(),
        "a\n1\n"
    );
    assert!(!load.join("files/big.bin").exists(), "staged, not copied");
    assert!(!load.join("files/.env").exists());
    assert!(!load.join("files/not-there.csv").exists());
    assert_eq!(
        std::fs::read_to_string(load.join("modules/pkg/sub/m.py")).unwrap(),
        "V = 2\n"
    );
    // `helpers` is found through sys.path 'lib' and imported by its own name.
    assert!(load.join("modules/helpers.py").is_file());
    assert!(bundle.join("tasks/use/modules/helpers.py").is_file());
    assert!(!bundle.join("tasks/use/files").exists());
    let dockerfile = std::fs::read_to_string(load.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY --chown=10001:10001 modules/ /app/modules/"));
    assert!(dockerfile.contains("COPY --chown=10001:10001 files/ /app/files/"));
    let main = std::fs::read_to_string(load.join("main.py")).unwrap();
    assert!(main.contains("    staged=[\"big.bin\"],\n"), "{main}");

    let plan = common::read_json(&bundle.join("plan.json"));
    let task = |name: &str| {
        plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    let files = task("load")["files"].clone();
    assert_eq!(
        files,
        serde_json::json!([
            {"path": "big.bin", "size": (16 << 20) + 1, "sha256": "1003b1b5dc078189799a1216ce0f9fbcebb94e8b6b83c58c4b03345f07f94ced", "staged": true},
            {"path": "cfg/x.json", "size": 3, "sha256": "b63c6c748b070064da9afd864dfb43bf94fdfccc16e8e168f420551eeda3416f"},
            {"path": "data.csv", "size": 4, "sha256": "309b0e45a73d3fc5325e2b6ed0a01ef8b9cde6b05a5633c1f893f970d52bfddc"}
        ]),
    );
    assert_eq!(
        task("load")["local_modules"],
        serde_json::json!(["lib/helpers.py", "pkg"])
    );
    assert!(task("use").get("files").is_none());

    // check: up to date; a changed data file or module makes the bundle stale; --fix
    // brings it back, and a module no longer imported leaves no file behind.
    let (nbs, outs) = (nb.to_str().unwrap(), out.to_str().unwrap());
    let (code, _, err) = common::run(&["check", nbs, "-o", outs]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(proj.join("pkg/sub/m.py"), "V = 3\n").unwrap();
    let (code, _, err) = common::run(&["check", nbs, "-o", outs]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("NB050") && err.contains("tasks/load/modules/pkg/sub/m.py changed"),
        "{err}"
    );
    let (code, _, err) = common::run(&["check", "--fix", nbs, "-o", outs]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(load.join("modules/pkg/sub/m.py")).unwrap(),
        "V = 3\n"
    );
    std::fs::write(proj.join("data.csv"), "a\n2\n").unwrap();
    let (code, _, err) = common::run(&["check", nbs, "-o", outs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tasks/load/files/data.csv changed"), "{err}");
    let (code, _, err) = common::run(&["check", "--fix", nbs, "-o", outs]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(load.join("modules/stray.bin"), [0xffu8]).unwrap();
    let (code, _, err) = common::run(&["check", nbs, "-o", outs]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("1 file differs (tasks/load/modules/stray.bin left over)"),
        "{err}"
    );
    // Without `import pkg` and `data.csv`, their copies go.
    write_notebook(
        &nb,
        &[
            (
                "import sys\nsys.path.append('lib')\nimport helpers",
                &["imports"],
            ),
            ("rows = '1' * helpers.f()", &["task:load"]),
            ("total = helpers.f() + len(rows)", &["task:use"]),
        ],
    );
    common::convert(&nb, &out, &[]);
    assert!(!load.join("modules/pkg/sub/m.py").exists());
    assert!(!load.join("modules/stray.bin").exists());
    assert!(!load.join("files/data.csv").exists());
    assert!(load.join("modules/helpers.py").exists());
    let (code, _, err) = common::run(&["check", nbs, "-o", outs]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_s3_store_gives_every_task_boto3_pinned_by_the_project_or_nb2pipe() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("s3.ipynb");
    write_notebook(
        &nb,
        &[("x = 1", &["task:one"]), ("print(x)", &["task:two"])],
    );
    let mut doc = common::read_json(&nb);
    doc["metadata"]["nb2pipe"] = serde_json::json!({"data": {"url": "s3://bucket/prefix"}});
    std::fs::write(&nb, doc.to_string()).unwrap();
    let deps = || {
        let (code, out, err) = common::run(&["deps", nb.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = deps();
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("boto3==1.35.99 ") && l.contains("# the data store is s3://"))
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("pin: nb2pipe's tested version for an S3 data store"),
        "{out}"
    );
    std::fs::write(tmp.path().join("requirements.txt"), "boto3==1.34.0\n").unwrap();
    let out = deps();
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("boto3==1.34.0 "))
            .count(),
        2,
        "{out}"
    );
    assert!(out.contains("pin: requirements.txt"), "{out}");
    // A volume store needs no client.
    doc["metadata"]["nb2pipe"] = serde_json::json!({});
    std::fs::write(&nb, doc.to_string()).unwrap();
    assert!(!deps().contains("boto3"));
}

const TOKEN: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB";

/// Every file under `dir` holding `needle` (as `grep -rl` would list them).
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if String::from_utf8_lossy(&std::fs::read(&p).unwrap()).contains(needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// A credential in a task cell stops convert, run and build as `check` does (NB040,
/// cell and line, never the value), and nothing is written; --allow-secrets lets it by.
#[test]
fn a_hard_coded_secret_stops_convert_run_and_build() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("leaky.ipynb");
    let code = format!("x = 1\ntoken = '{TOKEN}'\nprint(len(token))");
    write_notebook(
        &nb,
        &[("a = 1", &["task:first"]), (&code, &["task:second"])],
    );
    let (n, out) = (nb.to_str().unwrap(), tmp.path().join("out"));
    let o = out.to_str().unwrap();
    for cmd in ["convert", "run", "build"] {
        let (code, stdout, err) = common::run(&[cmd, n, "-o", o]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(
            err.contains("NB040") && err.contains("GitHub token"),
            "{cmd}: {err}"
        );
        assert!(
            // Cells counted from 1, as the notebook shows them.
            err.contains("cell 2") && err.contains("line 2"),
            "{cmd}: {err}"
        );
        assert!(
            !err.contains("ghp_") && !stdout.contains("ghp_"),
            "{cmd} leaked: {err}"
        );
        assert!(!out.exists(), "{cmd} wrote {}", out.display());
    }
    let (code, stdout, _) = common::run(&["convert", n, "-o", o, "--format", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "NB040")
        .unwrap_or_else(|| panic!("no NB040 in {v}"));
    assert_eq!(
        (&d["location"]["cell"], &d["location"]["line"]),
        (&Value::from(1), &Value::from(2)),
        "{v}"
    );
    assert!(!out.exists());
    let (code, _, err) = common::run(&["convert", n, "-o", o, "--allow-secrets"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.join("leaky/tasks/second/main.py").is_file());
}

/// A parameter that looks like a credential never reaches a target file or plan.json,
/// even with --allow-secrets: its default is "" and the plan marks it redacted.
#[test]
fn a_secret_parameter_is_redacted_from_every_target() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("params.ipynb");
    let params = format!("rows = 10\napi_token = '{TOKEN}'");
    write_notebook(
        &nb,
        &[
            (&params, &["parameters"]),
            ("n = rows * len(api_token)", &["task:use"]),
        ],
    );
    let (n, out) = (nb.to_str().unwrap(), tmp.path().join("out"));
    let o = out.to_str().unwrap();
    let (code, _, err) = common::run(&["convert", n, "-o", o, "--target", "all"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("NB040") && !err.contains("ghp_"), "{err}");
    assert!(!out.exists());
    let (code, _, err) = common::run(&[
        "convert",
        n,
        "-o",
        o,
        "--target",
        "all",
        "--allow-secrets",
        "--skeletons",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("ghp_"), "{err}");
    assert!(out.join("params/tekton").is_dir() && out.join("params/kfp").is_dir());
    assert_eq!(files_containing(&out, "ghp_"), Vec::<String>::new());
    let plan = common::read_json(&out.join("params/plan.json"));
    let p = &plan["parameters"];
    assert_eq!(p[0]["name"], "rows");
    assert_eq!(
        (&p[0]["default"], p[0].get("redacted")),
        (&Value::from(10), None)
    );
    assert_eq!(p[1]["name"], "api_token");
    assert_eq!(
        (&p[1]["default"], &p[1]["type"], &p[1]["redacted"]),
        (&Value::from(""), &Value::from("str"), &Value::from(true))
    );
    // A local run needs the value given.
    let (code, _, err) = common::run(&["run", n, "-o", o, "--allow-secrets"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("-p api_token=") && !err.contains("ghp_"),
        "{err}"
    );
}

/// Tekton cannot wait between retries: said only when a delay was asked for.
#[test]
fn tekton_warns_about_a_retry_delay_only_when_one_was_set() {
    let tmp = common::tempdir();
    let out = tmp.path().join("out");
    for (tags, warned) in [
        (&["task:a", "retries:2"][..], false),
        (&["task:a", "retries:2", "retry-delay:5m"][..], true),
    ] {
        let nb = tmp.path().join("retry.ipynb");
        write_notebook(&nb, &[("a = 1", tags)]);
        let (code, _, err) = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            "tekton",
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.contains("retry delay"), warned, "{tags:?}: {err}");
        if warned {
            assert!(
                err.contains("NB302") && err.contains("retry delay 300s"),
                "{err}"
            );
        }
    }
}

/// `--target job` writes one Job (a CronJob when scheduled) and no claim while its
/// values pass on the pod's emptyDir; `--target all` includes it; a named claim is
/// mounted and written; independent branches and pod-level conflicts are NB302.
#[test]
fn job_target_writes_one_pod_and_a_cron_job_when_scheduled() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("fan.ipynb");
    write_notebook(
        &nb,
        &[
            ("base = 1", &["task:start", "node:pool=cpu"]),
            ("left = base + 1", &["task:left", "node:pool=gpu"]),
            ("right = base + 2", &["task:right"]),
            ("total = left + right", &["task:join"]),
        ],
    );
    let (n, out) = (nb.to_str().unwrap(), tmp.path().join("out"));
    let o = out.to_str().unwrap();
    let (code, _, err) = common::run(&["convert", n, "-o", o, "--target", "job"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("NB302")
            && err.contains("tasks `left` and `right` do not depend on each other")
            && err.contains("node selector `pool`: `gpu` differs"),
        "{err}"
    );
    let job: Value =
        serde_norway::from_str(&std::fs::read_to_string(out.join("fan/job/fan.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        (&job["apiVersion"], &job["kind"]),
        (&"batch/v1".into(), &"Job".into())
    );
    assert_eq!(job["metadata"]["generateName"], "fan-");
    let spec = &job["spec"]["template"]["spec"];
    let names: Vec<&str> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["containers"].as_array().unwrap())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["start", "left", "right", "join"]);
    assert_eq!(spec["nodeSelector"]["pool"], "cpu");
    assert!(spec["volumes"][0]["emptyDir"].is_object(), "{spec}");
    assert!(!out.join("fan/k8s").exists(), "no claim for the emptyDir");

    // A schedule makes it a CronJob; a named claim is mounted and written.
    let (code, _, err) = common::run(&[
        "convert",
        n,
        "-o",
        o,
        "--target",
        "all",
        "--schedule",
        "@hourly",
        "--data",
        "pvc://shared",
    ]);
    assert_eq!(code, 0, "{err}");
    let cron: Value =
        serde_norway::from_str(&std::fs::read_to_string(out.join("fan/job/fan.yaml")).unwrap())
            .unwrap();
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["spec"]["schedule"], "0 * * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let vol = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(vol["persistentVolumeClaim"]["claimName"], "shared", "{vol}");
    assert!(out.join("fan/k8s/fan-pvc.yaml").is_file());
    for t in ["airflow", "argo", "tekton", "kfp", "job"] {
        assert!(out.join("fan").join(t).is_dir(), "--target all misses {t}");
    }
}

/// The pre-commit gate (`check --no-bundle`) stops a task cell that does not parse; a
/// `skip` tag leaves such a cell out.
#[test]
fn check_stops_on_a_task_cell_that_does_not_parse() {
    let bad = common::fixture("broken/NB010_cell_syntax_error.ipynb");
    let (code, _, err) = common::run(&["check", "--no-bundle", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error[NB010]") && err.contains("task `a` would run without it"),
        "{err}"
    );
    let skipped = common::fixture("broken/NB010_skip_is_the_way_out.ipynb");
    let (code, _, err) = common::run(&["check", "--no-bundle", skipped.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("[NB010]"), "{err}");
}

/// A notebook as JupyterLab shows it: a markdown cell first, code cells with `In [n]`
/// prompts, a syntax error on line 5 of a cell, a misspelt tag, a secret on a line.
fn notebook_with_problems(dir: &Path) -> std::path::PathBuf {
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Sales"},
            {"cell_type": "code", "id": "load-cell", "execution_count": 7, "outputs": [],
             "metadata": {"tags": ["task:load", "stpe:x", "env:GH=ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"]},
             "source": "x = 1\ny = 2\nz = 3\nw = 4\nprint 'big'\n"},
            {"cell_type": "code", "execution_count": null, "outputs": [], "metadata": {},
             "source": "a = x\ntoken = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789AB'\n"},
        ]
    });
    let p = dir.join("problems.ipynb");
    std::fs::write(&p, nb.to_string()).unwrap();
    p
}

#[test]
fn diagnostics_quote_the_line_they_point_at_and_name_the_cell_as_the_notebook_shows_it() {
    let tmp = common::tempdir();
    let nb = notebook_with_problems(tmp.path());
    let (code, _, err) = common::run(&["check", "--no-bundle", nb.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    // Cells counted from 1 with the markdown cell, the `In [7]` prompt, the first line;
    // then the line itself with a caret under column 7.
    assert!(
        err.contains(
            "error[NB010]: the cell is not valid Python 3"
        ) && err.contains(
            "problems.ipynb, cell 2 (In [7]: `x = 1`), line 5, column 7\n   |\n 5 | print 'big'\n   |       ^\n"
        ),
        "{err}"
    );
    assert!(!err.contains("(`x = 1`), line 5"), "{err}");
    // A tag diagnostic points at the tag among the cell's tags.
    assert!(
        err.contains(
            "problems.ipynb, cell 2 (In [7]: `x = 1`)\n   |\n   | tags: task:load, stpe:x, env:GH…\n   |                  ^^^^^^\n"
        ),
        "{err}"
    );
    // A cell never run has no prompt number; the secret's line is quoted masked.
    assert!(
        err.contains("problems.ipynb, cell 3 (`a = x`), line 2\n   |\n 2 | token = '***'\n"),
        "{err}"
    );
    assert!(!err.contains("ghp_abcdef"), "secret leaked: {err}");
}

/// NB101 and NB011 point their caret at the name and the magic, not at the line start.
#[test]
fn undefined_names_and_unknown_magics_have_a_column() {
    let tmp = common::tempdir();
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "code", "execution_count": null, "outputs": [],
             "metadata": {"tags": ["task:load"]},
             "source": "a = 1\nprint(a, missing)\nb = %hocus 3\n"},
        ]
    });
    let p = tmp.path().join("cols.ipynb");
    std::fs::write(&p, nb.to_string()).unwrap();
    let (_, _, err) = common::run(&["check", "--no-bundle", p.to_str().unwrap()]);
    assert!(
        err.contains("[NB101]")
            && err.contains("line 2, column 10\n   |\n 2 | print(a, missing)\n   |          ^"),
        "{err}"
    );
    assert!(
        err.contains("[NB011]")
            && err.contains("line 3, column 5\n   |\n 3 | b = %hocus 3\n   |     ^"),
        "{err}"
    );
}

#[test]
fn json_diagnostics_carry_the_cell_as_the_notebook_shows_it() {
    let tmp = common::tempdir();
    let nb = notebook_with_problems(tmp.path());
    let (code, out, _) = common::run(&[
        "check",
        "--no-bundle",
        "--format",
        "json",
        nb.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(!out.contains("ghp_abcdef"), "secret leaked: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let diags = v["notebooks"][0]["diagnostics"].as_array().unwrap();
    let find = |c: &str| {
        diags
            .iter()
            .find(|d| d["code"] == c)
            .unwrap_or_else(|| panic!("no {c} in {out}"))
    };
    let syntax = &find("NB010")["location"];
    // `cell` keeps its meaning (0-based over all cells); the new fields are added.
    assert_eq!(syntax["cell"], 1);
    assert_eq!(syntax["cell_number"], 2);
    assert_eq!(syntax["code_cell"], 1);
    assert_eq!(syntax["execution_count"], 7);
    assert_eq!(syntax["cell_id"], "load-cell");
    assert_eq!(syntax["cell_first_line"], "x = 1");
    assert_eq!((&syntax["line"], &syntax["column"]), (&5.into(), &7.into()));
    assert_eq!(syntax["source_line"], "print 'big'");
    let tag = &find("NB020")["location"];
    assert_eq!(tag["tag"], "stpe:x");
    assert!(tag.get("cell_tags").is_none(), "{tag}");
    let secret = &find("NB040")["location"];
    assert_eq!(secret["cell_number"], 3);
    assert_eq!(secret["code_cell"], 2);
    assert!(secret.get("execution_count").is_none(), "{secret}");
    assert_eq!(secret["source_line"], "token = '***'");
}

/// The bundle's bundle.json records the targets it holds: `convert` without --target and
/// `check --fix` regenerate those, so a stale argo/tekton bundle is fixed by the command
/// NB050 names; a target no longer written loses its generated files, never the user's.
#[test]
fn a_bundle_knows_its_targets() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("d.ipynb");
    write_notebook(
        &nb,
        &[("a = 1", &["task:first"]), ("b = a + 1", &["task:second"])],
    );
    let n = nb.to_str().unwrap();
    let dir = tmp.path().join("build/d");
    let (code, _, err) = common::run(&["convert", n, "-t", "argo", "-t", "tekton"]);
    assert_eq!(code, 0, "{err}");
    let record = common::read_json(&dir.join("bundle.json"));
    assert_eq!(record["targets"], serde_json::json!(["argo", "tekton"]));
    assert!(
        record["files"]
            .as_array()
            .unwrap()
            .contains(&"argo/d.yaml".into()),
        "{record}"
    );
    let edit = |src: &str| {
        write_notebook(
            &nb,
            &[(src, &["task:first"]), ("b = a + 1", &["task:second"])],
        )
    };
    // The notebook changes: the bundle is stale, and the help names its targets.
    edit("a = 2");
    let (code, _, err) = common::run(&["check", n]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("NB050")
            && err.contains("argo/d.yaml changed")
            && err.contains("argo, tekton"),
        "{err}"
    );
    // `convert` as the help says: both targets regenerated, no airflow/ added.
    let (code, _, err) = common::run(&["convert", n]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(" for argo, tekton\n"), "{err}");
    assert!(!dir.join("airflow").exists());
    let (code, _, err) = common::run(&["check", n]);
    assert_eq!(code, 0, "{err}");
    // `check --fix` the same, and exits 0 when it fixed everything.
    let tekton = std::fs::read_to_string(dir.join("tekton/d.yaml")).unwrap();
    edit("a = 3");
    let (code, _, err) = common::run(&["check", "--fix", n]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("regenerated"), "{err}");
    // The task's image (named by its content) changed, and tekton/ with it.
    assert_ne!(
        std::fs::read_to_string(dir.join("tekton/d.yaml")).unwrap(),
        tekton
    );
    let (code, _, err) = common::run(&["check", n]);
    assert_eq!(code, 0, "{err}");
    // `check --fix --target argo` compares argo only and keeps tekton.
    edit("a = 4");
    let (code, _, err) = common::run(&["check", "--fix", "-t", "argo", n]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("tekton/d.yaml").is_file());
    let (code, _, err) = common::run(&["check", n]);
    assert_eq!(code, 0, "{err}");
    // Converting to airflow alone removes the files nb2pipe wrote for argo and tekton,
    // but not a file of the user's among them.
    std::fs::write(dir.join("argo/NOTES.md"), "mine\n").unwrap();
    let (code, out, err) = common::run(&["convert", n, "-t", "airflow", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"], serde_json::json!(["airflow"]));
    let removed: Vec<&str> = doc["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        removed.contains(&"argo/d.yaml") && removed.iter().any(|r| r.starts_with("tekton/")),
        "{removed:?}"
    );
    assert!(!dir.join("tekton").exists(), "an emptied folder goes too");
    assert_eq!(
        std::fs::read_to_string(dir.join("argo/NOTES.md")).unwrap(),
        "mine\n"
    );
    assert!(dir.join("airflow/d.py").is_file());
    let (code, _, err) = common::run(&["check", n]);
    assert_eq!(code, 0, "{err}");
}

/// A bundle written before records: its target folders are its targets, and a convert
/// that writes fewer leaves the others alone and says so.
#[test]
fn a_bundle_without_a_record_keeps_its_target_folders() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("d.ipynb");
    write_notebook(&nb, &[("a = 1", &["task:first"])]);
    let n = nb.to_str().unwrap();
    let dir = tmp.path().join("build/d");
    let (code, _, err) = common::run(&["convert", n, "-t", "airflow", "-t", "kfp"]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(dir.join("bundle.json")).unwrap();
    let (code, _, err) = common::run(&["convert", n]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(" for airflow, kfp\n"), "{err}");
    std::fs::remove_file(dir.join("bundle.json")).unwrap();
    let (code, _, err) = common::run(&["convert", n, "-t", "airflow"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: kfp/ was not written") && err.contains("--target kfp"),
        "{err}"
    );
    assert!(dir.join("kfp/d.yaml").is_file());
}

/// A schedule no cron parser reads is refused before anything is written: exit 1, NB025
/// naming the schedule; one valid for Airflow only is refused by the targets that
/// cannot run it (NB301), and written for the one that can.
#[test]
fn schedules_are_checked_by_a_cron_parser() {
    let tmp = common::tempdir();
    let nb = tmp.path().join("s.ipynb");
    std::fs::write(
        &nb,
        r#"{"nbformat":4,"nbformat_minor":5,"metadata":{},"cells":[
        {"cell_type":"code","source":"x = 1","metadata":{"tags":["task:a"]}}]}"#,
    )
    .unwrap();
    let convert = |schedule: &str, target: &str| {
        let out = tmp.path().join(format!("out-{target}"));
        let _ = std::fs::remove_dir_all(&out);
        let r = common::run(&[
            "convert",
            nb.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
            "--schedule",
            schedule,
        ]);
        (r, out)
    };
    for bad in [
        "99 99 * * *",
        "0 0 31 2 *",
        "* * * * * *",
        "@fortnightly",
        "TZ=Nowhere/Land 0 5 * * *",
    ] {
        let ((exit, _, err), out) = convert(bad, "all");
        assert_eq!(exit, 1, "{bad}: {err}");
        assert!(
            err.contains("NB025") && err.contains(&format!("schedule `{bad}`")),
            "{bad}: {err}"
        );
        assert!(!out.exists(), "{bad}: nothing is written");
    }
    // `L` (last day of the month): croniter reads it, Go's cron parser does not.
    let ((exit, _, err), out) = convert("0 3 L * *", "argo");
    assert_eq!(exit, 1, "{err}");
    assert!(
        err.contains("NB301") && err.contains("Argo CronWorkflow cron parser has no `L`"),
        "{err}"
    );
    assert!(!out.exists());
    let ((exit, _, err), out) = convert("0 3 L * *", "airflow");
    assert_eq!(exit, 0, "{err}");
    let dag = std::fs::read_to_string(out.join("s/airflow/s.py")).unwrap();
    assert!(
        dag.contains("schedule='0 3 L * *'") || dag.contains("schedule=\"0 3 L * *\""),
        "{dag}"
    );
    // A zone: the DAG's start_date zone, Argo's spec.timezone.
    let ((exit, _, err), out) = convert("TZ=Europe/Paris 30 6 * * 1-5", "airflow,argo");
    assert_eq!(exit, 0, "{err}");
    let dag = std::fs::read_to_string(out.join("s/airflow/s.py")).unwrap();
    assert!(
        dag.contains("tz='Europe/Paris'") || dag.contains("tz=\"Europe/Paris\""),
        "{dag}"
    );
    assert!(
        dag.contains("30 6 * * 1-5") && !dag.contains("TZ="),
        "{dag}"
    );
    let wf = std::fs::read_to_string(out.join("s/argo/s.yaml")).unwrap();
    assert!(
        wf.contains("timezone: Europe/Paris") && wf.contains("- 30 6 * * 1-5"),
        "{wf}"
    );
    // @continuous: Airflow only, one run at a time.
    let ((exit, _, err), out) = convert("@continuous", "airflow");
    assert_eq!(exit, 0, "{err}");
    let dag = std::fs::read_to_string(out.join("s/airflow/s.py")).unwrap();
    assert!(dag.contains("max_active_runs=1"), "{dag}");
    let ((exit, _, err), _) = convert("@continuous", "argo");
    assert_eq!(exit, 1, "{err}");
    assert!(
        err.contains("NB301") && err.contains("Airflow only"),
        "{err}"
    );
}
