//! Snapshots of what `convert` writes for every fixture (plan.json, the Airflow DAG,
//! each task's files), one joined snapshot per fixture. The real tools load these
//! files in tests/airflow.rs; here a change in output shows up for review
//! (`cargo insta review`).

mod common;

#[test]
fn bundle_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(common::root().join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    // The version is in every generated header; keep snapshots stable across releases.
    settings.add_filter(r"nb2pipe \d+\.\d+\.\d+", "nb2pipe [VERSION]");
    settings.bind(|| {
        for nb in common::fixtures_in("notebooks") {
            let tmp = common::tempdir();
            let dir = common::convert(&nb, tmp.path(), &[]);
            let tree = nb2pipe::fs::read_tree(&dir).unwrap();
            let mut joined = String::new();
            for (path, text) in &tree {
                // The runtime is one file copied into every task: snapshot it once, apart.
                // The record of the bundle lists the files shown here.
                if path.ends_with("nb2pipe_runtime.py") || path == "bundle.json" {
                    continue;
                }
                joined.push_str(&format!("================ {path} ================\n{text}"));
            }
            let name = nb.file_stem().unwrap().to_string_lossy().into_owned();
            insta::assert_snapshot!(name, joined);
        }
    });
}

/// The diagnostics as a user reads them (`check --no-bundle`, text): every broken
/// fixture, one snapshot, so a change in wording or layout shows up for review.
#[test]
fn diagnostics_snapshot() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(common::root().join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    let mut joined = String::new();
    for nb in common::fixtures_in("broken") {
        let (_, _, err) = common::run(&["check", "--no-bundle", nb.to_str().unwrap()]);
        let name = nb.file_name().unwrap().to_string_lossy().into_owned();
        let dir = format!("{}/", nb.parent().unwrap().display());
        joined.push_str(&format!(
            "================ {name} ================\n{}",
            err.replace(&dir, "")
        ));
    }
    settings.bind(|| insta::assert_snapshot!("diagnostics", joined));
}
