//! `nb2pipe rule [CODE]`: a diagnostic code's documentation.

use super::CmdResult;
use crate::cli::RuleArgs;
use crate::diagnostics::Code;

pub fn execute(args: &RuleArgs) -> CmdResult {
    match &args.code {
        None => {
            print!("{}", rule_table());
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

/// `nb2pipe rule`: one line per code, the columns as wide as their widest entry.
pub fn rule_table() -> String {
    let width = Code::ALL.iter().map(|c| c.name().len()).max().unwrap_or(0);
    Code::ALL
        .iter()
        .map(|c| format!("{}  {:<width$}  {:?}\n", c.as_str(), c.name(), c.severity()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_table_is_aligned() {
        let table = rule_table();
        assert_eq!(table.lines().count(), Code::ALL.len());
        // The severity starts in the same column on every line, NB205's too.
        let starts: Vec<usize> = table.lines().map(|l| l.rfind(' ').unwrap() + 1).collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{table}");
        assert!(
            table.contains("NB205  pip-requirements-file-missing  Warning"),
            "{table}"
        );
    }
}
