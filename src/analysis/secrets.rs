//! Hard-coded secrets in cell code: well-known credential formats anywhere in the cell
//! (comments included: a key in a comment leaks too), and string literals assigned or
//! passed to names that say "password", "token", "secret", ... The value is never
//! reported, only its kind and where it is.

use std::sync::{LazyLock, OnceLock};

use regex::Regex;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;

use super::LineIndex;

/// One finding: where, what kind, and (for named values) the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    /// 1-based line within the text scanned.
    pub line: usize,
    pub kind: &'static str,
    pub name: Option<String>,
}

/// A credential format: every match contains one of `needles` (ASCII case ignored when
/// `nocase`), so its regex is compiled and run only for a text that has one. Most cells
/// have none, and a process then builds no regex at all.
struct Pattern {
    kind: &'static str,
    needles: &'static [&'static str],
    nocase: bool,
    re: &'static str,
}

impl Pattern {
    fn may_match(&self, text: &str) -> bool {
        if self.nocase {
            contains_nocase(text, self.needles)
        } else {
            self.needles.iter().any(|n| text.contains(n))
        }
    }
}

/// Whether `text` has a match of `(?i)needle` for one of `needles` (lowercase ASCII
/// letters): a
/// `ſ` (U+017F, folds to `s`) or `K` (U+212A, folds to `k`) counts as a possible match.
fn contains_nocase(text: &str, needles: &[&str]) -> bool {
    if text.contains(['\u{17F}', '\u{212A}']) {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    needles.iter().any(|n| lower.contains(n))
}

/// Cheap pre-filter: most cells mention no credential-like name (any match of
/// [`SECRET_NAME`] holds one of these), and then the parser need not run.
const NAME_HINTS: &[&str] = &["pass", "pwd", "secret", "token", "key", "credential"];

const PATTERNS: &[Pattern] = &[
    Pattern {
        kind: "an AWS access key id",
        needles: &["AKIA", "ASIA", "ABIA", "ACCA"],
        nocase: false,
        re: r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    },
    Pattern {
        kind: "an AWS secret access key",
        needles: &["aws"],
        nocase: true,
        re: r#"(?i)aws.{0,20}secret.{0,20}['"][A-Za-z0-9/+=]{40}['"]"#,
    },
    Pattern {
        kind: "a private key",
        needles: &["-----BEGIN "],
        nocase: false,
        re: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    },
    Pattern {
        kind: "a GitHub token",
        needles: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        nocase: false,
        re: r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{50,}\b",
    },
    Pattern {
        kind: "a GitLab token",
        needles: &["glpat-"],
        nocase: false,
        re: r"\bglpat-[A-Za-z0-9_-]{20,}\b",
    },
    Pattern {
        kind: "a Slack token",
        needles: &["xox"],
        nocase: false,
        re: r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b",
    },
    Pattern {
        kind: "a Stripe secret key",
        needles: &["_live_"],
        nocase: false,
        re: r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b",
    },
    Pattern {
        kind: "a Google API key",
        needles: &["AIza"],
        nocase: false,
        re: r"\bAIza[0-9A-Za-z_-]{35}\b",
    },
    Pattern {
        kind: "an OpenAI API key",
        needles: &["sk-"],
        nocase: false,
        re: r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b",
    },
    Pattern {
        kind: "a Hugging Face token",
        needles: &["hf_"],
        nocase: false,
        re: r"\bhf_[A-Za-z0-9]{30,}\b",
    },
    Pattern {
        kind: "an Azure storage account key",
        needles: &["AccountKey="],
        nocase: false,
        re: r"AccountKey=[A-Za-z0-9+/=]{60,}",
    },
    Pattern {
        kind: "a JSON web token",
        needles: &["eyJ"],
        nocase: false,
        re: r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",
    },
    // scheme://user:password@host, but not a placeholder password.
    Pattern {
        kind: "a password in a connection string",
        needles: &["://"],
        nocase: false,
        re: r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\x22]{1,64}:([^\s@/'\x22]{3,128})@[A-Za-z0-9.-]+",
    },
];

/// The patterns' regexes, each compiled the first time its needle is seen.
static COMPILED: [OnceLock<Regex>; PATTERNS.len()] = [const { OnceLock::new() }; PATTERNS.len()];

fn compiled(i: usize) -> &'static Regex {
    COMPILED[i].get_or_init(|| Regex::new(PATTERNS[i].re).expect("secret pattern"))
}

/// Names whose string value is a credential.
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|_)(?:password|passwd|pwd|passphrase|secret|secret_key|token|api_?key|access_?key|auth_?key|private_?key|client_secret|credentials?)$").unwrap()
});

/// Values that are obviously not real credentials.
fn is_placeholder(v: &str) -> bool {
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    t.len() < 6
        || t.chars().all(|c| c == t.chars().next().unwrap_or('x'))
        || t.starts_with('<') && t.ends_with('>')
        || t.starts_with("${")
        || t.starts_with("{{")
        || t.starts_with('{') && t.ends_with('}')
        || t.starts_with('$')
        || t.contains(' ') && !t.contains("://")
        || [
            "your",
            "changeme",
            "change_me",
            "example",
            "placeholder",
            "dummy",
            "redacted",
            "xxxx",
            "****",
            "todo",
            "fixme",
            "insert",
            "replace",
            "none",
            "null",
            "secret_name",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

pub fn find_secrets(text: &str) -> Vec<SecretFinding> {
    let named = contains_nocase(text, NAME_HINTS);
    let formats: Vec<usize> = (0..PATTERNS.len())
        .filter(|&i| PATTERNS[i].may_match(text))
        .collect();
    if !named && formats.is_empty() {
        return Vec::new();
    }
    let lines = LineIndex::new(text);
    let mut out: Vec<SecretFinding> = Vec::new();
    for &i in &formats {
        let p = &PATTERNS[i];
        for caps in compiled(i).captures_iter(text) {
            let m = caps.get(0).expect("whole match");
            // For connection strings, the password group must look real.
            if let Some(pw) = caps.get(1) {
                if is_placeholder(pw.as_str()) {
                    continue;
                }
            }
            out.push(SecretFinding {
                line: lines.line_col(m.start()).0,
                kind: p.kind,
                name: None,
            });
        }
    }
    // Named values, from the syntax tree (only when the text parses).
    let parsed = super::parse_python(if named { text } else { "" });
    if let Some(parsed) = parsed.ok().filter(|p| named && p.errors().is_empty()) {
        if let Some(module) = parsed.syntax().as_module() {
            let mut v = Named {
                lines: &lines,
                out: &mut out,
            };
            for s in &module.body {
                v.visit_stmt(s);
            }
        }
    }
    out.sort_by(|a, b| (a.line, a.kind).cmp(&(b.line, b.kind)));
    out.dedup_by(|a, b| a.line == b.line);
    out
}

struct Named<'a> {
    lines: &'a LineIndex,
    out: &'a mut Vec<SecretFinding>,
}

impl Named<'_> {
    fn check(&mut self, name: &str, value: &Expr) {
        if !SECRET_NAME.is_match(name) {
            return;
        }
        if let Expr::StringLiteral(s) = value {
            if !is_placeholder(s.value.to_str()) {
                self.out.push(SecretFinding {
                    line: self.lines.line_col(value.range().start().to_usize()).0,
                    kind: "a hard-coded credential",
                    name: Some(name.to_string()),
                });
            }
        }
    }
}

impl<'a> Visitor<'a> for Named<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Assign(a) => {
                for t in &a.targets {
                    match t {
                        Expr::Name(n) => self.check(&n.id, &a.value),
                        Expr::Attribute(at) => self.check(&at.attr.id, &a.value),
                        Expr::Subscript(sub) => {
                            if let Expr::StringLiteral(k) = &*sub.slice {
                                self.check(k.value.to_str(), &a.value);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Stmt::AnnAssign(a) => {
                if let (Expr::Name(n), Some(v)) = (&*a.target, &a.value) {
                    self.check(&n.id, v);
                }
            }
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Call(c) => {
                for kw in &c.arguments.keywords {
                    if let Some(arg) = &kw.arg {
                        self.check(&arg.id, &kw.value);
                    }
                }
            }
            Expr::Dict(d) => {
                for item in &d.items {
                    if let Some(Expr::StringLiteral(k)) = &item.key {
                        self.check(k.value.to_str(), &item.value);
                    }
                }
            }
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::find_secrets;

    /// Each case: (code, is it a secret).
    const CASES: &[(&str, bool)] = &[
        ("aws_key = 'AKIAIOSFODNN7EXAMPLQ'", true),
        ("# AKIAIOSFODNN7EXAMPLQ in a comment", true),
        ("key = '''-----BEGIN RSA PRIVATE KEY-----\nMIIE...'''", true),
        ("password = 'hunter2!x'", true),
        ("DB_PASSWORD = \"s3cr3t-Pa55\"", true),
        (
            "conn = psycopg2.connect(host='db', password='Tr0ub4dor&3')",
            true,
        ),
        (
            "cfg = {'api_key': 'a8f5f167f44f4964e6c998dee827110c'}",
            true,
        ),
        (
            "url = 'postgresql://analyst:Sup3rS3cret@db.internal:5432/sales'",
            true,
        ),
        ("token = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789AB'", true),
        ("client.auth_token = 'xoxb-1234567890-abcdefghijkl'", true),
        (
            "settings['secret_key'] = 'django-insecure-9a8b7c6d5e'",
            true,
        ),
        (
            "openai.api_key = 'sk-proj-abcdefghijklmnopqrstuvwxyz0123456789'",
            true,
        ),
        ("password = os.environ['DB_PASSWORD']", false),
        ("password = getpass.getpass()", false),
        ("token = None", false),
        ("password = ''", false),
        ("password = '<your-password>'", false),
        ("api_key = 'YOUR_API_KEY'", false),
        ("secret_name = 'db-credentials'", false),
        ("token_url = 'https://auth.example.com/token'", false),
        ("password_env = 'DB_PASSWORD'", false),
        (
            "url = 'postgresql://analyst:${DB_PASSWORD}@db:5432/sales'",
            false,
        ),
        ("url = 'https://example.com/path?q=1'", false),
        ("password = '********'", false),
        ("n_tokens = 512", false),
        (
            "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
            false,
        ),
        ("print('set the password in the secret, not here')", false),
        ("secret = os.getenv('SECRET')", false),
        ("connect(password=pw)", false),
        ("key = 'sha256'", false),
    ];

    #[test]
    fn finds_secrets_with_few_false_positives() {
        for (code, secret) in CASES {
            let found = find_secrets(code);
            assert_eq!(!found.is_empty(), *secret, "{code}: {found:?}");
        }
    }

    #[test]
    fn lines_are_reported() {
        let f = find_secrets("x = 1\n\npassword = 'hunter2!x'\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].line, 3);
        assert_eq!(f[0].name.as_deref(), Some("password"));
    }

    /// The literal pre-filters stand in for `(?i)` regexes: case variants, and the two
    /// non-ASCII letters that fold to ASCII ones, still reach the regex.
    #[test]
    fn case_folded_spellings_are_still_found() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYq8zRTmKEY0"; // 40 characters
        for code in [
            format!("cfg = 'AwS sEcReT' + '{key}'"),
            format!("cfg = 'aw\u{17F} secret' + '{key}'"),
            "PassWord = 'hunter2!x'".to_string(),
            "api_\u{212A}ey = 'a8f5f167f44f4964e6c998dee827110c'".to_string(),
        ] {
            assert!(!super::find_secrets(&code).is_empty(), "{code}");
        }
        let lowercase = |n: &&str| n.bytes().all(|b| b.is_ascii_lowercase());
        assert!(super::NAME_HINTS.iter().all(lowercase));
        assert!(super::PATTERNS
            .iter()
            .filter(|p| p.nocase)
            .all(|p| p.needles.iter().all(lowercase)));
        let needle_free = "x = compute(1)\nprint(x)";
        assert!(!super::contains_nocase(needle_free, super::NAME_HINTS));
        assert!(super::PATTERNS.iter().all(|p| !p.may_match(needle_free)));
    }
}
