//! `nb2pipe run`: convert (writing the bundle as `convert` does), then run the tasks
//! locally with [`crate::exec`].

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::convert::output_root;
use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::cli::{DiagFormat, RunArgs, SettingsArgs};
use crate::emit::{self, Templates};
use crate::exec::{self, Display, RunConfig};
use crate::plan::Plan;
use crate::run::{EXIT_INPUT, EXIT_OK, EXIT_USAGE};

pub fn execute(args: &RunArgs) -> CmdResult {
    let settings = SettingsArgs {
        registry: args.registry.clone(),
        base_image: args.base_image.clone(),
        ..SettingsArgs::default()
    };
    let loaded = load(&args.notebook, &settings);
    print_diagnostics(&loaded.diagnostics, DiagFormat::Human);
    let plan = match (&loaded.plan, exit_code(&loaded.diagnostics)) {
        (Some(p), 0) => p,
        (_, code) => return Ok(code.max(EXIT_INPUT)),
    };
    let params = match parse_params(&args.params, plan) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(EXIT_USAGE);
        }
    };
    if let Some(only) = &args.only {
        if plan.task(only).is_none() {
            eprintln!(
                "error: no task named `{only}`; tasks: {}",
                plan.tasks
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(EXIT_USAGE);
        }
    }

    let templates = Templates::load(None)?;
    let bundle = emit::bundle(plan, &templates, &["airflow".to_string()])?;
    let out_root = absolute(&output_root(
        &args.notebook,
        args.out.as_deref(),
        loaded.output.as_deref(),
    ))?;
    let dir = out_root.join(&plan.pipeline);
    crate::fs::write_bundle(&dir, &bundle)
        .with_context(|| format!("writing the bundle to {}", dir.display()))?;
    eprintln!("wrote {} ({} tasks)", dir.display(), plan.tasks.len());

    let (data, runs) = match &args.data {
        Some(url) if url.starts_with("s3://") => (url.clone(), out_root.join("nb2pipe-runs")),
        Some(d) => {
            let d = absolute(Path::new(d))?;
            (d.to_string_lossy().into_owned(), d)
        }
        None => {
            let d = out_root.join("nb2pipe-data");
            (d.to_string_lossy().into_owned(), d)
        }
    };
    let target = if args.docker {
        match crate::rehearse::Target::parse(&args.target) {
            Some(t) => Some(t),
            None => {
                eprintln!(
                    "error: --target {}: the rehearsal runs the pods of {}",
                    args.target,
                    crate::rehearse::Target::NAMES.join(", ")
                );
                return Ok(EXIT_USAGE);
            }
        }
    } else {
        None
    };
    if args.docker && args.only.is_some() {
        eprintln!("error: --only runs locally; a rehearsal runs the whole pipeline");
        return Ok(EXIT_USAGE);
    }
    if args.docker {
        std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
        // Build what is missing (an existing tag is not built again).
        let build = crate::cli::BuildArgs {
            notebook: args.notebook.clone(),
            out: Some(out_root.clone()),
            target: vec!["airflow".into()],
            templates: None,
            settings: settings.clone(),
            push: false,
            jobs: args.jobs,
            no_cache: false,
            platform: None,
            pip_index_url: std::env::var("PIP_INDEX_URL").ok(),
            pip_extra_index_url: std::env::var("PIP_EXTRA_INDEX_URL").ok(),
            pip_cert: std::env::var_os("PIP_CERT").map(PathBuf::from),
        };
        let code = super::build::execute(&build)?;
        if code != EXIT_OK {
            return Ok(code);
        }
    }
    let nb_dir = args
        .notebook
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let cells = crate::notebook::load(&args.notebook)
        .map(|nb| nb.cells.into_iter().map(|c| c.source).collect())
        .unwrap_or_default();
    let mut rehearsal = None;
    let mut run_id = None;
    if let Some(target) = target {
        let values = match &args.secrets {
            Some(d) => crate::rehearse::Values::Dir(absolute(d)?),
            None => crate::rehearse::Values::Environment(std::env::vars().collect()),
        };
        // The pods run the built images: read the plan again, with their digests.
        let reloaded = load(&args.notebook, &settings);
        let plan_now = reloaded.plan.as_ref().unwrap_or(plan);
        let r = match crate::rehearse::prepare(plan_now, target, &params, &values) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(EXIT_INPUT);
            }
        };
        let key = format!("rehearsal-{}", exec::new_run_id().to_ascii_lowercase());
        let scratch = std::env::temp_dir().join(format!("nb2pipe-{key}"));
        let data_claim = match &plan_now.settings.data {
            crate::plan::DataStore::Volume { claim, .. } => Some(claim.clone()),
            crate::plan::DataStore::S3 { .. } => None,
        };
        let volumes = crate::rehearse::docker::create_volumes(&r, &key, data_claim, scratch)?;
        eprintln!(
            "rehearsing the {} pods: run id {}",
            target.name(),
            r.run.run_id
        );
        run_id = Some(r.run.run_id.clone());
        rehearsal = Some(std::sync::Arc::new(exec::RehearsalRun {
            pods: r.tasks,
            volumes,
        }));
    }
    let cfg = RunConfig {
        bundle: dir,
        python: args.python.clone(),
        data,
        runs,
        workdir: absolute(nb_dir)?,
        jobs: args
            .jobs
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            })
            .max(1),
        only: args.only.clone(),
        params,
        cells,
        docker: args.docker,
        rehearsal: rehearsal.clone(),
        run_id,
    };
    let mut display = Display::new();
    let outcome = match exec::run(plan, &cfg, &mut display) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_USAGE);
        }
    };
    if let Some(r) = &rehearsal {
        // What the run left on the claim, where a local run leaves it.
        if !cfg.data.starts_with("s3://") {
            if let Err(e) = crate::rehearse::export_data(&r.volumes, Path::new(&cfg.data)) {
                eprintln!("error: {e:#}");
            }
        }
        crate::rehearse::docker::remove_volumes(&r.volumes);
    }
    let rec = &outcome.record;
    for t in rec.tasks.iter().filter(|t| t.state == exec::State::Failed) {
        eprint!("\n{}", exec::failure_report(t, &cfg.cells, 20));
    }
    let ok = rec
        .tasks
        .iter()
        .filter(|t| t.state == exec::State::Succeeded)
        .count();
    eprintln!(
        "\nrun {}: {ok} of {} task(s) succeeded; record {}",
        rec.run_id,
        rec.tasks.len(),
        outcome.run_dir.join("run.json").display()
    );
    Ok(if rec.succeeded() { EXIT_OK } else { EXIT_INPUT })
}

/// `-p name=value` → overrides; the value is JSON, else text. Unknown names are an error.
pub fn parse_params(
    given: &[String],
    plan: &Plan,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for g in given {
        let Some((name, value)) = g.split_once('=') else {
            return Err(format!("`-p {g}`: expected NAME=VALUE"));
        };
        let name = name.trim();
        if !plan.parameters.iter().any(|p| p.name == name) {
            let known: Vec<&str> = plan.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("unknown parameter `{name}`: the notebook has no `parameters` cell")
            } else {
                format!(
                    "unknown parameter `{name}`; parameters: {}",
                    known.join(", ")
                )
            });
        }
        let v = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}
