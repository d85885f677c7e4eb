//! Diagnostics: a stable code, a severity, a message and where it happened
//! (notebook, cell, line), like a compiler's. Rendering is in [`render`].

pub mod codes;
pub mod render;

use serde::Serialize;
use std::path::{Path, PathBuf};

pub use codes::Code;

/// How bad a diagnostic is. Errors stop `convert`; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Location {
    pub notebook: PathBuf,
    /// 0-based cell index as Jupyter counts cells (markdown cells included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<usize>,
    /// 1-based line within the cell (or within the file for JSON errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The cell's first non-empty line, so a reader can find the cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_first_line: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, notebook: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: Location {
                notebook: notebook.to_path_buf(),
                ..Location::default()
            },
            help: None,
        }
    }

    pub fn at_cell(mut self, cell: usize, first_line: &str) -> Self {
        self.location.cell = Some(cell);
        self.location.cell_first_line = Some(first_line.to_string());
        self
    }

    pub fn at_line(mut self, line: usize, column: Option<usize>) -> Self {
        self.location.line = Some(line);
        self.location.column = column;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Diagnostics in a stable order: notebook, cell, line, column, code, message.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (
            &a.location.notebook,
            a.location.cell,
            a.location.line,
            a.location.column,
            a.code,
            &a.message,
        )
            .cmp(&(
                &b.location.notebook,
                b.location.cell,
                b.location.line,
                b.location.column,
                b.code,
                &b.message,
            ))
    });
    // The same finding reached twice (a tag seen by two passes) is reported once.
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}
