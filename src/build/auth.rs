//! Registry credentials for `build --push`, looked up in this order:
//! 1. NB2PIPE_REGISTRY_USER / NB2PIPE_REGISTRY_PASSWORD (for every registry);
//! 2. the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
//!    as the Docker CLI reads it: `credHelpers[<registry>]`, then `credsStore` (both run
//!    `docker-credential-<helper> get`, Docker Hub asked as `https://index.docker.io/v1/`),
//!    then `auths[<registry>]`: `identitytoken`, `auth` (base64 `user:pass`), or
//!    `username` + `password`.
//!
//! An identity token (OAuth2 refresh token) is kept as Docker's helpers return it: user
//! `<token>`, the token as the secret ([`Credentials::identity_token`]).
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

/// The user name Docker's credential helpers give for an identity token.
pub const TOKEN_USER: &str = "<token>";

impl Credentials {
    /// The identity token, when these credentials are one (not a user and password).
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == TOKEN_USER).then_some(self.secret.as_str())
    }
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

/// Where the Docker CLI reads its config from.
fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = env("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
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

/// The server name a credential helper is asked for: Docker stores Docker Hub's under
/// its v1 index URL.
fn helper_server(registry: &str) -> String {
    match normalise(registry).as_str() {
        "docker.io" => "https://index.docker.io/v1/".into(),
        _ => registry.to_string(),
    }
}

pub fn lookup(registry: &str) -> Lookup {
    lookup_with(registry, &|k| std::env::var(k).ok())
}

/// [`lookup`] with the environment given (NB2PIPE_REGISTRY_*, DOCKER_CONFIG, HOME, and
/// PATH, where the helpers are found).
fn lookup_with(registry: &str, env: &dyn Fn(&str) -> Option<String>) -> Lookup {
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
    let config = config_path(env);
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
        .and_then(|(_, v)| v.as_str())
        .filter(|h| !h.is_empty());
    let helpers = [
        helper_for.map(|h| (h, "credHelpers")),
        doc.get("credsStore")
            .and_then(|s| s.as_str())
            .filter(|h| !h.is_empty())
            .map(|h| (h, "credsStore")),
    ];
    let server = helper_server(registry);
    for (helper, key) in helpers.into_iter().flatten() {
        match run_helper(helper, &server, env("PATH")) {
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
    let entry = doc
        .get("auths")
        .and_then(|a| a.as_object())
        .and_then(|a| a.iter().find(|(k, _)| normalise(k) == want))
        .map(|(_, v)| v);
    let text = |k: &str| {
        entry
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let from_auths = text("identitytoken")
        .map(|t| Credentials {
            username: TOKEN_USER.into(),
            secret: t.into(),
        })
        .or_else(|| text("auth").and_then(decode_auth))
        .or_else(|| match (text("username"), text("password")) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.into(),
                secret: p.into(),
            }),
            _ => None,
        });
    match from_auths {
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
    // Padding optional, as Docker's own decoder takes it.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let raw = engine.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.to_string(),
        secret: p.to_string(),
    })
}

/// `docker-credential-<helper> get` with the server on stdin; `Ok(None)` when the
/// helper has nothing for it. The helper's output is never shown (it holds the secret).
fn run_helper(
    helper: &str,
    server: &str,
    path: Option<String>,
) -> Result<Option<Credentials>, String> {
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err("not a valid helper name".into());
    }
    let mut cmd = Command::new(format!("docker-credential-{helper}"));
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
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
    use std::collections::HashMap;

    #[test]
    fn registry_of_references() {
        assert_eq!(registry_of("127.0.0.1:5000/p-t:abc"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/p:1"), "ghcr.io");
        assert_eq!(registry_of("library/python:3"), "docker.io");
        assert_eq!(registry_of("p-t:abc"), "docker.io");
    }

    /// A DOCKER_CONFIG folder with `config` as its config.json, and a `bin` folder of
    /// fake credential helpers for PATH.
    struct Setup {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
    }

    impl Setup {
        fn new(config: &str) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config.json"), config).unwrap();
            std::fs::create_dir(dir.path().join("bin")).unwrap();
            let mut env = HashMap::new();
            env.insert("DOCKER_CONFIG".into(), dir.path().display().to_string());
            env.insert("PATH".into(), dir.path().join("bin").display().to_string());
            Setup { dir, env }
        }

        /// A helper that answers `answer` when asked for `server`, else fails as
        /// Docker's helpers do ("credentials not found", exit 1).
        fn helper(&self, name: &str, server: &str, answer: &str) {
            use std::os::unix::fs::PermissionsExt;
            let p = self
                .dir
                .path()
                .join(format!("bin/docker-credential-{name}"));
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread s\nif [ \"$s\" = '{server}' ]; then echo '{answer}'; else echo 'credentials not found in native keychain'; exit 1; fi\n"
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn lookup(&self, registry: &str) -> Lookup {
            lookup_with(registry, &|k| self.env.get(k).cloned())
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn pair(l: &Lookup) -> (String, String) {
        let c = l
            .credentials
            .clone()
            .unwrap_or_else(|| panic!("{}", l.describe()));
        (c.username, c.secret)
    }

    fn no_secret_shown(l: &Lookup, secret: &str) {
        let shown = format!("{l:?} {}", l.describe());
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn auths_by_auth_username_password_and_identity_token() {
        let s = Setup::new(&format!(
            r#"{{"auths": {{
                "http://reg.example:5000/v2/": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "plain.example": {{"username": "carol", "password": "pw-carol"}},
                "token.example": {{"identitytoken": "tok-123", "auth": "{}"}},
                "empty.example": {{}}
            }}}}"#,
            b64("alice:s3cret"),
            b64("bob:hub-pw").trim_end_matches('='),
            b64("x:y")
        ));
        let l = s.lookup("reg.example:5000");
        assert_eq!(pair(&l), ("alice".into(), "s3cret".into()));
        assert!(l.source.contains("auths in"));
        no_secret_shown(&l, "s3cret");
        // Docker Hub under its v1 URL, base64 without padding.
        assert_eq!(
            pair(&s.lookup("docker.io")),
            ("bob".into(), "hub-pw".into())
        );
        assert_eq!(
            pair(&s.lookup("plain.example")),
            ("carol".into(), "pw-carol".into())
        );
        let l = s.lookup("token.example");
        assert_eq!(
            l.credentials.as_ref().unwrap().identity_token(),
            Some("tok-123")
        );
        no_secret_shown(&l, "tok-123");
        for r in ["empty.example", "other:1"] {
            let l = s.lookup(r);
            assert!(l.credentials.is_none(), "{r}");
            assert!(l.describe().contains(&format!("no auths entry for {r}")));
        }
    }

    #[test]
    fn cred_helpers_then_creds_store_then_auths() {
        let s = Setup::new(&format!(
            r#"{{"credHelpers": {{"https://helped.example": "own", "blank.example": ""}}, "credsStore": "store",
                "auths": {{"helped.example": {{"auth": "{}"}}, "filed.example": {{"auth": "{}"}}}}}}"#,
            b64("stale:stale-pw"),
            b64("dave:file-pw")
        ));
        s.helper(
            "own",
            "helped.example",
            r#"{"Username": "erin", "Secret": "helper-pw"}"#,
        );
        s.helper(
            "store",
            "https://index.docker.io/v1/",
            r#"{"Username": "<token>", "Secret": "hub-token"}"#,
        );
        let l = s.lookup("helped.example");
        assert_eq!(pair(&l), ("erin".into(), "helper-pw".into()));
        assert!(
            l.source.contains("docker-credential-own (credHelpers in"),
            "{}",
            l.source
        );
        no_secret_shown(&l, "helper-pw");
        // credsStore answers Docker Hub, asked under its v1 URL, with an identity token.
        let l = s.lookup("docker.io");
        assert_eq!(
            l.credentials.as_ref().unwrap().identity_token(),
            Some("hub-token")
        );
        assert!(l.source.contains("credsStore"));
        no_secret_shown(&l, "hub-token");
        // The store has nothing for it: the file's auths.
        let l = s.lookup("filed.example");
        assert_eq!(pair(&l), ("dave".into(), "file-pw".into()));
        assert!(l.source.starts_with("auths in"), "{}", l.source);
        // An empty credHelpers entry falls through to the store.
        let l = s.lookup("blank.example");
        assert!(l.credentials.is_none());
        assert!(!l.source.contains("docker-credential- "), "{}", l.source);
    }

    #[test]
    fn environment_wins_and_docker_config_is_where_the_file_is() {
        let mut s = Setup::new(&format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("f:file")
        ));
        s.env.insert("NB2PIPE_REGISTRY_USER".into(), "ci".into());
        s.env
            .insert("NB2PIPE_REGISTRY_PASSWORD".into(), "ci-pw".into());
        let l = s.lookup("r.example");
        assert_eq!(pair(&l), ("ci".into(), "ci-pw".into()));
        no_secret_shown(&l, "ci-pw");
        s.env.remove("NB2PIPE_REGISTRY_PASSWORD");
        assert_eq!(pair(&s.lookup("r.example")), ("f".into(), "file".into()));
        // Without DOCKER_CONFIG: $HOME/.docker/config.json.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".docker")).unwrap();
        std::fs::write(
            home.path().join(".docker/config.json"),
            format!(
                r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
                b64("h:home")
            ),
        )
        .unwrap();
        s.env.remove("DOCKER_CONFIG");
        s.env
            .insert("HOME".into(), home.path().display().to_string());
        assert_eq!(pair(&s.lookup("r.example")), ("h".into(), "home".into()));
    }

    #[test]
    fn missing_or_broken_helper_is_reported_not_fatal() {
        let s = Setup::new(r#"{"credsStore": "nb2pipe-no-such-helper"}"#);
        let l = s.lookup("r:1");
        assert!(l.credentials.is_none());
        assert!(l
            .source
            .contains("docker-credential-nb2pipe-no-such-helper"));
        let s = Setup::new(r#"{"credsStore": "bad"}"#);
        s.helper("bad", "r:1", "Username=x Secret=leaked-pw");
        let l = s.lookup("r:1");
        assert!(l.credentials.is_none());
        assert!(l.source.contains("its output is not JSON"), "{}", l.source);
        no_secret_shown(&l, "leaked-pw");
        let s = Setup::new(r#"{"credsStore": "../evil"}"#);
        assert!(s.lookup("r:1").source.contains("not a valid helper name"));
    }
}
