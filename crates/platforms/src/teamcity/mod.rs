//! TeamCity: `BUILD_FINISHED` deliveries of TeamCity's own webhooks (Basic auth from
//! `teamcity.internal.webhooks.username/password`, or an `X-Pipeguard-Token` header from a proxy)
//! and the REST API with an access token.
//!
//! **What a re-run is.** TeamCity has no retry of a finished build: a re-run is a new build of
//! the same build configuration queued through `POST /app/rest/buildQueue`, pinned to the
//! failed build's revision with `lastChanges` (`version:<revision>,buildType:(id:…)`), on the
//! same branch; it gets a new build id and number and runs every step again. Custom parameters
//! go in `properties`, and `triggeringOptions.cleanSources` asks for a clean checkout
//! (<https://www.jetbrains.com/help/teamcity/rest/start-and-cancel-builds.html>,
//! `JetBrains/teamcity-documentation` `topics/rest-api-reference.md`, "Triggering a Build").
//! TeamCity may merge a queued build into an identical one already queued; nothing is refused
//! for being old. A build configuration is one job: a build chain's builds report separately.
//!
//! **Runs and attempts.** The repository is the build configuration id (`buildTypeId`), the
//! run is the revision it built (its first VCS revision, or `-` for a configuration without
//! VCS roots, whose builds all form one run) and the attempt is the build id, which rises with
//! every build on the server: a queued re-run reports a higher attempt than the build it
//! repeats, so its `BUILD_FINISHED` (success or failure) is the heal's outcome, and polling
//! reads the newest build of the configuration on that revision
//! (`/app/rest/builds?locator=buildType:(id:…),revision:(…),…,count:1`). A re-run with changed
//! parameters is therefore the next attempt of the same run, not a new run.
//!
//! **Deliveries** carry no id or signature: the event and build id identify one
//! (`BUILD_FINISHED:8134`); canceled builds send `BUILD_INTERRUPTED` and are ignored
//! (<https://www.jetbrains.com/help/teamcity/teamcity-webhooks.html>). Logs are the build log
//! download (`/downloadBuildLog.html?buildId=…&plain=true`,
//! <https://www.jetbrains.com/help/teamcity/build-log.html>); the build configuration's name
//! and project go with it, so a failed "Deploy" configuration waits for approval.

mod client;
mod webhook;

pub use client::TeamcityClient;
pub use webhook::{parse_delivery, parse_teamcity_time};

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_password_or_token, presents_password_or_token, slug_char, valid_path, Delivery,
    WebhookRequest,
};
use crate::{Ci, Module, ParseError};
use crate::{Probe, ProbeAuth, Setup};
use pipeguard_core::event::Platform;

/// The run id of builds without a VCS revision.
pub const NO_REVISION: &str = "-";

pub struct Teamcity;

impl Module for Teamcity {
    fn platform(&self) -> Platform {
        Platform::Teamcity
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "an access token of a user who may run builds; api_url is the server URL",
            webhook:
                "a webhook on BUILD_FINISHED to https://PIPEGUARD/webhooks/teamcity with this \
                  secret as the basic-auth password",
            probe: Some(Probe {
                path: "/app/rest/server",
                auth: ProbeAuth::Bearer,
            }),
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "teamcity",
            default_api_url: "",
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

    /// TeamCity's webhooks can only authenticate with Basic auth (the user name is free); a
    /// proxy in front may add `X-Pipeguard-Token` instead.
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        check_password_or_token(req, secret)
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        parse_delivery(req)
    }

    /// A build configuration id: latin letters, digits and underscores.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 1..=1, slug_char)
    }

    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>> {
        Some(Box::new(TeamcityClient::new(section, http)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn basic_auth_password_or_token_header() {
        let mut h = HeaderMap::new();
        // "teamcity:s3cret"
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic dGVhbWNpdHk6czNjcmV0"),
        );
        let req = WebhookRequest {
            headers: &h,
            query: None,
            body: b"{}",
        };
        assert!(Teamcity.verify(&req, "s3cret").is_ok());
        assert!(Teamcity.verify(&req, "other").is_err());
        assert!(Teamcity.presents_credential(&h, None));
        assert!(!Teamcity.presents_credential(&HeaderMap::new(), None));
    }

    #[test]
    fn repository_is_a_build_configuration_id() {
        assert!(Teamcity.valid_repository("ProjectName_BuildConfName"));
        assert!(!Teamcity.valid_repository("Project/Build"));
        assert!(!Teamcity.valid_repository("id:x),(y"));
        assert!(!Teamcity.valid_repository(".."));
    }
}
