//! `nb2pipe check NB...`: the pre-commit gate. Every plan diagnostic, hard-coded secrets
//! (NB040), and a bundle that no longer matches its notebook (NB050); `--fix`
//! regenerates the bundle. Notebooks are checked in parallel.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::convert::{bundle_targets, output_root};
use super::{load, CmdResult};
use crate::cli::{CheckArgs, DiagFormat};
use crate::diagnostics::{self, render, Code, Diagnostic};
use crate::emit::{self, Templates};

#[derive(Serialize)]
struct Report {
    notebook: PathBuf,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<PathBuf>,
    stale: bool,
    fixed: bool,
    diagnostics: Vec<Diagnostic>,
}

pub fn execute(args: &CheckArgs) -> CmdResult {
    let templates = Templates::load(args.templates.as_deref())?;
    let targets = match &args.target {
        Some(t) => Some(super::convert::check_targets(std::slice::from_ref(t))?),
        None => None,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let notebooks: Vec<&PathBuf> = args.notebooks.iter().collect();
    let mut reports: Vec<(usize, Report)> = std::thread::scope(|s| {
        let chunk = notebooks.len().div_ceil(jobs).max(1);
        let handles: Vec<_> = notebooks
            .chunks(chunk)
            .enumerate()
            .map(|(ci, nbs)| {
                let templates = &templates;
                let targets = targets.as_deref();
                s.spawn(move || {
                    nbs.iter()
                        .enumerate()
                        .map(|(i, nb)| (ci * chunk + i, check_one(nb, args, templates, targets)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("check worker"))
            .collect()
    });
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<Report> = reports.into_iter().map(|(_, r)| r).collect();
    let all: Vec<&Diagnostic> = reports.iter().flat_map(|r| r.diagnostics.iter()).collect();
    match args.format {
        DiagFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"notebooks": reports}))?
        ),
        DiagFormat::Human => {
            for r in &reports {
                if !r.diagnostics.is_empty() {
                    eprint!("{}", render::human(&r.diagnostics));
                }
                if r.fixed {
                    eprintln!(
                        "regenerated {}",
                        r.bundle
                            .as_ref()
                            .map(|b| b.display().to_string())
                            .unwrap_or_default()
                    );
                }
            }
            let owned: Vec<Diagnostic> = all.iter().map(|d| (*d).clone()).collect();
            eprintln!(
                "checked {} notebook{}: {}",
                reports.len(),
                if reports.len() == 1 { "" } else { "s" },
                render::summary(&owned)
            );
        }
    }
    Ok(if all.iter().any(|d| d.is_error()) {
        crate::run::EXIT_INPUT
    } else {
        crate::run::EXIT_OK
    })
}

fn check_one(
    nb: &Path,
    args: &CheckArgs,
    templates: &Templates,
    targets: Option<&[String]>,
) -> Report {
    let loaded = load(nb, &args.settings);
    let mut diags = loaded.diagnostics;
    let mut report = Report {
        notebook: nb.to_path_buf(),
        ok: true,
        bundle: None,
        stale: false,
        fixed: false,
        diagnostics: Vec::new(),
    };
    // Secrets are looked for even when the plan has errors: they matter most.
    if let Some(notebook) = &loaded.notebook {
        diags.extend(super::secret_diagnostics(nb, notebook));
    }
    super::mask_first_lines(&mut diags);
    if let (Some(mut plan), false, false) =
        (loaded.plan, diagnostics::has_errors(&diags), args.no_bundle)
    {
        let root = output_root(nb, args.out.as_deref(), loaded.output.as_deref());
        super::apply_recorded_images(&mut plan, &root);
        let plan = &plan;
        let dir = root.join(&plan.pipeline);
        let record = crate::fs::read_record(&dir);
        let recorded =
            bundle_targets(&[], &dir, record.as_ref()).unwrap_or_else(|_| vec!["airflow".into()]);
        let chosen: Vec<String> = match targets {
            Some(t) => t.to_vec(),
            None => recorded.clone(),
        };
        let skeletons = record.as_ref().is_some_and(|r| r.skeletons);
        let options = emit::EmitOptions { skeletons };
        report.bundle = Some(dir.clone());
        let current = targets.is_none()
            && record
                .as_ref()
                .is_some_and(|r| recorded_is_current(&dir, r, plan, templates, &chosen, &options));
        let generated = if current {
            None
        } else {
            Some(emit::bundle_with(plan, templates, &chosen, &options))
        };
        match generated {
            None => {}
            Some(generated) => match generated {
                Ok(bundle) => {
                    let mut diff = compare(&dir, &bundle, &chosen);
                    // The record is judged when every target it holds is compared.
                    if let (Some(r), None) = (&record, targets) {
                        for f in &r.files {
                            if !bundle.has(f)
                                && dir.join(f).is_file()
                                && !diff.iter().any(|(p, _)| p == f)
                            {
                                diff.push((f.clone(), "left over"));
                            }
                        }
                        if *r != crate::fs::Record::of(&bundle, &chosen, skeletons) {
                            diff.push((crate::fs::RECORD.into(), "changed"));
                        }
                    }
                    if !diff.is_empty() {
                        if args.fix {
                            // --fix with --target keeps the other targets the bundle holds.
                            let keep: Vec<String> = emit::target_names()
                                .into_iter()
                                .filter(|t| {
                                    chosen.iter().chain(&recorded).any(|c| c == t || c == "all")
                                })
                                .map(str::to_string)
                                .collect();
                            let written = if keep == chosen {
                                Ok(bundle)
                            } else {
                                emit::bundle_with(plan, templates, &keep, &options)
                            };
                            match written.and_then(|b| {
                                let new = crate::fs::Record::of(&b, &keep, skeletons);
                                crate::fs::write_recorded(&dir, &b, &new, record.as_ref())
                            }) {
                                Ok(_) => report.fixed = true,
                                Err(e) => diags.push(Diagnostic::new(
                                    Code::StaleBundle,
                                    nb,
                                    format!("cannot regenerate {}: {e:#}", dir.display()),
                                )),
                            }
                        } else {
                            report.stale = true;
                            let what = if dir.is_dir() {
                                format!(
                                    "the bundle at {} is stale: {}",
                                    dir.display(),
                                    summarise(&diff)
                                )
                            } else {
                                format!("no generated bundle at {} yet", dir.display())
                            };
                            diags.push(
                            Diagnostic::new(Code::StaleBundle, nb, what)
                                .with_help(format!("run `nb2pipe check --fix {}` or `nb2pipe convert {}` (both write the targets the bundle holds: {}) and commit the result", nb.display(), nb.display(), recorded.join(", "))),
                        );
                        }
                    }
                }
                Err(e) => diags.push(Diagnostic::new(
                    Code::StaleBundle,
                    nb,
                    format!("cannot produce the bundle: {e:#}"),
                )),
            },
        }
    }
    diagnostics::sort(&mut diags);
    diags.dedup();
    report.ok = !diagnostics::has_errors(&diags);
    report.diagnostics = diags;
    report
}

/// Whether the bundle at `dir` is the one `check` would generate, known without
/// generating it: its record holds the input digest of this plan, templates, targets and
/// options; every file it lists has the recorded sha256 (or, for a project file, its
/// source's bytes); and nothing generated is on disk that it does not list. Any doubt
/// is `false`: the bundle is then generated and compared file by file.
fn recorded_is_current(
    dir: &Path,
    r: &crate::fs::Record,
    plan: &crate::plan::Plan,
    templates: &Templates,
    chosen: &[String],
    options: &emit::EmitOptions,
) -> bool {
    if r.targets != chosen
        || r.skeletons != options.skeletons
        || r.input.as_deref() != Some(emit::input_digest(plan, templates, chosen, options).as_str())
    {
        return false;
    }
    let copies: std::collections::BTreeMap<String, std::path::PathBuf> = plan
        .tasks
        .iter()
        .flat_map(emit::task_code::copies_of)
        .collect();
    let listed: std::collections::BTreeSet<&str> = r.files.iter().map(String::as_str).collect();
    let expected: std::collections::BTreeSet<&str> = r
        .sha256
        .keys()
        .chain(copies.keys())
        .map(String::as_str)
        .collect();
    if listed != expected {
        return false;
    }
    let hashes_match = r.sha256.iter().all(|(p, h)| has_hash(&dir.join(p), h));
    let copies_match = copies.iter().all(|(p, from)| {
        matches!((std::fs::read(dir.join(p)), std::fs::read(from)), (Ok(a), Ok(b)) if a == b)
    });
    if !hashes_match || !copies_match {
        return false;
    }
    // A generated file the record does not list, or a module or data file a task no
    // longer has, would make the bundle stale.
    crate::fs::list_tree(dir).iter().all(|p| {
        let task_file = {
            let mut parts = p.split('/');
            parts.next() == Some("tasks")
                && parts.nth(1).is_some_and(|sub| {
                    sub == crate::deps::files::MODULES_DIR || sub == crate::deps::files::FILES_DIR
                })
        };
        p == crate::fs::RECORD
            || listed.contains(p.as_str())
            || !(task_file || (managed(p, chosen) && is_generated(p)))
    })
}

/// Whether the file at `path` has sha256 `hash`. Many files share one text (the runtime
/// in every task folder of every notebook): the bytes of a small file that matched are
/// kept, and a later file with the same hash is compared with them instead of hashed.
fn has_hash(path: &Path, hash: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    let known = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(hash)
        .cloned();
    if let Some(bytes) = known {
        return crate::fs::holds(path, &bytes);
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if crate::digest::sha256_hex(&bytes) != hash {
        return false;
    }
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if bytes.len() <= 1 << 20 && seen.len() < 256 {
        seen.insert(hash.to_string(), Arc::new(bytes));
    }
    true
}

/// Whether `path` (in a bundle) is in a place nb2pipe manages for `targets`.
fn managed(p: &str, targets: &[String]) -> bool {
    p == "plan.json"
        || p.starts_with("tasks/")
        || targets
            .iter()
            .any(|t| t == "all" || p.starts_with(&format!("{t}/")))
}

/// (path, what) for each difference between the bundle on disk and the expected one.
fn compare(dir: &Path, bundle: &emit::Bundle, targets: &[String]) -> Vec<(String, &'static str)> {
    let expected = &bundle.files;
    let on_disk = crate::fs::list_tree(dir);
    let mut diff = Vec::new();
    for (path, text) in expected {
        if !on_disk.contains(path) {
            diff.push((path.clone(), "missing"));
        } else if !crate::fs::holds(&dir.join(path), text.as_bytes()) {
            diff.push((path.clone(), "changed"));
        }
    }
    // The project files a task folder copies: compared as bytes (they may be binary).
    for (path, from) in &bundle.copies {
        match (std::fs::read(dir.join(path)), std::fs::read(from)) {
            (Err(_), _) => diff.push((path.clone(), "missing")),
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), _) => diff.push((path.clone(), "changed")),
        }
    }
    for path in &on_disk {
        if managed(path, targets) && !bundle.has(path) && is_generated(path) {
            diff.push((path.clone(), "left over"));
        }
    }
    // A module or data file the task no longer has would still go into its image.
    if let Ok(tasks) = std::fs::read_dir(dir.join("tasks")) {
        for t in tasks.flatten() {
            let name = t.file_name().to_string_lossy().into_owned();
            for path in crate::fs::task_leftovers(dir, &name, bundle) {
                if !diff.iter().any(|(p, _)| *p == path) {
                    diff.push((path, "left over"));
                }
            }
        }
    }
    diff
}

/// Files nb2pipe itself writes (others in the folder, like build logs, are not judged).
fn is_generated(path: &str) -> bool {
    path == "plan.json"
        || [".py", ".yaml", ".txt", "Dockerfile"]
            .iter()
            .any(|e| path.ends_with(e))
}

fn summarise(diff: &[(String, &'static str)]) -> String {
    let shown: Vec<String> = diff
        .iter()
        .take(5)
        .map(|(p, w)| format!("{p} {w}"))
        .collect();
    let more = if diff.len() > 5 {
        format!(", and {} more", diff.len() - 5)
    } else {
        String::new()
    };
    format!(
        "{} file{} differ{} ({}{more})",
        diff.len(),
        if diff.len() == 1 { "" } else { "s" },
        if diff.len() == 1 { "s" } else { "" },
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A converted bundle is known current from its record; any edit, addition or
    /// removal on disk, or other templates, sends `check` back to generating it.
    #[test]
    fn a_recorded_bundle_is_current_until_anything_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let nb = tmp.path().join("p.ipynb");
        let cells = serde_json::json!([
            {"cell_type": "code", "source": "import json\nx = 1", "metadata": {"tags": ["task:first"]}, "outputs": [], "execution_count": null},
            {"cell_type": "code", "source": "y = x + 1\nprint(y)", "metadata": {"tags": ["task:second"]}, "outputs": [], "execution_count": null}
        ]);
        let doc =
            serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
        std::fs::write(&nb, doc.to_string()).unwrap();
        let loaded = load(&nb, &Default::default());
        let plan = loaded.plan.expect("a plan");
        let templates = Templates::builtin();
        let chosen = vec!["airflow".to_string()];
        let options = emit::EmitOptions::default();
        let bundle = emit::bundle_with(&plan, &templates, &chosen, &options).unwrap();
        let dir = tmp.path().join("out");
        let record = crate::fs::Record::of(&bundle, &chosen, false);
        crate::fs::write_recorded(&dir, &bundle, &record, None).unwrap();
        let read = || crate::fs::read_record(&dir).unwrap();
        let current =
            |t: &Templates| recorded_is_current(&dir, &read(), &plan, t, &chosen, &options);
        assert!(current(&templates));

        let main = dir.join("tasks/second/main.py");
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, text.replace("print(y)", "print(y) ")).unwrap();
        assert!(!current(&templates), "an edited file");
        std::fs::write(&main, &text).unwrap();
        assert!(current(&templates));

        std::fs::write(dir.join("airflow/extra.py"), "x = 1\n").unwrap();
        assert!(
            !current(&templates),
            "a generated file the record does not list"
        );
        std::fs::remove_file(dir.join("airflow/extra.py")).unwrap();
        std::fs::write(dir.join("airflow/notes.md"), "mine\n").unwrap();
        assert!(
            current(&templates),
            "a file of the user's own is not judged"
        );

        std::fs::create_dir_all(dir.join("tasks/first/files")).unwrap();
        std::fs::write(dir.join("tasks/first/files/old.csv"), "a\n").unwrap();
        assert!(!current(&templates), "a data file the task no longer has");
        std::fs::remove_dir_all(dir.join("tasks/first/files")).unwrap();

        std::fs::remove_file(dir.join("tasks/first/requirements.txt")).unwrap();
        assert!(!current(&templates), "a missing file");
        crate::fs::write_recorded(&dir, &bundle, &record, None).unwrap();
        assert!(current(&templates));

        let user = tmp.path().join("templates/task");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("Dockerfile.j2"), "FROM scratch\n").unwrap();
        let other = Templates::load(Some(&tmp.path().join("templates"))).unwrap();
        assert!(!current(&other), "other templates");
        let mut moved = plan.clone();
        moved.settings.namespace = "elsewhere".into();
        assert!(
            !recorded_is_current(&dir, &read(), &moved, &templates, &chosen, &options),
            "another plan"
        );
    }
}
