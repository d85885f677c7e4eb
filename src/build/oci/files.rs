//! What goes into each layer nb2pipe adds on the base, reproducing the Dockerfile's final
//! stage (templates/task/Dockerfile.j2) without running anything in the image:
//! - the user layer: uid/gid 10001 in /etc/passwd and /etc/group when the base lacks
//!   them, /app and /home/nb2pipe owned by 10001 (shared by every task on the base);
//! - the dependency layer: the virtualenv /opt/nb2pipe-venv pointing at the base's
//!   python3, with the wheels pip installed for the image (shared by tasks with the same
//!   requirements);
//! - the code layer: the task's files under /app, owned by 10001, 0644.

use std::path::Path;

use anyhow::{Context, Result};

use super::base::{with_task_line, BaseInfo};
use super::image::VENV;
use super::layers::{LayerBuilder, TASK_UID};
use crate::build::context::BuildContext;

pub fn user_layer(base: &BaseInfo) -> LayerBuilder {
    let mut l = LayerBuilder::default();
    for (path, file, line) in [
        (
            "/etc/passwd",
            &base.passwd,
            "nb2pipe:x:10001:10001:nb2pipe:/home/nb2pipe:/bin/sh",
        ),
        ("/etc/group", &base.group, "nb2pipe:x:10001:"),
    ] {
        let (bytes, mode) = match file {
            Some(f) => (f.bytes.as_slice(), f.mode),
            None => (&b""[..], 0o644),
        };
        l.file(path, with_task_line(bytes, line), mode & 0o7777, 0);
    }
    l.dir("/app", 0o755, TASK_UID);
    l.dir("/home/nb2pipe", 0o755, TASK_UID);
    l
}

/// How the virtualenv finds its Python.
#[derive(Debug, Clone, PartialEq)]
pub struct Venv {
    /// `/usr/bin/python3` in the base.
    pub python: String,
    /// `3.11`.
    pub version: String,
    /// `image:` bases keep their own packages visible (`--system-site-packages`).
    pub system_site_packages: bool,
}

/// The virtualenv with `site` (pip's `--target` folder) as its site-packages.
pub fn deps_layer(venv: &Venv, site: Option<&Path>) -> Result<LayerBuilder> {
    let mut l = LayerBuilder::default();
    let home = venv.python.rsplit_once('/').map_or("/", |(d, _)| d);
    let cfg = format!(
        "home = {home}\ninclude-system-site-packages = {}\nversion = {}\n",
        venv.system_site_packages, venv.version
    );
    l.dir(VENV, 0o755, 0);
    l.file(&format!("{VENV}/pyvenv.cfg"), cfg.into_bytes(), 0o644, 0);
    l.symlink(&format!("{VENV}/bin/python3"), &venv.python);
    l.symlink(&format!("{VENV}/bin/python"), "python3");
    l.symlink(&format!("{VENV}/bin/python{}", venv.version), "python3");
    l.symlink(&format!("{VENV}/lib64"), "lib");
    let site_dir = format!("{VENV}/lib/python{}/site-packages", venv.version);
    l.dir(&site_dir, 0o755, 0);
    if let Some(site) = site {
        add_tree(&mut l, site, site, &site_dir)?;
    }
    Ok(l)
}

fn add_tree(l: &mut LayerBuilder, root: &Path, dir: &Path, site_dir: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        if e.file_name() == "__pycache__" {
            continue;
        }
        // pip's scripts folder becomes the venv's bin/.
        let (dest, script) = match rel.strip_prefix("bin/") {
            Some(s) => (format!("{VENV}/bin/{s}"), true),
            None if rel == "bin" => (format!("{VENV}/bin"), false),
            None => (format!("{site_dir}/{rel}"), false),
        };
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p)?;
            l.symlink(&dest, &target.to_string_lossy());
        } else if meta.is_dir() {
            l.dir(&dest, 0o755, 0);
            add_tree(l, root, &p, site_dir)?;
        } else {
            let mut bytes = std::fs::read(&p)?;
            let exec = meta.permissions().mode() & 0o111 != 0 || script;
            if script {
                bytes = with_venv_shebang(bytes);
            }
            l.file(&dest, bytes, if exec { 0o755 } else { 0o644 }, 0);
        }
    }
    Ok(())
}

/// A script's `#!…python…` line made to name the venv's Python (pip wrote this machine's).
fn with_venv_shebang(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.starts_with(b"#!") {
        return bytes;
    }
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = String::from_utf8_lossy(&bytes[..end]);
    if !first.contains("python") {
        return bytes;
    }
    let mut out = format!("#!{VENV}/bin/python").into_bytes();
    out.extend_from_slice(&bytes[end..]);
    out
}

/// Files of the build context that go to /app (the Dockerfile's COPY lines).
pub fn code_layer(ctx: &BuildContext) -> LayerBuilder {
    let mut l = LayerBuilder::default();
    l.dir("/app", 0o755, TASK_UID);
    for (path, bytes) in &ctx.files {
        let keep = path == "main.py"
            || path == "nb2pipe_runtime.py"
            || path.starts_with("modules/")
            || path.starts_with("files/");
        if !keep {
            continue;
        }
        let mut d = path.as_str();
        while let Some((parent, _)) = d.rsplit_once('/') {
            l.dir(&format!("/app/{parent}"), 0o755, TASK_UID);
            d = parent;
        }
        l.file(&format!("/app/{path}"), bytes.clone(), 0o644, TASK_UID);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &LayerBuilder) -> Vec<(String, u64)> {
        let tar = l.tar().unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn code_layer_holds_only_the_task_files_owned_by_the_task_user() {
        let mut ctx = BuildContext::default();
        for f in [
            "main.py",
            "nb2pipe_runtime.py",
            "Dockerfile",
            "requirements.txt",
            "nb2pipe-pip.conf",
            "modules/m/u.py",
        ] {
            ctx.add(f, "x");
        }
        assert_eq!(
            names(&code_layer(&ctx)),
            [
                ("app/".to_string(), TASK_UID),
                ("app/main.py".into(), TASK_UID),
                ("app/modules/".into(), TASK_UID),
                ("app/modules/m/".into(), TASK_UID),
                ("app/modules/m/u.py".into(), TASK_UID),
                ("app/nb2pipe_runtime.py".into(), TASK_UID),
            ]
        );
    }

    #[test]
    fn deps_layer_is_a_venv_on_the_base_python() {
        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("bin")).unwrap();
        std::fs::create_dir_all(site.path().join("six-1.dist-info/__pycache__")).unwrap();
        std::fs::write(site.path().join("six.py"), "X = 1\n").unwrap();
        std::fs::write(
            site.path().join("bin/tool"),
            "#!/home/me/.venv/bin/python3\nimport x\n",
        )
        .unwrap();
        let venv = Venv {
            python: "/usr/bin/python3".into(),
            version: "3.11".into(),
            system_site_packages: false,
        };
        let l = deps_layer(&venv, Some(site.path())).unwrap();
        let tar = l.tar().unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut seen = std::collections::BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            seen.insert(p, (link, s, e.header().mode().unwrap()));
        }
        assert_eq!(
            seen["opt/nb2pipe-venv/bin/python3"].0.as_deref(),
            Some("/usr/bin/python3")
        );
        assert_eq!(
            seen["opt/nb2pipe-venv/pyvenv.cfg"].1,
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
        );
        assert_eq!(
            seen["opt/nb2pipe-venv/lib/python3.11/site-packages/six.py"].1,
            "X = 1\n"
        );
        let tool = &seen["opt/nb2pipe-venv/bin/tool"];
        assert_eq!(tool.1, "#!/opt/nb2pipe-venv/bin/python\nimport x\n");
        assert_eq!(tool.2, 0o755);
        assert!(!seen.keys().any(|k| k.contains("__pycache__")));
    }
}
