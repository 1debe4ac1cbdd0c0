//! The one shape every intake (webhooks, `pipeguard run`, Ansible) normalises a failure into.

use serde::{Deserialize, Serialize};

pub use pipeguard_taxonomy::Platform;

/// One failed job inside a failed run, as far as the delivery tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailedJob {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The platform's own reason, e.g. GitLab's `failure_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_reason: Option<String>,
    /// The runner, agent or node the job ran on, where the platform tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Runner>,
}

/// A machine that runs jobs: a GitHub runner, a GitLab runner, a Buildkite agent, a Jenkins
/// node. Failures are counted per `name`; `id` is what the platform's API takes to pause it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Runner {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Runner {
    /// A runner from the platform's name and id; `None` when neither is known. A runner
    /// without a name is called by its id.
    pub fn new(name: Option<&str>, id: Option<String>) -> Option<Runner> {
        let id = id.filter(|i| !i.trim().is_empty());
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .or_else(|| id.as_ref().map(|i| format!("runner-{i}")))?;
        Some(Runner { name, id })
    }
}

/// A failure, normalised. `run_id` + `attempt` identify what is healed at most once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureEvent {
    pub platform: Option<Platform>,
    /// `owner/repo`, GitLab project path, Jenkins job path…
    pub repository: String,
    pub run_id: String,
    pub attempt: u32,
    #[serde(default)]
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub jobs: Vec<FailedJob>,
    #[serde(default)]
    pub target_hosts: Vec<String>,
    /// Log text carried by the delivery itself (generic webhook, `pipeguard run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the failed attempt started and finished, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The delivery reports one job that finished failed while the rest of its run may still
    /// run (a GitLab Job Hook, a Buildkite `job.finished`): where the platform retries a job
    /// meanwhile, that job can be healed without waiting for the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub job_event: bool,
    /// What the reporter knows of the failed host (the Ansible callback plugin's `facts`:
    /// OS family, package and service manager, free memory and disk), as it sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_facts: Option<serde_json::Map<String, serde_json::Value>>,
}
