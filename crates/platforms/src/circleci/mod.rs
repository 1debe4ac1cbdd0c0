//! CircleCI: `workflow-completed` / `job-completed` outbound webhooks signed with
//! `circleci-signature: v1=<hex HMAC-SHA256 of the body>`, step output logs through API v1.1,
//! and reruns and new pipelines through API v2.
//!
//! A rerun is a new workflow (new id, answered as `workflow_id`) with the same name in the same
//! pipeline (<https://circleci.com/docs/api/v2/index.html#operation/rerunWorkflow>), so a run
//! is `<pipeline id>/<workflow name>`, its attempt is how many workflows of that name the
//! pipeline has, and a `success` delivery is reported as [`OUTCOME_ATTEMPT`]. A new pipeline
//! runs all of its workflows, so a pipeline a heal started is linked as a whole.

mod client;
mod webhook;

pub use crate::OUTCOME_ATTEMPT;
pub use client::{typed_parameters, CircleciClient};
pub use webhook::parse_delivery;

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{header, slug_char, valid_path, verify_hmac_sha256, Delivery, WebhookRequest};
use crate::Setup;
use crate::{Ci, Module, ParseError};
use pipeguard_core::event::Platform;

/// `circleci-signature` may carry several versioned signatures (`v1=…,v2=…`); v1 is ours.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .filter(|s| s.starts_with("v1="))
        .any(|s| verify_hmac_sha256(secret, body, s, "v1="))
}

pub struct Circleci;

impl Module for Circleci {
    fn platform(&self) -> Platform {
        Platform::Circleci
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "a personal API token (User Settings > Personal API Tokens)",
            webhook:
                "Project Settings > Webhooks: receiver URL https://PIPEGUARD/webhooks/circleci, \
                  this secret, events workflow-completed and job-completed",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "circleci",
            default_api_url: "https://circleci.com",
            credential: Some("token"),
            user: false,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        header(headers, "circleci-signature").is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        let sig = req
            .header("circleci-signature")
            .ok_or("missing circleci-signature")?;
        if verify_signature(secret.as_bytes(), req.body, sig) {
            Ok(())
        } else {
            Err("circleci-signature does not match the body".into())
        }
    }

    /// The documented deduplication key is the payload's `id`.
    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        parse_delivery(req.body)
    }

    /// `gh/org/repo`, `bb/org/repo` or `circleci/<org id>/<project id>`.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 3..=3, slug_char)
    }

    fn run_link(&self, run_id: &str) -> String {
        match run_id.split_once('/') {
            Some((pipeline, _)) => pipeline.to_string(),
            None => run_id.to_string(),
        }
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(CircleciClient::new(section, http)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_with_several_versions() {
        let body = b"{\"a\":1}";
        let sig = crate::webhook::hmac_sha256_hex(b"s", body);
        assert!(verify_signature(b"s", body, &format!("v1={sig}")));
        assert!(verify_signature(b"s", body, &format!("v2=abc, v1={sig}")));
        assert!(!verify_signature(b"t", body, &format!("v1={sig}")));
        assert!(!verify_signature(b"s", body, &sig));
    }

    #[test]
    fn a_pipeline_links_all_its_workflows() {
        assert_eq!(Circleci.run_link("pipe-1/build-test"), "pipe-1");
        assert_eq!(Circleci.run_link("x"), "x");
    }
}
