//! Bad runners: jobs are counted per runner as deliveries and diagnoses tell; after each
//! diagnosis the runners of the failed jobs are judged against their pool (pure, in core).
//! A runner that turns suspect is reported (log, audit trail, `GET /api/v1/runners`, the
//! metric) and, with `[runners] quarantine = "auto"`, taken out through its platform's API.
//! An operator releases it.

use crate::config::Quarantine;
use crate::Shared;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::planner::RunnerState;
use pipeguard_core::runners::{judge, RunnerJob, THRESHOLDS};
use pipeguard_platforms::Ci;
use pipeguard_store::{now_ms, AuditEntry, RunnerRecord};
use serde_json::json;

/// Where the counts start: the window before now.
fn since() -> i64 {
    now_ms() - THRESHOLDS.window_hours as i64 * 3_600_000
}

/// Counts the jobs a delivery names with their runners. Runs after the delivery is stored,
/// so it never delays or fails intake; an error loses only these counts.
pub async fn record_seen(st: Shared, platform: Platform, jobs: Vec<RunnerJob>) {
    if let Err(e) = st.store.record_runner_jobs(platform.as_str(), &jobs).await {
        tracing::warn!(%platform, "cannot count runner jobs: {e}");
    }
}

/// The runner a diagnosed job ran on: the job's own, else the delivery's job of that id.
fn runner_of(job: &FailedJob, ev: &FailureEvent) -> Option<Runner> {
    job.runner.clone().or_else(|| {
        ev.jobs
            .iter()
            .find(|j| j.id == job.id)
            .and_then(|j| j.runner.clone())
    })
}

/// Counts the run's diagnosed failures against their runners, judges those runners, and
/// returns what the planner needs to know of them. Errors leave healing as it was.
pub async fn after_diagnosis(
    st: &Shared,
    ev: &FailureEvent,
    ci: Option<&dyn Ci>,
    jobs: &[JobDiagnosis],
) -> Vec<RunnerState> {
    let Some(platform) = ev.platform else {
        return vec![];
    };
    let failed: Vec<(RunnerJob, String)> = jobs
        .iter()
        .filter_map(|j| {
            let runner = runner_of(&j.job, ev)?;
            let job = RunnerJob {
                runner,
                job_id: j.job.id.clone(),
                repository: ev.repository.clone(),
                failed: true,
            };
            Some((job, j.diagnosis.category.to_string()))
        })
        .collect();
    if failed.is_empty() {
        return vec![];
    }
    judge_failed(st, platform, ci, &failed)
        .await
        .inspect_err(|e| tracing::warn!(%platform, "cannot judge runners: {e}"))
        .unwrap_or_default()
}

async fn judge_failed(
    st: &Shared,
    platform: Platform,
    ci: Option<&dyn Ci>,
    failed: &[(RunnerJob, String)],
) -> Result<Vec<RunnerState>, pipeguard_store::StoreError> {
    let key = platform.as_str();
    st.store.record_runner_failures(key, failed).await?;
    let pool = st.store.runners(Some(key), since()).await?;
    let counts: Vec<_> = pool.iter().map(|r| r.count.clone()).collect();
    let can_take_out = ci.is_some_and(|c| c.can_take_out_runners());
    let mut out: Vec<RunnerState> = Vec::new();
    for (job, _) in failed {
        if out.iter().any(|r| r.name == job.runner.name) {
            continue;
        }
        let Some(rec) = pool.iter().find(|r| r.count.name == job.runner.name) else {
            continue;
        };
        let v = judge(&rec.count, &counts, &THRESHOLDS);
        let mut state = RunnerState {
            name: rec.count.name.clone(),
            suspect: rec.suspect || v.suspect,
            quarantined: rec.quarantined,
            can_take_out,
        };
        if v.suspect && !rec.suspect {
            let why = format!(
                "{} unrelated failures in {} jobs (p = {:.1e} against the pool's rate {:.3})",
                rec.count.unrelated_failures,
                rec.count.jobs.max(rec.count.failures),
                v.p_value,
                v.pool_rate
            );
            tracing::warn!(%platform, runner = %state.name, "runner is suspect: {why}");
            mark(st, key, &state.name, None, &why, "pipeguard").await?;
        }
        if state.suspect && !state.quarantined && can_take_out {
            if let (Quarantine::Auto, Some(ci)) = (st.config.runners.quarantine, ci) {
                state.quarantined = take_out(st, ci, key, &job.runner, "pipeguard").await?;
            }
        }
        out.push(state);
    }
    Ok(out)
}

/// Records that a runner is suspect (and whether it was taken out), with its audit entry.
async fn mark(
    st: &Shared,
    platform: &str,
    name: &str,
    quarantined: Option<bool>,
    detail: &str,
    actor: &str,
) -> Result<(), pipeguard_store::StoreError> {
    let target = format!("{platform}/{name}");
    let action = if quarantined == Some(true) {
        "runner.quarantined"
    } else {
        "runner.suspect"
    };
    st.store
        .set_runner(pipeguard_store::RunnerState {
            platform,
            name,
            suspect: true,
            quarantined,
            detail,
            audit: AuditEntry::new(actor, action, &target, json!({"detail": detail})),
        })
        .await
}

/// Takes the runner out through the platform's API, once however many ask at a time;
/// `false` when the platform refused, so the runner stays suspect and reported.
pub async fn take_out(
    st: &Shared,
    ci: &dyn Ci,
    platform: &str,
    runner: &Runner,
    actor: &str,
) -> Result<bool, pipeguard_store::StoreError> {
    if !st
        .store
        .claim_runner_quarantine(platform, &runner.name)
        .await?
    {
        return Ok(true);
    }
    match ci.take_out_runner(runner).await {
        Ok(call) => {
            tracing::warn!(platform, runner = %runner.name, "runner taken out: {call}");
            mark(
                st,
                platform,
                &runner.name,
                Some(true),
                &format!("taken out: {call}"),
                actor,
            )
            .await?;
            Ok(true)
        }
        Err(e) => {
            tracing::error!(platform, runner = %runner.name, "cannot take the runner out: {e}");
            let detail = format!("could not be taken out: {e}");
            mark(st, platform, &runner.name, Some(false), &detail, actor).await?;
            Ok(false)
        }
    }
}

/// Every runner with its counts over the window and its state.
pub async fn list(st: &Shared) -> Result<Vec<RunnerRecord>, pipeguard_store::StoreError> {
    st.store.runners(None, since()).await
}

/// Runners suspect now, for the metric.
pub async fn suspect_count(st: &Shared) -> Result<i64, pipeguard_store::StoreError> {
    Ok(list(st).await?.iter().filter(|r| r.suspect).count() as i64)
}
