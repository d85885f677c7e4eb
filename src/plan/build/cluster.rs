//! How the plan will meet a cluster: the data claim's access mode (shared by tasks
//! that can run at once, or not), and warnings about what would keep pods from
//! starting there (no registry, a ReadWriteMany claim no default class provisions).

use std::path::Path;

use crate::diagnostics::{Code, Diagnostic};
use crate::plan::{DataStore, Edge, PipelineSettings, Task};

pub(super) fn decide(
    s: &mut PipelineSettings,
    tasks: &[Task],
    edges: &[Edge],
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) {
    let parallel = can_overlap(tasks, edges);
    if let DataStore::Volume {
        access_mode,
        storage_class,
        claim,
        ..
    } = &mut s.data
    {
        if access_mode.is_empty() {
            // One task at a time needs only one node at a time.
            *access_mode = if parallel {
                "ReadWriteMany"
            } else {
                "ReadWriteOnce"
            }
            .into();
        }
        if parallel && access_mode == "ReadWriteMany" && storage_class.is_none() {
            diags.push(Diagnostic::new(
                Code::SharedVolumeClass,
                path,
                format!("the data claim `{claim}` is ReadWriteMany because tasks can run at the same time, and no data.storage_class is set: the default classes of EKS, GKE and AKS cannot provision it (it stays Pending)"),
            ).with_help("set data.storage_class to a class offering ReadWriteMany (EFS, Filestore, Azure Files, NFS), or data.access_mode = \"ReadWriteOnce\" to run the tasks one at a time"));
        }
    }
    let builds = tasks.iter().any(|t| !t.image.prebuilt);
    if s.registry.is_none() && builds {
        diags.push(
            Diagnostic::new(
                Code::NoRegistry,
                path,
                "no registry is set: the task images are named without one, so a cluster pulls them from docker.io/library, where they are not".to_string(),
            )
            .with_help("set `registry` in nb2pipe.toml or the notebook's metadata, or give --registry"),
        );
    }
}

/// Whether two tasks may run at once: neither reaches the other through the edges.
fn can_overlap(tasks: &[Task], edges: &[Edge]) -> bool {
    let n = tasks.len();
    let idx = |name: &str| tasks.iter().position(|t| t.name == name);
    let mut reach = vec![vec![false; n]; n];
    for e in edges {
        if let (Some(a), Some(b)) = (idx(&e.from), idx(&e.to)) {
            reach[a][b] = true;
        }
    }
    for k in 0..n {
        let via = reach[k].clone();
        for row in reach.iter_mut().filter(|r| r[k]) {
            for (r, v) in row.iter_mut().zip(&via) {
                *r |= *v;
            }
        }
    }
    (0..n).any(|i| (i + 1..n).any(|j| !reach[i][j] && !reach[j][i]))
}
