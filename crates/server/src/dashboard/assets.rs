//! The page's files, embedded at build time: one table, one line per file.

use sha2::{Digest, Sha256};

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    /// A strong validator from the content, so a rebuilt binary's changes reach browsers.
    pub fn etag(&self) -> String {
        let digest = Sha256::digest(self.body);
        format!("\"{}\"", hex::encode(&digest[..12]))
    }
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

static PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Served under `/assets/`.
pub static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("dom.js", JS),
    asset!("charts.js", JS),
    asset!("sessions.js", JS),
    asset!("session.js", JS),
    asset!("approvals.js", JS),
    asset!("flaky.js", JS),
    asset!("insights.js", JS),
    asset!("readiness.js", JS),
    asset!("runners.js", JS),
];

pub fn page() -> &'static Asset {
    &PAGE
}
