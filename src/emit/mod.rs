//! Emitters: one module per target, each a pure function of the [`Plan`] that adds
//! files to a [`Bundle`]. Writing the bundle to disk is [`crate::fs`]'s job.

pub mod airflow;
pub mod pyrepr;
pub mod task_code;
pub mod templates;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::plan::Plan;
pub use templates::Templates;

/// Files of an output bundle: path relative to the bundle folder → content.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bundle {
    pub files: BTreeMap<String, String>,
}

impl Bundle {
    pub fn add(&mut self, path: impl Into<String>, content: impl Into<String>) {
        let mut c: String = content.into();
        if !c.ends_with('\n') {
            c.push('\n');
        }
        self.files.insert(path.into(), c);
    }
}

/// What every emitter gets.
pub struct EmitContext<'a> {
    pub plan: &'a Plan,
    pub templates: &'a Templates,
}

pub trait Emitter {
    /// The target's name on the command line (`--target NAME`) and its folder.
    fn name(&self) -> &'static str;
    fn emit(&self, ctx: &EmitContext<'_>, out: &mut Bundle) -> Result<()>;
}

/// Every pipeline target, in `--target all` order.
pub fn targets() -> Vec<Box<dyn Emitter>> {
    vec![Box::new(airflow::Airflow)]
}

pub fn target_names() -> Vec<&'static str> {
    targets().iter().map(|t| t.name()).collect()
}

/// plan.json, the task folders, and the chosen targets.
pub fn bundle(plan: &Plan, templates: &Templates, chosen: &[String]) -> Result<Bundle> {
    let mut out = Bundle::default();
    out.add("plan.json", plan.to_json());
    let ctx = EmitContext { plan, templates };
    task_code::TaskFiles.emit(&ctx, &mut out)?;
    for t in targets() {
        if chosen.iter().any(|c| c == t.name() || c == "all") {
            t.emit(&ctx, &mut out).map_err(|e| {
                e.context(format!(
                    "the `{}` emitter failed (an nb2pipe bug)",
                    t.name()
                ))
            })?;
        }
    }
    Ok(out)
}
