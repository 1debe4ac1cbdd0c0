//! Past runs for `pipeguard import` (reads only): the repository's runs created since a date,
//! 100 a page (`GET /repos/{o}/{r}/actions/runs?created=>=…`, the next page named by the
//! `Link` header), and for a run people re-ran, its first failed attempt (its jobs and the
//! failed jobs' logs) and the attempt after it (`…/runs/{id}/attempts/{n}/jobs`).
//! GitHub answers a listing filtered by `created` with at most 1,000 runs.

use super::client::{repo_path, ApiJob, GithubClient};
use super::webhook::{failed_conclusion, run_event, Run};
use crate::api::{encode, link_next, read_json};
use crate::{parse_time_ms, History, HistoryPage, JobLog, PastFailure, PastRun, PlatformError};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use reqwest::Method;
use serde::Deserialize;

const PER_PAGE: usize = 100;

#[derive(Deserialize)]
struct RunsPage {
    #[serde(default)]
    workflow_runs: Vec<Run>,
}

/// `>=2026-11-07T08:00:00Z`, GitHub's search syntax for "created since".
fn created_since(since_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(since_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let at = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(">={at}")
}

/// How an attempt's jobs ended: `Some(true)` green, `Some(false)` a job failed, `None` not
/// evidence either way (still running, or cancelled by someone).
fn outcome(jobs: &[ApiJob]) -> Option<bool> {
    let conclusions: Vec<&str> = jobs
        .iter()
        .map(|j| j.conclusion.as_deref().unwrap_or(""))
        .collect();
    if conclusions.iter().any(|c| failed_conclusion(c)) {
        return Some(false);
    }
    let done = |c: &&str| matches!(*c, "success" | "skipped" | "neutral");
    conclusions.iter().all(done).then_some(true)
}

fn times(jobs: &[&ApiJob], at: impl Fn(&ApiJob) -> Option<&String>) -> Vec<i64> {
    jobs.iter()
        .filter_map(|j| parse_time_ms(at(j).map(String::as_str)))
        .collect()
}

#[async_trait]
impl History for GithubClient {
    async fn page(
        &self,
        repository: &str,
        since_ms: i64,
        page: u32,
    ) -> Result<HistoryPage, PlatformError> {
        let ev = FailureEvent {
            platform: Some(Platform::Github),
            repository: repository.to_string(),
            ..Default::default()
        };
        let path = format!(
            "{}/actions/runs?created={}&per_page={PER_PAGE}&page={page}",
            repo_path(&ev)?,
            encode(&created_since(since_ms))
        );
        let api = self.api_for(&ev).await?;
        let r = api.call("list runs", Method::GET, &path, None).await?;
        let more = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(link_next)
            .is_some();
        let body: RunsPage = read_json("list runs", r).await?;
        let listed = body.workflow_runs.len();
        let runs = body
            .workflow_runs
            .into_iter()
            .filter(|r| r.run_attempt.unwrap_or(1) > 1 && r.status.as_deref() == Some("completed"))
            .map(|r| PastRun {
                attempts: r.run_attempt.unwrap_or(1),
                event: run_event(repository.to_string(), r),
            })
            .collect();
        Ok(HistoryPage {
            runs,
            listed,
            next: more.then_some(page + 1),
        })
    }

    /// Two calls for the attempts' jobs (100 a page) and one per failed job's log, from the
    /// first attempt on until one failed.
    async fn failure(&self, run: &PastRun) -> Result<Option<PastFailure>, PlatformError> {
        let api = self.api_for(&run.event).await?;
        let mut ev = run.event.clone();
        for n in 1..run.attempts {
            ev.attempt = n;
            let jobs = self.attempt_jobs(&api, &ev).await?;
            let failed: Vec<&ApiJob> = jobs
                .iter()
                .filter(|j| j.conclusion.as_deref().is_some_and(failed_conclusion))
                .collect();
            if failed.is_empty() {
                continue;
            }
            let mut logs = Vec::with_capacity(failed.len());
            for j in &failed {
                let job = FailedJob {
                    id: j.id.to_string(),
                    name: j.name.clone(),
                    ..Default::default()
                };
                let log = Self::log_of(&api, &ev, j.id).await?;
                logs.push(JobLog { job, log });
            }
            let ran: Vec<&ApiJob> = jobs.iter().collect();
            ev.started_at_ms = times(&ran, |j| j.started_at.as_ref()).into_iter().min();
            ev.finished_at_ms = times(&ran, |j| j.completed_at.as_ref()).into_iter().max();
            ev.jobs = logs.iter().map(|l| l.job.clone()).collect();
            let next = FailureEvent {
                attempt: n + 1,
                ..ev.clone()
            };
            let after = self.attempt_jobs(&api, &next).await?;
            let Some(green) = outcome(&after) else {
                return Ok(None);
            };
            let rerun: Vec<&ApiJob> = after
                .iter()
                .filter(|j| j.run_attempt == Some(n + 1))
                .collect();
            let failed_at_ms = ev.finished_at_ms.unwrap_or_default();
            let rerun_at_ms = times(&rerun, |j| j.started_at.as_ref())
                .into_iter()
                .min()
                .unwrap_or(failed_at_ms);
            return Ok(Some(PastFailure {
                event: ev,
                logs,
                failed_at_ms,
                rerun_at_ms,
                green,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conclusion: &str) -> ApiJob {
        serde_json::from_value(serde_json::json!({"id": 1, "name": "t", "conclusion": conclusion}))
            .unwrap()
    }

    #[test]
    fn an_attempt_is_evidence_only_once_its_jobs_ended() {
        assert_eq!(outcome(&[job("success"), job("skipped")]), Some(true));
        assert_eq!(outcome(&[job("success"), job("failure")]), Some(false));
        assert_eq!(outcome(&[job("timed_out"), job("cancelled")]), Some(false));
        assert_eq!(outcome(&[job("success"), job("cancelled")]), None);
        assert_eq!(outcome(&[job("success"), job("")]), None);
    }

    #[test]
    fn since_is_written_in_the_search_syntax() {
        assert_eq!(created_since(1_764_576_000_000), ">=2025-12-01T08:00:00Z");
    }
}
