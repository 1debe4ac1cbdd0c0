//! The execute job: carry out the stored plan once per heal attempt — the configured fixes,
//! then the strategy on the platform — and move the session on to verifying.

use super::fixes;
use super::{ci_for, load, platform_of, JobError};
use crate::Shared;
use pipeguard_core::heal::StoredPlan;
use pipeguard_core::policy::Strategy;
use pipeguard_platforms::{Ci, PlatformError};
use pipeguard_store::{
    now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};

/// When a session that follows a new run first looks at it (see `called`).
const FIRST_LOOK_MS: i64 = 2000;

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

/// The plan this attempt carries out: on a platform that re-runs one job per attempt, the
/// first transient job now and the others queued for the attempts after it.
fn this_attempt(s: &SessionRecord, ci: &dyn Ci) -> StoredPlan {
    let mut p = s.plan.clone().unwrap_or_else(|| StoredPlan {
        plan: pipeguard_core::HealPlan::escalated(String::new()),
        category: pipeguard_core::Category::Unknown,
        jobs: vec![],
        all_failed: true,
        mixed: false,
        queued: vec![],
        awaiting_attempt: None,
    });
    if ci.one_job_per_attempt() && !p.all_failed && p.jobs.len() > 1 {
        let rest = p.jobs.split_off(1);
        p.queued.splice(0..0, rest);
    }
    p.awaiting_attempt = None;
    p
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
        return resume_interrupted(st, &s, attempt).await;
    }
    // Stored before the call, so a crash after it resumes with the right queue.
    let plan = this_attempt(&s, ci);
    let note = match (plan.jobs.first(), plan.queued.len()) {
        (Some(j), n) if n > 0 => format!(
            "attempt {} re-runs job {}; {n} more transient job(s) wait for the attempts after it",
            s.event.attempt + 1,
            j.name
        ),
        _ => "re-running".to_string(),
    };
    st.store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Planned],
                to: S::Executing,
                message: &note,
            },
            SessionUpdate {
                plan: Some(plan.clone()),
                ..Default::default()
            },
        )
        .await?;
    let acted = match fixes::run_fixes(st, &s, attempt).await {
        Ok(()) => fixes::act(st, &s, ci, strategy, &plan.jobs, plan.all_failed).await,
        Err(e) => Err(e),
    };
    match acted {
        Ok(a) => acted_ok(st, &s, attempt, plan, a).await,
        Err(e) => acted_err(st, &s, ci, strategy, attempt, e).await,
    }
}

async fn acted_ok(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    mut plan: StoredPlan,
    a: fixes::Acted,
) -> Result<(), JobError> {
    st.store
        .finish_action(&s.id, attempt, "run", "done", &a.detail)
        .await?;
    crate::audit::acted(st, &s.id, "platform.call", &a.detail, "done").await;
    if a.expects_new_run && a.new_run.is_none() {
        return escalate_executing(
            st,
            s,
            "a new run was started but the platform gave no id to follow it; a human should watch it",
        )
        .await;
    }
    let followed = a.new_run.is_some();
    if let Some(run_id) = a.new_run {
        follow(st, s, run_id).await?;
    }
    plan.awaiting_attempt = a.attempt;
    if let Some(n) = a.attempt {
        let note = format!("attempt {n} is the heal's; others finishing first do not count");
        st.store.note(&s.id, S::Executing, &note).await?;
    }
    tracing::info!(attempt, detail = ?a.detail, "platform called");
    called(st, s, attempt, &plan, followed).await
}

/// From now on the session verifies and diagnoses the run the heal started.
async fn follow(st: &Shared, s: &SessionRecord, run_id: String) -> Result<(), JobError> {
    let mut next = s.event.clone();
    next.run_id = run_id;
    next.attempt = 0;
    next.jobs.clear();
    next.url = None;
    next.log = None;
    next.started_at_ms = Some(now_ms());
    next.finished_at_ms = None;
    let link = pipeguard_platforms::registry::module(platform_of(s))
        .map(|m| m.run_link(&next.run_id))
        .unwrap_or_else(|| next.run_id.clone());
    st.store
        .follow_run(&s.id, platform_of(s), &link, &next)
        .await?;
    Ok(())
}

async fn acted_err(
    st: &Shared,
    s: &SessionRecord,
    ci: &dyn Ci,
    strategy: Strategy,
    attempt: i64,
    e: PlatformError,
) -> Result<(), JobError> {
    let transient = e.is_transient();
    let status = if transient { "error" } else { "refused" };
    st.store
        .finish_action(&s.id, attempt, "run", status, &e.to_string())
        .await?;
    crate::audit::acted(st, &s.id, "platform.call", &e.to_string(), status).await;
    // A call that may have started a run is not repeated blindly: it could start two.
    if transient && fixes::starts_new_run(st, s, ci, strategy) {
        return escalate_executing(
            st,
            s,
            &format!("the platform did not confirm the new run ({e}); a human should check whether it started"),
        )
        .await;
    }
    if transient {
        // Let the next try call again: the platform did not take this one (or asked to
        // wait, as GitHub does while another attempt of the run is in progress).
        st.store.release_action(&s.id, attempt, "run").await?;
        st.store
            .transition(
                &s.id,
                Transition {
                    from: &[S::Executing],
                    to: S::Planned,
                    message: "the platform cannot re-run it yet; will try again",
                },
            )
            .await?;
        return Err(e.into());
    }
    escalate_executing(st, s, &format!("re-run refused: {e}")).await
}

/// Moves a session on once its heal attempt's platform call is done: to verifying (with a
/// poll of the outcome) — also while transient jobs wait for later attempts — or escalated
/// when the last transient job was re-run and the run's other jobs need a human.
async fn called(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    plan: &StoredPlan,
    followed: bool,
) -> Result<(), JobError> {
    let hand_over = plan.mixed && plan.queued.is_empty();
    let (to, message) = if hand_over {
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
                finished_at: hand_over.then(now_ms),
                plan: Some(plan.clone()),
                // Handed over: the attempt this call started is pipeguard's own, so its
                // deliveries join this session instead of opening another.
                current_attempt: hand_over.then(|| {
                    let started = plan
                        .awaiting_attempt
                        .map(i64::from)
                        .unwrap_or(s.event.attempt as i64 + 1);
                    started.max(s.current_attempt)
                }),
                ..Default::default()
            },
        )
        .await?;
    if moved && !hand_over {
        // A run the heal started can finish, and its delivery arrive, before the session
        // followed it: that delivery found no session. One early look at the run catches it;
        // every later delivery finds the session.
        let poll = if followed {
            FIRST_LOOK_MS
        } else {
            st.config.worker.verify_poll_seconds as i64 * 1000
        };
        st.store
            .enqueue(&s.id, &Task::Verify, now_ms() + poll)
            .await?;
    }
    Ok(())
}

pub(super) async fn escalate_executing(
    st: &Shared,
    s: &SessionRecord,
    reason: &str,
) -> Result<(), JobError> {
    st.store
        .update_session(
            &s.id,
            Transition {
                from: &[S::Planned, S::Executing, S::Verifying],
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
async fn resume_interrupted(st: &Shared, s: &SessionRecord, attempt: i64) -> Result<(), JobError> {
    if !matches!(s.status, S::Planned | S::Executing) {
        return Ok(());
    }
    let action = st
        .store
        .actions(&s.id)
        .await?
        .into_iter()
        .find(|a| a.attempt == attempt && a.target == "run");
    match (action.map(|a| a.status), &s.plan) {
        (Some(status), Some(plan)) if status == "done" => {
            // Deliveries that came while the process was down went unanswered: look soon.
            called(st, s, attempt, plan, true).await
        }
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
