//! One module per subcommand; each `execute` returns the exit code.

pub mod build;
pub mod check;
pub mod convert;
pub mod deps;
pub mod inspect;
pub mod rule;
pub mod run;

use std::path::Path;

use anyhow::Result;

use crate::cli::{DiagFormat, SettingsArgs};
use crate::diagnostics::{self, render, Diagnostic};
use crate::plan::settings::{DataLayer, PipelineLayer};
use crate::plan::{self, config, Plan};

/// The notebook's plan and diagnostics, or the diagnostic that stopped reading it.
pub struct Loaded {
    pub notebook: Option<crate::notebook::Notebook>,
    pub plan: Option<Plan>,
    pub diagnostics: Vec<Diagnostic>,
    pub output: Option<String>,
}

impl SettingsArgs {
    pub fn layer(&self) -> PipelineLayer {
        PipelineLayer {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            registry: self.registry.clone(),
            base_image: self.base_image.clone(),
            schedule: self.schedule.clone(),
            data: DataLayer {
                url: self.data.clone(),
                ..DataLayer::default()
            },
            ..PipelineLayer::default()
        }
    }
}

/// Reads the notebook and the project file and builds the plan.
pub fn load(notebook: &Path, settings: &SettingsArgs) -> Loaded {
    let nb = match crate::notebook::load(notebook) {
        Ok(nb) => nb,
        Err(d) => {
            return Loaded {
                notebook: None,
                plan: None,
                diagnostics: vec![d],
                output: None,
            }
        }
    };
    let project = match config::find_project_file(notebook) {
        Ok(p) => p,
        Err(d) => {
            return Loaded {
                notebook: Some(nb),
                plan: None,
                diagnostics: vec![d],
                output: None,
            }
        }
    };
    let output = project.as_ref().and_then(|p| p.layer.output.clone());
    let built = plan::build(plan::BuildInput {
        notebook: &nb,
        project: project.as_ref().map(|p| &p.layer),
        cli: settings.layer(),
        profile: settings.profile.clone(),
        python_env: settings.python.clone(),
    });
    let output = nb_output(&nb).or(output);
    Loaded {
        notebook: Some(nb),
        plan: Some(built.plan),
        diagnostics: built.diagnostics,
        output,
    }
}

fn nb_output(nb: &crate::notebook::Notebook) -> Option<String> {
    nb.settings
        .as_ref()?
        .get("output")?
        .as_str()
        .map(str::to_string)
}

/// Prints diagnostics to stderr (human) or returns them for a JSON document.
pub fn print_diagnostics(diags: &[Diagnostic], format: DiagFormat) {
    if diags.is_empty() || format == DiagFormat::Json {
        return;
    }
    eprint!("{}", render::human(diags));
    eprintln!("{}", render::summary(diags));
}

pub fn exit_code(diags: &[Diagnostic]) -> i32 {
    if diagnostics::has_errors(diags) {
        crate::run::EXIT_INPUT
    } else {
        crate::run::EXIT_OK
    }
}

pub type CmdResult = Result<i32>;

/// Images pushed by `build --push` are referred to by digest while their content hash
/// matches (the record is `<bundle>/images.json`).
pub fn apply_recorded_images(plan: &mut Plan, out_root: &Path) {
    let dir = out_root.join(&plan.pipeline);
    crate::build::images::apply(plan, &crate::build::images::Images::read(&dir));
}
