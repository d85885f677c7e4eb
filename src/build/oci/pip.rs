//! The requirements installed for the image's platform and Python, on this machine,
//! without running the image: `pip install --target DIR --platform … --python-version …
//! --implementation cp --only-binary=:all:`. Only wheels fit (an sdist would be built for
//! this machine), so a requirement without a wheel for the platform is an error that
//! names it. The index settings and CA go on pip's command line here, never into a layer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::build::pip::{pip_failure, redact_url, PipSettings};

/// The image's platform as wheel tags see it.
#[derive(Debug, Clone, PartialEq)]
pub struct WheelTarget {
    /// `x86_64`, `aarch64`.
    pub arch: String,
    /// `3.11`.
    pub python: String,
    pub glibc: Option<(u32, u32)>,
    pub musl: bool,
}

impl WheelTarget {
    /// pip's `--platform` values, newest first: every manylinux the base's glibc runs (2.17
    /// when unknown), or musllinux on a musl base.
    pub fn platforms(&self) -> Vec<String> {
        let a = &self.arch;
        if self.musl {
            return (1..=2)
                .rev()
                .map(|m| format!("musllinux_1_{m}_{a}"))
                .collect();
        }
        let (maj, min) = self.glibc.unwrap_or((2, 17));
        let mut out: Vec<String> = if maj == 2 {
            (17..=min.max(17))
                .rev()
                .map(|m| format!("manylinux_2_{m}_{a}"))
                .collect()
        } else {
            vec![format!("manylinux_2_17_{a}")]
        };
        out.push(format!("manylinux2014_{a}"));
        if a == "x86_64" {
            out.push(format!("manylinux2010_{a}"));
            out.push(format!("manylinux1_{a}"));
        }
        out
    }

    fn abi(&self) -> String {
        format!("cp{}", self.python.replace('.', ""))
    }
}

/// The Python that runs pip: NB2PIPE_PIP_PYTHON, else `python3`.
pub fn host_python() -> PathBuf {
    std::env::var_os("NB2PIPE_PIP_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

pub fn command(
    requirements: &Path,
    target_dir: &Path,
    t: &WheelTarget,
    pip: &PipSettings,
) -> Command {
    let mut c = Command::new(host_python());
    c.args([
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
    ])
    .arg("--target")
    .arg(target_dir)
    .args(["--python-version", &t.python, "--implementation", "cp"])
    .args(["--abi", &t.abi(), "--abi", "abi3", "--abi", "none"])
    .args(["--only-binary=:all:", "--no-compile"]);
    for p in t.platforms() {
        c.args(["--platform", &p]);
    }
    if let Some(u) = &pip.index_url {
        c.args(["--index-url", u]);
    }
    if let Some(u) = &pip.extra_index_url {
        c.args(["--extra-index-url", u]);
    }
    if let Some(cert) = &pip.cert {
        c.arg("--cert").arg(cert);
    }
    // The host's own pip settings of a target or user install would send files elsewhere.
    c.env_remove("PIP_TARGET")
        .env_remove("PIP_PREFIX")
        .env_remove("PIP_USER")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    c.arg("-r").arg(requirements);
    c
}

/// Runs pip; its output goes to `log` (URLs without credentials). The error names the
/// requirement pip could not install.
pub fn install(
    task: &str,
    requirements: &Path,
    target_dir: &Path,
    t: &WheelTarget,
    pip: &PipSettings,
    log: &Path,
) -> Result<(), String> {
    let mut cmd = command(requirements, target_dir, t, pip);
    let shown: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| redact_url(&a.to_string_lossy()))
        .collect();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("building task {task}: cannot run {}: {e} (set NB2PIPE_PIP_PYTHON to a Python with pip)", host_python().display()))?;
    let text = format!(
        "$ {}\n{}{}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = match (&pip.index_url, &pip.extra_index_url) {
        (None, None) => text,
        _ => {
            let mut t = text;
            for u in [&pip.index_url, &pip.extra_index_url].into_iter().flatten() {
                t = t.replace(u.as_str(), &redact_url(u));
            }
            t
        }
    };
    let _ = std::fs::write(log, &text);
    if out.status.success() {
        return Ok(());
    }
    let platform = format!(
        "cp{} on {}",
        t.python.replace('.', ""),
        t.platforms().first().cloned().unwrap_or_default()
    );
    Err(match pip_failure(&text) {
        Some((Some(pkg), err)) => format!(
            "building task {task}: no wheel of `{pkg}` fits the image ({platform}): the oci engine installs wheels only, without running the image; pin a version that has a wheel for it, or build with `--engine docker`\n  pip said:\n    {}\n  log: {}",
            err.replace('\n', "\n    "),
            log.display()
        ),
        Some((None, err)) => format!(
            "building task {task}: pip failed:\n    {}\n  log: {}",
            err.replace('\n', "\n    "),
            log.display()
        ),
        None => format!(
            "building task {task}: pip failed ({}); log: {}",
            out.status,
            log.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tags_follow_the_base_libc() {
        let t = WheelTarget {
            arch: "x86_64".into(),
            python: "3.11".into(),
            glibc: Some((2, 19)),
            musl: false,
        };
        assert_eq!(
            t.platforms(),
            [
                "manylinux_2_19_x86_64",
                "manylinux_2_18_x86_64",
                "manylinux_2_17_x86_64",
                "manylinux2014_x86_64",
                "manylinux2010_x86_64",
                "manylinux1_x86_64"
            ]
        );
        let m = WheelTarget {
            musl: true,
            arch: "aarch64".into(),
            ..t
        };
        assert_eq!(
            m.platforms(),
            ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64"]
        );
        let c = command(
            Path::new("r.txt"),
            Path::new("/t"),
            &m,
            &PipSettings::default(),
        );
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into()).collect();
        assert!(args.windows(2).any(|w| w == ["--abi", "cp311"]), "{args:?}");
        assert!(args.contains(&"--only-binary=:all:".to_string()));
    }
}
