//! GitLab CI: Pipeline Hook / Job Hook webhooks (`X-Gitlab-Token`) and the REST API v4
//! (gitlab.com or self-managed).
//!
//! GitLab has no run attempt: retrying a job creates a new job (new id) in the same pipeline,
//! and retrying a pipeline retries its failed jobs in place, keeping the pipeline id
//! (<https://docs.gitlab.com/api/jobs/#retry-a-job>,
//! <https://docs.gitlab.com/api/pipelines/#retry-jobs-in-a-pipeline>). The attempt of a
//! failure is therefore `1 + retries_count` (Job Hook) or 1 (Pipeline Hook), and a pipeline
//! that reports `success` is the outcome of whatever attempt came before, reported with
//! [`OUTCOME_ATTEMPT`], above every real attempt.

mod client;
mod history;
mod issues;
mod webhook;

pub use crate::OUTCOME_ATTEMPT;
pub use client::GitlabClient;
pub use issues::CODEOWNERS_PATHS;
pub use webhook::parse_event;

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_token, header, idempotency_key, slug_char, valid_path, Delivery, WebhookRequest,
};
use crate::Setup;
use crate::{Ci, History, Module, ParseError};
use pipeguard_core::event::Platform;

pub struct Gitlab;

impl Module for Gitlab {
    fn platform(&self) -> Platform {
        Platform::Gitlab
    }

    fn setup(&self) -> Setup {
        Setup {
            credential:
                "a project, group or personal access token with the api scope (a Developer \
                     may retry jobs; deploy jobs need Maintainer on protected branches)",
            webhook: "Settings > Webhooks: URL https://PIPEGUARD/webhooks/gitlab, this secret as \
                  the Secret token, Pipeline events and Job events",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "gitlab",
            default_api_url: "https://gitlab.com",
            credential: Some("token"),
            user: false,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        header(headers, "x-gitlab-token").is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        check_token(req.header("x-gitlab-token"), secret, "X-Gitlab-Token")
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        let event = req
            .header("x-gitlab-event")
            .ok_or_else(|| ParseError::Header("missing X-Gitlab-Event header".into()))?;
        let id = req
            .header("x-gitlab-event-uuid")
            .map(str::to_string)
            .unwrap_or_else(|| idempotency_key(req));
        let (parsed, runners) = webhook::parse_with_runners(event, req.body)?;
        Ok(Delivery {
            id,
            parsed,
            runners,
        })
    }

    /// `group/subgroup/project`: namespaces nest.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 2..=20, slug_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(GitlabClient::new(section, http)))
    }

    /// Pipelines with their retried jobs (`jobs?include_retried=true`).
    fn history(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn History>> {
        Some(Box::new(GitlabClient::new(section, http)))
    }
}
