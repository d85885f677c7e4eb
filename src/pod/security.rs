//! The securityContext every task pod runs with: Pod Security "restricted" (non-root
//! user, no privilege escalation, every capability dropped, the runtime's default
//! seccomp profile), and fsGroup so that a freshly provisioned, root-owned volume is
//! made writable for the task user by the kubelet.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

use crate::plan::Security;

/// The user (and group) the task images are built for.
pub const TASK_UID: i64 = 10001;
/// The task user's HOME in the image, writable by it.
pub const TASK_HOME: &str = "/home/nb2pipe";
/// The image's working directory, where main.py and the runtime live.
pub const APP_DIR: &str = "/app";

fn seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

/// Pod-level: user, group, fsGroup (changed only when the volume's root does not
/// match, so a large volume is not walked on every start), seccomp.
pub fn pod_context(s: &Security) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(s.run_as_user),
        run_as_group: Some(s.run_as_group),
        fs_group: Some(s.fs_group),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(seccomp()),
        ..Default::default()
    }
}

/// Container-level: what "restricted" demands of every container.
pub fn container_context(s: &Security) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        read_only_root_filesystem: s.read_only_root_filesystem.then_some(true),
        seccomp_profile: Some(seccomp()),
        ..Default::default()
    }
}
