//! The healing worker: takes jobs from the durable queue and moves sessions through
//! analyze → plan → gate → act → verify. Every step is idempotent, because a job whose worker
//! died is taken again.

use crate::strategies;
use crate::Shared;
use pipeguard_core::analysis::{Diagnosis, Hints};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::learning::{self, Learned};
use pipeguard_core::policy::{Capabilities, Decision, Strategy};
use pipeguard_core::Category;
use pipeguard_platforms::{Ci, JobLog, PlatformError, RunState};
use pipeguard_store::{now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Transition};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;

/// Why a job did not finish.
enum JobError {
    /// Try again later (platform 5xx, timeouts, run still in progress).
    Later(String, Duration),
    /// The session cannot go on; it is marked with the reason.
    Fatal(String),
}

impl From<pipeguard_store::StoreError> for JobError {
    fn from(e: pipeguard_store::StoreError) -> Self {
        JobError::Later(format!("store: {e}"), Duration::from_secs(5))
    }
}

impl From<PlatformError> for JobError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Transient(m) => JobError::Later(m, Duration::from_secs(10)),
            other => JobError::Fatal(other.to_string()),
        }
    }
}

pub async fn run(st: Shared, mut shutdown: watch::Receiver<bool>) {
    let lease = st.config.worker.lease_seconds as i64 * 1000;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let job = match st.store.claim(lease).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("cannot claim work: {e}");
                None
            }
        };
        let Some(job) = job else {
            // Sleep until the next due job, a wake-up from intake, or shutdown.
            let wait = match st.store.next_due().await {
                Ok(Some(t)) => (t - now_ms()).clamp(10, 1000) as u64,
                _ => 1000,
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {},
                _ = st.worker_wake.notified() => {},
                _ = shutdown.changed() => {},
            }
            continue;
        };
        // A panic in one job (a bug) must not stop the worker: it fails that job only.
        let (id, session) = (job.id, job.session_id.clone());
        if let Err(e) = tokio::spawn(handle(st.clone(), job)).await {
            tracing::error!(job = id, session = %session, "job panicked: {e}");
            let _ = st
                .store
                .fail_job(id, "internal error: the job panicked")
                .await;
        }
    }
}

async fn handle(st: Shared, job: Job) {
    let st = &st;
    tracing::debug!(job = job.id, kind = %job.kind, session = %job.session_id, "job");
    let result = match job.kind.as_str() {
        "analyze" => analyze(st, &job).await,
        "execute" => execute(st, &job).await,
        "outcome" => outcome_job(st, &job).await,
        "verify" => verify(st, &job).await,
        "notify" => notify(st, &job).await,
        "passed_later" => passed_later(st, &job).await,
        other => Err(JobError::Fatal(format!("unknown job kind {other:?}"))),
    };
    let done = match result {
        Ok(()) => st.store.finish_job(job.id).await,
        Err(JobError::Later(msg, delay)) if job.tries < st.config.worker.max_job_tries as i64 => {
            tracing::warn!(session = %job.session_id, "{msg}; trying again in {delay:?}");
            st.store
                .retry_job(job.id, &msg, now_ms() + delay.as_millis() as i64)
                .await
        }
        // A channel that stays down loses that message; the session is not at fault.
        Err(JobError::Later(msg, _)) | Err(JobError::Fatal(msg)) if job.kind == "notify" => {
            tracing::error!(session = %job.session_id, "notification failed: {msg}");
            st.store.fail_job(job.id, &msg).await
        }
        Err(JobError::Later(msg, _)) | Err(JobError::Fatal(msg)) => {
            tracing::error!(session = %job.session_id, "{} failed: {msg}", job.kind);
            let reason = format!("{}: {msg}", job.kind);
            let _ = st
                .store
                .update_session(
                    &job.session_id,
                    Transition {
                        from: &OPEN,
                        to: S::Failed,
                        message: &reason,
                    },
                    SessionUpdate {
                        reason: Some(reason.clone()),
                        finished_at: Some(now_ms()),
                        ..Default::default()
                    },
                )
                .await;
            st.store.fail_job(job.id, &msg).await
        }
    };
    if let Err(e) = done {
        tracing::error!("cannot record job {}: {e}", job.id);
    }
    if job.kind != "notify" && !st.config.notify.is_empty() {
        if let Err(e) = queue_notifications(st, &job.session_id).await {
            tracing::error!(session = %job.session_id, "cannot queue notifications: {e}");
        }
    }
}

/// Queues one message per interested channel when the session reached a status people
/// must hear about, once per status (the action record makes it idempotent).
async fn queue_notifications(st: &Shared, id: &str) -> Result<(), pipeguard_store::StoreError> {
    let Some(s) = st.store.get_session(id).await? else {
        return Ok(());
    };
    let status = s.status.as_str();
    let channels: Vec<usize> = (0..st.config.notify.len())
        .filter(|&i| st.config.notify[i].wants(status, &s.repository))
        .collect();
    if channels.is_empty()
        || !st
            .store
            .claim_action(id, 0, &format!("notify:{status}"), "notify")
            .await?
    {
        return Ok(());
    }
    for i in channels {
        if let Err(e) = st
            .store
            .enqueue(
                id,
                "notify",
                &json!({"channel": i, "status": status}),
                now_ms(),
            )
            .await
        {
            // Let the next job queue them again rather than lose them.
            st.store
                .release_action(id, 0, &format!("notify:{status}"))
                .await?;
            return Err(e);
        }
    }
    st.store
        .finish_action(id, 0, &format!("notify:{status}"), "done", "queued")
        .await?;
    Ok(())
}

async fn notify(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    let Some(ch) = job.payload["channel"]
        .as_u64()
        .and_then(|i| st.config.notify.get(i as usize))
    else {
        return Ok(());
    };
    let status = job.payload["status"].as_str().unwrap_or(s.status.as_str());
    st.notifier
        .send(ch, &s, status)
        .await
        .map_err(|e| match e {
            PlatformError::Transient(m) => JobError::Later(m, Duration::from_secs(30)),
            other => JobError::Fatal(other.to_string()),
        })?;
    tracing::info!(session = %s.id, channel = %ch.kind, "notified");
    Ok(())
}

const OPEN: [S; 6] = [
    S::Received,
    S::Analyzing,
    S::Planned,
    S::AwaitingApproval,
    S::Executing,
    S::Verifying,
];

fn ci_for<'a>(st: &'a Shared, s: &SessionRecord) -> Option<&'a dyn Ci> {
    st.ci(Platform::parse(&s.platform)?, &s.repository)
}

async fn load(st: &Shared, id: &str) -> Result<SessionRecord, JobError> {
    st.store
        .get_session(id)
        .await?
        .ok_or_else(|| JobError::Fatal(format!("session {id} vanished")))
}

/// A failed job with its own diagnosis.
struct JobDiagnosis {
    job: FailedJob,
    diagnosis: Diagnosis,
}

/// Chooses the session-level diagnosis: a job that needs a human wins, since the run cannot
/// go green without one; otherwise the least confident transient job speaks for the run.
fn combine(jobs: &[JobDiagnosis]) -> Option<&Diagnosis> {
    jobs.iter()
        .map(|j| &j.diagnosis)
        .find(|d| !d.transient)
        .or_else(|| {
            jobs.iter()
                .map(|j| &j.diagnosis)
                .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
        })
}

async fn analyze(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if !matches!(s.status, S::Received | S::Analyzing) {
        return Ok(());
    }
    if s.status == S::Received {
        st.store
            .transition(
                &s.id,
                Transition {
                    from: &[S::Received],
                    to: S::Analyzing,
                    message: "fetching logs",
                },
            )
            .await?;
    }
    let ev = &s.event;
    let ci = ci_for(st, &s);
    let logs: Vec<JobLog> = match (ci, &ev.log) {
        (_, Some(log)) => vec![JobLog {
            job: ev.jobs.first().cloned().unwrap_or_default(),
            log: log.clone().into_bytes(),
        }],
        (Some(ci), None) => {
            // A job can fail while others still run; re-runs are only possible once the run is done.
            if let RunState::InProgress { attempt } = ci.run_state(ev).await? {
                if attempt == s.event.attempt {
                    // From when the session began following this run.
                    let waited = now_ms() - s.created_at.max(ev.started_at_ms.unwrap_or(0));
                    if waited > st.config.worker.wait_limit_seconds as i64 * 1000 {
                        return Err(JobError::Fatal("the run did not complete in time".into()));
                    }
                    return requeue(st, job, "run still in progress", Duration::from_secs(15))
                        .await;
                }
            }
            ci.failed_logs(ev).await?
        }
        (None, None) => vec![],
    };
    // Scanning a large log is CPU work: keep it off the async threads serving webhooks.
    let shared = st.clone();
    let diagnosed: Vec<JobDiagnosis> = tokio::task::spawn_blocking(move || {
        logs.into_iter()
            .map(|l| JobDiagnosis {
                diagnosis: shared.analyzer.analyze_with(
                    &l.log,
                    &Hints {
                        exit_code: None,
                        platform_reason: l.job.platform_reason.clone(),
                    },
                ),
                job: l.job,
            })
            .collect()
    })
    .await
    .map_err(|e| JobError::Fatal(format!("analysis failed: {e}")))?;
    let mut diagnosed = diagnosed;
    crate::learned::refine(
        st,
        &s.repository,
        diagnosed.iter_mut().map(|d| &mut d.diagnosis),
    )
    .await;
    let Some(diag) = combine(&diagnosed).cloned() else {
        let reason = "no failed job or log found for this run attempt".to_string();
        st.store
            .update_session(
                &s.id,
                Transition {
                    from: &[S::Analyzing],
                    to: S::Escalated,
                    message: &reason,
                },
                SessionUpdate {
                    reason: Some(reason.clone()),
                    category: Some(Category::Unknown.to_string()),
                    finished_at: Some(now_ms()),
                    ..Default::default()
                },
            )
            .await?;
        return Ok(());
    };
    let transient_jobs: Vec<FailedJob> = diagnosed
        .iter()
        .filter(|d| d.diagnosis.transient)
        .map(|d| d.job.clone())
        .collect();
    let genuine: Vec<&JobDiagnosis> = diagnosed
        .iter()
        .filter(|d| !d.diagnosis.transient)
        .collect();
    let policy = st.policy_for(platform_of(&s), &s.repository).clone();
    let caps = capabilities(st, &s, ci).await?;
    let mut plan_event = ev.clone();
    plan_event.jobs = diagnosed.iter().map(|d| d.job.clone()).collect();
    // Plan for what can be healed; genuine failures are reported beside it.
    let plan_diag = if genuine.is_empty() || transient_jobs.is_empty() {
        diag.clone()
    } else {
        diagnosed
            .iter()
            .find(|d| d.diagnosis.transient)
            .map(|d| d.diagnosis.clone())
            .unwrap_or(diag.clone())
    };
    plan_event
        .jobs
        .retain(|j| transient_jobs.is_empty() || transient_jobs.iter().any(|t| t.id == j.id));
    let mut plan = policy.plan(&plan_diag, &plan_event, &caps, s.heal_attempts as u32);
    if plan.strategy.acts() {
        // Outcomes of earlier sessions with the same failure can overrule the built-in choice.
        let learned = Learned {
            fingerprint: st
                .store
                .fingerprint_stats(&plan_diag.fingerprint, plan.strategy.as_str())
                .await?,
            category: st
                .store
                .category_stats(
                    &s.platform,
                    &s.repository,
                    &plan_diag.category.to_string(),
                    plan.strategy.as_str(),
                )
                .await?,
        };
        plan = learning::apply(plan, &learned);
    }
    crate::flaky::adjust_plan(&plan_diag, &mut plan);
    strategies::add_fixes(st, &s, plan_diag.category, &mut plan);
    let mixed = !genuine.is_empty() && !transient_jobs.is_empty();
    if mixed {
        plan.reason = format!(
            "{}; job(s) {} need a human",
            plan.reason,
            genuine
                .iter()
                .map(|g| format!("{} ({})", g.job.name, g.diagnosis.category))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let per_job: Vec<Value> = diagnosed
        .iter()
        .map(|d| json!({"job": d.job, "diagnosis": d.diagnosis}))
        .collect();
    let mut diagnosis_json = serde_json::to_value(&diag).unwrap_or(Value::Null);
    diagnosis_json["jobs"] = json!(per_job);
    let plan_json = json!({
        "plan": plan,
        // What the plan heals (in a mixed run, the transient jobs' cause): its fixes run.
        "category": plan_diag.category,
        "jobs": transient_jobs,
        "all_failed": genuine.is_empty(),
        "mixed": mixed,
    });
    let (to, message) = match plan.decision {
        Decision::Act => (S::Planned, "plan ready"),
        Decision::AwaitApproval => (S::AwaitingApproval, "waiting for a human to approve"),
        Decision::Escalate => (S::Escalated, "escalated to a human"),
        Decision::Skip => (S::Skipped, "nothing to heal"),
    };
    let terminal = to.is_terminal();
    let moved = st
        .store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Analyzing],
                to,
                message,
            },
            SessionUpdate {
                category: Some(diag.category.to_string()),
                confidence: Some(diag.confidence),
                fingerprint: Some(diag.fingerprint.clone()),
                // An escalation after a heal keeps the strategy that was tried, so learning
                // counts it against that strategy.
                strategy: (plan.decision != Decision::Escalate || s.heal_attempts == 0)
                    .then(|| plan.strategy.as_str().to_string()),
                transient: Some(diag.transient),
                diagnosis: Some(diagnosis_json),
                plan: Some(plan_json),
                reason: Some(plan.reason.clone()),
                finished_at: terminal.then(now_ms),
                ..Default::default()
            },
        )
        .await?;
    tracing::info!(session = %s.id, category = %diag.category, decision = ?plan.decision, "{}", plan.reason);
    crate::flaky::record_outcome(st, &s.id).await;
    if moved && plan.decision == Decision::Act {
        let delay = plan
            .steps
            .iter()
            .map(|x| x.delay_seconds)
            .max()
            .unwrap_or(0);
        st.store
            .enqueue(&s.id, "execute", &json!({}), now_ms() + delay as i64 * 1000)
            .await?;
    }
    Ok(())
}

async fn requeue(st: &Shared, job: &Job, why: &str, after: Duration) -> Result<(), JobError> {
    // A fresh job, so waiting does not use up the tries meant for errors.
    st.store
        .enqueue(
            &job.session_id,
            &job.kind,
            &job.payload,
            now_ms() + after.as_millis() as i64,
        )
        .await?;
    tracing::debug!(session = %job.session_id, "{why}");
    Ok(())
}

async fn execute(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if s.status != S::Planned && s.status != S::Executing {
        return Ok(());
    }
    let Some(ci) = ci_for(st, &s) else {
        return Err(JobError::Fatal(format!(
            "no executor for platform {}",
            s.platform
        )));
    };
    let plan = s.plan.clone().unwrap_or(Value::Null);
    let jobs: Vec<FailedJob> = serde_json::from_value(plan["jobs"].clone()).unwrap_or_default();
    let all_failed = plan["all_failed"].as_bool().unwrap_or(true);
    let mixed = plan["mixed"].as_bool().unwrap_or(false);
    let attempt = s.heal_attempts + 1;
    let strategy = s
        .strategy
        .as_deref()
        .and_then(Strategy::parse)
        .unwrap_or(Strategy::Retry);
    if !st
        .store
        .claim_action(&s.id, attempt, "run", strategy.as_str())
        .await?
    {
        // Already called for this heal attempt: a crashed worker's job taken again.
        return resume_interrupted(st, &s, attempt, mixed).await;
    }
    st.store
        .transition(
            &s.id,
            Transition {
                from: &[S::Planned],
                to: S::Executing,
                message: "re-running",
            },
        )
        .await?;
    let acted = match strategies::run_fixes(st, &s, attempt).await {
        Ok(()) => strategies::act(st, &s, ci, strategy, &jobs, all_failed).await,
        Err(e) => Err(e),
    };
    match acted {
        Ok(strategies::Acted {
            detail,
            new_run,
            expects_new_run,
        }) => {
            if expects_new_run && new_run.is_none() {
                st.store
                    .finish_action(&s.id, attempt, "run", "done", &detail)
                    .await?;
                return escalate_executing(
                    st,
                    &s,
                    "a new run was started but the platform gave no id to follow it; a human should watch it",
                )
                .await;
            }
            if let Some(run_id) = new_run {
                // From now on the session verifies and diagnoses the run the heal started.
                let mut next = s.event.clone();
                next.run_id = run_id;
                next.attempt = 0;
                next.jobs.clear();
                next.url = None;
                next.log = None;
                next.started_at_ms = Some(now_ms());
                next.finished_at_ms = None;
                st.store.follow_run(&s.id, platform_of(&s), &next).await?;
            }
            st.store
                .finish_action(&s.id, attempt, "run", "done", &detail)
                .await?;
            called(st, &s, attempt, mixed).await?;
            tracing::info!(session = %s.id, attempt, "{detail}");
            Ok(())
        }
        Err(e) => {
            let transient = matches!(e, PlatformError::Transient(_));
            st.store
                .finish_action(
                    &s.id,
                    attempt,
                    "run",
                    if transient { "error" } else { "refused" },
                    &e.to_string(),
                )
                .await?;
            // A call that may have started a run is not repeated blindly: it could start two.
            if transient && strategies::starts_new_run(st, &s, ci, strategy) {
                return escalate_executing(
                    st,
                    &s,
                    &format!("the platform did not confirm the new run ({e}); a human should check whether it started"),
                )
                .await;
            }
            if transient {
                // Let the next try call again: the platform did not take this one.
                st.store.release_action(&s.id, attempt, "run").await?;
                st.store
                    .transition(
                        &s.id,
                        Transition {
                            from: &[S::Executing],
                            to: S::Planned,
                            message: "platform error; will retry",
                        },
                    )
                    .await?;
                return Err(e.into());
            }
            let reason = format!("re-run refused: {e}");
            st.store
                .update_session(
                    &s.id,
                    Transition {
                        from: &[S::Executing],
                        to: S::Escalated,
                        message: &reason,
                    },
                    SessionUpdate {
                        reason: Some(reason.clone()),
                        finished_at: Some(now_ms()),
                        ..Default::default()
                    },
                )
                .await?;
            Ok(())
        }
    }
}

async fn outcome_job(st: &Shared, job: &Job) -> Result<(), JobError> {
    let p = &job.payload;
    let attempt = p["attempt"].as_i64().unwrap_or(0);
    let success = p["success"].as_bool().unwrap_or(false);
    let finished = p["finished_at_ms"].as_i64();
    let event: Option<FailureEvent> = serde_json::from_value(p["event"].clone()).ok();
    outcome(st, &job.session_id, attempt, success, finished, event).await
}

/// Closes or continues a session once the re-run attempt finished.
async fn outcome(
    st: &Shared,
    id: &str,
    attempt: i64,
    success: bool,
    finished_at: Option<i64>,
    event: Option<FailureEvent>,
) -> Result<(), JobError> {
    let s = load(st, id).await?;
    if !matches!(s.status, S::Verifying | S::Executing) || attempt <= s.event.attempt as i64 {
        return Ok(());
    }
    // A run the heal started counts its own attempts; the session counts on from its own.
    let session_attempt = if s.event.run_id == s.run_id {
        attempt
    } else {
        s.current_attempt + 1
    };
    let now = now_ms();
    if success {
        let ttg = finished_at.unwrap_or(now) - s.failed_at;
        let msg = format!("attempt {attempt} succeeded");
        st.store
            .update_session(
                id,
                Transition {
                    from: &[S::Verifying, S::Executing],
                    to: S::Healed,
                    message: &msg,
                },
                SessionUpdate {
                    current_attempt: Some(session_attempt),
                    finished_at: Some(finished_at.unwrap_or(now)),
                    time_to_green_ms: Some(ttg.max(0)),
                    reason: Some(format!(
                        "healed by {} on attempt {attempt}",
                        s.strategy.as_deref().unwrap_or("retry")
                    )),
                    ..Default::default()
                },
            )
            .await?;
        crate::flaky::record_outcome(st, id).await;
        tracing::info!(session = %id, attempt, "healed");
        return Ok(());
    }
    let mut ev = event.unwrap_or_else(|| s.event.clone());
    ev.attempt = attempt as u32;
    ev.jobs.clear();
    if s.heal_attempts >= st.policy_for(platform_of(&s), &s.repository).max_attempts as i64 {
        let reason = format!("still failing after {} heal attempt(s)", s.heal_attempts);
        st.store
            .update_session(
                id,
                Transition {
                    from: &[S::Verifying, S::Executing],
                    to: S::Failed,
                    message: &reason,
                },
                SessionUpdate {
                    current_attempt: Some(session_attempt),
                    reason: Some(reason.clone()),
                    finished_at: Some(now),
                    event: Some(ev),
                    ..Default::default()
                },
            )
            .await?;
        crate::flaky::record_outcome(st, id).await;
        return Ok(());
    }
    // Diagnose the new attempt afresh: the second failure may have another cause.
    let msg = format!("attempt {attempt} failed; diagnosing it");
    let moved = st
        .store
        .update_session(
            id,
            Transition {
                from: &[S::Verifying, S::Executing],
                to: S::Analyzing,
                message: &msg,
            },
            SessionUpdate {
                current_attempt: Some(session_attempt),
                event: Some(ev),
                ..Default::default()
            },
        )
        .await?;
    if moved {
        st.store.enqueue(id, "analyze", &Value::Null, now).await?;
    }
    Ok(())
}

/// Polls the platform for the outcome of a re-run, for when no webhook reports it.
async fn verify(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if s.status != S::Verifying {
        return Ok(());
    }
    let Some(ci) = ci_for(st, &s) else {
        return Ok(());
    };
    match ci.run_state(&s.event).await? {
        RunState::Completed {
            attempt,
            success,
            finished_at_ms,
        } if attempt > s.event.attempt => {
            outcome(st, &s.id, attempt as i64, success, finished_at_ms, None).await
        }
        _ => {
            if now_ms() - s.updated_at > st.config.worker.wait_limit_seconds as i64 * 1000 {
                return Err(JobError::Fatal(
                    "no outcome of the re-run arrived in time".into(),
                ));
            }
            let poll = Duration::from_secs(st.config.worker.verify_poll_seconds.max(1));
            requeue(st, job, "re-run not finished", poll).await
        }
    }
}

fn platform_of(s: &SessionRecord) -> Platform {
    Platform::parse(&s.platform).unwrap_or(Platform::Generic)
}

/// What can be done for this session: the platform's own abilities, widened by what the
/// repository's configuration maps (a bigger runner, a cache-key variable, a reset), less
/// what this run already had.
async fn capabilities(
    st: &Shared,
    s: &SessionRecord,
    ci: Option<&dyn Ci>,
) -> Result<Capabilities, JobError> {
    let mut caps = ci.map(|c| c.capabilities(&s.event)).unwrap_or_default();
    if let Some(ci) = ci {
        strategies::widen(st, s, ci, &mut caps);
    }
    let mut used: Vec<String> = st
        .store
        .actions(&s.id)
        .await?
        .into_iter()
        .filter(|a| a.target == "run" && a.status == "done")
        .map(|a| a.kind)
        .collect();
    // A run the heal started, or a sibling workflow of it, is the same commit: it must not
    // scale or clear again (that is how a heal could loop).
    if let Some(sha) = s.head_sha.as_deref().filter(|x| !x.is_empty()) {
        used.extend(
            st.store
                .strategies_used_on_commit(&s.platform, &s.repository, sha)
                .await?,
        );
    }
    caps.used = used.iter().filter_map(|k| Strategy::parse(k)).collect();
    Ok(caps)
}

/// A run handed to people passed on a later attempt of the same commit: by definition its
/// failing tests are flaky, which the next failure of those tests will benefit from.
async fn passed_later(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if !matches!(s.status, S::Escalated | S::Failed) {
        return Ok(());
    }
    crate::flaky::human_says_flaky(st, &s).await?;
    let attempt = job.payload["attempt"].as_i64().unwrap_or(0);
    st.store
        .note(
            &s.id,
            s.status,
            &format!("attempt {attempt} passed on the same commit: its failing tests were flaky"),
        )
        .await?;
    Ok(())
}

/// Moves a session on once its heal attempt's platform call is done: to verifying (with a
/// poll of the outcome), or escalated when the run's other jobs need a human.
async fn called(st: &Shared, s: &SessionRecord, attempt: i64, mixed: bool) -> Result<(), JobError> {
    let (to, message) = if mixed {
        (
            S::Escalated,
            "transient jobs re-run; the others need a human",
        )
    } else {
        (S::Verifying, "re-run requested; waiting for the outcome")
    };
    let moved = st
        .store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Planned, S::Executing],
                to,
                message,
            },
            SessionUpdate {
                heal_attempts: Some(attempt),
                finished_at: mixed.then(now_ms),
                ..Default::default()
            },
        )
        .await?;
    if moved && !mixed {
        let poll = st.config.worker.verify_poll_seconds as i64 * 1000;
        st.store
            .enqueue(&s.id, "verify", &json!({}), now_ms() + poll)
            .await?;
    }
    Ok(())
}

async fn escalate_executing(st: &Shared, s: &SessionRecord, reason: &str) -> Result<(), JobError> {
    st.store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Planned, S::Executing],
                to: S::Escalated,
                message: reason,
            },
            SessionUpdate {
                reason: Some(reason.to_string()),
                finished_at: Some(now_ms()),
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}

/// The heal attempt's platform call was claimed before: either it finished and the process
/// stopped before moving the session on (finish the move), or it was interrupted mid-call and
/// nobody knows whether the platform acted (a human must look; calling again could act twice).
async fn resume_interrupted(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    mixed: bool,
) -> Result<(), JobError> {
    if !matches!(s.status, S::Planned | S::Executing) {
        return Ok(());
    }
    let action = st
        .store
        .actions(&s.id)
        .await?
        .into_iter()
        .find(|a| a.attempt == attempt && a.target == "run");
    match action.map(|a| a.status) {
        Some(status) if status == "done" => called(st, s, attempt, mixed).await,
        _ => {
            escalate_executing(
                st,
                s,
                "a platform call was interrupted (the process stopped during it); check whether it ran before re-running by hand",
            )
            .await
        }
    }
}
