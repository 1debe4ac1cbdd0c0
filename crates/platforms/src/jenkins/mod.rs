//! Jenkins: the Notification plugin's JSON (and a generic `{job, build, url, status}` form),
//! `consoleText` logs and rebuilds through the remote access API with an API token.
//!
//! Jenkins has no run attempt: a rebuild is a new build of the same job
//! (<https://www.jenkins.io/doc/book/using/remote-access-api/>). So a job's full name is the
//! `run_id` and its build number the `attempt`. Deliveries carry no signature: the shared
//! secret comes as `X-Pipeguard-Token`, `?token=`, or as the Basic auth password of a
//! Notification plugin URL with credentials (`https://user:secret@host/webhooks/jenkins`).

mod client;
mod webhook;

pub use client::JenkinsClient;
pub use webhook::{job_path, parse_delivery};

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_password_or_token, check_token, header, label_char, query_param, valid_path, Delivery,
    WebhookRequest,
};
use crate::Setup;
use crate::{Ci, Module, ParseError};
use pipeguard_core::event::Platform;

pub struct Jenkins;

impl Module for Jenkins {
    fn platform(&self) -> Platform {
        Platform::Jenkins
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "user + that user's API token (Job: Read and Build); api_url is the \
                     Jenkins root URL",
            webhook:
                "Notification plugin: JSON over HTTP to \
                  https://PIPEGUARD/webhooks/jenkins?token=SECRET (or the X-Pipeguard-Token header)",
            probe: None,
        }
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
        header(headers, "x-pipeguard-token").is_some()
            || query_param(query, "token").is_some()
            || header(headers, "authorization").is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        let from_query = query_param(req.query, "token");
        match req.header("x-pipeguard-token").or(from_query.as_deref()) {
            Some(given) => check_token(Some(given), secret, "X-Pipeguard-Token (or ?token=)"),
            // The plugin turns a URL's `user:password@` into `Authorization: Basic`.
            None => check_password_or_token(req, secret),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn verify(headers: &HeaderMap, query: Option<&str>) -> Result<(), String> {
        let req = WebhookRequest {
            headers,
            query,
            body: b"{}",
        };
        Jenkins.verify(&req, "s3cret")
    }

    /// A Notification plugin endpoint `https://jenkins:s3cret@host/webhooks/jenkins` arrives as
    /// `Authorization: Basic amVua2luczpzM2NyZXQ=`: the secret is the password.
    #[test]
    fn the_secret_may_be_the_basic_auth_password() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic amVua2luczpzM2NyZXQ="),
        );
        assert!(Jenkins.presents_credential(&h, None));
        assert_eq!(verify(&h, None), Ok(()));
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic amVua2luczpub3Bl"),
        );
        assert!(verify(&h, None).is_err(), "jenkins:nope");
        assert!(verify(&HeaderMap::new(), None).is_err());
        assert_eq!(verify(&HeaderMap::new(), Some("token=s3cret")), Ok(()));
        // A token that is given decides, whatever else comes along.
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic amVua2luczpzM2NyZXQ="),
        );
        assert!(verify(&h, Some("token=wrong")).is_err());
    }
}
