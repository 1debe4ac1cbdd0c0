//! The heal attempt's platform call: whether the budget allows it, which call carries the
//! strategy out on this platform, and what the platform's answer means for the session.

use super::{stored, Answer, CallError, Decided, Facts, Step};
use crate::heal::StoredPlan;
use crate::lifecycle::{Event, SessionStatus};
use crate::policy::Strategy;
use serde::{Deserialize, Serialize};

/// How the platform carries strategies out, from its API and the repository's configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Traits {
    /// A re-run takes one job per attempt (GitHub): transient jobs go one after another.
    pub one_job_per_attempt: bool,
    /// The platform's API deletes caches.
    pub can_clear_caches: bool,
    /// Re-running with inputs starts a new run (rather than a new attempt of this one).
    pub rerun_starts_new_run: bool,
    /// The repository configures a reset command (run as a fix before a plain re-run).
    pub reset_command: bool,
    /// A re-run can be told to avoid a runner: the platform composes an exclusion and the
    /// pipeline reads it (Jenkins with `[runners] steer_parameter`).
    pub steer_runners: bool,
}

/// What the platform is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Re-run the plan's jobs (or the whole run) as they were.
    Retry,
    /// Delete the platform's caches, then re-run.
    ClearCachesThenRetry,
    /// Re-run with inputs.
    RerunWith(Inputs),
}

/// Which inputs a re-run carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inputs {
    /// The repository's `scale` mapping: a bigger runner.
    Scale,
    /// A cache-key variable no earlier run used: empty caches.
    FreshCacheKey,
    /// The repository's `reset` mapping and the platform's clean-workspace inputs.
    CleanWorkspace,
    /// The configured steering parameter, excluding the plan's suspect runners.
    AvoidRunners,
}

impl Call {
    pub fn for_strategy(strategy: Strategy, t: &Traits) -> Call {
        match strategy {
            Strategy::ScaleResources => Call::RerunWith(Inputs::Scale),
            Strategy::ClearCache if t.can_clear_caches => Call::ClearCachesThenRetry,
            Strategy::ClearCache => Call::RerunWith(Inputs::FreshCacheKey),
            Strategy::ResetEnvironment if !t.reset_command => {
                Call::RerunWith(Inputs::CleanWorkspace)
            }
            _ => Call::Retry,
        }
    }

    /// The call for a stored plan: a plain re-run that must avoid suspect runners carries
    /// the steering instead.
    pub fn for_plan(stored: &StoredPlan, t: &Traits) -> Call {
        match Call::for_strategy(stored.plan.strategy, t) {
            Call::Retry if !stored.avoid_runners.is_empty() => {
                Call::RerunWith(Inputs::AvoidRunners)
            }
            call => call,
        }
    }

    /// The call starts a new run, whose id the session must follow.
    pub fn starts_new_run(self, t: &Traits) -> bool {
        matches!(self, Call::RerunWith(_)) && t.rerun_starts_new_run
    }
}

/// Re-runs in the last hour against the configured limits: a flood of failures must not
/// become a retry storm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The repository's re-runs; `None` without a per-repository limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Count>,
    /// Re-runs over all repositories; `None` without a global limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Count>,
    /// The global re-runs against what an incident's wave may reach: the hourly limit less
    /// the reserve for unrelated failures (`incident::wave_limit`); `None` without a global
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<Count>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub used: i64,
    pub limit: u32,
}

impl Budget {
    /// Why the budget forbids another re-run now, if it does.
    pub fn exhausted(&self, repository: &str) -> Option<String> {
        let over = |c: &Option<Count>| c.filter(|c| c.limit > 0 && c.used >= c.limit as i64);
        if let Some(c) = over(&self.repository) {
            return Some(format!(
                "healing budget reached: {} re-runs of {repository} in the last hour (limit {})",
                c.used, c.limit
            ));
        }
        over(&self.global).map(|c| {
            format!(
                "healing budget reached: {} re-runs in the last hour over all repositories (limit {})",
                c.used, c.limit
            )
        })
    }

    /// Why the budget makes a session an incident's wave released wait, if it does. Its
    /// re-run is one held failure that a green canary showed healable, not a repository's
    /// runaway retries: the per-repository limit does not apply, the wave's share of the
    /// global one does (a share of 0 allows none).
    pub fn wave_exhausted(&self) -> Option<String> {
        let c = self.wave.filter(|c| c.used >= i64::from(c.limit))?;
        Some(format!(
            "the wave's share of the healing budget is used: {} re-runs in the last hour (share {})",
            c.used, c.limit
        ))
    }
}

/// The plan's call is due. A session already executing was counted against the budget when
/// its call was first due (this is a job taken again).
pub(super) fn due(f: &Facts, budget: &Budget) -> Decided {
    if f.status == SessionStatus::Planned {
        if let Some(held) = super::plan::held(f) {
            return held;
        }
    }
    let mut plan = stored(f);
    if f.status == SessionStatus::Planned {
        // Recorded, so that a backtest replays the budget the worker saw.
        let mut known = plan.facts.take().unwrap_or_else(|| f.known.clone());
        known.budget = Some(budget.clone());
        let wave = known.wave;
        plan.facts = Some(known);
        if let Some(incident) = wave {
            // Released by a wave: never handed to people for budget, held until it frees.
            if let Some(why) = budget.wave_exhausted() {
                let why = format!("{why}: held by incident {incident} until the budget frees");
                return (Event::Hold, Step::Hold(incident), why);
            }
        } else if let Some(why) = budget.exhausted(&f.event.repository) {
            plan.plan = crate::HealPlan::escalated(why.clone());
            return (Event::EscalateCall, Step::Close(Some(plan)), why);
        }
    }
    plan.awaiting_attempt = None;
    let call = Call::for_plan(&plan, &f.known.platform);
    let why = match (plan.jobs.first(), plan.queued.len()) {
        (Some(j), n) if n > 0 => format!(
            "attempt {} re-runs job {}; {n} more transient job(s) wait for the attempts after it",
            f.event.attempt + 1,
            j.name
        ),
        _ => "re-running".to_string(),
    };
    let event = if f.status == SessionStatus::Executing {
        Event::Amend(SessionStatus::Executing)
    } else {
        Event::Start
    };
    (event, Step::Call(plan, call), why)
}

/// The call was claimed before: it either completed and the process stopped before moving
/// the session on (finish the move), or it was interrupted mid-call and nobody knows whether
/// the platform acted (a person must look; calling again could act twice).
pub(super) fn resumed(f: &Facts, call_done: bool) -> Decided {
    if call_done && f.plan.is_some() {
        // Deliveries that came while the process was down went unanswered: look soon.
        return moved_on(f, stored(f), true);
    }
    let why = "a platform call was interrupted (the process stopped during it); check whether it ran before re-running by hand";
    (Event::EscalateCall, Step::Close(None), why.into())
}

/// What the platform's answer means.
pub(super) fn called(f: &Facts, answer: &Result<Answer, CallError>) -> Decided {
    let plan = stored(f);
    let call = Call::for_plan(&plan, &f.known.platform);
    let new_run = call.starts_new_run(&f.known.platform);
    match answer {
        Ok(a) if new_run && !a.new_run => {
            let why = "a new run was started but the platform gave no id to follow it; a human should watch it";
            (Event::EscalateCall, Step::Close(None), why.into())
        }
        Ok(a) => {
            let mut plan = plan;
            plan.awaiting_attempt = a.attempt;
            moved_on(f, plan, a.new_run)
        }
        // A call that may have started a run is not repeated blindly: it could start two.
        Err(e) if e.transient && new_run => {
            let why = format!("the platform did not confirm the new run ({}); a human should check whether it started", e.message);
            (Event::EscalateCall, Step::Close(None), why)
        }
        Err(e) if e.unconfirmed => {
            let why = format!(
                "the platform did not confirm the re-run ({}); a human should check whether it ran",
                e.message
            );
            (Event::EscalateCall, Step::Close(None), why)
        }
        Err(e) if e.transient => {
            let why = "the platform cannot re-run it yet; will try again";
            (Event::Postpone, Step::Postpone, why.into())
        }
        Err(e) => (
            Event::EscalateCall,
            Step::Close(None),
            format!("re-run refused: {}", e.message),
        ),
    }
}

/// After the attempt's call: follow its outcome — also while transient jobs wait for later
/// attempts — or hand over when the last transient job was re-run and the run's other jobs
/// need a person.
fn moved_on(_f: &Facts, plan: crate::heal::StoredPlan, soon: bool) -> Decided {
    if plan.mixed && plan.queued.is_empty() {
        let why = "transient jobs re-run; the others need a human";
        return (Event::HandOver, Step::Called { plan, soon }, why.into());
    }
    let why = "re-run requested; waiting for the outcome";
    (Event::Verify, Step::Called { plan, soon }, why.into())
}
