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
    let mut loaded = load(&args.notebook, &settings);
    super::guard_secrets(&mut loaded, &args.notebook, args.allow_secrets);
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
    if let Some(p) = plan
        .parameters
        .iter()
        .find(|p| p.redacted && !params.contains_key(&p.name))
    {
        eprintln!(
            "error: parameter `{0}` looks like a credential (NB040), so its value is not in the bundle: give it with `-p {0}=VALUE`, or read it from a Secret",
            p.name
        );
        return Ok(EXIT_USAGE);
    }
    for only in args.only.iter().chain(&args.rerun) {
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
    eprintln!(
        "wrote {} ({})",
        dir.display(),
        crate::diagnostics::render::counted(plan.tasks.len(), "task")
    );

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
            // The rehearsal runs the images on the Docker Engine: built there too.
            engine: Some(crate::cli::BuildEngine::Docker),
            pip_index_url: std::env::var("PIP_INDEX_URL").ok(),
            pip_extra_index_url: std::env::var("PIP_EXTRA_INDEX_URL").ok(),
            pip_cert: std::env::var_os("PIP_CERT").map(PathBuf::from),
            allow_secrets: args.allow_secrets,
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
        .map(|nb| nb.cells)
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
        // What earlier runs cached, as a cluster's claim would keep it.
        if !data.starts_with("s3://") && !args.no_cache {
            if let Err(e) = crate::rehearse::docker::seed_cache(&volumes, Path::new(&data)) {
                crate::rehearse::docker::remove_volumes(&volumes);
                eprintln!("error: {e:#}");
                return Ok(EXIT_INPUT);
            }
        }
        eprintln!(
            "rehearsing the {} pods: run id {}",
            target.name(),
            r.run.run_id
        );
        run_id = Some(r.run.run_id.clone());
        let modes = exec::cache_modes(plan_now, args.no_cache, &args.rerun);
        let mut pods = r.tasks;
        for (p, mode) in pods.iter_mut().zip(modes) {
            p.env
                .push((crate::pod::CACHE_MODE_ENV.to_string(), mode.to_string()));
        }
        rehearsal = Some(std::sync::Arc::new(exec::RehearsalRun {
            pods,
            volumes,
            one_pod: target.one_pod(),
        }));
    }
    let cfg = RunConfig {
        bundle: dir,
        python: args.python.clone(),
        data,
        runs,
        workdir: absolute(nb_dir)?,
        // One pod's containers run one at a time, in the order it lists them (which is
        // the order one job at a time starts them in: see emit::job::order).
        jobs: if target.is_some_and(|t| t.one_pod()) {
            1
        } else {
            args.jobs
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                })
                .max(1)
        },
        only: args.only.clone(),
        params,
        cells,
        docker: args.docker,
        rehearsal: rehearsal.clone(),
        run_id,
        no_cache: args.no_cache,
        // `--only T` asks for T to run: it is not served from the cache.
        rerun: args.rerun.iter().chain(&args.only).cloned().collect(),
    };
    let mut display = match args.progress {
        Some(crate::cli::Progress::Jsonl) => Display::jsonl(),
        None => Display::new(),
    };
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
    let ok = rec.tasks.iter().filter(|t| t.state.ok()).count();
    let cached = rec
        .tasks
        .iter()
        .filter(|t| t.state == exec::State::Cached)
        .count();
    eprintln!(
        "\nrun {}: {ok} of {} task(s) succeeded{}; record {}",
        rec.run_id,
        rec.tasks.len(),
        if cached > 0 {
            format!(" ({cached} from the cache)")
        } else {
            String::new()
        },
        outcome.run_dir.join("run.json").display()
    );
    Ok(if rec.succeeded() { EXIT_OK } else { EXIT_INPUT })
}

/// `-p name=value` → overrides, each checked against its parameter's type before any
/// task starts. Decoded as the task runtime decodes `NB2PIPE_PARAM_<NAME>` (`_decode`
/// and `_coerce` in nb2pipe_runtime.py): a `str` parameter takes the text as it is
/// (`1.10` stays `1.10`); any other takes JSON, else the text, then its type's rules.
/// Where the runtime would let a value of another kind through unchanged (a list for
/// an `int`, text for a `list`) the override is refused too: it is a mistake here.
pub fn parse_params(
    given: &[String],
    plan: &Plan,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    use serde_json::Value;
    let mut out = serde_json::Map::new();
    for g in given {
        let Some((name, value)) = g.split_once('=') else {
            return Err(format!("`-p {g}`: expected NAME=VALUE"));
        };
        let name = name.trim();
        let Some(param) = plan.parameters.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = plan.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("unknown parameter `{name}`: the notebook has no `parameters` cell")
            } else {
                format!(
                    "unknown parameter `{name}`; parameters: {}",
                    known.join(", ")
                )
            });
        };
        let v = if param.default.is_string() {
            Value::String(value.to_string())
        } else {
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
        };
        let v = coerce(&param.default, v).map_err(|want| {
            format!(
                "`-p {name}={value}`: parameter `{name}` is {} (default {}), so the value must be {want}",
                param.ty, param.default
            )
        })?;
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

/// `value` as a parameter with this default receives it, or what it should have been.
fn coerce(
    default: &serde_json::Value,
    value: serde_json::Value,
) -> Result<serde_json::Value, &'static str> {
    use serde_json::Value;
    if default.is_null() || value.is_null() {
        return Ok(value);
    }
    match (default, &value) {
        (Value::Bool(_), Value::String(s)) => match s.to_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err("true or false"),
        },
        (Value::Bool(_), Value::Bool(_)) => Ok(value),
        (Value::Bool(_), Value::Number(n)) => Ok(Value::Bool(n.as_f64() != Some(0.0))),
        (Value::Bool(_), _) => Err("true or false"),
        (Value::Number(d), _) if d.is_i64() || d.is_u64() => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 => Ok(value),
                _ => Err("a whole number (int)"),
            },
            Value::String(s) if python_int(s) => Ok(value),
            _ => Err("a whole number (int)"),
        },
        (Value::Number(_), _) => match &value {
            Value::Number(_) => Ok(value),
            Value::String(s) if python_float(s) => Ok(value),
            _ => Err("a number (float)"),
        },
        (Value::String(_), _) => Ok(value),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => Ok(value),
        (Value::Array(_), _) => Err("a JSON list, like [1, \"a\"]"),
        (Value::Object(_), _) => Err("a JSON object, like {\"k\": 1}"),
        (Value::Null, _) => Ok(value),
    }
}

/// Text Python's `int()` accepts: a sign, digits, single `_` between digits, spaces around.
fn python_int(s: &str) -> bool {
    let t = s.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    !t.is_empty()
        && !t.starts_with('_')
        && !t.ends_with('_')
        && !t.contains("__")
        && t.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Text Python's `float()` accepts (also `inf`, `nan`, `1e3`, `1_000.5`).
fn python_float(s: &str) -> bool {
    let t = s.trim();
    if t.contains("__")
        || t.starts_with('_')
        || t.ends_with('_')
        || t.contains("_.")
        || t.contains("._")
    {
        return false;
    }
    let plain: String = t.chars().filter(|&c| c != '_').collect();
    !plain.is_empty() && plain.parse::<f64>().is_ok()
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let src = "n = 3\nrate = 0.5\nlabel = 'x'\nflag = False\nlabels = ['a']\nconf = {'k': 1}\nnothing = None";
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": src, "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {"tags": ["task:a"]}, "source": "print(n, rate, label, flag, labels, conf, nothing)", "outputs": [], "execution_count": null}]});
        let nb = crate::notebook::parse_str(Path::new("t.ipynb"), &nb.to_string()).unwrap();
        crate::plan::build(crate::plan::BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
        .plan
    }

    fn one(plan: &Plan, arg: &str) -> Result<serde_json::Value, String> {
        let m = parse_params(&[arg.to_string()], plan)?;
        Ok(m.values().next().unwrap().clone())
    }

    #[test]
    fn overrides_are_checked_by_type_as_the_runtime_decodes_them() {
        use serde_json::json;
        let p = plan();
        for (arg, want) in [
            ("n=7", json!(7)),
            ("n=2.0", json!(2.0)),
            ("n=\"12\"", json!("12")),
            ("n= 1_000 ", json!(" 1_000 ")),
            ("rate=1", json!(1)),
            ("rate=1e3", json!(1000.0)),
            ("rate=inf", json!("inf")),
            ("label=1.10", json!("1.10")),
            ("label=null", json!("null")),
            ("label=", json!("")),
            ("flag=yes", json!(true)),
            ("flag=FALSE", json!(false)),
            ("flag=0", json!(false)),
            ("labels=[\"b\", 2]", json!(["b", 2])),
            ("conf={\"k\": 2}", json!({"k": 2})),
            ("nothing=anything", json!("anything")),
            ("n=null", json!(null)),
        ] {
            assert_eq!(one(&p, arg).unwrap(), want, "{arg}");
        }
        for (arg, says) in [
            (
                "n=abc",
                "parameter `n` is int (default 3), so the value must be a whole number",
            ),
            ("n=1.5", "whole number"),
            ("n=1e400", "whole number"),
            ("n=[1]", "whole number"),
            ("n=true", "whole number"),
            ("n=1__0", "whole number"),
            ("rate=fast", "a number (float)"),
            ("flag=maybe", "true or false"),
            ("labels=a,b", "a JSON list"),
            ("conf=[1]", "a JSON object"),
        ] {
            let e = one(&p, arg).unwrap_err();
            assert!(
                e.contains(says) && e.contains(&format!("`-p {arg}`")),
                "{arg}: {e}"
            );
        }
    }
}
