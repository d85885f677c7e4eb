//! pip settings for builds behind proxies, and reading pip's failure out of a build log.
//!
//! The index URL, extra index URL and CA bundle go into the build context as
//! `nb2pipe-pip.conf` and `nb2pipe-pip-cert.pem`. Only the Dockerfile's `deps` stage
//! copies them; the final stage copies just the virtualenv, so neither file nor any URL
//! (which may carry credentials) is in a layer, the config or the history of the image.
//! They are not build args, which `docker history` would show.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::context::BuildContext;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipSettings {
    pub index_url: Option<String>,
    pub extra_index_url: Option<String>,
    /// A CA bundle file on this machine.
    pub cert: Option<PathBuf>,
}

impl PipSettings {
    /// Adds the pip files to `ctx` (nothing when no setting is given).
    pub fn add_to(&self, ctx: &mut BuildContext) -> Result<()> {
        if self.index_url.is_none() && self.extra_index_url.is_none() && self.cert.is_none() {
            return Ok(());
        }
        let mut conf = String::from("[global]\n");
        if let Some(u) = &self.index_url {
            conf.push_str(&format!("index-url = {}\n", one_line(u)));
        }
        if let Some(u) = &self.extra_index_url {
            conf.push_str(&format!("extra-index-url = {}\n", one_line(u)));
        }
        if let Some(c) = &self.cert {
            let pem = std::fs::read(c)
                .with_context(|| format!("reading the pip CA bundle {}", c.display()))?;
            ctx.add("nb2pipe-pip-cert.pem", pem);
            conf.push_str("cert = /nb2pipe-build/nb2pipe-pip-cert.pem\n");
        }
        ctx.add("nb2pipe-pip.conf", conf);
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ").trim().to_string()
}

/// A URL with any `user:password@` removed, for messages.
pub fn redact_url(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &u[..s + 3], &u[at + 1..]),
        _ => u.to_string(),
    }
}

/// pip's failure in a build log: (the requirement, pip's error lines).
pub fn pip_failure(log: &str) -> Option<(Option<String>, String)> {
    let log = strip_ansi(log);
    let errors: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("error:"))
        .collect();
    if errors.is_empty() {
        return None;
    }
    let package = errors.iter().find_map(|l| {
        for pat in [
            "No matching distribution found for ",
            "Could not find a version that satisfies the requirement ",
            "Failed building wheel for ",
            "Could not build wheels for ",
        ] {
            if let Some(i) = l.find(pat) {
                let rest = &l[i + pat.len()..];
                return rest.split_whitespace().next().map(|s| {
                    s.trim_end_matches([',', '.', ':'])
                        .trim_matches('"')
                        .to_string()
                });
            }
        }
        None
    });
    Some((package, errors.join("\n")))
}

/// Build output without terminal colour codes (the engine marks stderr with them).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_package_pip_could_not_install() {
        let log = "Step 4/12 : RUN ...\nCollecting six==0.0.0.0.1\n\u{1b}[91mERROR: Could not find a version that satisfies the requirement six==0.0.0.0.1 (from versions: 1.0.0, 1.17.0)\nERROR: No matching distribution found for six==0.0.0.0.1\n";
        let (pkg, err) = pip_failure(log).unwrap();
        assert_eq!(pkg.as_deref(), Some("six==0.0.0.0.1"));
        assert!(err.contains("No matching distribution"));
        assert!(pip_failure("Step 1/2 : FROM x\n").is_none());
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("https://u:p@pypi.example/simple"),
            "https://***@pypi.example/simple"
        );
        assert_eq!(
            redact_url("https://pypi.org/simple"),
            "https://pypi.org/simple"
        );
    }

    #[test]
    fn pip_conf_only_when_set() {
        let mut ctx = BuildContext::default();
        PipSettings::default().add_to(&mut ctx).unwrap();
        assert!(ctx.files.is_empty());
        PipSettings {
            index_url: Some("https://x/simple\n[evil]".into()),
            ..Default::default()
        }
        .add_to(&mut ctx)
        .unwrap();
        let conf = String::from_utf8(ctx.files["nb2pipe-pip.conf"].clone()).unwrap();
        assert_eq!(conf, "[global]\nindex-url = https://x/simple [evil]\n");
    }
}
