//! The Docker Engine API through bollard. Only calls that Podman's Docker-compatible
//! socket also serves are used: ping, /build (classic builder), image inspect, push,
//! image export, containers. Digests come from the push stream, with the image's
//! RepoDigests as the fallback.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptions, LogsOptions, PushImageOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::auth::{self, Lookup};
use super::BuildError;

/// The runtime's switch to the shared working directory on the data store
/// (templates/task/nb2pipe_runtime.py): every pod, and every `run --docker` container,
/// gets `NB2PIPE_WORKDIR=store`.
pub const WORKDIR_ENV: &str = "NB2PIPE_WORKDIR";
pub const WORKDIR_STORE: &str = "store";

/// A connected engine, and how it was reached (for messages).
pub struct Engine {
    pub docker: Docker,
    pub endpoint: String,
}

/// `DOCKER_HOST=…` when set, else the default socket.
pub fn endpoint_description() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => format!("DOCKER_HOST={h}"),
        _ => "the socket /var/run/docker.sock (DOCKER_HOST is not set)".to_string(),
    }
}

impl Engine {
    /// Connects (honouring DOCKER_HOST: unix:// and tcp://) and pings, within 10 s.
    pub async fn connect() -> Result<Engine, BuildError> {
        let endpoint = endpoint_description();
        let unreachable = |why: String| BuildError::Unreachable {
            endpoint: endpoint.clone(),
            why,
        };
        let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
            Ok(Ok(_)) => Ok(Engine { docker, endpoint }),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable("no answer within 10 s".into())),
        }
    }

    /// Connects unless `engine` is the oci one (`Ok(None)`).
    pub async fn connect_if(
        engine: Option<crate::cli::BuildEngine>,
    ) -> Result<Option<Engine>, BuildError> {
        match engine {
            Some(crate::cli::BuildEngine::Oci) => Ok(None),
            _ => Engine::connect().await.map(Some),
        }
    }

    /// Streams container `id`'s output, line by line, to `on_line` until it ends.
    pub async fn follow_logs(&self, id: &str, on_line: &mut impl FnMut(&str)) {
        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut pending = String::new();
        while let Some(chunk) = logs.next().await {
            let Ok(chunk) = chunk else { break };
            pending.push_str(&chunk.to_string());
            while let Some(i) = pending.find('\n') {
                on_line(&pending[..i]);
                pending.drain(..=i);
            }
        }
        if !pending.is_empty() {
            on_line(&pending);
        }
    }

    /// Container `id`'s exit code, once it has stopped.
    pub async fn wait_exit(&self, id: &str) -> Result<i64, String> {
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        let mut code = 0;
        while let Some(r) = wait.next().await {
            match r {
                Ok(w) => code = w.status_code,
                // A non-zero exit arrives as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(format!("waiting for the container: {e}")),
            }
        }
        Ok(code)
    }

    /// Removes container `id` and its anonymous volumes, running or not.
    pub async fn remove_container(&self, id: &str) {
        let _ = self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
    }

    pub async fn image_exists(&self, reference: &str) -> bool {
        self.docker.inspect_image(reference).await.is_ok()
    }

    /// Builds `tar` as `tag`, streaming the log to `log` and each output line to
    /// `on_line`. Returns the image id.
    pub async fn build(
        &self,
        tag: &str,
        tar: Vec<u8>,
        platform: Option<&str>,
        no_cache: bool,
        log: &mut std::fs::File,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), String> {
        let mut opts = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .nocache(no_cache);
        if let Some(p) = platform {
            opts = opts.platform(p);
        }
        let mut stream =
            self.docker
                .build_image(opts.build(), None, Some(bollard::body_full(tar.into())));
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream.as_deref().or(info.status.as_deref()) {
                        let s = super::pip::strip_ansi(s);
                        let _ = log.write_all(s.as_bytes());
                        if !s.ends_with('\n') {
                            let _ = log.write_all(b"\n");
                        }
                        for line in s.lines().filter(|l| !l.trim().is_empty()) {
                            on_line(line);
                        }
                    }
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        let _ = writeln!(log, "{e}");
                        failure = Some(e);
                    }
                }
                Err(e) => {
                    let msg = match e {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        e => e.to_string(),
                    };
                    let _ = writeln!(log, "{msg}");
                    failure = Some(msg);
                    break;
                }
            }
        }
        let _ = log.flush();
        match failure {
            Some(f) => Err(f),
            None if self.image_exists(tag).await => Ok(()),
            None => Err(format!(
                "the engine reported no error but {tag} does not exist"
            )),
        }
    }

    /// Pushes `tag` and returns its manifest digest (`sha256:…`).
    pub async fn push(&self, tag: &str, creds: &Lookup) -> Result<String, BuildError> {
        let repo = super::images::repository(tag);
        let tag_part = tag[repo.len()..].trim_start_matches(':');
        let credentials = creds
            .credentials
            .as_ref()
            .map(|c| match c.identity_token() {
                Some(token) => DockerCredentials {
                    identitytoken: Some(token.to_string()),
                    serveraddress: Some(creds.registry.clone()),
                    ..Default::default()
                },
                None => DockerCredentials {
                    username: Some(c.username.clone()),
                    password: Some(c.secret.clone()),
                    serveraddress: Some(creds.registry.clone()),
                    ..Default::default()
                },
            });
        let opts = PushImageOptions {
            tag: Some(tag_part.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.push_image(repo, Some(opts), credentials);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let msg = match item {
                Ok(info) => {
                    if let Some(s) = info.status.as_deref() {
                        if let Some(d) = digest_in_status(s) {
                            digest = Some(d);
                        }
                    }
                    match info.error_detail.and_then(|d| d.message) {
                        Some(m) => m,
                        None => continue,
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => error,
                Err(e) => e.to_string(),
            };
            return Err(push_error(tag, creds, msg));
        }
        if let Some(d) = digest {
            return Ok(d);
        }
        let inspect = self
            .docker
            .inspect_image(tag)
            .await
            .map_err(|e| BuildError::Push {
                image: tag.into(),
                why: e.to_string(),
            })?;
        inspect
            .repo_digests
            .unwrap_or_default()
            .iter()
            .find_map(|rd| rd.strip_prefix(&format!("{repo}@")).map(str::to_string))
            .ok_or_else(|| BuildError::Push {
                image: tag.into(),
                why: "the engine reported no digest".into(),
            })
    }

    /// The image as `docker save` writes it (a tar of its config, manifest and layers).
    pub async fn export(&self, reference: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut s = self.docker.export_image(reference);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}

fn push_error(tag: &str, creds: &Lookup, msg: String) -> BuildError {
    let lower = msg.to_ascii_lowercase();
    if [
        "unauthorized",
        "authentication required",
        "no basic auth",
        "denied",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        BuildError::Auth {
            registry: auth::registry_of(tag),
            lookup: creds.describe(),
            why: msg,
        }
    } else {
        BuildError::Push {
            image: tag.into(),
            why: msg,
        }
    }
}

/// `abc123: digest: sha256:… size: 1234` → `sha256:…`.
fn digest_in_status(s: &str) -> Option<String> {
    let i = s.find("digest: sha256:")?;
    let d = s[i + "digest: ".len()..].split_whitespace().next()?;
    (d.len() == "sha256:".len() + 64).then(|| d.to_string())
}

/// One task run in its image: what the Engine needs to know.
pub struct TaskContainer<'a> {
    pub image: &'a str,
    pub pipeline: &'a str,
    pub task: &'a str,
    pub run_id: &'a str,
    /// The data store on this machine, bind-mounted at /nb2pipe-data.
    pub data_dir: &'a Path,
    /// NB2PIPE_PARAMS (JSON), if any.
    pub params: Option<&'a str>,
    /// Extra environment (`KEY=VALUE`).
    pub env: Vec<String>,
}

/// Runs one task's container to completion: its output lines go to `on_line`, the
/// container is removed afterwards. Returns the exit code. The container runs as the
/// owner of the data folder so that the files it writes there are that user's.
pub async fn run_task_container(
    engine: &Engine,
    spec: &TaskContainer<'_>,
    mut on_line: impl FnMut(&str),
) -> Result<i64, String> {
    use std::os::unix::fs::MetadataExt;
    let data = std::fs::canonicalize(spec.data_dir)
        .map_err(|e| format!("data folder {}: {e}", spec.data_dir.display()))?;
    let meta = std::fs::metadata(&data).map_err(|e| e.to_string())?;
    let mut env = vec![
        "NB2PIPE_DATA=/nb2pipe-data".to_string(),
        // As in a pod: the run's tasks share one working directory on the data store.
        format!("{WORKDIR_ENV}={WORKDIR_STORE}"),
        format!("NB2PIPE_RUN_ID={}", spec.run_id),
        format!("NB2PIPE_PIPELINE={}", spec.pipeline),
        format!("NB2PIPE_TASK={}", spec.task),
    ];
    if let Some(p) = spec.params {
        env.push(format!("NB2PIPE_PARAMS={p}"));
    }
    env.extend(spec.env.iter().cloned());
    let body = ContainerCreateBody {
        image: Some(spec.image.to_string()),
        env: Some(env),
        user: Some(format!("{}:{}", meta.uid(), meta.gid())),
        labels: Some(HashMap::from([
            ("io.nb2pipe.run-id".to_string(), spec.run_id.to_string()),
            ("io.nb2pipe.task".to_string(), spec.task.to_string()),
        ])),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/nb2pipe-data", data.display())]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| format!("creating the container of {}: {e}", spec.task))?;
    let id = created.id;
    let result = async {
        engine
            .docker
            .start_container(&id, None)
            .await
            .map_err(|e| format!("starting the container of {}: {e}", spec.task))?;
        engine.follow_logs(&id, &mut on_line).await;
        engine
            .wait_exit(&id)
            .await
            .map_err(|e| format!("{}: {e}", spec.task))
    }
    .await;
    engine.remove_container(&id).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_push_status() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_in_status(&format!("abc: digest: {d} size: 1570")),
            Some(d)
        );
        assert_eq!(digest_in_status("Pushed"), None);
    }
}
