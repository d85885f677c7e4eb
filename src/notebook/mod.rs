//! Reading `.ipynb` files (nbformat 4.0–4.5).
//!
//! Deviations from the full nbformat schema, on purpose:
//! - outputs, attachments and unknown metadata are skipped while parsing, never held in
//!   memory, so a notebook full of images parses in the time it takes to scan it;
//! - only `metadata.tags` and `metadata.nb2pipe` of a cell are kept;
//! - of the notebook metadata only `kernelspec`, `language_info` and `nb2pipe` are kept.

mod schema;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Code, Diagnostic};

/// The kind of a cell, as Jupyter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    Code,
    Markdown,
    Raw,
}

#[derive(Debug, Clone)]
pub struct Cell {
    /// 0-based index among all cells, as the Jupyter UI counts them.
    pub index: usize,
    pub kind: CellKind,
    /// The cell's source with `\n` line ends.
    pub source: String,
    pub tags: Vec<String>,
    /// `metadata.nb2pipe` of the cell: structured settings.
    pub settings: Option<serde_json::Value>,
    /// The `In [n]` number of a code cell that was run.
    pub execution_count: Option<u64>,
    /// The cell's `id` (nbformat 4.5).
    pub id: Option<String>,
}

impl Cell {
    /// The first non-empty line, used to point a reader at the cell.
    pub fn first_line(&self) -> &str {
        self.source
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Notebook {
    pub path: PathBuf,
    /// The file name without `.ipynb`.
    pub stem: String,
    pub nbformat_minor: u32,
    pub cells: Vec<Cell>,
    /// `metadata.nb2pipe`: pipeline-wide settings.
    pub settings: Option<serde_json::Value>,
    /// `language_info.version`, e.g. `3.11.7`.
    pub python_version: Option<String>,
}

/// Notebooks up to this size are read whole and parsed from memory; larger ones are
/// streamed, so memory stays flat whatever their outputs weigh.
const IN_MEMORY_MAX: u64 = 128 << 20;

/// Reads and checks a notebook. Any failure is one diagnostic (exit 1 at the CLI).
pub fn load(path: &Path) -> Result<Notebook, Diagnostic> {
    load_within(path, IN_MEMORY_MAX)
}

fn load_within(path: &Path, in_memory_max: u64) -> Result<Notebook, Diagnostic> {
    use std::io::Read;
    let unreadable = |what: &str, e: std::io::Error| {
        Diagnostic::new(Code::Unreadable, path, format!("{what}: {e}"))
    };
    let mut file =
        std::fs::File::open(path).map_err(|e| unreadable("cannot open the notebook", e))?;
    let size = file.metadata().map_or(0, |m| m.len());
    if size > in_memory_max {
        return parse_reader(path, BufReader::with_capacity(1 << 16, file));
    }
    // From memory, the parser skips the outputs' long strings many bytes at a time; a
    // stream gives it one byte per call.
    let mut bytes = Vec::with_capacity(size as usize + 1);
    file.read_to_end(&mut bytes)
        .map_err(|e| unreadable("cannot read the notebook", e))?;
    parse_bytes(path, &bytes)
}

/// Parses notebook JSON from memory (tests, benchmarks, stdin).
pub fn parse_str(path: &Path, text: &str) -> Result<Notebook, Diagnostic> {
    parse_bytes(path, text.as_bytes())
}

/// Parses notebook JSON from memory, as `load` does with files up to 128 MB.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Notebook, Diagnostic> {
    match serde_json::from_slice(bytes) {
        Ok(raw) => from_raw(path, raw),
        // Reported as the streaming parser reports it: the slice parser's column is one
        // off for some errors (a value of the wrong type, a byte a string cannot hold).
        Err(fast) => match parse_reader(path, bytes) {
            Err(d) => Err(d),
            Ok(_) => Err(invalid(path, &fast)),
        },
    }
}

/// Parses notebook JSON as a stream, as `load` does with larger files. It gives what
/// `parse_bytes` gives, notebook or diagnostic (the `notebook` fuzz target checks it).
pub fn parse_reader<R: std::io::Read>(path: &Path, reader: R) -> Result<Notebook, Diagnostic> {
    let raw: schema::RawNotebook =
        serde_json::from_reader(reader).map_err(|e| invalid(path, &e))?;
    from_raw(path, raw)
}

/// The diagnostic for JSON the notebook schema does not accept.
fn invalid(path: &Path, e: &serde_json::Error) -> Diagnostic {
    let mut d = json_error(path, e);
    if d.code == Code::InvalidJson && conflict_marker_at(path, e.line()) {
        d = d.with_help("line starts with `<<<<<<<`: an unresolved git merge conflict");
    }
    d
}

fn json_error(path: &Path, e: &serde_json::Error) -> Diagnostic {
    use serde_json::error::Category;
    let (code, what) = match e.classify() {
        Category::Io => (Code::Unreadable, "cannot read the notebook"),
        Category::Data => (
            Code::MalformedNotebook,
            "the notebook's structure is not nbformat 4",
        ),
        Category::Syntax | Category::Eof => (Code::InvalidJson, "the notebook is not valid JSON"),
    };
    // serde_json's message ends in "at line X column Y"; we give those as fields instead.
    let msg = e.to_string();
    let mut msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if msg == "recursion limit exceeded" {
        msg = "values nested more than 128 levels deep (the JSON reader's limit)".into();
    }
    let mut d = Diagnostic::new(code, path, format!("{what}: {msg}"));
    if e.line() > 0 {
        d = d.at_line(e.line(), Some(e.column()));
    }
    d
}

/// Whether line `line` of the file (1-based) is a merge-conflict marker; reads only up
/// to that line.
fn conflict_marker_at(path: &Path, line: usize) -> bool {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    BufReader::new(f)
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(Result::ok)
        .is_some_and(|l| {
            l.starts_with("<<<<<<<") || l.starts_with("=======") || l.starts_with(">>>>>>>")
        })
}

fn from_raw(path: &Path, raw: schema::RawNotebook) -> Result<Notebook, Diagnostic> {
    if raw.nbformat != 4 {
        return Err(Diagnostic::new(
            Code::UnsupportedFormat,
            path,
            format!(
                "nbformat {} is not supported; nb2pipe reads nbformat 4.0 to 4.5",
                raw.nbformat
            ),
        )
        .with_help(
            "upgrade it with `jupyter nbconvert --to notebook --nbformat 4 --inplace NOTEBOOK`",
        ));
    }
    let Some(raw_cells) = raw.cells else {
        return Err(Diagnostic::new(
            Code::MalformedNotebook,
            path,
            "the notebook has no `cells` list",
        ));
    };
    let meta = raw.metadata.unwrap_or_default();
    let language = meta
        .kernelspec
        .as_ref()
        .and_then(|k| k.language.clone())
        .or_else(|| meta.language_info.as_ref().and_then(|l| l.name.clone()));
    if let Some(lang) = &language {
        if !lang.eq_ignore_ascii_case("python") && !lang.eq_ignore_ascii_case("python3") {
            let kernel = meta
                .kernelspec
                .as_ref()
                .and_then(|k| k.name.clone())
                .unwrap_or_default();
            return Err(Diagnostic::new(
                Code::NotPython,
                path,
                format!("the notebook's kernel language is `{lang}` (kernel `{kernel}`); nb2pipe converts Python notebooks only"),
            ));
        }
    }
    let cells: Vec<Cell> = raw_cells
        .into_iter()
        .enumerate()
        .map(|(index, c)| Cell {
            index,
            kind: match c.cell_type.as_str() {
                "code" => CellKind::Code,
                "markdown" => CellKind::Markdown,
                _ => CellKind::Raw,
            },
            source: c.source.into_string(),
            tags: c.metadata.tags,
            settings: c.metadata.nb2pipe,
            execution_count: c
                .execution_count
                .as_ref()
                .and_then(serde_json::Value::as_u64),
            id: c
                .id
                .as_ref()
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        })
        .collect();
    if !cells
        .iter()
        .any(|c| c.kind == CellKind::Code && !c.source.trim().is_empty())
    {
        return Err(Diagnostic::new(
            Code::NoCode,
            path,
            "the notebook has no code cells with code in them",
        ));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook".into());
    Ok(Notebook {
        path: path.to_path_buf(),
        stem,
        nbformat_minor: raw.nbformat_minor,
        cells,
        settings: meta.nb2pipe,
        python_version: meta.language_info.and_then(|l| l.version),
    })
}

#[cfg(test)]
mod tests;
