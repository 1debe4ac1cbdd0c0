//! Secret redaction: evidence is stored and shown to people, so tokens, keys and passwords are
//! masked before a line leaves the analyzer.

use regex::Regex;
use std::sync::OnceLock;

struct Rule {
    re: Regex,
    /// Replacement; `$k` keeps the group named `k` (the key of `key=value`).
    with: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let r = |p: &str, with: &'static str| Rule {
            re: Regex::new(p).expect("redaction pattern compiles"),
            with,
        };
        vec![
            r(
                r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*",
                "-----BEGIN PRIVATE KEY----- [REDACTED]",
            ),
            r(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", "[REDACTED]"),
            r(r"\bglpat-[A-Za-z0-9_\-]{16,}", "[REDACTED]"),
            r(r"\b(glcbt|glrt|gldt|glptt)-[A-Za-z0-9_\-]{16,}", "[REDACTED]"),
            r(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "[REDACTED]"),
            r(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", "[REDACTED]"),
            r(r"\bnpm_[A-Za-z0-9]{36}\b", "[REDACTED]"),
            r(r"\bsk-[A-Za-z0-9_\-]{20,}", "[REDACTED]"),
            r(r"\bAIza[0-9A-Za-z_\-]{35}\b", "[REDACTED]"),
            r(
                r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
                "[REDACTED]",
            ),
            r(
                r"(?i)(?P<k>\b(bearer|token|basic)\s+)[A-Za-z0-9_\-\.=:+/]{8,}",
                "${k}[REDACTED]",
            ),
            r(
                r"(?P<k>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@",
                "${k}[REDACTED]@",
            ),
            r(
                r#"(?i)(?P<k>\b[\w\-]*(password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|auth)[\w\-]*["']?\s*[=:]\s*["']?)[^\s"'&,;]{3,}"#,
                "${k}[REDACTED]",
            ),
        ]
    })
}

/// Mask secrets in one line of text.
pub fn redact(line: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(line);
    for rule in rules() {
        if rule.re.is_match(&out) {
            out = std::borrow::Cow::Owned(rule.re.replace_all(&out, rule.with).into_owned());
        }
    }
    out.into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn tokens_are_masked() {
        let cases = [
            "git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/a/b",
            "export GITLAB_TOKEN=glpat-abcdefghijklmnopqrst",
            "aws key AKIAIOSFODNN7EXAMPLE used",
            "Authorization: Bearer abc.def-ghi_jkl",
            "mysql --password=hunter2 -u root",
            "https://user:s3cr3t@registry.example.com/v2/",
            "DB_PASSWORD: 'hunter22'",
            "slack xoxb-123456789012-abcdefghij",
        ];
        for c in cases {
            let r = redact(c);
            assert!(r.contains("[REDACTED]"), "{c} -> {r}");
            for secret in [
                "ghp_abcdefghij",
                "glpat-abcdef",
                "AKIAIOSFODNN7EXAMPLE",
                "abc.def-ghi_jkl",
                "hunter2",
                "s3cr3t",
                "xoxb-1234",
            ] {
                assert!(!r.contains(secret), "{c} -> {r}");
            }
        }
    }

    #[test]
    fn ordinary_lines_are_untouched() {
        for c in [
            "error[E0425]: cannot find value `x` in this scope",
            "test result: FAILED. 3 passed; 1 failed",
            "Could not resolve host: gitlab.com",
            "https://gitlab.com/veloren/veloren.git/",
            "password prompt skipped",
        ] {
            assert_eq!(redact(c), c);
        }
    }
}
