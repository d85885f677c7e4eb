//! Registry credentials for `build --push`, looked up in this order:
//! 1. NB2PIPE_REGISTRY_USER / NB2PIPE_REGISTRY_PASSWORD (for every registry);
//! 2. the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers[<registry>]`, then `credsStore` (both run
//!    `docker-credential-<helper> get`), then `auths[<registry>].auth` (base64 `user:pass`).
//!
//! No credential is ever printed: [`Credentials`]' Debug hides the secret, and errors
//! only say where we looked ([`Lookup::describe`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, secret: *** }}",
            self.username
        )
    }
}

/// The outcome of a lookup: the credentials (if any) and where they came from.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub registry: String,
    pub credentials: Option<Credentials>,
    /// Where the credentials came from, or every place that was searched.
    pub source: String,
}

impl Lookup {
    pub fn describe(&self) -> String {
        match &self.credentials {
            Some(c) => format!("user `{}` from {}", c.username, self.source),
            None => format!("no credentials found ({})", self.source),
        }
    }
}

/// The registry host of an image reference (`docker.io` when it names none).
pub fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

fn config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `https://index.docker.io/v1/` and `docker.io` are the same registry; keys may carry a
/// scheme and a path.
fn normalise(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

pub fn lookup(registry: &str) -> Lookup {
    lookup_with(registry, config_path(), |k| std::env::var(k).ok())
}

fn lookup_with(
    registry: &str,
    config: Option<PathBuf>,
    env: impl Fn(&str) -> Option<String>,
) -> Lookup {
    let found = |c: Credentials, source: String| Lookup {
        registry: registry.to_string(),
        credentials: Some(c),
        source,
    };
    if let (Some(u), Some(p)) = (
        env("NB2PIPE_REGISTRY_USER"),
        env("NB2PIPE_REGISTRY_PASSWORD"),
    ) {
        return found(
            Credentials {
                username: u,
                secret: p,
            },
            "NB2PIPE_REGISTRY_USER / NB2PIPE_REGISTRY_PASSWORD".into(),
        );
    }
    let mut searched =
        vec!["NB2PIPE_REGISTRY_USER / NB2PIPE_REGISTRY_PASSWORD not set".to_string()];
    let want = normalise(registry);
    let doc: Option<serde_json::Value> = config.as_ref().and_then(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    });
    let cfg_name = config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.docker/config.json".into());
    let Some(doc) = doc else {
        searched.push(format!("{cfg_name} missing or not JSON"));
        return Lookup {
            registry: registry.into(),
            credentials: None,
            source: searched.join("; "),
        };
    };
    let helper_for = doc
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| normalise(k) == want))
        .and_then(|(_, v)| v.as_str());
    let helpers = [
        helper_for.map(|h| (h, "credHelpers")),
        doc.get("credsStore")
            .and_then(|s| s.as_str())
            .map(|h| (h, "credsStore")),
    ];
    for (helper, key) in helpers.into_iter().flatten() {
        match run_helper(helper, registry) {
            Ok(Some(c)) => {
                return found(
                    c,
                    format!("docker-credential-{helper} ({key} in {cfg_name})"),
                )
            }
            Ok(None) => searched.push(format!(
                "docker-credential-{helper} ({key}) has none for {registry}"
            )),
            Err(e) => searched.push(format!("docker-credential-{helper} ({key}) failed: {e}")),
        }
    }
    let auth = doc
        .get("auths")
        .and_then(|a| a.as_object())
        .and_then(|a| a.iter().find(|(k, _)| normalise(k) == want))
        .and_then(|(_, v)| v.get("auth"))
        .and_then(|v| v.as_str());
    match auth.and_then(decode_auth) {
        Some(c) => found(c, format!("auths in {cfg_name}")),
        None => {
            searched.push(format!("no auths entry for {registry} in {cfg_name}"));
            Lookup {
                registry: registry.into(),
                credentials: None,
                source: searched.join("; "),
            }
        }
    }
}

fn decode_auth(b64: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.to_string(),
        secret: p.to_string(),
    })
}

/// `docker-credential-<helper> get` with the registry on stdin; `Ok(None)` when the
/// helper has nothing for it. The helper's output is never shown (it holds the secret).
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, String> {
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("not a valid helper name".into());
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|_| "its output is not JSON".to_string())?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) if !s.is_empty() => Ok(Some(Credentials {
            username: u.to_string(),
            secret: s.to_string(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_of_references() {
        assert_eq!(registry_of("127.0.0.1:5000/p-t:abc"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/p:1"), "ghcr.io");
        assert_eq!(registry_of("library/python:3"), "docker.io");
        assert_eq!(registry_of("p-t:abc"), "docker.io");
    }

    #[test]
    fn env_then_helpers_then_auths() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &cfg,
            format!(r#"{{"auths": {{"http://reg.example:5000/v2/": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        let l = lookup_with("reg.example:5000", Some(cfg.clone()), |_| None);
        let c = l.credentials.clone().unwrap();
        assert_eq!(
            (c.username.as_str(), c.secret.as_str()),
            ("alice", "s3cret")
        );
        assert!(!format!("{l:?} {}", l.describe()).contains("s3cret"));
        let l = lookup_with("other:1", Some(cfg.clone()), |_| None);
        assert!(l.credentials.is_none());
        assert!(l.describe().contains("no auths entry for other:1"));
        let l = lookup_with("reg.example:5000", Some(cfg), |k| {
            Some(format!("{k}-value"))
        });
        assert_eq!(
            l.credentials.unwrap().username,
            "NB2PIPE_REGISTRY_USER-value"
        );
    }

    #[test]
    fn missing_helper_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, r#"{"credsStore": "nb2pipe-no-such-helper"}"#).unwrap();
        let l = lookup_with("r:1", Some(cfg), |_| None);
        assert!(l.credentials.is_none());
        assert!(l
            .source
            .contains("docker-credential-nb2pipe-no-such-helper"));
    }
}
