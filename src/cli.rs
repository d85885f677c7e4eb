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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write the pipeline bundle: plan.json, task scripts, Dockerfiles, and the target's pipeline file.
    Convert(ConvertArgs),
    /// Show the plan: tasks, edges, passed values, parameters, settings.
    Inspect(InspectArgs),
    /// Print the documentation of a diagnostic code (e.g. NB020), or list all codes.
    Rule(RuleArgs),
    /// Convert, then build one image per task through the Docker Engine API (and push).
    Build(BuildArgs),
}

/// Settings given on the command line: the highest precedence.
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
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum DiagFormat {
    #[default]
    Human,
    Json,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The notebook (.ipynb).
    pub notebook: PathBuf,
    /// airflow (default), argo, tekton, kfp, or all; repeatable.
    #[arg(long, short = 't', default_value = "airflow")]
    pub target: Vec<String>,
    /// Output folder; the bundle goes to <out>/<pipeline>/ (default: build/ next to the notebook).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Folder of templates that override the built-in ones, file by file.
    #[arg(long)]
    pub templates: Option<PathBuf>,
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
pub struct BuildArgs {
    /// The notebook (.ipynb).
    pub notebook: PathBuf,
    /// Output folder, as for `convert`; build logs go to <bundle>/build-logs/.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Pipeline targets written to the bundle, as for `convert`.
    #[arg(long, short = 't', default_value = "airflow")]
    pub target: Vec<String>,
    /// Folder of templates that override the built-in ones (e.g. task/Dockerfile.j2).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Push each image and refer to it by digest in the pipeline files.
    #[arg(long)]
    pub push: bool,
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
