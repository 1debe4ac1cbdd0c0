//! After the call: what a completed attempt means for the session, and people's approvals.

use super::{stored, Decided, Facts, Step};
use crate::lifecycle::{Event, SessionStatus};

/// A later attempt of the run completed.
pub(super) fn completed(f: &Facts, attempt: u32, shown: i64, success: bool) -> Decided {
    let plan = stored(f);
    if let Some(ours) = plan.awaiting_attempt.filter(|ours| *ours != attempt) {
        let why = format!(
            "attempt {attempt} finished, but the heal started attempt {ours}: still waiting for it"
        );
        return (Event::Amend(f.status), Step::Wait, why);
    }
    if !plan.queued.is_empty() {
        return next_job(f, attempt, plan);
    }
    if success {
        return (
            Event::Heal,
            Step::Close(None),
            format!("attempt {shown} succeeded"),
        );
    }
    if let Some(why) = f.policy.exhausted(plan.category, f.attempts_done) {
        return (Event::GiveUp, Step::Close(None), why);
    }
    (
        Event::Rediagnose,
        Step::Diagnose,
        format!("attempt {attempt} failed; diagnosing it"),
    )
}

/// The attempt that re-ran one transient job completed: the next queued job goes now (the
/// platform accepts a re-run again), unless the heal-attempt limit is reached.
fn next_job(f: &Facts, attempt: u32, mut plan: crate::heal::StoredPlan) -> Decided {
    let limit = f.policy.max_attempts;
    if f.attempts_done >= limit {
        let names: Vec<&str> = plan.queued.iter().map(|j| j.name.as_str()).collect();
        let why = format!(
            "reached the limit of {limit} heal attempt(s) with transient job(s) {} not re-run; the others need a human",
            names.join(", ")
        );
        return (Event::GiveUp, Step::Close(None), why);
    }
    plan.jobs = vec![plan.queued.remove(0)];
    plan.awaiting_attempt = None;
    let why = format!("attempt {attempt} completed; re-running the next transient job");
    (Event::NextJob, Step::Execute(Some(plan)), why)
}

/// One more person approved: the plan runs once enough people did.
pub(super) fn approved(approvals: usize, required: usize) -> Decided {
    if approvals < required {
        let why = format!("{approvals} of {required} approvals");
        return (
            Event::Amend(SessionStatus::AwaitingApproval),
            Step::Wait,
            why,
        );
    }
    (Event::Approve, Step::Execute(None), "approved".into())
}

/// A held session goes: its call is planned again (the budget is checked when it is due).
/// A wave's session carries the incident in its plan, so that its call is weighed against the
/// wave's budget rather than its repository's.
pub(super) fn released(f: &Facts, incident: i64, canary: bool) -> Decided {
    if canary {
        let why = format!("canary of incident {incident}: re-running to probe the cause");
        return (Event::Release, Step::Execute(None), why);
    }
    let mut plan = stored(f);
    let mut known = plan.facts.take().unwrap_or_else(|| f.known.clone());
    known.wave = Some(incident);
    plan.facts = Some(known);
    let why = format!("incident {incident} is over: released in its wave");
    (Event::Release, Step::Execute(Some(plan)), why)
}

/// The incident outlived `give_up_hours`: people take its held sessions.
pub(super) fn abandoned(incident: i64, hours: u32) -> Decided {
    let why =
        format!("incident {incident} is still open after {hours} hour(s); a human should look");
    (Event::Abandon, Step::Close(None), why)
}
