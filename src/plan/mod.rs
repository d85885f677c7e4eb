//! The plan: the pipeline IR that every emitter and consumer reads, serialised as
//! `plan.json` (format in docs/plan-format.md). [`build::build`] makes every decision.

pub mod build;
pub mod config;
pub mod files;
pub mod schedule;
pub mod settings;
pub mod tags;
pub mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use build::{build, BuildInput};
pub use settings::{SecretRef, Toleration};

/// Bumped when plan.json changes incompatibly.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: u32,
    /// Pipeline name: DAG id, Workflow name, image prefix.
    pub pipeline: String,
    /// The notebook's file name.
    pub notebook: String,
    /// Python major.minor the tasks run with.
    pub python: String,
    pub settings: PipelineSettings,
    pub parameters: Vec<Parameter>,
    pub tasks: Vec<Task>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Cron expression or preset (`@daily`); `None`: run on demand.
    pub schedule: Option<String>,
    pub catchup: bool,
    /// `YYYY-MM-DD`, UTC.
    pub start_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    pub base_image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    pub image_pull_secrets: Vec<String>,
    pub tags: Vec<String>,
    pub data: DataStore,
    /// How long a pod may wait to start (image pull, node scale-up) before the
    /// orchestrator gives up (Airflow's `startup_timeout_seconds`).
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout_seconds: u64,
}

fn default_access_mode() -> String {
    "ReadWriteMany".into()
}

/// GPU and autoscaled nodes take minutes to appear; Airflow's own 120 s is too short.
pub const DEFAULT_STARTUP_TIMEOUT: u64 = 600;

fn default_startup_timeout() -> u64 {
    DEFAULT_STARTUP_TIMEOUT
}

/// Where passed values live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataStore {
    /// A PersistentVolumeClaim mounted in every task.
    Volume {
        claim: String,
        size: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        storage_class: Option<String>,
        /// `ReadWriteMany` when tasks may run at once, else `ReadWriteOnce` (or as set).
        #[serde(default = "default_access_mode")]
        access_mode: String,
        mount_path: String,
        /// `data.url` names the claim (the default claim is implied): the Job target
        /// passes values on it rather than on the pod's own emptyDir.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        explicit: bool,
    },
    /// S3-compatible object storage.
    S3 {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Parameter {
    pub name: String,
    /// `int`, `float`, `str`, `bool`, `list`, `dict`, `null`.
    #[serde(rename = "type")]
    pub ty: String,
    pub default: serde_json::Value,
    pub cell: usize,
    pub line: usize,
    /// The notebook's value looked like a credential (NB040), so it is not in the plan:
    /// `default` is `""` and `ty` is `str`; the value is given at run time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    /// As tagged (`load_data`): Airflow task id, script folder.
    pub name: String,
    /// Kubernetes-safe form (`load-data`): pod, template and step names.
    pub k8s_name: String,
    /// Cells whose code this task runs, in order.
    pub cells: Vec<usize>,
    /// Values loaded before the task's code, and which task produces each.
    pub inputs: Vec<Input>,
    /// Values saved after the task's code for downstream tasks.
    pub outputs: Vec<String>,
    /// Outputs the task received and may change in place (docs/running.md): later tasks
    /// receive them from this task, not from the one that bound them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Pipeline parameters the task reads.
    pub parameters: Vec<String>,
    /// Prelude statements (`imports`/`functions` cells) the task runs first, and the
    /// settings (with their imports) replayed from earlier tasks' cells.
    pub prelude: Vec<StmtRef>,
    /// Top-level modules the task's code (and its prelude) imports.
    pub imports: Vec<String>,
    /// Lines of the task's requirements.txt.
    pub requirements: Vec<Requirement>,
    /// Distributions of `try: import x / except ImportError` imports, not installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_requirements: Vec<Requirement>,
    /// Project modules the task imports (directly or through each other), to copy into
    /// its image: paths relative to the notebook's folder (`utils.py`, `mypkg`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_modules: Vec<String>,
    /// Files next to the notebook that the task's code opens by a literal relative path
    /// (docs/images.md): they travel with the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<DataFile>,
    pub metrics: bool,
    /// The global random generators' states carried from task to task, as the one
    /// kernel would have advanced them (`None`: nothing before or in this task seeds
    /// them, or no other task follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_state: Option<RandomCarry>,
    pub settings: TaskSettings,
    pub image: Image,
    /// Whether the task's results may be reused, and its static cache key.
    #[serde(default)]
    pub cache: TaskCache,
    /// The task's code, split into chunks (not in plan.json; see emit::task_code).
    #[serde(skip)]
    pub code: Vec<Chunk>,
    /// Project files copied into the task's folder: its local modules and the data
    /// files small enough for the image (not in plan.json; see [`files`]).
    #[serde(skip)]
    pub copies: Vec<FileCopy>,
}

/// A task's cache decision (docs/running.md, "Caching"). The runtime finishes `key`
/// with the parameter values the task reads and the digests of the values it receives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TaskCache {
    pub enabled: bool,
    /// Why the task is never served from the cache (`cache:false`, the clock...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// sha256 hex of the ingredients (`None` when not enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingredients: Vec<CacheIngredient>,
}

/// One ingredient of a static cache key: what it is and its digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheIngredient {
    /// `runtime`, `code`, `requirements`, `environment`, `env`, `module`, `file`.
    pub kind: String,
    pub name: String,
    pub sha256: String,
}

/// Where a task's global random states come from and go to (docs/running.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RandomCarry {
    /// The task whose states this task restores before its own cells (`None`: the first
    /// seeded task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The task that restores the states this task saves at its end (`None`: the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// How many chunks of the task's code run before the restore (not in plan.json).
    #[serde(skip)]
    pub restore_at: usize,
}

/// A data file the task's code opens, relative to the notebook's folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DataFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Too big for the image: the runtime copies it from the data store's
    /// `<pipeline>/files/<path>`, where it must be staged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staged: bool,
}

/// One file of the project copied into the task's folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileCopy {
    /// Where it is read from.
    pub from: std::path::PathBuf,
    /// Where it goes, relative to `tasks/<task>/` (`modules/utils.py`, `files/data.csv`).
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    pub name: String,
    pub from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct StmtRef {
    pub cell: usize,
    pub line: usize,
}

/// One line of a task's requirements.txt and where it came from (docs/dependencies.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Requirement {
    /// The requirement line as written to requirements.txt (`scikit-learn==1.5.1`).
    pub line: String,
    /// The distribution (`scikit-learn`).
    #[serde(default)]
    pub name: String,
    /// What in the task asks for it (`import sklearn.ensemble`, `%pip install in cell 2`).
    pub source: String,
    /// How the module became this distribution (`mapping table: sklearn → scikit-learn`,
    /// `installed in .venv`, `module name`, `%pip install`, `to load values from task X`).
    #[serde(default)]
    pub name_source: String,
    /// Where the version came from (`requirements.txt`, `../uv.lock`, `installed in .venv`,
    /// `%pip install`, `unpinned`).
    #[serde(default)]
    pub pin_source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// The full reference the pipeline runs.
    pub reference: String,
    /// `true`: the reference is used as it is, nothing is built (an `image:` setting is
    /// built on, see `base`, so no task is prebuilt today).
    pub prebuilt: bool,
    /// The `image:` setting the task's image is built `FROM` (`None`: the pipeline's
    /// `base_image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Hash of everything that goes into the task's image (`None` when prebuilt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Resources {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskSettings {
    pub resources: Resources,
    pub secrets: Vec<SecretRef>,
    pub config_maps: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub retries: u32,
    pub retry_delay_seconds: u64,
    /// The delay was set (tag, project file or profile), not the default: only then do
    /// targets that cannot wait between retries say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_delay_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub cache: bool,
    pub image_pull_policy: String,
    /// User, group and fsGroup of the pod; read-only root file system.
    #[serde(default)]
    pub security: Security,
    /// A Spark task (the `spark` tag): how its driver and executors run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark: Option<Spark>,
}

/// Spark defaults (docs/settings.md): Spark's own for driver and executor sizes.
pub const DEFAULT_SPARK_VERSION: &str = "3.5.3";

/// How a Spark task runs (docs/targets.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Spark {
    /// `None`: a SparkApplication (driver and executor pods); `Some(master)`: Spark
    /// inside the task's own pod, `local[N]` or `local[*]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    pub version: String,
    /// The image the task's image is built from (`None`: the pipeline's base image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub driver: SparkPod,
    pub executor: SparkPod,
    pub executor_instances: u32,
    /// `spark-conf:` entries, by key.
    pub conf: BTreeMap<String, String>,
}

/// The size of a Spark driver or executor (Spark's size format: `1g`, `512m`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SparkPod {
    pub cores: u32,
    pub memory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_overhead: Option<String>,
}

/// The pod's securityContext settings (the rest of Pod Security "restricted" is fixed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: i64,
    pub run_as_group: i64,
    pub fs_group: i64,
    #[serde(default)]
    pub read_only_root_filesystem: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            run_as_user: 10001,
            run_as_group: 10001,
            fs_group: 10001,
            read_only_root_filesystem: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// Values handed over on this edge (empty for a pure `after:` edge).
    pub values: Vec<String>,
    /// Declared with `after:` / `prev:`.
    pub explicit: bool,
}

/// One piece of a task's code.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    pub cell: usize,
    /// 1-based line in the cell where `python` starts.
    pub first_line: usize,
    pub python: String,
    /// IPython escapes in `python` (byte ranges relative to it).
    pub escapes: Vec<crate::analysis::Escape>,
    pub magic: Option<crate::analysis::CellMagic>,
    /// `%%time` / `%%capture` around `magic` (`%%capture` then `%%sh`).
    pub wrapper: Option<crate::analysis::CellMagic>,
    /// The cell's raw body for non-Python cell magics (`%%bash`, `%%writefile`).
    pub raw_body: String,
    pub prelude: bool,
    /// Not valid Python: left out with a comment.
    pub syntax_error: bool,
    /// String literals passed as call arguments in `python` (the analysis's
    /// [`crate::analysis::StmtFacts::call_literals`]), for the data files it opens.
    pub call_literals: Vec<String>,
}

impl Plan {
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Upstream task names of `name`, in plan order.
    pub fn upstream(&self, name: &str) -> Vec<&str> {
        let mut up: Vec<&str> = self
            .edges
            .iter()
            .filter(|e| e.to == name)
            .map(|e| e.from.as_str())
            .collect();
        up.sort_by_key(|n| self.tasks.iter().position(|t| t.name == *n));
        up.dedup();
        up
    }

    pub fn to_json(&self) -> String {
        // A few kB a task.
        crate::fs::json_text(self, 8192 * (self.tasks.len() + 1))
    }
}
