//! Outcomes of heals: a later attempt's delivery or a poll of the platform closes the session
//! (healed, failed) or diagnoses the new failure; a run handed to people that passed later
//! makes its failing tests flaky.

use super::{ci_for, facts, known_after, load, requeue, JobError};
use crate::Shared;
use pipeguard_core::event::FailureEvent;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::planner::{self, Happened, Next, Step};
use pipeguard_platforms::RunState;
use pipeguard_store::{
    now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};
use std::time::Duration;

/// Closes or continues a session once a later attempt finished, as the planner decides.
pub(super) async fn outcome(
    st: &Shared,
    id: &str,
    attempt: i64,
    success: bool,
    finished_at: Option<i64>,
    event: Option<FailureEvent>,
) -> Result<(), JobError> {
    let s = load(st, id).await?;
    if attempt <= s.event.attempt as i64 {
        return Ok(());
    }
    // Platforms without run attempts report a stand-in number; people count on.
    let shown = if attempt >= pipeguard_platforms::OUTCOME_ATTEMPT as i64 {
        s.current_attempt + 1
    } else {
        attempt
    };
    let happened = Happened::Completed {
        attempt: attempt as u32,
        shown,
        success,
    };
    let known = known_after(st, &s, None);
    let Ok(next) = planner::decide(&facts(st, &s, happened, known)) else {
        return Ok(());
    };
    match next.event {
        Event::Heal => super::decisions::own(st, &s.id, true).await?,
        Event::Rediagnose | Event::GiveUp => super::decisions::own(st, &s.id, false).await?,
        _ => {}
    }
    // A run the heal started counts its own attempts; the session counts on from its own.
    let session_attempt = if s.event.run_id == s.run_id {
        attempt
    } else {
        s.current_attempt + 1
    };
    let mut ev = event.unwrap_or_else(|| s.event.clone());
    ev.attempt = attempt as u32;
    // Transient jobs still queued keep the run's failed jobs (for the next job, or for the
    // people it is handed to); a failed attempt is diagnosed afresh.
    let queued = s.plan.as_ref().is_some_and(|p| !p.queued.is_empty());
    ev.jobs = if queued { s.event.jobs.clone() } else { vec![] };
    let update = SessionUpdate {
        current_attempt: Some(session_attempt),
        event: Some(ev),
        ..Default::default()
    };
    let end = End { finished_at, shown };
    persist(st, &s, next, update, end).await
}

/// When and on which attempt (as people count) the session's run completed.
struct End {
    finished_at: Option<i64>,
    shown: i64,
}

/// Stores the planner's decision on a completed attempt and queues what follows.
async fn persist(
    st: &Shared,
    s: &SessionRecord,
    next: Next,
    mut update: SessionUpdate,
    end: End,
) -> Result<(), JobError> {
    let (id, now) = (s.id.as_str(), now_ms());
    let t = Transition::new(next.event, &next.reason);
    match next.step {
        Step::Wait => {
            st.store.note(id, s.status, &next.reason).await?;
            return Ok(());
        }
        Step::Execute(plan) => {
            update.plan = plan;
            if st.store.update_session(id, t, update).await? {
                let task = Task::Execute { approved: false };
                st.store.enqueue(id, &task, now).await?;
            }
            return Ok(());
        }
        Step::Diagnose => {
            if st.store.update_session(id, t, update).await? {
                st.store.enqueue(id, &Task::Analyze, now).await?;
            }
            return Ok(());
        }
        _ => {}
    }
    update.finished_at = Some(now);
    update.reason = Some(next.reason.clone());
    if next.status == S::Healed {
        let at = end.finished_at.unwrap_or(now);
        update.finished_at = Some(at);
        update.time_to_green_ms = Some((at - s.failed_at).max(0));
        update.reason = Some(format!(
            "healed by {} on attempt {}",
            s.strategy.as_deref().unwrap_or("retry"),
            end.shown
        ));
        update.event = None;
        tracing::info!(session = %id, attempt = end.shown, "healed");
    }
    st.store.update_session(id, t, update).await?;
    crate::flaky::record_outcome(st, id).await;
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
pub(super) async fn passed_later(
    st: &Shared,
    job: &Job,
    attempt: i64,
    finished_at: Option<i64>,
) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if !matches!(s.status, S::Escalated | S::Failed) {
        return Ok(());
    }
    super::decisions::person_passed(st, &s.id, finished_at).await?;
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
