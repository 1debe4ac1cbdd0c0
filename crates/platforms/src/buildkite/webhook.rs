//! Buildkite's `build.finished` and `job.finished` deliveries.

use crate::{parse_time_ms, ParseError, Parsed, OUTCOME_ATTEMPT};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub(super) struct Build {
    pub number: u64,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

#[derive(Deserialize)]
struct Pipeline {
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// A job as the REST API and webhooks describe it.
#[derive(Deserialize, Clone)]
pub(super) struct Job {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub step_key: Option<String>,
    #[serde(default)]
    pub group_key: Option<String>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub soft_failed: bool,
    #[serde(default)]
    pub retried: bool,
    #[serde(default)]
    pub retries_count: Option<u32>,
    #[serde(default)]
    pub signal_reason: Option<String>,
    /// The agent that ran the job (REST API and `job.*` deliveries).
    #[serde(default)]
    pub agent: Option<Agent>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// The agent a job ran on: its `name`, and its API `url`
/// (`…/v2/organizations/{org}/agents/{id}`), which the agents API stops it by.
#[derive(Deserialize, Clone)]
pub(super) struct Agent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

impl Agent {
    /// The runner, its id being `{org}/{agent id}` when the agent's URL tells the
    /// organization (stopping an agent needs both).
    fn runner(&self) -> Option<pipeguard_core::event::Runner> {
        let from_url = self.url.as_deref().and_then(|u| {
            let (_, rest) = u.split_once("/v2/organizations/")?;
            let (org, id) = rest.split_once("/agents/")?;
            Some(format!("{org}/{}", id.trim_end_matches('/')))
        });
        pipeguard_core::event::Runner::new(self.name.as_deref(), from_url.or(self.id.clone()))
    }
}

/// Why the agent, not the command, ended a job (`signal_reason`), in the words pipeguard's
/// analyzer knows: a lost or stopped agent is the runner's failure, not the code's.
const SIGNAL_REASONS: &[(&str, &str)] = &[
    ("agent_stop", "runner_system_failure (agent_stop)"),
    ("agent_refused", "runner_system_failure (agent_refused)"),
    (
        "agent_incompatible",
        "runner_system_failure (agent_incompatible)",
    ),
    (
        "process_run_error",
        "runner_system_failure (process_run_error)",
    ),
    ("stack_error", "runner_system_failure (stack_error)"),
    ("cancel", "canceled"),
];

impl Job {
    /// A job that failed the build: a failed or timed-out command step that was not allowed
    /// to soft-fail and has not been retried already.
    pub fn failed(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "timed_out")
            && !self.soft_failed
            && !self.retried
            && self.kind.as_deref().is_none_or(|k| k == "script")
    }

    /// The attempt this job is: one more than the retries before it.
    pub fn attempt(&self) -> u32 {
        self.retries_count
            .unwrap_or(0)
            .saturating_add(1)
            .min(OUTCOME_ATTEMPT - 1)
    }

    pub fn to_failed(&self) -> FailedJob {
        // The step key and its group say "deploy" where labels are emoji.
        let stage = match (&self.group_key, &self.step_key) {
            (Some(g), Some(k)) => Some(format!("{g}/{k}")),
            (g, k) => k.clone().or_else(|| g.clone()),
        };
        let reason = self
            .signal_reason
            .as_deref()
            .map(|r| {
                SIGNAL_REASONS
                    .iter()
                    .find(|(k, _)| *k == r)
                    .map_or(r.to_string(), |(_, v)| v.to_string())
            })
            .or_else(|| (self.state == "timed_out").then(|| "timed_out".to_string()));
        FailedJob {
            id: self.id.clone(),
            name: self
                .name
                .clone()
                .or_else(|| self.label.clone())
                .unwrap_or_default(),
            stage,
            environment: None,
            platform_reason: reason,
            runner: self.agent.as_ref().and_then(Agent::runner),
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    build: Build,
    #[serde(default)]
    pipeline: Option<Pipeline>,
    #[serde(default)]
    job: Option<Job>,
}

/// `(org, pipeline)` from an API URL `…/organizations/{org}/pipelines/{pipeline}…` or a web URL
/// `https://buildkite.com/{org}/{pipeline}/builds/…`.
fn org_pipeline(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let parts: Vec<&str> = rest.split(['/', '?', '#']).collect();
    if let Some(i) = parts.iter().position(|p| *p == "organizations") {
        if parts.get(i + 2) == Some(&"pipelines") {
            return Some((parts.get(i + 1)?.to_string(), parts.get(i + 3)?.to_string()));
        }
    }
    if parts.get(3) == Some(&"builds") {
        return Some((parts.get(1)?.to_string(), parts.get(2)?.to_string()));
    }
    None
}

/// The `org/pipeline` the delivery is about: the build's API URL, else the pipeline's, else the
/// build's web URL.
fn repository(p: &Payload) -> Option<String> {
    let pipe = p.pipeline.as_ref();
    [
        p.build.url.as_deref(),
        pipe.and_then(|x| x.url.as_deref()),
        p.build.web_url.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find_map(org_pipeline)
    .filter(|(o, s)| !o.is_empty() && !s.is_empty())
    .map(|(o, s)| format!("{o}/{s}"))
}

/// The job a `job.finished` delivery tells, passed or failed, with the agent it ran on.
fn runner_job(p: &Payload, repository: &str) -> Option<pipeguard_core::runners::RunnerJob> {
    let job = p.job.as_ref()?;
    let failed = job.failed();
    let finished = failed || job.state == "passed";
    let runner = job.agent.as_ref().and_then(Agent::runner)?;
    (finished && !job.soft_failed).then(|| pipeguard_core::runners::RunnerJob {
        runner,
        job_id: job.id.clone(),
        repository: repository.to_string(),
        failed,
    })
}

/// Parses one delivery; the event is the `X-Buildkite-Event` header, else the body's `event`.
pub fn parse_delivery(event: Option<&str>, body: &[u8]) -> Result<Parsed, ParseError> {
    parse_with_runners(event, body).map(|(parsed, _)| parsed)
}

/// A delivery's meaning and, from the same parse, the finished job a `job.finished` names
/// with its agent.
pub(super) fn parse_with_runners(
    event: Option<&str>,
    body: &[u8],
) -> Result<(Parsed, Vec<pipeguard_core::runners::RunnerJob>), ParseError> {
    let mut seen = vec![];
    let parsed = parse_counting(event, body, &mut seen)?;
    Ok((parsed, seen))
}

fn parse_counting(
    event: Option<&str>,
    body: &[u8],
    seen: &mut Vec<pipeguard_core::runners::RunnerJob>,
) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    let event = event
        .map(str::to_string)
        .or_else(|| value["event"].as_str().map(str::to_string))
        .ok_or_else(|| ParseError::Header("missing X-Buildkite-Event header".into()))?;
    match event.as_str() {
        "ping" => return Ok(Parsed::Ping),
        "build.finished" | "job.finished" => {}
        other => return Ok(Parsed::Ignored(format!("event {other:?} is not handled"))),
    }
    let p: Payload = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("Buildkite {event}: {e}")))?;
    let repository = repository(&p).ok_or_else(|| {
        ParseError::Shape("no organization/pipeline in build.url, pipeline.url or web_url".into())
    })?;
    if event == "job.finished" {
        *seen = runner_job(&p, &repository).into_iter().collect();
    }
    let run_id = p.build.number.to_string();
    let failure =
        |jobs: Vec<FailedJob>, attempt: u32, started: Option<&str>, done: Option<&str>| {
            Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Buildkite),
                repository: repository.clone(),
                run_id: run_id.clone(),
                attempt,
                workflow: p
                    .pipeline
                    .as_ref()
                    .and_then(|x| x.name.clone().or_else(|| x.slug.clone()))
                    .unwrap_or_default(),
                head_sha: p.build.commit.clone(),
                branch: p.build.branch.clone(),
                url: p.build.web_url.clone(),
                jobs,
                started_at_ms: parse_time_ms(started),
                finished_at_ms: parse_time_ms(done),
                job_event: event == "job.finished",
                ..Default::default()
            }))
        };
    let b = &p.build;
    Ok(match (event.as_str(), &p.job) {
        ("build.finished", _) => match b.state.as_str() {
            "passed" => Parsed::Success {
                repository: repository.clone(),
                workflow: None,
                run_id: run_id.clone(),
                attempt: OUTCOME_ATTEMPT,
                finished_at_ms: parse_time_ms(b.finished_at.as_deref()),
                commit: None,
            },
            // Webhook builds carry no jobs: the API lists the failed ones.
            "failed" => failure(
                vec![],
                1,
                b.started_at.as_deref().or(b.created_at.as_deref()),
                b.finished_at.as_deref(),
            ),
            s => Parsed::Ignored(format!("build state {s:?}")),
        },
        (_, Some(j)) if j.failed() => failure(
            vec![j.to_failed()],
            j.attempt(),
            j.started_at.as_deref(),
            j.finished_at.as_deref(),
        ),
        (_, Some(j)) => Parsed::Ignored(format!(
            "job state {:?}{}; build.finished tells outcomes",
            j.state,
            if j.soft_failed { " (soft fail)" } else { "" }
        )),
        (_, None) => return Err(ParseError::Shape("job.finished without a job".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/buildkite/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn failure(p: Parsed) -> FailureEvent {
        match p {
            Parsed::Failure(ev) => *ev,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn failed_build_is_attempt_one_of_its_number() {
        let ev = failure(
            parse_delivery(
                Some("build.finished"),
                &fixture("build_finished_failed.json"),
            )
            .unwrap(),
        );
        assert_eq!(ev.repository, "my-great-org/my-pipeline");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("42", 1));
        assert!(ev.jobs.is_empty(), "webhook builds carry no jobs");
        assert_eq!(ev.workflow, "My Pipeline");
        assert_eq!(
            ev.head_sha.as_deref(),
            Some("abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8")
        );
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            180_000
        );
        // Without the header the body's event is used.
        assert!(matches!(
            parse_delivery(None, &fixture("build_finished_failed.json")).unwrap(),
            Parsed::Failure(_)
        ));
    }

    #[test]
    fn passed_build_is_the_outcome() {
        let p = parse_delivery(
            Some("build.finished"),
            &fixture("build_finished_passed.json"),
        )
        .unwrap();
        assert!(matches!(
            p,
            Parsed::Success { attempt: OUTCOME_ATTEMPT, ref run_id, ref repository, .. }
                if run_id == "42" && repository == "my-great-org/my-pipeline"
        ));
    }

    #[test]
    fn failed_job_carries_label_key_and_group() {
        let ev = failure(
            parse_delivery(Some("job.finished"), &fixture("job_finished_failed.json")).unwrap(),
        );
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("42", 1));
        assert!(ev.job_event, "one job's failure, the build may still run");
        let j = &ev.jobs[0];
        assert_eq!(j.id, "b63254c0-3271-4a98-8270-7cfbd6c2f14e");
        assert_eq!(j.name, ":rspec: RSpec");
        assert_eq!(j.stage.as_deref(), Some("tests/rspec"));
        assert_eq!(j.platform_reason, None);
    }

    #[test]
    fn a_retried_job_is_a_later_attempt_and_an_agent_stop_is_the_runner_s_fault() {
        let ev = failure(
            parse_delivery(
                Some("job.finished"),
                &fixture("job_finished_retried_agent_stop.json"),
            )
            .unwrap(),
        );
        assert_eq!(ev.attempt, 2);
        assert_eq!(
            ev.jobs[0].platform_reason.as_deref(),
            Some("runner_system_failure (agent_stop)")
        );
    }

    #[test]
    fn soft_failures_passes_and_other_events_are_ignored() {
        let mut v: Value = serde_json::from_slice(&fixture("job_finished_failed.json")).unwrap();
        v["job"]["soft_failed"] = Value::Bool(true);
        let body = v.to_string();
        assert!(matches!(
            parse_delivery(Some("job.finished"), body.as_bytes()).unwrap(),
            Parsed::Ignored(_)
        ));
        v["job"]["soft_failed"] = Value::Bool(false);
        v["job"]["state"] = Value::from("passed");
        assert!(matches!(
            parse_delivery(Some("job.finished"), v.to_string().as_bytes()).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_delivery(Some("ping"), b"{}").unwrap(),
            Parsed::Ping
        ));
        assert!(matches!(
            parse_delivery(Some("agent.lost"), b"{}").unwrap(),
            Parsed::Ignored(_)
        ));
        let mut b: Value = serde_json::from_slice(&fixture("build_finished_failed.json")).unwrap();
        b["build"]["state"] = Value::from("canceled");
        assert!(matches!(
            parse_delivery(Some("build.finished"), b.to_string().as_bytes()).unwrap(),
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn repository_falls_back_to_the_web_url() {
        let mut b: Value = serde_json::from_slice(&fixture("build_finished_failed.json")).unwrap();
        b["build"]["url"] = Value::Null;
        b["pipeline"] = Value::Null;
        let ev = failure(parse_delivery(Some("build.finished"), b.to_string().as_bytes()).unwrap());
        assert_eq!(ev.repository, "my-great-org/my-pipeline");
        b["build"]["web_url"] = Value::from("https://buildkite.com/");
        assert!(matches!(
            parse_delivery(Some("build.finished"), b.to_string().as_bytes()),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_delivery(Some("build.finished"), b"{"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_delivery(Some("build.finished"), b"[]"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_delivery(Some("build.finished"), br#"{"build": {"state": "failed"}}"#),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_delivery(None, br#"{"build": {}}"#),
            Err(ParseError::Header(_))
        ));
    }
}
