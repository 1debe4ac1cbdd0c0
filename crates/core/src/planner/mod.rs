//! The one place that decides what happens to a healing session. The worker gathers the
//! facts ([`Facts`]: the diagnoses, the event, what the platform and the configuration allow,
//! attempts so far, the healing budget, the model's verdict, approvals, learned odds, the
//! fixes), calls [`decide`], persists the [`Next`] it returns and performs its [`Step`];
//! nothing after it changes the decision. The simulator, the backtest and the status route
//! call the same function, so their figures are what the server would do.

mod after;
mod call;
mod observe;
mod plan;
mod runner;

pub use call::{Budget, Call, Count, Inputs, Traits};
pub use observe::Mode;
pub use plan::choose;
pub use runner::RunnerState;

use crate::event::FailureEvent;
use crate::heal::{Fix, JobDiagnosis, StoredPlan};
use crate::learning::Learned;
use crate::lifecycle::{self, Event, Illegal, SessionStatus};
use crate::policy::{Capabilities, Policy, Risk, Strategy};
use serde::{Deserialize, Serialize};

/// What just happened to the session.
#[derive(Debug, Clone)]
pub enum Happened<'a> {
    /// The run's failed jobs were diagnosed (refined, and explained where the rules were
    /// unsure). Empty when no failed job or log was found.
    Diagnosed(&'a [JobDiagnosis]),
    /// One job failed while the rest of its run goes on, on a platform that retries it
    /// meanwhile.
    DiagnosedEarly(&'a JobDiagnosis),
    /// The plan's call is due: its backoff passed, or people approved it.
    Due(Budget),
    /// This attempt's call was claimed before (a job taken again): whether it completed.
    Resumed { call_done: bool },
    /// The platform answered the call.
    Called(Result<Answer, CallError>),
    /// A later attempt of the run completed. `shown` is the attempt number people read.
    Completed {
        attempt: u32,
        shown: i64,
        success: bool,
    },
    /// One more person approved the plan: `approvals` of `required` so far.
    Approved { approvals: usize, required: usize },
    /// A held session's incident lets it go: as the canary, or in the wave after it closed.
    Released { incident: i64, canary: bool },
    /// A held session's incident stayed open past the limit.
    Abandoned { incident: i64, hours: u32 },
    /// Someone (a person or a coding agent) asked for a re-run of the run, whose failed jobs
    /// were diagnosed as these.
    Requested(&'a [JobDiagnosis]),
}

impl Happened<'_> {
    /// The statuses a session can be in when this happens; in any other, it is a stale job
    /// or a session another worker moved on.
    fn happens_in(&self) -> &'static [SessionStatus] {
        use SessionStatus as S;
        match self {
            Happened::Diagnosed(_) | Happened::DiagnosedEarly(_) => &[S::Analyzing],
            Happened::Due(_) | Happened::Resumed { .. } | Happened::Called(_) => {
                &[S::Planned, S::Executing]
            }
            Happened::Completed { .. } => &[S::Verifying, S::Executing],
            Happened::Approved { .. } => &[S::AwaitingApproval],
            Happened::Released { .. } | Happened::Abandoned { .. } => &[S::Held],
            // Any status: the planner says why an open or healed session is not re-run.
            Happened::Requested(_) => &SessionStatus::ALL,
        }
    }
}

/// What the platform said to a call that it took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The call started a new run and the platform named it: the session follows it.
    pub new_run: bool,
    /// The attempt whose completion is the heal's outcome, when the platform named it.
    pub attempt: Option<u32>,
}

/// A call the platform did not take.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// The platform may take it later (5xx, rate limit, another attempt in progress).
    pub transient: bool,
    /// Nobody knows whether the platform acted (a 5xx, a timeout, an answer lost after the
    /// call was sent): calling again could act twice.
    pub unconfirmed: bool,
    pub message: String,
}

/// The model's verdict on the failure, as far as the plan depends on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelVerdict {
    /// Its category replaced the rules' `unknown`: the plan is built on its reading.
    pub decided: bool,
    /// The first runnable fix it proposes that the safety gate puts above low risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risky_fix: Option<(String, Risk)>,
}

/// The facts a plan is made from besides the diagnoses; recorded with the plan so that a
/// backtest replays what the worker saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Known {
    /// What the platform and the repository's configuration allow, less what this run (or
    /// its commit) already had.
    pub capabilities: Capabilities,
    /// Outcomes of each strategy on this failure's fingerprint and category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<(Strategy, Learned)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelVerdict>,
    #[serde(default)]
    pub platform: Traits,
    /// The healing budget when the call was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Heal attempts made for the run when the plan was made.
    #[serde(default)]
    pub attempts_done: u32,
    /// The repository's effective mode: in observe mode a plan is recorded, never acted on.
    #[serde(default, skip_serializing_if = "Mode::is_act")]
    pub mode: Mode,
    /// The runners the run's failed jobs ran on, where one is suspect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<RunnerState>,
    /// The open incident whose cause this failure shares: hold it unless it is the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<crate::incident::Open>,
    /// The closed incident whose wave released this plan: its one heal is exempt from the
    /// per-repository budget (see [`Budget::wave_exhausted`]). A plan made afresh has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<i64>,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub status: SessionStatus,
    pub happened: Happened<'a>,
    pub event: &'a FailureEvent,
    pub policy: &'a Policy,
    /// Heal attempts already made for the run.
    pub attempts_done: u32,
    /// The plan stored when the session was planned; `None` before.
    pub plan: Option<&'a StoredPlan>,
    pub known: Known,
}

/// The decision: how the session moves, what the worker does, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub event: Event,
    /// The status `event` takes the session to.
    pub status: SessionStatus,
    pub step: Step,
    /// The timeline's line for the move.
    pub reason: String,
}

/// What the worker does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Store the plan; when it acts, execute it after its backoff.
    Plan(StoredPlan),
    /// Nothing to do until the next delivery, poll or person.
    Wait,
    /// Stop healing this job alone: wait for the run and plan over all its failed jobs.
    WaitForRun,
    /// Make this attempt's platform call with the plan (the jobs of this attempt).
    Call(StoredPlan, Call),
    /// The platform asked to wait: try the call again later.
    Postpone,
    /// The call was made: store the plan and follow the attempt (look soon when `soon`).
    Called { plan: StoredPlan, soon: bool },
    /// Diagnose the attempt that failed afresh: it may have another cause.
    Diagnose,
    /// Execute now: the next queued job, an approved plan or one a wave released (`None`:
    /// the stored one).
    Execute(Option<StoredPlan>),
    /// Close the session with the reason, storing the plan it ends with when there is one.
    Close(Option<StoredPlan>),
    /// Hold the session in the incident: no call until the incident lets it go.
    Hold(i64),
}

/// Decides the next step. `Err` when what happened cannot move the session from where it is
/// (a stale job, a session another worker moved on): nothing is to be done.
pub fn decide(f: &Facts) -> Result<Next, Illegal> {
    let (event, step, reason) = match &f.happened {
        Happened::Diagnosed(jobs) if f.known.mode == Mode::Observe => {
            observe::observed(plan::diagnosed(f, jobs))
        }
        Happened::Diagnosed(jobs) => plan::diagnosed(f, jobs),
        Happened::DiagnosedEarly(job) => plan::early(f, job),
        Happened::Due(budget) => call::due(f, budget),
        Happened::Resumed { call_done } => call::resumed(f, *call_done),
        Happened::Called(answer) => call::called(f, answer),
        Happened::Completed {
            attempt,
            shown,
            success,
        } => after::completed(f, *attempt, *shown, *success),
        Happened::Approved {
            approvals,
            required,
        } => after::approved(*approvals, *required),
        Happened::Released { incident, canary } => after::released(f, *incident, *canary),
        Happened::Abandoned { incident, hours } => after::abandoned(*incident, *hours),
        Happened::Requested(jobs) => plan::requested(f, jobs),
    };
    if !f.happened.happens_in().contains(&f.status) {
        return Err(Illegal {
            from: f.status,
            event,
        });
    }
    let status = lifecycle::transition(f.status, event)?;
    Ok(Next {
        event,
        status,
        step,
        reason,
    })
}

/// The plan the worker would store for a session recorded with `jobs`, `event` and the facts
/// `known`, under `policy`, in act mode: planned from the diagnoses, then, when it acts and the budget was
/// recorded when its call was due, checked against that budget. What the backtest replays.
pub fn replay(
    jobs: &[JobDiagnosis],
    event: &FailureEvent,
    known: &Known,
    policy: &Policy,
) -> Option<StoredPlan> {
    let mut f = Facts {
        status: SessionStatus::Analyzing,
        happened: Happened::Diagnosed(jobs),
        event,
        policy,
        attempts_done: known.attempts_done,
        plan: None,
        // An observed session's plan is the one act mode would have carried out.
        known: Known {
            budget: None,
            mode: Mode::Act,
            ..known.clone()
        },
    };
    let Step::Plan(planned) = decide(&f).ok()?.step else {
        return None;
    };
    let Some(budget) = known
        .budget
        .clone()
        .filter(|_| planned.plan.decision == crate::policy::Decision::Act)
    else {
        return Some(planned);
    };
    f.status = SessionStatus::Planned;
    f.happened = Happened::Due(budget);
    f.plan = Some(&planned);
    match decide(&f).ok()?.step {
        Step::Close(Some(escalated)) => Some(escalated),
        _ => Some(planned),
    }
}

/// What a decision function returns before the state machine checks it.
type Decided = (Event, Step, String);

/// The plan stored, or an empty escalated one for a session that has none.
fn stored(f: &Facts) -> StoredPlan {
    f.plan.cloned().unwrap_or_else(|| StoredPlan {
        plan: crate::HealPlan::escalated(String::new()),
        category: crate::Category::Unknown,
        jobs: vec![],
        all_failed: true,
        mixed: false,
        queued: vec![],
        awaiting_attempt: None,
        facts: None,
        avoid_runners: vec![],
    })
}

#[cfg(test)]
mod tests;
