//! What the kubelet does to a container spec before the runtime sees it, as pure
//! functions: the final environment (envFrom first, then env in order, each value
//! expanded against the variables before it), `$(VAR)` expansion of command and args,
//! and resource quantities as the numbers a container runtime takes.

use std::collections::BTreeMap;

/// Kubernetes' expansion of `$(NAME)` in env values, command and args: a defined
/// name is replaced, an undefined one is left as written, `$$` is a literal `$`, and
/// any other `$` stays.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'$' => {
                out.push_str(&s[lit..i]);
                out.push('$');
                i += 2;
                lit = i;
            }
            b'(' => match s[i + 2..].find(')') {
                Some(close) => {
                    let name = &s[i + 2..i + 2 + close];
                    out.push_str(&s[lit..i]);
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + close]),
                    }
                    i += 3 + close;
                    lit = i;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    out.push_str(&s[lit..]);
    out
}

/// A memory quantity in bytes (`512Mi`, `2G`, `1e9`, `1000`).
pub fn bytes(q: &str) -> Option<i64> {
    let (num, mult): (&str, f64) = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ]
    .iter()
    .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
    .unwrap_or((q, 1.0));
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * mult).ceil() as i64)
}

/// A CPU quantity in billionths of a CPU (Docker's NanoCpus): `500m`, `2`, `0.5`.
pub fn nano_cpus(q: &str) -> Option<i64> {
    let v: f64 = match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()? / 1000.0,
        None => q.parse().ok()?,
    };
    (v.is_finite() && v > 0.0).then(|| (v * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let v = vars(&[("A", "x"), ("DATA", "/d")]);
        assert_eq!(expand("$(A)-$(DATA)", &v), "x-/d");
        assert_eq!(expand("costs $$5", &v), "costs $5");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$(UNDEFINED) $5 $", &v), "$(UNDEFINED) $5 $");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("a$$$$b", &v), "a$$b");
        // What nb2pipe writes for a user value survives: every `$` doubled.
        let user = "p$(A)$$x$";
        assert_eq!(expand(&user.replace('$', "$$"), &v), user);
    }

    #[test]
    fn quantities() {
        assert_eq!(bytes("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(bytes("2G"), Some(2_000_000_000));
        assert_eq!(bytes("1000"), Some(1000));
        assert_eq!(bytes("1.5Gi"), Some(1_610_612_736));
        assert_eq!(bytes("lots"), None);
        assert_eq!(nano_cpus("500m"), Some(500_000_000));
        assert_eq!(nano_cpus("2"), Some(2_000_000_000));
        assert_eq!(nano_cpus("0.25"), Some(250_000_000));
        assert_eq!(nano_cpus("x"), None);
    }
}
