//! The cell-tag vocabulary (docs/tags.md), including Kale's and papermill's spellings.

use super::settings::{SecretRef, TaskLayer, Toleration};
use super::values::*;

/// What a cell's role is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Parameters,
    Imports,
    Functions,
    Skip,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CellTag {
    /// `task:NAME`, `step:NAME`, `block:NAME`.
    Task(String),
    /// `block:` alone: continue the previous task.
    Continue,
    /// `after:A,B`, `prev:A`.
    After(Vec<String>),
    Role(Role),
    /// `metrics`, `pipeline-metrics`.
    Metrics,
    /// A task setting (resources, secrets, env, ...).
    Setting(Box<TaskLayer>),
    /// Another tool's tag that nb2pipe ignores on purpose.
    Ignored,
}

/// Tags of other notebook tools (Jupyter Book, nbval, nbconvert, papermill) that carry
/// no meaning for a pipeline; they are ignored rather than reported.
const FOREIGN_TAGS: &[&str] = &[
    "hide-input",
    "hide-output",
    "hide-cell",
    "remove-input",
    "remove-output",
    "remove-cell",
    "remove_cell",
    "remove_input",
    "remove_output",
    "raises-exception",
    "nbval-skip",
    "nbval-ignore-output",
    "nbval-raises-exception",
    "thebe-init",
    "full-width",
    "margin",
    "popout",
    "output_scroll",
    "scroll-output",
    "skip-execution",
    "injected-parameters-doc",
];

/// Parses one tag. `Err` is the message for an invalid tag (unknown or bad value), with an
/// optional help text.
pub fn parse_tag(tag: &str, allow: &[String]) -> Result<CellTag, (bool, String, Option<String>)> {
    let t = tag.trim();
    if let Err(e) = check_text(t, "the tag") {
        return Err((
            false,
            format!("invalid tag `{}`: {e}", t.escape_debug()),
            None,
        ));
    }
    let unknown = |help: Option<String>| Err((true, format!("unknown tag `{t}`"), help));
    let invalid = |msg: String| Err((false, format!("invalid tag `{t}`: {msg}"), None));
    if allow.iter().any(|a| a == t) || FOREIGN_TAGS.contains(&t) {
        return Ok(CellTag::Ignored);
    }
    match t {
        "parameters" | "pipeline-parameters" | "injected-parameters" => {
            return Ok(CellTag::Role(Role::Parameters))
        }
        "imports" => return Ok(CellTag::Role(Role::Imports)),
        "functions" => return Ok(CellTag::Role(Role::Functions)),
        "skip" => return Ok(CellTag::Role(Role::Skip)),
        "metrics" | "pipeline-metrics" => return Ok(CellTag::Metrics),
        "block:" | "block" => return Ok(CellTag::Continue),
        "spark" => {
            let mut layer = TaskLayer::default();
            layer.spark.enabled = Some(true);
            return Ok(CellTag::Setting(Box::new(layer)));
        }
        _ => {}
    }
    let Some((key, value)) = t.split_once(':') else {
        return unknown(suggest(t));
    };
    let mut layer = TaskLayer::default();
    let r: Result<(), String> = match key {
        "task" | "step" | "block" => {
            return match check_task_name(value) {
                Ok(()) => Ok(CellTag::Task(value.to_string())),
                Err(e) => Err((
                    false,
                    format!("invalid tag `{t}`: {e}"),
                    Some(format!("try `{key}:{}`", sanitise_name(value))),
                )),
            };
        }
        "after" | "prev" => {
            let names: Vec<String> = value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return invalid("name at least one task".into());
            }
            for n in &names {
                if let Err(e) = check_task_name(n) {
                    return invalid(e);
                }
            }
            return Ok(CellTag::After(names));
        }
        "cpu" => check_quantity(value).map(|()| layer.cpu = Some(value.into())),
        "memory" | "mem" => check_quantity(value).map(|()| layer.memory = Some(value.into())),
        "ephemeral-storage" => {
            check_quantity(value).map(|()| layer.ephemeral_storage = Some(value.into()))
        }
        "gpu" => check_count(value).map(|_| layer.gpu = Some(value.into())),
        "limit" => match value.rsplit_once(':') {
            Some((res, q)) if !res.is_empty() => {
                let res = if res == "gpu" { "nvidia.com/gpu" } else { res };
                check_label_key(res)
                    .and_then(|()| check_quantity(q))
                    .map(|()| {
                        layer.limits.insert(res.to_string(), q.to_string());
                    })
            }
            _ => Err("write `limit:RESOURCE:QUANTITY`, e.g. `limit:memory:8Gi`".into()),
        },
        "secret" => {
            parse_secret(value).map(|s| layer.secrets.push(super::settings::SecretSpec::Full(s)))
        }
        "config" | "configmap" => check_dns_subdomain(value, "ConfigMap name")
            .map(|()| layer.config_maps.push(value.into())),
        "env" => match value.split_once('=') {
            Some((k, v)) => check_env_name(k).map(|()| {
                layer.env.insert(k.into(), v.into());
            }),
            None => Err("write `env:KEY=VALUE`".into()),
        },
        "image" => check_image(value).map(|()| layer.image = Some(value.into())),
        "retries" => check_count(value).map(|n| layer.retries = Some(n)),
        "retry-delay" | "retry_delay" => parse_duration(value)
            .map(|s| layer.retry_delay = Some(super::settings::Duration::Seconds(s))),
        "timeout" => parse_duration(value)
            .map(|s| layer.timeout = Some(super::settings::Duration::Seconds(s))),
        "pool" => check_pool(value).map(|()| layer.pool = Some(value.into())),
        "node" | "node-selector" => match value.split_once('=') {
            Some((k, v)) => check_label_key(k)
                .and_then(|()| check_label_value(v))
                .map(|()| {
                    layer.node_selector.insert(k.into(), v.into());
                }),
            None => Err("write `node:KEY=VALUE`".into()),
        },
        "toleration" => parse_toleration(value).map(|tol| {
            layer
                .tolerations
                .push(super::settings::TolerationSpec::Full(tol))
        }),
        "label" | "annotation" => {
            let kv = value.split_once('=').or_else(|| value.split_once(':'));
            match kv {
                Some((k, v)) => check_label_key(k)
                    .and_then(|()| {
                        if key == "label" {
                            check_label_value(v)
                        } else {
                            Ok(())
                        }
                    })
                    .map(|()| {
                        let map = if key == "label" {
                            &mut layer.labels
                        } else {
                            &mut layer.annotations
                        };
                        map.insert(k.into(), v.into());
                    }),
                None => Err(format!("write `{key}:KEY=VALUE`")),
            }
        }
        "imports" => {
            use crate::plan::settings::ImportsMode;
            layer.imports = match value {
                "used" => Some(ImportsMode::Used),
                "all" => Some(ImportsMode::All),
                _ => None,
            };
            match layer.imports {
                Some(_) => Ok(()),
                None => Err(
                    "write `imports:used` (only the imports the task reads) or `imports:all`"
                        .into(),
                ),
            }
        }
        "cache" => match value {
            "true" | "on" | "yes" => {
                layer.cache = Some(true);
                Ok(())
            }
            "false" | "off" | "no" => {
                layer.cache = Some(false);
                Ok(())
            }
            _ => Err("write `cache:false` or `cache:true`".into()),
        },
        "image-pull-policy" => match value {
            "Always" | "IfNotPresent" | "Never" => {
                layer.image_pull_policy = Some(value.into());
                Ok(())
            }
            _ => Err("one of Always, IfNotPresent, Never".into()),
        },
        "spark" => check_spark_mode(value).map(|()| {
            layer.spark.enabled = Some(true);
            layer.spark.mode = Some(value.into());
        }),
        "spark-version" => {
            check_spark_version(value).map(|()| layer.spark.version = Some(value.into()))
        }
        "spark-image" => check_image(value).map(|()| layer.spark.image = Some(value.into())),
        "spark-driver-cores" => check_cores(value).map(|n| layer.spark.driver_cores = Some(n)),
        "spark-executor-cores" => check_cores(value).map(|n| layer.spark.executor_cores = Some(n)),
        "spark-executor-instances" => {
            check_cores(value).map(|n| layer.spark.executor_instances = Some(n))
        }
        "spark-driver-memory" => {
            check_jvm_size(value).map(|()| layer.spark.driver_memory = Some(value.into()))
        }
        "spark-driver-memory-overhead" => {
            check_jvm_size(value).map(|()| layer.spark.driver_memory_overhead = Some(value.into()))
        }
        "spark-executor-memory" => {
            check_jvm_size(value).map(|()| layer.spark.executor_memory = Some(value.into()))
        }
        "spark-executor-memory-overhead" => check_jvm_size(value)
            .map(|()| layer.spark.executor_memory_overhead = Some(value.into())),
        "spark-conf" => match value.split_once('=') {
            Some((k, v)) => check_spark_conf(k, v).map(|()| {
                layer.spark.conf.insert(k.into(), v.into());
            }),
            None => Err("write `spark-conf:spark.KEY=VALUE`".into()),
        },
        _ => return unknown(suggest(key).map(|s| format!("did you mean `{s}:{value}`?"))),
    };
    match r {
        Ok(()) => Ok(CellTag::Setting(Box::new(layer))),
        Err(e) => invalid(e),
    }
}

/// `NAME`, `NAME:KEY:ENV`, `NAME:KEY` (env named after the key), `NAME@/mount/path`.
pub fn parse_secret(value: &str) -> Result<SecretRef, String> {
    if let Some((name, path)) = value.split_once('@') {
        check_dns_subdomain(name, "Secret name")?;
        if !path.starts_with('/') || path.contains(['\n', '\r', '\0']) {
            return Err(format!("`{path}` is not an absolute mount path"));
        }
        return Ok(SecretRef {
            name: name.into(),
            key: None,
            env: None,
            mount_path: Some(path.into()),
        });
    }
    let parts: Vec<&str> = value.split(':').collect();
    match parts.as_slice() {
        [name] => {
            check_dns_subdomain(name, "Secret name")?;
            Ok(SecretRef {
                name: (*name).into(),
                key: None,
                env: None,
                mount_path: None,
            })
        }
        [name, key] | [name, key, ""] => {
            check_dns_subdomain(name, "Secret name")?;
            check_secret_key(key)?;
            let env = key.to_ascii_uppercase().replace(['-', '.'], "_");
            check_env_name(&env)?;
            Ok(SecretRef {
                name: (*name).into(),
                key: Some((*key).into()),
                env: Some(env),
                mount_path: None,
            })
        }
        [name, key, env] => {
            check_dns_subdomain(name, "Secret name")?;
            check_secret_key(key)?;
            check_env_name(env)?;
            Ok(SecretRef {
                name: (*name).into(),
                key: Some((*key).into()),
                env: Some((*env).into()),
                mount_path: None,
            })
        }
        _ => Err("write `secret:NAME` or `secret:NAME:KEY:ENV`".into()),
    }
}

fn check_secret_key(key: &str) -> Result<(), String> {
    if !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(format!("`{key}` is not a valid Secret key"))
    }
}

/// `KEY=VALUE:EFFECT`, `KEY:EFFECT` (operator Exists), `KEY=VALUE` (any effect).
pub fn parse_toleration(value: &str) -> Result<Toleration, String> {
    let (kv, effect) = match value.rsplit_once(':') {
        Some((kv, e)) => (kv, Some(e)),
        None => (value, None),
    };
    if let Some(e) = effect {
        if !matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "`{e}` is not a taint effect (NoSchedule, PreferNoSchedule, NoExecute)"
            ));
        }
    }
    let (key, val, op) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v), "Equal"),
        None => (kv, None, "Exists"),
    };
    check_label_key(key)?;
    if let Some(v) = val {
        check_label_value(v)?;
    }
    Ok(Toleration {
        key: key.into(),
        operator: op.into(),
        value: val.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    })
}

const KNOWN_KEYS: &[&str] = &[
    "task",
    "step",
    "block",
    "after",
    "prev",
    "cpu",
    "memory",
    "gpu",
    "ephemeral-storage",
    "limit",
    "secret",
    "config",
    "env",
    "image",
    "retries",
    "retry-delay",
    "timeout",
    "pool",
    "node",
    "toleration",
    "label",
    "annotation",
    "cache",
    "parameters",
    "imports",
    "functions",
    "metrics",
    "skip",
    "image-pull-policy",
    "spark",
    "spark-version",
    "spark-image",
    "spark-driver-cores",
    "spark-driver-memory",
    "spark-driver-memory-overhead",
    "spark-executor-instances",
    "spark-executor-cores",
    "spark-executor-memory",
    "spark-executor-memory-overhead",
    "spark-conf",
];

/// The closest known tag key, if one is close (edit distance ≤ 2).
fn suggest(word: &str) -> Option<String> {
    let w = word.to_ascii_lowercase();
    KNOWN_KEYS
        .iter()
        .map(|k| (distance(&w, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min()
        .map(|(_, k)| k.to_string())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> CellTag {
        parse_tag(t, &[]).unwrap_or_else(|e| panic!("{t}: {e:?}"))
    }

    #[test]
    fn vocabulary() {
        assert_eq!(ok("task:train"), CellTag::Task("train".into()));
        assert_eq!(ok("step:train"), CellTag::Task("train".into()));
        assert_eq!(ok("block:"), CellTag::Continue);
        assert_eq!(ok("prev:load"), CellTag::After(vec!["load".into()]));
        assert_eq!(
            ok("after:a,b"),
            CellTag::After(vec!["a".into(), "b".into()])
        );
        assert_eq!(ok("pipeline-parameters"), CellTag::Role(Role::Parameters));
        assert_eq!(ok("hide-input"), CellTag::Ignored);
        let CellTag::Setting(l) = ok("limit:nvidia.com/gpu:2") else {
            panic!()
        };
        assert_eq!(l.limits["nvidia.com/gpu"], "2");
        let CellTag::Setting(l) = ok("secret:db:password:DB_PASSWORD") else {
            panic!()
        };
        assert_eq!(l.secrets.len(), 1);
        let CellTag::Setting(l) = ok("env:GREETING=a=b:c") else {
            panic!()
        };
        assert_eq!(l.env["GREETING"], "a=b:c");
        let CellTag::Setting(l) = ok("toleration:gpu=true:NoSchedule") else {
            panic!()
        };
        assert_eq!(l.tolerations.len(), 1);
        let CellTag::Setting(l) = ok("label:team:ml") else {
            panic!()
        };
        assert_eq!(l.labels["team"], "ml");
    }

    #[test]
    fn errors_name_the_problem() {
        let (unknown, msg, help) = parse_tag("cpus:2", &[]).unwrap_err();
        assert!(unknown && msg.contains("cpus:2"));
        assert_eq!(help.as_deref(), Some("did you mean `cpu:2`?"));
        let (unknown, msg, _) = parse_tag("memory:4GB", &[]).unwrap_err();
        assert!(!unknown && msg.contains("4Gi"), "{msg}");
        assert!(parse_tag("task:Train Model", &[])
            .unwrap_err()
            .2
            .unwrap()
            .contains("train-model"));
        assert!(parse_tag("toleration:gpu=true:Sometimes", &[]).is_err());
        assert!(parse_tag("secret:Bad_Name", &[]).is_err());
        assert!(parse_tag("retries:three", &[]).is_err());
        assert_eq!(
            parse_tag("mytool", &["mytool".to_string()]).unwrap(),
            CellTag::Ignored
        );
    }

    #[test]
    fn spark_tags() {
        let CellTag::Setting(l) = ok("spark") else {
            panic!()
        };
        assert_eq!(l.spark.enabled, Some(true));
        assert_eq!(l.spark.mode, None);
        let CellTag::Setting(l) = ok("spark:local[4]") else {
            panic!()
        };
        assert_eq!(l.spark.mode.as_deref(), Some("local[4]"));
        let CellTag::Setting(l) = ok("spark-executor-memory:4g") else {
            panic!()
        };
        assert_eq!(l.spark.executor_memory.as_deref(), Some("4g"));
        let CellTag::Setting(l) = ok("spark-executor-instances:3") else {
            panic!()
        };
        assert_eq!(l.spark.executor_instances, Some(3));
        let CellTag::Setting(l) = ok("spark-conf:spark.sql.shuffle.partitions=8") else {
            panic!()
        };
        assert_eq!(l.spark.conf["spark.sql.shuffle.partitions"], "8");
        let CellTag::Setting(l) = ok("spark-version:3.5.3") else {
            panic!()
        };
        assert_eq!(l.spark.version.as_deref(), Some("3.5.3"));

        let (unknown, msg, _) = parse_tag("spark-executor-memory:4Gi", &[]).unwrap_err();
        assert!(!unknown && msg.contains("write `4g`"), "{msg}");
        assert!(parse_tag("spark:local[0]", &[]).is_err());
        assert!(parse_tag("spark:yarn", &[]).is_err());
        assert!(parse_tag("spark-driver-cores:0", &[]).is_err());
        assert!(parse_tag("spark-conf:sql.x=1", &[]).is_err());
        assert!(parse_tag("spark-conf:spark.x", &[]).is_err());
        assert!(parse_tag("spark-version:3.5", &[]).is_err());
        let (unknown, _, help) = parse_tag("spark-executor-memroy:4g", &[]).unwrap_err();
        assert!(unknown);
        assert_eq!(
            help.as_deref(),
            Some("did you mean `spark-executor-memory:4g`?")
        );
    }
}
