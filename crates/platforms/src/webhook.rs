//! The webhook side every platform module shares: the request as intake hands it over, what
//! a parsed delivery is, and the checks platforms prove authenticity with (HMAC signatures,
//! shared tokens, Basic auth) in constant time.

use crate::Parsed;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A delivery as intake received it.
pub struct WebhookRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string (Jenkins may send its token as `?token=`).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }
}

/// A verified delivery's id (a redelivery with the same id is a replay) and its meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub parsed: Parsed,
    /// The finished jobs it names with the runner each ran on, passed or failed: what a
    /// runner's failure rate is counted over. Read in the same parse; empty where the
    /// platform's deliveries do not name runners.
    pub runners: Vec<pipeguard_core::runners::RunnerJob>,
}

impl Delivery {
    /// A delivery that names no runners.
    pub fn new(id: String, parsed: Parsed) -> Delivery {
        Delivery {
            id,
            parsed,
            runners: Vec::new(),
        }
    }
}

/// A header's trimmed, non-empty text value.
pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A delivery id when the sender gives none: the body's hash, so a resent body is a replay.
pub fn body_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The sender's `Idempotency-Key`, else the body's hash.
pub fn idempotency_key(req: &WebhookRequest) -> String {
    req.header("idempotency-key")
        .map(str::to_string)
        .unwrap_or_else(|| body_id(req.body))
}

/// One query or form parameter, decoded (`+` is a space).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Checks `header` = `<prefix><hex HMAC-SHA256 of body>` (GitHub: `sha256=`, CircleCI: `v1=`).
pub fn verify_hmac_sha256(secret: &[u8], body: &[u8], header: &str, prefix: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix(prefix) else {
        return false;
    };
    hex::decode(hex_sig).is_ok_and(|sig| hmac_sha256_verify(secret, &[body], &sig))
}

/// The one HMAC-SHA256 of pipeguard's webhooks, over `parts` in order (Buildkite signs
/// `timestamp.body`).
fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// Whether `sig` is the HMAC-SHA256 of `parts`, compared in constant time.
pub fn hmac_sha256_verify(secret: &[u8], parts: &[&[u8]], sig: &[u8]) -> bool {
    hmac_sha256(secret, parts).verify_slice(sig).is_ok()
}

/// `<hex HMAC-SHA256 of body>`: what pipeguard's own notifications are signed with.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[body]).finalize().into_bytes())
}

/// Compares a shared token without leaking where it differs.
pub fn token_eq(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Decodes `Authorization: Basic …` into (user, password).
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    let (scheme, data) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The token of `Authorization: Bearer …`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = header(headers, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// A shared secret sent as `expected` header, or (when `query` is given) as `?token=`.
pub fn check_token(given: Option<&str>, secret: &str, name: &str) -> Result<(), String> {
    match given {
        None => Err(format!("missing {name}")),
        Some(g) if token_eq(secret, g) => Ok(()),
        Some(_) => Err(format!("{name} does not match")),
    }
}

/// A shared secret sent as the password of `Authorization: Basic …` (the user name is free) or
/// as `X-Pipeguard-Token`: what senders that cannot sign can be configured to send (Buildbot's
/// reporter, Azure DevOps service hooks, TeamCity's webhooks).
pub fn check_password_or_token(req: &WebhookRequest, secret: &str) -> Result<(), String> {
    let given = req
        .header("x-pipeguard-token")
        .map(str::to_string)
        .or_else(|| {
            req.header("authorization")
                .and_then(parse_basic_auth)
                .map(|(_, p)| p)
        });
    match given {
        None => Err("missing credentials: Basic auth or X-Pipeguard-Token".into()),
        Some(g) if token_eq(secret, &g) => Ok(()),
        Some(_) => Err("Basic auth password or X-Pipeguard-Token does not match".into()),
    }
}

/// Whether the headers carry a credential [`check_password_or_token`] reads.
pub fn presents_password_or_token(headers: &HeaderMap) -> bool {
    header(headers, "x-pipeguard-token").is_some() || header(headers, "authorization").is_some()
}

/// Checks a name from a delivery before it can reach a URL: `segments` `/`-separated parts
/// (a range for nested groups), each non-empty, not `.` or `..`, of characters `ok` allows.
pub fn valid_path(
    name: &str,
    segments: std::ops::RangeInclusive<usize>,
    ok: fn(char) -> bool,
) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    name.len() <= 512
        && segments.contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && p.chars().all(ok))
}

/// Letters, digits, `-`, `_` and `.`: what GitHub, GitLab and CircleCI allow in names.
pub fn slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Any printable character but path and query punctuation: job and builder names that are
/// free text on their platform (Jenkins, Buildbot, TeamCity).
pub fn label_char(c: char) -> bool {
    !c.is_control() && !matches!(c, '/' | '\\' | '?' | '#' | '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector from GitHub's "Validating webhook deliveries" documentation.
    const SECRET: &str = "It's a Secret to Everybody";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_documented_vector_verifies() {
        assert!(verify_hmac_sha256(
            SECRET.as_bytes(),
            b"Hello, World!",
            SIG,
            "sha256="
        ));
        assert_eq!(
            format!(
                "sha256={}",
                hmac_sha256_hex(SECRET.as_bytes(), b"Hello, World!")
            ),
            SIG
        );
    }

    #[test]
    fn tampered_body_wrong_secret_or_prefix_fail() {
        let b = SECRET.as_bytes();
        assert!(!verify_hmac_sha256(b, b"Hello, World?", SIG, "sha256="));
        assert!(!verify_hmac_sha256(
            b"other",
            b"Hello, World!",
            SIG,
            "sha256="
        ));
        assert!(!verify_hmac_sha256(
            b,
            b"Hello, World!",
            &SIG[7..],
            "sha256="
        ));
        assert!(!verify_hmac_sha256(
            b,
            b"Hello, World!",
            "sha256=zz",
            "sha256="
        ));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_eq("s3cret", "s3cret"));
        assert!(!token_eq("s3cret", "s3cret "));
        assert!(!token_eq("s3cret", "S3cret"));
        assert!(!token_eq("s3cret", ""));
    }

    #[test]
    fn basic_auth_and_query_are_decoded() {
        assert_eq!(
            parse_basic_auth("Basic YnVpbGRib3Q6czNjcmV0"),
            Some(("buildbot".into(), "s3cret".into()))
        );
        assert_eq!(parse_basic_auth("Bearer x"), None);
        assert_eq!(parse_basic_auth("Basic !!!"), None);
        assert_eq!(
            query_param(Some("a=1&token=s%2B3+x"), "token").as_deref(),
            Some("s+3 x")
        );
        assert_eq!(query_param(Some("token"), "token").as_deref(), Some(""));
        assert_eq!(query_param(None, "token"), None);
    }

    #[test]
    fn traversal_names_are_refused() {
        assert!(valid_path("octo/app", 2..=2, slug_char));
        assert!(!valid_path("../../../user/repos?x=", 2..=2, slug_char));
        assert!(!valid_path("octo/..", 2..=2, slug_char));
        assert!(!valid_path("octo/app/x", 2..=2, slug_char));
        assert!(!valid_path("octo//app", 2..=3, slug_char));
        assert!(valid_path("grp/sub/proj", 2..=20, slug_char));
        assert!(valid_path("team/my job", 1..=10, label_char));
        assert!(!valid_path("team/a?b", 1..=10, label_char));
    }
}
