//! GitHub's JSON: the run and job objects of the REST API and the `workflow_run` /
//! `workflow_job` webhook deliveries built from them.

use super::state::{Attempt, GithubState, Job, Run};
use crate::core::http::rfc3339_s;
use crate::core::webhook::{Delivery, Signing};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A stable numeric id for a name (repository ids, check suite ids…).
pub(crate) fn stable_id(name: &str) -> u64 {
    let h = Sha256::digest(name.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % 1_000_000_000
}

pub(crate) fn repo_json(st: &GithubState, repo: &str) -> Value {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, repo));
    json!({
        "id": stable_id(repo),
        "node_id": format!("R_{}", stable_id(repo)),
        "name": name,
        "full_name": repo,
        "private": true,
        "default_branch": "main",
        "owner": {"login": owner, "id": stable_id(owner), "type": "Organization"},
        "html_url": format!("{}/{repo}", st.base_url),
        "url": format!("{}/repos/{repo}", st.base_url),
    })
}

/// The run as `GET /repos/{o}/{r}/actions/runs/{id}` (or `/attempts/{n}`) shows it.
pub(crate) fn run_json(st: &GithubState, run: &Run, attempt: &Attempt) -> Value {
    let api = format!("{}/repos/{}/actions/runs/{}", st.base_url, run.repo, run.id);
    let previous = (attempt.number > 1).then(|| format!("{api}/attempts/{}", attempt.number - 1));
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": format!("WFR_{}", run.id),
        "head_branch": run.branch,
        "head_sha": run.sha,
        "path": format!(".github/workflows/{}", run.workflow),
        "display_title": run.name,
        "run_number": run.run_number,
        "event": run.event,
        "status": attempt.status.as_str(),
        "conclusion": attempt.conclusion,
        "workflow_id": run.workflow_id,
        "check_suite_id": stable_id(&format!("{}#{}", run.id, attempt.number)),
        "url": api,
        "html_url": format!("{}/{}/actions/runs/{}", st.base_url, run.repo, run.id),
        "created_at": rfc3339_s(run.created_at),
        "updated_at": rfc3339_s(attempt.updated_at),
        "run_attempt": attempt.number,
        "run_started_at": rfc3339_s(attempt.started_at),
        "jobs_url": format!("{api}/jobs"),
        "logs_url": format!("{api}/logs"),
        "rerun_url": format!("{api}/rerun"),
        "cancel_url": format!("{api}/cancel"),
        "previous_attempt_url": previous,
        "workflow_url": format!("{}/repos/{}/actions/workflows/{}", st.base_url, run.repo, run.workflow_id),
        "actor": {"login": "octocat", "id": 1},
        "triggering_actor": {"login": "octocat", "id": 1},
        "repository": repo_json(st, &run.repo),
        "head_repository": repo_json(st, &run.repo),
    })
}

/// The job as `GET /repos/{o}/{r}/actions/jobs/{id}` shows it.
pub(crate) fn job_json(st: &GithubState, job: &Job) -> Value {
    let run = &st.runs[&job.run_id];
    let status = job.status.as_str();
    let step = |n: u32, name: &str, conclusion: Option<&str>| {
        json!({"name": name, "status": status, "conclusion": conclusion, "number": n,
               "started_at": job.started_at.map(rfc3339_s),
               "completed_at": job.completed_at.map(rfc3339_s)})
    };
    json!({
        "id": job.id,
        "run_id": job.run_id,
        "run_url": format!("{}/repos/{}/actions/runs/{}", st.base_url, run.repo, run.id),
        "run_attempt": job.run_attempt,
        "node_id": format!("CR_{}", job.id),
        "head_sha": run.sha,
        "head_branch": run.branch,
        "url": format!("{}/repos/{}/actions/jobs/{}", st.base_url, run.repo, job.id),
        "html_url": format!("{}/{}/actions/runs/{}/job/{}", st.base_url, run.repo, run.id, job.id),
        "status": status,
        "conclusion": job.conclusion,
        "created_at": rfc3339_s(job.created_at),
        "started_at": job.started_at.map(rfc3339_s),
        "completed_at": job.completed_at.map(rfc3339_s),
        "name": job.name,
        "steps": [
            step(1, "Set up job", job.completed_at.map(|_| "success")),
            step(2, &format!("Run {}", job.name), job.conclusion.as_deref()),
        ],
        "check_run_url": format!("{}/repos/{}/check-runs/{}", st.base_url, run.repo, job.id),
        "labels": ["ubuntu-latest"],
        "runner_id": 1,
        "runner_name": "GitHub Actions 1",
        "runner_group_id": 1,
        "runner_group_name": "GitHub Actions",
        "workflow_name": run.name,
    })
}

/// Frames one delivery as GitHub's webhook sender does (the outbox signs it).
pub(crate) fn delivery(event: &str, body: Value) -> Delivery {
    let body = body.to_string().into_bytes();
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "User-Agent".to_string(),
            "GitHub-Hookshot/pipeguard-sim".to_string(),
        ),
        ("X-GitHub-Event".to_string(), event.to_string()),
        (
            "X-GitHub-Delivery".to_string(),
            uuid::Uuid::new_v4().to_string(),
        ),
        ("X-GitHub-Hook-ID".to_string(), "1".to_string()),
    ];
    Delivery {
        event: event.to_string(),
        headers,
        body,
        signing: Signing::Hmac {
            header: "X-Hub-Signature-256",
            prefix: "sha256=",
        },
    }
}

/// `workflow_run` for the run's latest attempt (`requested`, `in_progress`, `completed`).
pub(crate) fn run_delivery(st: &GithubState, run_id: u64, action: &str) -> Delivery {
    let run = &st.runs[&run_id];
    let wf = st.workflow(&run.repo, &run.workflow);
    let body = json!({
        "action": action,
        "workflow_run": run_json(st, run, run.latest()),
        "workflow": {"id": run.workflow_id, "name": run.name, "state": "active",
                     "path": format!(".github/workflows/{}", wf.map(|w| w.file.as_str()).unwrap_or(""))},
        "repository": repo_json(st, &run.repo),
        "sender": {"login": "octocat", "id": 1},
    });
    delivery("workflow_run", body)
}

/// `workflow_job` (`in_progress` or `completed`).
pub(crate) fn job_delivery(st: &GithubState, job_id: u64, action: &str) -> Delivery {
    let job = &st.jobs[&job_id];
    let run = &st.runs[&job.run_id];
    let body = json!({
        "action": action,
        "workflow_job": job_json(st, job),
        "repository": repo_json(st, &run.repo),
        "sender": {"login": "octocat", "id": 1},
    });
    delivery("workflow_job", body)
}

/// The job's log as the blob storage serves it: each line stamped, as the runner writes them.
pub(crate) fn log_text(job: &Job) -> String {
    let start = job.started_at.map(rfc3339_s).unwrap_or_default();
    let stamp = start.trim_end_matches('Z').to_string() + ".0000000Z";
    let mut out = format!("{stamp} ##[group]Run {}\n{stamp} ##[endgroup]\n", job.name);
    for line in job.log.lines() {
        out.push_str(&format!("{stamp} {line}\n"));
    }
    if job.conclusion.as_deref() == Some("failure") {
        out.push_str(&format!(
            "{stamp} ##[error]Process completed with exit code 1.\n"
        ));
    }
    out
}
