//! Requirement lines: PEP 508 parsing (enough for names, extras, specifiers and URLs),
//! `pip install` / `conda install` arguments, and requirements files.

use std::path::Path;

use super::names::normalize;
use crate::analysis::ShellWord;

/// One requirement as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The distribution name as written (`scikit-learn`).
    pub name: String,
    /// `[extra1,extra2]` or empty.
    pub extras: String,
    /// `==1.5.1`, `>=2,<3`, ` @ https://...`, or empty.
    pub version: String,
    /// ` ; python_version < "3.10"` or empty.
    pub marker: String,
}

impl Spec {
    pub fn key(&self) -> String {
        normalize(&self.name)
    }

    pub fn line(&self) -> String {
        format!(
            "{}{}{}{}",
            self.name, self.extras, self.version, self.marker
        )
    }
}

/// Parses a PEP 508 requirement (`name[extras] specifier ; marker`, `name @ url`), or a
/// URL / archive naming its distribution with `#egg=`; `None` for anything else.
pub fn parse_requirement(s: &str) -> Option<Spec> {
    requirement(s).ok()
}

/// As [`parse_requirement`], with why a word is not a requirement.
pub(super) fn requirement(s: &str) -> Result<Spec, String> {
    let s = s.split(" #").next().unwrap_or(s).trim();
    if s.is_empty() || s.starts_with('-') || s.starts_with('#') {
        return Err("not a requirement".into());
    }
    // A URL or a path without a name: `git+https://...#egg=name`, `./pkg`, `pkg.whl`.
    let unnamed = !s.contains(" @ ")
        && !s.contains("@ ")
        && (s.contains("://")
            || s.starts_with('.')
            || s.starts_with('/')
            || s.ends_with(".whl")
            || s.ends_with(".tar.gz")
            || s.ends_with(".zip"));
    if unnamed {
        let egg = s
            .split("#egg=")
            .nth(1)
            .map(|e| e.split('&').next().unwrap_or(e).to_string());
        return egg
            .map(|name| Spec {
                name,
                extras: String::new(),
                version: format!(" @ {s}"),
                marker: String::new(),
            })
            .ok_or_else(|| "a URL or path that does not name its distribution (#egg=)".into());
    }
    // The name as written: PEP 508 names are ASCII letters, digits, `-`, `_` and `.`.
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(s.len());
    // pep508_rs 0.9.2 panics on a name ending in `-`, `_` or `.` (`numpy-=1.0`, found by
    // fuzzing) instead of refusing it.
    if s[..end].ends_with(['-', '_', '.']) {
        return Err("a distribution name must end with a letter or digit".into());
    }
    // It also panics on an extra ending so (`x[all.]`, found by fuzzing): any panic of
    // its parser is a line it cannot read.
    let r: pep508_rs::Requirement = crate::analysis::caught(|| s.parse())
        .ok_or_else(|| "the PEP 508 parser cannot read this requirement".to_string())?
        .map_err(|e: pep508_rs::Pep508Error| e.message.to_string())?;
    let extras = if r.extras.is_empty() {
        String::new()
    } else {
        let e: Vec<String> = r.extras.iter().map(ToString::to_string).collect();
        format!("[{}]", e.join(","))
    };
    let version = match &r.version_or_url {
        None => String::new(),
        Some(pep508_rs::VersionOrUrl::VersionSpecifier(v)) => v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Some(pep508_rs::VersionOrUrl::Url(u)) => format!(" @ {u}"),
    };
    let marker = r
        .marker
        .contents()
        .map(|m| format!(" ; {m}"))
        .unwrap_or_default();
    Ok(Spec {
        name: s[..end].to_string(),
        extras,
        version,
        marker,
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
    /// Words that are not requirements, and why.
    pub rejected: Vec<(String, String)>,
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

/// `tool` is `pip` or `conda` ([`crate::analysis::InstallCommand::tool`]); `args` are
/// the words after `install`.
pub(super) fn parse_install(tool: &str, args: &[ShellWord]) -> Install {
    let conda = tool == "conda";
    let mut out = Install::default();
    let mut it = args.iter();
    while let Some(w) = it.next() {
        let a = w.text.as_str();
        if a.starts_with('-') {
            let (mut opt, mut inline) = match a.split_once('=') {
                Some((o, v)) => (o, Some(v.to_string())),
                None => (a, None),
            };
            // `-rreqs.txt`: a short option with its value attached.
            if inline.is_none() && !a.starts_with("--") && a.len() > 2 && a.is_char_boundary(2) {
                let short = &a[..2];
                let valued = if conda { CONDA_VALUED } else { VALUED };
                if valued.contains(&short) {
                    opt = short;
                    inline = Some(a[2..].to_string());
                }
            }
            let valued = if conda {
                CONDA_VALUED.contains(&opt)
            } else {
                VALUED.contains(&opt)
            };
            if !valued {
                continue;
            }
            let value = inline
                .or_else(|| it.next().map(|w| w.text.clone()))
                .unwrap_or_default();
            match (conda, opt) {
                (false, "-r" | "--requirement") | (true, "--file") => out.files.push(value),
                (false, "-c" | "--constraint") => out.constraints.push(value),
                _ => {}
            }
            continue;
        }
        if w.dynamic {
            out.rejected.push((
                a.to_string(),
                "its value is only known when the line runs (a variable or `{expr}`)".into(),
            ));
            continue;
        }
        if conda {
            out.specs.extend(parse_conda(a));
            continue;
        }
        match requirement(a) {
            Ok(s) => out.specs.push(s),
            Err(e) => out.rejected.push((a.to_string(), e)),
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
        marker: String::new(),
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
        // Per-requirement options (`--hash=...`) follow the requirement.
        let line = line.split(" --").next().unwrap_or(line);
        if let Some(s) = parse_requirement(line) {
            out.push(s);
        }
    }
}
