//! Hard-coded secrets in cell code: well-known credential formats anywhere in the cell
//! (comments included: a key in a comment leaks too), and string literals assigned or
//! passed to names that say "password", "token", "secret", ... The value is never
//! reported, only its kind and where it is.

use std::sync::LazyLock;

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

struct Pattern {
    kind: &'static str,
    re: Regex,
}

/// Cheap pre-filters: most cells mention no credential-like name and hold no known
/// credential prefix, and then neither the regexes nor the parser need to run.
static NAME_HINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)pass|pwd|secret|token|key|credential").unwrap());
static FORMAT_HINT: LazyLock<regex::RegexSet> =
    LazyLock::new(|| regex::RegexSet::new(PATTERNS.iter().map(|p| p.re.as_str())).unwrap());

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str| Pattern {
        kind,
        re: Regex::new(re).expect("secret pattern"),
    };
    vec![
        p(
            "an AWS access key id",
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        ),
        p(
            "an AWS secret access key",
            r#"(?i)aws.{0,20}secret.{0,20}['"][A-Za-z0-9/+=]{40}['"]"#,
        ),
        p(
            "a private key",
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
        ),
        p(
            "a GitHub token",
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{50,}\b",
        ),
        p("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
        p("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
        p(
            "a Stripe secret key",
            r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b",
        ),
        p("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        p("an OpenAI API key", r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b"),
        p("a Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}\b"),
        p(
            "an Azure storage account key",
            r"AccountKey=[A-Za-z0-9+/=]{60,}",
        ),
        p(
            "a JSON web token",
            r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",
        ),
        // scheme://user:password@host, but not a placeholder password.
        p(
            "a password in a connection string",
            r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\x22]{1,64}:([^\s@/'\x22]{3,128})@[A-Za-z0-9.-]+",
        ),
    ]
});

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
    let named = NAME_HINT.is_match(text);
    let formats = FORMAT_HINT.matches(text);
    if !named && !formats.matched_any() {
        return Vec::new();
    }
    let lines = LineIndex::new(text);
    let mut out: Vec<SecretFinding> = Vec::new();
    for p in formats.iter().map(|i| &PATTERNS[i]) {
        for caps in p.re.captures_iter(text) {
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
}
