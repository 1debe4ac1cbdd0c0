//! GitHub Actions: `workflow_run` / `workflow_job` webhooks and the Actions REST API.

use crate::http::{client, read_tail, send, LOG_TAIL_BYTES};
use crate::{Ci, JobLog, ParseError, Parsed, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// GitHub refuses re-runs of runs older than this.
const RERUN_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// GitHub caps the number of attempts of one workflow run.
const MAX_RUN_ATTEMPTS: u32 = 50;

#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub api_url: String,
    pub token: Option<String>,
    /// Tries per API call on 5xx/timeouts, and the first backoff between them.
    pub http_tries: u32,
    pub http_backoff: Duration,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: "https://api.github.com".into(),
            token: None,
            http_tries: 3,
            http_backoff: Duration::from_millis(500),
        }
    }
}

pub fn parse_time_ms(s: Option<&str>) -> Option<i64> {
    let t = OffsetDateTime::parse(s?, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn failed_conclusion(c: &str) -> bool {
    matches!(c, "failure" | "timed_out" | "startup_failure")
}

#[derive(Deserialize)]
struct Repo {
    full_name: String,
}

#[derive(Deserialize)]
struct RunPayload {
    action: String,
    workflow_run: Run,
    repository: Repo,
}

#[derive(Deserialize)]
struct Run {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    run_started_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct JobPayload {
    action: String,
    workflow_job: Job,
    repository: Repo,
}

#[derive(Deserialize)]
struct Job {
    id: u64,
    run_id: u64,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    workflow_name: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
}

/// Parses one delivery given its `X-GitHub-Event` name.
pub fn parse_webhook(event: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    let shape = |e: serde_json::Error| ParseError::Shape(format!("{event}: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    match event {
        "ping" => Ok(Parsed::Ping),
        "workflow_run" => {
            let p: RunPayload = serde_json::from_value(value).map_err(shape)?;
            let r = p.workflow_run;
            let attempt = r.run_attempt.unwrap_or(1);
            let conclusion = r.conclusion.as_deref().unwrap_or("");
            if p.action != "completed" || r.status.as_deref().is_some_and(|s| s != "completed") {
                return Ok(Parsed::Ignored(format!(
                    "workflow_run {} is not a completion",
                    p.action
                )));
            }
            if conclusion == "success" {
                return Ok(Parsed::Success {
                    repository: p.repository.full_name,
                    run_id: r.id.to_string(),
                    attempt,
                    finished_at_ms: parse_time_ms(r.updated_at.as_deref()),
                });
            }
            if !failed_conclusion(conclusion) {
                return Ok(Parsed::Ignored(format!(
                    "workflow_run concluded {conclusion:?}"
                )));
            }
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Github),
                repository: p.repository.full_name,
                run_id: r.id.to_string(),
                attempt,
                workflow: r.name.unwrap_or_default(),
                head_sha: r.head_sha,
                branch: r.head_branch,
                url: r.html_url,
                started_at_ms: parse_time_ms(
                    r.run_started_at.as_deref().or(r.created_at.as_deref()),
                ),
                finished_at_ms: parse_time_ms(r.updated_at.as_deref()),
                ..Default::default()
            })))
        }
        "workflow_job" => {
            let p: JobPayload = serde_json::from_value(value).map_err(shape)?;
            let j = p.workflow_job;
            let conclusion = j.conclusion.as_deref().unwrap_or("");
            if p.action != "completed" || !failed_conclusion(conclusion) {
                return Ok(Parsed::Ignored(format!(
                    "workflow_job {} concluded {conclusion:?}; the run's completion tells outcomes",
                    p.action
                )));
            }
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Github),
                repository: p.repository.full_name,
                run_id: j.run_id.to_string(),
                attempt: j.run_attempt.unwrap_or(1),
                workflow: j.workflow_name.unwrap_or_default(),
                head_sha: j.head_sha,
                branch: j.head_branch,
                url: j.html_url,
                jobs: vec![FailedJob {
                    id: j.id.to_string(),
                    name: j.name,
                    ..Default::default()
                }],
                started_at_ms: parse_time_ms(j.started_at.as_deref()),
                finished_at_ms: parse_time_ms(j.completed_at.as_deref()),
                ..Default::default()
            })))
        }
        other => Ok(Parsed::Ignored(format!("event {other:?} is not handled"))),
    }
}

pub struct Github {
    cfg: GithubConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct JobsPage {
    total_count: u64,
    jobs: Vec<ApiJob>,
}

#[derive(Deserialize)]
struct ApiJob {
    id: u64,
    name: String,
    #[serde(default)]
    conclusion: Option<String>,
}

impl Github {
    pub fn new(cfg: GithubConfig) -> Github {
        Github {
            cfg,
            http: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.api_url.trim_end_matches('/'), path)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .request(method, self.url(path))
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(t) = &self.cfg.token {
            b = b.bearer_auth(t);
        }
        b
    }

    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response, PlatformError> {
        send(what, self.cfg.http_tries, self.cfg.http_backoff, || {
            self.req(method.clone(), path)
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

    /// The failed jobs of one run attempt, across pages.
    async fn failed_jobs(&self, ev: &FailureEvent) -> Result<Vec<ApiJob>, PlatformError> {
        let mut failed = Vec::new();
        let mut seen = 0u64;
        for page in 1..=20 {
            let p: JobsPage = self
                .get_json(
                    "list jobs",
                    &format!(
                        "/repos/{}/actions/runs/{}/attempts/{}/jobs?per_page=100&page={page}",
                        ev.repository, ev.run_id, ev.attempt
                    ),
                )
                .await?;
            seen += p.jobs.len() as u64;
            let empty = p.jobs.is_empty();
            failed.extend(
                p.jobs
                    .into_iter()
                    .filter(|j| j.conclusion.as_deref().is_some_and(failed_conclusion)),
            );
            if empty || seen >= p.total_count {
                break;
            }
        }
        Ok(failed)
    }
}

#[async_trait]
impl Ci for Github {
    fn platform(&self) -> Platform {
        Platform::Github
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.cfg.token.is_some(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let run: Run = self
            .get_json(
                "get run",
                &format!("/repos/{}/actions/runs/{}", ev.repository, ev.run_id),
            )
            .await?;
        let attempt = run.run_attempt.unwrap_or(1);
        if run.status.as_deref() != Some("completed") {
            return Ok(RunState::InProgress { attempt });
        }
        Ok(RunState::Completed {
            attempt,
            success: run.conclusion.as_deref() == Some("success"),
            finished_at_ms: parse_time_ms(run.updated_at.as_deref()),
        })
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let jobs = self.failed_jobs(ev).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            let path = format!("/repos/{}/actions/jobs/{}/logs", ev.repository, j.id);
            // The endpoint answers 302 to a short-lived download URL; reqwest follows it and
            // drops the Authorization header when the redirect leaves the API host.
            let log = match self
                .call("download job log", reqwest::Method::GET, &path)
                .await
            {
                Ok(r) => read_tail(r, LOG_TAIL_BYTES, "download job log").await?,
                // Logs expire (90 days by default): diagnose without them rather than fail.
                Err(PlatformError::Permanent(e)) => {
                    tracing::warn!(job = j.id, "log unavailable: {e}");
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            out.push(JobLog {
                job: FailedJob {
                    id: j.id.to_string(),
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
                "PIPEGUARD_GITHUB_TOKEN is not set; re-runs need a token with actions:write".into(),
            ));
        }
        if let Some(started) = ev.started_at_ms {
            let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            if now - started > RERUN_WINDOW_MS {
                return Err(PlatformError::Permanent(
                    "GitHub re-runs only runs started within the last 30 days".into(),
                ));
            }
        }
        if ev.attempt >= MAX_RUN_ATTEMPTS {
            return Err(PlatformError::Permanent(format!(
                "the run reached GitHub's limit of {MAX_RUN_ATTEMPTS} attempts"
            )));
        }
        if all_failed || jobs.is_empty() {
            let path = format!(
                "/repos/{}/actions/runs/{}/rerun-failed-jobs",
                ev.repository, ev.run_id
            );
            self.call("re-run failed jobs", reqwest::Method::POST, &path)
                .await?;
            return Ok(format!("POST {path}"));
        }
        let mut done = Vec::new();
        for j in jobs {
            let path = format!("/repos/{}/actions/jobs/{}/rerun", ev.repository, j.id);
            self.call("re-run job", reqwest::Method::POST, &path)
                .await?;
            done.push(format!("POST {path}"));
        }
        Ok(done.join("; "))
    }

    fn can_rerun_with(&self) -> bool {
        self.cfg.token.is_some()
    }

    /// A workflow-dispatch run on the failed run's branch with `inputs` (the workflow must
    /// declare them under `on.workflow_dispatch.inputs`, e.g. a `runner` input used in
    /// `runs-on`). `return_run_details` makes GitHub answer with the new run's id.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        if self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_GITHUB_TOKEN is not set; dispatching needs a token with actions:write"
                    .into(),
            ));
        }
        let workflow = workflow.ok_or_else(|| {
            PlatformError::NotConfigured(
                "no workflow file is configured for this repository (repos.*.scale.workflow)"
                    .into(),
            )
        })?;
        let git_ref = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failed run names no branch to dispatch on".into())
        })?;
        let path = format!(
            "/repos/{}/actions/workflows/{}/dispatches",
            ev.repository,
            crate::gitlab::encode_component(workflow)
        );
        let inputs: serde_json::Map<String, Value> = inputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let body =
            serde_json::json!({"ref": git_ref, "inputs": inputs, "return_run_details": true});
        let r = send(
            "dispatch workflow",
            // Not repeated: a lost answer may hide a run that started.
            1,
            self.cfg.http_backoff,
            || self.req(reqwest::Method::POST, &path).json(&body),
        )
        .await?;
        // Older GitHub Enterprise Server versions answer 204 without the run's id.
        let details: Value = r.json().await.unwrap_or(Value::Null);
        let new_run_id = details["workflow_run_id"].as_u64().map(|id| id.to_string());
        Ok(Rerun {
            detail: format!("POST {path} {body}"),
            new_run_id,
        })
    }

    fn can_clear_caches(&self) -> bool {
        self.cfg.token.is_some()
    }

    /// Lists the Actions caches of the run's branch (optionally by key prefix, as the API
    /// matches `key`) and deletes each by id.
    async fn clear_caches(
        &self,
        ev: &FailureEvent,
        key_prefix: Option<&str>,
    ) -> Result<String, PlatformError> {
        if self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_GITHUB_TOKEN is not set; deleting caches needs actions:write".into(),
            ));
        }
        // Without a branch the whole repository's caches would match: refuse instead.
        let branch = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failed run names no branch whose caches to clear".into())
        })?;
        let mut query = format!(
            "per_page=100&ref={}",
            crate::gitlab::encode_component(&format!("refs/heads/{branch}"))
        );
        if let Some(k) = key_prefix.filter(|k| !k.is_empty()) {
            query.push_str(&format!("&key={}", crate::gitlab::encode_component(k)));
        }
        let mut caches = Vec::new();
        for page in 1..=10 {
            let p: CachesPage = self
                .get_json(
                    "list caches",
                    &format!(
                        "/repos/{}/actions/caches?{query}&page={page}",
                        ev.repository
                    ),
                )
                .await?;
            let n = p.actions_caches.len();
            caches.extend(p.actions_caches);
            if n < 100 {
                break;
            }
        }
        let mut deleted = Vec::new();
        for c in caches {
            let path = format!("/repos/{}/actions/caches/{}", ev.repository, c.id);
            match self
                .call("delete cache", reqwest::Method::DELETE, &path)
                .await
            {
                Ok(_) => deleted.push(c.key),
                // Deleted meanwhile (another run, a person): what was asked for holds.
                Err(PlatformError::Permanent(e)) if e.contains("404") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(format!(
            "deleted {} cache(s) of {branch}: {}",
            deleted.len(),
            deleted.join(", ")
        ))
    }
}

#[derive(Deserialize)]
struct CachesPage {
    #[serde(default)]
    actions_caches: Vec<ApiCache>,
}

#[derive(Deserialize)]
struct ApiCache {
    id: u64,
    #[serde(default)]
    key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_payload(conclusion: &str, attempt: u32) -> Vec<u8> {
        serde_json::json!({
            "action": "completed",
            "workflow_run": {"id": 42, "name": "CI", "run_attempt": attempt, "status": "completed",
                "conclusion": conclusion, "head_sha": "abc", "head_branch": "main",
                "run_started_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-20T10:05:00Z"},
            "repository": {"full_name": "octo/repo"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_run_becomes_failure_event() {
        let Parsed::Failure(ev) =
            parse_webhook("workflow_run", &run_payload("failure", 2)).unwrap()
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            (ev.repository.as_str(), ev.run_id.as_str(), ev.attempt),
            ("octo/repo", "42", 2)
        );
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            300_000
        );
    }

    #[test]
    fn success_and_cancel_and_other_events() {
        assert!(matches!(
            parse_webhook("workflow_run", &run_payload("success", 3)).unwrap(),
            Parsed::Success { attempt: 3, .. }
        ));
        assert!(matches!(
            parse_webhook("workflow_run", &run_payload("cancelled", 1)).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_webhook("push", b"{}").unwrap(),
            Parsed::Ignored(_)
        ));
        assert_eq!(
            parse_webhook("ping", b"{\"zen\":\"x\"}").unwrap(),
            Parsed::Ping
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_webhook("workflow_run", b"{not json"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_webhook("workflow_run", b"{\"action\":\"completed\"}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_webhook("workflow_run", b"[]"),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn octokit_examples_parse_when_shared_fixtures_exist() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/github/octokit-webhooks");
        if !dir.exists() {
            eprintln!("skipping: {} not present", dir.display());
            return;
        }
        let job = std::fs::read(
            dir.join("workflow_job/completed.failure.with-organization.payload.json"),
        )
        .unwrap();
        let Parsed::Failure(ev) = parse_webhook("workflow_job", &job).unwrap() else {
            panic!()
        };
        assert_eq!(ev.jobs[0].name, "linters");
        assert_eq!(ev.run_id, "2202229078");
        let run = std::fs::read(dir.join("workflow_run/completed.payload.json")).unwrap();
        assert!(matches!(
            parse_webhook("workflow_run", &run).unwrap(),
            Parsed::Success { .. }
        ));
    }
}
