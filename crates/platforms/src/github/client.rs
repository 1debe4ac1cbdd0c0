//! The Actions REST API: run state, failed jobs' logs, re-runs, workflow dispatch, caches.

use super::app::{github_api, shared_app, GithubApp};
use super::webhook::{failed_conclusion, parse_time_ms, Run};
use crate::api::{encode, ApiClient, Auth, HttpOptions, Paging};
use crate::settings::Section;
use crate::webhook::{slug_char, valid_path};
use crate::{
    require, Ci, GreenJob, JobLog, LastGreen, PlatformError, Rerun, RunState, GREEN_RUNS_LISTED,
};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// GitHub refuses re-runs of runs older than this.
const RERUN_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// GitHub caps the number of attempts of one workflow run.
pub const MAX_RUN_ATTEMPTS: u32 = 50;

const NO_TOKEN: &str =
    "neither a GitHub App nor PIPEGUARD_GITHUB_TOKEN is set; re-runs, dispatches and cache deletion need actions:write";

pub struct GithubClient {
    /// The API with the configured token (or none).
    api: ApiClient,
    /// With a GitHub App configured: the app (each call then uses the token of the
    /// installation covering its repository), or why its key could not be used.
    app: Option<Result<Arc<GithubApp>, String>>,
}

#[derive(Deserialize)]
pub(super) struct ApiJob {
    pub(super) id: u64,
    pub(super) name: String,
    #[serde(default)]
    pub(super) conclusion: Option<String>,
    #[serde(default)]
    workflow_name: Option<String>,
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    runner_id: Option<u64>,
    /// The attempt the job ran in (a later attempt lists the jobs it kept with theirs).
    #[serde(default)]
    pub(super) run_attempt: Option<u32>,
    #[serde(default)]
    pub(super) started_at: Option<String>,
    #[serde(default)]
    pub(super) completed_at: Option<String>,
}

#[derive(Deserialize)]
struct ApiCache {
    id: u64,
    #[serde(default)]
    key: String,
}

/// GitHub's 403 while an attempt of the run is still in progress means "not yet", not "no".
/// A re-run whose answer was lost and the run shows no new attempt: it did not start, so
/// calling again later is safe.
fn not_started(e: PlatformError) -> PlatformError {
    match e {
        PlatformError::Transient(message) => PlatformError::Busy {
            message: format!("{message}; the run has no new attempt"),
            retry_after: std::time::Duration::from_secs(10),
        },
        other => other,
    }
}

fn attempt_in_progress(e: PlatformError) -> PlatformError {
    match e {
        PlatformError::Refused {
            status: 403,
            message,
        } if message.contains("already running") || message.contains("not completed") => {
            PlatformError::Busy {
                message,
                retry_after: std::time::Duration::from_secs(30),
            }
        }
        other => other,
    }
}

use crate::api::now_ms;

/// `/repos/{owner}/{repo}`, each part checked and encoded: a name never steers the URL.
pub(super) fn repo_path(ev: &FailureEvent) -> Result<String, PlatformError> {
    if !valid_path(&ev.repository, 2..=2, slug_char) {
        return Err(PlatformError::Permanent(format!(
            "{:?} is not a GitHub owner/repository name",
            ev.repository
        )));
    }
    let (owner, repo) = ev.repository.split_once('/').unwrap_or_default();
    Ok(format!("/repos/{}/{}", encode(owner), encode(repo)))
}

impl GithubClient {
    pub fn new(s: &Section, http: &HttpOptions) -> GithubClient {
        let auth = s.token.clone().map(Auth::Bearer).unwrap_or(Auth::None);
        GithubClient {
            api: github_api(&s.api_url, auth, http),
            app: shared_app(s, http).transpose(),
        }
    }

    /// The app, when one is configured.
    pub fn app(&self) -> Option<Result<&GithubApp, PlatformError>> {
        self.app.as_ref().map(|r| match r {
            Ok(app) => Ok(app.as_ref()),
            Err(e) => Err(PlatformError::NotConfigured(e.clone())),
        })
    }

    /// The API as whoever may act on the event's repository: the app's installation token
    /// for it, or the configured token.
    pub async fn api_for(&self, ev: &FailureEvent) -> Result<ApiClient, PlatformError> {
        match self.app() {
            None => Ok(self.api.clone()),
            Some(app) => {
                repo_path(ev)?;
                app?.client_for(&ev.repository).await
            }
        }
    }

    fn has_credentials(&self) -> bool {
        self.app.is_some() || self.api.has_credentials()
    }

    fn run_path(&self, ev: &FailureEvent) -> Result<String, PlatformError> {
        Ok(format!(
            "{}/actions/runs/{}",
            repo_path(ev)?,
            encode(&ev.run_id)
        ))
    }

    /// The failed jobs of one run attempt, across pages.
    async fn failed_jobs(
        &self,
        api: &ApiClient,
        ev: &FailureEvent,
    ) -> Result<Vec<ApiJob>, PlatformError> {
        let jobs = self.attempt_jobs(api, ev).await?;
        Ok(jobs
            .into_iter()
            .filter(|j| j.conclusion.as_deref().is_some_and(failed_conclusion))
            .collect())
    }

    /// Every job of one run attempt, 100 a page.
    pub(super) async fn attempt_jobs(
        &self,
        api: &ApiClient,
        ev: &FailureEvent,
    ) -> Result<Vec<ApiJob>, PlatformError> {
        let path = format!("{}/attempts/{}/jobs", self.run_path(ev)?, ev.attempt);
        api.get_all(
            "list jobs",
            &path,
            Paging::PageNumber {
                items: Some("jobs"),
                total: Some("total_count"),
                per_page: 100,
            },
        )
        .await
    }

    /// One job's log (its last [`crate::api::LOG_TAIL_BYTES`]): a 302 to a short-lived
    /// download URL on blob storage, followed without the token, which stays on the API's
    /// origin.
    pub(super) async fn log_of(
        api: &ApiClient,
        ev: &FailureEvent,
        job: u64,
    ) -> Result<Vec<u8>, PlatformError> {
        let path = format!("{}/actions/jobs/{job}/logs", repo_path(ev)?);
        Ok(api
            .log_tail("download job log", &path)
            .await?
            .unwrap_or_default())
    }

    /// The run a dispatch answered without details started: the newest `workflow_dispatch`
    /// run of the workflow on `git_ref` created since the dispatch. GitHub creates it within
    /// moments, so the list is read a few times.
    async fn find_dispatched(
        &self,
        api: &ApiClient,
        workflow_path: &str,
        git_ref: &str,
        since: OffsetDateTime,
    ) -> Result<Option<String>, PlatformError> {
        let created = since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let path = format!(
            "{workflow_path}/runs?branch={}&event=workflow_dispatch&created={}&per_page=10",
            encode(git_ref),
            encode(&format!(">={created}"))
        );
        for wait in [0u64, 500, 1000, 2000, 4000] {
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            let runs: Value = api.get_json("list dispatched runs", &path).await?;
            let newest = runs["workflow_runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_u64())
                .max();
            if let Some(id) = newest {
                return Ok(Some(id.to_string()));
            }
        }
        Ok(None)
    }

    /// Whether the run already has an attempt after the event's (a re-run whose answer was
    /// lost did start).
    async fn started_after(&self, ev: &FailureEvent) -> bool {
        match self.run_state(ev).await {
            Ok(RunState::InProgress { attempt } | RunState::Completed { attempt, .. }) => {
                attempt > ev.attempt
            }
            Err(_) => false,
        }
    }

    fn check_rerun_limits(&self, ev: &FailureEvent) -> Result<(), PlatformError> {
        require(self.has_credentials(), NO_TOKEN)?;
        if ev
            .started_at_ms
            .is_some_and(|started| now_ms() - started > RERUN_WINDOW_MS)
        {
            return Err(PlatformError::Permanent(
                "GitHub re-runs only runs started within the last 30 days".into(),
            ));
        }
        if ev.attempt >= MAX_RUN_ATTEMPTS {
            return Err(PlatformError::Permanent(format!(
                "the run reached GitHub's limit of {MAX_RUN_ATTEMPTS} attempts"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Ci for GithubClient {
    fn platform(&self) -> Platform {
        Platform::Github
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.has_credentials(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let api = self.api_for(ev).await?;
        let run: Run = api.get_json("get run", &self.run_path(ev)?).await?;
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
        let api = self.api_for(ev).await?;
        let mut out = Vec::new();
        for j in self.failed_jobs(&api, ev).await? {
            let log = Self::log_of(&api, ev, j.id).await?;
            out.push(JobLog {
                job: FailedJob {
                    id: j.id.to_string(),
                    runner: pipeguard_core::event::Runner::new(
                        j.runner_name.as_deref(),
                        j.runner_id.map(|i| i.to_string()),
                    ),
                    name: j.name,
                    ..Default::default()
                },
                log,
            });
        }
        Ok(out)
    }

    /// One call for the attempt's jobs (100 a page), then one per successful job's log.
    async fn green_jobs(&self, ev: &FailureEvent) -> Result<Vec<GreenJob>, PlatformError> {
        let api = self.api_for(ev).await?;
        let mut out = Vec::new();
        for j in self.attempt_jobs(&api, ev).await? {
            if j.conclusion.as_deref() != Some("success") {
                continue;
            }
            let log = Self::log_of(&api, ev, j.id).await?;
            out.push(GreenJob {
                name: j.name,
                workflow: j.workflow_name.unwrap_or_default(),
                log,
            });
        }
        Ok(out)
    }

    /// One call for the branch's successful runs, one for the newest one's jobs of the
    /// event's workflow, one per job log asked for.
    async fn last_green(
        &self,
        ev: &FailureEvent,
        branch: &str,
        jobs: &[String],
    ) -> Result<Option<LastGreen>, PlatformError> {
        let api = self.api_for(ev).await?;
        let path = format!(
            "{}/actions/runs?branch={}&status=success&per_page={GREEN_RUNS_LISTED}",
            repo_path(ev)?,
            encode(branch)
        );
        let runs: Value = api.get_json("list green runs", &path).await?;
        let run = runs["workflow_runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"].as_str() == Some(ev.workflow.as_str()))
            .filter_map(|r| Some((r["id"].as_u64()?, r["run_attempt"].as_u64().unwrap_or(1))))
            .find(|(id, _)| id.to_string() != ev.run_id);
        let Some((id, attempt)) = run else {
            return Ok(None);
        };
        let green = FailureEvent {
            repository: ev.repository.clone(),
            run_id: id.to_string(),
            attempt: u32::try_from(attempt).unwrap_or(1),
            ..Default::default()
        };
        let mut out = Vec::new();
        for j in self.attempt_jobs(&api, &green).await? {
            if j.conclusion.as_deref() != Some("success") || !jobs.contains(&j.name) {
                continue;
            }
            let log = Self::log_of(&api, &green, j.id).await?;
            out.push(GreenJob {
                name: j.name,
                workflow: ev.workflow.clone(),
                log,
            });
        }
        Ok(Some(LastGreen {
            run_id: id.to_string(),
            jobs: out,
        }))
    }

    /// One call: the repository.
    async fn default_branch(&self, ev: &FailureEvent) -> Result<Option<String>, PlatformError> {
        let api = self.api_for(ev).await?;
        let repo: Value = api.get_json("get repository", &repo_path(ev)?).await?;
        Ok(repo["default_branch"].as_str().map(str::to_string))
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        self.check_rerun_limits(ev)?;
        let api = self.api_for(ev).await?;
        let paths: Vec<String> = if all_failed || jobs.is_empty() {
            vec![format!("{}/rerun-failed-jobs", self.run_path(ev)?)]
        } else {
            jobs.iter()
                .map(|j| {
                    Ok(format!(
                        "{}/actions/jobs/{}/rerun",
                        repo_path(ev)?,
                        encode(&j.id)
                    ))
                })
                .collect::<Result<_, PlatformError>>()?
        };
        let mut done = Vec::new();
        for path in paths {
            // Sent once: when the answer is lost, the run itself says whether it worked.
            if let Err(e) = api.call_once("re-run", Method::POST, &path, None).await {
                let started = e.is_transient() && self.started_after(ev).await;
                if !started {
                    return Err(attempt_in_progress(not_started(e)));
                }
                tracing::warn!("re-run answer lost ({e}), but the run has a new attempt");
            }
            done.push(format!("POST {path}"));
        }
        Ok(done.join("; "))
    }

    /// A per-job re-run starts an attempt; until it completes GitHub refuses any other
    /// re-run of the run, so several jobs go one attempt after another.
    fn one_job_per_attempt(&self) -> bool {
        true
    }

    fn can_rerun_with(&self) -> bool {
        self.has_credentials()
    }

    /// A workflow-dispatch run on the failed run's branch with `inputs` (the workflow must
    /// declare them under `on.workflow_dispatch.inputs`, e.g. a `runner` input used in
    /// `runs-on`). `return_run_details` makes GitHub answer with the new run's id; servers
    /// without it answer 204 (the run is then found by listing) or refuse the key (the
    /// dispatch is sent again without it: a refused request started nothing).
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        require(self.has_credentials(), NO_TOKEN)?;
        let api = self.api_for(ev).await?;
        let workflow = workflow.ok_or_else(|| {
            PlatformError::NotConfigured(
                "no workflow file is configured for this repository (repos.*.scale.workflow)"
                    .into(),
            )
        })?;
        let git_ref = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failed run names no branch to dispatch on".into())
        })?;
        let workflow_path = format!("{}/actions/workflows/{}", repo_path(ev)?, encode(workflow));
        let path = format!("{workflow_path}/dispatches");
        let inputs: serde_json::Map<String, Value> = inputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut body = json!({"ref": git_ref, "inputs": inputs, "return_run_details": true});
        let since = OffsetDateTime::now_utc() - time::Duration::seconds(5);
        let r = match api
            .call_once("dispatch workflow", Method::POST, &path, Some(&body))
            .await
        {
            Err(PlatformError::Refused { status, message })
                if (status == 400 || status == 422) && message.contains("return_run_details") =>
            {
                body.as_object_mut().map(|b| b.remove("return_run_details"));
                api.call_once("dispatch workflow", Method::POST, &path, Some(&body))
                    .await?
            }
            other => other?,
        };
        let details: Value = r.json().await.unwrap_or(Value::Null);
        // The run started whatever happens now: not finding it leaves it unfollowed.
        let new_run_id = match details["workflow_run_id"].as_u64() {
            Some(id) => Some(id.to_string()),
            None => self
                .find_dispatched(&api, &workflow_path, git_ref, since)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!("cannot find the dispatched run: {e}");
                    None
                }),
        };
        Ok(Rerun {
            detail: format!("POST {path} {body}"),
            new_run_id,
            ..Default::default()
        })
    }
    fn can_clear_caches(&self) -> bool {
        self.has_credentials()
    }

    /// Lists the Actions caches of the run's branch (optionally by key prefix, as the API
    /// matches `key`) and deletes each by id.
    async fn clear_caches(
        &self,
        ev: &FailureEvent,
        key_prefix: Option<&str>,
    ) -> Result<String, PlatformError> {
        require(self.has_credentials(), NO_TOKEN)?;
        let api = self.api_for(ev).await?;
        // Without a branch the whole repository's caches would match: refuse instead.
        let branch = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failed run names no branch whose caches to clear".into())
        })?;
        let mut path = format!(
            "{}/actions/caches?ref={}",
            repo_path(ev)?,
            encode(&format!("refs/heads/{branch}"))
        );
        if let Some(k) = key_prefix.filter(|k| !k.is_empty()) {
            path.push_str(&format!("&key={}", encode(k)));
        }
        let caches: Vec<ApiCache> = api
            .get_all(
                "list caches",
                &path,
                Paging::PageNumber {
                    items: Some("actions_caches"),
                    total: Some("total_count"),
                    per_page: 100,
                },
            )
            .await?;
        let mut deleted = Vec::new();
        for c in caches {
            let path = format!("{}/actions/caches/{}", repo_path(ev)?, c.id);
            match api.call("delete cache", Method::DELETE, &path, None).await {
                Ok(_) => deleted.push(c.key),
                // Deleted meanwhile (another run, a person): what was asked for holds.
                Err(PlatformError::Refused { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(format!(
            "deleted {} cache(s) of {branch}: {}",
            deleted.len(),
            deleted.join(", ")
        ))
    }

    async fn codeowners(&self, ev: &FailureEvent) -> Result<Option<String>, PlatformError> {
        super::issues::codeowners(self, ev).await
    }

    async fn open_issue(
        &self,
        ev: &FailureEvent,
        issue: &crate::Issue,
    ) -> Result<Option<crate::Ticket>, PlatformError> {
        require(self.has_credentials(), NO_TOKEN)?;
        super::issues::open(self, ev, issue).await
    }

    async fn close_issue(
        &self,
        ev: &FailureEvent,
        ticket: &crate::Ticket,
        comment: &str,
    ) -> Result<(), PlatformError> {
        require(self.has_credentials(), NO_TOKEN)?;
        super::issues::close(self, ev, ticket, comment).await
    }
}
