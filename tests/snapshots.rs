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
                if path.ends_with("nb2pipe_runtime.py") {
                    continue;
                }
                joined.push_str(&format!("================ {path} ================\n{text}"));
            }
            let name = nb.file_stem().unwrap().to_string_lossy().into_owned();
            insta::assert_snapshot!(name, joined);
        }
    });
}
