//! nb2pipe turns a tagged Jupyter notebook into a production pipeline.
//!
//! The data flows one way:
//! [`notebook`] (read the .ipynb) → [`analysis`] (Python facts per cell) →
//! [`plan`] (the pipeline IR: every decision is made here) → [`emit`] (one module per
//! target, each a pure function of the plan). Only [`commands`] and [`fs`] touch the
//! outside world.

pub mod analysis;
pub mod build;
pub mod cli;
pub mod commands;
pub mod deps;
pub mod diagnostics;
pub mod digest;
pub mod emit;
pub mod exec;
pub mod fs;
pub mod notebook;
pub mod parallel;
pub mod plan;
pub mod pod;
pub mod rehearse;
pub mod run;
