//! The execute job: carry out the stored plan once per heal attempt — the configured fixes,
//! then the strategy on the platform — and move the session on to verifying.

use super::fixes;
use super::{ci_for, load, platform_of, JobError};
use crate::Shared;
use pipeguard_core::policy::Strategy;
use pipeguard_store::{
    now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};

/// Why the healing budget forbids another re-run now, if it does: a flood of failures must
/// not become a retry storm.
async fn over_budget(st: &Shared, s: &SessionRecord) -> Result<Option<String>, JobError> {
    let h = &st.config.healing;
    let since = now_ms() - 3600 * 1000;
    if h.budget_per_repository_per_hour > 0 {
        let n = st
            .store
            .reruns_since(since, Some((&s.platform, &s.repository)))
            .await?;
        if n >= h.budget_per_repository_per_hour as i64 {
            return Ok(Some(format!(
                "healing budget reached: {n} re-runs of {} in the last hour (limit {})",
                s.repository, h.budget_per_repository_per_hour
            )));
        }
    }
    if h.budget_per_hour > 0 {
        let n = st.store.reruns_since(since, None).await?;
        if n >= h.budget_per_hour as i64 {
            return Ok(Some(format!(
                "healing budget reached: {n} re-runs in the last hour over all repositories (limit {})",
                h.budget_per_hour
            )));
        }
    }
    Ok(None)
}

pub(super) async fn execute(st: &Shared, job: &Job) -> Result<(), JobError> {
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
    let (jobs, all_failed, mixed) = match &s.plan {
        Some(p) => (p.jobs.clone(), p.all_failed, p.mixed),
        None => (Vec::new(), true, false),
    };
    // A job taken again after its call (status executing) already counted against the budget.
    if s.status == S::Planned {
        if let Some(why) = over_budget(st, &s).await? {
            return escalate_executing(st, &s, &why).await;
        }
    }
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
    let acted = match fixes::run_fixes(st, &s, attempt).await {
        Ok(()) => fixes::act(st, &s, ci, strategy, &jobs, all_failed).await,
        Err(e) => Err(e),
    };
    match acted {
        Ok(fixes::Acted {
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
                let link = pipeguard_platforms::registry::module(platform_of(&s))
                    .map(|m| m.run_link(&next.run_id))
                    .unwrap_or_else(|| next.run_id.clone());
                st.store
                    .follow_run(&s.id, platform_of(&s), &link, &next)
                    .await?;
            }
            st.store
                .finish_action(&s.id, attempt, "run", "done", &detail)
                .await?;
            called(st, &s, attempt, mixed).await?;
            tracing::info!(session = %s.id, attempt, "{detail}");
            Ok(())
        }
        Err(e) => {
            let transient = e.is_transient();
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
            if transient && fixes::starts_new_run(st, &s, ci, strategy) {
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
            .enqueue(&s.id, &Task::Verify, now_ms() + poll)
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
