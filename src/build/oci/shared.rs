//! Dependency layers shared through the registry, so a machine with an empty oci cache
//! does not run pip for requirements another machine already installed. Each layer is
//! kept as a one-layer OCI image in the repository `nb2pipe-cache` of the task images'
//! registry and namespace, tagged `deps-<hash of the requirements and
//! platform>`; the layer's diff_id travels as an annotation of its descriptor, so one
//! manifest GET is the whole lookup. A found layer is never downloaded: the push mounts
//! it from the cache repository into each task repository.

use oci_client::Reference;
use serde_json::{json, Value};

use super::layers::sha256;
use super::registry::{Platform, Registry, OCI_MANIFEST};
use super::CachedLayer;

pub const REPOSITORY: &str = "nb2pipe-cache";
const LAYER_MEDIA: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA: &str = "application/vnd.oci.image.config.v1+json";
const DIFF_ID: &str = "io.nb2pipe.diff-id";
const KEY: &str = "io.nb2pipe.deps-key";

/// The cache entry of the dependency layer `key` for images pushed to `target`: in the
/// target's namespace (its first path component, where pushing is allowed), so every
/// `--registry` path under it shares the cache.
pub fn reference(target: &Reference, key: &str) -> Reference {
    let repo = match target.repository().split_once('/') {
        Some((namespace, _)) => format!("{namespace}/{REPOSITORY}"),
        None => REPOSITORY.to_string(),
    };
    Reference::with_tag(target.registry().to_string(), repo, format!("deps-{key}"))
}

/// A cache entry's config and manifest (the same bytes for the same layer on any machine).
pub struct Entry {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

pub fn entry(layer: &CachedLayer, key: &str, platform: &Platform) -> Entry {
    let config = json!({
        "architecture": platform.arch,
        "os": platform.os,
        "config": {"Labels": {KEY: key}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    });
    let config = serde_json::to_vec(&config).expect("json");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA, "digest": sha256(&config), "size": config.len()},
        "layers": [{
            "mediaType": LAYER_MEDIA,
            "digest": layer.digest,
            "size": layer.size,
            "annotations": {DIFF_ID: layer.diff_id},
        }],
        "annotations": {KEY: key},
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    Entry {
        digest: sha256(&manifest),
        config,
        manifest,
    }
}

/// The layer a cache entry's manifest names, if it is one nb2pipe wrote for `key`.
pub fn parse(manifest: &[u8], key: &str) -> Option<CachedLayer> {
    let m: Value = serde_json::from_slice(manifest).ok()?;
    if m["annotations"][KEY] != key {
        return None;
    }
    let [l] = m["layers"].as_array()?.as_slice() else {
        return None;
    };
    let digest = l["digest"].as_str()?;
    let diff_id = l["annotations"][DIFF_ID].as_str()?;
    let ok = |d: &str| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let size = l["size"].as_u64()?;
    (ok(digest) && ok(diff_id)).then(|| CachedLayer {
        digest: digest.to_string(),
        diff_id: diff_id.to_string(),
        size,
    })
}

/// The layer recorded under `r`; any failure (no entry, no access) is a miss.
pub async fn lookup(reg: &Registry, r: &Reference, key: &str) -> Option<CachedLayer> {
    reg.login(r).await;
    let body = reg.manifest_raw(r, &[OCI_MANIFEST]).await.ok()?;
    parse(&body, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> CachedLayer {
        CachedLayer {
            digest: format!("sha256:{}", "a".repeat(64)),
            diff_id: format!("sha256:{}", "b".repeat(64)),
            size: 42,
        }
    }

    #[test]
    fn an_entry_reads_back_only_for_its_key() {
        let p = Platform::parse(Some("linux/amd64")).unwrap();
        let e = entry(&layer(), "k1", &p);
        let back = parse(&e.manifest, "k1").unwrap();
        assert_eq!(
            (back.digest, back.diff_id, back.size),
            (layer().digest, layer().diff_id, 42)
        );
        assert!(parse(&e.manifest, "k2").is_none());
        assert!(parse(b"{\"layers\": 3}", "k1").is_none());
        assert_eq!(entry(&layer(), "k1", &p).digest, e.digest);
    }

    #[test]
    fn the_cache_repository_is_in_the_namespace_of_the_task_images() {
        let r: Reference = "127.0.0.1:5123/team/ml/small-load:abc".parse().unwrap();
        assert_eq!(
            reference(&r, "f00").whole(),
            "127.0.0.1:5123/team/nb2pipe-cache:deps-f00"
        );
        let r: Reference = "127.0.0.1:5123/small-load:abc".parse().unwrap();
        assert_eq!(
            reference(&r, "f00").whole(),
            "127.0.0.1:5123/nb2pipe-cache:deps-f00"
        );
    }
}
