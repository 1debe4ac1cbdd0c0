//! The data API: builds, steps, raw logs and the `rebuild` control action.

use super::webhook::secs_to_ms;
use super::{EXCEPTION, FAILURE, SUCCESS, WARNINGS};
use crate::api::{read_json, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::{Ci, JobLog, PlatformError, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct ApiBuild {
    buildid: u64,
    number: u64,
    builderid: u64,
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    results: Option<i64>,
    #[serde(default)]
    complete_at: Option<f64>,
}

#[derive(Deserialize)]
struct ApiStep {
    stepid: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    results: Option<i64>,
}

#[derive(Deserialize)]
struct ApiLog {
    logid: u64,
    #[serde(default)]
    r#type: String,
}

#[derive(Deserialize)]
struct ApiBuildset {
    bsid: u64,
}

#[derive(Deserialize)]
struct ApiBuildRequest {
    buildrequestid: u64,
}

pub struct BuildbotClient {
    api: ApiClient,
}

/// Build, step, log and buildset ids are numbers; anything else never reaches a URL.
fn id(s: &str) -> Result<u64, PlatformError> {
    s.parse()
        .map_err(|_| PlatformError::Permanent(format!("{s:?} is not a Buildbot id")))
}

impl BuildbotClient {
    pub fn new(s: &Section, http: &HttpOptions) -> BuildbotClient {
        let auth = match &s.user {
            Some(u) => Auth::Basic(u.clone(), s.token.clone()),
            None => Auth::None,
        };
        let base = format!("{}/api/v2", s.api_url.trim_end_matches('/'));
        BuildbotClient {
            api: ApiClient::new(&base, auth, http.clone()),
        }
    }

    /// GETs a collection and returns its list (the API wraps lists as `{"<kind>": [...]}`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        kind: &str,
    ) -> Result<Vec<T>, PlatformError> {
        let mut v: Value = self.api.get_json(what, path).await?;
        serde_json::from_value(v[kind].take())
            .map_err(|e| PlatformError::Permanent(format!("{what}: unexpected answer: {e}")))
    }

    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        kind: &str,
    ) -> Result<T, PlatformError> {
        self.list(what, path, kind)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| PlatformError::Permanent(format!("{what}: not found")))
    }

    /// The build that failed in the event's attempt: the delivery names it; after an outcome
    /// the worker keeps only run and attempt, so it is found by builder and number then.
    async fn failed_build(&self, ev: &FailureEvent) -> Result<ApiBuild, PlatformError> {
        if let Some(id) = ev.jobs.first().and_then(|j| j.id.parse::<u64>().ok()) {
            return self
                .one("get build", &format!("/builds/{id}"), "builds")
                .await;
        }
        let root: ApiBuild = self
            .one(
                "get first build",
                &format!("/builds/{}", id(&ev.run_id)?),
                "builds",
            )
            .await?;
        self.one(
            "get build by number",
            &format!("/builders/{}/builds/{}", root.builderid, ev.attempt),
            "builds",
        )
        .await
    }

    /// The newest build of the run: the root, or the build of its latest rebuild.
    async fn newest_build(&self, ev: &FailureEvent) -> Result<Option<ApiBuild>, PlatformError> {
        let sets: Vec<ApiBuildset> = self
            .list(
                "list rebuilds",
                &format!(
                    "/buildsets?rebuilt_buildid={}&order=-bsid&limit=1",
                    id(&ev.run_id)?
                ),
                "buildsets",
            )
            .await?;
        let Some(set) = sets.first() else {
            return self
                .one(
                    "get build",
                    &format!("/builds/{}", id(&ev.run_id)?),
                    "builds",
                )
                .await
                .map(Some);
        };
        let reqs: Vec<ApiBuildRequest> = self
            .list(
                "list build requests",
                &format!("/buildrequests?buildsetid={}", set.bsid),
                "buildrequests",
            )
            .await?;
        let Some(req) = reqs.first() else {
            return Ok(None);
        };
        let builds: Vec<ApiBuild> = self
            .list(
                "list builds of request",
                &format!("/buildrequests/{}/builds", req.buildrequestid),
                "builds",
            )
            .await?;
        Ok(builds.into_iter().max_by_key(|b| b.number))
    }
}

#[async_trait]
impl Ci for BuildbotClient {
    fn platform(&self) -> Platform {
        Platform::Buildbot
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        // Rebuilds go through the data API, open to whoever the master's authz lets in.
        Capabilities {
            retry: true,
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        match self.newest_build(ev).await? {
            // A rebuild was requested but no build started yet.
            None => Ok(RunState::InProgress {
                attempt: ev.attempt + 1,
            }),
            Some(b) if !b.complete => Ok(RunState::InProgress {
                attempt: b.number as u32,
            }),
            Some(b) => Ok(RunState::Completed {
                attempt: b.number as u32,
                success: matches!(b.results, Some(SUCCESS | WARNINGS)),
                finished_at_ms: secs_to_ms(b.complete_at),
            }),
        }
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let build = self.failed_build(ev).await?;
        let steps: Vec<ApiStep> = self
            .list(
                "list steps",
                &format!("/builds/{}/steps", build.buildid),
                "steps",
            )
            .await?;
        let mut out = Vec::new();
        for step in steps
            .into_iter()
            .filter(|s| matches!(s.results, Some(FAILURE | EXCEPTION)))
        {
            let logs: Vec<ApiLog> = self
                .list(
                    "list step logs",
                    &format!("/steps/{}/logs", step.stepid),
                    "logs",
                )
                .await?;
            let mut text = Vec::new();
            // Stdio and text logs; HTML logs are summaries meant for the UI.
            for log in logs.iter().filter(|l| l.r#type != "h") {
                let raw = self
                    .api
                    .log_tail("get raw log", &format!("/logs/{}/raw", log.logid))
                    .await?
                    .unwrap_or_default();
                text.extend_from_slice(&raw);
                if !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
            }
            out.push(JobLog {
                job: FailedJob {
                    id: build.buildid.to_string(),
                    name: format!("{} / {}", ev.repository, step.name),
                    stage: Some(step.name),
                    platform_reason: ev.jobs.first().and_then(|j| j.platform_reason.clone()),
                    ..Default::default()
                },
                log: text,
            });
        }
        Ok(out)
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        _jobs: &[FailedJob],
        _all_failed: bool,
    ) -> Result<String, PlatformError> {
        // A build is one unit: rebuilding it re-runs every step with the same properties.
        let build = self.failed_build(ev).await?;
        let path = format!("/builds/{}", build.buildid);
        let rpc = json!({"id": 1, "jsonrpc": "2.0", "method": "rebuild", "params": {}});
        let answer: Value = read_json(
            "rebuild",
            self.api
                .call_once("rebuild", Method::POST, &path, Some(&rpc))
                .await?,
        )
        .await?;
        // JSON-RPC errors come with HTTP 200 (or 4xx/5xx, already handled by `send`).
        if let Some(err) = answer.get("error") {
            return Err(PlatformError::Permanent(format!("rebuild refused: {err}")));
        }
        let bsid = answer["result"][0].clone();
        Ok(format!("POST /api/v2{path} rebuild → buildset {bsid}"))
    }
}
