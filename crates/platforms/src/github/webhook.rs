//! GitHub's `workflow_run` and `workflow_job` deliveries.

use crate::{Command, CommandPlace, ParseError, Parsed, Verb};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::runners::RunnerJob;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub use crate::parse_time_ms;

pub(super) fn failed_conclusion(c: &str) -> bool {
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

/// A workflow run as webhooks and the REST API describe it.
#[derive(Deserialize)]
pub(super) struct Run {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) run_attempt: Option<u32>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) conclusion: Option<String>,
    #[serde(default)]
    pub(super) head_sha: Option<String>,
    #[serde(default)]
    pub(super) head_branch: Option<String>,
    #[serde(default)]
    pub(super) html_url: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) run_started_at: Option<String>,
    #[serde(default)]
    pub(super) updated_at: Option<String>,
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
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    runner_id: Option<u64>,
}

impl Job {
    fn runner(&self) -> Option<Runner> {
        Runner::new(
            self.runner_name.as_deref(),
            self.runner_id.map(|i| i.to_string()),
        )
    }
}

/// The runner a completed `workflow_job` ran on, passed or failed; `None` for other actions,
/// skipped or cancelled jobs and jobs no runner picked up.
fn runner_job(p: &JobPayload) -> Option<RunnerJob> {
    let c = p.workflow_job.conclusion.as_deref().unwrap_or("");
    if p.action != "completed" || !(c == "success" || failed_conclusion(c)) {
        return None;
    }
    Some(RunnerJob {
        runner: p.workflow_job.runner()?,
        job_id: p.workflow_job.id.to_string(),
        repository: p.repository.full_name.clone(),
        failed: failed_conclusion(c),
    })
}

/// The body straight into the payload type (the fields pipeguard reads; the rest is skipped
/// without building a tree). Only a failed parse looks again, to tell bad JSON from JSON of
/// the wrong shape.
fn typed<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, ParseError> {
    // A struct also deserializes from an array: only an object is a payload.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        object(body)?;
    }
    serde_json::from_slice(body).map_err(|e| match object(body) {
        Err(bad) => bad,
        Ok(()) => ParseError::Shape(format!("{event}: {e}")),
    })
}

fn object(body: &[u8]) -> Result<(), ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    Ok(())
}

/// The failure event a run's attempt (as a delivery or the REST API shows it) stands for.
pub(super) fn run_event(repository: String, r: Run) -> FailureEvent {
    FailureEvent {
        platform: Some(Platform::Github),
        repository,
        run_id: r.id.to_string(),
        attempt: r.run_attempt.unwrap_or(1),
        workflow: r.name.unwrap_or_default(),
        head_sha: r.head_sha,
        branch: r.head_branch,
        url: r.html_url,
        started_at_ms: parse_time_ms(r.run_started_at.as_deref().or(r.created_at.as_deref())),
        finished_at_ms: parse_time_ms(r.updated_at.as_deref()),
        ..Default::default()
    }
}

/// Parses one delivery given its `X-GitHub-Event` name.
pub fn parse_event(event: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    parse_with_runners(event, body).map(|(parsed, _)| parsed)
}

/// A delivery's meaning and, from the same parse, the finished job it names with its runner
/// (a completed `workflow_job`, passed or failed).
pub(super) fn parse_with_runners(
    event: &str,
    body: &[u8],
) -> Result<(Parsed, Vec<RunnerJob>), ParseError> {
    if event == "workflow_job" {
        let p: JobPayload = typed(event, body)?;
        let seen = runner_job(&p).into_iter().collect();
        return Ok((job_event(p), seen));
    }
    parse_other(event, body).map(|parsed| (parsed, vec![]))
}

fn parse_other(event: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    match event {
        "ping" => object(body).map(|()| Parsed::Ping),
        "workflow_run" => {
            let p: RunPayload = typed(event, body)?;
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
                    workflow: r.name.clone(),
                    run_id: r.id.to_string(),
                    attempt,
                    finished_at_ms: parse_time_ms(r.updated_at.as_deref()),
                    commit: crate::OnCommit::of(r.head_branch.as_ref(), r.head_sha.as_ref()),
                });
            }
            if !failed_conclusion(conclusion) {
                return Ok(Parsed::Ignored(format!(
                    "workflow_run concluded {conclusion:?}"
                )));
            }
            Ok(Parsed::Failure(Box::new(run_event(
                p.repository.full_name,
                r,
            ))))
        }
        "check_run" => requested_action(typed(event, body)?),
        other => object(body).map(|()| Parsed::Ignored(format!("event {other:?} is not handled"))),
    }
}

/// A `workflow_job` delivery: a failed job is a failure of its run; anything else is left to
/// the run's completion.
fn job_event(p: JobPayload) -> Parsed {
    let j = p.workflow_job;
    let runner = j.runner();
    let conclusion = j.conclusion.as_deref().unwrap_or("");
    if p.action != "completed" || !failed_conclusion(conclusion) {
        return Parsed::Ignored(format!(
            "workflow_job {} concluded {conclusion:?}; the run's completion tells outcomes",
            p.action
        ));
    }
    Parsed::Failure(Box::new(FailureEvent {
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
            runner,
            name: j.name,
            ..Default::default()
        }],
        started_at_ms: parse_time_ms(j.started_at.as_deref()),
        finished_at_ms: parse_time_ms(j.completed_at.as_deref()),
        ..Default::default()
    }))
}

#[derive(Deserialize)]
struct CheckRunPayload {
    action: String,
    check_run: CheckRunObject,
    #[serde(default)]
    requested_action: Option<RequestedAction>,
    repository: Repo,
    sender: Sender,
}

#[derive(Deserialize)]
struct CheckRunObject {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Deserialize)]
struct RequestedAction {
    identifier: String,
}

#[derive(Deserialize)]
struct Sender {
    login: String,
}

/// A button pressed on one of pipeguard's check runs (`external_id` = the session).
fn requested_action(p: CheckRunPayload) -> Result<Parsed, ParseError> {
    let identifier = p.requested_action.map(|a| a.identifier).unwrap_or_default();
    let session = p.check_run.external_id.unwrap_or_default();
    let verb = match Verb::parse(&identifier) {
        Some(v) if p.action == "requested_action" && !session.is_empty() => v,
        _ => {
            return Ok(Parsed::Ignored(format!(
                "check_run {} {identifier:?} is no pipeguard button",
                p.action
            )))
        }
    };
    Ok(Parsed::Command(Box::new(Command {
        verb,
        user: p.sender.login,
        user_id: None,
        repository: p.repository.full_name,
        place: CommandPlace::CheckRun {
            id: p.check_run.id,
            session,
        },
    })))
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
        let Parsed::Failure(ev) = parse_event("workflow_run", &run_payload("failure", 2)).unwrap()
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
            parse_event("workflow_run", &run_payload("success", 3)).unwrap(),
            Parsed::Success { attempt: 3, .. }
        ));
        assert!(matches!(
            parse_event("workflow_run", &run_payload("cancelled", 1)).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_event("push", b"{}").unwrap(),
            Parsed::Ignored(_)
        ));
        assert_eq!(
            parse_event("ping", b"{\"zen\":\"x\"}").unwrap(),
            Parsed::Ping
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_event("workflow_run", b"{not json"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_event("workflow_run", b"{\"action\":\"completed\"}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_event("workflow_run", b"[]"),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn octokit_examples_parse_when_shared_fixtures_exist() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/github/octokit-webhooks");
        let Some(dir) = crate::require::require_path("octokit's webhook examples", dir) else {
            return;
        };
        let job = std::fs::read(
            dir.join("workflow_job/completed.failure.with-organization.payload.json"),
        )
        .unwrap();
        let Parsed::Failure(ev) = parse_event("workflow_job", &job).unwrap() else {
            panic!()
        };
        assert_eq!(ev.jobs[0].name, "linters");
        assert_eq!(ev.run_id, "2202229078");
        let runner = ev.jobs[0].runner.clone().unwrap();
        assert_eq!(
            (runner.name.as_str(), runner.id.as_deref()),
            ("GitHub Actions 5", Some("5"))
        );
        let (_, seen) = parse_with_runners("workflow_job", &job).unwrap();
        assert!(seen[0].failed && seen[0].runner == runner);
        let run = std::fs::read(dir.join("workflow_run/completed.payload.json")).unwrap();
        assert!(matches!(
            parse_event("workflow_run", &run).unwrap(),
            Parsed::Success { .. }
        ));
    }
}
