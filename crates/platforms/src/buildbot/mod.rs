//! Buildbot: the build dicts its `HttpStatusPush` reporter posts, and its REST/data API (v2).
//!
//! Buildbot has no "run attempt": rebuilding a build (the data API's `rebuild` control action,
//! <https://docs.buildbot.net/latest/developer/rest.html>) makes a new buildset whose
//! `rebuilt_buildid` names the *first* build of the chain, however often it was rebuilt. So a
//! run is that first build (`run_id` = its `buildid`, or the build's own id when it is not a
//! rebuild) and the attempt is the build `number`, which rises with every build of the
//! builder: a rebuild always reports a higher attempt than the build it re-runs, so its result
//! arrives as the outcome of the heal. The repository is the builder.

mod client;
mod webhook;

pub use client::BuildbotClient;
pub use webhook::parse_delivery;

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_password_or_token, label_char, presents_password_or_token, valid_path, Delivery,
    WebhookRequest,
};
use crate::{Ci, Module, ParseError};
use crate::{Probe, ProbeAuth, Setup};
use pipeguard_core::event::Platform;

/// Buildbot's result codes (`buildbot.process.results`).
pub const SUCCESS: i64 = 0;
pub const WARNINGS: i64 = 1;
pub const FAILURE: i64 = 2;
pub const SKIPPED: i64 = 3;
pub const EXCEPTION: i64 = 4;
pub const RETRY: i64 = 5;
pub const CANCELLED: i64 = 6;

pub struct Buildbot;

impl Module for Buildbot {
    fn platform(&self) -> Platform {
        Platform::Buildbot
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "user + password of an account that may rebuild (password is the key)",
            webhook: "an HttpStatusPush reporter to https://PIPEGUARD/webhooks/buildbot with this \
                  secret as its basic-auth password",
            probe: Some(Probe {
                path: "/api/v2",
                auth: ProbeAuth::Basic,
            }),
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "buildbot",
            default_api_url: "http://127.0.0.1:8010",
            credential: Some("password"),
            user: true,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        presents_password_or_token(headers)
    }

    /// The reporter sends the secret as `auth=(user, secret)` (Basic auth; the user name is
    /// free) or `headers={"X-Pipeguard-Token": secret}`.
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        check_password_or_token(req, secret)
    }

    /// The delivery key is the build and its phase, inside the body.
    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        parse_delivery(req.body)
    }

    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 1..=10, label_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(BuildbotClient::new(section, http)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    fn verify(secret: &str, h: &HeaderMap) -> Result<(), String> {
        Buildbot.verify(
            &WebhookRequest {
                headers: h,
                query: None,
                body: b"{}",
            },
            secret,
        )
    }

    #[test]
    fn secret_comes_as_basic_auth_password_or_token_header() {
        // "buildbot:s3cret" and "buildbot:nope".
        let good = with("authorization", "Basic YnVpbGRib3Q6czNjcmV0");
        let bad = with("authorization", "Basic YnVpbGRib3Q6bm9wZQ==");
        assert!(verify("s3cret", &good).is_ok());
        assert!(verify("s3cret", &with("x-pipeguard-token", "s3cret")).is_ok());
        assert!(verify("s3cret", &bad).is_err());
        assert!(verify("s3cret", &with("x-pipeguard-token", "s3cre")).is_err());
        assert!(verify("s3cret", &HeaderMap::new()).is_err());
        assert!(!Buildbot.presents_credential(&HeaderMap::new(), None));
        assert!(Buildbot.presents_credential(&good, None));
    }
}
