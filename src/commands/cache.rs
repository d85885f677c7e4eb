//! `nb2pipe cache prune`: retention for the task cache of a data store
//! (docs/running.md, "Caching"). The task runtime does the work, so a directory, a
//! mounted claim and S3 are pruned by the same code that writes the cache.

use anyhow::Context;

use super::CmdResult;
use crate::cli::{CacheArgs, CacheCommand};
use crate::run::{EXIT_INPUT, EXIT_OK, EXIT_USAGE};

pub fn execute(args: &CacheArgs) -> CmdResult {
    let CacheCommand::Prune(p) = &args.command;
    let older = match p
        .older_than
        .as_deref()
        .map(crate::plan::values::parse_duration)
    {
        Some(Err(e)) => {
            eprintln!("error: --older-than: {e}");
            return Ok(EXIT_USAGE);
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let size = match p.max_size.as_deref().map(parse_size) {
        Some(Err(e)) => {
            eprintln!("error: --max-size: {e}");
            return Ok(EXIT_USAGE);
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    if older.is_none() && size.is_none() {
        eprintln!("error: say what to remove: --older-than DURATION and/or --max-size SIZE");
        return Ok(EXIT_USAGE);
    }
    let data = if p.data.starts_with("s3://") {
        p.data.clone()
    } else {
        let d = std::path::Path::new(&p.data);
        if !d.is_dir() {
            eprintln!("error: --data {}: no such folder", p.data);
            return Ok(EXIT_INPUT);
        }
        std::path::absolute(d)?.to_string_lossy().into_owned()
    };
    let dir = tempfile::tempdir()?;
    let runtime = crate::emit::templates::BUILTIN
        .iter()
        .find(|(n, _)| *n == "task/nb2pipe_runtime.py")
        .map(|(_, t)| *t)
        .context("the runtime is built in")?;
    std::fs::write(dir.path().join("nb2pipe_runtime.py"), runtime)?;
    let script = "import sys, nb2pipe_runtime as r\n\
        a = lambda s: None if s == '-' else int(s)\n\
        print(' '.join(str(n) for n in r.prune(a(sys.argv[1]), a(sys.argv[2]))))\n";
    let arg = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    let out = std::process::Command::new(&p.python)
        .arg("-c")
        .arg(script)
        .arg(arg(older))
        .arg(arg(size))
        .env("PYTHONPATH", dir.path())
        .env("NB2PIPE_DATA", &data)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {}", p.python.display()))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        eprintln!("error: pruning the cache of {data} failed");
        return Ok(EXIT_INPUT);
    }
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [entries, objects, freed, kept, kept_bytes] = n[..] else {
        eprintln!("error: unexpected answer from the runtime");
        return Ok(EXIT_INPUT);
    };
    println!(
        "removed {entries} cache entr{} and {objects} object(s) ({}); kept {kept} entr{} ({})",
        if entries == 1 { "y" } else { "ies" },
        human(freed),
        if kept == 1 { "y" } else { "ies" },
        human(kept_bytes)
    );
    Ok(EXIT_OK)
}

/// `5G`, `500M`, `10K`, `123` (bytes); binary units.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let (num, mul) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..]
                .trim_end_matches(['B', 'b', 'i'])
                .to_ascii_uppercase();
            let mul = match unit.as_str() {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("`{v}` is not a size (like `500M`, `5G`)")),
            };
            (&t[..i], mul)
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{v}` is not a size (like `500M`, `5G`)"))
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("5G"), Ok(5 << 30));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert!(parse_size("5X").is_err());
        assert!(parse_size("G").is_err());
    }
}
