//! The decisions behind readiness: each session's first decision on its failure (would it
//! re-run it?) and what the first re-run after it said — a person's re-run of a run pipeguard
//! only observed, a person's re-run of one it handed over, or pipeguard's own re-run.

use super::{load, JobError};
use crate::Shared;
use pipeguard_core::heal::StoredPlan;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::planner::Mode;
use pipeguard_core::policy::Decision;
use pipeguard_store::{
    now_ms, DecisionRecord, Job, Revision, SessionRecord, SessionStatus as S, SessionUpdate,
    Transition,
};

/// Records the session's decision on its failure; a cancelled run is no decision.
pub(super) async fn record(
    st: &Shared,
    s: &SessionRecord,
    stored: &StoredPlan,
) -> Result<(), JobError> {
    if stored.plan.decision == Decision::Skip {
        return Ok(());
    }
    let mode = stored.facts.as_ref().map(|k| k.mode).unwrap_or_default();
    put(st, s, mode, stored.plan.decision == Decision::Act).await
}

/// Records a failure closed without a plan (no failed job or log found): not re-run.
pub(super) async fn withheld(st: &Shared, s: &SessionRecord, to: S) -> Result<(), JobError> {
    let mode = if to == S::Observed {
        Mode::Observe
    } else {
        Mode::Act
    };
    put(st, s, mode, false).await
}

/// The decision on session `s`'s failure.
pub(super) fn of(s: &SessionRecord, mode: Mode, would_retry: bool) -> DecisionRecord {
    DecisionRecord {
        session_id: s.id.clone(),
        repository: s.repository.clone(),
        platform: s.platform.clone(),
        mode,
        would_retry,
        failed_at: s.failed_at,
        on: Revision {
            workflow: s.workflow.clone(),
            branch: s.event.branch.clone(),
            head_sha: s.head_sha.clone(),
        },
    }
}

async fn put(
    st: &Shared,
    s: &SessionRecord,
    mode: Mode,
    would_retry: bool,
) -> Result<(), JobError> {
    Ok(st.store.put_decision(&of(s, mode, would_retry)).await?)
}

/// Pipeguard's own re-run completed (act mode): evidence for a decision to re-run.
pub(super) async fn own(st: &Shared, id: &str, went_green: bool) -> Result<(), JobError> {
    if st
        .store
        .decision(id)
        .await?
        .is_some_and(|d| d.record.would_retry)
    {
        st.store.record_outcome(id, went_green, None).await?;
    }
    Ok(())
}

/// A person's re-run of a run pipeguard handed over went green (act mode).
pub(super) async fn person_passed(
    st: &Shared,
    id: &str,
    finished_at: Option<i64>,
) -> Result<(), JobError> {
    let at = finished_at.unwrap_or_else(now_ms);
    st.store.record_outcome(id, true, Some(at)).await?;
    Ok(())
}

/// A person re-ran a run pipeguard only observed: the attempt is measured against what
/// pipeguard would have done, and the session stays observed.
pub(super) async fn rerun(
    st: &Shared,
    job: &Job,
    attempt: i64,
    success: bool,
    at_ms: Option<i64>,
) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if s.status != S::Observed || attempt <= s.current_attempt {
        return Ok(());
    }
    let at = at_ms.unwrap_or_else(now_ms);
    let recorded = st.store.record_outcome(&s.id, success, Some(at)).await?;
    let result = if success { "passed" } else { "failed" };
    let msg = match recorded.and_then(|d| d.outcome) {
        Some(o) => format!(
            "attempt {attempt}, re-run by a person, {result}: {o}",
            o = o.as_str()
        ),
        None => format!("attempt {attempt}, re-run by a person, {result}"),
    };
    let update = SessionUpdate {
        current_attempt: Some(attempt),
        ..Default::default()
    };
    let t = Transition::new(Event::Amend(S::Observed), &msg);
    st.store.update_session(&s.id, t, update).await?;
    Ok(())
}
