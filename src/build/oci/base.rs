//! What the oci engine must know of a base image without running it: where its
//! `python3` is and which version it is (the dependency layer is made for it), its glibc
//! (which manylinux wheels fit), and its /etc/passwd and /etc/group (the task user is
//! added to them as the Dockerfile does). Read once from the base's layers and kept on
//! disk by the base's manifest digest.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// PATH when the base sets none (the Docker Engine's default, also used by `docker build`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseFile {
    pub bytes: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseInfo {
    /// `/usr/bin/python3`: the first `python3` on the base's PATH.
    pub python: Option<String>,
    /// `3.11`: from the standard library folder next to it.
    pub version: Option<String>,
    /// `(2, 36)`: the libc6 package's version (Debian and Ubuntu bases).
    pub glibc: Option<(u32, u32)>,
    /// A musl libc (Alpine): musllinux wheels.
    pub musl: bool,
    pub passwd: Option<BaseFile>,
    pub group: Option<BaseFile>,
}

/// One layer as the registry serves it.
pub fn tar_reader<'a>(media_type: &str, blob: &'a [u8]) -> Result<Box<dyn Read + 'a>> {
    if media_type.contains("zstd") {
        bail!("the base image has a zstd layer ({media_type}); the oci engine reads gzip and uncompressed layers: use --engine docker");
    }
    if media_type.ends_with("gzip") || blob.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::GzDecoder::new(blob)))
    } else {
        Ok(Box::new(blob))
    }
}

fn wanted(path: &str) -> bool {
    matches!(path, "etc/passwd" | "etc/group" | "var/lib/dpkg/status")
        || path.ends_with("/python3")
        || path.ends_with("/os.py")
        || path.starts_with("lib/ld-musl-")
}

/// Reads `layers` (lowest first) into the facts above; `path` is the base's PATH.
pub fn scan<'a>(
    layers: impl IntoIterator<Item = (String, &'a [u8])>,
    path: &str,
) -> Result<BaseInfo> {
    let mut files: BTreeMap<String, BaseFile> = BTreeMap::new();
    for (media, blob) in layers {
        let mut ar = tar::Archive::new(tar_reader(&media, blob)?);
        for e in ar.entries().context("reading a base image layer")? {
            let mut e = e.context("reading a base image layer")?;
            let p = e.path()?.to_string_lossy().into_owned();
            let p = p
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            let name = p.rsplit('/').next().unwrap_or("");
            if let Some(gone) = name.strip_prefix(".wh.") {
                let dir = &p[..p.len() - name.len()];
                if gone == ".wh..opq" {
                    files.retain(|k, _| !k.starts_with(dir));
                } else {
                    let target = format!("{dir}{gone}");
                    files.retain(|k, _| k != &target && !k.starts_with(&format!("{target}/")));
                }
                continue;
            }
            if !wanted(&p) {
                continue;
            }
            let h = e.header().clone();
            let mut bytes = Vec::new();
            if matches!(
                p.as_str(),
                "etc/passwd" | "etc/group" | "var/lib/dpkg/status"
            ) && h.entry_type().is_file()
            {
                e.read_to_end(&mut bytes)?;
            }
            files.insert(
                p,
                BaseFile {
                    bytes,
                    mode: h.mode().unwrap_or(0o644),
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                },
            );
        }
    }
    let mut info = BaseInfo {
        passwd: files.get("etc/passwd").cloned(),
        group: files.get("etc/group").cloned(),
        musl: files.keys().any(|k| k.starts_with("lib/ld-musl-")),
        ..Default::default()
    };
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let dir = dir.trim_end_matches('/');
        if files.contains_key(&format!("{}/python3", &dir[1..])) {
            info.python = Some(format!("{dir}/python3"));
            let prefix = dir[1..].rsplit_once('/').map_or("", |(p, _)| p);
            let lib = if prefix.is_empty() {
                "lib/".to_string()
            } else {
                format!("{prefix}/lib/")
            };
            info.version = files.keys().find_map(|k| {
                let v = k.strip_prefix(&lib)?.strip_suffix("/os.py")?;
                let v = v.strip_prefix("python")?;
                v.split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.to_string())
            });
            break;
        }
    }
    if let Some(status) = files.get("var/lib/dpkg/status") {
        info.glibc = libc6_version(&String::from_utf8_lossy(&status.bytes));
    }
    Ok(info)
}

/// `Package: libc6` … `Version: 2.36-9+deb12u4` → (2, 36).
fn libc6_version(status: &str) -> Option<(u32, u32)> {
    let block = status
        .split("\n\n")
        .find(|b| b.lines().any(|l| l == "Package: libc6"))?;
    let v = block.lines().find_map(|l| l.strip_prefix("Version: "))?;
    let v = v.split(':').next_back()?;
    let mut it = v.split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// `text` with the task user's line appended when no line has uid (or gid) 10001,
/// exactly as the Dockerfile's `echo … >>` does.
pub fn with_task_line(text: &[u8], line: &str) -> Vec<u8> {
    let s = String::from_utf8_lossy(text);
    let has = s.lines().any(|l| l.split(':').nth(2) == Some("10001"));
    let mut out = text.to_vec();
    if !has {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn finds_python_libc_and_users_across_layers() {
        let status = b"Package: bash\nVersion: 5.2\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\n";
        let l1 = layer(&[
            ("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("./usr/bin/python3", b""),
            ("./usr/lib/python3.11/os.py", b""),
            ("./var/lib/dpkg/status", status),
            ("./usr/local/bin/python3", b""),
        ]);
        // A later layer removes /usr/local/bin/python3 and replaces /etc/passwd.
        let l2 = layer(&[
            ("usr/local/bin/.wh.python3", b""),
            (
                "etc/passwd",
                b"root:x:0:0::/root:/bin/sh\nnb:x:10001:10001::/h:/bin/sh\n",
            ),
        ]);
        let info = scan(
            [
                (
                    "application/vnd.oci.image.layer.v1.tar".to_string(),
                    l1.as_slice(),
                ),
                (
                    "application/vnd.oci.image.layer.v1.tar".to_string(),
                    l2.as_slice(),
                ),
            ],
            DEFAULT_PATH,
        )
        .unwrap();
        assert_eq!(info.python.as_deref(), Some("/usr/bin/python3"));
        assert_eq!(info.version.as_deref(), Some("3.11"));
        assert_eq!(info.glibc, Some((2, 36)));
        assert!(!info.musl);
        let passwd = info.passwd.unwrap().bytes;
        assert_eq!(with_task_line(&passwd, "x:x:10001:"), passwd);
        assert_eq!(
            with_task_line(b"root:x:0:\n", "nb2pipe:x:10001:"),
            b"root:x:0:\nnb2pipe:x:10001:\n"
        );
    }
}
