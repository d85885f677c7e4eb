use super::*;

fn nb(json: &str) -> Result<Notebook, Diagnostic> {
    parse_str(Path::new("t.ipynb"), json)
}

#[test]
fn reads_list_and_string_sources_and_tags() {
    let n = nb(r##"{"nbformat":4,"nbformat_minor":5,"metadata":{"kernelspec":{"name":"python3","language":"python"},"language_info":{"name":"python","version":"3.11.4"}},
      "cells":[{"cell_type":"code","source":["a = 1\r\n","b = 2"],"metadata":{"tags":["task:x"]},"outputs":[{"data":{"image/png":"AAAA"}}],"execution_count":1},
               {"cell_type":"markdown","source":"# hi","metadata":{}}]}"##)
    .unwrap();
    assert_eq!(n.cells.len(), 2);
    assert_eq!(n.cells[0].source, "a = 1\nb = 2");
    assert_eq!(n.cells[0].tags, vec!["task:x"]);
    assert_eq!(n.cells[1].kind, CellKind::Markdown);
    assert_eq!(n.python_version.as_deref(), Some("3.11.4"));
}

#[test]
fn malformed_json_has_line_and_column() {
    let d = nb("{\n  \"nbformat\": 4,\n  \"cells\": [\n    {oops}\n").unwrap_err();
    assert_eq!(d.code, Code::InvalidJson);
    assert_eq!(d.location.line, Some(4));
    assert!(d.location.column.is_some());
}

#[test]
fn nbformat3_is_refused_with_help() {
    let d = nb(r#"{"nbformat":3,"nbformat_minor":0,"worksheets":[{"cells":[]}],"metadata":{}}"#)
        .unwrap_err();
    assert_eq!(d.code, Code::UnsupportedFormat);
    assert!(d.help.unwrap().contains("nbconvert"));
}

#[test]
fn other_kernels_are_refused() {
    let d = nb(r#"{"nbformat":4,"nbformat_minor":4,"metadata":{"kernelspec":{"name":"ir","language":"R"}},"cells":[{"cell_type":"code","source":"x <- 1","metadata":{}}]}"#).unwrap_err();
    assert_eq!(d.code, Code::NotPython);
    assert!(d.message.contains("`R`"));
}

#[test]
fn no_code_is_refused() {
    let d = nb(r#"{"nbformat":4,"nbformat_minor":4,"metadata":{},"cells":[{"cell_type":"markdown","source":"x","metadata":{}},{"cell_type":"code","source":"  \n","metadata":{}}]}"#).unwrap_err();
    assert_eq!(d.code, Code::NoCode);
}

#[test]
fn wrong_shapes_are_diagnostics_not_panics() {
    for bad in [
        r#"[]"#,
        r#"{"nbformat":"4"}"#,
        r#"{"nbformat":4,"cells":{}}"#,
        r#"{"nbformat":4,"cells":[{"source":"x"}]}"#,
        r#"{"nbformat":4,"cells":[{"cell_type":"code","source":7}]}"#,
        "",
    ] {
        let d = nb(bad).unwrap_err();
        assert!(
            matches!(
                d.code,
                Code::MalformedNotebook | Code::InvalidJson | Code::NoCode
            ),
            "{bad}: {d:?}"
        );
    }
}

/// Positions are where the streaming parser puts them, though notebooks are parsed from
/// memory: the column just past a value of the wrong type, the column of a byte a
/// string cannot hold.
#[test]
fn error_columns_are_the_streaming_parsers() {
    let wrong_type =
        nb(r#"{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#).unwrap_err();
    assert_eq!(wrong_type.code, Code::MalformedNotebook);
    assert_eq!(
        (wrong_type.location.line, wrong_type.location.column),
        (Some(1), Some(12))
    );
    let control =
        nb("{\"cells\": [], \"metadata\": {\"a\": \"\u{1}\"}, \"nbformat\": 4}").unwrap_err();
    assert_eq!(control.code, Code::InvalidJson);
    assert_eq!(
        (control.location.line, control.location.column),
        (Some(1), Some(34))
    );
}

#[test]
fn a_file_read_whole_or_streamed_gives_the_same_notebook_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ipynb");
    let text = r#"{"nbformat":4,"nbformat_minor":5,"metadata":{},"cells":[{"cell_type":"code","source":"x = 1","metadata":{},"outputs":[{"data":{"image/png":"AAAA"}}]}]}"#;
    std::fs::write(&path, text).unwrap();
    // A limit of 0 streams every file.
    for max in [IN_MEMORY_MAX, 0] {
        let n = load_within(&path, max).unwrap();
        assert_eq!(n.cells[0].source, "x = 1", "limit {max}");
    }
    for bad in [
        &text[..40],
        r#"{"cells": 5, "nbformat": 4}"#,
        "{\n<<<<<<< HEAD\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let whole = load_within(&path, IN_MEMORY_MAX).unwrap_err();
        let streamed = load_within(&path, 0).unwrap_err();
        let from_text = parse_str(&path, bad).unwrap_err();
        for d in [&streamed, &from_text] {
            assert_eq!(
                (
                    &whole.code,
                    &whole.message,
                    whole.location.line,
                    whole.location.column,
                    &whole.help
                ),
                (
                    &d.code,
                    &d.message,
                    d.location.line,
                    d.location.column,
                    &d.help
                ),
                "{bad}"
            );
        }
    }
    // A folder opens but cannot be read.
    let d = load(dir.path()).unwrap_err();
    assert_eq!(d.code, Code::Unreadable);
    assert!(
        d.message.starts_with("cannot read the notebook"),
        "{}",
        d.message
    );
}
