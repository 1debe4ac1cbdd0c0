//! Outcomes of heals: a later attempt's delivery or a poll of the platform closes the session
//! (healed, failed) or diagnoses the new failure; a run handed to people that passed later
//! makes its failing tests flaky.

use super::{ci_for, load, platform_of, requeue, JobError};
use crate::Shared;
use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::RunState;
use pipeguard_store::{now_ms, Job, SessionStatus as S, SessionUpdate, Task, Transition};
use std::time::Duration;

/// Closes or continues a session once the re-run attempt finished.
pub(super) async fn outcome(
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
    let plan = s.plan.clone();
    if let Some(ours) = plan.as_ref().and_then(|p| p.awaiting_attempt) {
        if attempt != ours as i64 {
            let note = format!(
                "attempt {attempt} finished, but the heal started attempt {ours}: still waiting for it"
            );
            st.store.note(id, s.status, &note).await?;
            return Ok(());
        }
    }
    if plan.as_ref().is_some_and(|p| !p.queued.is_empty()) {
        return next_job(st, &s, attempt, event).await;
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
        // Platforms without run attempts report a stand-in number; people count on.
        let shown = if attempt >= pipeguard_platforms::OUTCOME_ATTEMPT as i64 {
            s.current_attempt + 1
        } else {
            attempt
        };
        let msg = format!("attempt {shown} succeeded");
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
                        "healed by {} on attempt {shown}",
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
        st.store.enqueue(id, &Task::Analyze, now).await?;
    }
    Ok(())
}

/// The attempt that re-ran one transient job completed: the next queued job goes now (the
/// platform accepts a re-run again), unless the heal-attempt limit is reached.
async fn next_job(
    st: &Shared,
    s: &pipeguard_store::SessionRecord,
    attempt: i64,
    event: Option<FailureEvent>,
) -> Result<(), JobError> {
    let mut plan = s
        .plan
        .clone()
        .unwrap_or_else(|| unreachable!("checked by the caller"));
    let mut ev = event.unwrap_or_else(|| s.event.clone());
    ev.attempt = attempt as u32;
    ev.jobs = s.event.jobs.clone();
    let limit = st.policy_for(platform_of(s), &s.repository).max_attempts as i64;
    if s.heal_attempts >= limit {
        let names: Vec<&str> = plan.queued.iter().map(|j| j.name.as_str()).collect();
        let reason = format!(
            "reached the limit of {limit} heal attempt(s) with transient job(s) {} not re-run; the others need a human",
            names.join(", ")
        );
        st.store
            .update_session(
                &s.id,
                Transition {
                    from: &[S::Verifying, S::Executing],
                    to: S::Escalated,
                    message: &reason,
                },
                SessionUpdate {
                    reason: Some(reason.clone()),
                    finished_at: Some(now_ms()),
                    current_attempt: Some(attempt),
                    event: Some(ev),
                    ..Default::default()
                },
            )
            .await?;
        return Ok(());
    }
    plan.jobs = std::mem::take(&mut plan.queued);
    plan.awaiting_attempt = None;
    let msg = format!("attempt {attempt} completed; re-running the next transient job");
    let moved = st
        .store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Verifying, S::Executing],
                to: S::Planned,
                message: &msg,
            },
            SessionUpdate {
                current_attempt: Some(attempt),
                event: Some(ev),
                plan: Some(plan),
                ..Default::default()
            },
        )
        .await?;
    if moved {
        st.store
            .enqueue(&s.id, &Task::Execute { approved: false }, now_ms())
            .await?;
    }
    Ok(())
}

/// Polls the platform for the outcome of a re-run, for when no webhook reports it.
pub(super) async fn verify(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if s.status != S::Verifying {
        return Ok(());
    }
    let Some(ci) = ci_for(st, &s) else {
        return Ok(());
    };
    let poll = Duration::from_secs(st.config.worker.verify_poll_seconds.max(1));
    let state = match s.plan.as_ref().and_then(|p| p.awaiting_attempt) {
        Some(ours) => ci.attempt_state(&s.event, ours).await,
        None => ci.run_state(&s.event).await,
    };
    let state = match state {
        Ok(state) => state,
        // The early look at a run the heal just started (see `execute::called`) may come
        // before the platform shows it: the regular polls decide.
        Err(e) if now_ms() - s.updated_at < poll.as_millis() as i64 => {
            tracing::debug!("early look at the new run: {e}");
            return requeue(st, job, "the new run is not visible yet", poll).await;
        }
        Err(e) => return Err(e.into()),
    };
    match state {
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
            requeue(st, job, "re-run not finished", poll).await
        }
    }
}

/// A run handed to people passed on a later attempt of the same commit: by definition its
/// failing tests are flaky, which the next failure of those tests will benefit from.
pub(super) async fn passed_later(st: &Shared, job: &Job, attempt: i64) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if !matches!(s.status, S::Escalated | S::Failed) {
        return Ok(());
    }
    crate::flaky::human_says_flaky(st, &s).await?;
    st.store
        .note(
            &s.id,
            s.status,
            &format!("attempt {attempt} passed on the same commit: its failing tests were flaky"),
        )
        .await?;
    Ok(())
}
