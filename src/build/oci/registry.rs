//! The registry side of the oci engine, through `oci-client` (the maintained successor of
//! `oci-distribution`, used by wasmCloud and Krustlet's heirs: pull by platform, blob
//! HEAD, cross-repository mount, chunked and monolithic upload, Basic and token auth).
//! Credentials come from [`crate::build::auth`], the same sources `docker push` uses here;
//! they are handed to the client and never printed. Loopback registries are spoken to in
//! plain HTTP, as the Docker Engine does; NB2PIPE_INSECURE_REGISTRIES adds others.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::build::auth::{self, Lookup};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `--platform`, else linux on this machine's architecture.
    pub fn parse(s: Option<&str>) -> Result<Platform> {
        let Some(s) = s else {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            };
            return Ok(Platform {
                os: "linux".into(),
                arch: arch.into(),
                variant: None,
            });
        };
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => bail!("--platform {s}: expected OS/ARCH or OS/ARCH/VARIANT (linux/amd64)"),
        }
    }

    /// The architecture in wheel tags.
    pub fn wheel_arch(&self) -> Result<&'static str> {
        match self.arch.as_str() {
            "amd64" => Ok("x86_64"),
            "arm64" => Ok("aarch64"),
            "ppc64le" => Ok("ppc64le"),
            "s390x" => Ok("s390x"),
            a => bail!("the oci engine has no wheel platform for the architecture {a}: use --engine docker"),
        }
    }

    pub fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.arch),
            None => format!("{}/{}", self.os, self.arch),
        }
    }
}

/// A base image resolved for one platform.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub reference: Reference,
    /// The platform's manifest (not the index).
    pub manifest: serde_json::Value,
    pub media_type: String,
    pub digest: String,
    pub config: serde_json::Value,
}

pub struct Registry {
    client: Client,
    lookups: std::sync::Mutex<BTreeMap<String, Lookup>>,
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// `s` as a reference. Docker's grammar is checked here for the common forms (ASCII
/// tags, sha256 digests) because oci-spec's parser compiles a Unicode regex on first use,
/// which costs more than the rest of a no-change build; anything else goes to oci-spec.
pub fn parse_ref(s: &str) -> Result<Reference> {
    if let Some(r) = parse_common(s) {
        return Ok(r);
    }
    s.parse::<Reference>()
        .map_err(|e| anyhow!("{s} is not an image reference: {e}"))
}

fn parse_common(s: &str) -> Option<Reference> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let hex = d.strip_prefix("sha256:")?;
            (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
            (r, Some(d))
        }
        None => (s, None),
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let b = t.as_bytes();
        (!b.is_empty() && b.len() <= 128 && ok(b[0]))
            .then_some(())
            .filter(|_| b.iter().all(|&c| ok(c) || c == b'.' || c == b'-'))?;
    }
    let (first, path) = name.split_once('/').unwrap_or(("", name));
    let (registry, repository) = if first.contains(['.', ':']) || first == "localhost" {
        domain_ok(first).then_some(())?;
        let r = if first == "index.docker.io" {
            "docker.io"
        } else {
            first
        };
        (r.to_string(), path.to_string())
    } else {
        ("docker.io".to_string(), name.to_string())
    };
    repository.split('/').all(component_ok).then_some(())?;
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    (repository.len() <= 255).then_some(())?;
    let (reg, repo) = (registry, repository);
    Some(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(reg, repo, t.into(), d.into()),
        (None, Some(d)) => Reference::with_digest(reg, repo, d.into()),
        (t, None) => Reference::with_tag(reg, repo, t.unwrap_or("latest").into()),
    })
}

/// `host[:port]`, host labels of ASCII letters, digits and inner dashes.
fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A path component: lowercase letters and digits joined by `.`, `_`, `__` or dashes.
fn component_ok(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

impl Registry {
    /// A client for the registries of `references` (those on loopback over HTTP).
    pub fn new<'a>(references: impl IntoIterator<Item = &'a str>) -> Registry {
        let mut insecure: Vec<String> = std::env::var("NB2PIPE_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for r in references {
            let host = auth::registry_of(r);
            if is_loopback(&host) && !insecure.contains(&host) {
                insecure.push(host);
            }
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            platform_resolver: None,
            // The local registry (Debian's docker-registry) and most others take a blob in one PUT.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            ..Default::default()
        };
        Registry {
            client: Client::new(config),
            lookups: Default::default(),
        }
    }

    /// Gives the client the credentials of `reference`'s registry (once per registry).
    pub async fn login(&self, reference: &Reference) -> Lookup {
        let host = reference.resolve_registry().to_string();
        let name = reference.registry().to_string();
        let lookup = {
            let mut l = self.lookups.lock().expect("lookups");
            l.entry(name.clone())
                .or_insert_with(|| auth::lookup(&name))
                .clone()
        };
        let a = match &lookup.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.secret.clone()),
            None => RegistryAuth::Anonymous,
        };
        self.client.store_auth_if_needed(&host, &a).await;
        lookup
    }

    /// Manifest and config of `reference` for `platform` (an index is resolved).
    pub async fn base(&self, reference: &str, platform: &Platform) -> Result<BaseImage> {
        let r = parse_ref(reference)?;
        let lookup = self.login(&r).await;
        let accept = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];
        let fail = |e: oci_client::errors::OciDistributionError| {
            anyhow!(
                "pulling the manifest of the base image {reference}: {e}\n  credentials: {}\n  the oci engine reads the base image from its registry: push it there (docker push) or use --engine docker",
                lookup.describe()
            )
        };
        let auth_none = RegistryAuth::Anonymous;
        let (body, digest) = self
            .client
            .pull_manifest_raw(&r, &auth_none, &accept)
            .await
            .map_err(fail)?;
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&body).context("the base image's manifest is not JSON")?;
        let mut media = media_type_of(&manifest);
        let mut digest = digest;
        if media == OCI_INDEX || media == DOCKER_LIST {
            let entry = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    let p = &m["platform"];
                    p["os"] == platform.os.as_str()
                        && p["architecture"] == platform.arch.as_str()
                        && platform
                            .variant
                            .as_deref()
                            .is_none_or(|v| p["variant"] == v)
                })
                .ok_or_else(|| {
                    anyhow!(
                        "the base image {reference} has no {} image (its index lists {})",
                        platform.describe(),
                        manifest["manifests"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| format!(
                                "{}/{}",
                                m["platform"]["os"].as_str().unwrap_or("?"),
                                m["platform"]["architecture"].as_str().unwrap_or("?")
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let d = entry["digest"].as_str().unwrap_or_default().to_string();
            let (body, d2) = self
                .client
                .pull_manifest_raw(&r.clone_with_digest(d), &auth_none, &accept)
                .await
                .map_err(fail)?;
            manifest = serde_json::from_slice(&body)?;
            media = media_type_of(&manifest);
            digest = d2;
        }
        if media != OCI_MANIFEST && media != DOCKER_MANIFEST {
            bail!(
                "the base image {reference} has a manifest of type {media}, not an image manifest"
            );
        }
        let cfg_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("the base image's manifest names no config"))?
            .to_string();
        let raw = self.blob(&r, &cfg_digest).await?;
        let config: serde_json::Value =
            serde_json::from_slice(&raw).context("the base image's config is not JSON")?;
        if let (Some(os), Some(arch)) = (config["os"].as_str(), config["architecture"].as_str()) {
            if os != platform.os || arch != platform.arch {
                bail!(
                    "the base image {reference} is {os}/{arch}, not {} (give --platform {os}/{arch}, or a base image for {})",
                    platform.describe(),
                    platform.describe()
                );
            }
        }
        Ok(BaseImage {
            reference: r,
            manifest,
            media_type: media,
            digest,
            config,
        })
    }

    pub async fn blob(&self, r: &Reference, digest: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.client
            .pull_blob(r, digest, &mut out)
            .await
            .with_context(|| format!("pulling the blob {digest} of {}", r.whole()))?;
        Ok(out)
    }

    pub async fn has_blob(&self, r: &Reference, digest: &str) -> Result<bool> {
        self.client
            .blob_exists(r, digest)
            .await
            .map_err(|e| anyhow!("asking {} for the blob {digest}: {e}", r.whole()))
    }

    /// Mounts `digest` from `from` (same registry); `false` when the registry would not.
    pub async fn mount(&self, r: &Reference, from: &Reference, digest: &str) -> bool {
        from.resolve_registry() == r.resolve_registry()
            && self.client.mount_blob(r, from, digest).await.is_ok()
    }

    pub async fn upload(&self, r: &Reference, bytes: Vec<u8>, digest: &str) -> Result<()> {
        self.client
            .push_blob(r, bytes, digest)
            .await
            .map(|_| ())
            .map_err(|e| anyhow!("uploading the blob {digest} to {}: {e}", r.whole()))
    }

    pub async fn put_manifest(&self, r: &Reference, body: Vec<u8>, media: &str) -> Result<()> {
        let ct = media.parse().expect("a media type is a header value");
        self.client
            .push_manifest_raw(r, body, ct)
            .await
            .map(|_| ())
            .map_err(|e| anyhow!("pushing the manifest of {}: {e}", r.whole()))
    }

    /// The manifest stored under `r`, as the registry sent it.
    pub async fn manifest_raw(&self, r: &Reference, accept: &[&str]) -> Result<Vec<u8>> {
        let (body, _) = self
            .client
            .pull_manifest_raw(r, &RegistryAuth::Anonymous, accept)
            .await
            .map_err(|e| anyhow!("pulling the manifest of {}: {e}", r.whole()))?;
        Ok(body.to_vec())
    }

    /// The digest `r` has in the registry, if it is there.
    pub async fn manifest_digest(&self, r: &Reference) -> Option<String> {
        self.client
            .fetch_manifest_digest(r, &RegistryAuth::Anonymous)
            .await
            .ok()
    }
}

fn media_type_of(m: &serde_json::Value) -> String {
    match m["mediaType"].as_str() {
        Some(t) => t.to_string(),
        // An OCI manifest may leave mediaType out.
        None if m.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse() {
        let p = Platform::parse(Some("linux/arm64/v8")).unwrap();
        assert_eq!((p.os.as_str(), p.arch.as_str()), ("linux", "arm64"));
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.wheel_arch().unwrap(), "aarch64");
        assert!(Platform::parse(Some("amd64")).is_err());
        assert!(is_loopback("127.0.0.1:5123") && is_loopback("localhost:5000"));
        assert!(!is_loopback("ghcr.io"));
    }

    #[test]
    fn references_parse_as_oci_spec_parses_them() {
        let d = format!("sha256:{}", "ab12".repeat(16));
        let cases = [
            "busybox".to_string(),
            "busybox:1.36".into(),
            "library/busybox".into(),
            "user/repo:v1.0-rc_1".into(),
            "docker.io/user/repo".into(),
            "index.docker.io/repo:t".into(),
            "127.0.0.1:5123/nb2pipe-test/python:3.11".into(),
            "localhost/a/b/c:latest".into(),
            "localhost:5000/x__y/z-----w:9".into(),
            "ghcr.io/o/r.x_y:t".into(),
            format!("ghcr.io/o/r@{d}"),
            format!("ghcr.io/o/r:t@{d}"),
            "test.com:5000".into(),
            "test.com:tag".into(),
        ];
        for c in &cases {
            let want: Reference = c.parse().unwrap();
            let got = parse_common(c).unwrap_or_else(|| panic!("{c}"));
            assert_eq!(
                (got.registry(), got.repository(), got.tag(), got.digest()),
                (
                    want.registry(),
                    want.repository(),
                    want.tag(),
                    want.digest()
                ),
                "{c}"
            );
            assert_eq!(got.whole(), want.whole(), "{c}");
        }
        for bad in ["", "a//b", "a/-b", "a/b:", "a/b:-t", "a@sha256:12"] {
            assert!(parse_common(bad).is_none(), "{bad}");
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
        // Forms left to oci-spec, which accepts them.
        for odd in ["UPPER/x", "h_x.io/a"] {
            assert!(parse_common(odd).is_none(), "{odd}");
            assert!(parse_ref(odd).is_ok(), "{odd}");
        }
    }
}
