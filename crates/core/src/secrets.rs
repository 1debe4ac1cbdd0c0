//! Redaction of text that leaves the process (a prompt sent to a model, a notification).
//!
//! Evidence lines are already masked one by one by [`crate::analysis::redact`]; text sent
//! elsewhere may hold more: whole private-key blocks over many lines, connection strings,
//! webhook URLs, e-mail addresses and the names of internal hosts. [`Redactor`] applies the
//! analyzer's line rules and then its own, so whatever the analyzer masks stays masked.

use crate::analysis::redact::redact as redact_line;
use regex::{Captures, Regex};
use std::sync::OnceLock;

/// What a masked secret becomes.
pub const REDACTED: &str = "[REDACTED]";
/// What a masked private-key block becomes (the whole block, one line).
pub const REDACTED_KEY: &str = "[REDACTED PRIVATE KEY]";
/// What a masked e-mail address becomes.
pub const REDACTED_EMAIL: &str = "[EMAIL]";
/// What a masked internal host name becomes.
pub const REDACTED_HOST: &str = "[INTERNAL-HOST]";

/// One family of secrets (named in the tables below): a pattern, its replacement (`$k` keeps the group named `k`), and
/// matches that look alike but are not secrets.
struct Rule {
    re: Regex,
    with: &'static str,
    keep: Option<fn(&str) -> bool>,
}

/// Rules applied before the analyzer's: they need text the analyzer would mask first.
const BEFORE_LINE_RULES: &[(&str, &str, &str)] = &[
    (
        // An AWS secret next to its access key id (credentials CSV, `aws configure` echoes).
        "aws_key_pair",
        r"(?P<k>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b[\s,:;=|]{1,5})[A-Za-z0-9/+]{40}",
        "${k}[REDACTED]",
    ),
    (
        // Every GitLab token family, with an optional instance prefix (`acme-glpat-…`; new PATs carry dots).
        "gitlab_token",
        r"\b(?:[A-Za-z0-9]+-)?(?:glpat|gloas|gldt|glrt|glrtr|glcbt|glptt|glft|glimt|glagent|glsoat|glffct|glwt)-[A-Za-z0-9_.\-]{16,}",
        "[REDACTED]",
    ),
];

/// Rules applied after the analyzer's, in order.
const AFTER_LINE_RULES: &[(&str, &str, &str)] = &[
    (
        // The secret access key after its name, also when separated by spaces only.
        "aws_secret_access_key",
        r#"(?i)(?P<k>\b(?:aws_?)?secret_?access_?key["']?[\s:=]+["']?)[A-Za-z0-9/+=]{16,}"#,
        "${k}[REDACTED]",
    ),
    (
        "gitlab_runner_registration_token",
        r"\bGR1348941[A-Za-z0-9_\-]{16,}",
        "[REDACTED]",
    ),
    (
        "slack_webhook",
        r"(?P<k>https://hooks\.slack(?:-gov)?\.com/)(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        "${k}[REDACTED]",
    ),
    (
        "slack_token",
        r"\b(?:xox[a-z]|xapp|xoxe\.xox[a-z])-[A-Za-z0-9\-]{10,}",
        "[REDACTED]",
    ),
    (
        // `redis://:password@host`: a password without a user name.
        "url_password_without_user",
        r"(?P<k>\b[a-zA-Z][a-zA-Z0-9+.\-]*://:)[^\s@/]+@",
        "${k}[REDACTED]@",
    ),
    (
        // `jdbc:oracle:thin:scott/tiger@host:1521:orcl`.
        "jdbc_oracle",
        r"(?P<k>\bjdbc:oracle:[a-z]+:[^/\s@:]+/)[^@\s]+@",
        "${k}[REDACTED]@",
    ),
    (
        // Azure storage and service-bus connection strings.
        "azure_connection_string",
        r#"(?i)(?P<k>\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)\s*=\s*)[^;\s"']+"#,
        "${k}[REDACTED]",
    ),
    (
        // `mysql -uroot -psecret` (the password glued to `-p`).
        "mysql_password_flag",
        r"(?P<k>\bmysql(?:dump|admin|import|sh)?\s(?:[^\n]*?\s)?-p)[^\s]+",
        "${k}[REDACTED]",
    ),
    (
        // `curl -u user:password`.
        "curl_user_password",
        r#"(?P<k>\bcurl\s(?:[^\n]*?\s)?(?:-u|--user)\s*["']?[^:\s"']+:)[^\s"']+"#,
        "${k}[REDACTED]",
    ),
    (
        // Any `Authorization:` header, whatever its scheme (Digest, AWS4-HMAC-SHA256, ApiKey…).
        "authorization_header",
        r#"(?i)(?P<k>\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)[^\r\n]+"#,
        "${k}[REDACTED]",
    ),
    (
        // Long base64 runs (key material, encoded credentials); hashes are hex and stay.
        // Long base64 runs standing alone as a value (key material, encoded credentials); runs
        // glued to dots or dashes are paths and file names.
        "base64_blob",
        r#"(?P<k>^|[\s"'=:,(\[{<>])[A-Za-z0-9+/]{60,}={0,2}(?P<post>[\s"',;)\]}<>]|$)"#,
        "${k}[REDACTED]${post}",
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
        "[EMAIL]",
    ),
];

/// Matches of a rule that are not secrets.
fn keep_of(kind: &str) -> Option<fn(&str) -> bool> {
    match kind {
        // Encoded data mixes cases with about one digit in six and few slashes; identifiers
        // (`testThatItWorksWithGETRequestAnd204Status`), paths, URLs and hex digests do not.
        "base64_blob" => Some(|s: &str| {
            let digits = s.bytes().filter(|b| b.is_ascii_digit()).count();
            !(s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase()))
                || digits * 20 < s.len()
                || s.contains("//")
                || s.matches('/').count() * 16 > s.len()
        }),
        // `git@github.com` is the SSH user of every forge, not a person.
        "email" => Some(|s: &str| s.starts_with("git@")),
        _ => None,
    }
}

fn compile(table: &[(&'static str, &str, &'static str)]) -> Vec<Rule> {
    table
        .iter()
        .map(|&(kind, pattern, with)| Rule {
            re: Regex::new(pattern).expect("secret pattern compiles"),
            with,
            keep: keep_of(kind),
        })
        .collect()
}

fn before_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| compile(BEFORE_LINE_RULES))
}

/// The after-rules for stored text: secrets only (e-mail addresses and long base64 runs
/// such as artifact digests stay, for diagnosis).
fn storage_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let secrets: Vec<_> = AFTER_LINE_RULES
            .iter()
            .copied()
            .filter(|(kind, _, _)| !matches!(*kind, "email" | "base64_blob"))
            .collect();
        compile(&secrets)
    })
}

fn after_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| compile(AFTER_LINE_RULES))
}

fn apply(rules: &[Rule], line: String) -> String {
    let mut out = line;
    for rule in rules {
        if !rule.re.is_match(&out) {
            continue;
        }
        out = rule
            .re
            .replace_all(&out, |c: &Captures| {
                let whole = &c[0];
                if rule.keep.is_some_and(|keep| keep(whole)) {
                    return whole.to_string();
                }
                let mut s = String::new();
                c.expand(rule.with, &mut s);
                s
            })
            .into_owned();
    }
    out
}

fn key_markers() -> &'static (Regex, Regex, Regex) {
    static RE: OnceLock<(Regex, Regex, Regex)> = OnceLock::new();
    RE.get_or_init(|| {
        (
            Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----").expect("compiles"),
            Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----").expect("compiles"),
            // A body line of a PEM/OpenSSH/PGP block, possibly behind a log prefix.
            Regex::new(r"^(?:.*\s)?(?:[A-Za-z0-9+/=]{16,}|(?:Proc-Type|DEK-Info|Comment|Version):.*|=[A-Za-z0-9+/]{4})?\s*$")
                .expect("compiles"),
        )
    })
}

fn without_eol(raw: &str) -> &str {
    raw.strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(raw)
}

/// Private-key blocks masked as a whole (`BEGIN` to `END`, or to the first line that is not
/// key material), the rest of each line through `line(index, text)`. One result per line:
/// `None` for a line swallowed by a block that began on an earlier line.
fn mask_key_blocks<S: AsRef<str>>(
    lines: &[S],
    mut line: impl FnMut(usize, &str) -> String,
) -> Vec<Option<String>> {
    let (begin, end, body) = key_markers();
    let mut in_key = false;
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let mut rest = l.as_ref();
        if in_key {
            if let Some(m) = end.find(rest) {
                rest = &rest[m.end()..];
                in_key = false;
                if rest.trim().is_empty() {
                    out.push(None);
                    continue;
                }
            } else if body.is_match(rest) {
                out.push(None);
                continue;
            } else {
                in_key = false;
            }
        }
        let mut masked = String::new();
        while let Some(b) = begin.find(rest) {
            masked.push_str(&line(i, &rest[..b.start()]));
            masked.push_str(REDACTED_KEY);
            match end.find_at(rest, b.end()) {
                Some(e) => rest = &rest[e.end()..],
                None => {
                    rest = "";
                    in_key = true;
                }
            }
        }
        masked.push_str(&line(i, rest));
        out.push(Some(masked));
    }
    out
}

/// Lines this close to an AWS access key id or a secret-key label may hold the secret key
/// alone (the `aws configure` prompts, a credentials file, a CSV split over lines).
const AWS_CONTEXT_LINES: usize = 3;

fn aws_patterns() -> &'static (Regex, Regex) {
    static RE: OnceLock<(Regex, Regex)> = OnceLock::new();
    RE.get_or_init(|| {
        (
            Regex::new(
                r"(?i)\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|aws.?secret|secret.?access.?key|\baws_?access_?key",
            )
            .expect("compiles"),
            // A 40-character secret key standing alone as a token.
            Regex::new(r#"(?P<k>^|[\s"'=:,|])[A-Za-z0-9/+]{40}(?P<post>[\s"',|]|$)"#)
                .expect("compiles"),
        )
    })
}

/// Random key material mixes cases and digits; a 40-character commit hash is lower-case hex.
fn looks_random(token: &str) -> bool {
    let has = |f: fn(&u8) -> bool| token.as_bytes().iter().any(f);
    has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit)
}

/// Masks secrets in a log or message before it is stored: private-key blocks as a whole,
/// AWS secret keys alone on a line near their key id or name, and every line through the
/// analyzer's rules ([`crate::analysis::redact::redact`]). E-mail addresses and host names are
/// kept: they help diagnose and stay inside.
pub fn redact_log(text: &str) -> String {
    let raws: Vec<&str> = text.split_inclusive('\n').collect();
    let lines: Vec<&str> = raws.iter().map(|raw| without_eol(raw)).collect();
    let (context, lone) = aws_patterns();
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| context.is_match(lines[i]))
        .collect();
    let near = |i: usize| hits.iter().any(|&h| h.abs_diff(i) <= AWS_CONTEXT_LINES);
    let masked = mask_key_blocks(&lines, |i, l| {
        let l = apply(before_rules(), l.to_string());
        let l = apply(storage_rules(), redact_line(&l));
        if !near(i) {
            return l;
        }
        lone.replace_all(&l, |c: &Captures| {
            let whole = &c[0];
            let token = &whole[c["k"].len()..whole.len() - c["post"].len()];
            if looks_random(token) {
                format!("{}{REDACTED}{}", &c["k"], &c["post"])
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
    });
    let mut out = String::with_capacity(text.len());
    for (raw, m) in raws.iter().zip(masked) {
        if let Some(m) = m {
            out.push_str(&m);
            out.push_str(&raw[without_eol(raw).len()..]);
        }
    }
    out
}

/// A host-name pattern from the configuration, e.g. `*.corp.example.com` or `10.*`.
#[derive(Debug, thiserror::Error)]
#[error("invalid internal host pattern {0:?}: use letters, digits, '-', '.' and '*' (e.g. \"*.corp.example.com\", \"10.*\")")]
pub struct InvalidHostPattern(pub String);

fn host_regex(pattern: &str) -> Result<Regex, InvalidHostPattern> {
    let p = pattern.trim();
    let valid = !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'))
        && p.chars().any(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(InvalidHostPattern(pattern.to_string()));
    }
    let body: Vec<String> = p.split('*').map(regex::escape).collect();
    // `*` stands for one or more labels (or address octets).
    let body = body.join(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*");
    Regex::new(&format!(
        r"(?i)(?P<pre>^|[^A-Za-z0-9\-.])(?:{body})(?P<post>[^A-Za-z0-9\-]|$)"
    ))
    .map_err(|_| InvalidHostPattern(pattern.to_string()))
}

/// Masks secrets, e-mail addresses and internal host names in text that leaves the process.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    hosts: Vec<Regex>,
}

impl Redactor {
    /// A redactor that also masks host names matching `internal_hosts` (`*` is any part of a
    /// name: `*.corp.example.com`, `10.*`, `build-*.internal`).
    pub fn new<S: AsRef<str>>(internal_hosts: &[S]) -> Result<Redactor, InvalidHostPattern> {
        let hosts = internal_hosts
            .iter()
            .map(|p| host_regex(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Redactor { hosts })
    }

    /// The text with every secret masked; line breaks are kept except inside a private-key
    /// block, which becomes one line.
    pub fn redact(&self, text: &str) -> String {
        let raws: Vec<&str> = text.split_inclusive('\n').collect();
        let lines: Vec<&str> = raws.iter().map(|raw| without_eol(raw)).collect();
        let mut out = String::with_capacity(text.len());
        for (raw, masked) in raws.iter().zip(self.redact_lines(&lines)) {
            if let Some(m) = masked {
                out.push_str(&m);
                out.push_str(&raw[without_eol(raw).len()..]);
            }
        }
        out
    }

    /// Each line masked, one result per line: `None` for a line swallowed by a private-key
    /// block that began on an earlier line (its first line shows [`REDACTED_KEY`]).
    pub fn redact_lines<S: AsRef<str>>(&self, lines: &[S]) -> Vec<Option<String>> {
        mask_key_blocks(lines, |_, l| self.redact_line(l))
    }

    fn redact_line(&self, line: &str) -> String {
        if line.is_empty() {
            return String::new();
        }
        let line = apply(before_rules(), line.to_string());
        let mut line = apply(after_rules(), redact_line(&line));
        for re in &self.hosts {
            // Adjacent names share a separator, so repeat until nothing changes.
            loop {
                let next = re
                    .replace_all(&line, |c: &Captures| {
                        format!("{}{REDACTED_HOST}{}", &c["pre"], &c["post"])
                    })
                    .into_owned();
                if next == line {
                    break;
                }
                line = next;
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        Redactor::default().redact(text)
    }

    /// The redacted text keeps none of `secrets` and says something was masked.
    fn masks(text: &str, secrets: &[&str]) {
        let out = r(text);
        for s in secrets {
            assert!(!out.contains(s), "{s:?} survived in {out:?}");
        }
        assert!(out.contains('['), "nothing masked in {out:?}");
    }

    #[test]
    fn github_tokens() {
        for t in [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "gho_0123456789abcdefghijABCDEFGHIJ012345",
            "ghu_0123456789abcdefghijABCDEFGHIJ012345",
            "ghs_0123456789abcdefghijABCDEFGHIJ012345",
            "ghr_0123456789abcdefghijABCDEFGHIJ012345",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS",
        ] {
            masks(&format!("remote: https://x-access-token:{t}@github.com/o/r"), &[t]);
            masks(&format!("using {t} for the checkout"), &[t]);
        }
    }

    #[test]
    fn gitlab_tokens() {
        for t in [
            "glpat-abcdefghij0123456789",
            "glpat-z_sxgtrfAxKr8q1TPY8Y.01.0w1ab2cd3",
            "gloas-0123456789abcdefghijklmnop",
            "gldt-0123456789abcdefghij",
            "glrt-0123456789abcdefghij",
            "glcbt-64_0123456789abcdefghij",
            "glft-0123456789abcdefghij",
            "glimt-0123456789abcdefghij",
            "glagent-0123456789abcdefghij",
            "glsoat-0123456789abcdefghij",
            "glffct-0123456789abcdefghij",
            "acme-glpat-0123456789abcdefghij",
            "GR13489410123456789abcdefghij",
        ] {
            masks(&format!("registering runner with {t} now"), &[t]);
        }
    }

    #[test]
    fn aws_keys() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        masks("aws key AKIAIOSFODNN7EXAMPLE", &["AKIAIOSFODNN7EXAMPLE"]);
        masks(&format!("aws_secret_access_key = {secret}"), &[secret]);
        masks(&format!("AWS_SECRET_ACCESS_KEY: {secret}"), &[secret]);
        masks(
            &format!("aws configure set aws_secret_access_key {secret}"),
            &[secret],
        );
        masks(&format!(r#""SecretAccessKey": "{secret}","#), &[secret]);
        masks(
            &format!("AKIAIOSFODNN7EXAMPLE,{secret}"),
            &["AKIAIOSFODNN7EXAMPLE", secret],
        );
    }

    #[test]
    fn private_key_blocks_over_many_lines() {
        let text = "Setting up ssh\n\
                    -----BEGIN OPENSSH PRIVATE KEY-----\n\
                    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
                    QyNTUxOQAAACDRlJ3cuC0Pu4cmzR8xzFxD3xMrIhSP4HtR5W2bSrW6UQAAAJhx1DUEcdQ1\n\
                    -----END OPENSSH PRIVATE KEY-----\n\
                    Host key verification failed.\n";
        let out = r(text);
        assert_eq!(
            out,
            "Setting up ssh\n[REDACTED PRIVATE KEY]\nHost key verification failed.\n"
        );
        // Behind CI timestamps, RSA with headers, and a key cut off by the end of the log.
        let text = "2024-05-01T10:00:00Z -----BEGIN RSA PRIVATE KEY-----\n\
                    2024-05-01T10:00:00Z Proc-Type: 4,ENCRYPTED\n\
                    2024-05-01T10:00:00Z MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n\
                    2024-05-01T10:00:00Z -----END RSA PRIVATE KEY-----\n\
                    -----BEGIN PRIVATE KEY-----\n\
                    MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
        let out = r(text);
        for s in [
            "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi",
            "MIIEvQIBADANBgkqhkiG9w0",
            "ENCRYPTED",
        ] {
            assert!(!out.contains(s), "{out}");
        }
        // A JSON-escaped key on one line.
        masks(
            r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----\n", "x": 1}"#,
            &["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"],
        );
    }

    #[test]
    fn lines_keep_their_places() {
        let out = Redactor::default().redact_lines(&[
            "key:",
            "-----BEGIN PRIVATE KEY-----",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw",
            "-----END PRIVATE KEY----- loaded",
            "-----END PRIVATE KEY-----",
            "token=abcdef123",
        ]);
        assert_eq!(
            out,
            vec![
                Some("key:".to_string()),
                Some(REDACTED_KEY.to_string()),
                None,
                Some(" loaded".to_string()),
                Some("-----END PRIVATE KEY-----".to_string()),
                Some("token=[REDACTED]".to_string()),
            ]
        );
    }

    #[test]
    fn a_key_block_ends_at_the_first_line_that_is_not_key_material() {
        let out = r("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5\nerror: could not load key\n");
        assert_eq!(out, "[REDACTED PRIVATE KEY]\nerror: could not load key\n");
    }

    #[test]
    fn passwords_and_connection_strings() {
        let cases: &[(&str, &str)] = &[
            ("postgres://app:pg-s3cret@db:5432/app", "pg-s3cret"),
            ("postgresql://app@db/app?sslmode=require&password=pg-s3cret", "pg-s3cret"),
            ("mysql://root:my-s3cret@127.0.0.1:3306/test", "my-s3cret"),
            ("mongodb+srv://admin:mongo-s3cret@cluster0.abcde.mongodb.net/db", "mongo-s3cret"),
            ("mongodb://admin:mongo-s3cret@mongo:27017", "mongo-s3cret"),
            ("redis://:redis-s3cret@cache:6379/0", "redis-s3cret"),
            ("redis://default:redis-s3cret@cache:6379/0", "redis-s3cret"),
            ("amqp://guest:rabbit-s3cret@mq:5672/", "rabbit-s3cret"),
            ("jdbc:mysql://db:3306/app?user=root&password=jdbc-s3cret", "jdbc-s3cret"),
            ("jdbc:sqlserver://db:1433;databaseName=app;user=sa;password=jdbc-s3cret;", "jdbc-s3cret"),
            ("jdbc:oracle:thin:scott/ora-s3cret@db:1521:orcl", "ora-s3cret"),
            ("jdbc:postgresql://db/app?user=app&password=jdbc-s3cret", "jdbc-s3cret"),
            ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=az+s3cret/KEY==;EndpointSuffix=core.windows.net", "az+s3cret"),
            ("mysql -h db -uroot -pmy-s3cret -e 'select 1'", "my-s3cret"),
            ("curl -fsS -u deploy:curl-s3cret https://repo.example.com/", "curl-s3cret"),
            ("DB_PASSWORD=pw-s3cret ./migrate", "pw-s3cret"),
            ("export PGPASSWORD='pw-s3cret'", "pw-s3cret"),
        ];
        for (text, secret) in cases {
            masks(text, &[secret]);
        }
    }

    #[test]
    fn slack_webhooks_and_tokens() {
        masks(
            "posting to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            &["T00000000/B00000000", "XXXXXXXXXXXXXXXXXXXXXXXX"],
        );
        for t in [
            "xoxb-123456789012-1234567890123-abcdefABCDEF",
            "xoxp-123456789012-abcdefghij",
            "xapp-1-A0123456789-1234567890123-abcdef0123",
            "xoxe.xoxp-1-abcdefghijklmnop",
        ] {
            masks(&format!("SLACK_TOKEN {t}"), &[t]);
        }
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        masks(&format!("id_token={jwt}"), &[jwt, "dozjgNryP4J3"]);
        masks(&format!("ACTIONS_ID_TOKEN {jwt} issued"), &["dozjgNryP4J3"]);
    }

    #[test]
    fn authorization_headers() {
        for (text, secret) in [
            ("> Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ("authorization: Digest username=\"u\", response=\"6629fae49393a05397450978507c4ef1\"", "6629fae4939"),
            ("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7", "5d672d79c15b"),
            ("-H 'Authorization: ApiKey my-api-s3cret'", "my-api-s3cret"),
            ("Proxy-Authorization: Basic cHJveHk6cGFzcw==", "cHJveHk6cGFzcw"),
            ("PRIVATE-TOKEN: tok-s3cret-value", "tok-s3cret-value"),
        ] {
            masks(text, &[secret]);
        }
    }

    #[test]
    fn email_addresses() {
        let out = r("pushed by Jane Doe <jane.doe+ci@example.org>");
        assert_eq!(out, "pushed by Jane Doe <[EMAIL]>");
        // The forges' SSH user and package versions are not addresses.
        for keep in [
            "git@github.com: Permission denied (publickey).",
            "npm ERR! lodash@4.17.21 install failed",
            "uses: actions/checkout@v4",
            "copied icon@2x.png",
        ] {
            assert_eq!(r(keep), keep);
        }
    }

    #[test]
    fn base64_blobs() {
        let blob = "dXNlcjpwYXNzd29yZDEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejEyMw==";
        masks(&format!("echo {blob} | base64 -d"), &[blob]);
        // Hex digests, long paths and identifiers are not blobs.
        for keep in [
            "  ✓ testThatDataResponseSerializerSucceedsWhenDataIsNilWithGETRequestAnd204ResponseStatusCode (0.002 seconds)",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "/home/runner/work/project/project/target/debug/deps/libserde_derive-0123456789abcdef.so",
        ] {
            assert_eq!(r(keep), keep);
        }
    }

    #[test]
    fn internal_hosts_when_configured() {
        let red = Redactor::new(&["*.corp.example.com", "10.*", "jenkins.internal"]).unwrap();
        let out = red.redact(
            "Could not resolve host: nexus.build.corp.example.com\n\
             connect to 10.1.2.3 port 5432 failed; jenkins.internal, ci.corp.example.com.\n",
        );
        assert_eq!(
            out,
            "Could not resolve host: [INTERNAL-HOST]\n\
             connect to [INTERNAL-HOST] port 5432 failed; [INTERNAL-HOST], [INTERNAL-HOST].\n"
        );
        // Names that only look alike stay, and nothing is masked without configuration.
        assert_eq!(
            red.redact("corp.example.com.evil.org and x10.1.2.3 and github.com"),
            "corp.example.com.evil.org and x10.1.2.3 and github.com"
        );
        assert_eq!(
            r("nexus.build.corp.example.com"),
            "nexus.build.corp.example.com"
        );
        assert!(Redactor::new(&["*"]).is_err());
        assert!(Redactor::new(&["bad host/"]).is_err());
    }

    #[test]
    fn ordinary_log_text_is_left_alone() {
        let text = "\
error[E0425]: cannot find value `x` in this scope
  --> src/main.rs:4:13
test result: FAILED. 3 passed; 1 failed; 0 ignored
Downloading https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz
Could not resolve host: gitlab.com
fatal: unable to access 'https://github.com/octo/app.git/': The requested URL returned error: 403
npm ERR! code ETIMEDOUT
Collecting requests==2.31.0
java.lang.OutOfMemoryError: Java heap space
/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xmx2g -jar app.jar
Authorization failed for repository
password prompt skipped
";
        assert_eq!(r(text), text);
    }

    #[test]
    fn redaction_is_idempotent() {
        let text = "postgres://a:b-s3cret@h/db Authorization: Bearer abcdefghijkl jane@example.org\n\
                    -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----\n";
        let once = r(text);
        assert_eq!(r(&once), once);
    }

    #[test]
    fn crlf_lines_keep_their_endings() {
        assert_eq!(r("a\r\nb jane@example.org\r\n"), "a\r\nb [EMAIL]\r\n");
    }

    const OPENSSH_BODY: [&str; 3] = [
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "QyNTUxOQAAACDk3Vbl1RZ2h0ZXN0a2V5Ym9keWxpbmV0d29BAAAAJGJvZHlsaW5ldGhyZW",
        "UAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDk3Vbl1RZ2h0ZXN0a2",
    ];

    #[test]
    fn stored_logs_lose_whole_key_blocks_and_keep_the_rest() {
        for (begin, end) in [
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "-----END OPENSSH PRIVATE KEY-----",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----END RSA PRIVATE KEY-----",
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                "-----END PGP PRIVATE KEY BLOCK-----",
            ),
        ] {
            let log = format!(
                "step 1: cat deploy_key\n{begin}\n{}\n{end}\nerror: Permission denied (publickey)\n",
                OPENSSH_BODY.join("\n")
            );
            let out = redact_log(&log);
            for body in OPENSSH_BODY {
                assert!(!out.contains(body), "{begin}: {out}");
            }
            assert!(!out.contains("-----END"), "{out}");
            assert_eq!(
                out,
                format!(
                    "step 1: cat deploy_key\n{REDACTED_KEY}\nerror: Permission denied (publickey)\n"
                )
            );
        }
        // The per-line rules still apply; e-mail addresses stay for diagnosis.
        let out =
            redact_log("push as dev@example.com with ghp_abcdefghijklmnopqrstuvwxyz0123456789\n");
        assert_eq!(out, "push as dev@example.com with [REDACTED]\n");
    }

    #[test]
    fn stored_logs_lose_aws_secret_keys_standing_alone_near_their_id_or_name() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for log in [
            format!("AWS Access Key ID [None]: AKIAIOSFODNN7EXAMPLE\n{secret}\n"),
            format!("aws_access_key_id = AKIAIOSFODNN7EXAMPLE\nregion = eu-west-1\n  {secret}\n"),
            format!("[default]\naws_secret_access_key\n{secret}\n"),
            format!("2024-05-01T10:00:00Z {secret}\n2024-05-01T10:00:01Z ASIAIOSFODNN7EXAMPLE\n"),
        ] {
            let out = redact_log(&log);
            assert!(!out.contains(secret), "{log:?} -> {out:?}");
            assert!(!out.contains("IOSFODNN7EXAMPLE"), "{out:?}");
            assert_eq!(out.lines().count(), log.lines().count(), "{out:?}");
        }
        // Far from any key id or name, and commit hashes anywhere, are kept.
        let sha = "9fceb02d0ae598e95dc970b74767f19372d61af8";
        let far = format!("{secret}\n\n\n\n\n\nAKIAIOSFODNN7EXAMPLE\n");
        assert!(redact_log(&far).starts_with(secret));
        let near_sha = format!("AKIAIOSFODNN7EXAMPLE\ncommit {sha}\n{sha}\n");
        assert_eq!(redact_log(&near_sha).matches(sha).count(), 2);
    }
}
