//! Tekton Pipelines (tekton.dev/v1): `tekton/<pipeline>.yaml`, one Task per plan task
//! (one step, named `run`) and a Pipeline (runAfter, params, retries, timeouts), to
//! `kubectl apply`; `tekton/<pipeline>-run.yaml`, a PipelineRun (generateName, to
//! `kubectl create`) that passes the parameters and carries the pod settings
//! (`taskRunSpecs[].podTemplate`).
//!
//! The data claim is a plain volume of each Task, not a workspace: Tekton's affinity
//! assistant pins every TaskRun that shares a PVC-backed workspace to one node, which
//! overrides the tasks' own node selectors and affinity.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext,
    ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::k8s::{self, Ctx, EnvSpec, Subst};
use super::{Bundle, EmitContext, Emitter};
use crate::plan::Plan;

pub struct Tekton;

/// The Task param that carries the run id (user parameters are Python identifiers, so
/// a name with `-` never clashes).
pub const RUN_ID_PARAM: &str = "nb2pipe-run-id";
/// The one step of every Task.
pub const STEP: &str = "run";

/// The result a `metrics` task's runtime writes its metrics to.
pub const METRICS_RESULT: &str = "metrics";

/// A value Tekton substitutes into an env value, where the kubelet then expands
/// `$(VAR)` and `$$`: every `$` doubled. Tekton has no function to do this at run time,
/// so only the values nb2pipe writes (the defaults) are escaped.
pub fn kubelet_escape(v: &str) -> String {
    k8s::k8s_env_escape(v)
}

/// The Task's run id parameter (the PipelineRun passes `$(context.pipelineRun.uid)`).
pub const RUN_ID_EXPR: &str = "$(params.nb2pipe-run-id)";

/// The task's pod as Tekton creates it for the TaskRun's one step (the rehearsal runs
/// this pod).
pub fn pod_for(c: &mut Ctx<'_>, t: &crate::plan::Task) -> k8s::Pod {
    let spec = EnvSpec {
        run_id: RUN_ID_EXPR,
        params: t
            .parameters
            .iter()
            .map(|p| (p.clone(), format!("$(params.{p})")))
            .collect(),
        mount_data: true,
        extra_env: if t.metrics {
            vec![(
                k8s::METRICS_ENV.to_string(),
                format!("$(results.{METRICS_RESULT}.path)"),
            )]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    k8s::pod(c, t, &spec)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: S,
}

#[derive(Serialize)]
struct ParamSpec {
    name: String,
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<String>,
}

#[derive(Serialize)]
struct Param {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct TaskSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<ParamSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    results: Vec<TaskResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<Volume>,
    steps: Vec<Step>,
}

#[derive(Serialize)]
struct TaskResult {
    name: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Step {
    name: &'static str,
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_pull_policy: Option<String>,
    command: Vec<String>,
    env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_from: Option<Vec<EnvFromSource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compute_resources: Option<ResourceRequirements>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_mounts: Option<Vec<VolumeMount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<SecurityContext>,
}

#[derive(Serialize)]
struct PipelineSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<ParamSpec>,
    tasks: Vec<PipelineTask>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineTask {
    name: String,
    task_ref: NameRef,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    run_after: Vec<String>,
    params: Vec<Param>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

#[derive(Serialize)]
struct NameRef {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineRunSpec {
    pipeline_ref: NameRef,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<Param>,
    timeouts: Timeouts,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_run_template: Option<TaskRunTemplate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    task_run_specs: Vec<TaskRunSpec>,
}

#[derive(Serialize)]
struct Timeouts {
    pipeline: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodTemplate {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<PodSecurityContext>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskRunTemplate {
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_template: Option<PodTemplate>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskRunSpec {
    pipeline_task_name: String,
    pod_template: PodTemplate,
    metadata: TaskMetadata,
}

#[derive(Serialize)]
struct TaskMetadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl PipelineSpec {
    /// What Tekton's webhook would reject: duplicate or unknown task names in runAfter.
    fn validate(&self) -> Result<()> {
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        for (i, t) in self.tasks.iter().enumerate() {
            if names[..i].contains(&t.name.as_str()) {
                bail!("duplicate Tekton pipeline task `{}`", t.name);
            }
            if let Some(r) = t.run_after.iter().find(|r| !names.contains(&r.as_str())) {
                bail!(
                    "Tekton pipeline task `{}` runs after unknown task `{r}`",
                    t.name
                );
            }
        }
        Ok(())
    }
}

impl Emitter for Tekton {
    fn name(&self) -> &'static str {
        "tekton"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let mut c = Ctx::new(ctx.plan, "tekton", Subst::Tekton);
        let (defs, run) = documents(&mut c)?;
        out.notes.append(&mut c.notes);
        out.add(format!("tekton/{}.yaml", ctx.plan.pipeline), defs);
        out.add(format!("tekton/{}-run.yaml", ctx.plan.pipeline), run);
        Ok(())
    }
}

fn meta(plan: &Plan, name: Option<String>, task: Option<&crate::plan::Task>) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: Some(plan.settings.namespace.clone()),
        labels: Some(k8s::own_labels(plan, task)),
        ..Default::default()
    }
}

/// The Tasks and the Pipeline (one file), and the PipelineRun (another).
fn documents(c: &mut Ctx<'_>) -> Result<(String, String)> {
    let plan: &Plan = c.plan;
    let s = &plan.settings;
    let mut docs = Vec::new();
    let mut pipeline_tasks = Vec::new();
    let mut run_specs = Vec::new();
    for t in &plan.tasks {
        let ts = &t.settings;
        let pod = pod_for(c, t);
        if let Some(p) = &ts.pool {
            c.cannot(
                Some(&t.name),
                format!("pool `{p}` is an Airflow concept; Tekton runs the task without it"),
            );
        }
        if ts.retries > 0 && ts.retry_delay_set && ts.retry_delay_seconds > 0 {
            c.cannot(
                Some(&t.name),
                format!(
                    "retry delay {}s: Tekton retries at once",
                    ts.retry_delay_seconds
                ),
            );
        }
        let mut params = vec![ParamSpec {
            name: RUN_ID_PARAM.into(),
            ty: "string",
            default: None,
        }];
        params.extend(t.parameters.iter().map(|p| ParamSpec {
            name: p.clone(),
            ty: "string",
            default: None,
        }));
        let ct = pod.container;
        let step = Step {
            name: STEP,
            image: ct.image.unwrap_or_default(),
            image_pull_policy: ct.image_pull_policy,
            command: ct.command.unwrap_or_default(),
            env: ct.env.unwrap_or_default(),
            env_from: ct.env_from,
            compute_resources: ct.resources,
            volume_mounts: ct.volume_mounts,
            security_context: ct.security_context,
        };
        let name = c.fit(
            Some(&t.name),
            "Task name",
            &format!("{}-{}", k8s::pipeline_k8s(plan), t.k8s_name),
            k8s::NAME_MAX,
        );
        let task_doc = Document {
            api_version: "tekton.dev/v1",
            kind: "Task",
            metadata: meta(plan, Some(name.clone()), Some(t)),
            spec: TaskSpec {
                params,
                results: if t.metrics {
                    vec![TaskResult {
                        name: METRICS_RESULT,
                        ty: "string",
                        description: "the task's metrics: a JSON object, name to number",
                    }]
                } else {
                    Vec::new()
                },
                volumes: pod.volumes,
                steps: vec![step],
            },
        };
        docs.push(k8s::yaml(&task_doc)?);
        let mut pparams = vec![Param {
            name: RUN_ID_PARAM.into(),
            value: "$(context.pipelineRun.uid)".into(),
        }];
        pparams.extend(t.parameters.iter().map(|p| Param {
            name: p.clone(),
            value: format!("$(params.{p})"),
        }));
        pipeline_tasks.push(PipelineTask {
            name: t.k8s_name.clone(),
            task_ref: NameRef { name },
            run_after: plan
                .upstream(&t.name)
                .iter()
                .filter_map(|u| plan.task(u))
                .map(|u| u.k8s_name.clone())
                .collect(),
            params: pparams,
            retries: (ts.retries > 0).then_some(ts.retries),
            timeout: ts.timeout_seconds.map(|x| format!("{x}s")),
        });
        let pt = PodTemplate {
            node_selector: pod.node_selector,
            tolerations: pod.tolerations,
            affinity: pod.affinity,
            image_pull_secrets: None,
            security_context: Some(pod.security_context),
        };
        run_specs.push(TaskRunSpec {
            pipeline_task_name: t.k8s_name.clone(),
            pod_template: pt,
            metadata: TaskMetadata {
                labels: pod.labels,
                annotations: pod.annotations,
            },
        });
    }
    let mut pparams = Vec::new();
    let mut run_params = Vec::new();
    for p in &plan.parameters {
        let v = kubelet_escape(&c.user(
            None,
            &format!("parameter `{}`", p.name),
            &k8s::param_text(p),
        ));
        pparams.push(ParamSpec {
            name: p.name.clone(),
            ty: "string",
            default: Some(v.clone()),
        });
        run_params.push(Param {
            name: p.name.clone(),
            value: v,
        });
    }
    let pipeline = PipelineSpec {
        description: s
            .description
            .as_deref()
            .map(|d| c.user(None, "description", d)),
        params: pparams,
        tasks: pipeline_tasks,
    };
    pipeline.validate()?;
    let pname = k8s::pipeline_k8s(plan);
    docs.push(k8s::yaml(&Document {
        api_version: "tekton.dev/v1",
        kind: "Pipeline",
        metadata: meta(plan, Some(pname.clone()), None),
        spec: pipeline,
    })?);
    // `@once` is what a PipelineRun is.
    if let Some(sch) = s.schedule.as_deref().filter(|x| *x != "@once") {
        c.cannot(None, format!("schedule `{sch}`: Tekton has no schedules; create the PipelineRun from a CronJob or Tekton Triggers"));
    }
    c.scheduling_dropped(false);
    let pull = k8s::image_pull_secrets(plan);
    let template = (s.service_account.is_some() || pull.is_some()).then(|| TaskRunTemplate {
        service_account_name: s.service_account.clone(),
        pod_template: pull.map(|p| PodTemplate {
            image_pull_secrets: Some(p),
            ..PodTemplate::default()
        }),
    });
    let mut run_meta = meta(plan, None, None);
    // The API server appends 5 characters to generateName.
    let run_prefix = c.fit(
        None,
        "PipelineRun name",
        &format!("{pname}-run"),
        k8s::NAME_MAX - 6,
    );
    run_meta.generate_name = Some(format!("{run_prefix}-"));
    let run = PipelineRunSpec {
        pipeline_ref: NameRef { name: pname },
        params: run_params,
        // Task timeouts are per task, as in Airflow: the run itself has none (Tekton's
        // default of 1h would cut longer task timeouts short).
        timeouts: Timeouts { pipeline: "0s" },
        task_run_template: template,
        task_run_specs: run_specs,
    };
    let run = k8s::yaml(&Document {
        api_version: "tekton.dev/v1",
        kind: "PipelineRun",
        metadata: run_meta,
        spec: run,
    })?;
    Ok((k8s::yaml_docs(&docs), run))
}
