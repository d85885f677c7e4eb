//! Argo Workflows: `argo/<pipeline>.yaml`, a Workflow (a CronWorkflow with `schedules:`
//! when the pipeline is scheduled) with one DAG template and one container template per
//! task. Shapes follow Argo 4 (hera 7's models are generated from its OpenAPI).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{
    Affinity, Container, LocalObjectReference, PodSecurityContext, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::k8s::{self, Ctx, EnvSpec, Subst};
use super::{Bundle, EmitContext, Emitter};
use crate::plan::{DataStore, Plan};

pub struct Argo;

/// Name of the DAG template; container templates are `task-<task>`, so they never clash.
pub const DAG_TEMPLATE: &str = "dag";

/// Argo's limit for template and DAG task names (and Kubernetes' for names).
pub const NAME_MAX: usize = k8s::NAME_MAX;
/// Argo appends `-<unix time>` (11 characters) to a CronWorkflow's name for each run.
pub const CRON_NAME_MAX: usize = 52;

pub fn template_name(k8s_name: &str) -> String {
    k8s::fit(&format!("task-{k8s_name}"), NAME_MAX)
}

/// Where a `metrics` task's runtime writes its metrics; read back as the output
/// parameter [`METRICS_OUTPUT`] (`/tmp` is writable even with a read-only root).
pub const METRICS_PATH: &str = "/tmp/nb2pipe-metrics.json";
pub const METRICS_OUTPUT: &str = "metrics";

/// Pods of succeeded tasks are deleted at once; a failed task's pod stays (with its
/// logs) until the workflow itself is deleted.
pub const POD_GC: &str = "OnPodSuccess";
/// A finished workflow (and the failed pods it kept) is deleted after a week if it
/// failed, after a day if it succeeded.
pub const TTL_AFTER_SUCCESS: u64 = 86_400;
pub const TTL_AFTER_FAILURE: u64 = 7 * 86_400;

/// The container's value of a parameter: Argo substitutes it into the env value, then
/// the kubelet expands `$(VAR)` and `$$` in it, so every `$` is doubled by an Argo
/// expression (sprig's `replace OLD NEW SRC`).
pub fn param_expr(name: &str) -> String {
    format!("{{{{=sprig.replace('$', '$$', inputs.parameters['{name}'])}}}}")
}

/// Argo's run id in a template.
pub const RUN_ID_EXPR: &str = "{{workflow.uid}}";

/// The task's pod as Argo creates it: the template's container and pod settings, with
/// the workflow's data volume (the rehearsal runs this pod).
pub fn pod_for(c: &mut Ctx<'_>, t: &crate::plan::Task) -> k8s::Pod {
    let spec = EnvSpec {
        run_id: RUN_ID_EXPR,
        params: t
            .parameters
            .iter()
            .map(|p| (p.clone(), param_expr(p)))
            .collect(),
        mount_data: true,
        extra_env: if t.metrics {
            vec![(k8s::METRICS_ENV.to_string(), METRICS_PATH.to_string())]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    k8s::pod(c, t, &spec)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: Spec,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Spec {
    Workflow(WorkflowSpec),
    Cron(Box<CronWorkflowSpec>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CronWorkflowSpec {
    schedules: Vec<String>,
    timezone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_metadata: Option<ObjectMeta>,
    workflow_spec: WorkflowSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkflowSpec {
    entrypoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<Arguments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volumes: Option<Vec<Volume>>,
    #[serde(rename = "podGC")]
    pod_gc: PodGc,
    ttl_strategy: TtlStrategy,
    templates: Vec<Template>,
}

#[derive(Serialize)]
struct PodGc {
    strategy: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TtlStrategy {
    seconds_after_success: u64,
    seconds_after_failure: u64,
}

#[derive(Serialize)]
struct Outputs {
    parameters: Vec<OutputParameter>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputParameter {
    name: &'static str,
    value_from: ValueFrom,
}

#[derive(Serialize)]
struct ValueFrom {
    path: &'static str,
    /// A task that fails before it writes its metrics still ends with the value.
    default: &'static str,
}

#[derive(Serialize, Default)]
struct Arguments {
    parameters: Vec<Parameter>,
}

#[derive(Serialize)]
struct Parameter {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Template {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<Arguments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Outputs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<TemplateMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dag: Option<Dag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<Container>,
    /// A Spark task: the SparkApplication the template creates and waits on.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_strategy: Option<RetryStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_deadline_seconds: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affinity: Option<Affinity>,
    /// The pod's securityContext (the container's is in `container`).
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<PodSecurityContext>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    action: &'static str,
    /// Deleted with the Workflow.
    set_owner_reference: bool,
    success_condition: String,
    failure_condition: String,
    manifest: String,
}

#[derive(Serialize)]
struct TemplateMetadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Dag {
    tasks: Vec<DagTask>,
}

#[derive(Serialize)]
struct DagTask {
    name: String,
    template: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<Arguments>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryStrategy {
    limit: u32,
    retry_policy: &'static str,
    backoff: Backoff,
}

#[derive(Serialize)]
struct Backoff {
    duration: String,
}

impl WorkflowSpec {
    /// What Argo's validator would reject: an entrypoint or a dependency that names
    /// nothing, a template that is neither a DAG nor a container, duplicate names.
    fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for t in &self.templates {
            if !names.insert(t.name.as_str()) {
                bail!("duplicate Argo template `{}`", t.name);
            }
            let kinds = [t.dag.is_some(), t.container.is_some(), t.resource.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                bail!(
                    "Argo template `{}` must be exactly one of dag, container or resource",
                    t.name
                );
            }
        }
        if !names.contains(self.entrypoint.as_str()) {
            bail!("Argo entrypoint `{}` names no template", self.entrypoint);
        }
        for t in &self.templates {
            if let Some(d) = &t.dag {
                let tasks: Vec<&str> = d.tasks.iter().map(|x| x.name.as_str()).collect();
                for x in &d.tasks {
                    if !names.contains(x.template.as_str()) {
                        bail!(
                            "Argo DAG task `{}` uses unknown template `{}`",
                            x.name,
                            x.template
                        );
                    }
                    if let Some(dep) = x.dependencies.iter().find(|d| !tasks.contains(&d.as_str()))
                    {
                        bail!("Argo DAG task `{}` depends on unknown task `{dep}`", x.name);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Emitter for Argo {
    fn name(&self) -> &'static str {
        "argo"
    }

    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()> {
        let mut c = Ctx::new(ctx.plan, "argo", Subst::Argo);
        let text = document(&mut c)?;
        out.notes.append(&mut c.notes);
        out.add(format!("argo/{}.yaml", ctx.plan.pipeline), text);
        Ok(())
    }
}

/// A Spark task's template: creates its SparkApplication (a fresh name per run) and
/// waits until the operator reports a final state.
fn spark_template(
    c: &mut Ctx<'_>,
    t: &crate::plan::Task,
    spark: &crate::plan::Spark,
    name: String,
    inputs: Option<Arguments>,
    mut pod: k8s::Pod,
) -> Result<Template> {
    use crate::emit::spark;
    if let DataStore::Volume { claim, .. } = &c.plan.settings.data {
        pod.volumes.push(k8s::data_volume(claim));
    }
    if t.metrics {
        c.cannot(
            Some(&t.name),
            "metrics: a Spark task's metrics stay in the driver's log (Argo reads outputs only from its own pods)",
        );
    }
    let app_name = spark::name(c, t);
    let mut app = spark::application(c, t, spark, pod, app_name.clone());
    app.metadata.name = None;
    app.metadata.generate_name = Some(format!("{app_name}-"));
    let ts = &t.settings;
    Ok(Template {
        name,
        inputs,
        resource: Some(Resource {
            action: "create",
            set_owner_reference: true,
            success_condition: format!(
                "status.applicationState.state == {}",
                spark::STATE_COMPLETED
            ),
            failure_condition: format!(
                "status.applicationState.state in ({})",
                spark::STATES_FAILED.join(",")
            ),
            manifest: k8s::yaml(&app)?,
        }),
        // The operator retries the application itself (restartPolicy).
        active_deadline_seconds: ts.timeout_seconds,
        ..Template::default()
    })
}

fn document(c: &mut Ctx<'_>) -> Result<String> {
    let plan: &Plan = c.plan;
    let s = &plan.settings;
    let parameters: Vec<Parameter> = plan
        .parameters
        .iter()
        .map(|p| {
            let v = k8s::param_text(p);
            Parameter {
                name: p.name.clone(),
                value: Some(c.user(None, &format!("parameter `{}`", p.name), &v)),
            }
        })
        .collect();
    let mut dag_tasks = Vec::new();
    let mut templates = Vec::new();
    for t in &plan.tasks {
        let template = template_name(&t.k8s_name);
        if template.len() < t.k8s_name.len() + 5 {
            c.cannot(
                Some(&t.name),
                format!("template name `task-{}` is longer than {NAME_MAX} characters; written as `{template}`", t.k8s_name),
            );
        }
        let ts = &t.settings;
        let mut pod = pod_for(c, t);
        // The data claim is declared once for the workflow; the container mounts it.
        pod.volumes.retain(|v| v.name != k8s::DATA_VOLUME);
        if let Some(p) = &ts.pool {
            c.cannot(Some(&t.name), format!("pool `{p}` is an Airflow concept; Argo runs the task without it (use a synchronization semaphore by hand)"));
        }
        let inputs = (!t.parameters.is_empty()).then(|| Arguments {
            parameters: t
                .parameters
                .iter()
                .map(|p| Parameter {
                    name: p.clone(),
                    value: None,
                })
                .collect(),
        });
        let args = (!t.parameters.is_empty()).then(|| Arguments {
            parameters: t
                .parameters
                .iter()
                .map(|p| Parameter {
                    name: p.clone(),
                    value: Some(format!("{{{{workflow.parameters.{p}}}}}")),
                })
                .collect(),
        });
        dag_tasks.push(DagTask {
            name: t.k8s_name.clone(),
            template: template.clone(),
            dependencies: plan
                .upstream(&t.name)
                .iter()
                .filter_map(|u| plan.task(u))
                .map(|u| u.k8s_name.clone())
                .collect(),
            arguments: args,
        });
        if let Some(spark) = crate::emit::spark::cluster(t) {
            templates.push(spark_template(c, t, spark, template, inputs, pod)?);
            continue;
        }
        templates.push(Template {
            name: template,
            inputs,
            outputs: t.metrics.then(|| Outputs {
                parameters: vec![OutputParameter {
                    name: METRICS_OUTPUT,
                    value_from: ValueFrom {
                        path: METRICS_PATH,
                        default: "{}",
                    },
                }],
            }),
            metadata: Some(TemplateMetadata {
                labels: pod.labels,
                annotations: pod.annotations,
            }),
            container: Some(pod.container),
            volumes: (!pod.volumes.is_empty()).then_some(pod.volumes),
            retry_strategy: (ts.retries > 0).then(|| RetryStrategy {
                limit: ts.retries,
                retry_policy: "Always",
                backoff: Backoff {
                    duration: format!("{}s", ts.retry_delay_seconds),
                },
            }),
            active_deadline_seconds: ts.timeout_seconds,
            node_selector: pod.node_selector,
            tolerations: pod.tolerations,
            affinity: pod.affinity,
            security_context: Some(pod.security_context),
            ..Template::default()
        });
    }
    templates.insert(
        0,
        Template {
            name: DAG_TEMPLATE.into(),
            dag: Some(Dag { tasks: dag_tasks }),
            ..Template::default()
        },
    );
    let workflow_spec = WorkflowSpec {
        entrypoint: DAG_TEMPLATE.into(),
        arguments: (!parameters.is_empty()).then_some(Arguments { parameters }),
        service_account_name: s.service_account.clone(),
        image_pull_secrets: k8s::image_pull_secrets(plan),
        volumes: match &s.data {
            DataStore::Volume { claim, .. } => Some(vec![k8s::data_volume(claim)]),
            DataStore::S3 { .. } => None,
        },
        pod_gc: PodGc { strategy: POD_GC },
        ttl_strategy: TtlStrategy {
            seconds_after_success: TTL_AFTER_SUCCESS,
            seconds_after_failure: TTL_AFTER_FAILURE,
        },
        templates,
    };
    workflow_spec.validate()?;
    let name = k8s::pipeline_k8s(plan);
    let mut metadata = k8s::pipeline_meta(c, "workflows.argoproj.io/description");
    let cron = c.schedule(k8s::Schedule::argo);
    c.scheduling_dropped(cron.is_some());
    let doc = match cron {
        Some(cron) => {
            metadata.name = Some(c.fit(None, "CronWorkflow name", &name, CRON_NAME_MAX));
            Document {
                api_version: "argoproj.io/v1alpha1",
                kind: "CronWorkflow",
                metadata,
                spec: Spec::Cron(Box::new(CronWorkflowSpec {
                    schedules: vec![cron.schedule],
                    timezone: cron.zone.unwrap_or_else(|| "UTC".into()),
                    concurrency_policy: (s.max_active_runs == Some(1)).then_some("Forbid"),
                    workflow_metadata: Some(ObjectMeta {
                        labels: Some(k8s::own_labels(plan, None)),
                        ..Default::default()
                    }),
                    workflow_spec,
                })),
            }
        }
        None => {
            // The API server appends 5 characters to generateName.
            let prefix = c.fit(None, "Workflow name", &name, NAME_MAX - 6);
            metadata.generate_name = Some(format!("{prefix}-"));
            Document {
                api_version: "argoproj.io/v1alpha1",
                kind: "Workflow",
                metadata,
                spec: Spec::Workflow(workflow_spec),
            }
        }
    };
    k8s::yaml(&doc)
}
