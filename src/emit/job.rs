//! Plain Kubernetes: `job/<pipeline>.yaml`, one `batch/v1` Job per pipeline run
//! (`generateName`, to `kubectl create`), or a CronJob (a fixed name, to `kubectl
//! apply`) when the pipeline is scheduled. The whole pipeline is one pod: every task but
//! the last is an init container, in topological order, the last the main container;
//! each keeps its own image, resources, env, secrets and securityContext.
//!
//! Values pass on the pod's own emptyDir (sized by the largest ephemeral-storage
//! limit) unless `data.url` names a claim or an S3 store. The run id is the pod's UID
//! (downward API). Pod-level settings that differ between tasks are merged
//! ([`merge`]): maps and tolerations unioned, the first task's value kept (NB302) where
//! two tasks disagree.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job as K8sJob, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, EnvVarSource, ObjectFieldSelector, Pod as K8sPod, PodSpec,
    PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::k8s::{self, Ctx, EnvSpec, Subst};
use super::{Bundle, EmitContext, Emitter};
use crate::plan::{DataStore, Plan, Task};

pub struct Job;

/// The downward API field the run id is read from: every container of the pod sees
/// the same UID, and a retry (a new pod) is a new run.
pub const RUN_ID_FIELD: &str = "metadata.uid";

/// A Job's name becomes its pods' `job-name` label (63 characters); the API server
/// appends 5 characters to `generateName`.
pub const NAME_MAX: usize = k8s::NAME_MAX - 6;
/// The CronJob controller appends `-<minutes>` (11 characters) for each Job.
pub const CRON_NAME_MAX: usize = 52;
/// A finished Job (and its pod, with the logs) is deleted after a week.
pub const TTL_AFTER_FINISHED: i32 = 7 * 86_400;
/// A scheduled run that cannot start within 10 minutes of its time is skipped, not
/// started late (and the controller never stops at 100 missed schedules).
pub const STARTING_DEADLINE: i64 = 600;
/// Finished Jobs a CronJob keeps (the controller deletes older ones).
pub const SUCCESSFUL_HISTORY: i32 = 3;
pub const FAILED_HISTORY: i32 = 3;
pub const TIME_ZONE: &str = "Etc/UTC";

/// The order the tasks run in: topological, the earliest task in the plan first among
/// those ready (what `nb2pipe run --jobs 1` does too).
pub fn order(plan: &Plan) -> Vec<usize> {
    let n = plan.tasks.len();
    let ups: Vec<Vec<usize>> = plan
        .tasks
        .iter()
        .map(|t| {
            plan.upstream(&t.name)
                .iter()
                .filter_map(|u| plan.tasks.iter().position(|x| x.name == *u))
                .collect()
        })
        .collect();
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // The plan has no cycles (NB0xx); a cycle here would only append the rest.
        let next = (0..n)
            .find(|&i| !done[i] && ups[i].iter().all(|&u| done[u]))
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        out.push(i);
    }
    out
}

/// The container name of a task (a DNS label).
pub fn container_name(t: &Task) -> String {
    k8s::fit(&t.k8s_name, k8s::NAME_MAX)
}

/// Whether values pass on the pod's own emptyDir (no claim named, no S3).
pub fn uses_empty_dir(plan: &Plan) -> bool {
    matches!(
        plan.settings.data,
        DataStore::Volume {
            explicit: false,
            ..
        }
    )
}

/// The emptyDir's size limit: the largest ephemeral-storage limit of a task (the pod's
/// effective limit, since init containers run one at a time); none when no task sets one.
pub fn empty_dir_size(plan: &Plan) -> Option<Quantity> {
    plan.tasks
        .iter()
        .filter_map(|t| t.settings.resources.limits.get("ephemeral-storage"))
        .filter_map(|q| Some((crate::rehearse::kubelet::bytes(q)?, q)))
        .max_by_key(|(b, _)| *b)
        .map(|(_, q)| Quantity(q.clone()))
}

/// One task's container and pod settings, before they are merged into the Job's pod:
/// parameters as their defaults (a Job has no parameters; edit the env to change one),
/// the run id from the pod's UID, the data volume mounted.
pub fn pod_for(c: &mut Ctx<'_>, t: &Task) -> k8s::Pod {
    let name = container_name(t);
    let spec = EnvSpec {
        run_id: "",
        params: t
            .parameters
            .iter()
            .map(|p| {
                let v = c
                    .plan
                    .parameters
                    .iter()
                    .find(|x| &x.name == p)
                    .map(k8s::param_text)
                    .unwrap_or_default();
                (p.clone(), k8s::k8s_env_escape(&v))
            })
            .collect(),
        mount_data: !uses_empty_dir(c.plan),
        container_name: &name,
        extra_env: Vec::new(),
    };
    let mut pod = k8s::pod(c, t, &spec);
    for e in pod.container.env.iter_mut().flatten() {
        if e.name == "NB2PIPE_RUN_ID" {
            e.value = None;
            e.value_from = Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: RUN_ID_FIELD.to_string(),
                    api_version: None,
                }),
                ..Default::default()
            });
        }
    }
    if let (true, DataStore::Volume { mount_path, .. }) =
        (uses_empty_dir(c.plan), &c.plan.settings.data)
    {
        pod.volumes.push(Volume {
            name: k8s::DATA_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: empty_dir_size(c.plan),
            }),
            ..Default::default()
        });
        pod.container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: k8s::DATA_VOLUME.to_string(),
                mount_path: mount_path.clone(),
                ..Default::default()
            });
    }
    pod
}

/// The Job's one pod: every task's container in [`order`], the pod-level settings
/// merged. The rehearsal runs its containers one after the other.
pub fn pod(c: &mut Ctx<'_>) -> K8sPod {
    let plan = c.plan;
    let pods: Vec<(&Task, k8s::Pod)> = order(plan)
        .into_iter()
        .map(|i| {
            let t = &plan.tasks[i];
            (t, pod_for(c, t))
        })
        .collect();
    merge(c, pods)
}

/// Names a task's secret volumes apart from another task's (each task numbers its own).
fn own_volume(pos: usize, name: &str) -> String {
    if name.starts_with("nb2pipe-secret-") {
        format!("t{pos}-{name}")
    } else {
        name.to_string()
    }
}

/// One pod from the tasks' pods (see the module docs for each rule).
fn merge(c: &mut Ctx<'_>, pods: Vec<(&Task, k8s::Pod)>) -> K8sPod {
    let plan = c.plan;
    let mut containers = Vec::new();
    let mut volumes: Vec<Volume> = Vec::new();
    let mut labels = k8s::own_labels(plan, None);
    let mut annotations = BTreeMap::new();
    let mut node_selector = BTreeMap::new();
    let mut tolerations = Vec::new();
    let mut affinity: Option<(String, k8s_openapi::api::core::v1::Affinity)> = None;
    let mut security: Option<(String, k8s_openapi::api::core::v1::PodSecurityContext)> = None;
    let mut timeouts = Some(0u64);
    for (pos, (t, p)) in pods.into_iter().enumerate() {
        let tn = Some(t.name.as_str());
        let mut container = p.container;
        for m in container.volume_mounts.iter_mut().flatten() {
            m.name = own_volume(pos, &m.name);
        }
        for mut v in p.volumes {
            v.name = own_volume(pos, &v.name);
            if !volumes.iter().any(|x| x.name == v.name) {
                volumes.push(v);
            }
        }
        for (k, v) in p.labels {
            if k == "nb2pipe/task" {
                continue;
            }
            keep_first(c, tn, "label", &mut labels, k, v);
        }
        for (k, v) in p.annotations {
            keep_first(c, tn, "annotation", &mut annotations, k, v);
        }
        for (k, v) in p.node_selector {
            keep_first(c, tn, "node selector", &mut node_selector, k, v);
        }
        for x in p.tolerations {
            if !tolerations.contains(&x) {
                tolerations.push(x);
            }
        }
        match (&affinity, p.affinity) {
            (None, Some(a)) => affinity = Some((t.name.clone(), a)),
            (Some((first, a)), Some(b)) if *a != b => c.cannot(
                tn,
                format!(
                    "affinity differs from task `{first}`'s: the Job's one pod has `{first}`'s"
                ),
            ),
            _ => {}
        }
        match &security {
            None => security = Some((t.name.clone(), p.security_context)),
            Some((first, s)) => {
                // User and group can differ per container; fsGroup is the pod's.
                let sc = container
                    .security_context
                    .get_or_insert_with(Default::default);
                if s.run_as_user != p.security_context.run_as_user {
                    sc.run_as_user = p.security_context.run_as_user;
                }
                if s.run_as_group != p.security_context.run_as_group {
                    sc.run_as_group = p.security_context.run_as_group;
                }
                if s.fs_group != p.security_context.fs_group {
                    c.cannot(
                        tn,
                        format!(
                            "fs_group {} differs from task `{first}`'s {}: a pod has one fsGroup, the Job's is `{first}`'s (every container gets it as a supplementary group)",
                            p.security_context.fs_group.unwrap_or_default(),
                            s.fs_group.unwrap_or_default()
                        ),
                    );
                }
            }
        }
        timeouts = match (timeouts, t.settings.timeout_seconds) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
        containers.push(container);
    }
    let main = containers.pop();
    K8sPod {
        metadata: ObjectMeta {
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            namespace: Some(plan.settings.namespace.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            init_containers: (!containers.is_empty()).then_some(containers),
            containers: main.into_iter().collect(),
            volumes: (!volumes.is_empty()).then_some(volumes),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            affinity: affinity.map(|(_, a)| a),
            security_context: security.map(|(_, s)| s),
            service_account_name: plan.settings.service_account.clone(),
            image_pull_secrets: k8s::image_pull_secrets(plan),
            // A failed container fails the pod; the Job makes a new one (backoffLimit).
            restart_policy: Some("Never".to_string()),
            // Each attempt may take the sum of the tasks' timeouts, when all have one.
            active_deadline_seconds: timeouts.filter(|&s| s > 0).map(|s| s as i64),
            ..Default::default()
        }),
        status: None,
    }
}

/// `k` → `v` into `m`, unless `m` has another value for `k` (NB302: the first stays).
fn keep_first(
    c: &mut Ctx<'_>,
    task: Option<&str>,
    what: &str,
    m: &mut BTreeMap<String, String>,
    k: String,
    v: String,
) {
    match m.get(&k) {
        Some(old) if *old != v => c.cannot(
            task,
            format!("{what} `{k}`: `{v}` differs from an earlier task's `{old}`; the Job's one pod has `{old}`"),
        ),
        Some(_) => {}
        None => {
            m.insert(k, v);
        }
    }
}

/// NB302 for what one pod, run once per attempt, cannot do as the plan says.
fn limits(c: &mut Ctx<'_>, backoff: u32) {
    let plan = c.plan;
    for t in &plan.tasks {
        let s = &t.settings;
        let tn = Some(t.name.as_str());
        if let Some(p) = &s.pool {
            c.cannot(
                tn,
                format!("pool `{p}` is an Airflow concept; the Job runs the task without it"),
            );
        }
        if s.retries > 0 && s.retry_delay_set && s.retry_delay_seconds > 0 {
            c.cannot(tn, format!("retry_delay {} s: a Job waits 10 s, 20 s, 40 s... between attempts (its own back-off)", s.retry_delay_seconds));
        }
        if t.metrics {
            c.cannot(tn, "metrics are not collected: a Job has no task outputs");
        }
    }
    if let Some(t) = plan
        .tasks
        .iter()
        .find(|t| t.settings.retries == backoff && backoff > 0)
    {
        c.cannot(None, format!("retries: a Job retries its whole pod, every task again from the first; backoffLimit {backoff} is the largest of the tasks' (`{}`'s)", t.name));
    }
    if plan
        .tasks
        .iter()
        .any(|t| t.settings.timeout_seconds.is_some())
        && plan
            .tasks
            .iter()
            .any(|t| t.settings.timeout_seconds.is_none())
    {
        c.cannot(None, "timeout: a pod has one deadline, set only when every task has a timeout (their sum); some tasks have none, so the Job has no deadline");
    }
    // Independent branches: one pod runs them one after the other.
    let reach = reachability(plan);
    let n = plan.tasks.len();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .filter(|&(a, b)| !reach[a].contains(&b) && !reach[b].contains(&a))
        .collect();
    if let Some(&(a, b)) = pairs.first() {
        let more = match pairs.len() {
            1 => String::new(),
            k => format!(" ({} more pairs)", k - 1),
        };
        c.cannot(
            None,
            format!(
                "tasks `{}` and `{}`{more} do not depend on each other but run one after the other: the Job's pod runs its containers in order",
                plan.tasks[a].name, plan.tasks[b].name
            ),
        );
    }
}

/// For each task, the tasks downstream of it (transitively).
fn reachability(plan: &Plan) -> Vec<BTreeSet<usize>> {
    let n = plan.tasks.len();
    let idx = |name: &str| plan.tasks.iter().position(|t| t.name == name);
    let down: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            plan.edges
                .iter()
                .filter(|e| e.from == plan.tasks[i].name)
                .filter_map(|e| idx(&e.to))
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut todo = down[i].clone();
            while let Some(j) = todo.pop() {
                if seen.insert(j) {
                    todo.extend(down[j].iter().copied());
                }
            }
            seen
        })
        .collect()
}

impl Emitter for Job {
    fn name(&self) -> &'static str {
        "job"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let mut c = Ctx::new(ctx.plan, "job", Subst::None);
        let text = document(&mut c)?;
        out.notes.append(&mut c.notes);
        out.add(format!("job/{}.yaml", ctx.plan.pipeline), text);
        Ok(())
    }
}

fn document(c: &mut Ctx<'_>) -> Result<String> {
    let plan: &Plan = c.plan;
    let s = &plan.settings;
    if let Some((t, spark, cron)) = super::spark::scheduled_application(plan) {
        return scheduled_spark(c, t, spark, cron);
    }
    let pod = pod(c);
    let backoff = plan
        .tasks
        .iter()
        .map(|t| t.settings.retries)
        .max()
        .unwrap_or(0);
    limits(c, backoff);
    let pod_deadline = pod.spec.as_ref().and_then(|p| p.active_deadline_seconds);
    let template = PodTemplateSpec {
        metadata: Some(pod.metadata),
        spec: pod.spec,
    };
    let job_spec = |ttl: Option<i32>| JobSpec {
        backoff_limit: Some(backoff as i32),
        // Every attempt within its own deadline.
        active_deadline_seconds: pod_deadline.map(|d| d.saturating_mul(backoff as i64 + 1)),
        ttl_seconds_after_finished: ttl,
        template: template.clone(),
        ..Default::default()
    };
    let name = k8s::pipeline_k8s(plan);
    let mut metadata = k8s::pipeline_meta(c, "nb2pipe/description");
    let cron = s.schedule.as_deref().and_then(k8s::cron);
    c.scheduling_dropped(cron.is_some());
    match cron {
        Some(cron) => {
            metadata.name = Some(c.fit(None, "CronJob name", &name, CRON_NAME_MAX));
            let doc = CronJob {
                metadata,
                spec: Some(CronJobSpec {
                    schedule: cron,
                    time_zone: Some(TIME_ZONE.to_string()),
                    concurrency_policy: Some(
                        match s.max_active_runs {
                            Some(n) if n > 1 => "Allow",
                            _ => "Forbid",
                        }
                        .to_string(),
                    ),
                    starting_deadline_seconds: Some(STARTING_DEADLINE),
                    successful_jobs_history_limit: Some(SUCCESSFUL_HISTORY),
                    failed_jobs_history_limit: Some(FAILED_HISTORY),
                    job_template: JobTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(k8s::own_labels(plan, None)),
                            ..Default::default()
                        }),
                        // The history limits remove old Jobs; a TTL would race them.
                        spec: Some(job_spec(None)),
                    },
                    ..Default::default()
                }),
                status: None,
            };
            k8s::yaml(&doc)
        }
        None => {
            let prefix = c.fit(None, "Job name", &name, NAME_MAX);
            metadata.generate_name = Some(format!("{prefix}-"));
            let doc = K8sJob {
                metadata,
                spec: Some(job_spec(Some(TTL_AFTER_FINISHED))),
                status: None,
            };
            k8s::yaml(&doc)
        }
    }
}

/// A scheduled pipeline of one cluster-mode Spark task: a ScheduledSparkApplication,
/// whose runs are SparkApplications with the task's driver and executors.
fn scheduled_spark(
    c: &mut Ctx<'_>,
    t: &Task,
    spark: &crate::plan::Spark,
    cron: String,
) -> Result<String> {
    use super::spark;
    let plan = c.plan;
    let s = &plan.settings;
    c.scheduling_dropped(true);
    let pod = pod_for(c, t);
    let full = k8s::pipeline_k8s(plan);
    let name = c.fit(
        None,
        "ScheduledSparkApplication name",
        &full,
        spark::NAME_MAX_SCHEDULED,
    );
    let app = spark::application(c, t, spark, pod, name.clone());
    let mut annotations = BTreeMap::new();
    if let Some(d) = &s.description {
        annotations.insert(
            "nb2pipe/description".to_string(),
            c.user(None, "description", d),
        );
    }
    let doc = spark::ScheduledSparkApplication {
        api_version: spark::API_VERSION,
        kind: spark::SCHEDULED_KIND,
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(s.namespace.clone()),
            labels: Some(k8s::own_labels(plan, None)),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: spark::ScheduledSpec {
            schedule: cron,
            time_zone: TIME_ZONE.to_string(),
            concurrency_policy: match s.max_active_runs {
                Some(n) if n > 1 => "Allow",
                _ => "Forbid",
            },
            successful_run_history_limit: SUCCESSFUL_HISTORY,
            failed_run_history_limit: FAILED_HISTORY,
            template: app.spec,
        },
    };
    k8s::yaml(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(cells: serde_json::Value) -> Plan {
        let cells: Vec<serde_json::Value> = cells
            .as_array()
            .unwrap()
            .iter()
            .map(|c| serde_json::json!({"cell_type": "code", "metadata": {"tags": c[0], "nb2pipe": c[2]}, "source": c[1], "outputs": [], "execution_count": null}))
            .collect();
        let nb =
            serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": cells});
        let nb =
            crate::notebook::parse_str(std::path::Path::new("t.ipynb"), &nb.to_string()).unwrap();
        let built = crate::plan::build(crate::plan::BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        });
        built.plan
    }

    #[test]
    fn tasks_run_in_topological_order_earliest_first() {
        // `first` waits for `second` (after:), `third` for nothing.
        let plan = plan_of(serde_json::json!([
            [["task:first", "after:second"], "a = 1", {}],
            [["task:second"], "b = 2", {}],
            [["task:third"], "c = 3", {}],
        ]));
        let names: Vec<&str> = order(&plan)
            .into_iter()
            .map(|i| plan.tasks[i].name.as_str())
            .collect();
        assert_eq!(names, ["second", "first", "third"]);
    }

    #[test]
    fn pod_settings_merge_and_conflicts_are_named() {
        let plan = plan_of(serde_json::json!([
            [["task:a", "secret:one@/etc/one", "ephemeral-storage:1Gi"], "x = 1",
             {"node_selector": {"pool": "cpu"}, "fs_group": 2000, "run_as_user": 3000}],
            [["task:b", "secret:two@/etc/two", "ephemeral-storage:2Gi"], "y = x",
             {"node_selector": {"pool": "gpu", "zone": "z1"}, "fs_group": 4000, "run_as_user": 5000}],
        ]));
        let mut c = Ctx::new(&plan, "job", Subst::None);
        let pod = pod(&mut c);
        let spec = pod.spec.unwrap();
        // Union of the maps; the first task's value where they disagree.
        let ns = spec.node_selector.unwrap();
        assert_eq!(ns["pool"], "cpu");
        assert_eq!(ns["zone"], "z1");
        let msgs: Vec<&str> = c.notes.iter().map(|n| n.message.as_str()).collect();
        assert!(
            msgs.iter().any(|m| m.contains("node selector `pool`")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("fs_group 4000")), "{msgs:?}");
        // One fsGroup; the second container keeps its own user.
        let psc = spec.security_context.unwrap();
        assert_eq!((psc.fs_group, psc.run_as_user), (Some(2000), Some(3000)));
        let b = &spec.containers[0];
        assert_eq!(b.name, "b");
        assert_eq!(b.security_context.as_ref().unwrap().run_as_user, Some(5000));
        // Each task's secret volume keeps its own name, and its mount follows it.
        let vols = spec.volumes.unwrap();
        let secret_of = |mount: &str, c: &k8s_openapi::api::core::v1::Container| {
            let m = c
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == mount)
                .unwrap();
            let v = vols.iter().find(|v| v.name == m.name).unwrap();
            v.secret.as_ref().unwrap().secret_name.clone().unwrap()
        };
        let a = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(secret_of("/etc/one", a), "one");
        assert_eq!(secret_of("/etc/two", b), "two");
        // The values' emptyDir holds what the largest task may write.
        let data = vols.iter().find(|v| v.name == k8s::DATA_VOLUME).unwrap();
        let size = data.empty_dir.as_ref().unwrap().size_limit.clone();
        assert_eq!(size, Some(Quantity("2Gi".into())));
    }
}
