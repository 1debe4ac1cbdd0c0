//! A past failure replayed (`pipeguard import`): the worker's own analysis and planner, as if
//! its delivery had just come in with the repository in observe mode, then stored whole with
//! what the person's re-run said about the decision.

use super::analyze::{gather, planned_update, refine, unknown_update};
use super::JobError;
use crate::Shared;
use pipeguard_core::event::Platform;
use pipeguard_core::planner::{self, Happened, Mode, Step};
use pipeguard_core::policy::Decision;
use pipeguard_platforms::PastFailure;
use pipeguard_store::{
    new_session_id, now_ms, ImportedSession, SessionRecord, SessionStatus, Transition,
};

/// What became of a past failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// Stored as this observed session.
    Stored(String),
    /// Its run attempt already has a session.
    Already,
    /// No decision to measure: the run was cancelled.
    Cancelled,
}

/// The session the failure's delivery would have made, being analysed.
fn session(platform: Platform, f: &PastFailure) -> SessionRecord {
    let ev = &f.event;
    let now = now_ms();
    SessionRecord {
        id: new_session_id(),
        platform: platform.as_str().to_string(),
        repository: ev.repository.clone(),
        run_id: ev.run_id.clone(),
        first_attempt: ev.attempt as i64,
        current_attempt: ev.attempt as i64,
        heal_attempts: 0,
        status: SessionStatus::Analyzing,
        category: None,
        confidence: None,
        fingerprint: None,
        strategy: None,
        diagnosis: None,
        plan: None,
        reason: None,
        event: ev.clone(),
        workflow: ev.workflow.clone(),
        head_sha: ev.head_sha.clone(),
        failed_at: f.failed_at_ms,
        finished_at: None,
        time_to_green_ms: None,
        created_at: now,
        updated_at: now,
        purged_at: None,
        target: None,
        incident_id: None,
    }
}

/// Diagnoses the failure's logs, plans in observe mode and stores the observed session with
/// its decision and the re-run's outcome, in one transaction.
pub async fn observe_past(
    st: &Shared,
    platform: Platform,
    f: PastFailure,
) -> anyhow::Result<Imported> {
    replay(st, platform, f).await.map_err(|e| match e {
        JobError::Later(m, _) | JobError::Fatal(m) => anyhow::anyhow!(m),
    })
}

async fn replay(st: &Shared, platform: Platform, f: PastFailure) -> Result<Imported, JobError> {
    let s = session(platform, &f);
    let ci = st.ci(platform, &s.repository);
    let kept = super::explain::keep_logs(st, &f.logs);
    let (mut jobs, marks) = super::baseline::diagnose(st, &s, f.logs.clone()).await?;
    refine(st, &s, &mut jobs).await;
    let explained = super::explain::consult(st, &s, &mut jobs, kept, Default::default()).await;
    let model = super::explain::verdict(explained.as_ref());
    let mut known = gather(st, &s, ci, &jobs, model, false).await?;
    // What pipeguard would have done: nothing of it is done.
    known.mode = Mode::Observe;
    let next = planner::decide(&super::facts(st, &s, Happened::Diagnosed(&jobs), known))
        .map_err(|e| JobError::Fatal(format!("the planner refused the replay: {e}")))?;
    // Observe mode closes the session with what would have happened; a plan that is no
    // decision (a cancelled run is skipped) is not measured.
    let (update, would_retry) = match &next.step {
        Step::Close(Some(stored)) => (
            planned_update(&s, &jobs, stored, &next, explained.as_ref(), &marks),
            stored.plan.decision == Decision::Act,
        ),
        Step::Close(None) => (unknown_update(&next.reason), false),
        _ => return Ok(Imported::Cancelled),
    };
    let decision = super::decisions::of(&s, Mode::Observe, would_retry);
    let imported = ImportedSession {
        platform,
        event: &s.event,
        transition: Transition::new(next.event, &next.reason),
        update,
        decision,
        went_green: f.green,
        rerun_at: f.rerun_at_ms,
    };
    Ok(match st.store.import_session(imported).await? {
        Some(id) => Imported::Stored(id),
        None => Imported::Already,
    })
}
