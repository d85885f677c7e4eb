//! Validation of tag values: Kubernetes quantities, names, label keys, durations.

use std::sync::LazyLock;

use regex::Regex;

static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$",
    )
    .unwrap()
});
static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").unwrap());
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").unwrap()
});
static TASK_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]([a-z0-9_-]{0,61}[a-z0-9])?$").unwrap());
static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").unwrap());
static LABEL_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$").unwrap());
static LABEL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$").unwrap());
static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$").unwrap());
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$").unwrap()
});
static POOL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.-]{1,256}$").unwrap());

/// A Kubernetes resource quantity (`500m`, `2`, `4Gi`, `1.5G`).
pub fn check_quantity(v: &str) -> Result<(), String> {
    if QUANTITY.is_match(v) {
        return Ok(());
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

pub fn check_count(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .map_err(|_| format!("`{v}` is not a whole number"))
}

/// Task names: lowercase letters, digits, `-`, `_`; a letter first; 63 characters at most.
pub fn check_task_name(v: &str) -> Result<(), String> {
    if TASK_NAME.is_match(v) {
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
    let trimmed = out.trim_matches(|c: char| c == '-' || c == '_' || c.is_ascii_digit());
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
    if DNS_LABEL.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid {what}: lowercase letters, digits and `-`, at most 63 characters"
        ))
    }
}

pub fn check_dns_subdomain(v: &str, what: &str) -> Result<(), String> {
    if v.len() <= 253 && DNS_SUBDOMAIN.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid {what}: lowercase letters, digits, `-` and `.`"
        ))
    }
}

pub fn check_env_name(v: &str) -> Result<(), String> {
    if ENV_NAME.is_match(v) {
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
    if LABEL_NAME.is_match(name) {
        Ok(())
    } else {
        Err(format!("`{v}` is not a valid label or annotation key"))
    }
}

pub fn check_label_value(v: &str) -> Result<(), String> {
    if LABEL_VALUE.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid label value: at most 63 letters, digits, `-`, `_`, `.`"
        ))
    }
}

/// `90`, `30s`, `30m`, `1h30m`, `2d` → seconds.
pub fn parse_duration(v: &str) -> Result<u64, String> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(n);
    }
    let bad = || format!("`{v}` is not a duration (like `90`, `30s`, `30m`, `1h30m`, `2d`)");
    let c = DURATION
        .captures(v)
        .filter(|_| !v.is_empty())
        .ok_or_else(bad)?;
    let part = |i: usize, mul: u64| {
        c.get(i)
            .map(|m| m.as_str().parse::<u64>().unwrap_or(0) * mul)
            .unwrap_or(0)
    };
    Ok(part(1, 86400) + part(2, 3600) + part(3, 60) + part(4, 1))
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
    if POOL.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid pool name: letters, digits, `_`, `-`, `.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert_eq!(parse_duration("2d").unwrap(), 172800);
        assert!(parse_duration("30 minutes").is_err());
        assert!(parse_duration("").is_err());
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
        assert_eq!(sanitise_name("ünïcode"), "n-code");
        assert!(check_image("python:3.11-slim").is_ok());
        assert!(check_image("localhost:5000/a/b@sha256:".to_string().as_str()).is_err());
        assert!(check_image("ghcr.io/org/img:1.0").is_ok());
        assert!(check_image("img;rm -rf").is_err());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_value("has space").is_err());
    }
}
