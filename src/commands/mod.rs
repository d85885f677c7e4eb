//! One module per subcommand; each `execute` returns the exit code.

pub mod build;
pub mod cache;
pub mod check;
pub mod convert;
pub mod deps;
pub mod inspect;
pub mod rule;
pub mod run;

use std::path::Path;

use anyhow::Result;

use crate::cli::{DiagFormat, SettingsArgs};
use crate::diagnostics::{self, render, Code, Diagnostic};
use crate::notebook::CellKind;
use crate::plan::settings::{DataLayer, PipelineLayer};
use crate::plan::{self, config, Plan};

/// The notebook's plan and diagnostics, or the diagnostic that stopped reading it.
pub struct Loaded {
    pub notebook: Option<crate::notebook::Notebook>,
    pub plan: Option<Plan>,
    pub diagnostics: Vec<Diagnostic>,
    pub output: Option<String>,
    /// The cells' facts the plan was made from ([`plan::build::Built::facts`]).
    pub facts: Vec<Option<crate::analysis::CellFacts>>,
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
                facts: Vec::new(),
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
                facts: Vec::new(),
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
    let mut diags = built.diagnostics;
    diagnostics::locate(&mut diags, &nb);
    Loaded {
        notebook: Some(nb),
        plan: Some(built.plan),
        diagnostics: diags,
        output,
        facts: built.facts,
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

/// NB040 for every hard-coded credential in the notebook's code cells: its kind, cell
/// and line, never its value. `check` reports them; `convert`, `run` and `build` stop on
/// them unless `--allow-secrets`.
pub fn secret_diagnostics(path: &Path, nb: &crate::notebook::Notebook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for cell in nb.cells.iter().filter(|c| c.kind == CellKind::Code) {
        for f in crate::analysis::find_secrets(&cell.source) {
            let what = match &f.name {
                Some(n) => format!("{} in `{n}`", f.kind),
                None => f.kind.to_string(),
            };
            out.push(
                Diagnostic::new(Code::HardCodedSecret, path, format!("hard-coded secret: {what} (value hidden)"))
                    .at_cell(cell.index, &mask_line(cell.first_line()))
                    .at_line(f.line, None)
                    .with_help("store it in a Kubernetes Secret, tag the cell `secret:NAME:KEY:ENV` and read os.environ[\"ENV\"] instead"),
            );
        }
    }
    diagnostics::locate(&mut out, nb);
    // The line is quoted only when masking can hide the value on it (a value spread
    // over lines is not recognised line by line).
    for d in &mut out {
        if let Some(shown) = d.location.shown.as_deref_mut() {
            if shown
                .source_line
                .as_deref()
                .is_some_and(|l| crate::analysis::find_secrets(l).is_empty())
            {
                shown.source_line = None;
            }
        }
    }
    mask_first_lines(&mut out);
    out
}

/// For `convert`, `run` and `build`: NB040 unless `allow` (a parameter that looks like a
/// credential is left out of the plan either way), and no diagnostic showing a cell's
/// first line with a secret in it.
pub fn guard_secrets(loaded: &mut Loaded, path: &Path, allow: bool) {
    if !allow {
        if let Some(nb) = &loaded.notebook {
            let found = secret_diagnostics(path, nb);
            loaded.diagnostics.extend(found);
            diagnostics::sort(&mut loaded.diagnostics);
        }
    }
    mask_first_lines(&mut loaded.diagnostics);
}

/// A cell's first line, shown to locate it, and the line a diagnostic quotes must not
/// carry a secret.
pub fn mask_first_lines(diags: &mut [Diagnostic]) {
    for d in diags {
        let loc = &mut d.location;
        if let Some(first) = &mut loc.cell_first_line {
            *first = mask_line(first);
        }
        // The cell's other tags are shown beside the one a diagnostic is about.
        if let Some(shown) = loc.shown.as_deref_mut() {
            for line in shown
                .source_line
                .iter_mut()
                .chain(shown.tag.iter_mut())
                .chain(shown.cell_tags.iter_mut())
            {
                *line = mask_line(line);
            }
        }
    }
}

/// A line with any string literal content replaced, so a secret on the first line of
/// a cell is not echoed when the cell is named.
fn mask_line(line: &str) -> String {
    if crate::analysis::find_secrets(line).is_empty() {
        return line.to_string();
    }
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    out.push(c);
                    out.push_str("***");
                } else {
                    out.push(c);
                }
            }
        }
    }
    // A secret outside quotes (a comment): hide the rest of the line.
    if !crate::analysis::find_secrets(&out).is_empty() {
        let keep: String = out.chars().take_while(|c| *c != '#' && *c != '=').collect();
        return format!("{}…", keep.trim_end());
    }
    out
}
