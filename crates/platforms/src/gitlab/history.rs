//! Past pipelines for `pipeguard import` (reads only): the project's finished pipelines
//! updated since a date, 100 a page (`GET /projects/:id/pipelines?updated_after=…&scope=finished`,
//! the next page named by `x-next-page`), and each one's jobs with the retried ones
//! (`…/pipelines/:id/jobs?include_retried=true`): a job name listed more than once was
//! retried by a person; its earliest failed run is the failure, the run after it the outcome.
//! The listing cannot tell which pipelines were retried, so each is read once: the import
//! remembers those with nothing to measure until their `updated_at` changes.

use super::client::{project_api, ApiJob, GitlabClient};
use crate::api::{encode, link_next, read_json};
use crate::{
    format_time_ms, parse_time_ms, Cursor, History, HistoryPage, JobLog, OnCommit, PastFailure,
    PastGreen, PastRun, PlatformError,
};
use async_trait::async_trait;
use pipeguard_core::event::{FailureEvent, Platform};
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;

const PER_PAGE: usize = 100;

#[derive(Deserialize)]
struct ListedPipeline {
    id: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// A person's retry in a pipeline: the failed runs of the first retried round and the runs
/// that retried them.
struct Retry<'a> {
    /// The failure's attempt: 1 + the retries before it.
    attempt: u32,
    failed: Vec<&'a ApiJob>,
    after: Vec<&'a ApiJob>,
}

fn blocking_failure(j: &ApiJob) -> bool {
    j.status == "failed" && !j.allow_failure
}

/// The first round a person retried: per job name its runs oldest first (ids grow); the
/// earliest failed run with a later run is a failure, the later run its retry. `None` when no
/// failed job was retried.
fn first_retry(jobs: &[ApiJob]) -> Option<Retry<'_>> {
    let mut runs: BTreeMap<&str, Vec<&ApiJob>> = BTreeMap::new();
    for j in jobs {
        runs.entry(j.name.as_str()).or_default().push(j);
    }
    let mut retried = Vec::new();
    for r in runs.values_mut() {
        r.sort_by_key(|j| j.id);
        if let Some(i) = r.iter().position(|j| blocking_failure(j)) {
            if let Some(next) = r.get(i + 1) {
                retried.push((i, r[i], *next));
            }
        }
    }
    let round = retried.iter().map(|(i, _, _)| *i).min()?;
    let (failed, after) = retried
        .into_iter()
        .filter(|(i, _, _)| *i == round)
        .map(|(_, f, a)| (f, a))
        .unzip();
    Some(Retry {
        attempt: round as u32 + 1,
        failed,
        after,
    })
}

/// How the retries ended: `Some(true)` all green, `Some(false)` one failed, `None` no evidence
/// (one was cancelled, skipped or is still running).
fn outcome(after: &[&ApiJob]) -> Option<bool> {
    if after.iter().any(|j| blocking_failure(j)) {
        return Some(false);
    }
    after
        .iter()
        .all(|j| j.status == "success" || (j.allow_failure && j.status == "failed"))
        .then_some(true)
}

fn times<'a>(jobs: &[&'a ApiJob], at: impl Fn(&'a ApiJob) -> Option<&'a String>) -> Vec<i64> {
    jobs.iter()
        .filter_map(|j| parse_time_ms(at(j).map(String::as_str)))
        .collect()
}

fn past_run(repository: &str, p: ListedPipeline) -> PastRun {
    PastRun {
        attempts: 0,
        seen: p.updated_at.clone().unwrap_or_default(),
        event: FailureEvent {
            platform: Some(Platform::Gitlab),
            repository: repository.to_string(),
            run_id: p.id.to_string(),
            attempt: 1,
            workflow: p.git_ref.clone().unwrap_or_default(),
            head_sha: p.sha,
            branch: p.git_ref,
            url: p.web_url,
            started_at_ms: parse_time_ms(p.created_at.as_deref()),
            ..Default::default()
        },
    }
}

#[async_trait]
impl History for GitlabClient {
    async fn page(
        &self,
        repository: &str,
        since_ms: i64,
        at: &Cursor,
    ) -> Result<HistoryPage, PlatformError> {
        let ev = FailureEvent {
            platform: Some(Platform::Gitlab),
            repository: repository.to_string(),
            ..Default::default()
        };
        let path = format!(
            "{}/pipelines?updated_after={}&scope=finished&per_page={PER_PAGE}&page={}",
            project_api(&ev)?,
            encode(&format_time_ms(since_ms)),
            at.page
        );
        let r = self
            .api
            .call("list pipelines", Method::GET, &path, None)
            .await?;
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let next_page = header("x-next-page").and_then(|n| n.trim().parse::<u32>().ok());
        let linked = header("link").and_then(|l| link_next(&l)).is_some();
        let more = next_page.is_some_and(|n| n > at.page) || linked;
        let pipelines: Vec<ListedPipeline> = read_json("list pipelines", r).await?;
        let listed = pipelines.iter().map(|p| p.id.to_string()).collect();
        // A pipeline's workflow is its ref, as a failure delivery names it.
        let greens = pipelines
            .iter()
            .filter(|p| p.status == "success")
            .filter_map(|p| {
                Some(PastGreen {
                    workflow: p.git_ref.clone()?,
                    commit: OnCommit::of(p.git_ref.as_ref(), p.sha.as_ref())?,
                    finished_at_ms: parse_time_ms(p.updated_at.as_deref()),
                })
            })
            .collect();
        // Only a finished pipeline with a failure or a success can hold a measured retry.
        let runs = pipelines
            .into_iter()
            .filter(|p| matches!(p.status.as_str(), "success" | "failed"))
            .map(|p| past_run(repository, p))
            .collect();
        Ok(HistoryPage {
            runs,
            listed,
            greens,
            next: more.then(|| Cursor {
                page: at.page + 1,
                ..at.clone()
            }),
        })
    }

    /// One call for the pipeline's jobs with the retried ones (100 a page), then one per
    /// retried failed job's trace.
    async fn failure(&self, run: &PastRun) -> Result<Option<PastFailure>, PlatformError> {
        let jobs = self
            .jobs(&run.event, "include_retried=true&per_page=100")
            .await?;
        let Some(retry) = first_retry(&jobs) else {
            return Ok(None);
        };
        let Some(green) = outcome(&retry.after) else {
            return Ok(None);
        };
        let mut logs = Vec::with_capacity(retry.failed.len());
        for j in &retry.failed {
            let path = format!("{}/jobs/{}/trace", project_api(&run.event)?, j.id);
            let log = self.api.log_tail("job trace", &path).await?;
            logs.push(JobLog {
                job: j.failed(None),
                log: log.unwrap_or_default(),
            });
        }
        let mut ev = run.event.clone();
        ev.attempt = retry.attempt;
        ev.jobs = logs.iter().map(|l| l.job.clone()).collect();
        ev.started_at_ms = times(&retry.failed, |j| j.started_at.as_ref())
            .into_iter()
            .min()
            .or(ev.started_at_ms);
        ev.finished_at_ms = times(&retry.failed, |j| j.finished_at.as_ref())
            .into_iter()
            .max();
        let failed_at_ms = ev.finished_at_ms.unwrap_or_default();
        // A retry makes its job when the person asks for it.
        let rerun_at_ms = times(&retry.after, |j| j.created_at.as_ref())
            .into_iter()
            .min()
            .unwrap_or(failed_at_ms);
        Ok(Some(PastFailure {
            event: ev,
            logs,
            failed_at_ms,
            rerun_at_ms,
            green,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, name: &str, status: &str) -> ApiJob {
        serde_json::from_value(serde_json::json!({"id": id, "name": name, "status": status}))
            .unwrap()
    }

    #[test]
    fn the_first_retried_failure_and_its_retry_are_found_by_name() {
        // Newest first, as GitLab lists them: test failed, was retried and passed; lint passed.
        let jobs = [
            job(14, "test", "success"),
            job(12, "lint", "success"),
            job(11, "test", "failed"),
        ];
        let r = first_retry(&jobs).unwrap();
        assert_eq!(r.attempt, 1);
        assert_eq!(r.failed.iter().map(|j| j.id).collect::<Vec<_>>(), [11]);
        assert_eq!(r.after.iter().map(|j| j.id).collect::<Vec<_>>(), [14]);
        assert_eq!(outcome(&r.after), Some(true));
        // Nothing retried: nothing to measure, even with a failure.
        assert!(first_retry(&[job(1, "a", "failed"), job(2, "b", "success")]).is_none());
        // A job that passed and was run again is no failure retried.
        assert!(first_retry(&[job(1, "a", "success"), job(2, "a", "success")]).is_none());
    }

    #[test]
    fn a_retry_that_failed_again_or_was_cancelled_says_so() {
        let jobs = [
            job(1, "test", "failed"),
            job(2, "e2e", "failed"),
            job(3, "test", "failed"),
            job(4, "e2e", "canceled"),
            job(5, "test", "success"),
        ];
        let r = first_retry(&jobs).unwrap();
        assert_eq!(r.failed.len(), 2);
        // test failed again: red, whatever became of e2e's retry.
        assert_eq!(outcome(&r.after), Some(false));
        let cancelled = [job(1, "e2e", "failed"), job(2, "e2e", "canceled")];
        assert_eq!(outcome(&first_retry(&cancelled).unwrap().after), None);
    }
}
