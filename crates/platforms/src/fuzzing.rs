//! A raw delivery for any platform, read from arbitrary bytes and put through what intake does
//! with it before anything is stored: the credential check on the headers, the body's parse,
//! the signature check and the repository-name check. The `webhook` fuzz target and the
//! replay of its corpus in the tests both call [`deliver`], so a crash found once stays tested.
//!
//! Layout: byte 0 picks the platform (modulo the number of platforms); then `name: value`
//! header lines up to an empty line, where a line `?text` is the query string and `!text` the
//! secret verification is tried with; the rest is the body.

use crate::registry::MODULES;
use crate::webhook::WebhookRequest;
use crate::Module;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// A delivery decoded from fuzz input.
pub struct RawDelivery<'a> {
    pub module: &'static dyn Module,
    pub headers: HeaderMap,
    pub query: Option<&'a str>,
    pub secret: &'a str,
    pub body: &'a [u8],
}

/// Reads the layout above; `None` for empty input.
pub fn decode(data: &[u8]) -> Option<RawDelivery<'_>> {
    let (&pick, mut rest) = data.split_first()?;
    let mut d = RawDelivery {
        module: MODULES[pick as usize % MODULES.len()],
        headers: HeaderMap::new(),
        query: None,
        secret: "",
        body: &[],
    };
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        header_line(&mut d, line);
    }
    d.body = rest;
    Some(d)
}

fn header_line<'a>(d: &mut RawDelivery<'a>, line: &'a [u8]) {
    let text = std::str::from_utf8(line).ok();
    match line[0] {
        b'?' => d.query = text.map(|t| &t[1..]),
        b'!' => d.secret = text.map_or("", |t| &t[1..]),
        _ => {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return;
            };
            let name = HeaderName::from_bytes(&line[..colon]);
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
            if let (Ok(n), Ok(v)) = (name, value) {
                d.headers.append(n, v);
            }
        }
    }
}

/// Everything intake asks of a platform module about one delivery. Must not panic, whatever
/// the bytes.
pub fn deliver(data: &[u8]) {
    let Some(d) = decode(data) else {
        return;
    };
    let m = d.module;
    let req = WebhookRequest {
        headers: &d.headers,
        query: d.query,
        body: d.body,
    };
    m.presents_credential(&d.headers, d.query);
    let _ = m.verify(&req, d.secret);
    if let Ok(delivery) = m.parse(&req) {
        if let Some(name) = delivery.parsed.repository() {
            m.valid_repository(name);
        }
        if let crate::Parsed::Failure(ev) = &delivery.parsed {
            m.run_link(&ev.run_id);
        }
    }
    if let Some(ct) = d.headers.get("content-type").and_then(|v| v.to_str().ok()) {
        m.accepts(ct);
    }
}
