//! Diagnostics: a stable code, a severity, a message and where it happened
//! (notebook, cell, line), like a compiler's. Rendering is in [`render`].

pub mod codes;
pub mod render;

use serde::Serialize;
use std::path::{Path, PathBuf};

pub use codes::Code;

use crate::notebook::{CellKind, Notebook};

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
    /// How the notebook shows the cell, and what the diagnostic quotes from it (boxed:
    /// most diagnostics are passed around without it).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub shown: Option<Box<Shown>>,
}

/// The cell as the notebook shows it, and the part a diagnostic points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Shown {
    /// 1-based position of the cell in the notebook as it is shown, markdown cells
    /// included (`cell` + 1): what `cell N` means in the text output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_number: Option<usize>,
    /// 1-based position among the notebook's code cells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_cell: Option<usize>,
    /// The cell's `In [n]` prompt number, when it has been run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_count: Option<u64>,
    /// The cell's nbformat 4.5 `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_id: Option<String>,
    /// The text of line `line` of the cell, quoted under the location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
    /// The cell tag the diagnostic is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The cell's tags, to show the one in `tag` among them.
    #[serde(skip)]
    pub cell_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Boxed: a diagnostic is the error of many `Result`s, which stay small so.
    pub location: Box<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Location {
    pub fn shown_mut(&mut self) -> &mut Shown {
        self.shown.get_or_insert_with(Box::default)
    }
}

impl Diagnostic {
    pub fn new(code: Code, notebook: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: Box::new(Location {
                notebook: notebook.to_path_buf(),
                ..Location::default()
            }),
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

    /// About the cell tag `tag` (the cell is set with [`Diagnostic::at_cell`]).
    pub fn at_tag(mut self, tag: &str) -> Self {
        self.location.shown_mut().tag = Some(tag.to_string());
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

/// Fills in what lets a reader find the cell of each diagnostic (its position as the
/// notebook shows it, its `In [n]`, its id) and quotes the line it points at. Done once
/// per notebook rather than where each diagnostic is made.
pub fn locate(diags: &mut [Diagnostic], nb: &Notebook) {
    for d in diags {
        let Some(cell) = d.location.cell.and_then(|i| nb.cells.get(i)) else {
            continue;
        };
        let line = d.location.line;
        let loc = d.location.shown_mut();
        loc.cell_number = Some(cell.index + 1);
        if cell.kind == CellKind::Code {
            loc.code_cell = Some(
                nb.cells[..=cell.index]
                    .iter()
                    .filter(|c| c.kind == CellKind::Code)
                    .count(),
            );
        }
        loc.execution_count = cell.execution_count;
        loc.cell_id.clone_from(&cell.id);
        if loc.source_line.is_none() {
            loc.source_line = line
                .and_then(|l| cell.source.lines().nth(l.checked_sub(1)?))
                .map(str::to_string);
        }
        if loc.tag.is_some() {
            loc.cell_tags.clone_from(&cell.tags);
        }
    }
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}
