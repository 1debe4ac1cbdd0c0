//! Buildkite: `build.finished` / `job.finished` webhooks (`X-Buildkite-Token` or
//! `X-Buildkite-Signature`) and the REST API v2 (builds, jobs, job logs, job retries, new builds).
//!
//! **What a retry is.** `PUT …/builds/{number}/jobs/{id}/retry` makes a new job (new id, its
//! `retries_count` one higher, `retry_source` naming the old one) in the *same* build; the old job
//! is marked `retried`. Each job id can be retried once only, and only when it is `failed`,
//! `timed_out` or `canceled` (`400`); jobs of canceled builds are refused (`422`)
//! (<https://buildkite.com/docs/apis/rest-api/jobs#retry-a-job>). There is no "retry failed jobs"
//! call, so every transient job is retried by its own id and genuine failures stay failed.
//! A rebuild (`PUT …/builds/{number}/rebuild`) or a new build (`POST …/builds` with `commit`,
//! `branch`, `env`, `clean_checkout`) is a new build with a new number that re-runs every step
//! (<https://buildkite.com/docs/apis/rest-api/builds#rebuild-a-build>,
//! <https://buildkite.com/docs/apis/rest-api/builds#create-a-build>).
//!
//! **Runs and attempts.** The repository is `org/pipeline` (from the payload's build or pipeline
//! URL) and the run is the build number: a retried job stays in its build, whose state goes back
//! to running and then finishes again. A build's attempt is its most retried job's
//! `retries_count + 1`; a `job.finished` delivery carries it, a `build.finished` one does not
//! (webhook builds carry no jobs), so build failures are attempt 1 and a later failure is told by
//! the retried job's `job.finished` (or by polling the build). A passed build is the outcome of
//! whatever attempt came before and is reported as [`OUTCOME_ATTEMPT`]. A new build started with
//! changed inputs (scaling, a fresh checkout) is a new run, followed by its number.
//!
//! **Deliveries** have no id: the body's hash deduplicates a redelivery. The signature covers
//! `"{timestamp}.{body}"`; deliveries older than five minutes are refused as replays
//! (<https://buildkite.com/docs/apis/webhooks/pipelines>).

mod client;
mod webhook;

pub use crate::OUTCOME_ATTEMPT;
pub use client::BuildkiteClient;
pub use webhook::parse_delivery;

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_token, header, idempotency_key, slug_char, valid_path, Delivery, WebhookRequest,
};
use crate::Setup;
use crate::{Ci, Module, ParseError};
use pipeguard_core::event::Platform;
use std::time::{SystemTime, UNIX_EPOCH};

/// How old a signed delivery may be before it is refused as a replay.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// How far in the future a timestamp may be: clocks differ a little, a replay window must not
/// be stretched by a forged future time.
pub const CLOCK_SKEW_SECS: i64 = 30;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks `X-Buildkite-Signature: timestamp=…,signature=…` (HMAC-SHA256 of
/// `"{timestamp}.{body}"` keyed with the webhook token) and that the timestamp is recent.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str, now: i64) -> Result<(), String> {
    let (mut timestamp, mut signature) = (None, None);
    for part in header.split(',') {
        match part.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("timestamp", v)) => timestamp = Some(v),
            Some(("signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let ts_text = timestamp.ok_or("X-Buildkite-Signature has no timestamp")?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| "X-Buildkite-Signature timestamp is not a number")?;
    let sig = signature
        .and_then(|s| hex::decode(s).ok())
        .ok_or("X-Buildkite-Signature has no hex signature")?;
    if !crate::webhook::hmac_sha256_verify(secret, &[ts_text.as_bytes(), b".", body], &sig) {
        return Err("X-Buildkite-Signature does not match the body".into());
    }
    if now - ts > REPLAY_WINDOW_SECS {
        return Err(format!(
            "X-Buildkite-Signature is {}s old (more than {REPLAY_WINDOW_SECS}s): refused as a replay",
            now - ts
        ));
    }
    if ts - now > CLOCK_SKEW_SECS {
        return Err("X-Buildkite-Signature timestamp is in the future".into());
    }
    Ok(())
}

pub struct Buildkite;

impl Module for Buildkite {
    fn platform(&self) -> Platform {
        Platform::Buildkite
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "an API access token with read_builds, read_build_logs and write_builds",
            webhook:
                "Settings > Notification Services > Webhook: https://PIPEGUARD/webhooks/buildkite, \
                  this secret as the signature key, events build.finished and job.finished",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "buildkite",
            default_api_url: "https://api.buildkite.com",
            credential: Some("token"),
            user: false,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        header(headers, "x-buildkite-signature").is_some()
            || header(headers, "x-buildkite-token").is_some()
    }

    /// The webhook sends either the signature or the plain token, as configured.
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        match req.header("x-buildkite-signature") {
            Some(sig) => verify_signature(secret.as_bytes(), req.body, sig, now_secs()),
            None => check_token(req.header("x-buildkite-token"), secret, "X-Buildkite-Token"),
        }
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        let (parsed, runners) =
            webhook::parse_with_runners(req.header("x-buildkite-event"), req.body)?;
        Ok(Delivery {
            id: idempotency_key(req),
            parsed,
            runners,
        })
    }

    /// `organization/pipeline`: both are slugs.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 2..=2, slug_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(BuildkiteClient::new(section, http)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
        let mut msg = format!("{ts}.").into_bytes();
        msg.extend_from_slice(body);
        format!(
            "timestamp={ts},signature={}",
            crate::webhook::hmac_sha256_hex(secret.as_bytes(), &msg)
        )
    }

    #[test]
    fn signature_over_timestamp_and_body_within_the_window() {
        let body = br#"{"event":"ping"}"#;
        let now = 1_619_071_700;
        let ok = sign("tok", now - 10, body);
        assert!(verify_signature(b"tok", body, &ok, now).is_ok());
        assert!(verify_signature(b"other", body, &ok, now).is_err());
        assert!(verify_signature(b"tok", b"{}", &ok, now).is_err());
        // The timestamp is signed: changing it breaks the signature.
        let moved = ok.replace(&(now - 10).to_string(), &now.to_string());
        assert!(verify_signature(b"tok", body, &moved, now).is_err());
        // Spaces after the comma, as some senders format it.
        let spaced = ok.replace(",", ", ");
        assert!(verify_signature(b"tok", body, &spaced, now).is_ok());
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let body = b"{}";
        let now = 1_700_000_000;
        let old = sign("tok", now - REPLAY_WINDOW_SECS - 1, body);
        assert!(verify_signature(b"tok", body, &old, now)
            .unwrap_err()
            .contains("replay"));
        let edge = sign("tok", now - REPLAY_WINDOW_SECS, body);
        assert!(verify_signature(b"tok", body, &edge, now).is_ok());
        let future = sign("tok", now + CLOCK_SKEW_SECS + 1, body);
        assert!(verify_signature(b"tok", body, &future, now)
            .unwrap_err()
            .contains("future"));
        for bad in [
            "",
            "timestamp=x,signature=00",
            "signature=00",
            "timestamp=1",
        ] {
            assert!(verify_signature(b"tok", body, bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_or_signature_on_headers_alone() {
        let with = |name: &'static str, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(Buildkite.presents_credential(&with("x-buildkite-token", "t"), None));
        assert!(Buildkite.presents_credential(&with("x-buildkite-signature", "t"), None));
        assert!(!Buildkite.presents_credential(&with("x-gitlab-token", "t"), None));
        let h = with("x-buildkite-token", "s3cret");
        let req = WebhookRequest {
            headers: &h,
            query: None,
            body: b"{}",
        };
        assert!(Buildkite.verify(&req, "s3cret").is_ok());
        assert!(Buildkite.verify(&req, "other").is_err());
        // A fresh signature made now passes through the module's own clock.
        let body = br#"{"event":"ping"}"#;
        let h = with("x-buildkite-signature", &sign("s3cret", now_secs(), body));
        let req = WebhookRequest {
            headers: &h,
            query: None,
            body,
        };
        assert!(Buildkite.verify(&req, "s3cret").is_ok());
    }

    #[test]
    fn repository_is_org_and_pipeline_slugs() {
        assert!(Buildkite.valid_repository("my-great-org/my-pipeline"));
        assert!(!Buildkite.valid_repository("my-great-org"));
        assert!(!Buildkite.valid_repository("../x"));
        assert!(!Buildkite.valid_repository("org/pipe?x=1"));
    }
}
