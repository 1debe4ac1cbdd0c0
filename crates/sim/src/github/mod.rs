//! GitHub Actions: workflow runs with attempts, per-job and failed-job re-runs, job logs behind
//! a redirect, `workflow_dispatch` with or without run details, the caches API, file contents
//! and issues, and signed `workflow_run` / `workflow_job` deliveries.

mod api;
mod app;
mod checks;
mod payload;
mod repo;
mod state;

pub use app::{AppConfig, AppLog};
pub use checks::CheckRun;
pub use repo::Issue;
pub use state::{
    Attempt, Cache, Dispatch, GithubState, Job, Refusal, Rerun, Run, Status, Workflow, RERUN_WINDOW,
};

use crate::core::scenario::{RunSpec, SpecError};
use crate::core::sim::{start_on, Sim, Timeout};
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
    /// `org/team` → the logins of its active members.
    pub teams: BTreeMap<String, Vec<String>>,
    /// The REST API's rate limit; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// The port to serve on; 0: a free one.
    pub port: u16,
    /// The most runs a listing filtered by `created` shows (GitHub: 1,000); its `total_count`
    /// still counts every match.
    pub search_cap: usize,
}

/// `limit` REST calls, then 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`
/// (epoch seconds) for `pause`, then `limit` more: GitHub's hourly window as a client that
/// uses its calls up quickly meets it. Blob downloads do not count.
pub use crate::core::ratelimit::RateLimit;

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            token: "sim-github-token".into(),
            webhook: None,
            dispatch: DispatchMode::RunDetails,
            max_attempts: 50,
            app: None,
            teams: BTreeMap::new(),
            rate_limit: None,
            port: 0,
            search_cap: 1000,
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

    /// Makes `logins` the members of team `org/team`.
    pub fn team(mut self, org_team: &str, logins: &[&str]) -> Self {
        let members = logins.iter().map(|l| l.to_string()).collect();
        self.teams.insert(org_team.to_string(), members);
        self
    }

    pub fn dispatch(mut self, mode: DispatchMode) -> Self {
        self.dispatch = mode;
        self
    }

    /// Serves on `port` (a server started before the stand-in already points at it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn search_cap(mut self, cap: usize) -> Self {
        self.search_cap = cap;
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
        let (webhook, port) = (config.webhook.clone(), config.port);
        start_on(
            port,
            webhook,
            |base| GithubState::new(config, base),
            api::routes,
        )
        .await
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

    /// Starts (`Some(log)`) or ends an outage: meanwhile every job whose script fails with
    /// `log` at some point fails with it each time it starts, as when the registry those jobs
    /// pull from is down.
    pub async fn set_outage(&self, log: Option<String>) {
        self.update(|st| st.outage = log).await
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
        self.inspect(|st| st.rate.refused).await
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

    /// Puts a file in a repository (for the contents API, e.g. `.github/CODEOWNERS`).
    pub async fn put_file(&self, repo: &str, path: &str, text: &str) {
        self.update(|st| {
            st.files
                .insert((repo.to_string(), path.to_string()), text.to_string());
        })
        .await
    }

    /// The issues filed so far, in order.
    pub async fn issues(&self) -> Vec<Issue> {
        self.inspect(|st| st.issues.clone()).await
    }

    /// What the app side saw: JWTs, tokens issued, installation of each call.
    pub async fn app_log(&self) -> AppLog {
        self.inspect(|st| st.app_log.clone()).await
    }

    /// The check runs of `repo`, oldest first.
    pub async fn check_runs(&self, repo: &str) -> Vec<CheckRun> {
        self.inspect(|st| {
            st.check_runs
                .values()
                .filter(|c| c.repo == repo)
                .cloned()
                .collect()
        })
        .await
    }

    /// `login` presses the button `identifier` on check run `id`: GitHub's signed `check_run`
    /// `requested_action` delivery. False when there is no such check run or button.
    pub async fn press(&self, id: u64, identifier: &str, login: &str) -> bool {
        let d = self
            .inspect(|st| {
                let shown = st.check_runs.get(&id).is_some_and(|c| {
                    c.body["actions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|a| a["identifier"] == identifier)
                });
                shown
                    .then(|| checks::press_delivery(st, id, identifier, login))
                    .flatten()
            })
            .await;
        let Some(d) = d else {
            return false;
        };
        self.shared.outbox.send(vec![d]);
        self.shared.outbox.drained().await;
        true
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
