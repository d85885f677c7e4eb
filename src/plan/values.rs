//! Validation of tag values: Kubernetes quantities, names, label keys, durations.

use std::sync::LazyLock;

// regex-lite: these short ASCII grammars are checked a few times a run, where the full
// engine's compile (15% of a 10-cell convert) costs more than every match.
use regex_lite::Regex;

static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$").unwrap());
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$").unwrap()
});

// The grammars checked for every task are matched by hand: a regex-lite match costs
// more than the rest of a tag's parsing, and each pattern's compile more than that.

/// At most `max` bytes: a `first`, then `inner` ones, of which the last (in a name of
/// two or more) must be an `edge`.
fn is_bounded_name(
    v: &str,
    max: usize,
    first: fn(&u8) -> bool,
    inner: fn(&u8) -> bool,
    edge: fn(&u8) -> bool,
) -> bool {
    match v.as_bytes() {
        [] => false,
        [only] => first(only),
        [head, mid @ .., last] => {
            v.len() <= max && first(head) && mid.iter().all(inner) && edge(last)
        }
    }
}

fn lower_or_digit(c: &u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns_label_part(v: &str, max: usize) -> bool {
    is_bounded_name(
        v,
        max,
        lower_or_digit,
        |c| lower_or_digit(c) || *c == b'-',
        lower_or_digit,
    )
}

fn is_dns_label(v: &str) -> bool {
    is_dns_label_part(v, 63)
}

fn is_dns_subdomain(v: &str) -> bool {
    v.split('.').all(|part| is_dns_label_part(part, usize::MAX))
}

fn is_label_name(v: &str) -> bool {
    is_bounded_name(
        v,
        63,
        u8::is_ascii_alphanumeric,
        |c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'),
        u8::is_ascii_alphanumeric,
    )
}

fn is_env_name(v: &str) -> bool {
    let b = v.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_pool(v: &str) -> bool {
    (1..=256).contains(&v.len())
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A number (`2`, `1.`, `1.5`, `.5`), then nothing, an exponent (`e3`, `E-2`) or a
/// suffix (`m`, `k`, `M` … `E`, `Ki` … `Ei`).
fn is_quantity(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = |from: usize| {
        b.iter()
            .skip(from)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let whole = digits(0);
    let end = if whole > 0 {
        if b.get(whole) == Some(&b'.') {
            whole + 1 + digits(whole + 1)
        } else {
            whole
        }
    } else if b.first() == Some(&b'.') && digits(1) > 0 {
        1 + digits(1)
    } else {
        return false;
    };
    match &b[end..] {
        b"" | b"m" | b"k" | b"M" | b"G" | b"T" | b"P" | b"E" | b"Ki" | b"Mi" | b"Gi" | b"Ti"
        | b"Pi" | b"Ei" => true,
        [b'e' | b'E', exp @ ..] => {
            let exp = exp
                .strip_prefix(b"+")
                .or(exp.strip_prefix(b"-"))
                .unwrap_or(exp);
            !exp.is_empty() && exp.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// A lowercase letter, then at most 62 of `a-z0-9_-`, the last a letter or digit.
fn is_task_name(v: &str) -> bool {
    is_bounded_name(
        v,
        63,
        u8::is_ascii_lowercase,
        |c| lower_or_digit(c) || matches!(c, b'_' | b'-'),
        lower_or_digit,
    )
}

/// A Kubernetes resource quantity (`500m`, `2`, `4Gi`, `1.5G`), at most 2^63-1: the
/// API server caps a larger one silently (it stores quantities in an int64).
pub fn check_quantity(v: &str) -> Result<(), String> {
    if is_quantity(v) {
        return match quantity_value(v) {
            Some(x) if x < 2f64.powi(63) => Ok(()),
            _ => Err(format!(
                "`{v}` is larger than Kubernetes can hold (2^63-1, about 8Ei)"
            )),
        };
    }
    let upper = v.to_ascii_uppercase();
    let hint = if upper.ends_with("GB")
        || upper.ends_with("MB")
        || upper.ends_with("KB")
        || upper.ends_with("TB")
    {
        let n = &v[..v.len() - 2];
        let unit = &upper[upper.len() - 2..upper.len() - 1];
        format!("; Kubernetes writes `{n}{unit}i` (binary) or `{n}{unit}` (decimal)")
    } else {
        String::new()
    };
    Err(format!(
        "`{v}` is not a Kubernetes quantity (like `500m`, `2`, `4Gi`){hint}"
    ))
}

/// The value of a quantity [`is_quantity`] accepts, approximately.
fn quantity_value(v: &str) -> Option<f64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 2f64.powi(10),
        "Mi" => 2f64.powi(20),
        "Gi" => 2f64.powi(30),
        "Ti" => 2f64.powi(40),
        "Pi" => 2f64.powi(50),
        "Ei" => 2f64.powi(60),
        e => 10f64.powf(e[1..].parse::<f64>().ok()?),
    };
    Some(n * scale).filter(|x| x.is_finite())
}

pub fn check_count(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .map_err(|_| format!("`{v}` is not a whole number"))
}

/// Task names: lowercase letters, digits, `-`, `_`; a letter first; 63 characters at most.
pub fn check_task_name(v: &str) -> Result<(), String> {
    if is_task_name(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid task name: use lowercase letters, digits, `-` and `_`, start with a letter, end with a letter or digit, at most 63 characters"
        ))
    }
}

/// A valid task name derived from any text (for help messages and notebook stems).
pub fn sanitise_name(v: &str) -> String {
    let mut out: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else if c == '_' {
                '_'
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    // A name starts with a letter and ends with a letter or digit.
    let trimmed = out
        .trim_start_matches(|c: char| c == '-' || c == '_' || c.is_ascii_digit())
        .trim_end_matches(['-', '_']);
    let mut s: String = trimmed.chars().take(63).collect();
    s = s.trim_end_matches(['-', '_']).to_string();
    if s.is_empty() || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("p-{s}").trim_end_matches(['-', '_']).to_string();
        if s == "p" {
            s = "pipeline".into();
        }
    }
    s
}

/// A Kubernetes object name for a task (`load_data` → `load-data`).
pub fn k8s_name(task: &str) -> String {
    task.replace('_', "-")
}

pub fn check_dns_label(v: &str, what: &str) -> Result<(), String> {
    if is_dns_label(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid {what}: lowercase letters, digits and `-`, at most 63 characters"
        ))
    }
}

pub fn check_dns_subdomain(v: &str, what: &str) -> Result<(), String> {
    if v.len() <= 253 && is_dns_subdomain(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid {what}: lowercase letters, digits, `-` and `.`"
        ))
    }
}

pub fn check_env_name(v: &str) -> Result<(), String> {
    if is_env_name(v) {
        Ok(())
    } else {
        Err(format!("`{v}` is not a valid environment variable name"))
    }
}

/// A label or annotation key: optional DNS-subdomain prefix, `/`, a name.
pub fn check_label_key(v: &str) -> Result<(), String> {
    let (prefix, name) = match v.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    if let Some(p) = prefix {
        check_dns_subdomain(p, "label prefix")?;
    }
    if is_label_name(name) {
        Ok(())
    } else {
        Err(format!("`{v}` is not a valid label or annotation key"))
    }
}

pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_label_name(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid label value: at most 63 letters, digits, `-`, `_`, `.`"
        ))
    }
}

/// The longest timeout or retry delay: a year (leap or not). Every target holds it
/// (Python's `timedelta` to 999999999 days, Go's `time.Duration` to 292 years for Argo
/// and Tekton, int64 seconds for `activeDeadlineSeconds`), and a longer one is a typo.
pub const MAX_DURATION_SECONDS: u64 = 366 * 86400;

/// `90`, `30s`, `30m`, `1h30m`, `2d` → seconds, at most [`MAX_DURATION_SECONDS`].
pub fn parse_duration(v: &str) -> Result<u64, String> {
    let bad = || format!("`{v}` is not a duration (like `90`, `30s`, `30m`, `1h30m`, `2d`)");
    let secs = if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
        v.parse::<u64>().ok()
    } else {
        let c = DURATION
            .captures(v)
            .filter(|_| !v.is_empty())
            .ok_or_else(bad)?;
        [(1, 86400u64), (2, 3600), (3, 60), (4, 1)]
            .into_iter()
            .try_fold(0u64, |acc, (i, mul)| match c.get(i) {
                None => Some(acc),
                Some(m) => m
                    .as_str()
                    .parse::<u64>()
                    .ok()?
                    .checked_mul(mul)?
                    .checked_add(acc),
            })
    };
    check_duration_seconds(secs, v)
}

/// A duration given as seconds (a number in the settings), at most a year.
pub fn check_duration(secs: u64) -> Result<u64, String> {
    check_duration_seconds(Some(secs), &secs.to_string())
}

fn check_duration_seconds(secs: Option<u64>, v: &str) -> Result<u64, String> {
    match secs {
        Some(s) if s <= MAX_DURATION_SECONDS => Ok(s),
        _ => Err(format!(
            "`{v}` is longer than the longest duration nb2pipe accepts, 366 days (`366d`)"
        )),
    }
}

/// The first character of `v` that no output may carry: NUL (it cannot pass through
/// `execve`, C strings or the container runtime) and the other C0 and C1 control
/// characters and DEL, which only come from corruption and would garble a terminal.
/// Tab, newline and carriage return are text (multi-line env values, annotations).
pub fn first_control(v: &str) -> Option<char> {
    v.chars()
        .find(|&c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// `v` holds no character that [`first_control`] refuses.
pub fn check_text(v: &str, what: &str) -> Result<(), String> {
    match first_control(v) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{what} holds the control character U+{:04X}, which no target can carry",
            c as u32
        )),
    }
}

/// Levels a structured setting (affinity) may nest; Kubernetes' own need fewer than ten.
pub const MAX_JSON_DEPTH: usize = 64;

/// A JSON setting nests at most [`MAX_JSON_DEPTH`] levels and its strings (keys too)
/// pass [`check_text`]. Walked with an explicit stack, so any depth is safe.
pub fn check_json(v: &serde_json::Value) -> Result<(), String> {
    let mut todo = vec![(v, 1usize)];
    while let Some((v, depth)) = todo.pop() {
        if depth > MAX_JSON_DEPTH {
            return Err(format!("nested more than {MAX_JSON_DEPTH} levels deep"));
        }
        match v {
            serde_json::Value::String(s) => check_text(s, "a string")?,
            serde_json::Value::Array(a) => todo.extend(a.iter().map(|x| (x, depth + 1))),
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    check_text(k, "a key")?;
                    todo.push((x, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn check_image(v: &str) -> Result<(), String> {
    if v.len() <= 512 && IMAGE_REF.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid image reference (like `registry.example.com/team/img:1.2`)"
        ))
    }
}

pub fn check_registry(v: &str) -> Result<(), String> {
    check_image(v)
        .map_err(|_| format!("`{v}` is not a valid registry (like `registry.example.com/team`)"))
}

pub fn check_pool(v: &str) -> Result<(), String> {
    if is_pool(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid pool name: letters, digits, `_`, `-`, `.`"
        ))
    }
}

/// `cluster`, `local` or `local[N]` (N threads, `*` for one per core).
pub fn check_spark_mode(v: &str) -> Result<(), String> {
    let threads = v.strip_prefix("local[").and_then(|r| r.strip_suffix(']'));
    match (v, threads) {
        ("cluster" | "local", _) => Ok(()),
        (_, Some("*")) => Ok(()),
        (_, Some(n)) if n.parse::<u32>().is_ok_and(|n| n >= 1) => Ok(()),
        _ => Err(format!(
            "`{v}` is not a Spark mode: write `spark`, `spark:local`, `spark:local[4]` or `spark:cluster`"
        )),
    }
}

/// A Spark release, `3.5.3`.
pub fn check_spark_version(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!("`{v}` is not a Spark version like `3.5.3`"))
    }
}

/// Cores and instances: a whole number from 1.
pub fn check_cores(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` is not a whole number from 1")),
    }
}

/// Spark's own size format (JVM style: `512m`, `4g`), which Spark reads for
/// `spark.driver.memory`; Kubernetes quantities (`4Gi`) are not understood by Spark.
pub fn check_jvm_size(v: &str) -> Result<(), String> {
    static SIZE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(?i)[0-9]{1,12}(b|k|kb|m|mb|g|gb|t|tb)?$").unwrap());
    if SIZE.is_match(v) {
        return Ok(());
    }
    let hint = match v.strip_suffix('i') {
        Some(k) if SIZE.is_match(k) => format!(
            "; Spark sizes have no `i`: write `{}`",
            k.to_ascii_lowercase()
        ),
        _ => String::new(),
    };
    Err(format!(
        "`{v}` is not a Spark size like `512m` or `4g`{hint}"
    ))
}

/// A Spark conf entry: `spark.` keys only (Hadoop settings are `spark.hadoop.*`).
pub fn check_spark_conf(k: &str, v: &str) -> Result<(), String> {
    let key_ok = k.len() > 6
        && k.starts_with("spark.")
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !key_ok {
        return Err(format!(
            "`{k}` is not a Spark conf key: write `spark.KEY` (Hadoop settings as `spark.hadoop.KEY`)"
        ));
    }
    check_text(v, &format!("spark conf `{k}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Kubernetes quantity grammar, checked by [`is_quantity`] (this pattern is its
    /// test oracle).
    const QUANTITY: &str =
        r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";
    /// The name grammars, checked by the `is_*` matchers above (these patterns are their
    /// test oracles).
    const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
    const DNS_SUBDOMAIN: &str =
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    const ENV_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
    const LABEL_NAME: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
    const LABEL_VALUE: &str = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";
    const POOL: &str = r"^[A-Za-z0-9_.-]{1,256}$";
    /// Task names, checked by [`is_task_name`] (this pattern is its test oracle).
    const TASK_NAME: &str = r"^[a-z]([a-z0-9_-]{0,61}[a-z0-9])?$";

    proptest::proptest! {
        // The hand-written matchers accept exactly what their patterns do, over strings
        // built from the characters the grammars care about.
        #[test]
        fn quantity_matcher_is_its_pattern(v in "[0-9.eE+mkMGTPiKx-]{0,7}") {
            static RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(QUANTITY).unwrap());
            proptest::prop_assert_eq!(is_quantity(&v), RE.is_match(&v), "{}", v);
        }

        #[test]
        fn task_name_matcher_is_its_pattern(v in "[a-c0-1_A-]{0,5}|[a-z0-9_-]{60,66}") {
            static RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(TASK_NAME).unwrap());
            proptest::prop_assert_eq!(is_task_name(&v), RE.is_match(&v), "{}", v);
        }

        #[test]
        fn name_matchers_are_their_patterns(
            v in "[a-c0-1A_.-]{0,5}|[a-z0-9-]{60,66}|[a-z0-9.-]{60,66}|[A-Za-z0-9_.-]{60,66}|[A-Za-z0-9_.-]{250,260}"
        ) {
            fn oracle(p: &str) -> regex::Regex {
                regex::Regex::new(p).unwrap()
            }
            static RES: LazyLock<[regex::Regex; 6]> = LazyLock::new(|| {
                [DNS_LABEL, DNS_SUBDOMAIN, ENV_NAME, LABEL_NAME, LABEL_VALUE, POOL].map(oracle)
            });
            let got = [
                is_dns_label(&v),
                is_dns_subdomain(&v),
                is_env_name(&v),
                is_label_name(&v),
                v.is_empty() || is_label_name(&v),
                is_pool(&v),
            ];
            for (re, got) in RES.iter().zip(got) {
                proptest::prop_assert_eq!(got, re.is_match(&v), "{} on {}", re.as_str(), v);
            }
        }
    }

    #[test]
    fn matchers_on_the_edges_of_their_grammars() {
        for (v, want) in [
            ("1.", true),
            (".5", true),
            (".", false),
            ("1e", false),
            ("1E", true),
            ("1e+3", true),
            ("1e+", false),
            ("1Ki", true),
            ("1K", false),
            ("", false),
            ("-1", false),
        ] {
            assert_eq!(is_quantity(v), want, "{v}");
        }
        let long = "a".repeat(63);
        for (v, want) in [
            ("a", true),
            ("a-", false),
            ("a_b", true),
            ("1a", false),
            (long.as_str(), true),
        ] {
            assert_eq!(is_task_name(v), want, "{v}");
        }
        assert!(!is_task_name(&"a".repeat(64)));
    }

    #[test]
    fn quantities() {
        for ok in ["2", "500m", "0.5", "4Gi", "1.5G", "1e3", "10Ki"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        let e = check_quantity("4GB").unwrap_err();
        assert!(e.contains("4Gi"), "{e}");
        for bad in ["", "4 Gi", "-1", "Gi", "4gb", "1..2"] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
        for ok in ["7Ei", "9E", "9223372036854775", "1e18", "1e-400"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        for big in [
            "8Ei",
            "10E",
            "99999999999999999999999Ei",
            "1e400",
            "1e19",
            "9223372036854775808",
        ] {
            let e = check_quantity(big).unwrap_err();
            assert!(e.contains("larger than Kubernetes"), "{big}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert_eq!(parse_duration("2d").unwrap(), 172800);
        assert!(parse_duration("30 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION_SECONDS);
        assert_eq!(parse_duration("31622400").unwrap(), MAX_DURATION_SECONDS);
        for long in [
            "367d",
            "366d1s",
            "31622401",
            "213503982334602d",
            "999999999999999999d",
            "99999999999999999999999",
            "18446744073709551615s",
            "1d99999999999999999999h",
        ] {
            let e = parse_duration(long).unwrap_err();
            assert!(e.contains("366 days"), "{long}: {e}");
        }
        assert!(check_duration(MAX_DURATION_SECONDS).is_ok());
        assert!(check_duration(u64::MAX).unwrap_err().contains("366 days"));
    }

    #[test]
    fn control_characters() {
        assert_eq!(first_control("tab\tnew\nline\r ünï €"), None);
        for c in ['\0', '\x01', '\x1b', '\x7f', '\u{85}', '\u{9f}'] {
            let v = format!("a{c}b");
            assert_eq!(first_control(&v), Some(c));
            assert!(check_text(&v, "env `A`").unwrap_err().contains("env `A`"));
        }
        assert!(check_text("x\0", "v").unwrap_err().contains("U+0000"));
        let mut deep = serde_json::json!("x");
        for _ in 0..MAX_JSON_DEPTH - 1 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        assert!(check_json(&deep).is_ok());
        let too = serde_json::json!({ "k": deep });
        assert!(check_json(&too).unwrap_err().contains("64 levels"));
        assert!(check_json(&serde_json::json!({"a\u{1b}": 1}))
            .unwrap_err()
            .contains("U+001B"));
    }

    #[test]
    fn names() {
        assert!(check_task_name("load_data").is_ok());
        assert!(check_task_name("Load").is_err());
        assert!(check_task_name("1abc").is_err());
        assert!(check_task_name("a-").is_err());
        assert_eq!(
            sanitise_name("Churn Model (v2).final"),
            "churn-model-v2-final"
        );
        assert_eq!(sanitise_name("2024"), "pipeline");
        assert_eq!(sanitise_name("nb0994"), "nb0994");
        assert_eq!(sanitise_name("2024_sales-v2"), "sales-v2");
        assert_eq!(sanitise_name("ünïcode"), "n-code");
        assert!(check_image("python:3.11-slim").is_ok());
        assert!(check_image("localhost:5000/a/b@sha256:".to_string().as_str()).is_err());
        assert!(check_image("ghcr.io/org/img:1.0").is_ok());
        assert!(check_image("img;rm -rf").is_err());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_value("has space").is_err());
    }
}
