use super::*;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reads_before_binds_and_binds() {
    let f = analyse_cell("y = x + 1\nx = 2\nprint(x, y)\n");
    assert_eq!(f.reads, set(&["x"]));
    assert_eq!(f.binds, set(&["x", "y"]));
}

#[test]
fn function_scopes_and_globals() {
    let f = analyse_cell("def f(a, b=default):\n    c = a + b + threshold\n    global counter\n    counter = c\n    return helper(c)\n");
    assert_eq!(f.binds, set(&["counter", "f"]));
    // `default` is read when the def runs, the body's globals when it is called.
    assert_eq!(f.reads, set(&["default", "helper", "threshold"]));
}

#[test]
fn comprehensions_lambdas_classes_walrus() {
    let f = analyse_cell("sq = [i * k for i in items if i]\nfn = lambda z: z * factor\nclass A(Base):\n    n = 1\n    m = n + 1\n    def g(self):\n        return n_outer\nif (m := compute()):\n    pass\n");
    assert_eq!(
        f.reads,
        set(&["Base", "compute", "factor", "items", "k", "n_outer"])
    );
    assert_eq!(f.binds, set(&["A", "fn", "m", "sq"]));
}

#[test]
fn imports_with_context() {
    let f = analyse_cell(
        "import os.path\nimport numpy as np\nfrom sklearn.ensemble import RandomForestClassifier as RF\nfrom . import local\ntry:\n    import ujson as json\nexcept ImportError:\n    import json\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\ndef f():\n    import scipy\nmod = importlib.import_module('torch')\n",
    );
    let mods: Vec<(&str, bool, bool, bool, bool)> = f
        .imports
        .iter()
        .map(|i| {
            (
                i.module.as_str(),
                i.optional,
                i.type_checking,
                i.in_function,
                i.dynamic,
            )
        })
        .collect();
    assert_eq!(
        mods,
        vec![
            ("os.path", false, false, false, false),
            ("numpy", false, false, false, false),
            ("sklearn.ensemble", false, false, false, false),
            (".", false, false, false, false),
            ("ujson", true, false, false, false),
            ("json", false, false, false, false),
            ("typing", false, false, false, false),
            ("pandas", false, true, false, false),
            ("scipy", false, false, true, false),
            ("torch", false, false, false, true),
        ]
    );
    assert!(
        f.binds.contains("os")
            && f.binds.contains("np")
            && f.binds.contains("RF")
            && f.binds.contains("local")
    );
}

#[test]
fn ipython_syntax_is_understood() {
    let f = analyse_cell("%matplotlib inline\n%pip install -q 'pandas>=2' pyarrow\n!pip install seaborn\nfiles = !ls {folder}\n%time y = f(x)\nobj?\n!echo $name\n");
    assert!(f.syntax_error.is_none(), "{:?}", f.syntax_error);
    assert_eq!(f.binds, set(&["files", "y"]));
    assert_eq!(f.reads, set(&["f", "folder", "name", "x"]));
    assert_eq!(
        f.pip_installs,
        vec![
            (2, "-q pandas>=2 pyarrow".to_string()),
            (3, "seaborn".to_string())
        ]
    );
    assert_eq!(f.escapes.len(), 7);
    assert!(f.unknown_magics.is_empty());
}

#[test]
fn cell_magics() {
    let f = analyse_cell("%%time\ntotal = sum(values)\n");
    assert_eq!(f.cell_magic, Some(CellMagic::Time));
    assert_eq!(f.reads, set(&["values"]));
    assert_eq!(f.line_offset, 1);
    let f = analyse_cell("%%bash\nfor i in 1 2; do echo $i; done\n");
    assert!(matches!(f.cell_magic, Some(CellMagic::Shell { .. })));
    assert!(f.reads.is_empty() && f.syntax_error.is_none());
    let f = analyse_cell("%%writefile helpers.py\ndef f(:\n");
    assert!(
        f.syntax_error.is_none(),
        "a written file is not parsed as cell code"
    );
    let f = analyse_cell("%%sql\nSELECT 1\n");
    assert_eq!(f.unknown_magics, vec![(1, "%%sql".to_string())]);
    let f = analyse_cell("%%capture out\nprint(1)\n");
    assert!(f.binds.contains("out"));
}

#[test]
fn syntax_errors_are_facts_with_lines() {
    let f = analyse_cell("x = 1\nprint 'hello'\n");
    let e = f.syntax_error.expect("python 2 print");
    assert_eq!(e.line, 2);
    let f = analyse_cell("%%time\nx = (\n");
    assert_eq!(f.syntax_error.unwrap().line, 3);
}

#[test]
fn unknown_line_magic_is_reported() {
    let f = analyse_cell("%sql SELECT 1\n");
    assert_eq!(f.unknown_magics, vec![(1, "%sql".to_string())]);
}

#[test]
fn unserialisable_values_are_noted() {
    let f = analyse_cell(
        "fh = open('x.csv')\ngen = (i for i in range(3))\nconn = sqlite3.connect('db')\n",
    );
    let names: Vec<&str> = f.unserialisable.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["fh", "gen", "conn"]);
}

#[test]
fn literal_parameters() {
    let lits = literal_assignments("alpha = 0.5\nn = -3\nname = 'x'\nflags = [True, None]\nconf = {'a': 1}\nderived = alpha * 2\n");
    let got: Vec<Option<String>> = lits
        .iter()
        .map(|l| l.as_ref().ok().map(|(n, v)| format!("{n}={v}")))
        .collect();
    assert_eq!(
        got,
        vec![
            Some("alpha=0.5".into()),
            Some("n=-3".into()),
            Some("name=\"x\"".into()),
            Some("flags=[true,null]".into()),
            Some("conf={\"a\":1}".into()),
            None
        ]
    );
}

#[test]
fn never_panics_on_odd_input() {
    for src in [
        "",
        "\n\n",
        "%%",
        "%",
        "!",
        "?",
        "def",
        "\u{0}",
        "x = '''",
        "\t\tx = 1",
        "if x:\n",
        "%%time",
        "%time",
        "@",
        "lambda: (yield)",
    ] {
        let _ = analyse_cell(src);
    }
}

#[test]
fn shell_escapes_read_the_python_names_they_expand() {
    let f = analyse_cell("!echo $word ${count} {path.upper()} $$HOME\nx = !ls $folder");
    assert_eq!(f.reads, set(&["count", "folder", "path", "word"]));
}

#[test]
fn star_imports_and_wrapped_cell_magics() {
    let f = analyse_cell("from helpers import *\nprint(helper(1))");
    assert_eq!(f.stmts[0].star_import.as_deref(), Some("helpers"));
    let f = analyse_cell("%%capture out\n%%sh\necho hi");
    assert_eq!(
        f.wrapper,
        Some(CellMagic::Capture {
            var: Some("out".into())
        })
    );
    assert!(matches!(f.cell_magic, Some(CellMagic::Shell { .. })));
    assert_eq!(f.raw_body, "echo hi");
    assert_eq!(f.line_offset, 2);
    assert_eq!(f.binds, set(&["out"]));
}
