//! `nb2pipe build`: convert (the same bundle as `convert`), then one image per task
//! through the Docker Engine API, optionally pushed (see `crate::build`). The CLI stays
//! synchronous: the async engine calls run on a runtime made here.

use anyhow::Context;

use super::convert::{bundle_targets, check_targets, output_root};
use super::{exit_code, load, print_diagnostics, CmdResult};
use crate::build::images::{self, Images};
use crate::build::progress::Progress;
use crate::build::{self, BuildOptions, Engine, Outcome, PipSettings};
use crate::cli::{BuildArgs, BuildEngine, DiagFormat};
use crate::emit::{self, Templates};
use crate::run::EXIT_INPUT;

pub fn execute(args: &BuildArgs) -> CmdResult {
    check_targets(&args.target)?;
    let mut loaded = load(&args.notebook, &args.settings);
    super::guard_secrets(&mut loaded, &args.notebook, args.allow_secrets);
    print_diagnostics(&loaded.diagnostics, DiagFormat::Human);
    let code = exit_code(&loaded.diagnostics);
    let plan = match loaded.plan {
        Some(p) if code == 0 => p,
        _ => return Ok(code.max(1)),
    };
    if let Some(c) = &args.pip_cert {
        if !c.is_file() {
            eprintln!("error: the pip CA bundle {} does not exist", c.display());
            return Ok(EXIT_INPUT);
        }
    }
    let templates = Templates::load(args.templates.as_deref())?;
    let dir = output_root(
        &args.notebook,
        args.out.as_deref(),
        loaded.output.as_deref(),
    )
    .join(&plan.pipeline);
    let targets = bundle_targets(&args.target, &dir, crate::fs::read_record(&dir).as_ref())?;
    // Build contexts come from the bundle as planned (tags); the bundle written to disk
    // refers to images by digest where an earlier push recorded one for the same tag.
    let bundle = emit::bundle(&plan, &templates, &targets)?;
    write_bundle(&plan, &Images::read(&dir), &templates, &targets, &dir)?;

    let opts = BuildOptions {
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(2)
        }),
        platform: args.platform.clone(),
        no_cache: args.no_cache,
        pip: PipSettings {
            index_url: args.pip_index_url.clone().filter(|s| !s.is_empty()),
            extra_index_url: args.pip_extra_index_url.clone().filter(|s| !s.is_empty()),
            cert: args.pip_cert.clone(),
        },
        log_dir: dir.join("build-logs"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let engine = match (args.engine, Engine::connect_if(args.engine).await) {
            (_, Ok(Some(e))) => e,
            (Some(BuildEngine::Oci), _) => {
                return build_oci(args, &plan, &bundle, &opts, &templates, &targets, &dir).await
            }
            (None, Err(e)) => {
                eprintln!("note: {e}\n  building with the oci engine (no daemon); give --engine docker to insist on the Docker Engine");
                return build_oci(args, &plan, &bundle, &opts, &templates, &targets, &dir).await;
            }
            (_, Err(e)) => {
                eprintln!("error: {e}");
                return Ok(EXIT_INPUT);
            }
            (_, Ok(None)) => unreachable!("connect_if connects unless the engine is oci"),
        };
        let progress = Progress::new();
        let reports = build::build_plan(&engine, &plan, &bundle, &opts, &progress).await?;
        let mut failed = 0;
        let (mut built, mut fresh) = (0, 0);
        for r in &reports {
            match &r.outcome {
                Outcome::Built { .. } => built += 1,
                Outcome::UpToDate => fresh += 1,
                Outcome::Failed { message, .. } => {
                    failed += 1;
                    eprintln!("error: {message}");
                }
            }
        }
        if failed > 0 {
            eprintln!("{failed} of {} images failed to build", reports.len());
            return Ok(EXIT_INPUT);
        }
        if built == 0 {
            eprintln!("up to date ({fresh} images)");
        } else {
            eprintln!("built {built} images, {fresh} up to date");
        }
        if args.push {
            let pushed = match build::push_plan(&engine, &plan, &progress).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(EXIT_INPUT);
                }
            };
            pushed.write(&dir)?;
            write_bundle(&plan, &pushed, &templates, &targets, &dir)?;
            eprintln!(
                "pushed {} images; {} refers to them by digest",
                pushed.images.len(),
                dir.display()
            );
        }
        Ok(0)
    })
}

/// The daemonless build: images made by nb2pipe on the base from its registry.
async fn build_oci(
    args: &BuildArgs,
    plan: &crate::plan::Plan,
    bundle: &emit::Bundle,
    opts: &BuildOptions,
    templates: &Templates,
    targets: &[String],
    dir: &std::path::Path,
) -> CmdResult {
    let progress = Progress::new();
    let recorded = Images::read(dir);
    let built =
        match build::oci::build_plan(plan, bundle, opts, args.push, &recorded, &progress).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(EXIT_INPUT);
            }
        };
    let (mut built_n, mut fresh, mut failed) = (0, 0, 0);
    for r in &built.reports {
        match &r.outcome {
            Outcome::Built { .. } => built_n += 1,
            Outcome::UpToDate => fresh += 1,
            Outcome::Failed { message, .. } => {
                failed += 1;
                eprintln!("error: {message}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} images failed to build", built.reports.len());
        return Ok(EXIT_INPUT);
    }
    if built_n == 0 {
        eprintln!("up to date ({fresh} images)");
    } else {
        eprintln!("built {built_n} images, {fresh} up to date");
    }
    if args.push {
        let s = &built.stats;
        // The bundle was written with the recorded digests: unchanged, it stays as it is.
        if built.images != recorded {
            built.images.write(dir)?;
            write_bundle(plan, &built.images, templates, targets, dir)?;
        }
        eprintln!(
            "pushed {} images: {} blobs uploaded ({} bytes), {} mounted, {} already there, {} manifests; {} refers to them by digest",
            built.images.images.len(),
            s.uploaded,
            s.uploaded_bytes,
            s.mounted,
            s.present,
            s.manifests,
            dir.display()
        );
        if s.shared_found + s.shared_recorded > 0 {
            eprintln!(
                "dependency layers: {} from the registry's cache (pip did not run), {} recorded there",
                s.shared_found, s.shared_recorded
            );
        }
        for n in &built.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(0)
}

fn write_bundle(
    plan: &crate::plan::Plan,
    recorded: &Images,
    templates: &Templates,
    targets: &[String],
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let mut plan = plan.clone();
    images::apply(&mut plan, recorded);
    // Skeletons are asked for by `convert --skeletons`; build keeps them if recorded.
    let earlier = crate::fs::read_record(dir);
    let skeletons = earlier.as_ref().is_some_and(|r| r.skeletons);
    let options = emit::EmitOptions { skeletons };
    let bundle = emit::bundle_with(&plan, templates, targets, &options)?;
    let record = crate::fs::Record::of(&bundle, targets, skeletons);
    crate::fs::write_recorded(dir, &bundle, &record, earlier.as_ref())
        .with_context(|| format!("writing the bundle to {}", dir.display()))?;
    Ok(())
}
