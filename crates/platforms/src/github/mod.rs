//! GitHub Actions: `workflow_run` / `workflow_job` webhooks signed with `X-Hub-Signature-256`,
//! and the Actions REST API.
//!
//! Re-runs (<https://docs.github.com/en/rest/actions/workflow-runs#re-run-failed-jobs-from-a-workflow-run>,
//! <https://docs.github.com/en/rest/actions/workflow-jobs#re-run-a-job-from-a-workflow-run>):
//! a re-run is a new *attempt* of the same run (`run_attempt` + 1, same run id). Re-running
//! failed jobs re-runs them and the jobs that need them; other jobs keep their result. A run
//! can be re-run only once it completed and while no attempt is in progress, at most 50
//! attempts, within 30 days of its start.

mod app;
mod client;
mod history;
mod issues;
mod webhook;

pub use app::{configured_app, missing_permissions, shared_app, GithubApp, APP_PERMISSIONS};
pub use client::GithubClient;
pub use webhook::{parse_event, parse_time_ms};

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    header, query_param, slug_char, valid_path, verify_hmac_sha256, Delivery, WebhookRequest,
};
use crate::Setup;
use crate::{Ci, History, Module, ParseError};
use pipeguard_core::event::Platform;

pub struct Github;

impl Module for Github {
    fn platform(&self) -> Platform {
        Platform::Github
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "a GitHub App (app_id and private_key_file; its manifest is in the \
                     README) or a fine-grained token with Actions: read and write, Contents: read \
                     (classic: the repo scope); GitHub Enterprise: api_url = https://HOST/api/v3",
            webhook: "Settings > Webhooks: payload URL https://PIPEGUARD/webhooks/github, content \
                  type application/json, this secret, events Workflow runs and Workflow jobs",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "github",
            default_api_url: "https://api.github.com",
            credential: Some("token"),
            user: false,
        }
    }

    fn accepts(&self, content_type: &str) -> bool {
        let ct = content_type.to_ascii_lowercase();
        ct.starts_with("application/json") || ct.starts_with("application/x-www-form-urlencoded")
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        header(headers, "x-hub-signature-256").is_some()
    }

    /// The signature covers the raw body, form-encoded or not.
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        let sig = req
            .header("x-hub-signature-256")
            .ok_or("missing X-Hub-Signature-256")?;
        if verify_hmac_sha256(secret.as_bytes(), req.body, sig, "sha256=") {
            Ok(())
        } else {
            Err("X-Hub-Signature-256 does not match the body".into())
        }
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        let event = req
            .header("x-github-event")
            .ok_or_else(|| ParseError::Header("missing X-GitHub-Event header".into()))?;
        let id = req
            .header("x-github-delivery")
            .ok_or_else(|| ParseError::Header("missing X-GitHub-Delivery header".into()))?;
        let form = req
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let (parsed, runners) = if form {
            let text = std::str::from_utf8(req.body)
                .map_err(|_| ParseError::Shape("form body is not UTF-8".into()))?;
            let payload = query_param(Some(text), "payload")
                .ok_or_else(|| ParseError::Shape("form body has no payload field".into()))?;
            webhook::parse_with_runners(event, payload.as_bytes())?
        } else {
            webhook::parse_with_runners(event, req.body)?
        };
        Ok(Delivery {
            id: id.to_string(),
            parsed,
            runners,
        })
    }

    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 2..=2, slug_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(GithubClient::new(section, http)))
    }

    fn history(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn History>> {
        Some(Box::new(GithubClient::new(section, http)))
    }
}
