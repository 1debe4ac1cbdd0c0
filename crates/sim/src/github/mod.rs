//! GitHub Actions: workflow runs with attempts, per-job and failed-job re-runs, job logs behind
//! a redirect, `workflow_dispatch` with or without run details, the caches API, and signed
//! `workflow_run` / `workflow_job` deliveries.

mod api;
mod app;
mod payload;
mod state;

pub use app::{AppConfig, AppLog};
pub use state::{
    Attempt, Cache, Dispatch, GithubState, Job, Refusal, Rerun, Run, Status, Workflow, RERUN_WINDOW,
};

use crate::core::scenario::{RunSpec, SpecError};
use crate::core::sim::{start, Sim, Timeout};
use crate::core::webhook::WebhookTarget;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// How `POST …/workflows/{id}/dispatches` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// github.com since 2026-02: `return_run_details: true` gets 200 with `workflow_run_id`,
    /// otherwise 204.
    RunDetails,
    /// An older GitHub Enterprise Server: always 204, the parameter is ignored.
    NoContent,
    /// A server that validates the body and refuses the unknown key with 422.
    RejectsRunDetails,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The token the API expects as `Authorization: Bearer`.
    pub token: String,
    pub webhook: Option<WebhookTarget>,
    pub dispatch: DispatchMode,
    /// Attempts a run may have (GitHub: 50).
    pub max_attempts: u32,
    /// A GitHub App whose installation tokens the API also accepts.
    pub app: Option<AppConfig>,
    /// The REST API's rate limit; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
}

/// `limit` REST calls, then 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`
/// (epoch seconds) for `pause`, then `limit` more: GitHub's hourly window as a client that
/// uses its calls up quickly meets it. Blob downloads do not count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub limit: u32,
    pub pause: Duration,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            token: "sim-github-token".into(),
            webhook: None,
            dispatch: DispatchMode::RunDetails,
            max_attempts: 50,
            app: None,
            rate_limit: None,
        }
    }
}

impl GithubConfig {
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = t.into();
        self
    }

    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(WebhookTarget::new(url, secret));
        self
    }

    pub fn app(mut self, app: AppConfig) -> Self {
        self.app = Some(app);
        self
    }

    pub fn dispatch(mut self, mode: DispatchMode) -> Self {
        self.dispatch = mode;
        self
    }

    pub fn rate_limit(mut self, limit: u32, pause: Duration) -> Self {
        self.rate_limit = Some(RateLimit { limit, pause });
        self
    }
}

pub type GithubSim = Sim<GithubState>;

impl Sim<GithubState> {
    pub async fn start(config: GithubConfig) -> std::io::Result<GithubSim> {
        let webhook = config.webhook.clone();
        start(webhook, |base| GithubState::new(config, base), api::routes).await
    }

    /// Starts a `push` run of `spec` (`spec.workflow` is the workflow file); returns its id.
    /// The spec becomes the workflow's script: later runs (re-runs, dispatches) continue it.
    pub async fn start_run(&self, spec: RunSpec) -> Result<u64, SpecError> {
        spec.validate()?;
        Ok(self
            .update(|st| {
                let branch = spec.branch.clone();
                let script = st.define(spec);
                st.start_run(script, "push", &branch, BTreeMap::new())
            })
            .await)
    }

    /// Adds a finished run to the repository's history: created `ago`, its attempts played out
    /// at once; after each failed attempt a person re-ran its failed jobs the next of `reruns`
    /// later. Returns its id.
    pub async fn add_past_run(
        &self,
        spec: RunSpec,
        ago: Duration,
        reruns: &[Duration],
    ) -> Result<u64, SpecError> {
        spec.validate()?;
        let created_at = OffsetDateTime::now_utc() - ago;
        let made = self
            .update(|st| st.past_run(spec, created_at, reruns))
            .await;
        Ok(made.expect("a past run within GitHub's re-run window can be re-run"))
    }

    /// Calls refused so far because the rate limit was exhausted.
    pub async fn rate_limited(&self) -> u32 {
        self.inspect(|st| st.rate_limited).await
    }

    /// Declares a workflow (for dispatches) without starting a run.
    pub async fn define_workflow(&self, spec: RunSpec) -> Result<(), SpecError> {
        spec.validate()?;
        self.update(|st| {
            st.define(spec);
        })
        .await;
        Ok(())
    }

    /// Adds an Actions cache entry; returns its id.
    pub async fn add_cache(&self, repo: &str, git_ref: &str, key: &str, size: u64) -> u64 {
        self.update(|st| {
            let id = st.caches.keys().max().copied().unwrap_or(0) + 1;
            st.caches.insert(
                id,
                Cache {
                    id,
                    repo: repo.to_string(),
                    git_ref: git_ref.to_string(),
                    key: key.to_string(),
                    size_in_bytes: size,
                    created_at: OffsetDateTime::now_utc(),
                },
            );
            id
        })
        .await
    }

    /// What the app side saw: JWTs, tokens issued, installation of each call.
    pub async fn app_log(&self) -> AppLog {
        self.inspect(|st| st.app_log.clone()).await
    }

    pub async fn run(&self, id: u64) -> Option<Run> {
        self.inspect(|st| st.runs.get(&id).cloned()).await
    }

    /// The jobs listed by the run's attempt `n`.
    pub async fn attempt_jobs(&self, run: u64, n: u32) -> Vec<Job> {
        self.inspect(|st| {
            let ids = st
                .runs
                .get(&run)
                .and_then(|r| r.attempt(n))
                .map(|a| a.jobs.clone());
            ids.unwrap_or_default()
                .iter()
                .map(|id| st.jobs[id].clone())
                .collect()
        })
        .await
    }

    /// Waits until the run's latest attempt is completed, and returns the run.
    pub async fn wait_run(&self, id: u64, timeout: Duration) -> Result<Run, Timeout> {
        self.wait_until(timeout, |st| {
            st.runs
                .get(&id)
                .is_some_and(|r| r.latest().status == Status::Completed)
        })
        .await?;
        Ok(self.run(id).await.expect("the run exists"))
    }
}
