//! Past runs for `pipeguard import` (reads only): the repository's runs created since a date,
//! 100 a page (`GET /repos/{o}/{r}/actions/runs?created=>=…`, the next page named by the
//! `Link` header), and for a run people re-ran, its first failed attempt (its jobs and the
//! failed jobs' logs) and the attempt after it (`…/runs/{id}/attempts/{n}/jobs`).
//! GitHub answers a listing filtered by `created` with at most 1,000 runs (`total_count` says
//! how many matched): past that, the listing goes on in a window ending at the oldest run
//! listed so far.

use super::client::{repo_path, ApiJob, GithubClient};
use super::webhook::{failed_conclusion, run_event, Run};
use crate::api::{encode, link_next, read_json};
use crate::{
    format_time_ms, parse_time_ms, Cursor, History, HistoryPage, JobLog, OnCommit, PastFailure,
    PastGreen, PastRun, PlatformError,
};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use reqwest::Method;
use serde::Deserialize;

const PER_PAGE: usize = 100;
/// The most runs GitHub lists for one `created` filter.
const CAP: usize = 1000;

#[derive(Deserialize)]
struct RunsPage {
    #[serde(default)]
    total_count: usize,
    #[serde(default)]
    workflow_runs: Vec<Run>,
}

/// `>=2026-11-07T08:00:00Z`, or `2026-11-07T08:00:00Z..2026-11-20T10:00:00Z` within a window:
/// GitHub's search syntax for the creation times listed.
fn created(since_ms: i64, until: Option<&str>) -> String {
    let since = format_time_ms(since_ms);
    match until {
        None => format!(">={since}"),
        Some(u) => format!("{since}..{u}"),
    }
}

/// Where the listing goes on after page `at` showed `listed` runs (the oldest created at
/// `oldest`) of `total`: the next page, or past the cap a window ending at the oldest run
/// listed (it is listed again there; a second before when a whole window fell in that second).
fn next_cursor(
    at: &Cursor,
    listed: usize,
    more: bool,
    total: usize,
    oldest: Option<String>,
) -> Option<Cursor> {
    let shown = (at.page as usize - 1) * PER_PAGE + listed;
    let capped = shown < total && (!more || shown >= CAP);
    if !capped {
        return more.then(|| Cursor {
            page: at.page + 1,
            until: at.until.clone(),
            oldest,
        });
    }
    let mut until = oldest?;
    if at.until.as_ref() == Some(&until) {
        until = format_time_ms(parse_time_ms(Some(until.as_str()))? - 1000);
    }
    Some(Cursor {
        page: 1,
        until: Some(until),
        oldest: None,
    })
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
        at: &Cursor,
    ) -> Result<HistoryPage, PlatformError> {
        let ev = FailureEvent {
            platform: Some(Platform::Github),
            repository: repository.to_string(),
            ..Default::default()
        };
        let path = format!(
            "{}/actions/runs?created={}&per_page={PER_PAGE}&page={}",
            repo_path(&ev)?,
            encode(&created(since_ms, at.until.as_deref())),
            at.page
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
        let runs = &body.workflow_runs;
        let listed: Vec<String> = runs.iter().map(|r| r.id.to_string()).collect();
        let oldest = runs
            .iter()
            .filter_map(|r| r.created_at.clone())
            .chain(at.oldest.clone())
            .min_by_key(|t| parse_time_ms(Some(t.as_str())));
        let next = next_cursor(at, listed.len(), more, body.total_count, oldest);
        let greens = runs
            .iter()
            .filter(|r| r.conclusion.as_deref() == Some("success"))
            .filter_map(|r| {
                Some(PastGreen {
                    workflow: r.name.clone()?,
                    commit: OnCommit::of(r.head_branch.as_ref(), r.head_sha.as_ref())?,
                    finished_at_ms: parse_time_ms(r.updated_at.as_deref()),
                })
            })
            .collect();
        let runs = body
            .workflow_runs
            .into_iter()
            .filter(|r| r.run_attempt.unwrap_or(1) > 1 && r.status.as_deref() == Some("completed"))
            .map(|r| PastRun {
                attempts: r.run_attempt.unwrap_or(1),
                seen: r.updated_at.clone().unwrap_or_default(),
                event: run_event(repository.to_string(), r),
            })
            .collect();
        Ok(HistoryPage {
            runs,
            listed,
            greens,
            next,
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
        assert_eq!(created(1_764_576_000_000, None), ">=2025-12-01T08:00:00Z");
        assert_eq!(
            created(1_764_576_000_000, Some("2025-12-02T00:00:00Z")),
            "2025-12-01T08:00:00Z..2025-12-02T00:00:00Z"
        );
    }

    #[test]
    fn past_the_cap_the_listing_goes_on_in_an_older_window() {
        let at = |page, until: Option<&str>| Cursor {
            page,
            until: until.map(String::from),
            oldest: None,
        };
        let t = |s: &str| Some(s.to_string());
        // Under the cap: page after page, then the end.
        let next = next_cursor(&at(1, None), 100, true, 150, t("2025-12-05T00:00:00Z"));
        assert_eq!(next.map(|c| c.page), Some(2));
        assert_eq!(next_cursor(&at(2, None), 50, false, 150, None), None);
        // The 10th page reaches GitHub's 1,000: a window up to the oldest run listed.
        let next = next_cursor(&at(10, None), 100, true, 1500, t("2025-12-05T00:00:00Z"));
        assert_eq!(next, Some(at(1, Some("2025-12-05T00:00:00Z"))));
        // A smaller cap shows as a last page short of the total.
        let next = next_cursor(&at(1, None), 50, false, 221, t("2025-12-04T00:00:00Z"));
        assert_eq!(next, Some(at(1, Some("2025-12-04T00:00:00Z"))));
        // A whole window in one second: the next one ends a second before.
        let same = at(1, Some("2025-12-04T00:00:00Z"));
        let next = next_cursor(&same, 50, false, 221, t("2025-12-04T00:00:00Z"));
        assert_eq!(next, Some(at(1, Some("2025-12-03T23:59:59Z"))));
    }
}
