//! Dependency inference: every labelled fixture in fixtures/deps/ (expected.json, written by
//! fixtures/make_deps_fixtures.py) gets exactly its hand-checked requirements, `nb2pipe deps`
//! agrees with the bundle's requirements.txt, and the mapping data is sound.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{fixture, read_json, run, tempdir};
use nb2pipe::deps;

struct Case {
    name: String,
    notebook: PathBuf,
    args: Vec<String>,
    tasks: BTreeMap<String, BTreeSet<String>>,
    local_modules: BTreeMap<String, BTreeSet<String>>,
    /// The exit code of `nb2pipe deps` (1 when the notebook has an error).
    exit: i32,
}

fn cases() -> Vec<Case> {
    let root = fixture("deps");
    let expected = read_json(&root.join("expected.json"));
    let mut out = Vec::new();
    for (name, e) in expected.as_object().unwrap() {
        let dir = root.join(name);
        let args = e["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            // Paths after --python are relative to the case's folder.
            .map(|a| {
                if a.contains('/') {
                    dir.join(a).to_string_lossy().into_owned()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let set = |v: &serde_json::Value| -> BTreeMap<String, BTreeSet<String>> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(t, lines)| {
                    (
                        t.clone(),
                        lines
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|l| l.as_str().unwrap().to_string())
                            .collect(),
                    )
                })
                .collect()
        };
        out.push(Case {
            name: name.clone(),
            notebook: dir.join(e["notebook"].as_str().unwrap()),
            args,
            tasks: set(&e["tasks"]),
            local_modules: set(&e["local_modules"]),
            exit: e["exit"].as_i64().unwrap_or(0) as i32,
        });
    }
    out
}

fn deps_json(nb: &Path, args: &[String]) -> serde_json::Value {
    deps_json_exit(nb, args, 0)
}

fn deps_json_exit(nb: &Path, args: &[String], exit: i32) -> serde_json::Value {
    let mut a = vec![
        "deps".to_string(),
        nb.to_string_lossy().into_owned(),
        "--format".into(),
        "json".into(),
    ];
    a.extend(args.iter().cloned());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&a);
    assert_eq!(code, exit, "deps {}:\n{stdout}\n{stderr}", nb.display());
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn at_least_thirty_labelled_fixtures() {
    assert!(
        cases().len() >= 30,
        "only {} labelled fixtures",
        cases().len()
    );
}

#[test]
fn every_fixture_gets_exactly_its_expected_requirements() {
    let mut failures = Vec::new();
    for c in cases() {
        let doc = deps_json_exit(&c.notebook, &c.args, c.exit);
        let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut locals: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in doc["tasks"].as_array().unwrap() {
            let name = t["task"].as_str().unwrap().to_string();
            got.insert(
                name.clone(),
                t["requirements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["line"].as_str().unwrap().to_string())
                    .collect(),
            );
            let l: BTreeSet<String> = t["local_modules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect();
            if !l.is_empty() {
                locals.insert(name, l);
            }
        }
        if got != c.tasks {
            failures.push(format!(
                "{}: expected {:?}\n      got {:?}",
                c.name, c.tasks, got
            ));
        }
        if locals != c.local_modules {
            failures.push(format!(
                "{}: local modules expected {:?}, got {:?}",
                c.name, c.local_modules, locals
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bundle_requirements_txt_equals_deps_output() {
    // A notebook with an error writes no bundle.
    for c in cases().into_iter().filter(|c| c.exit == 0) {
        let out = tempdir();
        let mut extra: Vec<&str> = c.args.iter().map(String::as_str).collect();
        extra.push("--name");
        extra.push("bundle");
        let bundle = common::convert(&c.notebook, out.path(), &extra);
        let doc = deps_json(&c.notebook, &c.args);
        for t in doc["tasks"].as_array().unwrap() {
            let task = t["task"].as_str().unwrap();
            let file =
                std::fs::read_to_string(bundle.join("tasks").join(task).join("requirements.txt"))
                    .unwrap();
            let file_lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
            let deps_lines: Vec<&str> = t["requirements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["line"].as_str().unwrap())
                .collect();
            assert_eq!(file_lines, deps_lines, "{}: task {task}", c.name);
        }
        // The requirements format is the same lines with comments.
        let mut a = vec!["deps", c.notebook.to_str().unwrap()];
        a.extend(c.args.iter().map(String::as_str));
        let (code, text, _) = run(&a);
        assert_eq!(code, 0);
        for t in doc["tasks"].as_array().unwrap() {
            for r in t["requirements"].as_array().unwrap() {
                let line = r["line"].as_str().unwrap();
                assert!(
                    text.lines()
                        .any(|l| l.split("  # ").next().map(str::trim_end) == Some(line)),
                    "{}: `{line}` missing from:\n{text}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn every_requirement_says_where_its_name_and_pin_came_from() {
    let c = cases().into_iter().find(|c| c.name == "venv_env").unwrap();
    let doc = deps_json(&c.notebook, &c.args);
    let reqs = doc["tasks"][0]["requirements"].as_array().unwrap();
    let find = |n: &str| {
        reqs.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {reqs:?}"))
    };
    assert_eq!(
        find("opencv-python-headless")["name_source"],
        "installed in .venv"
    );
    assert_eq!(
        find("opencv-python-headless")["pin_source"],
        "installed in .venv"
    );
    assert_eq!(find("requests")["name_source"], "module name");
    assert_eq!(find("requests")["pin_source"], "unpinned");
    let c = cases()
        .into_iter()
        .find(|c| c.name == "requirements_above")
        .unwrap();
    let doc = deps_json(&c.notebook, &c.args);
    let r = &doc["tasks"][0]["requirements"][0];
    assert_eq!(r["pin_source"], "../requirements.txt");
    assert_eq!(r["source"], "import scipy");
}

#[test]
fn warnings_for_unpinned_removed_and_broken_files() {
    let codes = |name: &str| -> Vec<String> {
        let c = cases().into_iter().find(|c| c.name == name).unwrap();
        let doc = deps_json(&c.notebook, &c.args);
        doc["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(codes("renames").contains(&"NB201".to_string()));
    assert!(
        !codes("uv_lock").contains(&"NB201".to_string()),
        "everything is pinned there"
    );
    let removed = codes("removed_313");
    assert_eq!(
        removed.iter().filter(|c| *c == "NB203").count(),
        4,
        "{removed:?}"
    );
    assert_eq!(
        codes("malformed_files")
            .iter()
            .filter(|c| *c == "NB202")
            .count(),
        2
    );
    assert!(!codes("removed_not_yet").contains(&"NB203".to_string()));
}

#[test]
fn a_python_path_that_is_not_an_environment_is_an_error() {
    let nb = fixture("deps/renames/renames.ipynb");
    let (code, _, stderr) = run(&[
        "deps",
        nb.to_str().unwrap(),
        "--python",
        "/nonexistent/bin/python",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("NB204"), "{stderr}");
}

#[test]
fn deps_task_filter_and_unknown_task() {
    let nb = fixture("deps/independent_tasks/independent_tasks.ipynb");
    let (code, out, _) = run(&["deps", nb.to_str().unwrap(), "--task", "gcp"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("# task gcp"), "{out}");
    assert!(
        out.contains("google-cloud-storage") && !out.contains("boto3"),
        "{out}"
    );
    let (code, _, err) = run(&["deps", nb.to_str().unwrap(), "--task", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no task named `nope`"), "{err}");
}

#[test]
fn mapping_table_has_300_entries_and_the_required_ones() {
    let rows = deps::table_rows();
    assert!(rows.len() >= 300, "{} rows", rows.len());
    let expect = [
        ("google.cloud.storage", "google-cloud-storage"),
        ("google.cloud.storage.blob", "google-cloud-storage"),
        ("azure.storage.blob", "azure-storage-blob"),
        ("kafka", "kafka-python"),
        ("grpc", "grpcio"),
        ("umap", "umap-learn"),
        ("ignite", "pytorch-ignite"),
        ("kale", "kubeflow-kale"),
        ("sklearn", "scikit-learn"),
        ("cv2", "opencv-python"),
        ("PIL", "pillow"),
        ("yaml", "pyyaml"),
        ("bs4", "beautifulsoup4"),
        ("dateutil", "python-dateutil"),
        ("pyro", "pyro-ppl"),
        ("mpl_toolkits", "matplotlib"),
        ("mpl_toolkits.basemap", "basemap"),
        ("talib", "TA-Lib"),
        ("tensorflow_serving", "tensorflow-serving-api"),
        ("pkg_resources", "setuptools"),
    ];
    for (m, d) in expect {
        assert_eq!(deps::table_lookup(m).map(|r| r.dist), Some(d), "{m}");
    }
    assert!(deps::table_lookup("numpy").is_none());
    // No row maps a module to itself with no alternative: that row would say nothing.
    for r in &rows {
        assert!(!r.module.is_empty() && !r.dist.is_empty());
        let alts: Vec<&str> = r.all().skip(1).collect();
        assert!(
            deps::normalize(r.module) != deps::normalize(r.dist)
                || !alts.is_empty()
                || r.module.contains('.'),
            "useless row {}",
            r.module
        );
        assert!(
            !deps::is_stdlib(r.module.split('.').next().unwrap(), 11) || r.module == "distutils",
            "{} is stdlib",
            r.module
        );
    }
}

#[test]
fn namespace_convention() {
    assert_eq!(
        deps::namespace_convention("google.cloud.bigquery_migration_v2.services").as_deref(),
        Some("google-cloud-bigquery-migration")
    );
    assert_eq!(
        deps::namespace_convention("azure.mgmt.newthing").as_deref(),
        Some("azure-mgmt-newthing")
    );
    assert_eq!(
        deps::namespace_convention("azure.storage.blob.aio").as_deref(),
        Some("azure-storage-blob")
    );
    assert_eq!(deps::namespace_convention("numpy.linalg"), None);
}

#[test]
fn stdlib_per_version() {
    let s = |m: &str, minor: u32| deps::is_stdlib(m, minor);
    assert!(s("distutils", 11) && !s("distutils", 12));
    assert!(s("asynchat", 11) && !s("asynchat", 12) && !s("imp", 12));
    assert!(s("cgi", 12) && !s("cgi", 13) && !s("telnetlib", 13) && !s("crypt", 13));
    assert!(!s("tomllib", 10) && s("tomllib", 11));
    assert!(!s("zoneinfo", 8) && s("zoneinfo", 9) && !s("graphlib", 8));
    assert!(s("dummy_threading", 8) && !s("dummy_threading", 9));
    assert!(s("annotationlib", 14) && !s("annotationlib", 13) && s("compression", 14));
    for minor in 8..=14 {
        for m in [
            "os",
            "sys",
            "json",
            "re",
            "collections",
            "typing",
            "asyncio",
            "sqlite3",
        ] {
            assert!(s(m, minor), "{m} in 3.{minor}");
        }
        for m in ["numpy", "pandas", "requests", "yaml"] {
            assert!(!s(m, minor), "{m} in 3.{minor}");
        }
    }
    assert_eq!(
        deps::removed_from_stdlib("distutils", 12).and_then(|r| r.backport),
        Some("setuptools")
    );
    assert_eq!(
        deps::removed_from_stdlib("imp", 12).map(|r| r.backport),
        Some(None)
    );
    assert!(deps::removed_from_stdlib("distutils", 11).is_none());
    assert_eq!(deps::python_minor("3.7"), 8);
    assert_eq!(deps::python_minor("3.20"), 14);
}

#[test]
fn requirement_parsing() {
    let p = |s: &str| deps::parse_requirement(s).map(|r| r.line());
    // The marker stays: pip evaluates it where the task runs.
    assert_eq!(
        p("scikit-learn [ alldeps ] == 1.5.1 ; python_version > '3.8'").as_deref(),
        Some("scikit-learn[alldeps]==1.5.1 ; python_full_version >= '3.9'")
    );
    assert_eq!(p("Foo.Bar (>=1.0, <2)").as_deref(), Some("Foo.Bar>=1.0,<2"));
    assert_eq!(p("2>&1"), None);
    assert_eq!(p("pandas>=2,"), None);
    assert_eq!(p("requests<3").as_deref(), Some("requests<3"));
    assert_eq!(
        p("pkg @ https://x.invalid/pkg.whl").as_deref(),
        Some("pkg @ https://x.invalid/pkg.whl")
    );
    assert_eq!(p("-r other.txt"), None);
    assert_eq!(p("./local/path"), None);
    assert_eq!(p("name with spaces"), None);
}

#[test]
fn malformed_inputs_never_crash() {
    let dir = tempdir();
    let d = dir.path();
    let nb = d.join("x.ipynb");
    std::fs::write(
        &nb,
        std::fs::read_to_string(fixture("deps/renames/renames.ipynb")).unwrap(),
    )
    .unwrap();
    for (file, text) in [
        (
            "pyproject.toml",
            "[project]\ndependencies = 3\n[tool.poetry.dependencies]\nx = [1]\n",
        ),
        ("poetry.lock", "\u{0}\u{1}"),
        ("environment.yml", "dependencies: {pip: 3}\n- : :"),
        ("requirements.txt", "-r requirements.txt\n===\n[x]\n"),
    ] {
        std::fs::write(d.join(file), text).unwrap();
    }
    std::fs::create_dir_all(d.join(".venv/lib/python3.11/site-packages/broken-1.dist-info"))
        .unwrap();
    std::fs::write(
        d.join(".venv/lib/python3.11/site-packages/broken-1.dist-info/RECORD"),
        "\"unterminated,\n,,,\n../../bin/x,,\n",
    )
    .unwrap();
    let (code, out, err) = run(&["deps", nb.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["tasks"][0]["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "scikit-learn"));
}

fn notebook(dir: &Path, cells: &[(&str, &str)]) -> PathBuf {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(tags, src)| {
            let tags: Vec<&str> = tags.split_whitespace().collect();
            serde_json::json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags}, "outputs": [], "source": src})
        })
        .collect();
    let nb =
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
    let p = dir.join("nb.ipynb");
    std::fs::write(&p, serde_json::to_string(&nb).unwrap()).unwrap();
    p
}

fn lines_and_codes(nb: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let doc = deps_json(nb, &[]);
    let lines = doc["tasks"][0]["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_str().unwrap().to_string())
        .collect();
    let diags = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (lines, diags)
}

#[test]
fn install_lines_are_read_as_a_shell_reads_them() {
    let dir = tempdir();
    let nb = notebook(
        dir.path(),
        &[(
            "task:main",
            "!pip3 install PyGithub pandas > /dev/null 2>&1\n\
             %pip install -q --upgrade --index-url https://pypi.org/simple 'requests==2.32.3' && echo done\n\
             !cd /tmp; python -m pip install -e ./src -rextra.txt \"six>=1.16 ; python_version >= '3'\" | tail -1\n\
             !pip install $PKG {other} 'not a requirement!'\n\
             import github, pandas, requests, six",
        )],
    );
    std::fs::write(
        dir.path().join("extra.txt"),
        "tabulate==0.9.0 --hash=sha256:00\n",
    )
    .unwrap();
    let (lines, diags) = lines_and_codes(&nb);
    assert_eq!(
        lines,
        [
            "pandas",
            "PyGithub",
            "requests==2.32.3",
            "six>=1.16 ; python_full_version >= '3'",
            "tabulate==0.9.0"
        ],
        "{diags:?}"
    );
    let rejected: Vec<&str> = diags
        .iter()
        .filter(|(c, _)| c == "NB206")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(rejected.len(), 3, "{diags:?}");
    assert!(
        rejected[0].contains("`$PKG`") && rejected[0].starts_with("`!pip install`"),
        "{rejected:?}"
    );
    // Where the requirement came from is the command as written.
    let doc = deps_json(&nb, &[]);
    let src: Vec<&str> = doc["tasks"][0]["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert!(src.contains(&"!pip3 install in cell 0"), "{src:?}");
    assert!(src.contains(&"%pip install in cell 0"), "{src:?}");
}

#[test]
fn module_names_that_are_not_their_distribution() {
    let dir = tempdir();
    let nb = notebook(
        dir.path(),
        &[(
            "task:main",
            "from kubeflow import fairing\nimport kubeflow.katib as katib\nfrom kubeflow.tfjob import TFJobClient\n\
             import kubeflow.metadata.metadata as md\nimport ibm_boto3\nimport service_pb2, service_pb2_grpc\n\
             from protos import model_pb2\nfrom google.protobuf import descriptor_pb2\nimport urllib2\n\
             try:\n    from StringIO import StringIO\nexcept ImportError:\n    from io import StringIO\n",
        )],
    );
    let (lines, diags) = lines_and_codes(&nb);
    assert_eq!(
        lines,
        [
            "ibm-cos-sdk",
            "kubeflow-fairing",
            "kubeflow-katib",
            "kubeflow-metadata",
            "kubeflow-tfjob",
            "protobuf"
        ],
        "{diags:?}"
    );
    let py2: Vec<&(String, String)> = diags.iter().filter(|(c, _)| c == "NB207").collect();
    assert_eq!(py2.len(), 1, "{diags:?}");
    assert!(
        py2[0].1.contains("`urllib2` is a Python 2") && py2[0].1.contains("`urllib.request`"),
        "{py2:?}"
    );
}

/// The generated requirements.txt is what pip reads: every line is accepted by the real
/// pip's parser (`--dry-run --no-deps` against the index).
#[test]
fn generated_requirements_install_with_pip() {
    let python = common::python_env("VALIDATE");
    let dir = tempdir();
    let nb = notebook(
        dir.path(),
        &[(
            "task:main",
            "!pip3 install six==1.16.0 'tabulate>=0.9' > /dev/null 2>&1 && echo ok\nimport six, tabulate",
        )],
    );
    let out = dir.path().join("out");
    let bundle = common::convert(&nb, &out, &["--name", "p"]);
    let req = bundle.join("tasks/main/requirements.txt");
    let text = std::fs::read_to_string(&req).unwrap();
    assert!(
        !text.contains("2>&1") && !text.contains("/dev/null"),
        "{text}"
    );
    let o = std::process::Command::new(python)
        .args(["-m", "pip", "install", "--dry-run", "--no-deps", "-q", "-r"])
        .arg(&req)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// By default a task runs every import of the `imports` cells before it (as the kernel
/// did); `imports:used` prunes it to the imports the task reads, and its requirements
/// follow.
#[test]
fn imports_used_prunes_the_prelude_imports() {
    let cells = |tags: &'static str| {
        [
            (
                "imports",
                "import numpy as np\nimport pandas as pd\nimport requests",
            ),
            (tags, "print(np.zeros(2))"),
        ]
    };
    let reqs = |tags: &'static str| -> (Vec<String>, String) {
        let dir = tempdir();
        let nb = notebook(dir.path(), &cells(tags));
        let (lines, diags) = lines_and_codes(&nb);
        let out = dir.path().join("out");
        let bundle = common::convert(&nb, &out, &["--name", "p"]);
        let code = std::fs::read_to_string(bundle.join("tasks/main/main.py")).unwrap();
        assert!(
            diags.iter().all(|(c, _)| c != "NB020" && c != "NB021"),
            "{diags:?}"
        );
        (lines, code)
    };
    let (all, code) = reqs("task:main");
    assert_eq!(all, ["numpy", "pandas", "requests"]);
    assert!(code.contains("import pandas as pd"), "{code}");
    let (used, code) = reqs("task:main imports:used");
    assert_eq!(used, ["numpy"]);
    assert!(
        code.contains("import numpy as np") && !code.contains("import pandas"),
        "{code}"
    );
    let (all, _) = reqs("task:main imports:all");
    assert_eq!(all, ["numpy", "pandas", "requests"]);
}

#[test]
fn imports_tag_value_is_checked() {
    let dir = tempdir();
    let nb = notebook(dir.path(), &[("task:main imports:some", "x = 1")]);
    let (code, _, err) = run(&["check", "--no-bundle", nb.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("NB021") && err.contains("imports:used"),
        "{err}"
    );
}
