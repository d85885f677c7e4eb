//! `run`: arguments → command → exit code. 0 success, 1 a problem in the user's input
//! (diagnostics printed), 2 bad usage or an internal failure.

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;

pub const EXIT_OK: i32 = 0;
pub const EXIT_INPUT: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let result = match cli.command {
        Command::Convert(a) => commands::convert::execute(&a),
        Command::Inspect(a) => commands::inspect::execute(&a),
        Command::Check(a) => commands::check::execute(&a),
        Command::Rule(a) => commands::rule::execute(&a),
        Command::Run(a) => commands::run::execute(&a),
        Command::Deps(a) => commands::deps::execute(&a),
        Command::Build(a) => commands::build::execute(&a),
        Command::Cache(a) => commands::cache::execute(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            EXIT_USAGE
        }
    }
}
