//! A failure on a suspect runner: its re-run must not land on the same runner. Where the
//! runner was taken out (paused, stopped, offline), the platform sends the re-run elsewhere;
//! where it was not yet, a person approves first; where the platform cannot take a runner
//! out (GitHub), a person takes it out.

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

/// Applies the suspect runners among `runners` to a plan that would re-run.
pub(super) fn apply(runners: &[RunnerState], platform: &str, plan: &mut HealPlan) {
    if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
        return;
    }
    for r in runners.iter().filter(|r| r.suspect) {
        let name = &r.name;
        if r.quarantined {
            plan.reason = format!(
                "{}; runner {name} was taken out, so the re-run goes to another runner",
                plan.reason
            );
        } else if !r.can_take_out {
            *plan = HealPlan::escalated(format!(
                "runner {name} fails unrelated jobs far more often than its pool; this platform cannot take a runner out: take {name} out of the pool, then re-run"
            ));
            return;
        } else {
            plan.decision = Decision::AwaitApproval;
            plan.reason = format!(
                "{}; runner {name} fails unrelated jobs far more often than its pool: approve taking it out (POST /api/v1/runners/{platform}/{name}/quarantine) before the re-run",
                plan.reason
            );
        }
    }
}
