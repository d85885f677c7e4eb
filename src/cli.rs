//! Command-line interface (clap derive). Each subcommand's behaviour is in
//! `commands/<name>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "nb2pipe",
    version,
    about = "Turn a tagged Jupyter notebook into a production pipeline (Airflow, Argo, Tekton, Kubeflow)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Deferred: only the subcommand named on the command line is built, which
// saves a few hundred microseconds of start-up on every run.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Write the pipeline bundle: plan.json, task scripts, Dockerfiles, and the target's pipeline file.
    Convert(ConvertArgs),
    /// Show the plan: tasks, edges, passed values, parameters, settings.
    Inspect(InspectArgs),
    /// Pre-commit gate: plan diagnostics, hard-coded secrets, and stale generated bundles.
    Check(CheckArgs),
    /// Print the documentation of a diagnostic code (e.g. NB020), or list all codes.
    Rule(RuleArgs),
    /// Convert, then run the pipeline locally: each task in its own Python process, in DAG order.
    Run(RunArgs),
    /// Show each task's requirements and where every name and pin came from.
    Deps(DepsArgs),
    /// Convert, then build one image per task through the Docker Engine API (and push).
    Build(BuildArgs),
    /// Manage the task cache of a data store (retention).
    Cache(CacheArgs),
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Remove cache entries older than a duration, or the oldest beyond a size.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The data store: a directory or s3://bucket/prefix (as `nb2pipe run --data`).
    #[arg(long)]
    pub data: String,
    /// Remove entries created longer ago than this (`7d`, `12h`, `90m`).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Then remove the oldest entries until what the rest keep fits (`500M`, `5G`).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// The Python that runs the pruning (boto3 for an S3 store).
    #[arg(long, default_value = "python3")]
    pub python: std::path::PathBuf,
}

// Settings given on the command line: the highest precedence. (A doc comment
// here would replace the about text of every subcommand that flattens it.)
#[derive(Args, Debug, Clone, Default)]
pub struct SettingsArgs {
    /// Named profile from nb2pipe.toml / [tool.nb2pipe] (`[profile.NAME]`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Kubernetes namespace of the pods.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Registry the task images are named under.
    #[arg(long)]
    pub registry: Option<String>,
    /// Base image of the task images (default python:<notebook python>-slim).
    #[arg(long)]
    pub base_image: Option<String>,
    /// Schedule: cron expression or preset (@daily).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Pipeline name (default: the notebook's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Data store: pvc://CLAIM or s3://bucket/prefix.
    #[arg(long)]
    pub data: Option<String>,
    /// The Python environment the notebook ran in (its interpreter, or the venv folder):
    /// requirement names and pins are read from its installed distributions. Default: a
    /// `.venv/` or `venv/` next to the notebook.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum DiagFormat {
    #[default]
    Human,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BuildEngine {
    Docker,
    Oci,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The notebook (.ipynb).
    pub notebook: PathBuf,
    /// airflow, argo, tekton, kfp, job, or all; repeatable. Default: the targets the bundle
    /// already holds (its bundle.json), else airflow.
    #[arg(long, short = 't')]
    pub target: Vec<String>,
    /// Output folder; the bundle goes to <out>/<pipeline>/ (default: build/ next to the notebook).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Folder of templates that override the built-in ones, file by file.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Also write `kubectl create` scripts for the referenced ConfigMaps and Secrets (keys
    /// only, never values) under k8s/skeletons/.
    #[arg(long)]
    pub skeletons: bool,
    /// Write the bundle even though a cell holds a hard-coded credential (NB040). A
    /// parameter whose value looks like one is still left out: its default is "" and
    /// its value is given at run time.
    #[arg(long)]
    pub allow_secrets: bool,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Diagnostics as text or JSON; with json, a summary object is printed on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: DiagFormat,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum InspectFormat {
    #[default]
    Table,
    Json,
    Mermaid,
    Dot,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    pub notebook: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: InspectFormat,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Args, Debug)]
pub struct RuleArgs {
    /// A code (NB020) or name (unknown-tag); omit to list every code.
    pub code: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Notebooks to check.
    #[arg(required = true)]
    pub notebooks: Vec<PathBuf>,
    /// Regenerate stale bundles instead of failing.
    #[arg(long)]
    pub fix: bool,
    /// Only lint: do not compare the generated bundle.
    #[arg(long)]
    pub no_bundle: bool,
    /// Output folder the bundles are committed in (default: the `output` setting, else build/ next to each notebook).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Targets to compare (default: those the bundle holds, else airflow).
    #[arg(long, short = 't')]
    pub target: Option<String>,
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Notebooks checked at once (default: the number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: DiagFormat,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The notebook (.ipynb).
    pub notebook: PathBuf,
    /// Override a parameter: `-p name=value`; the value is JSON, else text. Repeatable.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Data store for passed values: a directory or s3://bucket/prefix (default: <out>/nb2pipe-data).
    #[arg(long)]
    pub data: Option<String>,
    /// The Python that runs the tasks.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Tasks run at the same time at most (default: the number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Run only this task, against its upstream tasks' values from the latest run.
    #[arg(long)]
    pub only: Option<String>,
    /// Run every task: none is served from the cache, and none is recorded in it.
    #[arg(long)]
    pub no_cache: bool,
    /// Run this task and every task downstream of it even when the cache has their
    /// outputs (the cache is refreshed with what they produce). Repeatable.
    #[arg(long, value_name = "TASK")]
    pub rerun: Vec<String>,
    /// Output folder; the bundle goes to <out>/<pipeline>/ (default: build/ next to the notebook).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Rehearse the cluster: run every task from the pod `--target` would create, on
    /// the Docker Engine with kubelet semantics (images not built yet are built first,
    /// as `nb2pipe build` does); the data claim is a fresh volume, copied into the
    /// data folder at the end.
    #[arg(long)]
    pub docker: bool,
    /// With --docker: whose pods to run (airflow, argo, tekton, kfp, job).
    #[arg(long, value_name = "TARGET", default_value = "airflow")]
    pub target: String,
    /// With --docker: Secrets and ConfigMaps as files, DIR/<name>/<key> (default: keys
    /// are taken from this environment's variables of the same name).
    #[arg(long, value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// With --docker: the registry the images are named under.
    #[arg(long)]
    pub registry: Option<String>,
    /// With --docker: the base image of the task images.
    #[arg(long)]
    pub base_image: Option<String>,
    /// Write the bundle even though a cell holds a hard-coded credential (NB040). A
    /// parameter whose value looks like one is still left out: its default is "" and
    /// its value is given at run time.
    #[arg(long)]
    pub allow_secrets: bool,
    /// `jsonl`: also one JSON object per task state change on stdout (docs/running.md).
    #[arg(long, value_name = "FORMAT")]
    pub progress: Option<Progress>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Jsonl,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum DepsFormat {
    /// requirements.txt lines per task, each with a comment saying where it came from.
    #[default]
    Requirements,
    Json,
}

#[derive(Args, Debug)]
pub struct DepsArgs {
    pub notebook: PathBuf,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: DepsFormat,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The notebook (.ipynb).
    pub notebook: PathBuf,
    /// Output folder, as for `convert`; build logs go to <bundle>/build-logs/.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Pipeline targets written to the bundle, as for `convert`.
    #[arg(long, short = 't')]
    pub target: Vec<String>,
    /// Folder of templates that override the built-in ones (e.g. task/Dockerfile.j2).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Push each image and refer to it by digest in the pipeline files.
    #[arg(long)]
    pub push: bool,
    /// Write the bundle even though a cell holds a hard-coded credential (NB040). A
    /// parameter whose value looks like one is still left out: its default is "" and
    /// its value is given at run time.
    #[arg(long)]
    pub allow_secrets: bool,
    /// Images built at the same time (default: the number of CPUs, at most 4).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Build every step again, ignoring the engine's layer cache (tags are still skipped
    /// when they exist; give a new --registry path to force a rebuild).
    #[arg(long)]
    pub no_cache: bool,
    /// Target platform of the images (e.g. linux/amd64).
    #[arg(long)]
    pub platform: Option<String>,
    /// How images are made: `docker` (the Docker Engine runs the Dockerfile) or `oci`
    /// (no daemon: nb2pipe writes the layers on the base image from its registry).
    /// Default: docker when a Docker Engine answers, else oci.
    #[arg(long, value_enum)]
    pub engine: Option<BuildEngine>,
    /// pip's index URL inside the build (default: $PIP_INDEX_URL). Never in the image.
    #[arg(long, env = "PIP_INDEX_URL", hide_env_values = true)]
    pub pip_index_url: Option<String>,
    /// pip's extra index URL inside the build (default: $PIP_EXTRA_INDEX_URL). Never in the image.
    #[arg(long, env = "PIP_EXTRA_INDEX_URL", hide_env_values = true)]
    pub pip_extra_index_url: Option<String>,
    /// CA bundle pip trusts inside the build (default: $PIP_CERT). Never in the image.
    #[arg(long, env = "PIP_CERT")]
    pub pip_cert: Option<PathBuf>,
}
