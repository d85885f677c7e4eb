//! The image config and manifest nb2pipe writes for a task: the base's config with what
//! the Dockerfile's final stage sets (ENV, WORKDIR, LABEL, USER, ENTRYPOINT), the added
//! layers' diff_ids and history, and a manifest of the base's media type family (Docker
//! schema 2 on a Docker-built base, OCI otherwise), so registries and engines read both.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::layers::sha256;
use super::registry::{DOCKER_MANIFEST, OCI_MANIFEST};

/// Fixed: the image's content, not the build time, decides its digest.
pub const CREATED: &str = "1970-01-01T00:00:00Z";
pub const VENV: &str = "/opt/nb2pipe-venv";

/// A layer nb2pipe adds: blob digest and size, diff_id, and its history line.
#[derive(Debug, Clone)]
pub struct Added {
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
    pub created_by: String,
}

/// `KEY=VALUE` set in `env`, in place when the key is there (as Docker's ENV does).
fn set_env(env: &mut Vec<String>, key: &str, value: String) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// The task's config, from the base's.
pub fn config(base: &Value, labels: &[(String, String)], added: &[Added]) -> Result<Vec<u8>> {
    let mut cfg = base.clone();
    let obj = cfg
        .as_object_mut()
        .context("the base image's config is not an object")?;
    obj.insert("created".into(), json!(CREATED));
    for k in ["container", "container_config", "docker_version", "author"] {
        obj.remove(k);
    }
    let c = obj.entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    let c = c.as_object_mut().expect("an object");
    let mut env: Vec<String> = c
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::base::DEFAULT_PATH)
        .to_string();
    set_env(&mut env, "PATH", format!("{VENV}/bin:{path}"));
    set_env(&mut env, "PYTHONUNBUFFERED", "1".into());
    set_env(&mut env, "PYTHONDONTWRITEBYTECODE", "1".into());
    set_env(&mut env, "HOME", "/home/nb2pipe".into());
    c.insert("Env".into(), json!(env));
    c.insert("User".into(), json!("10001"));
    c.insert("WorkingDir".into(), json!("/app"));
    c.insert("Entrypoint".into(), json!(["python", "/app/main.py"]));
    // ENTRYPOINT resets the base's CMD in `docker build` too.
    c.remove("Cmd");
    let mut all: std::collections::BTreeMap<String, String> = c
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in labels {
        all.insert(k.clone(), v.clone());
    }
    c.insert("Labels".into(), json!(all));
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let ids = rootfs
        .as_object_mut()
        .context("the base image's rootfs is not an object")?
        .entry("diff_ids")
        .or_insert_with(|| json!([]));
    let ids = ids.as_array_mut().context("diff_ids is not a list")?;
    for a in added {
        ids.push(json!(a.diff_id));
    }
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        for a in added {
            h.push(json!({"created": CREATED, "created_by": a.created_by}));
        }
    }
    Ok(serde_json::to_vec(&cfg)?)
}

/// The manifest: the base's layers as they are, then ours. Returns (bytes, media type).
pub fn manifest(
    base: &Value,
    base_media: &str,
    config: &[u8],
    added: &[Added],
) -> Result<(Vec<u8>, &'static str)> {
    let docker = base_media == DOCKER_MANIFEST;
    let (media, cfg_media, layer_media) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let mut layers: Vec<Value> = base["layers"].as_array().cloned().unwrap_or_default();
    for a in added {
        layers.push(json!({"mediaType": layer_media, "size": a.size, "digest": a.digest}));
    }
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(media));
    m.insert(
        "config".into(),
        json!({"mediaType": cfg_media, "size": config.len(), "digest": sha256(config)}),
    );
    m.insert("layers".into(), json!(layers));
    Ok((serde_json::to_vec(&Value::Object(m))?, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_what_the_dockerfile_sets() {
        let base = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin"], "Cmd": ["python3"],
                       "Labels": {"maintainer": "x", "io.nb2pipe.task": "old"}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created_by": "base"}]
        });
        let added = [Added {
            digest: "sha256:bb".into(),
            size: 3,
            diff_id: "sha256:cc".into(),
            created_by: "nb2pipe: code".into(),
        }];
        let labels = [("io.nb2pipe.task".to_string(), "t".to_string())];
        let cfg: Value = serde_json::from_slice(&config(&base, &labels, &added).unwrap()).unwrap();
        let c = &cfg["config"];
        assert_eq!(
            c["Env"],
            json!([
                "LANG=C.UTF-8",
                "PATH=/opt/nb2pipe-venv/bin:/usr/local/bin:/usr/bin",
                "PYTHONUNBUFFERED=1",
                "PYTHONDONTWRITEBYTECODE=1",
                "HOME=/home/nb2pipe"
            ])
        );
        assert_eq!(c["User"], "10001");
        assert_eq!(c["Entrypoint"], json!(["python", "/app/main.py"]));
        assert!(c.get("Cmd").is_none());
        assert_eq!(
            c["Labels"],
            json!({"io.nb2pipe.task": "t", "maintainer": "x"})
        );
        assert_eq!(cfg["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:cc"]));
        assert_eq!(cfg["history"][1]["created_by"], "nb2pipe: code");
        // No PATH in the base: Docker's default.
        let bare = json!({"architecture": "amd64", "os": "linux"});
        let cfg: Value = serde_json::from_slice(&config(&bare, &[], &added).unwrap()).unwrap();
        assert_eq!(
            cfg["config"]["Env"][0],
            format!(
                "PATH=/opt/nb2pipe-venv/bin:{}",
                super::super::base::DEFAULT_PATH
            )
        );
        let (m, media) = manifest(
            &json!({"layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": "sha256:aa"}]}),
            DOCKER_MANIFEST,
            b"{}",
            &added,
        )
        .unwrap();
        assert_eq!(media, DOCKER_MANIFEST);
        let m: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(m["layers"][1]["digest"], "sha256:bb");
        assert_eq!(m["config"]["digest"], sha256(b"{}"));
    }
}
