//! `nb2pipe rule [CODE]`: a diagnostic code's documentation.

use super::CmdResult;
use crate::cli::RuleArgs;
use crate::diagnostics::Code;

pub fn execute(args: &RuleArgs) -> CmdResult {
    match &args.code {
        None => {
            for c in Code::ALL {
                println!("{}  {:<24} {:?}", c.as_str(), c.name(), c.severity());
            }
            Ok(0)
        }
        Some(code) => match Code::from_code(code) {
            Some(c) => {
                println!("# {} ({})\n\n{}", c.as_str(), c.name(), c.docs());
                Ok(0)
            }
            None => {
                eprintln!("error: no diagnostic code `{code}`; `nb2pipe rule` lists them");
                Ok(2)
            }
        },
    }
}

/// docs/rules.md: every code's documentation.
pub fn rules_markdown() -> String {
    let mut out = String::from("# Diagnostic codes\n\nGenerated from the code table (`src/diagnostics/codes.rs`); `nb2pipe rule CODE` prints the same text.\n\n| code | name | severity |\n|---|---|---|\n");
    for c in Code::ALL {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {:?} |\n",
            c.as_str(),
            c.as_str().to_lowercase(),
            c.name(),
            c.severity()
        ));
    }
    for c in Code::ALL {
        out.push_str(&format!(
            "\n## {}\n\n`{}` ({:?})\n\n{}",
            c.as_str(),
            c.name(),
            c.severity(),
            c.docs().replace("## ", "### ")
        ));
    }
    out
}
