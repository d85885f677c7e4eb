//! Requirement lines: PEP 508 parsing (enough for names, extras, specifiers and URLs),
//! `pip install` / `conda install` arguments, and requirements files.

use std::path::Path;

use super::names::normalize;

/// One requirement as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The distribution name as written (`scikit-learn`).
    pub name: String,
    /// `[extra1,extra2]` or empty.
    pub extras: String,
    /// `==1.5.1`, `>=2,<3`, ` @ https://...`, or empty.
    pub version: String,
}

impl Spec {
    pub fn key(&self) -> String {
        normalize(&self.name)
    }

    pub fn line(&self) -> String {
        format!("{}{}{}", self.name, self.extras, self.version)
    }
}

/// Parses `name[extras] specifier ; marker` or `name @ url`; `None` for anything else.
pub fn parse_requirement(s: &str) -> Option<Spec> {
    let s = s.split(" #").next().unwrap_or(s).trim();
    let s = s.split(';').next().unwrap_or(s).trim();
    if s.is_empty() || s.starts_with('-') || s.starts_with('#') {
        return None;
    }
    // `name @ url` (PEP 508 direct reference).
    if let Some((n, url)) = s.split_once('@') {
        let n = n.trim();
        let (base, extras) = match n.split_once('[') {
            Some((b, e)) => (b.trim(), format!("[{}", e.trim())),
            None => (n, String::new()),
        };
        if !base.is_empty()
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Some(Spec {
                name: base.to_string(),
                extras,
                version: format!(" @ {}", url.trim()),
            });
        }
    }
    // A URL or a path: `git+https://...#egg=name`, `./pkg`, `pkg.whl`.
    if s.contains("://")
        || s.starts_with('.')
        || s.starts_with('/')
        || s.ends_with(".whl")
        || s.ends_with(".tar.gz")
        || s.ends_with(".zip")
    {
        let egg = s
            .split("#egg=")
            .nth(1)
            .map(|e| e.split('&').next().unwrap_or(e).to_string());
        return egg.map(|name| Spec {
            name,
            extras: String::new(),
            version: format!(" @ {s}"),
        });
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rest = s[end..].trim_start();
    let mut extras = String::new();
    if rest.starts_with('[') {
        let close = rest.find(']')?;
        let list: Vec<&str> = rest[1..close]
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if !list.is_empty() {
            extras = format!("[{}]", list.join(","));
        }
        rest = rest[close + 1..].trim_start();
    }
    let version = if let Some(url) = rest.strip_prefix('@') {
        format!(" @ {}", url.trim())
    } else {
        let v: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        let v = v.trim_start_matches('(').trim_end_matches(')').to_string();
        if !v.is_empty() && !v.starts_with(['=', '<', '>', '!', '~']) {
            return None;
        }
        v
    };
    Some(Spec {
        name: name.to_string(),
        extras,
        version,
    })
}

/// What one `pip install` argument list asks for.
#[derive(Debug, Default, Clone)]
pub(super) struct Install {
    pub specs: Vec<Spec>,
    /// `-r FILE` paths, as written.
    pub files: Vec<String>,
    /// `-c FILE` paths.
    pub constraints: Vec<String>,
}

/// pip options that take a value (the value is the next word unless given with `=`).
const VALUED: &[&str] = &[
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--upgrade-strategy",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--src",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--only-binary",
    "--no-binary",
    "--progress-bar",
    "--log",
    "--cache-dir",
    "--timeout",
    "--retries",
    "--proxy",
    "--config-settings",
    "-C",
    "--global-option",
    "--python",
    "--report",
    "--exists-action",
    "--keyring-provider",
    "--cert",
    "--client-cert",
];
/// conda options that take a value (`-c` is a channel there).
const CONDA_VALUED: &[&str] = &[
    "-c",
    "--channel",
    "-n",
    "--name",
    "-p",
    "--prefix",
    "--file",
    "--override-channels-file",
];

/// `tool` is the first word of the command (`pip`, `conda`, `python`...); `args` are the
/// words after `install`.
pub(super) fn parse_install(tool: &str, args: &[String]) -> Install {
    let conda = matches!(tool, "conda" | "mamba" | "micromamba");
    let mut out = Install::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.as_str();
        if a.starts_with('-') {
            let (opt, inline) = match a.split_once('=') {
                Some((o, v)) => (o, Some(v.to_string())),
                None => (a, None),
            };
            let valued = if conda {
                CONDA_VALUED.contains(&opt)
            } else {
                VALUED.contains(&opt)
            };
            if !valued {
                continue;
            }
            let value = inline.or_else(|| it.next().cloned()).unwrap_or_default();
            match (conda, opt) {
                (false, "-r" | "--requirement") | (true, "--file") => out.files.push(value),
                (false, "-c" | "--constraint") => out.constraints.push(value),
                _ => {}
            }
            continue;
        }
        let spec = if conda {
            parse_conda(a)
        } else {
            parse_requirement(a)
        };
        if let Some(s) = spec {
            out.specs.push(s);
        }
    }
    out
}

/// A conda spec (`numpy=1.26`, `conda-forge::pytorch>=2`, `numpy=1.26.4=py311h...`),
/// with the conda name mapped to the PyPI name. `None` for non-Python conda packages.
pub(super) fn parse_conda(s: &str) -> Option<Spec> {
    let s = s.rsplit("::").next().unwrap_or(s).trim();
    let end = s.find(['=', '<', '>', '!', ' ', '[']).unwrap_or(s.len());
    let conda_name = &s[..end];
    let rest = s[end..].trim();
    let name = conda_to_pypi(conda_name)?;
    let version = if let Some(v) = rest.strip_prefix("==") {
        format!("=={}", v.split('=').next().unwrap_or(v))
    } else if let Some(v) = rest.strip_prefix('=') {
        // conda `=1.26` means 1.26.*; a build string may follow a second `=`.
        let v = v.split('=').next().unwrap_or(v);
        if v.is_empty() {
            String::new()
        } else if v.ends_with('*') || v.matches('.').count() >= 2 {
            format!("=={v}")
        } else {
            format!("=={v}.*")
        }
    } else {
        rest.chars().filter(|c| !c.is_whitespace()).collect()
    };
    Some(Spec {
        name,
        extras: String::new(),
        version,
    })
}

/// conda-forge / defaults names whose PyPI name differs; `None` for packages that are
/// not Python distributions (the interpreter, pip, compilers, C libraries).
pub(super) fn conda_to_pypi(name: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let mapped = match n.as_str() {
        ""
        | "python"
        | "pip"
        | "setuptools-scm-git-archive"
        | "cudatoolkit"
        | "cuda-toolkit"
        | "mkl"
        | "libgcc"
        | "libgcc-ng"
        | "libstdcxx-ng"
        | "openssl"
        | "ca-certificates"
        | "nodejs"
        | "r-base"
        | "graphviz"
        | "ffmpeg"
        | "git"
        | "make"
        | "cmake"
        | "compilers"
        | "blas"
        | "openblas"
        | "cudnn" => return None,
        "pytorch" | "pytorch-cpu" | "pytorch-gpu" => "torch",
        "py-xgboost" | "py-xgboost-cpu" | "py-xgboost-gpu" | "xgboost-cpu" => "xgboost",
        "matplotlib-base" => "matplotlib",
        "msgpack-python" => "msgpack",
        "pytables" => "tables",
        "py-opencv" | "opencv" | "libopencv" => "opencv-python",
        "python-graphviz" => "graphviz",
        "tensorflow-base" => "tensorflow",
        "pyqt" => "PyQt5",
        "python-kubernetes" => "kubernetes",
        "python-duckdb" => "duckdb",
        "pytorch-lightning" => "pytorch-lightning",
        "typing_extensions" => "typing-extensions",
        "ruamel_yaml" => "ruamel.yaml",
        "python-tzdata" => "tzdata",
        "gdal" | "libgdal" => "GDAL",
        "arrow-cpp" | "libarrow" => return None,
        _ => return Some(name.to_string()),
    };
    Some(mapped.to_string())
}

/// The requirement lines of a requirements file (and of the files it includes with
/// `-r` / `-c`), relative paths resolved against the including file. Missing files are
/// returned as errors alongside the lines found.
pub(super) fn read_requirements_file(
    path: &Path,
    depth: usize,
    out: &mut Vec<Spec>,
    errors: &mut Vec<String>,
) {
    if depth > 5 {
        errors.push(format!(
            "{}: requirement files include each other too deeply",
            path.display()
        ));
        return;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let line = line.trim();
        let line = if line.starts_with('#') {
            ""
        } else {
            line.split(" #").next().unwrap_or(line).trim()
        };
        for prefix in [
            "-r ",
            "--requirement ",
            "-c ",
            "--constraint ",
            "--requirement=",
            "--constraint=",
        ] {
            if let Some(rest) = line.strip_prefix(prefix) {
                read_requirements_file(&dir.join(rest.trim()), depth + 1, out, errors);
            }
        }
        if let Some(s) = parse_requirement(line) {
            out.push(s);
        }
    }
}
