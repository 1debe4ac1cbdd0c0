//! Jenkins: the Notification plugin's JSON (and a generic `{job, build, url, status}` form),
//! `consoleText` logs and rebuilds through the remote access API with an API token.
//!
//! Jenkins has no run attempt: a rebuild is a new build of the same job
//! (<https://www.jenkins.io/doc/book/using/remote-access-api/>). So a job's full name is the
//! `run_id` and its build number the `attempt`. Deliveries carry no signature: the shared
//! secret comes as `X-Pipeguard-Token` or `?token=`.

mod client;
mod webhook;

pub use client::JenkinsClient;
pub use webhook::{job_path, parse_delivery};

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_token, header, label_char, query_param, valid_path, Delivery, WebhookRequest,
};
use crate::{Ci, Module, ParseError};
use pipeguard_core::event::Platform;

pub struct Jenkins;

impl Module for Jenkins {
    fn platform(&self) -> Platform {
        Platform::Jenkins
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "jenkins",
            default_api_url: "",
            credential: Some("token"),
            user: true,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        query: Option<&str>,
    ) -> bool {
        header(headers, "x-pipeguard-token").is_some() || query_param(query, "token").is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        let from_query = query_param(req.query, "token");
        let given = req.header("x-pipeguard-token").or(from_query.as_deref());
        check_token(given, secret, "X-Pipeguard-Token (or ?token=)")
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        parse_delivery(req.body)
    }

    /// Folders nest: `team/app/main`; job names are free text but for path punctuation.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 1..=20, label_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(JenkinsClient::new(section, http)))
    }
}
