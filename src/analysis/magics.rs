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

/// The package arguments of every `pip install ...` in a command line (after
/// `install`), quotes removed. Returns `None` when the line installs nothing.
pub fn parse_pip_args(command: &str) -> Option<Vec<String>> {
    let cmds = install_commands(command);
    if cmds.is_empty() {
        return None;
    }
    Some(
        cmds.into_iter()
            .flat_map(|c| c.args.into_iter().map(|w| w.text))
            .collect(),
    )
}

/// One word of a shell command after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellWord {
    pub text: String,
    /// It holds `$VAR`, `$(...)`, a backquote, or IPython's `{expr}`: its value is only
    /// known when the line runs.
    pub dynamic: bool,
}

/// One install command of a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallCommand {
    /// `pip` (also for `python -m pip`, `uv pip`) or `conda` (also mamba, micromamba).
    pub tool: &'static str,
    /// The words up to `install` as written (`pip3 install`, `python -m pip install`).
    pub shown: String,
    /// The words after `install`, redirections and their targets removed.
    pub args: Vec<ShellWord>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(ShellWord),
    /// `&&`, `||`, `;`, `|`, `&`, `(`, `)`, a newline: ends a simple command.
    Sep,
    /// A redirection whose target is the next word (`>`, `2>>`, `<`, `&>`).
    Redirect,
}

/// Tokenises a line as a POSIX shell does: quotes, backslashes, comments, control
/// operators and redirections (`> /dev/null`, `2>&1`, `&>log`).
fn shell_tokens(line: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut dynamic = false;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let flush = |out: &mut Vec<Tok>, cur: &mut String, in_word: &mut bool, dynamic: &mut bool| {
        if *in_word {
            out.push(Tok::Word(ShellWord {
                text: std::mem::take(cur),
                dynamic: *dynamic,
            }));
        }
        *in_word = false;
        *dynamic = false;
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' => {
                in_word = true;
                quoted = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    // IPython expands `{expr}` and `$name` even inside single quotes.
                    dynamic |= matches!(chars[i], '{' | '$');
                    cur.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    } else {
                        dynamic |= matches!(chars[i], '{' | '$' | '`');
                    }
                    cur.push(chars[i]);
                    i += 1;
                }
            }
            '\\' => {
                in_word = true;
                quoted = true;
                if let Some(n) = next {
                    cur.push(n);
                    i += 1;
                }
            }
            c if c.is_whitespace() && c != '\n' => {
                flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
                quoted = false;
            }
            '#' if !in_word => break,
            '\n' | ';' | '(' | ')' => {
                flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
                quoted = false;
                out.push(Tok::Sep);
            }
            '&' if next == Some('>') => {
                flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
                quoted = false;
                i += 1;
                if chars.get(i + 1) == Some(&'>') {
                    i += 1;
                }
                out.push(Tok::Redirect);
            }
            '&' | '|' => {
                flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
                quoted = false;
                if next == Some(c) || (c == '|' && next == Some('&')) {
                    i += 1;
                }
                out.push(Tok::Sep);
            }
            '>' | '<' => {
                // `2>`: a word of digits just before is the descriptor, not an argument.
                if in_word && !quoted && !cur.is_empty() && cur.chars().all(|d| d.is_ascii_digit())
                {
                    cur.clear();
                    in_word = false;
                    dynamic = false;
                } else {
                    flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
                }
                quoted = false;
                while matches!(chars.get(i + 1), Some('>' | '<' | '|')) {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&'&') {
                    // `>&2`, `2>&1`, `>&-`: duplicates a descriptor, no target word.
                    i += 1;
                    while chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '-')
                    {
                        i += 1;
                    }
                } else {
                    out.push(Tok::Redirect);
                }
            }
            '$' | '`' => {
                in_word = true;
                dynamic = true;
                cur.push(c);
            }
            '{' | '}' => {
                in_word = true;
                dynamic = true;
                cur.push(c);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
        i += 1;
    }
    flush(&mut out, &mut cur, &mut in_word, &mut dynamic);
    out
}

/// Every `pip install` / `conda install` in a shell line, each simple command of
/// `a && b; c | d` on its own, leading `VAR=value` assignments and `sudo` skipped.
pub fn install_commands(line: &str) -> Vec<InstallCommand> {
    let mut cmds: Vec<Vec<ShellWord>> = vec![Vec::new()];
    let mut toks = shell_tokens(line).into_iter();
    while let Some(t) = toks.next() {
        match t {
            Tok::Word(w) => cmds.last_mut().expect("one command").push(w),
            Tok::Sep => cmds.push(Vec::new()),
            Tok::Redirect => {
                toks.next();
            }
        }
    }
    cmds.into_iter().filter_map(install_command).collect()
}

fn install_command(words: Vec<ShellWord>) -> Option<InstallCommand> {
    let is_assignment = |w: &ShellWord| {
        w.text.split_once('=').is_some_and(|(n, _)| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let start = words
        .iter()
        .position(|w| !is_assignment(w) && w.text != "sudo" && w.text != "-H" && w.text != "-E")?;
    let mut it = words[start..].iter().map(|w| w.text.as_str());
    let first = it.next()?;
    let mut shown = vec![first];
    let tool = match first {
        "pip" | "pip3" => "pip",
        "conda" | "mamba" | "micromamba" => "conda",
        "uv" => {
            shown.push(it.next().filter(|w| *w == "pip")?);
            "pip"
        }
        p if p.starts_with("python")
            || p.ends_with("/python")
            || p.ends_with("/python3")
            || p == "{sys.executable}"
            || p == "$sys.executable" =>
        {
            shown.push(it.next().filter(|w| *w == "-m")?);
            shown.push(it.next().filter(|w| matches!(*w, "pip" | "pip3"))?);
            "pip"
        }
        _ => return None,
    };
    shown.push(it.next().filter(|w| *w == "install")?);
    let n = shown.len();
    Some(InstallCommand {
        tool,
        shown: shown.join(" "),
        args: words[start + n..].to_vec(),
    })
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

    fn words(line: &str) -> Vec<Vec<String>> {
        install_commands(line)
            .into_iter()
            .map(|c| c.args.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn install_lines_read_as_a_shell_does() {
        // Redirections and their targets are not arguments.
        assert_eq!(
            words("pip3 install PyGithub pandas > /dev/null 2>&1"),
            [["PyGithub", "pandas"]]
        );
        assert_eq!(words("pip install x 2>/dev/null >>log &>all"), [["x"]]);
        assert_eq!(words("pip install x>out"), [["x"]]);
        // A quoted `>` is part of the specifier.
        assert_eq!(
            words("pip install 'pandas>=2' \"numpy<2\""),
            [["pandas>=2", "numpy<2"]]
        );
        // Each simple command on its own; only the installs count.
        assert_eq!(
            words("pip install a && python train.py; pip install -q b || echo no | tee x &"),
            [vec!["a"], vec!["-q", "b"]]
        );
        assert_eq!(words("cd src&&pip install c"), [["c"]]);
        assert_eq!(words("PIP_NO_CACHE_DIR=1 sudo -H pip install d"), [["d"]]);
        assert_eq!(words("echo pip install e"), Vec::<Vec<String>>::new());
        assert_eq!(words("pip install f # a comment"), [["f"]]);
        let c = &install_commands("python3 -m pip install $PKG {pkg} 'g'")[0];
        assert_eq!(c.shown, "python3 -m pip install");
        let dynamic: Vec<bool> = c.args.iter().map(|w| w.dynamic).collect();
        assert_eq!(dynamic, [true, true, false]);
        assert_eq!(install_commands("conda install -y numpy")[0].tool, "conda");
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
