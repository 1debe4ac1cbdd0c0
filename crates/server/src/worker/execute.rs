//! The execute job: gather the budget, let the planner decide, and carry out its step once
//! per heal attempt — the configured fixes, then the platform call — then let the planner
//! decide on the platform's answer.

use super::{ci_for, close_with, facts, fixes, known_after, load, platform_of, JobError};
use crate::Shared;
use pipeguard_core::heal::StoredPlan;
use pipeguard_core::incident;
use pipeguard_core::planner::{self, Answer, Budget, Call, CallError, Count, Happened, Next, Step};
use pipeguard_platforms::{Ci, PlatformError};
use pipeguard_store::{
    now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};

/// When a session that follows a new run first looks at it (see `called`).
const FIRST_LOOK_MS: i64 = 2000;

/// Re-runs in the last hour against the configured limits.
async fn budget(st: &Shared, s: &SessionRecord) -> Result<Budget, JobError> {
    let h = &st.config.healing;
    let since = now_ms() - 3600 * 1000;
    let mut b = Budget::default();
    if h.budget_per_repository_per_hour > 0 {
        let used = st
            .store
            .reruns_since(since, Some((&s.platform, &s.repository)))
            .await?;
        let limit = h.budget_per_repository_per_hour;
        b.repository = Some(Count { used, limit });
    }
    if h.budget_per_hour > 0 {
        let used = st.store.reruns_since(since, None).await?;
        b.global = Some(Count {
            used,
            limit: h.budget_per_hour,
        });
        let limit = incident::wave_limit(h.budget_per_hour, &st.config.incidents);
        b.wave = Some(Count { used, limit });
    }
    Ok(b)
}

pub(super) async fn execute(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if s.status != S::Planned && s.status != S::Executing {
        return Ok(());
    }
    // An approved host loop goes on where it waited.
    if let Some(mut state) = super::hostloop::stored(&s) {
        state.approved |= matches!(job.task, Task::Execute { approved: true });
        return super::hostloop::drive(st, &s.id, state).await;
    }
    let Some(ci) = ci_for(st, &s) else {
        return Err(JobError::Fatal(format!(
            "no executor for platform {}",
            s.platform
        )));
    };
    let mut known = known_after(st, &s, Some(ci));
    known.incident = super::incidents::of_session(st, &s).await?;
    let due = Happened::Due(budget(st, &s).await?);
    let Ok(next) = planner::decide(&facts(st, &s, due, known)) else {
        return Ok(());
    };
    match &next.step {
        Step::Hold(incident) => super::incidents::hold_due(st, &s, &next, *incident).await,
        Step::Call(plan, call) => carry_out(st, &s, ci, plan.clone(), *call, &next).await,
        Step::Close(plan) => {
            close_with(st, &s, next.event, &next.reason, plan.clone()).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Makes the attempt's call once, then lets the planner decide on the answer.
async fn carry_out(
    st: &Shared,
    s: &SessionRecord,
    ci: &dyn Ci,
    plan: StoredPlan,
    call: Call,
    next: &Next,
) -> Result<(), JobError> {
    let attempt = s.heal_attempts + 1;
    let strategy = plan.plan.strategy;
    if !st
        .store
        .claim_action(&s.id, attempt, "run", strategy.as_str())
        .await?
    {
        // Already called for this heal attempt: a crashed worker's job taken again.
        return resume_interrupted(st, s, ci, attempt).await;
    }
    // Stored before the call, so a crash after it resumes with the right queue.
    let update = SessionUpdate {
        plan: Some(plan.clone()),
        ..Default::default()
    };
    let t = Transition::new(next.event, &next.reason);
    st.store.update_session(&s.id, t, update).await?;
    let acted = match fixes::run_fixes(st, s, attempt).await {
        Ok(()) => fixes::act(st, s, ci, call, &plan).await,
        Err(e) => Err(e),
    };
    let answer = record(st, s, attempt, acted).await?;
    let mut now = s.clone();
    now.status = S::Executing;
    now.plan = Some(plan);
    let (answer, failed) = match answer {
        Ok(a) => (Ok(a), None),
        Err(e) => {
            let call_error = CallError {
                transient: e.is_transient(),
                unconfirmed: matches!(e, PlatformError::Transient(_)),
                message: e.to_string(),
            };
            (Err(call_error), Some(JobError::from(e)))
        }
    };
    let known = known_after(st, &now, Some(ci));
    let happened = Happened::Called(answer);
    let Ok(next) = planner::decide(&facts(st, &now, happened, known)) else {
        return Ok(());
    };
    apply(st, &now, attempt, next, failed).await
}

/// Records the call's result, and follows the new run it started.
async fn record(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    acted: Result<fixes::Acted, PlatformError>,
) -> Result<Result<Answer, PlatformError>, JobError> {
    let a = match acted {
        Ok(a) => a,
        Err(e) => {
            let status = if e.is_transient() { "error" } else { "refused" };
            st.store
                .finish_action(&s.id, attempt, "run", status, &e.to_string())
                .await?;
            crate::audit::acted(st, &s.id, "platform.call", &e.to_string(), status).await;
            return Ok(Err(e));
        }
    };
    st.store
        .finish_action(&s.id, attempt, "run", "done", &a.detail)
        .await?;
    crate::audit::acted(st, &s.id, "platform.call", &a.detail, "done").await;
    tracing::info!(attempt, detail = ?a.detail, "platform called");
    let new_run = a.new_run.is_some();
    if let Some(run_id) = a.new_run {
        follow(st, s, run_id).await?;
    }
    if let Some(n) = a.attempt {
        let note = format!("attempt {n} is the heal's; others finishing first do not count");
        st.store.note(&s.id, S::Executing, &note).await?;
    }
    Ok(Ok(Answer {
        new_run,
        attempt: a.attempt,
    }))
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

/// Persists and performs the planner's decision on the call's outcome. `failed` is the
/// platform's error, which a postponed call is retried by.
async fn apply(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    next: Next,
    failed: Option<JobError>,
) -> Result<(), JobError> {
    match &next.step {
        Step::Called { plan, soon } => called(st, s, attempt, &next, plan.clone(), *soon).await,
        Step::Postpone => {
            // Let the next try call again: the platform did not take this one (or asked to
            // wait, as GitHub does while another attempt of the run is in progress).
            st.store.release_action(&s.id, attempt, "run").await?;
            st.store
                .transition(&s.id, Transition::new(next.event, &next.reason))
                .await?;
            Err(failed.unwrap_or_else(|| {
                JobError::Later(next.reason.clone(), std::time::Duration::from_secs(10))
            }))
        }
        Step::Close(plan) => {
            close_with(st, s, next.event, &next.reason, plan.clone()).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Moves a session on once its heal attempt's call is done: to verifying (with a poll of the
/// outcome), or handed over to people when the planner says so.
async fn called(
    st: &Shared,
    s: &SessionRecord,
    attempt: i64,
    next: &Next,
    plan: StoredPlan,
    soon: bool,
) -> Result<(), JobError> {
    let hand_over = next.status.is_terminal();
    // Handed over: the attempt this call started is pipeguard's own, so its deliveries join
    // this session instead of opening another.
    let started = plan
        .awaiting_attempt
        .map(i64::from)
        .unwrap_or(s.event.attempt as i64 + 1);
    let update = SessionUpdate {
        heal_attempts: Some(attempt),
        finished_at: hand_over.then(now_ms),
        plan: Some(plan),
        current_attempt: hand_over.then(|| started.max(s.current_attempt)),
        ..Default::default()
    };
    let t = Transition::new(next.event, &next.reason);
    let moved = st.store.update_session(&s.id, t, update).await?;
    if moved && !hand_over {
        // A run the heal started can finish, and its delivery arrive, before the session
        // followed it: that delivery found no session. One early look at the run catches it;
        // every later delivery finds the session.
        let poll = if soon {
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

/// The heal attempt's platform call was claimed before: the planner decides from whether it
/// completed.
async fn resume_interrupted(
    st: &Shared,
    s: &SessionRecord,
    ci: &dyn Ci,
    attempt: i64,
) -> Result<(), JobError> {
    let call_done = st
        .store
        .actions(&s.id)
        .await?
        .into_iter()
        .any(|a| a.attempt == attempt && a.target == "run" && a.status == "done");
    let known = known_after(st, s, Some(ci));
    let happened = Happened::Resumed { call_done };
    let Ok(next) = planner::decide(&facts(st, s, happened, known)) else {
        return Ok(());
    };
    apply(st, s, attempt, next, None).await
}
