//! The cluster rehearsal (`nb2pipe run NB --docker --target T`): every task runs from
//! the pod that target would create, on the real Docker Engine, the way the kubelet
//! would start it. There is no Kubernetes API server here, so the kubelet's part is
//! emulated (documented in docs/running.md):
//!
//! - the pod is the target's own ([`engines::emitted_pod`]), after the engine's
//!   substitutions (run id, parameters);
//! - env and envFrom are resolved as the kubelet does ([`resolve_env`]): Secrets and
//!   ConfigMaps from `--secrets DIR/<name>/<key>` files, else the caller's environment;
//!   `$(VAR)` expanded in env, command and args ([`kubelet::expand`]);
//! - the securityContext's user, group and fsGroup, no new privileges, dropped
//!   capabilities and read-only root become the container's settings; runAsNonRoot is
//!   checked;
//! - the data claim is a fresh, root-owned Docker volume (as a provisioner makes it),
//!   made group-writable for fsGroup the way the kubelet's volume ownership does;
//!   emptyDir a fresh 0777 volume; a secret or config map volume its files, 0644,
//!   read-only;
//! - memory and CPU limits, retries and the task timeout.
//!
//! What it does not emulate: scheduling (node selectors, tolerations, affinity),
//! pod networking (containers use the host's network, so a store on 127.0.0.1 is
//! reachable), image pull secrets, and service accounts.

pub mod docker;
pub mod engines;
pub mod kubelet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Container, Pod as K8sPod};

pub use engines::{EngineRun, Target};

use crate::plan::Plan;

/// Where Secret and ConfigMap values come from.
#[derive(Debug, Clone)]
pub enum Values {
    /// `DIR/<name>/<key>` files (the layout of `kubectl create secret --from-file`).
    Dir(PathBuf),
    /// The caller's environment: a key is taken from the variable of the same name.
    Environment(BTreeMap<String, String>),
}

impl Values {
    /// The keys of Secret/ConfigMap `name` (`None`: not found).
    fn object(
        &self,
        name: &str,
        known_keys: &[String],
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        match self {
            Values::Dir(dir) => {
                let d = dir.join(name);
                if !d.is_dir() {
                    return Ok(None);
                }
                let mut out = BTreeMap::new();
                for e in
                    std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?
                {
                    let e = e?;
                    let key = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_file() && !key.starts_with('.') {
                        out.insert(key, std::fs::read(e.path())?);
                    }
                }
                Ok(Some(out))
            }
            Values::Environment(env) => Ok(Some(
                known_keys
                    .iter()
                    .filter_map(|k| env.get(k).map(|v| (k.clone(), v.clone().into_bytes())))
                    .collect(),
            )),
        }
    }
}

/// One task's container as the rehearsal starts it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub task: String,
    /// The pod after the engine's substitutions (what a cluster would be sent).
    pub pod: K8sPod,
    /// The container's final environment, in order.
    pub env: Vec<(String, String)>,
    /// Command and args after `$(VAR)` expansion.
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// Secret (or ConfigMap) volume name → its files.
    pub secret_files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub retries: u32,
    pub timeout_seconds: Option<u64>,
}

/// The pods of a whole run, ready to start.
pub struct Rehearsal {
    pub target: Target,
    pub run: EngineRun,
    pub tasks: Vec<Prepared>,
}

/// Keys the plan knows for each Secret (for values taken from the environment).
fn known_keys(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = crate::emit::k8s::secret_keys(plan)
        .into_iter()
        .map(|(name, (keys, _))| (name, keys.into_iter().collect()))
        .collect();
    if let crate::plan::DataStore::S3 {
        secret: Some(s), ..
    } = &plan.settings.data
    {
        out.entry(s.clone())
            .or_default()
            .push("AWS_SESSION_TOKEN".into());
    }
    out
}

/// Every task's pod for `target`, substituted and resolved.
pub fn prepare(
    plan: &Plan,
    target: Target,
    overrides: &serde_json::Map<String, serde_json::Value>,
    values: &Values,
) -> Result<Rehearsal> {
    let run = EngineRun::new(target, plan, overrides);
    let keys = known_keys(plan);
    let mut tasks = Vec::new();
    for t in &plan.tasks {
        let (pod, notes) = engines::emitted_pod(target, plan, t);
        if let Some(n) = notes.iter().find(|n| n.error) {
            bail!("task `{}`: {}", t.name, n.message);
        }
        let pod = engines::substitute_in(target, Some(plan), t, &pod, &run)?;
        let spec = pod.spec.as_ref().context("a pod has a spec")?;
        let c = spec.containers.first().context("a pod has a container")?;
        let mut env = resolve_env_in(c, &pod.metadata, values, &keys)
            .with_context(|| format!("task `{}`", t.name))?;
        // A SparkApplication's driver is rehearsed in its image, in local mode.
        let submit = crate::emit::spark::SUBMIT_ARGS_ENV;
        if let Some(args) = crate::emit::spark::run_submit_args(t) {
            if !env.iter().any(|(k, _)| k == submit) {
                env.push((submit.to_string(), args));
            }
        }
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let expand = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|a| a.iter().map(|s| kubelet::expand(s, &vars)).collect())
        };
        let mut secret_files = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            let source = match (&v.secret, &v.config_map) {
                (Some(s), _) => s.secret_name.clone().unwrap_or_default(),
                (None, Some(c)) => c.name.clone(),
                _ => continue,
            };
            let files = values
                .object(&source, keys.get(&source).map(Vec::as_slice).unwrap_or(&[]))?
                .with_context(|| missing(&source, values, &t.name))?;
            secret_files.insert(v.name.clone(), files);
        }
        tasks.push(Prepared {
            task: t.name.clone(),
            command: expand(&c.command),
            args: expand(&c.args),
            env,
            secret_files,
            // A Job retries its whole pod, and its deadline is the pod's: one attempt
            // of each container is rehearsed (docs/running.md).
            retries: if target.one_pod() {
                0
            } else {
                t.settings.retries
            },
            timeout_seconds: if target.one_pod() {
                None
            } else {
                t.settings.timeout_seconds
            },
            pod,
        });
    }
    Ok(Rehearsal { target, run, tasks })
}

fn missing(name: &str, values: &Values, task: &str) -> String {
    match values {
        Values::Dir(d) => format!(
            "task `{task}` needs Secret or ConfigMap `{name}`: no folder {} (one file per key)",
            d.join(name).display()
        ),
        Values::Environment(_) => format!("task `{task}` needs `{name}`"),
    }
}

/// The container's environment as the kubelet makes it: envFrom sources first, then
/// env in order, each value expanded against the variables defined before it; a later
/// name replaces an earlier one.
pub fn resolve_env(
    c: &Container,
    values: &Values,
    keys: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(String, String)>> {
    resolve_env_in(c, &Default::default(), values, keys)
}

/// [`resolve_env`] in a pod with `meta` (for the downward API's `fieldRef`).
pub fn resolve_env_in(
    c: &Container,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    values: &Values,
    keys: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    };
    for f in c.env_from.iter().flatten() {
        let (name, optional) = match (&f.secret_ref, &f.config_map_ref) {
            (Some(s), _) => (s.name.clone(), s.optional == Some(true)),
            (None, Some(c)) => (c.name.clone(), c.optional == Some(true)),
            _ => continue,
        };
        let no_keys = Vec::new();
        match values.object(&name, keys.get(&name).unwrap_or(&no_keys))? {
            Some(obj) => {
                for (k, v) in obj {
                    let key = format!("{}{k}", f.prefix.clone().unwrap_or_default());
                    set(&mut out, key, String::from_utf8_lossy(&v).into_owned());
                }
            }
            None if optional => {}
            None => bail!("{}", missing(&name, values, "this")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => {
                let vars: BTreeMap<String, String> = out.iter().cloned().collect();
                kubelet::expand(v, &vars)
            }
            (None, Some(from)) if from.field_ref.is_some() => {
                let path = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                match path {
                    Some("metadata.uid") => meta.uid.clone(),
                    Some("metadata.name") => meta.name.clone(),
                    Some("metadata.namespace") => meta.namespace.clone(),
                    _ => None,
                }
                .with_context(|| {
                    format!(
                        "env `{}`: the rehearsal knows no value for fieldRef {}",
                        e.name,
                        path.unwrap_or_default()
                    )
                })?
            }
            (None, Some(from)) => {
                let Some(sk) = &from.secret_key_ref else {
                    bail!("env `{}`: only secretKeyRef sources are rehearsed", e.name);
                };
                let got = match values {
                    Values::Dir(_) => values
                        .object(&sk.name, &[])?
                        .and_then(|o| o.get(&sk.key).cloned()),
                    // From the environment: the variable the pod would get.
                    Values::Environment(env) => env.get(&e.name).map(|v| v.clone().into_bytes()),
                };
                match got {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if sk.optional == Some(true) => continue,
                    None => bail!(
                        "env `{}` needs key `{}` of Secret `{}`: {}",
                        e.name,
                        sk.key,
                        sk.name,
                        match values {
                            Values::Dir(d) =>
                                format!("no file {}", d.join(&sk.name).join(&sk.key).display()),
                            Values::Environment(_) => format!(
                                "`{}` is not set in this environment (or give --secrets DIR)",
                                e.name
                            ),
                        }
                    ),
                }
            }
            (None, None) => String::new(),
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// The store folder of a run id, as the runtime names it.
pub fn safe_run_id(run_id: &str) -> String {
    run_id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `prepared` on the engine (retries, timeout), its output lines to `on_line`.
pub fn run_task(
    volumes: &docker::RunVolumes,
    prepared: &Prepared,
    on_line: impl FnMut(&str),
) -> Result<i64, String> {
    docker::run_pod(volumes, prepared, on_line)
}

/// Copies what the run left on the data volume into `dir` (as a local run leaves it).
pub fn export_data(volumes: &docker::RunVolumes, dir: &Path) -> Result<()> {
    docker::export(volumes, dir)
}

#[cfg(test)]
mod tests;
