//! CircleCI: `workflow-completed` / `job-completed` outbound webhooks, step output logs through
//! API v1.1, and "rerun workflow from failed" through API v2.
//!
//! A rerun is a new workflow (new id) with the same name in the same pipeline, so a run is
//! `<pipeline id>/<workflow name>`, its attempt is how many workflows of that name the pipeline
//! has, and a `success` delivery is reported as [`OUTCOME_ATTEMPT`] (see the GitLab module).

use crate::gitlab::parse_time_ms;
use crate::http::{client, send};
use crate::{Ci, JobLog, ParseError, Parsed, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub use crate::gitlab::OUTCOME_ATTEMPT;

#[derive(Debug, Clone)]
pub struct CircleciConfig {
    pub api_url: String,
    pub token: Option<String>,
    pub http_tries: u32,
    pub http_backoff: Duration,
}

impl Default for CircleciConfig {
    fn default() -> Self {
        CircleciConfig {
            api_url: "https://circleci.com".into(),
            token: None,
            http_tries: 3,
            http_backoff: Duration::from_millis(500),
        }
    }
}

/// `circleci-signature` may carry several versioned signatures (`v1=…,v2=…`); v1 is ours.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .filter(|s| s.starts_with("v1="))
        .any(|s| crate::signature::verify_hmac_sha256(secret, body, s, "v1="))
}

/// A parsed delivery and its id (the payload's `id`, documented as the deduplication key).
#[derive(Debug)]
pub struct Delivery {
    pub parsed: Parsed,
    pub id: String,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    stopped_at: Option<String>,
}

#[derive(Deserialize)]
struct Project {
    slug: String,
}

#[derive(Deserialize)]
struct Vcs {
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

#[derive(Deserialize)]
struct Pipeline {
    id: String,
    #[serde(default)]
    vcs: Option<Vcs>,
}

#[derive(Deserialize)]
struct Payload {
    id: String,
    r#type: String,
    project: Project,
    pipeline: Pipeline,
    workflow: Named,
    #[serde(default)]
    job: Option<Named>,
}

fn failed_status(s: &str) -> bool {
    matches!(s, "failed" | "error" | "infrastructure_fail" | "timedout")
}

/// Parses one delivery; the event type is the payload's `type`.
pub fn parse_webhook(body: &[u8]) -> Result<Delivery, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    let p: Payload = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("CircleCI webhook: {e}")))?;
    if p.id.trim().is_empty() || p.workflow.name.is_empty() {
        return Err(ParseError::Shape(
            "id and workflow.name must not be empty".into(),
        ));
    }
    let run_id = format!("{}/{}", p.pipeline.id, p.workflow.name);
    let (sha, branch) = p
        .pipeline
        .vcs
        .map(|v| (v.revision, v.branch))
        .unwrap_or_default();
    let event = |jobs: Vec<FailedJob>, started: Option<&str>, stopped: Option<&str>| {
        Parsed::Failure(Box::new(FailureEvent {
            platform: Some(Platform::Circleci),
            repository: p.project.slug.clone(),
            run_id: run_id.clone(),
            attempt: 1,
            workflow: p.workflow.name.clone(),
            head_sha: sha.clone(),
            branch: branch.clone(),
            url: p.workflow.url.clone(),
            jobs,
            started_at_ms: parse_time_ms(started),
            finished_at_ms: parse_time_ms(stopped),
            ..Default::default()
        }))
    };
    let parsed = match p.r#type.as_str() {
        "workflow-completed" => match p.workflow.status.as_deref().unwrap_or("") {
            "success" => Parsed::Success {
                repository: p.project.slug.clone(),
                run_id: run_id.clone(),
                attempt: OUTCOME_ATTEMPT,
                finished_at_ms: parse_time_ms(p.workflow.stopped_at.as_deref()),
            },
            s if failed_status(s) => event(
                vec![],
                p.workflow.created_at.as_deref(),
                p.workflow.stopped_at.as_deref(),
            ),
            s => Parsed::Ignored(format!("workflow status {s:?}")),
        },
        "job-completed" => {
            let j = p
                .job
                .as_ref()
                .ok_or_else(|| ParseError::Shape("job-completed without job".into()))?;
            match j.status.as_deref().unwrap_or("") {
                s if failed_status(s) => event(
                    vec![FailedJob {
                        id: j.id.clone().unwrap_or_default(),
                        name: j.name.clone(),
                        ..Default::default()
                    }],
                    j.started_at.as_deref(),
                    j.stopped_at.as_deref(),
                ),
                s => Parsed::Ignored(format!(
                    "job status {s:?}; workflow-completed tells outcomes"
                )),
            }
        }
        other => Parsed::Ignored(format!("event type {other:?} is not handled")),
    };
    Ok(Delivery { parsed, id: p.id })
}

pub struct Circleci {
    cfg: CircleciConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ApiWorkflow {
    id: String,
    name: String,
    status: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    stopped_at: Option<String>,
}

#[derive(Deserialize)]
struct ApiJob {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    job_number: Option<u64>,
    name: String,
    status: String,
}

#[derive(Deserialize)]
struct V1Build {
    #[serde(default)]
    steps: Vec<V1Step>,
}

#[derive(Deserialize)]
struct V1Step {
    #[serde(default)]
    actions: Vec<V1Action>,
}

#[derive(Deserialize)]
struct V1Action {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    failed: Option<bool>,
    #[serde(default)]
    output_url: Option<String>,
}

/// `gh/org/repo` → `github/org/repo`, the form API v1.1 takes.
fn v1_project(slug: &str) -> String {
    match slug.split_once('/') {
        Some(("gh", rest)) => format!("github/{rest}"),
        Some(("bb", rest)) => format!("bitbucket/{rest}"),
        _ => slug.to_string(),
    }
}

impl Circleci {
    pub fn new(cfg: CircleciConfig) -> Circleci {
        Circleci {
            cfg,
            http: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.api_url.trim_end_matches('/'), path)
    }

    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, PlatformError> {
        send(what, self.cfg.http_tries, self.cfg.http_backoff, || {
            let mut b = self.http.request(method.clone(), url);
            if let Some(t) = &self.cfg.token {
                b = b.header("Circle-Token", t);
            }
            if let Some(v) = body {
                b = b.json(v);
            }
            b
        })
        .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
    ) -> Result<T, PlatformError> {
        self.call(what, reqwest::Method::GET, url, None)
            .await?
            .json()
            .await
            .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))
    }

    /// Every item of a paginated v2 list, following `next_page_token` (bounded).
    async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
    ) -> Result<Vec<T>, PlatformError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..50 {
            let page_url = match &token {
                Some(t) => format!("{url}?page-token={}", crate::gitlab::encode_component(t)),
                None => url.to_string(),
            };
            let page: Page<T> = self.get_json(what, &page_url).await?;
            items.extend(page.items);
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// The workflows of the event's pipeline with the event's name, oldest first.
    async fn workflows(&self, ev: &FailureEvent) -> Result<Vec<ApiWorkflow>, PlatformError> {
        let (pipeline, name) = ev.run_id.split_once('/').ok_or_else(|| {
            PlatformError::Permanent(format!("run id {:?} is not pipeline/workflow", ev.run_id))
        })?;
        let all: Vec<ApiWorkflow> = self
            .get_all(
                "list workflows",
                &self.url(&format!("/api/v2/pipeline/{pipeline}/workflow")),
            )
            .await?;
        let mut w: Vec<ApiWorkflow> = all.into_iter().filter(|w| w.name == name).collect();
        w.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(w)
    }

    async fn latest(&self, ev: &FailureEvent) -> Result<(ApiWorkflow, u32), PlatformError> {
        let mut w = self.workflows(ev).await?;
        let n = w.len() as u32;
        let last = w.pop().ok_or_else(|| {
            PlatformError::Permanent(format!("no workflow {:?} in the pipeline", ev.workflow))
        })?;
        Ok((last, n))
    }

    /// The output of a job's failed steps, as API v1.1 gives it (one JSON array per action).
    async fn job_output(&self, ev: &FailureEvent, number: u64) -> Result<Vec<u8>, PlatformError> {
        let b: V1Build = self
            .get_json(
                "job details",
                &self.url(&format!(
                    "/api/v1.1/project/{}/{number}",
                    v1_project(&ev.repository)
                )),
            )
            .await?;
        let mut log = Vec::new();
        for a in b.steps.iter().flat_map(|s| &s.actions) {
            let failed = a.failed == Some(true)
                || a.status
                    .as_deref()
                    .is_some_and(|s| failed_status(s) || s == "timedout");
            let Some(url) = a.output_url.as_deref().filter(|_| failed) else {
                continue;
            };
            // Output URLs are pre-signed; the token is not needed (and not sent elsewhere).
            let r = send(
                "step output",
                self.cfg.http_tries,
                self.cfg.http_backoff,
                || self.http.get(url),
            )
            .await;
            let messages: Value = match r {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(PlatformError::Permanent(e)) => {
                    tracing::warn!(job = number, step = %a.name, "output unavailable: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for m in messages.as_array().into_iter().flatten() {
                if let Some(text) = m["message"].as_str() {
                    log.extend_from_slice(text.as_bytes());
                    if !text.ends_with('\n') {
                        log.push(b'\n');
                    }
                }
            }
        }
        Ok(log)
    }
}

#[async_trait]
impl Ci for Circleci {
    fn platform(&self) -> Platform {
        Platform::Circleci
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.cfg.token.is_some(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let (w, attempt) = self.latest(ev).await?;
        let finished = parse_time_ms(w.stopped_at.as_deref());
        Ok(match w.status.as_str() {
            "success" => RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished,
            },
            "failed" | "error" | "canceled" | "unauthorized" | "not_run" => RunState::Completed {
                attempt,
                success: false,
                finished_at_ms: finished,
            },
            // running, failing, on_hold: not done.
            _ => RunState::InProgress { attempt },
        })
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let (w, _) = self.latest(ev).await?;
        let jobs: Vec<ApiJob> = self
            .get_all(
                "list workflow jobs",
                &self.url(&format!("/api/v2/workflow/{}/job", w.id)),
            )
            .await?;
        let mut out = Vec::new();
        for j in jobs.into_iter().filter(|j| failed_status(&j.status)) {
            let log = match j.job_number {
                Some(n) => self.job_output(ev, n).await?,
                None => Vec::new(),
            };
            out.push(JobLog {
                job: FailedJob {
                    id: j.id.unwrap_or_default(),
                    name: j.name,
                    ..Default::default()
                },
                log,
            });
        }
        Ok(out)
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        if self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_CIRCLECI_TOKEN is not set; reruns need a personal API token".into(),
            ));
        }
        let (w, _) = self.latest(ev).await?;
        let ids: Vec<&str> = jobs
            .iter()
            .map(|j| j.id.as_str())
            .filter(|i| !i.is_empty())
            .collect();
        // Rerunning named jobs keeps the genuine failures out of the new workflow.
        let body = if all_failed || ids.is_empty() {
            json!({"from_failed": true})
        } else {
            json!({"jobs": ids})
        };
        let url = self.url(&format!("/api/v2/workflow/{}/rerun", w.id));
        self.call("rerun workflow", reqwest::Method::POST, &url, Some(&body))
            .await?;
        Ok(format!("POST {url} {body}"))
    }
    fn can_rerun_with(&self) -> bool {
        self.cfg.token.is_some()
    }

    /// A workflow rerun keeps its pipeline parameters, so a new pipeline carries them.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_pipeline(ev, &typed_parameters(inputs)).await
    }
}

impl Circleci {
    /// Triggers a new pipeline on the event's branch with pipeline `parameters` (a resource
    /// class, a cache-key version): the scaling and cache strategies' building block.
    pub async fn new_pipeline(
        &self,
        ev: &FailureEvent,
        parameters: &serde_json::Map<String, Value>,
    ) -> Result<Rerun, PlatformError> {
        if self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_CIRCLECI_TOKEN is not set".into(),
            ));
        }
        let branch = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failure names no branch to trigger a pipeline on".into())
        })?;
        let body = json!({"branch": branch, "parameters": parameters});
        let url = self.url(&format!("/api/v2/project/{}/pipeline", ev.repository));
        // Not repeated: a lost answer may hide a pipeline that started.
        let r: Value = send("trigger pipeline", 1, self.cfg.http_backoff, || {
            self.http
                .post(&url)
                .header("Circle-Token", self.cfg.token.as_deref().unwrap_or(""))
                .json(&body)
        })
        .await?
        .json()
        .await
        .unwrap_or(Value::Null);
        // Runs are keyed by pipeline and workflow name, as webhooks name them.
        let new_run_id = r["id"].as_str().map(|id| format!("{id}/{}", ev.workflow));
        Ok(Rerun {
            detail: format!("POST {url} -> pipeline {}", r["number"]),
            new_run_id,
        })
    }
}

/// Pipeline parameters are typed: `true`/`false` and integers are sent as such, so a
/// boolean or integer parameter accepts them.
pub fn typed_parameters(inputs: &[(String, String)]) -> serde_json::Map<String, Value> {
    inputs
        .iter()
        .map(|(k, v)| {
            let value = match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(v.clone())),
            };
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(kind: &str, status: &str) -> Vec<u8> {
        json!({
            "id": "3888f21b-eaa7-38e3-8f3d-75a63bba8895", "type": kind,
            "happened_at": "2026-11-23T10:04:00.000Z",
            "webhook": {"id": "cf8c4fdd-0587-4da1-b4ca-4846e9640af9", "name": "pipeguard"},
            "project": {"id": "84996744-a854-4f5e-aea3-04e2851dc1d2", "name": "api", "slug": "gh/acme/api"},
            "organization": {"id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c", "name": "acme"},
            "workflow": {"id": "fda08377-fe7e-46b1-8992-3a7aaecac9c3", "name": "build-test",
                         "created_at": "2026-11-23T10:00:00.000Z", "stopped_at": "2026-11-23T10:04:00.000Z",
                         "url": "https://app.circleci.com/pipelines/github/acme/api/130/workflows/fda08377",
                         "status": status},
            "pipeline": {"id": "1285fe1d-d3a6-44fc-8886-8979558254c4", "number": 130,
                         "created_at": "2026-11-23T09:59:59.000Z",
                         "trigger": {"type": "webhook"},
                         "vcs": {"provider_name": "github", "revision": "1dc6aa69", "branch": "main",
                                 "origin_repository_url": "https://github.com/acme/api"}},
            "job": {"id": "8bd26f7b-ea4b-4ed8-b3ad-7e0ef1b9c8e4", "name": "test", "number": 136,
                    "started_at": "2026-11-23T10:00:05.000Z", "stopped_at": "2026-11-23T10:03:50.000Z",
                    "status": status}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_workflow_and_job_are_one_run() {
        let w = parse_webhook(&payload("workflow-completed", "failed")).unwrap();
        let j = parse_webhook(&payload("job-completed", "failed")).unwrap();
        let (Parsed::Failure(w), Parsed::Failure(j)) = (w.parsed, j.parsed) else {
            panic!()
        };
        assert_eq!(w.run_id, "1285fe1d-d3a6-44fc-8886-8979558254c4/build-test");
        assert_eq!(
            (w.run_id.as_str(), w.attempt),
            (j.run_id.as_str(), j.attempt)
        );
        assert_eq!(w.repository, "gh/acme/api");
        assert_eq!(j.jobs[0].name, "test");
        assert_eq!(w.head_sha.as_deref(), Some("1dc6aa69"));
    }

    #[test]
    fn success_and_other_statuses() {
        let d = parse_webhook(&payload("workflow-completed", "success")).unwrap();
        assert!(matches!(
            d.parsed,
            Parsed::Success {
                attempt: OUTCOME_ATTEMPT,
                ..
            }
        ));
        assert_eq!(d.id, "3888f21b-eaa7-38e3-8f3d-75a63bba8895");
        assert!(matches!(
            parse_webhook(&payload("workflow-completed", "canceled"))
                .unwrap()
                .parsed,
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_webhook(&payload("job-completed", "success"))
                .unwrap()
                .parsed,
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_webhook(b"{"), Err(ParseError::Json(_))));
        assert!(matches!(parse_webhook(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_webhook(br#"{"id":"x","type":"workflow-completed"}"#),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn signatures_with_several_versions() {
        let body = b"{\"a\":1}";
        let sig = crate::signature::hmac_sha256_hex(b"s", body);
        assert!(verify_signature(b"s", body, &format!("v1={sig}")));
        assert!(verify_signature(b"s", body, &format!("v2=abc, v1={sig}")));
        assert!(!verify_signature(b"t", body, &format!("v1={sig}")));
        assert!(!verify_signature(b"s", body, &sig));
    }

    #[test]
    fn v1_project_paths() {
        assert_eq!(v1_project("gh/acme/api"), "github/acme/api");
        assert_eq!(v1_project("bb/acme/api"), "bitbucket/acme/api");
        assert_eq!(v1_project("circleci/x/y"), "circleci/x/y");
    }

    #[tokio::test]
    async fn workflow_jobs_are_read_across_pages() {
        use wiremock::matchers::{method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/pipeline/p1/workflow"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "w1", "name": "build", "status": "failed"}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/workflow/w1/job"))
            .and(query_param("page-token", "next+1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "j2", "name": "late", "status": "failed"}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/workflow/w1/job"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "j1", "name": "early", "status": "success"}],
                "next_page_token": "next+1"
            })))
            .mount(&mock)
            .await;
        let c = Circleci::new(CircleciConfig {
            api_url: mock.uri(),
            token: Some("ct".into()),
            http_tries: 1,
            http_backoff: Duration::from_millis(1),
        });
        let ev = FailureEvent {
            repository: "gh/acme/api".into(),
            run_id: "p1/build".into(),
            ..Default::default()
        };
        let logs = c.failed_logs(&ev).await.unwrap();
        let names: Vec<&str> = logs.iter().map(|l| l.job.name.as_str()).collect();
        assert_eq!(names, ["late"]);
    }

    #[tokio::test]
    async fn new_pipeline_with_parameters() {
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/project/gh/acme/api/pipeline"))
            .and(header("circle-token", "ct"))
            .and(body_json(
                json!({"branch": "main", "parameters": {"resource_class": "large"}}),
            ))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({"id": "p", "number": 131})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let c = Circleci::new(CircleciConfig {
            api_url: mock.uri(),
            token: Some("ct".into()),
            http_tries: 1,
            http_backoff: Duration::from_millis(1),
        });
        let ev = FailureEvent {
            repository: "gh/acme/api".into(),
            workflow: "build".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let mut params = serde_json::Map::new();
        params.insert("resource_class".into(), json!("large"));
        let done = c.new_pipeline(&ev, &params).await.unwrap();
        assert_eq!(done.new_run_id.as_deref(), Some("p/build"));
        assert!(done.detail.ends_with("pipeline 131"), "{}", done.detail);
        mock.verify().await;
    }
}
