//! Planning a run's heal from its diagnosed jobs: the policy's plan for the cause to heal,
//! refined by what outcomes taught, known-flaky tests and the configured fixes, gated by the
//! model's verdict, and split into one job per attempt where the platform needs it.

use super::{Decided, Facts, Step};
use crate::analysis::Diagnosis;
use crate::event::FailedJob;
use crate::heal::{JobDiagnosis, StoredPlan, KNOWN_FLAKY, LEARNED};
use crate::learning;
use crate::lifecycle::Event;
use crate::policy::{Decision, HealPlan, PlanStep, Risk, StepKind};

/// The diagnoses a run's plan is made from.
pub struct Choice<'a> {
    /// Speaks for the run: a job that needs a human wins, since the run cannot go green
    /// without one; otherwise the least confident transient job.
    pub run: &'a Diagnosis,
    /// What the plan heals: in a mixed run, the transient jobs' cause.
    pub heal: &'a Diagnosis,
}

pub fn choose(jobs: &[JobDiagnosis]) -> Option<Choice<'_>> {
    let run = jobs
        .iter()
        .map(|j| &j.diagnosis)
        .find(|d| !d.transient)
        .or_else(|| {
            jobs.iter()
                .map(|j| &j.diagnosis)
                .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
        })?;
    let heal = if jobs.iter().all(|j| j.diagnosis.transient) {
        run
    } else {
        jobs.iter()
            .map(|j| &j.diagnosis)
            .find(|d| d.transient)
            .unwrap_or(run)
    };
    Some(Choice { run, heal })
}

/// The whole run's plan, moved to the status its decision implies.
pub(super) fn diagnosed(f: &Facts, jobs: &[JobDiagnosis]) -> Decided {
    let Some(mut stored) = plan(jobs, f) else {
        let why = "no failed job or log found for this run attempt";
        return (Event::EscalatePlan, Step::Close(None), why.into());
    };
    gate(f, &mut stored.plan);
    if f.known.platform.one_job_per_attempt && !stored.all_failed && stored.jobs.len() > 1 {
        stored.queued = stored.jobs.split_off(1);
    }
    if stored.plan.decision == Decision::Act && !stored.mixed {
        if let Some((event, _, why)) = held(f) {
            return (event, Step::Plan(stored), why);
        }
    }
    let (event, message) = match stored.plan.decision {
        Decision::Act => (Event::Plan, "plan ready"),
        Decision::AwaitApproval => (Event::AskApproval, "waiting for a human to approve"),
        Decision::Escalate => (Event::EscalatePlan, "escalated to a human"),
        Decision::Skip => (Event::Skip, "nothing to heal"),
    };
    (event, Step::Plan(stored), message.into())
}

/// A failure whose cause has an open incident waits for it, unless it is the incident's
/// canary: re-running into the outage would spend the budget for nothing.
pub(super) fn held(f: &Facts) -> Option<Decided> {
    let open = f.known.incident.as_ref().filter(|i| !i.canary)?;
    let why = format!(
        "held by incident {} ({} unreachable): waiting for its canary",
        open.id, open.target
    );
    Some((Event::Hold, Step::Hold(open.id), why))
}

/// Someone asked for a re-run. Only a session closed without a heal is reopened, and only when
/// the plan made afresh from its diagnoses (the policy, the attempts made, the safety gate)
/// acts or asks people: a genuine failure is refused with the plan's reason. The budget is
/// checked when the call is due, as for any heal.
pub(super) fn requested(f: &Facts, jobs: &[JobDiagnosis]) -> Decided {
    use crate::lifecycle::SessionStatus as S;
    let refuse = |why: String| (Event::Amend(f.status), Step::Wait, why);
    match f.status {
        S::Healed => return refuse("re-run refused: the run is green already".into()),
        // Observe mode never acts; a switch to act mode applies from the next failure.
        S::Observed => {
            let why = "re-run refused: the session was only observed; re-run it on the platform";
            return refuse(why.into());
        }
        S::AwaitingApproval => {
            let why = "held: the re-run waits for a human's approval already";
            return refuse(why.into());
        }
        s if !s.is_terminal() => {
            return refuse(format!(
                "re-run refused: pipeguard is handling this run already ({s})"
            ))
        }
        _ => {}
    }
    match diagnosed(f, jobs) {
        (Event::Plan, Step::Plan(p), _) => {
            let why = format!("re-run requested: {}", p.plan.reason);
            (Event::Reopen, Step::Plan(p), why)
        }
        (Event::AskApproval, Step::Plan(p), _) => {
            let why = format!(
                "re-run requested; waiting for a human to approve: {}",
                p.plan.reason
            );
            (Event::ReopenForApproval, Step::Plan(p), why)
        }
        (_, Step::Plan(p), _) => refuse(format!("re-run refused: {}", p.plan.reason)),
        (_, _, why) => refuse(format!("re-run refused: {why}")),
    }
}

/// One job that failed while its run goes on: only a transient failure that a plain retry
/// heals without a person or a fix, and only that job. Anything else waits for the run.
pub(super) fn early(f: &Facts, job: &JobDiagnosis) -> Decided {
    let whole = plan(std::slice::from_ref(job), f);
    let plain_retry = whole.as_ref().is_some_and(|s| {
        let p = &s.plan;
        // Observe mode records one decision per run, made over all its failed jobs.
        f.known.mode.is_act()
            && job.diagnosis.transient
            && p.decision == Decision::Act
            && p.strategy == crate::Strategy::Retry
            && p.steps.iter().all(|s| s.kind != StepKind::Fix)
    });
    let name = &job.job.name;
    match whole {
        Some(stored) if plain_retry && held(f).is_some() => {
            let (event, _, why) = held(f).expect("held");
            (event, Step::Plan(stored), why)
        }
        Some(mut stored) if plain_retry => {
            // The other jobs' outcomes are unknown: never a run-level re-run.
            stored.all_failed = false;
            stored.mixed = false;
            stored.plan.reason = format!(
                "{}; job {name} retried while the rest of the run goes on",
                stored.plan.reason
            );
            let why = format!("job {name} failed while the run goes on: retrying it alone now");
            (Event::Plan, Step::Plan(stored), why)
        }
        other => {
            // Say what the whole-run plan will weigh: a person, an approval, another remedy.
            let why = other
                .map(|p| p.plan.reason)
                .unwrap_or_else(|| job.diagnosis.category.to_string());
            let msg = format!(
                "job {name} is not retried while the run goes on ({why}); waiting for the run"
            );
            (Event::Amend(f.status), Step::WaitForRun, msg)
        }
    }
}

/// The plan for a run's diagnosed jobs; `None` when no job was diagnosed.
fn plan(jobs: &[JobDiagnosis], f: &Facts) -> Option<StoredPlan> {
    let choice = choose(jobs)?;
    let transient: Vec<FailedJob> = jobs
        .iter()
        .filter(|j| j.diagnosis.transient)
        .map(|j| j.job.clone())
        .collect();
    let genuine: Vec<&JobDiagnosis> = jobs.iter().filter(|j| !j.diagnosis.transient).collect();
    let mixed = !genuine.is_empty() && !transient.is_empty();
    let mut plan_event = f.event.clone();
    plan_event.jobs = if transient.is_empty() {
        jobs.iter().map(|j| j.job.clone()).collect()
    } else {
        transient.clone()
    };
    let heal = choice.heal;
    let k = &f.known;
    let mut plan = f
        .policy
        .plan(heal, &plan_event, &k.capabilities, f.attempts_done);
    if plan.strategy.acts() {
        let learned = k
            .learned
            .iter()
            .find(|(s, _)| *s == plan.strategy)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        plan = learning::apply(plan, &learned);
    }
    explain_refinement(heal, &mut plan);
    add_fixes(&k.fixes, &mut plan);
    let platform = f.event.platform.map(|p| p.as_str()).unwrap_or_default();
    let avoid_runners = super::runner::apply(&k.runners, platform, &k.platform, &mut plan);
    if mixed {
        let names: Vec<String> = genuine
            .iter()
            .map(|g| format!("{} ({})", g.job.name, g.diagnosis.category))
            .collect();
        plan.reason = format!("{}; job(s) {} need a human", plan.reason, names.join(", "));
    }
    Some(StoredPlan {
        plan,
        category: heal.category,
        jobs: transient,
        all_failed: genuine.is_empty(),
        mixed,
        queued: vec![],
        awaiting_attempt: None,
        facts: Some(super::Known {
            attempts_done: f.attempts_done,
            ..k.clone()
        }),
        avoid_runners,
    })
}

/// A plan built on the model's reading waits for a person when the model proposes a fix
/// above low risk, whatever the policy says.
fn gate(f: &Facts, plan: &mut HealPlan) {
    let Some(m) = f.known.model.as_ref().filter(|m| m.decided) else {
        return;
    };
    if plan.decision != Decision::Act {
        return;
    }
    if let Some((command, risk)) = &m.risky_fix {
        plan.decision = Decision::AwaitApproval;
        plan.reason = format!(
            "{}; the model proposes the fix `{command}` ({} risk), so a human must approve",
            plan.reason,
            crate::safety::risk_name(*risk)
        );
    }
}

/// Makes the plan of a known-flaky or learned diagnosis say why, and retries known-flaky
/// tests at once: waiting does not make a flaky test pass.
fn explain_refinement(d: &Diagnosis, plan: &mut HealPlan) {
    if plan.decision != Decision::Act && plan.decision != Decision::AwaitApproval {
        return;
    }
    if d.summary.starts_with(KNOWN_FLAKY) {
        for step in plan.steps.iter_mut() {
            if step.kind == StepKind::Retry {
                step.delay_seconds = 0;
                step.reason = format!("{}; no backoff for a known flaky test", step.reason);
            }
        }
        plan.reason = format!("{}: retry at once", d.summary);
    } else if d.analyzer == LEARNED {
        plan.reason = format!("{}; {}", plan.reason, d.summary);
    }
}

/// Puts the fixes that run before the re-run into the plan, each with its safety risk. A
/// high-risk command makes the plan wait for approval; a refused one escalates it.
fn add_fixes(fixes: &[crate::heal::Fix], plan: &mut HealPlan) {
    if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
        return;
    }
    let strategy = plan.strategy;
    for f in fixes
        .iter()
        .filter(|f| f.strategy.is_none_or(|s| s == strategy))
    {
        if f.risk == Risk::Refused {
            let reason = format!(
                "fix {} refused by the safety assessment: {}",
                f.name, f.what
            );
            *plan = HealPlan::escalated(reason);
            plan.steps[0].risk = Risk::Refused;
            return;
        }
        if f.risk >= Risk::High && plan.decision == Decision::Act {
            plan.decision = Decision::AwaitApproval;
            plan.reason = format!(
                "{}; fix {} is high-risk, so a human must approve",
                plan.reason, f.name
            );
        }
        let at = plan
            .steps
            .iter()
            .position(|p| p.kind == StepKind::Retry)
            .unwrap_or(plan.steps.len());
        plan.steps.insert(
            at,
            PlanStep {
                kind: StepKind::Fix,
                strategy,
                risk: f.risk,
                reason: format!("{}: {}", f.name, f.what),
                delay_seconds: 0,
            },
        );
    }
}
