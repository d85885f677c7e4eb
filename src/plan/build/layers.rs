//! Settings: which layer wins, and whether the winning values are valid.
//!
//! Precedence, highest first. Pipeline keys: command line > profile > notebook
//! metadata > project file > built-in. Task keys: cell (tags over cell metadata) >
//! `tasks.NAME` > `defaults` > built-in, where `tasks.NAME` and `defaults` are each
//! merged command line > profile > notebook > project.

use std::collections::BTreeMap;
use std::path::Path;

use super::tasks::TaskDraft;
use super::BuildInput;
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;
use crate::plan::config::layer_from_json;
use crate::plan::settings::{
    DataLayer, Duration, PipelineLayer, SecretRef, SecretSpec, TaskLayer, Toleration,
    TolerationSpec,
};
use crate::plan::tags::{parse_secret, parse_toleration};
use crate::plan::values::*;
use crate::plan::{DataStore, PipelineSettings, Resources, TaskSettings};

/// The pipeline layers merged: command line > profile > notebook > project.
pub(super) fn merged_pipeline_layer(
    input: &BuildInput<'_>,
    diags: &mut Vec<Diagnostic>,
) -> PipelineLayer {
    let nb = input.notebook;
    let empty = PipelineLayer::default();
    let nb_layer: PipelineLayer = match &nb.settings {
        Some(v) => layer_from_json(v).unwrap_or_else(|e| {
            diags.push(Diagnostic::new(
                Code::InvalidSettings,
                &nb.path,
                format!("invalid notebook metadata `nb2pipe`: {e}"),
            ));
            PipelineLayer::default()
        }),
        None => PipelineLayer::default(),
    };
    let base = nb_layer.over(input.project.unwrap_or(&empty));
    let profile_layer = match &input.profile {
        Some(p) => profile_layer(&base, p, &nb.path, diags),
        None => PipelineLayer::default(),
    };
    input.cli.over(&profile_layer.over(&base))
}

fn profile_layer(
    base: &PipelineLayer,
    p: &str,
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) -> PipelineLayer {
    match base.profile.get(p) {
        Some(l) => l.clone(),
        None => {
            let known: Vec<&str> = base.profile.keys().map(String::as_str).collect();
            diags.push(
                Diagnostic::new(
                    Code::UnknownProfile,
                    path,
                    format!("no profile named `{p}`"),
                )
                .with_help(if known.is_empty() {
                    "no profiles are defined; add `[profile.NAME]` to nb2pipe.toml".to_string()
                } else {
                    format!("known profiles: {}", known.join(", "))
                }),
            );
            PipelineLayer::default()
        }
    }
}

/// The pipeline's name: the setting, else the notebook's stem made valid.
pub(super) fn pipeline_name(
    nb: &Notebook,
    merged: &PipelineLayer,
    diags: &mut Vec<Diagnostic>,
) -> String {
    let pipeline = merged
        .name
        .clone()
        .unwrap_or_else(|| sanitise_name(&nb.stem));
    if let Err(e) = check_task_name(&pipeline) {
        diags.push(
            Diagnostic::new(
                Code::InvalidName,
                &nb.path,
                format!("invalid pipeline name: {e}"),
            )
            .with_help(format!("try `{}`", sanitise_name(&pipeline))),
        );
    }
    pipeline
}

/// Python major.minor: the setting, else the notebook's kernel, else 3.11.
pub(super) fn python_version(nb: &Notebook, merged: &PipelineLayer) -> String {
    merged
        .python
        .clone()
        .or_else(|| {
            nb.python_version
                .as_ref()
                .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
        })
        .filter(|v| v.split('.').count() == 2 && v.split('.').all(|p| p.parse::<u32>().is_ok()))
        .unwrap_or_else(|| "3.11".into())
}

pub(super) fn resolve_task_layer(merged: &PipelineLayer, name: &str, d: &TaskDraft) -> TaskLayer {
    // `merged` already holds notebook over project; the profile's task and default
    // layers are laid on top in `merged_pipeline_layer` order (see the module doc).
    let named = merged.tasks.get(name).cloned().unwrap_or_default();
    let cell = d.cell_layer.over(&d.meta_layer);
    cell.over(&named.over(&merged.defaults))
}

pub(super) fn pipeline_settings(
    m: &PipelineLayer,
    pipeline: &str,
    python: &str,
    profile: Option<String>,
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) -> PipelineSettings {
    let mut bad = |msg: String| diags.push(Diagnostic::new(Code::InvalidSettings, path, msg));
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
    if let Err(e) = check_dns_label(&namespace, "namespace") {
        bad(e);
    }
    if let Some(r) = &m.registry {
        if let Err(e) = check_registry(r.trim_end_matches('/')) {
            bad(e);
        }
    }
    let base_image = m
        .base_image
        .clone()
        .unwrap_or_else(|| format!("python:{python}-slim"));
    if let Err(e) = check_image(&base_image) {
        bad(format!("base_image: {e}"));
    }
    if let Some(s) = &m.schedule {
        if let Err(e) = check_schedule(s) {
            bad(e);
        }
    }
    let start_date = m.start_date.clone().unwrap_or_else(|| "2024-01-01".into());
    if !is_date(&start_date) {
        bad(format!("start_date `{start_date}` is not YYYY-MM-DD"));
    }
    if let Some(sa) = &m.service_account {
        if let Err(e) = check_dns_subdomain(sa, "service account name") {
            bad(e);
        }
    }
    for s in &m.image_pull_secrets {
        if let Err(e) = check_dns_subdomain(s, "image pull secret name") {
            bad(e);
        }
    }
    for t in &m.tags {
        if t.is_empty() || t.len() > 100 {
            bad(format!("DAG tag `{t}` must be 1 to 100 characters"));
        }
    }
    check_pipeline_text(m, &mut bad);
    let data = data_store(&m.data, pipeline, &mut bad);
    PipelineSettings {
        profile,
        description: m.description.clone(),
        schedule: m.schedule.clone(),
        catchup: m.catchup.unwrap_or(false),
        start_date,
        max_active_runs: m.max_active_runs,
        namespace,
        registry: m
            .registry
            .clone()
            .map(|r| r.trim_end_matches('/').to_string()),
        base_image,
        service_account: m.service_account.clone(),
        image_pull_secrets: m.image_pull_secrets.clone(),
        tags: m.tags.clone(),
        data,
        startup_timeout_seconds: startup_timeout(m, &mut bad),
    }
}

/// Free-text pipeline settings reach every target: no control characters.
fn check_pipeline_text(m: &PipelineLayer, bad: &mut dyn FnMut(String)) {
    let d = &m.data;
    let texts = [
        ("description", &m.description),
        ("data.url", &d.url),
        ("data.storage_class", &d.storage_class),
        ("data.mount_path", &d.mount_path),
        ("data.endpoint", &d.endpoint),
        ("data.region", &d.region),
    ];
    for (what, v) in texts {
        if let Some(e) = v.as_deref().and_then(|v| check_text(v, what).err()) {
            bad(e);
        }
    }
    for t in &m.tags {
        if let Err(e) = check_text(t, "a DAG tag") {
            bad(e);
        }
    }
}

fn startup_timeout(m: &PipelineLayer, bad: &mut dyn FnMut(String)) -> u64 {
    match &m.startup_timeout {
        None => crate::plan::DEFAULT_STARTUP_TIMEOUT,
        Some(d) => match d {
            Duration::Seconds(s) => check_duration(*s),
            Duration::Text(t) => parse_duration(t),
        }
        .unwrap_or_else(|e| {
            bad(format!("startup_timeout: {e}"));
            crate::plan::DEFAULT_STARTUP_TIMEOUT
        }),
    }
}

/// Where values pass between tasks: an S3 prefix, else a volume (the default).
fn data_store(d: &DataLayer, pipeline: &str, bad: &mut dyn FnMut(String)) -> DataStore {
    match d.url.as_deref() {
        Some(u) if u.starts_with("s3://") => {
            if u.len() <= 5 || u.contains(['\n', '\r', ' ']) {
                bad(format!("data url `{u}` is not an s3://bucket/prefix URL"));
            }
            if let Some(s) = &d.secret {
                if let Err(e) = check_dns_subdomain(s, "Secret name") {
                    bad(e);
                }
            }
            DataStore::S3 {
                url: u.to_string(),
                endpoint: d.endpoint.clone(),
                secret: d.secret.clone(),
                region: d.region.clone(),
            }
        }
        other => {
            let claim = match other {
                Some(u) => match u.strip_prefix("pvc://") {
                    Some(c) => c.to_string(),
                    None => {
                        bad(format!("data url `{u}` must start with pvc:// or s3://"));
                        format!("{}-data", k8s_name(pipeline))
                    }
                },
                None => format!("{}-data", k8s_name(pipeline)),
            };
            if let Err(e) = check_dns_subdomain(&claim, "PersistentVolumeClaim name") {
                bad(e);
            }
            let size = d.size.clone().unwrap_or_else(|| "10Gi".into());
            if let Err(e) = check_quantity(&size) {
                bad(format!("data.size: {e}"));
            }
            let mount_path = d
                .mount_path
                .clone()
                .unwrap_or_else(|| "/nb2pipe/data".into());
            if !mount_path.starts_with('/') || mount_path.contains(['\n', '\r', ':']) {
                bad(format!(
                    "data.mount_path `{mount_path}` must be an absolute path"
                ));
            }
            DataStore::Volume {
                claim,
                size,
                storage_class: d.storage_class.clone(),
                // Decided with the edges when not set (see cluster.rs).
                access_mode: match d.access_mode.as_deref() {
                    None => String::new(),
                    Some(m @ ("ReadWriteMany" | "ReadWriteOnce" | "ReadWriteOncePod")) => m.into(),
                    Some(m) => {
                        bad(format!("data.access_mode `{m}` is not ReadWriteMany, ReadWriteOnce or ReadWriteOncePod"));
                        String::new()
                    }
                },
                mount_path,
                explicit: other.is_some(),
            }
        }
    }
}

/// `YYYY-MM-DD` in ASCII digits (a regex compiled per run cost more than the plan).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// A schedule nb2pipe can write for some engine (see [`crate::plan::schedule`]).
pub fn check_schedule(s: &str) -> Result<(), String> {
    crate::plan::schedule::Schedule::parse(s).map(|_| ())
}

/// A task's settings from its resolved layer; invalid values are diagnosed at the
/// task's first cell.
pub(super) fn task_settings(
    l: &TaskLayer,
    path: &Path,
    cell: usize,
    first_line: &str,
    diags: &mut Vec<Diagnostic>,
) -> TaskSettings {
    let mut bad = |msg: String| {
        diags.push(Diagnostic::new(Code::InvalidSettings, path, msg).at_cell(cell, first_line))
    };
    let resources = resources(l, &mut bad);
    let secrets = secrets(l, &mut bad);
    check_config_maps_and_env(l, &mut bad);
    let tolerations = tolerations(l, &mut bad);
    check_placement(l, &mut bad);
    let secs = |d: &Option<Duration>, what: &str, bad: &mut dyn FnMut(String)| -> Option<u64> {
        match d {
            None => None,
            Some(d) => match d {
                Duration::Seconds(s) => check_duration(*s),
                Duration::Text(t) => parse_duration(t),
            }
            .map_err(|e| bad(format!("{what}: {e}")))
            .ok(),
        }
    };
    let retry_delay_seconds = secs(&l.retry_delay, "retry_delay", &mut bad).unwrap_or(300);
    let timeout_seconds = secs(&l.timeout, "timeout", &mut bad);
    let image_pull_policy = l
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".into());
    if !matches!(
        image_pull_policy.as_str(),
        "Always" | "IfNotPresent" | "Never"
    ) {
        bad(format!(
            "image_pull_policy `{image_pull_policy}` is not Always, IfNotPresent or Never"
        ));
    }
    TaskSettings {
        resources,
        secrets,
        config_maps: l.config_maps.clone(),
        env: l.env.clone(),
        retries: l.retries.unwrap_or(0),
        retry_delay_seconds,
        retry_delay_set: l.retry_delay.is_some(),
        timeout_seconds,
        pool: l.pool.clone(),
        node_selector: l.node_selector.clone(),
        tolerations,
        affinity: l.affinity.clone(),
        labels: l.labels.clone(),
        annotations: l.annotations.clone(),
        cache: l.cache.unwrap_or(true),
        image_pull_policy,
        security: security(l, &mut bad),
        spark: spark(l, &mut bad),
    }
}

/// A Spark task's settings; `None` for a task that is not one (its `spark` settings, if
/// any came from `defaults`, are not used).
pub(super) fn spark(l: &TaskLayer, bad: &mut dyn FnMut(String)) -> Option<crate::plan::Spark> {
    let s = &l.spark;
    if s.enabled != Some(true) && s.mode.is_none() {
        return None;
    }
    let mut local = None;
    match s.mode.as_deref() {
        None | Some("cluster") => {}
        Some(m) => match check_spark_mode(m) {
            Ok(()) if m == "local" => local = Some("local[*]".to_string()),
            Ok(()) => local = Some(m.to_string()),
            Err(e) => bad(format!("spark.mode: {e}")),
        },
    }
    let version = s
        .version
        .clone()
        .unwrap_or_else(|| crate::plan::DEFAULT_SPARK_VERSION.into());
    if let Err(e) = check_spark_version(&version) {
        bad(format!("spark.version: {e}"));
    }
    if let Some(img) = &s.image {
        if let Err(e) = check_image(img) {
            bad(format!("spark.image: {e}"));
        }
    }
    let mut size = |v: &Option<String>, what: &str| -> Option<String> {
        let v = v.as_ref()?;
        match check_jvm_size(v) {
            Ok(()) => Some(v.clone()),
            Err(e) => {
                bad(format!("spark.{what}: {e}"));
                None
            }
        }
    };
    let driver_memory = size(&s.driver_memory, "driver_memory");
    let driver_overhead = size(&s.driver_memory_overhead, "driver_memory_overhead");
    let executor_memory = size(&s.executor_memory, "executor_memory");
    let executor_overhead = size(&s.executor_memory_overhead, "executor_memory_overhead");
    let mut count = |v: Option<u32>, what: &str, dflt: u32| match v {
        Some(0) => {
            bad(format!("spark.{what}: must be 1 or more"));
            dflt
        }
        Some(n) if n > i32::MAX as u32 => {
            bad(format!("spark.{what}: {n} is too large"));
            dflt
        }
        Some(n) => n,
        None => dflt,
    };
    let driver_cores = count(s.driver_cores, "driver_cores", 1);
    let executor_cores = count(s.executor_cores, "executor_cores", 1);
    let executor_instances = count(s.executor_instances, "executor_instances", 2);
    for (k, v) in &s.conf {
        if let Err(e) = check_spark_conf(k, v) {
            bad(format!("spark.conf: {e}"));
        }
    }
    Some(crate::plan::Spark {
        local,
        version,
        image: s.image.clone(),
        driver: crate::plan::SparkPod {
            cores: driver_cores,
            memory: driver_memory.unwrap_or_else(|| "1g".into()),
            memory_overhead: driver_overhead,
        },
        executor: crate::plan::SparkPod {
            cores: executor_cores,
            memory: executor_memory.unwrap_or_else(|| "1g".into()),
            memory_overhead: executor_overhead,
        },
        executor_instances,
        conf: s.conf.clone(),
    })
}

/// Requests from cpu/memory/ephemeral-storage/gpu; limits default to the requests.
fn resources(l: &TaskLayer, bad: &mut dyn FnMut(String)) -> Resources {
    let mut requests = BTreeMap::new();
    for (key, v) in [
        ("cpu", &l.cpu),
        ("memory", &l.memory),
        ("ephemeral-storage", &l.ephemeral_storage),
    ] {
        if let Some(v) = v {
            match check_quantity(v) {
                Ok(()) => {
                    requests.insert(key.to_string(), v.clone());
                }
                Err(e) => bad(format!("{key}: {e}")),
            }
        }
    }
    if let Some(g) = &l.gpu {
        match check_count(g) {
            Ok(_) => {
                requests.insert("nvidia.com/gpu".to_string(), g.clone());
            }
            Err(e) => bad(format!("gpu: {e}")),
        }
    }
    let mut limits = requests.clone();
    for (k, v) in &l.limits {
        let k = if k == "gpu" {
            "nvidia.com/gpu"
        } else {
            k.as_str()
        };
        match check_label_key(k).and_then(|()| check_quantity(v)) {
            Ok(()) => {
                limits.insert(k.to_string(), v.clone());
            }
            Err(e) => bad(format!("limits: {e}")),
        }
    }
    // Without requests a pod is BestEffort: first evicted, and refused where a
    // namespace has a ResourceQuota. Built-in requests only; limits stay as asked.
    for (key, v) in DEFAULT_REQUESTS {
        requests
            .entry(key.to_string())
            .or_insert_with(|| v.to_string());
    }
    Resources { requests, limits }
}

/// Requests of a task that asks for none (`defaults.cpu` / `defaults.memory` change them).
pub const DEFAULT_REQUESTS: [(&str, &str); 2] = [("cpu", "100m"), ("memory", "256Mi")];

/// The pod's user, group and fsGroup (non-root, as Pod Security "restricted" demands).
fn security(l: &TaskLayer, bad: &mut dyn FnMut(String)) -> crate::plan::Security {
    let d = crate::plan::Security::default();
    let id = |v: Option<i64>, what: &str, dflt: i64, bad: &mut dyn FnMut(String)| match v {
        Some(x) if !(1..=2_147_483_647).contains(&x) => {
            bad(format!(
                "{what} {x}: must be a non-root id from 1 to 2147483647"
            ));
            dflt
        }
        Some(x) => x,
        None => dflt,
    };
    crate::plan::Security {
        run_as_user: id(l.run_as_user, "run_as_user", d.run_as_user, bad),
        run_as_group: id(l.run_as_group, "run_as_group", d.run_as_group, bad),
        fs_group: id(l.fs_group, "fs_group", d.fs_group, bad),
        read_only_root_filesystem: l.read_only_root_filesystem.unwrap_or(false),
    }
}

/// The task's secrets, valid and distinct, in the order given.
fn secrets(l: &TaskLayer, bad: &mut dyn FnMut(String)) -> Vec<SecretRef> {
    let mut secrets = Vec::new();
    for s in &l.secrets {
        let r = match s {
            SecretSpec::Text(t) => parse_secret(t),
            SecretSpec::Full(r) => check_dns_subdomain(&r.name, "Secret name")
                .and_then(|()| r.env.as_deref().map(check_env_name).unwrap_or(Ok(())))
                .and_then(|()| match (&r.key, &r.env) {
                    (Some(_), None) | (None, Some(_)) => Err(format!(
                        "secret `{}`: give both `key` and `env`, or neither",
                        r.name
                    )),
                    _ => Ok(()),
                })
                .map(|()| r.clone()),
        };
        match r {
            Ok(r) if !secrets.contains(&r) => secrets.push(r),
            Ok(_) => {}
            Err(e) => bad(e),
        }
    }
    secrets
}

fn check_config_maps_and_env(l: &TaskLayer, bad: &mut dyn FnMut(String)) {
    for c in &l.config_maps {
        if let Err(e) = check_dns_subdomain(c, "ConfigMap name") {
            bad(e);
        }
    }
    for (k, v) in &l.env {
        if let Err(e) = check_env_name(k) {
            bad(e);
        }
        if let Err(e) = check_text(v, &format!("env `{k}`")) {
            bad(e);
        }
        if k.starts_with("NB2PIPE_") {
            bad(format!(
                "env `{k}`: names starting with NB2PIPE_ are reserved for nb2pipe"
            ));
        }
    }
}

fn tolerations(l: &TaskLayer, bad: &mut dyn FnMut(String)) -> Vec<Toleration> {
    let mut tolerations = Vec::new();
    for t in &l.tolerations {
        match t {
            TolerationSpec::Text(s) => match parse_toleration(s) {
                Ok(t) => tolerations.push(t),
                Err(e) => bad(e),
            },
            TolerationSpec::Full(t) => {
                let texts = [
                    Some(&t.key),
                    Some(&t.operator),
                    t.value.as_ref(),
                    t.effect.as_ref(),
                ];
                match texts
                    .into_iter()
                    .flatten()
                    .find_map(|v| check_text(v, "a toleration").err())
                {
                    Some(e) => bad(e),
                    None => tolerations.push(t.clone()),
                }
            }
        }
    }
    tolerations
}

/// Node selector, labels, annotations, pool and image: checked, used as given.
fn check_placement(l: &TaskLayer, bad: &mut dyn FnMut(String)) {
    for (k, v) in &l.node_selector {
        if let Err(e) = check_label_key(k).and_then(|()| check_label_value(v)) {
            bad(format!("node_selector: {e}"));
        }
    }
    for (k, v) in &l.labels {
        if let Err(e) = check_label_key(k).and_then(|()| check_label_value(v)) {
            bad(format!("labels: {e}"));
        }
    }
    for (k, v) in &l.annotations {
        if let Err(e) = check_label_key(k).and_then(|()| check_text(v, &format!("`{k}`"))) {
            bad(format!("annotations: {e}"));
        }
    }
    if let Some(a) = &l.affinity {
        if let Err(e) = check_json(a) {
            bad(format!("affinity: {e}"));
        }
    }
    if let Some(p) = &l.pool {
        if let Err(e) = check_pool(p) {
            bad(e);
        }
    }
    if let Some(img) = &l.image {
        if let Err(e) = check_image(img) {
            bad(e);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_dates() {
        for ok in ["2024-01-01", "1999-12-31"] {
            assert!(super::is_date(ok), "{ok}");
        }
        for bad in [
            "2024-1-01",
            "2024/01/01",
            "2024-01-011",
            "",
            "٢٠٢٤-01-01",
            "2024-01-0a",
        ] {
            assert!(!super::is_date(bad), "{bad}");
        }
    }
}
