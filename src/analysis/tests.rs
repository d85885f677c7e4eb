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

#[test]
fn names_changed_in_place() {
    let m = |src: &str| analyse_cell(src).mutates;
    // Subscript, attribute and augmented assignment, del of a part.
    assert_eq!(m("df['a'] = df['a'] * 10"), set(&["df"]));
    assert_eq!(m("cfg.k = 2\nfpr['macro'] = 1"), set(&["cfg", "fpr"]));
    assert_eq!(m("df.loc[df.a > 0, 'b'] = 0"), set(&["df"]));
    assert_eq!(
        m("counts[k] += 1\ndel d['x']\ndel o.attr"),
        set(&["counts", "d", "o"])
    );
    // Method calls change the receiver and may change what they are passed.
    assert_eq!(m("xs.append(5)"), set(&["xs"]));
    assert_eq!(m("opt.step(X, y=labels)"), set(&["X", "labels", "opt"]));
    assert_eq!(m("rng.shuffle(arr)"), set(&["arr", "rng"]));
    // ... except methods known to leave their arguments alone.
    assert_eq!(m("model.fit(X, y)\nxs.append(x)"), set(&["model", "xs"]));
    assert_eq!(m("draw = rng.normal()"), set(&["rng"]));
    assert_eq!(m("pipe.steps[0][1].fit(X)"), set(&["pipe"]));
    assert_eq!(m("np.random.shuffle(arr)"), set(&["arr", "np"]));
    assert_eq!(m("update(*items, **opts)"), set(&["items", "opts"]));
    // Calls that only read change nothing, unless told to work in place.
    assert_eq!(m("print(len(xs), repr(cfg))\ny = df.head()"), set(&[]));
    assert_eq!(
        m("p = model.predict(X)\ns = df.groupby('a').mean()"),
        set(&[])
    );
    assert_eq!(m("df.fillna(0, inplace=True)"), set(&["df"]));
    assert_eq!(m("df.dropna(inplace=True)"), set(&["df"]));
    // Rebinding is a bind, not a change in place.
    assert_eq!(m("xs = xs + [1]\nn += 1"), set(&[]));
    // Locals of functions, lambdas and comprehensions are not the module's names; a
    // function body changes globals when it is called, not when it is defined.
    let f = analyse_cell("def f(a):\n    a.append(1)\n    g.append(2)\n    global h\n    h = []\n    h.append(3)\n    loc = []\n    loc.append(4)\n");
    assert_eq!(f.mutates, set(&[]));
    assert_eq!(f.stmts[0].effects, set(&["g", "h"]));
    let f = analyse_cell("class A:\n    def grow(self):\n        registry['a'] = self\n");
    assert_eq!(f.stmts[0].effects, set(&["registry"]));
    assert_eq!(m("h = lambda a: a.append(1)"), set(&[]));
    assert_eq!(m("[acc.append(i) for i in range(3)]"), set(&["acc"]));
    // Loop variables and parts taken out are parts of their container.
    assert_eq!(
        m("for name, model in models.items():\n    model.fit(X)\n"),
        set(&["model", "models"])
    );
    assert_eq!(m("m = models['lr']\nm.fit(X)"), set(&["m", "models"]));
    assert_eq!(m("[i.fit(X) for i in models]"), set(&["models"]));
    // Inside `%time` too.
    assert_eq!(m("%time model.fit(X)"), set(&["model"]));
    let f = analyse_cell("a = 1\nb.x = a\n");
    assert!(f.stmts[0].mutates.is_empty());
    assert_eq!(f.stmts[1].mutates, set(&["b"]));
}

#[test]
fn deeply_nested_targets_are_bounded() {
    // The depth check refuses the cell before any walk.
    let src = format!("x{} = 1", "[0]".repeat(10_000));
    let f = analyse_cell(&src);
    assert!(f.syntax_error.is_some());
    assert!(f.mutates.is_empty());
}
