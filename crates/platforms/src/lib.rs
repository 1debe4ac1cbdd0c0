//! CI platforms, one module each: its webhook side (verify, delivery id, parse into a
//! `FailureEvent`), its API side ([`Ci`]: logs, run state, retry, re-run with inputs) and its
//! configuration section. The [`registry`] is the one place that lists them.
//!
//! Adding a platform: a module here (a folder when large) that implements [`Module`] (with its
//! [`Setup`]: the `init` hint and the `doctor` probe) and [`Ci`], its `pub mod` line here, one
//! line in [`registry::MODULES`], and a variant of `pipeguard_core::Platform`.

pub mod ansible;
pub mod api;
pub mod azure;
pub mod breaker;
pub mod buildbot;
pub mod buildkite;
pub mod circleci;
pub mod generic;
pub mod github;
pub mod gitlab;
pub mod jenkins;
pub mod label;
pub mod registry;
pub mod settings;
pub mod teamcity;
pub mod webhook;

// Drives the fuzz target and its corpus replay; not part of the service.
#[doc(hidden)]
pub mod fuzzing;

/// Skips tests whose shared fixtures are absent, and fails them under `CI`.
#[cfg(test)]
#[path = "../../../tests/support/require.rs"]
mod require;

use api::HttpOptions;
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use settings::{Section, SectionSpec};
use std::time::Duration;
use webhook::{Delivery, WebhookRequest};

pub use registry::Registry;

/// What a delivery meant, once verified and parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Ping,
    /// Valid, but nothing to heal (a success of an unrelated run, a queued job…).
    Ignored(String),
    Failure(Box<FailureEvent>),
    Success {
        repository: String,
        /// The workflow's name where the delivery carries it (GitHub), for learning its
        /// green runs without an API call when it never fails.
        workflow: Option<String>,
        run_id: String,
        attempt: u32,
        finished_at_ms: Option<i64>,
        /// The branch and commit the run was for, where the delivery tells (GitHub, GitLab).
        commit: Option<OnCommit>,
    },
    /// A person's decision given where they work: a check run's button, a note.
    Command(Box<Command>),
}

/// The branch and commit a run was for.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCommit {
    pub branch: String,
    pub head_sha: String,
}

impl OnCommit {
    pub fn of(branch: Option<&String>, head_sha: Option<&String>) -> Option<OnCommit> {
        Some(OnCommit {
            branch: branch?.clone(),
            head_sha: head_sha?.clone(),
        })
    }
}

/// What a person asked pipeguard to do about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Approve,
    Reject,
    /// Send a failed session's work again.
    Retry,
}

impl Verb {
    /// The words people type and buttons carry: `approve`, `reject`, `retry`.
    pub const ALL: [(&'static str, Verb); 3] = [
        ("approve", Verb::Approve),
        ("reject", Verb::Reject),
        ("retry", Verb::Retry),
    ];

    pub fn parse(word: &str) -> Option<Verb> {
        Verb::ALL.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
    }

    pub fn as_str(self) -> &'static str {
        Verb::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(w, _)| *w)
            .unwrap_or("")
    }
}

/// Where a command was given; it names the session.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandPlace {
    /// A check run pipeguard made: its `external_id` is the session.
    CheckRun { id: u64, session: String },
    /// A note on a merge request whose head is `sha`.
    MergeRequest { iid: u64, sha: String },
    /// A note on commit `sha`.
    Commit { sha: String },
}

/// A person's command as a platform delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub verb: Verb,
    /// The platform's user name (GitHub login, GitLab username).
    pub user: String,
    /// The platform's numeric user id, where memberships are looked up by it (GitLab).
    pub user_id: Option<u64>,
    pub repository: String,
    pub place: CommandPlace,
}

impl Parsed {
    /// The repository the delivery is about.
    pub fn repository(&self) -> Option<&str> {
        match self {
            Parsed::Failure(ev) => Some(&ev.repository),
            Parsed::Success { repository, .. } => Some(repository),
            Parsed::Command(c) => Some(&c.repository),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("payload does not have the documented shape: {0}")]
    Shape(String),
    #[error("{0}")]
    Header(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Worth trying again later: 5xx, timeouts, connection errors.
    #[error("transient platform error: {0}")]
    Transient(String),
    /// The platform asked to wait (429/503 with `Retry-After`, an exhausted rate limit) or
    /// its circuit is open: try again after `retry_after`.
    #[error("platform busy: {message} (retry after {retry_after:?})")]
    Busy {
        message: String,
        retry_after: Duration,
    },
    /// The platform answered no (a 4xx other than a rate limit): retrying will not change it.
    #[error("platform refused: {message}")]
    Refused { status: u16, message: String },
    /// Will not change by retrying: expired logs, runs too old to re-run.
    #[error("platform refused: {0}")]
    Permanent(String),
    #[error("not configured: {0}")]
    NotConfigured(String),
}

impl PlatformError {
    /// Worth calling again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PlatformError::Transient(_) | PlatformError::Busy { .. }
        )
    }
}

/// The log of one failed job.
#[derive(Debug, Clone)]
pub struct JobLog {
    pub job: FailedJob,
    pub log: Vec<u8>,
}

/// One successful job of a green attempt with its log, for learning what a green run prints.
#[derive(Debug, Clone)]
pub struct GreenJob {
    pub name: String,
    pub workflow: String,
    pub log: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Jobs are still running; healing must wait for the run to finish.
    InProgress { attempt: u32 },
    Completed {
        attempt: u32,
        success: bool,
        finished_at_ms: Option<i64>,
    },
}

/// A run started again with changed inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rerun {
    /// The call made, for the session's record.
    pub detail: String,
    /// The id of the new run when the platform made one (its outcome then tells the heal's),
    /// `None` when the new work is the next attempt of the same run.
    pub new_run_id: Option<String>,
    /// The attempt whose completion is the heal's outcome, when the platform names it (the
    /// Jenkins build the queue item became): another attempt finishing first is not it.
    pub new_attempt: Option<u32>,
}

/// A retry made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retried {
    pub detail: String,
    /// As [`Rerun::new_attempt`].
    pub attempt: Option<u32>,
}

/// How `pipeguard init` explains a platform and how `pipeguard doctor` checks its credential:
/// kept on the module, so a new platform is wired in its own folder.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Where the API credential comes from and what it must be allowed ("" when none).
    pub credential: &'static str,
    /// How the platform is told to send its deliveries.
    pub webhook: &'static str,
    /// A cheap authenticated GET that tells whether the API accepts the credential.
    pub probe: Option<Probe>,
}

/// `GET {api_url}{path}` with the configured credential.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub path: &'static str,
    pub auth: ProbeAuth,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeAuth {
    Bearer,
    /// User and token as basic credentials.
    Basic,
    /// The token as the basic password with an empty user (Azure DevOps).
    BasicTokenOnly,
}

/// A platform: its webhook side, its configuration and how to build its API client.
pub trait Module: Send + Sync {
    fn platform(&self) -> Platform;
    fn setup(&self) -> Setup;
    fn section(&self) -> SectionSpec;

    /// Whether deliveries may come with this content type (JSON everywhere; GitHub also
    /// sends forms).
    fn accepts(&self, content_type: &str) -> bool {
        content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
    }

    /// Whether the request carries the platform's credential at all; checked on the headers
    /// alone, so an unsigned request is refused before its body is read.
    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        query: Option<&str>,
    ) -> bool;

    /// Checks that the delivery comes from the platform that knows `secret`.
    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String>;

    /// The delivery's id and meaning.
    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError>;

    /// Whether a repository name is one the platform could have sent: names go into API URLs,
    /// so one that could steer them is refused before anything is stored.
    fn valid_repository(&self, name: &str) -> bool;

    /// What ties a run that a heal started to its session. A new CircleCI pipeline runs all
    /// its workflows, so there the pipeline is linked; elsewhere the run itself.
    fn run_link(&self, run_id: &str) -> String {
        run_id.to_string()
    }

    /// The API client for `section`; `None` for sources pipeguard never calls back.
    fn client(&self, section: &Section, http: &HttpOptions) -> Option<Box<dyn Ci>>;

    /// The reader of past runs for `section` (`pipeguard import`); `None` where the API shows
    /// no attempts of a run.
    fn history(&self, _section: &Section, _http: &HttpOptions) -> Option<Box<dyn History>> {
        None
    }
}

/// A past run that people may have run more than once, as its listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRun {
    /// The run as a failure delivery would have named it (its attempt is set by
    /// [`History::failure`]).
    pub event: FailureEvent,
    /// Its latest attempt; 0 where the listing does not tell (GitLab: only its jobs do).
    pub attempts: u32,
    /// What changes when people run it again (its `updated_at`): a run read before with
    /// nothing to measure is read again only once this differs.
    pub seen: String,
}

/// A green run of a workflow for a commit, as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastGreen {
    pub workflow: String,
    pub commit: OnCommit,
    pub finished_at_ms: Option<i64>,
}

/// Where a listing of past runs goes on: a page of a window of creation times.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The page, from 1.
    pub page: u32,
    /// The newest creation time (RFC 3339) of the window, once the listing was split into
    /// windows (GitHub lists at most 1,000 runs per filter); `None`: up to now.
    pub until: Option<String>,
    /// The oldest creation time the window listed so far: where the next window ends.
    pub oldest: Option<String>,
}

impl Cursor {
    pub fn first() -> Cursor {
        Cursor {
            page: 1,
            until: None,
            oldest: None,
        }
    }
}

/// One page of a repository's past runs.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// The runs of the page worth reading: complete, and re-run (or, where the listing cannot
    /// tell, possibly re-run).
    pub runs: Vec<PastRun>,
    /// The id of every run the page listed (a run at the edge of two windows is listed twice).
    pub listed: Vec<String>,
    /// The green runs the page listed, for the failures a push fixed.
    pub greens: Vec<PastGreen>,
    /// The next page, when there is one.
    pub next: Option<Cursor>,
}

/// A past failure and what the person's re-run of it did: the evidence pipeguard's decision
/// is measured against.
#[derive(Debug, Clone)]
pub struct PastFailure {
    /// The first failed attempt, as its failure delivery would have announced it.
    pub event: FailureEvent,
    pub logs: Vec<JobLog>,
    /// When the failed attempt finished, epoch milliseconds.
    pub failed_at_ms: i64,
    /// When the person's re-run (the next attempt) started.
    pub rerun_at_ms: i64,
    /// Whether the re-run went green.
    pub green: bool,
}

/// A platform's history: past runs and their attempts, read without changing anything.
#[async_trait]
pub trait History: Send + Sync {
    /// The page `at` of the repository's runs since `since_ms` ([`Cursor::first`] first).
    async fn page(
        &self,
        repository: &str,
        since_ms: i64,
        at: &Cursor,
    ) -> Result<HistoryPage, PlatformError>;

    /// The run's first failed attempt with its failed jobs' logs, and the attempt after it;
    /// `None` when, as the run stands, there is nothing to measure (no failed attempt was
    /// re-run, or its re-run was cancelled).
    async fn failure(&self, run: &PastRun) -> Result<Option<PastFailure>, PlatformError>;
}

#[async_trait]
pub trait Ci: Send + Sync {
    fn platform(&self) -> Platform;
    fn capabilities(&self, event: &FailureEvent) -> Capabilities;
    /// Where the run stands now, for waiting until it completes and for verifying a heal.
    async fn run_state(&self, event: &FailureEvent) -> Result<RunState, PlatformError>;
    /// The failed jobs of the event's attempt with their logs.
    async fn failed_logs(&self, event: &FailureEvent) -> Result<Vec<JobLog>, PlatformError>;
    /// Re-runs `jobs`; `all_failed` says they are every failed job of the run, so a
    /// run-level "re-run failed jobs" is equivalent. Returns a description of the call made.
    async fn retry(
        &self,
        event: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError>;

    /// `retry`, also telling which attempt will report the outcome when the platform says.
    async fn retry_tracked(
        &self,
        event: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<Retried, PlatformError> {
        let detail = self.retry(event, jobs, all_failed).await?;
        Ok(Retried {
            detail,
            attempt: None,
        })
    }

    /// Whether a re-run of some jobs blocks further re-runs until its attempt completes
    /// (GitHub): several jobs are then re-run one attempt after another.
    fn one_job_per_attempt(&self) -> bool {
        false
    }

    /// Whether a failed job can be retried while other jobs of its run still run (GitLab,
    /// Buildkite): the job is then healed from its own delivery ([`FailureEvent::job_event`])
    /// instead of after the whole run.
    fn retries_jobs_while_running(&self) -> bool {
        false
    }

    /// The log of one failed job of the event's run, for healing it before the run completes.
    async fn job_log(
        &self,
        _event: &FailureEvent,
        _job: &FailedJob,
    ) -> Result<JobLog, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot retry a job before its run completes",
            self.platform().as_str()
        )))
    }

    /// Where one attempt stands (the build pipeguard started, not just the newest one).
    async fn attempt_state(
        &self,
        event: &FailureEvent,
        _attempt: u32,
    ) -> Result<RunState, PlatformError> {
        self.run_state(event).await
    }

    /// Whether the platform can start the failed work again with changed inputs (a bigger
    /// runner, a bumped cache key, a clean workspace).
    fn can_rerun_with(&self) -> bool {
        false
    }

    /// [`Ci::can_rerun_with`] for this event's project: some projects of a platform have no
    /// API to start a run with inputs (CircleCI's GitHub App, GitLab and Bitbucket Data
    /// Center projects).
    fn can_rerun_with_for(&self, event: &FailureEvent) -> bool {
        let _ = event;
        self.can_rerun_with()
    }

    /// Starts the failed work again with `inputs` (GitHub workflow-dispatch inputs, GitLab
    /// pipeline variables, CircleCI pipeline parameters, Jenkins build parameters). `workflow`
    /// names the workflow file where the platform needs one (GitHub).
    async fn rerun_with(
        &self,
        _event: &FailureEvent,
        _workflow: Option<&str>,
        _inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot start a run with changed inputs",
            self.platform().as_str()
        )))
    }

    /// Whether `rerun_with` starts a new run (with its own id) rather than the next attempt
    /// of the same one.
    fn rerun_starts_new_run(&self) -> bool {
        true
    }

    /// Inputs that make a re-run start from a clean workspace on their own (GitLab's
    /// `GIT_STRATEGY=clone`); empty when a reset must be configured per repository.
    fn clean_workspace_inputs(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Whether the platform has an API to delete its caches.
    fn can_clear_caches(&self) -> bool {
        false
    }

    /// Deletes the caches the event's ref restores (those whose key starts with `key_prefix`
    /// when given). Returns a description of what was deleted.
    async fn clear_caches(
        &self,
        _event: &FailureEvent,
        _key_prefix: Option<&str>,
    ) -> Result<String, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} has no cache API",
            self.platform().as_str()
        )))
    }

    /// Whether the platform's API can take a runner out of service (pause, stop, offline).
    fn can_take_out_runners(&self) -> bool {
        false
    }

    /// Whether a re-run can be told to avoid runners through a pipeline parameter (Jenkins:
    /// a label expression). GitLab tags and Buildkite agent query rules only require
    /// matches; neither can exclude a runner.
    fn can_steer_runners(&self) -> bool {
        false
    }

    /// Re-runs the failed work with `parameter` set so that none of `runners` can take it.
    async fn rerun_avoiding(
        &self,
        _event: &FailureEvent,
        _parameter: &str,
        runners: &[String],
    ) -> Result<Rerun, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot steer a re-run away from runner(s) {}",
            self.platform().as_str(),
            runners.join(", ")
        )))
    }

    /// Takes `runner` out of service so no new job lands on it. Returns a description of
    /// the call made.
    async fn take_out_runner(
        &self,
        runner: &pipeguard_core::event::Runner,
    ) -> Result<String, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot take runner {} out through its API",
            self.platform().as_str(),
            runner.name
        )))
    }

    /// The newest successful run of the event's workflow on `branch` (not the event's own
    /// run), among the last [`GREEN_RUNS_LISTED`], with the logs of its successful jobs named
    /// in `jobs`; `None` when there is none.
    async fn last_green(
        &self,
        _event: &FailureEvent,
        _branch: &str,
        _jobs: &[String],
    ) -> Result<Option<LastGreen>, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot look up a job's last green run",
            self.platform().as_str()
        )))
    }

    /// The event's repository's default branch.
    async fn default_branch(&self, _event: &FailureEvent) -> Result<Option<String>, PlatformError> {
        Ok(None)
    }

    /// The successful jobs of a green attempt (the event's repository, run and attempt)
    /// with their logs.
    async fn green_jobs(&self, _event: &FailureEvent) -> Result<Vec<GreenJob>, PlatformError> {
        Err(PlatformError::NotConfigured(format!(
            "{} cannot read a green run's logs",
            self.platform().as_str()
        )))
    }

    /// The text of the repository's CODEOWNERS (the event's repository), from the first place
    /// the platform reads it; `None` when there is none or the platform has no such file.
    async fn codeowners(&self, _event: &FailureEvent) -> Result<Option<String>, PlatformError> {
        Ok(None)
    }

    /// Files an issue in the event's repository; `None` where the platform has no issues.
    async fn open_issue(
        &self,
        _event: &FailureEvent,
        _issue: &Issue,
    ) -> Result<Option<Ticket>, PlatformError> {
        Ok(None)
    }

    /// Closes an issue `open_issue` filed, with a last comment.
    async fn close_issue(
        &self,
        _event: &FailureEvent,
        _ticket: &Ticket,
        _comment: &str,
    ) -> Result<(), PlatformError> {
        Ok(())
    }
}

/// An issue to file (a quarantined test's ticket).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Issue {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    /// Platform user names to assign (teams cannot be assigned; the body mentions them).
    pub assignees: Vec<String>,
}

/// A filed issue: the platform's number for it and its web address.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub url: String,
}

/// Green runs listed when looking for the last one of a workflow on a branch.
pub const GREEN_RUNS_LISTED: u32 = 20;

/// The last green run of a workflow on a branch: its id and the logs of the jobs asked for.
#[derive(Debug, Clone)]
pub struct LastGreen {
    pub run_id: String,
    pub jobs: Vec<GreenJob>,
}

/// The attempt number a platform without run attempts reports for a successful outcome
/// (GitLab pipelines, CircleCI workflows): later than any failed attempt.
pub const OUTCOME_ATTEMPT: u32 = 1_000_000;

/// Epoch milliseconds of an RFC 3339 time, or of GitLab's webhook form
/// `2016-08-12 15:23:28 UTC`.
pub fn parse_time_ms(s: Option<&str>) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, PrimitiveDateTime};
    let s = s?.trim();
    let t = OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        PrimitiveDateTime::parse(s, fmt)
            .ok()
            .map(|p| p.assume_utc())
    })?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `2026-11-07T08:00:00Z`: epoch milliseconds as RFC 3339, to whole seconds.
pub fn format_time_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One failed job's log tail at `path`; empty when the platform no longer has it.
pub async fn job_log_at(
    api: &api::ApiClient,
    what: &str,
    path: &str,
    job: &FailedJob,
) -> Result<JobLog, PlatformError> {
    let log = api.log_tail(what, path).await?;
    Ok(JobLog {
        job: job.clone(),
        log: log.unwrap_or_default(),
    })
}

/// The error of a call that needs a credential the section lacks.
pub fn require(present: bool, what: &str) -> Result<(), PlatformError> {
    if present {
        Ok(())
    } else {
        Err(PlatformError::NotConfigured(what.to_string()))
    }
}
