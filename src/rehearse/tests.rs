use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EnvVarSource, PodSecurityContext, SecretEnvSource,
    SecretKeySelector,
};

use super::docker::security;
use super::*;

fn plain(n: &str, v: &str) -> EnvVar {
    EnvVar {
        name: n.into(),
        value: Some(v.into()),
        value_from: None,
    }
}

#[test]
fn env_is_resolved_as_the_kubelet_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("creds")).unwrap();
    std::fs::write(dir.path().join("creds/USER"), "alice").unwrap();
    std::fs::write(dir.path().join("creds/token"), "s3cr$t").unwrap();
    let c = Container {
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "creds".into(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(vec![
            plain("A", "$(USER)-$(LATER)"),
            plain("LATER", "x"),
            plain("B", "$(A) $$(A) $(LATER)"),
            EnvVar {
                name: "TOKEN".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "token".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            plain("USER", "bob"),
        ]),
        ..Default::default()
    };
    let env = resolve_env(&c, &Values::Dir(dir.path().into()), &BTreeMap::new()).unwrap();
    let m: BTreeMap<_, _> = env.iter().cloned().collect();
    // Only variables defined before are expanded; `$$` is a literal `$`.
    assert_eq!(m["A"], "alice-$(LATER)");
    assert_eq!(m["B"], "alice-$(LATER) $(A) x");
    assert_eq!(m["TOKEN"], "s3cr$t");
    // A later env entry replaces the envFrom one.
    assert_eq!(m["USER"], "bob");
    assert_eq!(env.iter().filter(|(k, _)| k == "USER").count(), 1);

    // A missing Secret is named, with where it was looked for.
    let err = resolve_env(
        &c,
        &Values::Dir(dir.path().join("nothing")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("creds"), "{err:#}");
}

#[test]
fn env_from_the_callers_environment() {
    let c = Container {
        env: Some(vec![EnvVar {
            name: "API_TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "api".into(),
                    key: "token".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        }]),
        ..Default::default()
    };
    let mut env = BTreeMap::new();
    env.insert("API_TOKEN".to_string(), "t0k".to_string());
    let got = resolve_env(&c, &Values::Environment(env), &BTreeMap::new()).unwrap();
    assert_eq!(got, vec![("API_TOKEN".to_string(), "t0k".to_string())]);
    let err = resolve_env(&c, &Values::Environment(BTreeMap::new()), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("API_TOKEN") && err.contains("--secrets"),
        "{err}"
    );
}

#[test]
fn security_context_becomes_container_settings() {
    let plan_sec = crate::plan::Security::default();
    let pod = crate::pod::security::pod_context(&plan_sec);
    let c = crate::pod::security::container_context(&plan_sec);
    let s = security(Some(&pod), Some(&c), "10001").unwrap();
    assert_eq!(s.user.as_deref(), Some("10001:10001"));
    assert_eq!(s.groups, vec!["10001"]);
    assert!(s.no_new_privileges);
    assert_eq!(s.cap_drop, vec!["ALL"]);
    assert!(!s.read_only_root);
    assert!(!s.always_change, "OnRootMismatch");

    // runAsNonRoot without a user, on an image that runs as root: refused.
    let bare = PodSecurityContext {
        run_as_non_root: Some(true),
        ..Default::default()
    };
    let e = security(Some(&bare), None, "").unwrap_err();
    assert!(e.contains("will run as root"), "{e}");
    assert!(security(Some(&bare), None, "10001").is_ok());
    // No securityContext: the image's user, no extra groups.
    let none = security(None, None, "").unwrap();
    assert_eq!(none.user, None);
    assert!(none.groups.is_empty() && !none.no_new_privileges);
}

#[test]
fn run_ids_are_store_safe() {
    assert_eq!(
        safe_run_id("manual__2026-12-01T11:32:30.123456+00:00"),
        "manual__2026-12-01T11_32_30.123456+00_00"
    );
}
