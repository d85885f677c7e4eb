//! The Spark operator's `SparkApplication` (sparkoperator.k8s.io/v1beta2, kubeflow
//! spark-operator v2) for a Spark task in cluster mode. It is built from the task's typed
//! pod (each target's `pod_for`), so the driver and the executors get the same env,
//! secrets, volumes, scheduling and securityContext as any other task of that target.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, PodSecurityContext, SecurityContext, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::emit::k8s::{self, Ctx, Pod};
use crate::plan::{Plan, Spark, SparkPod, Task};

pub const API_VERSION: &str = "sparkoperator.k8s.io/v1beta2";
pub const KIND: &str = "SparkApplication";

/// Where the task's image has its entry point (the same file the plain pod runs).
pub fn main_application_file() -> String {
    format!("local://{}", k8s::COMMAND[1])
}

/// The states of `status.applicationState.state` that end a SparkApplication.
pub const STATE_COMPLETED: &str = "COMPLETED";
pub const STATES_FAILED: [&str; 2] = ["FAILED", "SUBMISSION_FAILED"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SparkApplication {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: SparkApplicationSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SparkApplicationSpec {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub python_version: &'static str,
    pub mode: &'static str,
    pub image: String,
    pub image_pull_policy: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    pub main_application_file: String,
    pub spark_version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spark_conf: BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    pub driver: Role,
    pub executor: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    #[serde(rename = "type")]
    pub ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure_retry_interval: Option<u64>,
}

/// The driver's or the executors' pods.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub cores: u32,
    pub memory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_overhead: Option<String>,
    /// Executors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Driver only: it creates the executor pods, so it needs a service account that may.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

/// Names of a SparkApplication: the operator derives `<name>-ui-svc` (a 63-character
/// DNS label) from it, and a per-run generated name adds 6 more.
pub const NAME_MAX_SPARK: usize = 50;

/// The SparkApplication's name: the pipeline and task, within [`NAME_MAX_SPARK`].
pub fn name(ctx: &mut Ctx<'_>, task: &Task) -> String {
    let full = format!("{}-{}", k8s::pipeline_k8s(ctx.plan), task.k8s_name);
    ctx.fit(
        Some(&task.name),
        "SparkApplication name",
        &full,
        NAME_MAX_SPARK,
    )
}

/// `task`'s SparkApplication from its pod; `name` may hold the target's own expression
/// for a per-run name.
pub fn application(
    ctx: &mut Ctx<'_>,
    task: &Task,
    spark: &Spark,
    pod: Pod,
    name: String,
) -> SparkApplication {
    let plan = ctx.plan;
    let ts = &task.settings;
    let c = pod.container;
    if ts.timeout_seconds.is_some() {
        ctx.cannot(
            Some(&task.name),
            "timeout: a SparkApplication has no deadline; the orchestrator's own is used where it has one",
        );
    }
    let sized: Vec<String> = ts
        .resources
        .requests
        .iter()
        .filter(|(k, v)| !crate::plan::build::DEFAULT_REQUESTS.contains(&(k.as_str(), v.as_str())))
        .map(|(k, v)| format!("{k} {v}"))
        .chain(
            ts.resources
                .limits
                .iter()
                .map(|(k, v)| format!("limit {k} {v}")),
        )
        .collect();
    if !sized.is_empty() {
        ctx.cannot(
            Some(&task.name),
            format!(
                "{} not used: a SparkApplication's driver and executor pods are sized by the Spark settings (spark-driver-cores, spark-driver-memory, spark-executor-cores, spark-executor-memory, ...)",
                sized.join(", ")
            ),
        );
    }
    for (k, v) in &spark.conf {
        ctx.user(Some(&task.name), &format!("spark conf `{k}`"), v);
    }
    let role = |size: &SparkPod, instances: Option<u32>, service_account: Option<String>| Role {
        cores: size.cores,
        memory: size.memory.clone(),
        memory_overhead: size.memory_overhead.clone(),
        instances,
        labels: pod.labels.clone(),
        annotations: pod.annotations.clone(),
        env: c.env.clone().unwrap_or_default(),
        env_from: c.env_from.clone().unwrap_or_default(),
        volume_mounts: c.volume_mounts.clone().unwrap_or_default(),
        node_selector: pod.node_selector.clone(),
        tolerations: pod.tolerations.clone(),
        affinity: pod.affinity.clone(),
        security_context: c.security_context.clone(),
        pod_security_context: Some(pod.security_context.clone()),
        service_account,
    };
    let driver = role(&spark.driver, None, plan.settings.service_account.clone());
    let executor = role(&spark.executor, Some(spark.executor_instances), None);
    SparkApplication {
        api_version: API_VERSION,
        kind: KIND,
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(plan.settings.namespace.clone()),
            labels: Some(k8s::own_labels(plan, Some(task))),
            ..Default::default()
        },
        spec: SparkApplicationSpec {
            ty: "Python",
            python_version: "3",
            mode: "cluster",
            image: c.image.clone().unwrap_or_default(),
            image_pull_policy: c
                .image_pull_policy
                .clone()
                .unwrap_or_else(|| ts.image_pull_policy.clone()),
            image_pull_secrets: plan.settings.image_pull_secrets.clone(),
            main_application_file: main_application_file(),
            spark_version: spark.version.clone(),
            spark_conf: spark.conf.clone(),
            restart_policy: if ts.retries > 0 {
                RestartPolicy {
                    ty: "OnFailure",
                    on_failure_retries: Some(ts.retries),
                    on_failure_retry_interval: Some(ts.retry_delay_seconds),
                }
            } else {
                RestartPolicy {
                    ty: "Never",
                    on_failure_retries: None,
                    on_failure_retry_interval: None,
                }
            },
            volumes: pod.volumes,
            driver,
            executor,
        },
    }
}

pub const SCHEDULED_KIND: &str = "ScheduledSparkApplication";
/// The operator names each scheduled run `<name>-<unix nanoseconds>` (20 characters
/// more), and derives `<run>-ui-svc` from that (a 63-character DNS label).
pub const NAME_MAX_SCHEDULED: usize = 36;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSparkApplication {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: ScheduledSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSpec {
    pub schedule: String,
    pub time_zone: String,
    pub concurrency_policy: &'static str,
    pub successful_run_history_limit: i32,
    pub failed_run_history_limit: i32,
    pub template: SparkApplicationSpec,
}

/// The one task of a scheduled pipeline that is a single cluster-mode Spark task: the
/// Job target makes it a ScheduledSparkApplication (the operator's own scheduler).
pub fn scheduled_application(plan: &Plan) -> Option<(&Task, &Spark, String)> {
    let cron = plan.settings.schedule.as_deref().and_then(k8s::cron)?;
    match plan.tasks.as_slice() {
        [t] => cluster(t).map(|s| (t, s, cron)),
        _ => None,
    }
}

/// A task that runs as a SparkApplication (cluster mode), with its Spark settings.
pub fn cluster(task: &Task) -> Option<&Spark> {
    task.settings.spark.as_ref().filter(|s| s.local.is_none())
}

/// Targets that create a SparkApplication for a cluster-mode task.
pub const OPERATOR_TARGETS: [&str; 2] = ["airflow", "argo"];

/// The Spark arguments of `task`'s own pod: a local-mode task's, or, on a target that
/// cannot create a SparkApplication, a cluster-mode task's as `local[*]` (NB302).
pub fn pod_submit_args(ctx: &mut Ctx<'_>, task: &Task) -> Option<String> {
    let spark = task.settings.spark.as_ref()?;
    if spark.local.is_some() {
        return local_submit_args(spark);
    }
    if OPERATOR_TARGETS.contains(&ctx.target)
        || (ctx.target == "job" && scheduled_application(ctx.plan).is_some())
    {
        return None;
    }
    ctx.cannot(
        Some(&task.name),
        format!(
            "spark: {} cannot create a SparkApplication; the task runs Spark in local mode (`local[*]`) inside its own pod, without executors (tag it `spark:local` to say so)",
            ctx.target
        ),
    );
    let local = Spark {
        local: Some("local[*]".into()),
        ..spark.clone()
    };
    local_submit_args(&local)
}

/// `nb2pipe run` and the cluster rehearsal run a Spark task's driver in local mode: its
/// own master, or `local[*]` for a cluster-mode task (there are no executors to ask for).
pub fn run_submit_args(task: &Task) -> Option<String> {
    let spark = task.settings.spark.as_ref()?;
    local_submit_args(&Spark {
        local: Some(spark.local.clone().unwrap_or_else(|| "local[*]".into())),
        ..spark.clone()
    })
}

/// Read by PySpark when the task's code starts its own JVM (local mode).
pub const SUBMIT_ARGS_ENV: &str = "PYSPARK_SUBMIT_ARGS";

/// A local-mode task's `PYSPARK_SUBMIT_ARGS`: its master, driver memory and conf, so
/// `SparkSession.builder.getOrCreate()` in the task's code gets them (`None` in cluster
/// mode, where the operator's spark-submit starts the driver).
pub fn local_submit_args(spark: &Spark) -> Option<String> {
    let master = spark.local.as_deref()?;
    let mut args = vec![
        "--master".to_string(),
        master.to_string(),
        "--driver-memory".to_string(),
        spark.driver.memory.clone(),
    ];
    for (k, v) in &spark.conf {
        args.push("--conf".into());
        args.push(format!("{k}={v}"));
    }
    args.push("pyspark-shell".into());
    // The plan refuses control characters, so quoting cannot fail.
    Some(shlex::try_join(args.iter().map(String::as_str)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_submit_args_quote_conf_values() {
        let mut conf = BTreeMap::new();
        conf.insert("spark.app.name".to_string(), "it's mine".to_string());
        let size = SparkPod {
            cores: 1,
            memory: "2g".into(),
            memory_overhead: None,
        };
        let mut spark = Spark {
            local: Some("local[2]".into()),
            version: "3.5.3".into(),
            image: None,
            driver: size.clone(),
            executor: size,
            executor_instances: 2,
            conf,
        };
        let args = local_submit_args(&spark).unwrap();
        assert_eq!(
            shlex::split(&args).unwrap(),
            [
                "--master",
                "local[2]",
                "--driver-memory",
                "2g",
                "--conf",
                "spark.app.name=it's mine",
                "pyspark-shell"
            ]
        );
        spark.local = None;
        assert_eq!(local_submit_args(&spark), None);
    }
}
