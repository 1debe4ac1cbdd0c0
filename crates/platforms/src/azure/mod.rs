//! Azure Pipelines: the `build.complete` service hook (Web Hooks consumer, secret as the Basic
//! auth password or an `X-Pipeguard-Token` header) and the Build REST API 7.1 with a personal
//! access token.
//!
//! **What a retry is.** `PATCH …/_apis/build/builds/{id}?retry=true` re-runs the failed jobs of
//! the build in place, and `PATCH …/builds/{id}/stages/{stageRefName}` with
//! `{"state": "retry", "forceRetryAllJobs": false}` re-runs the failed jobs of one stage
//! (<https://learn.microsoft.com/en-us/rest/api/azure/devops/build/builds/update-build?view=azure-devops-rest-7.1>,
//! <https://learn.microsoft.com/en-us/rest/api/azure/devops/build/stages/update?view=azure-devops-rest-7.1>).
//! Both keep the build id and its number; jobs that passed are not run again. The retried
//! records of the timeline get `attempt` + 1 and keep the older ones in `previousAttempts`
//! (<https://learn.microsoft.com/en-us/rest/api/azure/devops/build/timeline/get?view=azure-devops-rest-7.1>).
//! A stage is the smallest unit the API retries: a transient job is retried alone only when no
//! genuine failure shares its stage; otherwise the client refuses rather than re-run the
//! genuine one. Classic pipelines have no stage records and are retried whole. A new run
//! (`POST …/_apis/pipelines/{definitionId}/runs` with `templateParameters`, the branch and the
//! commit) has a new build id; it is how scaling changes inputs
//! (<https://learn.microsoft.com/en-us/rest/api/azure/devops/pipelines/runs/run-pipeline?view=azure-devops-rest-7.1>).
//!
//! **Runs and attempts.** The run is the build id. The repository is the organization (or
//! collection path) and project that the payload's `resource.url` names before `/_apis/`
//! (`PIPEGUARD_AZURE_API_URL` is the server root). The service hook's build has no attempt:
//! a failure is attempt 1, a later failure of a retried build is told by polling (the timeline's
//! highest `attempt`), and a `succeeded` or `partiallySucceeded` build is the outcome of
//! whatever came before, reported as [`OUTCOME_ATTEMPT`]
//! (<https://learn.microsoft.com/en-us/azure/devops/service-hooks/events#build.complete>).
//!
//! **Logs** are the failed tasks' logs of each failed job of the timeline, with the records'
//! error issues (`GET …/builds/{id}/logs/{logId}`); the job's stage name goes with it, so a
//! failed job in a deploy stage waits for approval.

mod client;
mod webhook;

pub use crate::OUTCOME_ATTEMPT;
pub use client::AzureClient;
pub use webhook::{parse_delivery, repository_from_url};

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_password_or_token, label_char, presents_password_or_token, valid_path, Delivery,
    WebhookRequest,
};
use crate::{Ci, Module, ParseError};
use crate::{Probe, ProbeAuth, Setup};
use pipeguard_core::event::Platform;

pub struct Azure;

impl Module for Azure {
    fn platform(&self) -> Platform {
        Platform::Azure
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "a personal access token with Build: read and execute; api_url is \
                     https://dev.azure.com (Azure DevOps Server: its root URL)",
            webhook: "Project settings > Service hooks > Web Hooks: Build completed to \
                  https://PIPEGUARD/webhooks/azure, this secret as the basic-auth password",
            probe: Some(Probe {
                path: "/_apis/connectionData",
                auth: ProbeAuth::BasicTokenOnly,
            }),
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "azure",
            default_api_url: "https://dev.azure.com",
            credential: Some("token"),
            user: false,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        presents_password_or_token(headers)
    }

    /// The service hook's "Basic authentication password", or an `X-Pipeguard-Token: …` line
    /// in its "HTTP headers"
    /// (<https://learn.microsoft.com/en-us/azure/devops/service-hooks/services/webhooks>).
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        check_password_or_token(req, secret)
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        parse_delivery(req)
    }

    /// `organization/project`, or `collection path…/project` on Azure DevOps Server; project
    /// names are free text but for path punctuation.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 2..=4, label_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(AzureClient::new(section, http)))
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

    #[test]
    fn secret_as_basic_auth_password_or_token_header() {
        let verify = |h: &HeaderMap| {
            Azure.verify(
                &WebhookRequest {
                    headers: h,
                    query: None,
                    body: b"{}",
                },
                "s3cret",
            )
        };
        // "azure:s3cret" and "azure:nope".
        assert!(verify(&with("authorization", "Basic YXp1cmU6czNjcmV0")).is_ok());
        assert!(verify(&with("authorization", "Basic YXp1cmU6bm9wZQ==")).is_err());
        assert!(verify(&with("x-pipeguard-token", "s3cret")).is_ok());
        assert!(verify(&with("x-pipeguard-token", "s3cre")).is_err());
        assert!(verify(&HeaderMap::new()).is_err());
        assert!(!Azure.presents_credential(&HeaderMap::new(), None));
        assert!(Azure.presents_credential(&with("x-pipeguard-token", "x"), None));
    }

    #[test]
    fn repository_names() {
        assert!(Azure.valid_repository("FabrikamFiber/Fabrikam Fiber Git"));
        assert!(Azure.valid_repository("tfs/DefaultCollection/Project"));
        assert!(!Azure.valid_repository("FabrikamFiber"));
        assert!(!Azure.valid_repository("org/../x"));
        assert!(!Azure.valid_repository("org/p?x"));
    }
}
