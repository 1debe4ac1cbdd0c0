//! Small HTTP helpers shared by the platforms: query parsing, pagination, credentials, times.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// `(name, value)` pairs of a query string or form body, percent-decoded, in order.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Page `page` (from 1) of `per_page` items, as `?per_page=&page=` APIs count them.
pub fn page<T: Clone>(items: &[T], page: usize, per_page: usize) -> Vec<T> {
    let per_page = per_page.max(1);
    let start = page.saturating_sub(1).saturating_mul(per_page);
    items.iter().skip(start).take(per_page).cloned().collect()
}

/// `page` and `per_page` from a query, with a default and a maximum page size.
pub fn page_params(q: &[(String, String)], default: usize, max: usize) -> (usize, usize) {
    let n = |name, d| {
        param(q, name)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(d)
    };
    (n("page", 1), n("per_page", default).min(max))
}

pub fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

pub fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `Authorization: Bearer T` or `token T` → `T`.
pub fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = header(h, "authorization")?.trim();
    let (scheme, token) = v.split_once(' ')?;
    matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "token").then(|| token.trim())
}

/// `Authorization: Basic base64(user:secret)` → `(user, secret)`.
pub fn basic(h: &HeaderMap) -> Option<(String, String)> {
    let v = header(h, "authorization")?.trim();
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `2024-01-02T03:04:05Z` (GitHub).
pub fn rfc3339_s(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// `2024-01-02T03:04:05.678Z` (GitLab API, CircleCI).
pub fn rfc3339_ms(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// `2024-01-02 03:04:05 UTC` (GitLab webhooks).
pub fn gitlab_hook_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_params() {
        let q = pairs(Some("per_page=2&page=2&scope%5B%5D=failed&scope[]=success"));
        assert_eq!(page_params(&q, 30, 100), (2, 2));
        assert_eq!(param(&q, "scope[]"), Some("failed"));
        assert_eq!(page(&[1, 2, 3, 4, 5], 2, 2), [3, 4]);
        assert!(page(&[1, 2], 3, 2).is_empty());
        let big = pairs(Some("per_page=1000"));
        assert_eq!(page_params(&big, 30, 100), (1, 100));
    }

    #[test]
    fn credentials() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic dTpwOnE=".parse().unwrap());
        assert_eq!(basic(&h), Some(("u".into(), "p:q".into())));
    }

    #[test]
    fn time_formats() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        assert_eq!(rfc3339_s(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_ms(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(gitlab_hook_time(t), "2023-11-14 22:13:20 UTC");
        assert_eq!(epoch_ms(t), 1_700_000_000_123);
    }
}
