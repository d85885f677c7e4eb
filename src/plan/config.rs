//! Finding and reading the project file (`nb2pipe.toml`, or `[tool.nb2pipe]` in
//! `pyproject.toml`) next to or above the notebook.

use std::path::{Path, PathBuf};

use super::settings::PipelineLayer;
use crate::diagnostics::{Code, Diagnostic};

/// The project layer and the file it came from.
pub struct ProjectFile {
    pub path: PathBuf,
    pub layer: PipelineLayer,
}

/// Looks in the notebook's folder and each parent; the nearest file wins, and in one
/// folder `nb2pipe.toml` wins over `pyproject.toml`.
pub fn find_project_file(notebook: &Path) -> Result<Option<ProjectFile>, Diagnostic> {
    let start = notebook.parent().map(Path::to_path_buf).unwrap_or_default();
    let start = if start.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        start
    };
    let start = start.canonicalize().unwrap_or(start);
    for dir in start.ancestors() {
        let own = dir.join("nb2pipe.toml");
        if own.is_file() {
            let layer = read_toml(&own, false)?.unwrap_or_default();
            return Ok(Some(ProjectFile { path: own, layer }));
        }
        let py = dir.join("pyproject.toml");
        if py.is_file() {
            if let Some(layer) = read_toml(&py, true)? {
                return Ok(Some(ProjectFile { path: py, layer }));
            }
        }
    }
    Ok(None)
}

fn read_toml(path: &Path, pyproject: bool) -> Result<Option<PipelineLayer>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(
            Code::InvalidSettings,
            path,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    parse_project_toml(path, &text, pyproject)
}

/// The settings in a project file's text (`pyproject`: under `[tool.nb2pipe]`, `None`
/// when that table is absent); `path` only names the file in diagnostics.
pub fn parse_project_toml(
    path: &Path,
    text: &str,
    pyproject: bool,
) -> Result<Option<PipelineLayer>, Diagnostic> {
    let value: toml::Table = toml::from_str(text).map_err(|e| toml_diag(path, text, &e))?;
    let table = if pyproject {
        match value.get("tool").and_then(|t| t.get("nb2pipe")) {
            Some(t) => t.clone(),
            None => return Ok(None),
        }
    } else {
        toml::Value::Table(value)
    };
    let layer: PipelineLayer = table.try_into().map_err(|e: toml::de::Error| {
        let what = if pyproject {
            "[tool.nb2pipe]"
        } else {
            "nb2pipe.toml"
        };
        Diagnostic::new(
            Code::InvalidSettings,
            path,
            format!("invalid settings in {what}: {}", e.message()),
        )
    })?;
    Ok(Some(layer))
}

fn toml_diag(path: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::InvalidSettings,
        path,
        format!("invalid TOML: {}", e.message()),
    );
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count() + 1)
            .unwrap_or(1);
        d = d.at_line(line, Some(col));
    }
    d
}

/// Parses settings JSON (cell or notebook metadata) into a layer, as a diagnostic on failure.
pub fn layer_from_json<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, String> {
    serde_json::from_value(value.clone()).map_err(|e| e.to_string())
}
