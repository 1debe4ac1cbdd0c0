//! A failure on a suspect runner: its re-run must not land on the same runner. Where the
//! runner was taken out (paused, stopped, offline), the platform sends the re-run elsewhere;
//! where it was not yet, the re-run is steered away from it where the pipeline takes a
//! steering input (Jenkins), else a person approves first; where the platform cannot take a
//! runner out (GitHub), a person takes it out.

use super::call::{Call, Traits};
use crate::policy::{Decision, HealPlan};
use serde::{Deserialize, Serialize};

/// A runner a failed job of the run ran on, as the server judged it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerState {
    pub name: String,
    /// Its unrelated failures are far above its pool's.
    pub suspect: bool,
    /// Taken out through the platform's API: new jobs go to other runners.
    pub quarantined: bool,
    /// The platform's API can take it out (GitLab, Buildkite, Jenkins; not GitHub).
    pub can_take_out: bool,
}

/// Applies the suspect runners among `runners` to a plan that would re-run; returns the
/// runners the re-run is steered away from (where `t` says the platform and the pipeline
/// can, and the re-run is a plain one).
pub(super) fn apply(
    runners: &[RunnerState],
    platform: &str,
    t: &Traits,
    plan: &mut HealPlan,
) -> Vec<String> {
    if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
        return vec![];
    }
    let steer = t.steer_runners && Call::for_strategy(plan.strategy, t) == Call::Retry;
    let mut avoid = Vec::new();
    for r in runners.iter().filter(|r| r.suspect) {
        let name = &r.name;
        let take_out = format!("POST /api/v1/runners/{platform}/{name}/quarantine");
        if r.quarantined {
            plan.reason = format!(
                "{}; runner {name} was taken out, so the re-run goes to another runner",
                plan.reason
            );
        } else if steer {
            // Not waiting for a person: this re-run cannot land on it whatever they decide.
            plan.reason = format!(
                "{}; runner {name} fails unrelated jobs far more often than its pool: the re-run is steered away from it (to take it out: {take_out})",
                plan.reason
            );
            avoid.push(name.clone());
        } else if !r.can_take_out {
            *plan = HealPlan::escalated(format!(
                "runner {name} fails unrelated jobs far more often than its pool; this platform cannot take a runner out: take {name} out of the pool, then re-run"
            ));
            return vec![];
        } else {
            plan.decision = Decision::AwaitApproval;
            plan.reason = format!(
                "{}; runner {name} fails unrelated jobs far more often than its pool: approve taking it out ({take_out}) before the re-run",
                plan.reason
            );
        }
    }
    avoid
}
