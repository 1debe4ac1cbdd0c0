//! GitLab CI: Pipeline Hook / Job Hook webhooks and the REST API v4 (gitlab.com or self-managed).
//!
//! GitLab has no run attempt: a retried job gets a new id inside the same pipeline. The
//! attempt of a failure is therefore `1 + retries_count` (Job Hook) or 1 (Pipeline Hook), and a
//! pipeline that reports `success` is the outcome of whatever attempt came before, so it is
//! reported with [`OUTCOME_ATTEMPT`], above every real attempt.

use crate::http::{client, read_tail, send, LOG_TAIL_BYTES};
use crate::{Ci, JobLog, ParseError, Parsed, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The attempt number a successful pipeline reports: later than any failed attempt.
pub const OUTCOME_ATTEMPT: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// Root of the GitLab instance (the API lives under `/api/v4`).
    pub api_url: String,
    pub token: Option<String>,
    pub http_tries: u32,
    pub http_backoff: Duration,
}

impl Default for GitlabConfig {
    fn default() -> Self {
        GitlabConfig {
            api_url: "https://gitlab.com".into(),
            token: None,
            http_tries: 3,
            http_backoff: Duration::from_millis(500),
        }
    }
}

/// GitLab webhooks write times as `2016-08-12 15:23:28 UTC`; the API uses RFC 3339.
pub fn parse_time_ms(s: Option<&str>) -> Option<i64> {
    let s = s?.trim();
    let t = OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        PrimitiveDateTime::parse(s, fmt)
            .ok()
            .map(|p| p.assume_utc())
    })?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[derive(Deserialize)]
struct Project {
    #[serde(default)]
    path_with_namespace: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Env {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct PipelineAttrs {
    id: u64,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    status: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    id: u64,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    allow_failure: bool,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    environment: Option<Env>,
}

#[derive(Deserialize)]
struct PipelinePayload {
    object_attributes: PipelineAttrs,
    project: Project,
    #[serde(default)]
    builds: Vec<Build>,
}

#[derive(Deserialize)]
struct JobRepo {
    #[serde(default)]
    homepage: Option<String>,
}

#[derive(Deserialize)]
struct JobPayload {
    build_id: u64,
    #[serde(default)]
    build_name: String,
    #[serde(default)]
    build_stage: Option<String>,
    build_status: String,
    #[serde(default)]
    build_allow_failure: bool,
    #[serde(default)]
    build_failure_reason: Option<String>,
    #[serde(default)]
    build_started_at: Option<String>,
    #[serde(default)]
    build_finished_at: Option<String>,
    #[serde(default)]
    retries_count: Option<u32>,
    pipeline_id: u64,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    project: Option<Project>,
    #[serde(default)]
    repository: Option<JobRepo>,
    #[serde(default)]
    environment: Option<Env>,
}

/// `https://gitlab.example.com/group/sub/project` → `group/sub/project`.
fn path_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (_, path) = rest.split_once('/')?;
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

fn project_path(p: Option<&Project>, homepage: Option<&str>) -> Option<String> {
    p.and_then(|p| {
        p.path_with_namespace
            .clone()
            .or_else(|| p.web_url.as_deref().and_then(path_from_url))
    })
    .or_else(|| homepage.and_then(path_from_url))
}

/// Parses one delivery given its `X-Gitlab-Event` name.
pub fn parse_webhook(event: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    let shape = |e: serde_json::Error| ParseError::Shape(format!("{event}: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    match event {
        "Pipeline Hook" => {
            let p: PipelinePayload = serde_json::from_value(value).map_err(shape)?;
            let a = p.object_attributes;
            let repository = project_path(Some(&p.project), None).ok_or_else(|| {
                ParseError::Shape("Pipeline Hook: project.path_with_namespace is missing".into())
            })?;
            match a.status.as_str() {
                "success" => Ok(Parsed::Success {
                    repository,
                    run_id: a.id.to_string(),
                    attempt: OUTCOME_ATTEMPT,
                    finished_at_ms: parse_time_ms(a.finished_at.as_deref()),
                }),
                "failed" => {
                    // Jobs allowed to fail did not fail the pipeline: not ours to heal.
                    let jobs = p
                        .builds
                        .into_iter()
                        .filter(|b| b.status == "failed" && !b.allow_failure)
                        .map(|b| FailedJob {
                            id: b.id.to_string(),
                            name: b.name,
                            stage: b.stage,
                            environment: b.environment.and_then(|e| e.name),
                            platform_reason: b.failure_reason,
                        })
                        .collect();
                    Ok(Parsed::Failure(Box::new(FailureEvent {
                        platform: Some(Platform::Gitlab),
                        repository,
                        run_id: a.id.to_string(),
                        attempt: 1,
                        workflow: a.r#ref.clone().unwrap_or_default(),
                        head_sha: a.sha,
                        branch: a.r#ref,
                        url: a.url,
                        jobs,
                        started_at_ms: parse_time_ms(a.created_at.as_deref()),
                        finished_at_ms: parse_time_ms(a.finished_at.as_deref()),
                        ..Default::default()
                    })))
                }
                other => Ok(Parsed::Ignored(format!("pipeline status {other:?}"))),
            }
        }
        "Job Hook" | "Build Hook" => {
            let j: JobPayload = serde_json::from_value(value).map_err(shape)?;
            if j.build_status != "failed" || j.build_allow_failure {
                return Ok(Parsed::Ignored(format!(
                    "job status {:?}{}; the Pipeline Hook tells outcomes",
                    j.build_status,
                    if j.build_allow_failure {
                        " (allowed to fail)"
                    } else {
                        ""
                    }
                )));
            }
            let repository = project_path(
                j.project.as_ref(),
                j.repository.as_ref().and_then(|r| r.homepage.as_deref()),
            )
            .ok_or_else(|| {
                ParseError::Shape("Job Hook: no project path (project or repository)".into())
            })?;
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Gitlab),
                repository,
                run_id: j.pipeline_id.to_string(),
                // Stays below OUTCOME_ATTEMPT whatever a sender claims.
                attempt: j
                    .retries_count
                    .unwrap_or(0)
                    .saturating_add(1)
                    .min(OUTCOME_ATTEMPT - 1),
                workflow: j.r#ref.clone().unwrap_or_default(),
                head_sha: j.sha,
                branch: j.r#ref,
                jobs: vec![FailedJob {
                    id: j.build_id.to_string(),
                    name: j.build_name,
                    stage: j.build_stage,
                    environment: j.environment.and_then(|e| e.name),
                    platform_reason: j.build_failure_reason,
                }],
                started_at_ms: parse_time_ms(j.build_started_at.as_deref()),
                finished_at_ms: parse_time_ms(j.build_finished_at.as_deref()),
                ..Default::default()
            })))
        }
        other => Ok(Parsed::Ignored(format!("event {other:?} is not handled"))),
    }
}

pub struct Gitlab {
    cfg: GitlabConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiJob {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    allow_failure: bool,
    #[serde(default)]
    failure_reason: Option<String>,
}

#[derive(Deserialize)]
struct ApiPipeline {
    status: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters: project paths go into
/// API URLs this way (`group%2Fproject`), as the API docs require, and so do query values.
pub fn encode_component(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Gitlab {
    pub fn new(cfg: GitlabConfig) -> Gitlab {
        Gitlab {
            cfg,
            http: client(),
        }
    }

    fn project_api(&self, ev: &FailureEvent) -> String {
        format!("/api/v4/projects/{}", encode_component(&ev.repository))
    }

    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response, PlatformError> {
        let url = format!("{}{}", self.cfg.api_url.trim_end_matches('/'), path);
        send(what, self.cfg.http_tries, self.cfg.http_backoff, || {
            let b = self.http.request(method.clone(), &url);
            match &self.cfg.token {
                Some(t) => b.header("PRIVATE-TOKEN", t),
                None => b,
            }
        })
        .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T, PlatformError> {
        self.call(what, reqwest::Method::GET, path)
            .await?
            .json()
            .await
            .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))
    }

    /// Every item of a paginated list, following `X-Next-Page` (bounded: 20 pages of 100).
    async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<Vec<T>, PlatformError> {
        let mut items = Vec::new();
        let mut page = 1u32;
        for _ in 0..20 {
            let r = self
                .call(what, reqwest::Method::GET, &format!("{path}&page={page}"))
                .await?;
            let next = r
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            let batch: Vec<T> = r
                .json()
                .await
                .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))?;
            items.extend(batch);
            match next {
                Some(n) if n > page => page = n,
                _ => break,
            }
        }
        Ok(items)
    }

    /// Which attempt the pipeline is on: how often its most-run job ran (retried jobs are
    /// listed only with `include_retried`).
    async fn attempt(&self, ev: &FailureEvent) -> Result<u32, PlatformError> {
        let jobs: Vec<ApiJob> = self
            .get_all(
                "list pipeline jobs",
                &format!(
                    "{}/pipelines/{}/jobs?include_retried=true&per_page=100",
                    self.project_api(ev),
                    ev.run_id
                ),
            )
            .await?;
        let mut runs: HashMap<&str, u32> = HashMap::new();
        for j in &jobs {
            *runs.entry(j.name.as_str()).or_default() += 1;
        }
        Ok(runs.values().copied().max().unwrap_or(1).max(1))
    }
}

#[async_trait]
impl Ci for Gitlab {
    fn platform(&self) -> Platform {
        Platform::Gitlab
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.cfg.token.is_some(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let p: ApiPipeline = self
            .get_json(
                "get pipeline",
                &format!("{}/pipelines/{}", self.project_api(ev), ev.run_id),
            )
            .await?;
        let finished = parse_time_ms(p.finished_at.as_deref().or(p.updated_at.as_deref()));
        match p.status.as_str() {
            "success" => Ok(RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished,
            }),
            "failed" | "canceled" | "skipped" => Ok(RunState::Completed {
                attempt: self.attempt(ev).await?,
                success: false,
                finished_at_ms: finished,
            }),
            // created, pending, running, manual, scheduled…: not finished yet.
            _ => Ok(RunState::InProgress {
                attempt: self.attempt(ev).await?,
            }),
        }
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let jobs: Vec<ApiJob> = self
            .get_all(
                "list failed jobs",
                &format!(
                    "{}/pipelines/{}/jobs?scope[]=failed&per_page=100",
                    self.project_api(ev),
                    ev.run_id
                ),
            )
            .await?;
        let mut out = Vec::new();
        for j in jobs
            .into_iter()
            .filter(|j| j.status == "failed" && !j.allow_failure)
        {
            let path = format!("{}/jobs/{}/trace", self.project_api(ev), j.id);
            let log = match self.call("job trace", reqwest::Method::GET, &path).await {
                Ok(r) => read_tail(r, LOG_TAIL_BYTES, "job trace").await?,
                // Traces can be erased or expired: diagnose on GitLab's failure_reason alone.
                Err(PlatformError::Permanent(e)) => {
                    tracing::warn!(job = j.id, "trace unavailable: {e}");
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            // The webhook knows the environment (the jobs API does not): keep it.
            let environment = ev
                .jobs
                .iter()
                .find(|k| k.id == j.id.to_string() || k.name == j.name)
                .and_then(|k| k.environment.clone());
            out.push(JobLog {
                job: FailedJob {
                    id: j.id.to_string(),
                    name: j.name,
                    stage: j.stage,
                    environment,
                    platform_reason: j.failure_reason,
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
                "PIPEGUARD_GITLAB_TOKEN is not set; retries need a token with the api scope".into(),
            ));
        }
        if all_failed || jobs.is_empty() {
            let path = format!("{}/pipelines/{}/retry", self.project_api(ev), ev.run_id);
            self.call("retry pipeline", reqwest::Method::POST, &path)
                .await?;
            return Ok(format!("POST {path}"));
        }
        let mut done = Vec::new();
        for j in jobs {
            let path = format!("{}/jobs/{}/retry", self.project_api(ev), j.id);
            self.call("retry job", reqwest::Method::POST, &path).await?;
            done.push(format!("POST {path}"));
        }
        Ok(done.join("; "))
    }
    fn can_rerun_with(&self) -> bool {
        self.cfg.token.is_some()
    }

    /// A retry cannot change variables, so a new pipeline on the same ref carries them.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_pipeline(ev, inputs).await
    }
}

impl Gitlab {
    /// Starts a new pipeline on the event's ref with `variables` (a bigger runner tag,
    /// `GIT_STRATEGY=clone`, a bumped cache-key variable): scaling, reset and cache strategies.
    pub async fn new_pipeline(
        &self,
        ev: &FailureEvent,
        variables: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        if self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_GITLAB_TOKEN is not set".into(),
            ));
        }
        let git_ref = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failure names no ref to start a pipeline on".into())
        })?;
        let body = serde_json::json!({
            "ref": git_ref,
            "variables": variables
                .iter()
                .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                .collect::<Vec<_>>(),
        });
        let url = format!(
            "{}{}/pipeline",
            self.cfg.api_url.trim_end_matches('/'),
            self.project_api(ev)
        );
        let r: Value = send(
            "create pipeline",
            // Not repeated: a lost answer may hide a run that started.
            1,
            self.cfg.http_backoff,
            || {
                self.http
                    .post(&url)
                    .header("PRIVATE-TOKEN", self.cfg.token.as_deref().unwrap_or(""))
                    .json(&body)
            },
        )
        .await?
        .json()
        .await
        .unwrap_or(Value::Null);
        let id = r["id"].as_u64().map(|id| id.to_string());
        Ok(Rerun {
            detail: format!(
                "POST {url} -> pipeline {}",
                id.as_deref().unwrap_or("(no id)")
            ),
            new_run_id: id,
        })
    }

    /// Cancels the event's pipeline (jobs still running in it).
    pub async fn cancel(&self, ev: &FailureEvent) -> Result<String, PlatformError> {
        let path = format!("{}/pipelines/{}/cancel", self.project_api(ev), ev.run_id);
        self.call("cancel pipeline", reqwest::Method::POST, &path)
            .await?;
        Ok(format!("POST {path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(status: &str) -> Vec<u8> {
        json!({
            "object_kind": "pipeline",
            "object_attributes": {"id": 31, "ref": "main", "sha": "bcbb5ec", "status": status,
                "created_at": "2016-08-12 15:23:28 UTC", "finished_at": "2016-08-12 15:26:29 UTC"},
            "project": {"id": 1, "path_with_namespace": "gitlab-org/gitlab-test"},
            "builds": [
                {"id": 380, "stage": "deploy", "name": "production", "status": "failed",
                 "allow_failure": false, "failure_reason": "script_failure",
                 "environment": {"name": "production", "action": "start"}},
                {"id": 377, "stage": "test", "name": "lint", "status": "failed",
                 "allow_failure": true, "failure_reason": "script_failure"},
                {"id": 376, "stage": "build", "name": "build", "status": "success"}
            ]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_pipeline_keeps_reason_stage_and_environment() {
        let Parsed::Failure(ev) = parse_webhook("Pipeline Hook", &pipeline("failed")).unwrap()
        else {
            panic!("expected a failure")
        };
        assert_eq!(ev.repository, "gitlab-org/gitlab-test");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("31", 1));
        assert_eq!(ev.jobs.len(), 1, "allow_failure jobs are not failures");
        let j = &ev.jobs[0];
        assert_eq!(j.platform_reason.as_deref(), Some("script_failure"));
        assert_eq!(j.stage.as_deref(), Some("deploy"));
        assert_eq!(j.environment.as_deref(), Some("production"));
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            181_000
        );
    }

    #[test]
    fn success_is_an_outcome_and_running_is_ignored() {
        assert!(matches!(
            parse_webhook("Pipeline Hook", &pipeline("success")).unwrap(),
            Parsed::Success { attempt: OUTCOME_ATTEMPT, ref run_id, .. } if run_id == "31"
        ));
        assert!(matches!(
            parse_webhook("Pipeline Hook", &pipeline("running")).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_webhook("Push Hook", b"{}").unwrap(),
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn failed_job_hook_counts_retries_as_attempts() {
        let body = json!({
            "object_kind": "build", "build_id": 9, "build_name": "test", "build_stage": "test",
            "build_status": "failed", "build_failure_reason": "runner_system_failure",
            "retries_count": 1, "pipeline_id": 31, "ref": "main",
            "repository": {"homepage": "https://gitlab.example.com/grp/sub/proj"}
        });
        let Parsed::Failure(ev) = parse_webhook("Job Hook", body.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(ev.repository, "grp/sub/proj");
        assert_eq!(ev.attempt, 2);
        assert_eq!(
            ev.jobs[0].platform_reason.as_deref(),
            Some("runner_system_failure")
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_webhook("Pipeline Hook", b"{nope"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_webhook("Pipeline Hook", b"{\"object_attributes\":{}}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_webhook("Job Hook", b"[1]"),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn project_paths_are_encoded() {
        assert_eq!(encode_component("grp/sub/my.proj"), "grp%2Fsub%2Fmy.proj");
    }

    #[test]
    fn shared_fixtures_parse_when_present() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/gitlab/go-gitlab");
        if !dir.exists() {
            eprintln!("skipping: {} not present", dir.display());
            return;
        }
        let p = std::fs::read(dir.join("pipeline.json")).unwrap();
        assert!(matches!(
            parse_webhook("Pipeline Hook", &p).unwrap(),
            Parsed::Success { ref repository, .. } if repository == "gitlab-org/gitlab-test"
        ));
        // A successful job is not an outcome of the pipeline.
        let j = std::fs::read(dir.join("job.json")).unwrap();
        assert!(matches!(
            parse_webhook("Job Hook", &j).unwrap(),
            Parsed::Ignored(_)
        ));
        // Flip the documented job to a failure: the project path comes from the homepage.
        let mut v: Value = serde_json::from_slice(&j).unwrap();
        v["build_status"] = json!("failed");
        let Parsed::Failure(ev) = parse_webhook("Job Hook", v.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(ev.repository, "jsmithy2/release-tools-fake");
        assert_eq!(ev.attempt, 2);
        assert_eq!(ev.jobs[0].environment.as_deref(), Some("production"));
    }

    #[tokio::test]
    async fn failed_jobs_are_read_across_pages() {
        use wiremock::matchers::{method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        let job = |id: u64, name: &str| {
            serde_json::json!({"id": id, "name": name, "stage": "test", "status": "failed",
                               "allow_failure": false, "failure_reason": "script_failure"})
        };
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/jobs"))
            .and(query_param("page", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "2")
                    .set_body_json(serde_json::json!([job(1, "a")])),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/jobs"))
            .and(query_param("page", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "")
                    .set_body_json(serde_json::json!([job(2, "b")])),
            )
            .mount(&mock)
            .await;
        for id in [1, 2] {
            Mock::given(method("GET"))
                .and(path(format!("/api/v4/projects/g%2Fp/jobs/{id}/trace")))
                .respond_with(ResponseTemplate::new(200).set_body_string("log"))
                .mount(&mock)
                .await;
        }
        let g = Gitlab::new(GitlabConfig {
            api_url: mock.uri(),
            token: Some("tok".into()),
            http_tries: 1,
            http_backoff: Duration::from_millis(1),
        });
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            ..Default::default()
        };
        let names: Vec<String> = g
            .failed_logs(&ev)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.job.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[tokio::test]
    async fn new_pipeline_on_the_ref_with_variables_and_cancel() {
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/pipeline"))
            .and(header("private-token", "tok"))
            .and(body_json(
                json!({"ref": "main", "variables": [{"key": "RUNNER_TAG", "value": "xlarge"}]}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 77})))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/cancel"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 5})))
            .expect(1)
            .mount(&mock)
            .await;
        let g = Gitlab::new(GitlabConfig {
            api_url: mock.uri(),
            token: Some("tok".into()),
            http_tries: 1,
            http_backoff: Duration::from_millis(1),
        });
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let done = g
            .new_pipeline(&ev, &[("RUNNER_TAG".into(), "xlarge".into())])
            .await
            .unwrap();
        assert_eq!(done.new_run_id.as_deref(), Some("77"));
        assert!(done.detail.ends_with("pipeline 77"), "{}", done.detail);
        g.cancel(&ev).await.unwrap();
        let no_ref = FailureEvent { branch: None, ..ev };
        assert!(matches!(
            g.new_pipeline(&no_ref, &[]).await,
            Err(PlatformError::Permanent(_))
        ));
        mock.verify().await;
    }
}
