//! Settings: the structured schema shared by cell metadata, notebook metadata,
//! `nb2pipe.toml` / `[tool.nb2pipe]` and the command line, and how layers merge.
//!
//! A layer has every field optional; [`TaskLayer::over`] lays a higher-precedence layer
//! over a lower one (maps merge key by key, lists are unioned, scalars are replaced).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Task-level settings as written by a user (tags are turned into this too).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskLayer {
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpu: Option<String>,
    pub ephemeral_storage: Option<String>,
    /// Limits by resource name (`cpu`, `memory`, `nvidia.com/gpu`, ...).
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    #[serde(default)]
    pub config_maps: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub image: Option<String>,
    pub retries: Option<u32>,
    pub retry_delay: Option<Duration>,
    pub timeout: Option<Duration>,
    pub pool: Option<String>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<TolerationSpec>,
    pub affinity: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cache: Option<bool>,
    pub image_pull_policy: Option<String>,
    /// The pod's securityContext (defaults: user, group and fsGroup 10001).
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub fs_group: Option<i64>,
    pub read_only_root_filesystem: Option<bool>,
    /// Which imports of the `imports`/`functions` cells a task runs (default: all).
    pub imports: Option<ImportsMode>,
    /// Spark: what makes a task a Spark task and how its driver and executors run.
    #[serde(default)]
    pub spark: SparkLayer,
}

/// `all`: every import of the prelude cells before the task, as the kernel ran them
/// (imports register accessors and plugins); `used`: only those whose names the task
/// (or a prelude statement it runs) reads.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ImportsMode {
    All,
    Used,
}

/// Spark settings of a task (docs/settings.md); every field optional, merged key by key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparkLayer {
    /// `true`: a Spark task (the `spark` tag).
    pub enabled: Option<bool>,
    /// `cluster` (a SparkApplication), `local` or `local[N]` (Spark inside the task's pod).
    pub mode: Option<String>,
    pub version: Option<String>,
    /// The image the Spark task's image is built from.
    pub image: Option<String>,
    pub driver_cores: Option<u32>,
    pub driver_memory: Option<String>,
    pub driver_memory_overhead: Option<String>,
    pub executor_instances: Option<u32>,
    pub executor_cores: Option<u32>,
    pub executor_memory: Option<String>,
    pub executor_memory_overhead: Option<String>,
    #[serde(default)]
    pub conf: BTreeMap<String, String>,
}

impl SparkLayer {
    fn over(&self, low: &SparkLayer) -> SparkLayer {
        let s = |h: &Option<String>, l: &Option<String>| h.clone().or_else(|| l.clone());
        SparkLayer {
            enabled: self.enabled.or(low.enabled),
            mode: s(&self.mode, &low.mode),
            version: s(&self.version, &low.version),
            image: s(&self.image, &low.image),
            driver_cores: self.driver_cores.or(low.driver_cores),
            driver_memory: s(&self.driver_memory, &low.driver_memory),
            driver_memory_overhead: s(&self.driver_memory_overhead, &low.driver_memory_overhead),
            executor_instances: self.executor_instances.or(low.executor_instances),
            executor_cores: self.executor_cores.or(low.executor_cores),
            executor_memory: s(&self.executor_memory, &low.executor_memory),
            executor_memory_overhead: s(
                &self.executor_memory_overhead,
                &low.executor_memory_overhead,
            ),
            conf: merge_map(&low.conf, &self.conf),
        }
    }
}

/// A duration as seconds or as text (`30m`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

/// `"NAME"`, `"NAME:KEY:ENV"`, or a table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SecretSpec {
    Text(String),
    Full(SecretRef),
}

/// A reference to a Kubernetes Secret: all keys as env vars (`envFrom`), one key as one
/// env var, or the secret mounted as files. Never a value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

/// `"KEY=VALUE:EFFECT"`, `"KEY:EFFECT"` (exists), or a table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TolerationSpec {
    Text(String),
    Full(Toleration),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    pub key: String,
    #[serde(default = "equal")]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

fn equal() -> String {
    "Equal".into()
}

fn union<T: PartialEq + Clone>(low: &[T], high: &[T]) -> Vec<T> {
    let mut out = low.to_vec();
    for h in high {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

fn merge_map(
    low: &BTreeMap<String, String>,
    high: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = low.clone();
    out.extend(high.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

impl TaskLayer {
    /// `self` (higher precedence) laid over `low`.
    pub fn over(&self, low: &TaskLayer) -> TaskLayer {
        TaskLayer {
            cpu: self.cpu.clone().or_else(|| low.cpu.clone()),
            memory: self.memory.clone().or_else(|| low.memory.clone()),
            gpu: self.gpu.clone().or_else(|| low.gpu.clone()),
            ephemeral_storage: self
                .ephemeral_storage
                .clone()
                .or_else(|| low.ephemeral_storage.clone()),
            limits: merge_map(&low.limits, &self.limits),
            secrets: union(&low.secrets, &self.secrets),
            config_maps: union(&low.config_maps, &self.config_maps),
            env: merge_map(&low.env, &self.env),
            image: self.image.clone().or_else(|| low.image.clone()),
            retries: self.retries.or(low.retries),
            retry_delay: self.retry_delay.clone().or_else(|| low.retry_delay.clone()),
            timeout: self.timeout.clone().or_else(|| low.timeout.clone()),
            pool: self.pool.clone().or_else(|| low.pool.clone()),
            node_selector: merge_map(&low.node_selector, &self.node_selector),
            tolerations: union(&low.tolerations, &self.tolerations),
            affinity: self.affinity.clone().or_else(|| low.affinity.clone()),
            labels: merge_map(&low.labels, &self.labels),
            annotations: merge_map(&low.annotations, &self.annotations),
            cache: self.cache.or(low.cache),
            image_pull_policy: self
                .image_pull_policy
                .clone()
                .or_else(|| low.image_pull_policy.clone()),
            run_as_user: self.run_as_user.or(low.run_as_user),
            run_as_group: self.run_as_group.or(low.run_as_group),
            fs_group: self.fs_group.or(low.fs_group),
            read_only_root_filesystem: self
                .read_only_root_filesystem
                .or(low.read_only_root_filesystem),
            imports: self.imports.or(low.imports),
            spark: self.spark.over(&low.spark),
        }
    }
}

/// Where the values passed between tasks live.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataLayer {
    /// `pvc://CLAIM` (a PersistentVolumeClaim) or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// Size of the claim nb2pipe emits for `pvc://`.
    pub size: Option<String>,
    pub storage_class: Option<String>,
    /// `ReadWriteMany` (default), `ReadWriteOnce` or `ReadWriteOncePod`.
    pub access_mode: Option<String>,
    /// Where the claim is mounted in every task.
    pub mount_path: Option<String>,
    /// S3-compatible endpoint (MinIO, Ceph...).
    pub endpoint: Option<String>,
    /// Secret holding `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` for `s3://`.
    pub secret: Option<String>,
    pub region: Option<String>,
}

impl DataLayer {
    fn over(&self, low: &DataLayer) -> DataLayer {
        DataLayer {
            url: self.url.clone().or_else(|| low.url.clone()),
            size: self.size.clone().or_else(|| low.size.clone()),
            access_mode: self.access_mode.clone().or_else(|| low.access_mode.clone()),
            storage_class: self
                .storage_class
                .clone()
                .or_else(|| low.storage_class.clone()),
            mount_path: self.mount_path.clone().or_else(|| low.mount_path.clone()),
            endpoint: self.endpoint.clone().or_else(|| low.endpoint.clone()),
            secret: self.secret.clone().or_else(|| low.secret.clone()),
            region: self.region.clone().or_else(|| low.region.clone()),
        }
    }
}

/// Pipeline-level settings: notebook metadata, project file, profiles, command line.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineLayer {
    pub name: Option<String>,
    pub description: Option<String>,
    pub schedule: Option<String>,
    pub catchup: Option<bool>,
    pub start_date: Option<String>,
    pub max_active_runs: Option<u32>,
    /// How long a pod may take to start (`10m`, or seconds).
    pub startup_timeout: Option<Duration>,
    pub namespace: Option<String>,
    pub registry: Option<String>,
    pub base_image: Option<String>,
    pub python: Option<String>,
    pub service_account: Option<String>,
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub data: DataLayer,
    /// Output folder of `convert` (relative to the notebook's folder).
    pub output: Option<String>,
    /// Tags of other tools to ignore instead of reporting.
    #[serde(default)]
    pub allow_tags: Vec<String>,
    /// Settings every task starts from.
    #[serde(default)]
    pub defaults: TaskLayer,
    /// Settings for named tasks.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskLayer>,
    /// Named profiles (`--profile prod`): a pipeline layer over everything but the CLI.
    #[serde(default)]
    pub profile: BTreeMap<String, PipelineLayer>,
}

impl PipelineLayer {
    /// `self` (higher precedence) laid over `low`; profiles are merged by name.
    pub fn over(&self, low: &PipelineLayer) -> PipelineLayer {
        let mut tasks = low.tasks.clone();
        for (k, v) in &self.tasks {
            let merged = match tasks.get(k) {
                Some(l) => v.over(l),
                None => v.clone(),
            };
            tasks.insert(k.clone(), merged);
        }
        let mut profile = low.profile.clone();
        for (k, v) in &self.profile {
            let merged = match profile.get(k) {
                Some(l) => v.over(l),
                None => v.clone(),
            };
            profile.insert(k.clone(), merged);
        }
        PipelineLayer {
            name: self.name.clone().or_else(|| low.name.clone()),
            description: self.description.clone().or_else(|| low.description.clone()),
            schedule: self.schedule.clone().or_else(|| low.schedule.clone()),
            catchup: self.catchup.or(low.catchup),
            start_date: self.start_date.clone().or_else(|| low.start_date.clone()),
            max_active_runs: self.max_active_runs.or(low.max_active_runs),
            startup_timeout: self
                .startup_timeout
                .clone()
                .or_else(|| low.startup_timeout.clone()),
            namespace: self.namespace.clone().or_else(|| low.namespace.clone()),
            registry: self.registry.clone().or_else(|| low.registry.clone()),
            base_image: self.base_image.clone().or_else(|| low.base_image.clone()),
            python: self.python.clone().or_else(|| low.python.clone()),
            service_account: self
                .service_account
                .clone()
                .or_else(|| low.service_account.clone()),
            image_pull_secrets: union(&low.image_pull_secrets, &self.image_pull_secrets),
            tags: union(&low.tags, &self.tags),
            data: self.data.over(&low.data),
            output: self.output.clone().or_else(|| low.output.clone()),
            allow_tags: union(&low.allow_tags, &self.allow_tags),
            defaults: self.defaults.over(&low.defaults),
            tasks,
            profile,
        }
    }
}
