//! CI platforms: verifying and parsing their webhooks, fetching logs, acting through their APIs.
//!
//! Every platform implements [`Ci`], so the worker heals a run the same way whichever system
//! sent it; what a platform cannot do is stated by its [`Capabilities`].

pub mod buildbot;
pub mod circleci;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod jenkins;
pub mod signature;

use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;

/// What a delivery meant, once verified and parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Ping,
    /// Valid, but nothing to heal (a success of an unrelated run, a queued job…).
    Ignored(String),
    Failure(Box<FailureEvent>),
    Success {
        repository: String,
        run_id: String,
        attempt: u32,
        finished_at_ms: Option<i64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("payload does not have the documented shape: {0}")]
    Shape(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Worth trying again later: 5xx, 429, timeouts, connection errors.
    #[error("transient platform error: {0}")]
    Transient(String),
    /// Will not change by retrying: 4xx, expired logs, runs too old to re-run.
    #[error("platform refused: {0}")]
    Permanent(String),
    #[error("not configured: {0}")]
    NotConfigured(String),
}

/// The log of one failed job.
#[derive(Debug, Clone)]
pub struct JobLog {
    pub job: FailedJob,
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

    /// Whether the platform can start the failed work again with changed inputs (a bigger
    /// runner, a bumped cache key, a clean workspace).
    fn can_rerun_with(&self) -> bool {
        false
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
}

/// A run started again with changed inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Rerun {
    /// The call made, for the session's record.
    pub detail: String,
    /// The id of the new run when the platform made one (its outcome then tells the heal's),
    /// `None` when the new work is the next attempt of the same run.
    pub new_run_id: Option<String>,
}
