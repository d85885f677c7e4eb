//! IPython magics: cell magics split off before parsing, and line-magic classification.

/// A cell magic on the cell's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellMagic {
    /// `%%time` / `%%timeit`: the body is Python, timed.
    Time,
    /// `%%capture [var]`: the body is Python, its output captured (and bound to `var`).
    Capture {
        var: Option<String>,
    },
    /// `%%writefile [-a] PATH`: the body is written to PATH.
    WriteFile {
        path: String,
        append: bool,
    },
    /// `%%bash`, `%%sh`, `%%script bash`: the body is run by that interpreter.
    Shell {
        interpreter: String,
    },
    /// `%%prun`, `%%debug`: the body is Python, run plainly (no profiler or debugger).
    Python {
        name: String,
    },
    /// `%%html`, `%%markdown`, ...: display-only, nothing to run in a task.
    Display {
        name: String,
    },
    Unknown {
        name: String,
    },
}

impl CellMagic {
    pub fn body_is_python(&self) -> bool {
        matches!(
            self,
            CellMagic::Time | CellMagic::Capture { .. } | CellMagic::Python { .. }
        )
    }
}

/// Returns the magic (if the cell starts with `%%`), the rest of the cell, and how many
/// lines precede that rest.
pub(super) fn split_cell_magic(source: &str) -> (Option<CellMagic>, &str, usize) {
    let mut skipped = 0;
    let mut rest = source;
    // IPython allows blank lines before a cell magic.
    while let Some(nl) = rest.find('\n') {
        if rest[..nl].trim().is_empty() {
            rest = &rest[nl + 1..];
            skipped += 1;
        } else {
            break;
        }
    }
    let Some(after) = rest.strip_prefix("%%") else {
        return (None, source, 0);
    };
    let (first, body) = match after.find('\n') {
        Some(nl) => (&after[..nl], &after[nl + 1..]),
        None => (after, ""),
    };
    let mut words = shell_words(first).into_iter();
    let name = words.next().unwrap_or_default();
    let args: Vec<String> = words.collect();
    let magic = match name.as_str() {
        "time" | "timeit" => CellMagic::Time,
        "capture" => CellMagic::Capture {
            var: args.iter().find(|a| !a.starts_with('-')).cloned(),
        },
        "writefile" | "file" => {
            let append = args.iter().any(|a| a == "-a" || a == "--append");
            let path = args
                .iter()
                .find(|a| !a.starts_with('-'))
                .cloned()
                .unwrap_or_default();
            CellMagic::WriteFile { path, append }
        }
        "prun" | "debug" => CellMagic::Python { name: name.clone() },
        "bash" | "sh" | "zsh" | "perl" | "ruby" | "pypy" | "python" | "python2" | "python3" => {
            CellMagic::Shell {
                interpreter: name.clone(),
            }
        }
        // `%%!`, `%%sx`, `%%system`: each line run by the shell.
        "!" | "sx" | "system" => CellMagic::Shell {
            interpreter: "sh".into(),
        },
        "script" => CellMagic::Shell {
            interpreter: args
                .iter()
                .find(|a| !a.starts_with('-'))
                .cloned()
                .unwrap_or_else(|| "sh".into()),
        },
        "html" | "HTML" | "markdown" | "latex" | "javascript" | "js" | "svg" | "SVG"
        | "code_wrap" => CellMagic::Display { name: name.clone() },
        _ => CellMagic::Unknown { name: name.clone() },
    };
    (Some(magic), body, skipped + 1)
}

/// What a line magic is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMagic {
    /// `%pip install`, `%conda install`: a dependency, removed from the code.
    Install,
    /// `%time stmt`, `%timeit stmt`: the statement runs, timed.
    Time,
    /// `%matplotlib`, `%load_ext`, `%autoreload`, `%config`, `%who`, ...: no effect in a task.
    Drop,
    /// `%env`, `%cd`, `%pwd`, `%ls`, `%xdel`, ...: run by the task runtime.
    Runtime,
    /// A magic an IPython extension registers (`%watermark` after `%load_ext
    /// watermark`): dropped, known only once the notebook loads that extension.
    Extension(&'static str),
    Unknown,
}

pub fn classify_line_magic(name: &str) -> LineMagic {
    match name {
        "pip" | "conda" | "mamba" | "micromamba" | "uv" => LineMagic::Install,
        "time" | "timeit" | "prun" => LineMagic::Time,
        "matplotlib"
        | "load_ext"
        | "unload_ext"
        | "reload_ext"
        | "autoreload"
        | "aimport"
        | "config"
        | "who"
        | "whos"
        | "who_ls"
        | "history"
        | "lsmagic"
        | "magic"
        | "precision"
        | "pprint"
        | "xmode"
        | "colors"
        | "autocall"
        | "automagic"
        | "doctest_mode"
        | "pdb"
        | "debug"
        | "tb"
        | "reset"
        | "reset_selective"
        | "notebook"
        | "qtconsole"
        | "connect_info"
        | "page"
        | "pinfo"
        | "pinfo2"
        | "psearch"
        | "quickref"
        | "config_inlinebackend"
        | "load"
        // Session, editor, history, logging and introspection magics: nothing to do
        // in a task (`%rerun`/`%recall` re-run history a task does not have; `%pylab`'s
        // star imports are not made, write the imports out).
        | "alias"
        | "alias_magic"
        | "unalias"
        | "autoawait"
        | "code_wrap"
        | "ed"
        | "edit"
        | "gui"
        | "hist"
        | "killbgscripts"
        | "loadpy"
        | "logoff"
        | "logon"
        | "logstart"
        | "logstate"
        | "logstop"
        | "macro"
        | "pastebin"
        | "pdef"
        | "pdoc"
        | "pfile"
        | "psource"
        | "pycat"
        | "pylab"
        | "recall"
        | "rehashx"
        | "rep"
        | "rerun"
        | "save" => LineMagic::Drop,
        "env" | "cd" | "pwd" | "ls" | "mkdir" | "rm" | "rmdir" | "cp" | "mv" | "cat"
        | "ldir" | "lf" | "lk" | "ll" | "lx" | "less" | "more" | "man" | "clear" | "set_env"
        | "system" | "sx" | "sc" | "bookmark" | "dhist" | "pushd" | "popd" | "dirs" | "run"
        | "store" | "xdel" => LineMagic::Runtime,
        "watermark" => LineMagic::Extension("watermark"),
        "tensorboard" => LineMagic::Extension("tensorboard"),
        _ => LineMagic::Unknown,
    }
}

/// `%timeit -n 10 -r 3 f(x)` → `f(x)`.
pub fn strip_magic_options(s: &str) -> &str {
    let mut rest = s;
    loop {
        let t = rest.trim_start();
        if let Some(after) = t.strip_prefix('-') {
            let flag_end = after.find(char::is_whitespace).unwrap_or(after.len());
            let flag = &after[..flag_end];
            let mut r = &after[flag_end..];
            if matches!(flag, "n" | "r" | "o" | "p" | "s" | "T" | "D" | "l") {
                let v = r.trim_start();
                let vend = v.find(char::is_whitespace).unwrap_or(v.len());
                r = &v[vend..];
            }
            rest = r;
        } else {
            return t;
        }
    }
}

/// The package arguments of `pip install ...` (after `install`), quotes removed.
/// Returns `None` when the command is not an install.
pub fn parse_pip_args(command: &str) -> Option<Vec<String>> {
    let words = shell_words(command);
    let mut it = words.iter().map(String::as_str).peekable();
    // Accept: pip install, pip3 install, python -m pip install, python3 -m pip install,
    // conda install, mamba install, uv pip install.
    let first = it.next()?;
    match first {
        "pip" | "pip3" | "conda" | "mamba" => {}
        "uv" => {
            if it.next()? != "pip" {
                return None;
            }
        }
        p if p.starts_with("python")
            || p.ends_with("/python")
            || p.ends_with("/python3")
            || p == "{sys.executable}"
            || p == "$sys.executable" =>
        {
            if it.next()? != "-m" || !matches!(it.next()?, "pip" | "pip3") {
                return None;
            }
        }
        _ => return None,
    }
    if it.next()? != "install" {
        return None;
    }
    Some(it.map(str::to_string).collect())
}

/// Splits a line into words as a POSIX shell would for simple quoting ('...', "...", \x).
pub(crate) fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        _ => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_forms() {
        assert_eq!(
            parse_pip_args("pip install -U 'pandas>=2' numpy").unwrap(),
            ["-U", "pandas>=2", "numpy"]
        );
        assert_eq!(
            parse_pip_args("python -m pip install \"scikit-learn[alldeps]==1.5\"").unwrap(),
            ["scikit-learn[alldeps]==1.5"]
        );
        assert_eq!(
            parse_pip_args("{sys.executable} -m pip install x").unwrap(),
            ["x"]
        );
        assert!(parse_pip_args("pip list").is_none());
        assert!(parse_pip_args("ls -la").is_none());
    }

    #[test]
    fn cell_magics() {
        let (m, body, off) = split_cell_magic("\n%%writefile -a utils.py\ndef f(): pass\n");
        assert_eq!(
            m,
            Some(CellMagic::WriteFile {
                path: "utils.py".into(),
                append: true
            })
        );
        assert_eq!(body, "def f(): pass\n");
        assert_eq!(off, 2);
        assert_eq!(
            split_cell_magic("%%capture out\nx=1").0,
            Some(CellMagic::Capture {
                var: Some("out".into())
            })
        );
        assert_eq!(
            split_cell_magic("%%script python3\nprint(1)").0,
            Some(CellMagic::Shell {
                interpreter: "python3".into()
            })
        );
        assert_eq!(split_cell_magic("x = 1").0, None);
    }
}
