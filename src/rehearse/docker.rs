//! The rehearsal's Docker side: volumes made as a provisioner and the kubelet make
//! them, and one pod's container started with the pod's securityContext and limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, KillContainerOptions, RemoveVolumeOptions,
};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

use super::kubelet;
use super::Prepared;
use crate::build::Engine;

/// The volumes of one rehearsed run: each PersistentVolumeClaim the pods mount is one
/// fresh Docker volume for the whole run (claim name → volume name).
pub struct RunVolumes {
    pub claims: HashMap<String, String>,
    /// A one-pod target's emptyDirs (volume name → Docker volume): they live as long as
    /// the pod, so every container of the run shares them.
    pub pod_volumes: HashMap<String, String>,
    /// An image every task has (for the helper containers that set ownership and
    /// export the data).
    pub helper_image: String,
    /// Where the data claim is mounted (to export it), when there is one.
    pub data_claim: Option<String>,
    /// Temporary folders (secret files), removed at the end.
    pub scratch: PathBuf,
}

fn rt() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Creates a fresh volume per claim the pods mount, labelled with the run.
pub fn create_volumes(
    rehearsal: &super::Rehearsal,
    run_key: &str,
    data_claim: Option<String>,
    scratch: PathBuf,
) -> Result<RunVolumes> {
    let mut claims = HashMap::new();
    for p in &rehearsal.tasks {
        for v in p.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.persistent_volume_claim {
                claims
                    .entry(c.claim_name.clone())
                    .or_insert_with(|| format!("nb2pipe-{run_key}-{}", c.claim_name));
            }
        }
    }
    let mut pod_volumes = HashMap::new();
    if rehearsal.target.one_pod() {
        for p in &rehearsal.tasks {
            for v in p.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                if v.empty_dir.is_some() {
                    pod_volumes
                        .entry(v.name.clone())
                        .or_insert_with(|| format!("nb2pipe-{run_key}-{}", v.name));
                }
            }
        }
    }
    let helper_image = rehearsal
        .tasks
        .first()
        .and_then(|p| p.pod.spec.as_ref()?.containers.first()?.image.clone())
        .unwrap_or_default();
    rt()?.block_on(async {
        let engine = Engine::connect().await?;
        for vol in claims.values().chain(pod_volumes.values()) {
            engine
                .docker
                .create_volume(VolumeCreateRequest {
                    name: Some(vol.clone()),
                    labels: Some(HashMap::from([(
                        "io.nb2pipe.rehearsal".to_string(),
                        run_key.to_string(),
                    )])),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("creating the volume {vol}"))?;
        }
        anyhow::Ok(())
    })?;
    Ok(RunVolumes {
        claims,
        pod_volumes,
        helper_image,
        data_claim,
        scratch,
    })
}

/// Removes the run's volumes and scratch files.
pub fn remove_volumes(v: &RunVolumes) {
    if let Ok(rt) = rt() {
        rt.block_on(async {
            if let Ok(engine) = Engine::connect().await {
                for vol in v.claims.values().chain(v.pod_volumes.values()) {
                    let _ = engine
                        .docker
                        .remove_volume(vol, Some(RemoveVolumeOptions { force: true }))
                        .await;
                }
            }
        });
    }
    let _ = std::fs::remove_dir_all(&v.scratch);
}

/// Runs a short command as root in the helper image with `mounts`, to completion.
async fn helper(
    engine: &Engine,
    image: &str,
    mounts: Vec<Mount>,
    script: &str,
) -> Result<(), String> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        user: Some("0:0".into()),
        entrypoint: Some(vec!["python3".into(), "-c".into(), script.into()]),
        cmd: None,
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| format!("creating a helper container from {image}: {e}"))?
        .id;
    let r = async {
        engine
            .docker
            .start_container(&id, None)
            .await
            .map_err(|e| e.to_string())?;
        engine.wait_exit(&id).await
    }
    .await;
    engine.remove_container(&id).await;
    match r {
        Ok(0) => Ok(()),
        Ok(c) => Err(format!("the volume helper exited with {c}")),
        Err(e) => Err(e),
    }
}

/// The kubelet's volume ownership for fsGroup G: every file's group becomes G,
/// group-readable and writable (and executable where the owner may execute),
/// directories get the setgid bit so new files stay in G. `OnRootMismatch` skips
/// the walk when the root already has group G and those bits.
const OWNERSHIP: &str = r#"
import os, stat, sys
root, gid, always, world = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
if world:
    os.chmod(root, 0o777)
st = os.lstat(root)
need = stat.S_ISGID | stat.S_IRWXG
if not always and st.st_gid == gid and st.st_mode & need == need:
    sys.exit(0)
for d, dirs, files in os.walk(root):
    for p in [d] + [os.path.join(d, f) for f in files]:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            continue
        os.chown(p, -1, gid)
        mode = st.st_mode | stat.S_IRGRP | stat.S_IWGRP
        if st.st_mode & stat.S_IXUSR:
            mode |= stat.S_IXGRP
        if stat.S_ISDIR(st.st_mode):
            mode |= stat.S_ISGID | stat.S_IXGRP
        os.chmod(p, stat.S_IMODE(mode))
"#;

fn volume_mount(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(source.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        // A fresh volume, not pre-filled from the image as Docker would.
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container settings a pod's securityContext gives: `(user, groups, no new
/// privileges, capabilities dropped/added, read-only root)`. An error where the
/// kubelet would refuse to start the container.
pub fn security(
    pod: Option<&PodSecurityContext>,
    c: Option<&SecurityContext>,
    image_user: &str,
) -> Result<HostSecurity, String> {
    let uid = c
        .and_then(|c| c.run_as_user)
        .or_else(|| pod.and_then(|p| p.run_as_user));
    let gid = c
        .and_then(|c| c.run_as_group)
        .or_else(|| pod.and_then(|p| p.run_as_group));
    let non_root = c
        .and_then(|c| c.run_as_non_root)
        .or_else(|| pod.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let image_uid = image_user.split(':').next().unwrap_or("");
    if non_root {
        match uid {
            Some(0) => return Err("runAsNonRoot is set and runAsUser is 0".into()),
            None if image_uid.is_empty() || image_uid == "0" || image_uid == "root" => {
                return Err("container has runAsNonRoot and image will run as root".into())
            }
            None if image_uid.parse::<u32>().is_err() => {
                return Err(format!(
                    "container has runAsNonRoot and image has non-numeric user ({image_uid}), cannot verify user is non-root"
                ))
            }
            _ => {}
        }
    }
    let user = match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!(
            "{}:{g}",
            if image_uid.is_empty() { "0" } else { image_uid }
        )),
        (None, None) => None,
    };
    let mut groups: Vec<String> = Vec::new();
    if let Some(p) = pod {
        if let Some(g) = p.fs_group {
            groups.push(g.to_string());
        }
        for g in p.supplemental_groups.iter().flatten() {
            groups.push(g.to_string());
        }
    }
    let caps = c.and_then(|c| c.capabilities.as_ref());
    Ok(HostSecurity {
        user,
        groups,
        no_new_privileges: c.and_then(|c| c.allow_privilege_escalation) == Some(false),
        cap_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        cap_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        read_only_root: c.and_then(|c| c.read_only_root_filesystem) == Some(true),
        fs_group: pod.and_then(|p| p.fs_group),
        always_change: pod
            .and_then(|p| p.fs_group_change_policy.as_deref())
            .is_none_or(|p| p != "OnRootMismatch"),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSecurity {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub no_new_privileges: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub read_only_root: bool,
    pub fs_group: Option<i64>,
    pub always_change: bool,
}

/// Runs the pod's (single) container: volumes prepared, retried up to `retries`
/// times, killed at the timeout. Returns the last attempt's exit code.
pub fn run_pod(
    vols: &RunVolumes,
    p: &Prepared,
    mut on_line: impl FnMut(&str),
) -> Result<i64, String> {
    let rt = rt().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let engine = Engine::connect().await.map_err(|e| e.to_string())?;
        let mut last = 0;
        for attempt in 0..=p.retries {
            if attempt > 0 {
                on_line(&format!(
                    "nb2pipe: rehearsal: attempt {} of {} (retries: {})",
                    attempt + 1,
                    p.retries + 1,
                    p.retries
                ));
            }
            last = attempt_once(&engine, vols, p, attempt, &mut on_line).await?;
            if last == 0 {
                break;
            }
        }
        Ok(last)
    })
}

async fn attempt_once(
    engine: &Engine,
    vols: &RunVolumes,
    p: &Prepared,
    attempt: u32,
    on_line: &mut impl FnMut(&str),
) -> Result<i64, String> {
    let spec = p.pod.spec.as_ref().ok_or("no pod spec")?;
    let c = spec.containers.first().ok_or("no container")?;
    let image = c.image.clone().unwrap_or_default();
    let image_user = engine
        .docker
        .inspect_image(&image)
        .await
        .map_err(|e| format!("image {image} is not on this engine: {e}"))?
        .config
        .and_then(|c| c.user)
        .unwrap_or_default();
    let sec = security(
        spec.security_context.as_ref(),
        c.security_context.as_ref(),
        &image_user,
    )
    .map_err(|e| format!("the kubelet would not start this container: {e}"))?;

    // Volumes, by name.
    let mut fresh = Vec::new();
    let mut by_name: HashMap<String, (String, bool)> = HashMap::new(); // name → (source, is_bind)
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.persistent_volume_claim {
            let vol = vols.claims.get(&c.claim_name).cloned().unwrap_or_default();
            by_name.insert(v.name.clone(), (vol, false));
        } else if let Some(vol) = v
            .empty_dir
            .as_ref()
            .and_then(|_| vols.pod_volumes.get(&v.name))
        {
            by_name.insert(v.name.clone(), (vol.clone(), false));
        } else if v.empty_dir.is_some() {
            let vol = format!(
                "{}-{}-{attempt}-{}",
                vols_key(vols),
                p.task.replace('_', "-"),
                v.name
            );
            engine
                .docker
                .create_volume(VolumeCreateRequest {
                    name: Some(vol.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("creating emptyDir {}: {e}", v.name))?;
            fresh.push(vol.clone());
            by_name.insert(v.name.clone(), (vol, false));
        } else if v.secret.is_some() || v.config_map.is_some() {
            let dir = vols.scratch.join(&p.task).join(&v.name);
            write_secret_files(&dir, p.secret_files.get(&v.name))
                .map_err(|e| format!("secret volume {}: {e}", v.name))?;
            by_name.insert(v.name.clone(), (dir.to_string_lossy().into_owned(), true));
        }
    }
    // fsGroup ownership (and emptyDir's 0777), as the kubelet sets up volumes.
    for v in spec.volumes.iter().flatten() {
        let Some((src, false)) = by_name.get(&v.name).cloned() else {
            continue;
        };
        let world = v.empty_dir.is_some();
        if sec.fs_group.is_none() && !world {
            continue;
        }
        let gid = sec
            .fs_group
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-1".into());
        let script = format!(
            "import sys; sys.argv = ['x', '/v', '{gid}', '{}', '{}']\n{OWNERSHIP}",
            if sec.always_change { 1 } else { 0 },
            if world { 1 } else { 0 }
        );
        if gid == "-1" {
            // emptyDir without fsGroup: only the mode.
            helper(
                engine,
                &vols.helper_image,
                vec![volume_mount(&src, "/v", false)],
                "import os; os.chmod('/v', 0o777)",
            )
            .await?;
        } else {
            helper(
                engine,
                &vols.helper_image,
                vec![volume_mount(&src, "/v", false)],
                &script,
            )
            .await?;
        }
    }
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let (src, bind) = by_name
            .get(&m.name)
            .cloned()
            .ok_or_else(|| format!("volume mount {} has no volume", m.name))?;
        let ro = m.read_only == Some(true);
        mounts.push(if bind {
            Mount {
                target: Some(m.mount_path.clone()),
                source: Some(src),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }
        } else {
            volume_mount(&src, &m.mount_path, ro)
        });
    }
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let memory = limits
        .and_then(|l| l.get("memory"))
        .and_then(|q| kubelet::bytes(&q.0));
    let nano_cpus = limits
        .and_then(|l| l.get("cpu"))
        .and_then(|q| kubelet::nano_cpus(&q.0));
    let mut security_opt = Vec::new();
    if sec.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        user: sec.user.clone(),
        env: Some(p.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        entrypoint: p.command.clone(),
        cmd: p.args.clone(),
        working_dir: c.working_dir.clone(),
        labels: Some(HashMap::from([
            ("io.nb2pipe.rehearsal".to_string(), vols_key(vols)),
            ("io.nb2pipe.task".to_string(), p.task.clone()),
        ])),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            group_add: (!sec.groups.is_empty()).then(|| sec.groups.clone()),
            security_opt: (!security_opt.is_empty()).then_some(security_opt),
            cap_drop: (!sec.cap_drop.is_empty()).then(|| sec.cap_drop.clone()),
            cap_add: (!sec.cap_add.is_empty()).then(|| sec.cap_add.clone()),
            readonly_rootfs: Some(sec.read_only_root),
            memory,
            nano_cpus,
            network_mode: Some("host".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| format!("creating the container of {}: {e}", p.task))?
        .id;
    let result = async {
        engine
            .docker
            .start_container(&id, None)
            .await
            .map_err(|e| format!("starting the container of {}: {e}", p.task))?;
        let follow = async {
            engine.follow_logs(&id, on_line).await;
            engine.wait_exit(&id).await
        };
        match p.timeout_seconds {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), follow).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = engine
                        .docker
                        .kill_container(&id, None::<KillContainerOptions>)
                        .await;
                    on_line(&format!(
                        "nb2pipe: rehearsal: the task ran past its timeout ({t} s) and was killed"
                    ));
                    Ok(137)
                }
            },
            None => follow.await,
        }
    }
    .await;
    engine.remove_container(&id).await;
    for v in fresh {
        let _ = engine
            .docker
            .remove_volume(&v, Some(RemoveVolumeOptions { force: true }))
            .await;
    }
    result
}

fn vols_key(v: &RunVolumes) -> String {
    v.scratch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rehearsal".into())
}

/// A secret volume's files as the kubelet writes them: 0644 (defaultMode), in a
/// folder the container user can read.
fn write_secret_files(
    dir: &Path,
    files: Option<&std::collections::BTreeMap<String, Vec<u8>>>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for (k, v) in files.into_iter().flatten() {
        let p = dir.join(k);
        std::fs::write(&p, v)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// The Docker volume holding the run's data: the data claim's, or a Job pod's emptyDir.
fn data_volume(vols: &RunVolumes) -> Option<&String> {
    vols.data_claim
        .as_ref()
        .and_then(|c| vols.claims.get(c))
        .or_else(|| vols.pod_volumes.get(crate::emit::k8s::DATA_VOLUME))
}

/// A stopped root container of the helper image with `vol` at `at`, offline, for copying
/// files in or out of the volume.
async fn helper_container(
    engine: &Engine,
    vols: &RunVolumes,
    vol: &str,
    at: &str,
    read_only: bool,
    what: &str,
) -> Result<String> {
    let body = ContainerCreateBody {
        image: Some(vols.helper_image.clone()),
        user: Some("0:0".into()),
        host_config: Some(HostConfig {
            mounts: Some(vec![volume_mount(vol, at, read_only)]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .with_context(|| format!("creating the {what} container"))?
        .id)
}

/// Copies the data claim's content into `dir`.
pub fn export(vols: &RunVolumes, dir: &Path) -> Result<()> {
    // A Job's values are on its pod's emptyDir.
    let Some(vol) = data_volume(vols) else {
        return Ok(());
    };
    let rt = rt()?;
    let tar = rt.block_on(async {
        let engine = Engine::connect().await?;
        let id = helper_container(&engine, vols, vol, "/nb2pipe-export", true, "export").await?;
        let mut stream = engine.docker.download_from_container(
            &id,
            Some(DownloadFromContainerOptions {
                path: "/nb2pipe-export/.".into(),
            }),
        );
        let mut bytes = Vec::new();
        let mut err = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        engine.remove_container(&id).await;
        if let Some(e) = err {
            anyhow::bail!("copying the data volume out: {e}");
        }
        anyhow::Ok(bytes)
    })?;
    std::fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(tar.as_slice());
    archive.set_preserve_permissions(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // Entries are `./…`; nothing may land outside `dir`.
        let rel: PathBuf = path
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dir.join(&rel);
        if entry.header().entry_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if entry.header().entry_type().is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            entry.unpack(&target)?;
        }
    }
    Ok(())
}

/// The cache of the local data folder (`<dir>/.nb2pipe`) into the run's data volume
/// before any pod starts, so a rehearsal reuses what earlier runs recorded (and
/// [`export`] brings back what this one adds). The pods' fsGroup walk then owns it.
pub fn seed_cache(vols: &RunVolumes, dir: &Path) -> Result<()> {
    let cache = dir.join(".nb2pipe");
    let Some(vol) = data_volume(vols) else {
        return Ok(());
    };
    if !cache.is_dir() {
        return Ok(());
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".nb2pipe", &cache)
        .with_context(|| format!("reading {}", cache.display()))?;
    let bytes = tar.into_inner()?;
    rt()?.block_on(async {
        let engine = Engine::connect().await?;
        let id = helper_container(&engine, vols, vol, "/nb2pipe-seed", false, "seed").await?;
        let done = engine
            .docker
            .upload_to_container(
                &id,
                Some(bollard::query_parameters::UploadToContainerOptions {
                    path: "/nb2pipe-seed".into(),
                    ..Default::default()
                }),
                bollard::body_full(bytes.into()),
            )
            .await;
        engine.remove_container(&id).await;
        done.context("copying the cache into the data volume")
    })
}
