//! Observe mode: the plan is made exactly as in act mode, then recorded as what pipeguard
//! would have done; the session closes `observed` and nothing acts.

use super::{Call, Decided, Inputs, Step};
use crate::heal::StoredPlan;
use crate::lifecycle::Event;
use crate::policy::{Decision, StepKind, Strategy};
use serde::{Deserialize, Serialize};

/// Whether pipeguard acts on a repository's failures or only records what it would do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Act,
    Observe,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Act, Mode::Observe];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Act => "act",
            Mode::Observe => "observe",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn is_act(&self) -> bool {
        *self == Mode::Act
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan made in observe mode closes the session with what would have happened; a plan
/// with nothing to heal (a cancelled run) is skipped as in act mode.
pub(super) fn observed(decided: Decided) -> Decided {
    let (event, step, reason) = decided;
    let stored = match step {
        Step::Plan(stored) => stored,
        Step::Close(None) if event == Event::EscalatePlan => {
            return (Event::Observe, step, format!("would escalate: {reason}"));
        }
        other => return (event, other, reason),
    };
    let would = match stored.plan.decision {
        Decision::Skip => return (event, Step::Plan(stored), reason),
        Decision::Act => would_act(&stored),
        Decision::AwaitApproval => format!("would ask for approval: {}", stored.plan.reason),
        Decision::Escalate => format!("would escalate: {}", stored.plan.reason),
    };
    (Event::Observe, Step::Close(Some(stored)), would)
}

/// What the plan's call would do, e.g. "would re-run jobs test-a, test-b after 30 s".
fn would_act(stored: &StoredPlan) -> String {
    let p = &stored.plan;
    let call = Call::for_plan(stored, &traits(stored));
    let names: Vec<&str> = stored
        .jobs
        .iter()
        .chain(&stored.queued)
        .map(|j| j.name.as_str())
        .collect();
    let what = match names.as_slice() {
        [] => "the run".to_string(),
        [one] => format!("job {one}"),
        many => format!("jobs {}", many.join(", ")),
    };
    let how = match (p.strategy, call) {
        (_, Call::ClearCachesThenRetry) => format!("clear the caches, then re-run {what}"),
        (_, Call::RerunWith(Inputs::Scale)) => format!("re-run {what} on a bigger runner"),
        (_, Call::RerunWith(Inputs::FreshCacheKey)) => {
            format!("re-run {what} with a fresh cache key")
        }
        (_, Call::RerunWith(Inputs::CleanWorkspace)) => {
            format!("re-run {what} in a clean workspace")
        }
        (_, Call::RerunWith(Inputs::AvoidRunners)) => format!(
            "re-run {what} away from runner(s) {}",
            stored.avoid_runners.join(", ")
        ),
        (Strategy::HealHost, _) => format!("run the healing playbook, then re-run {what}"),
        _ => format!("re-run {what}"),
    };
    let fixes: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Fix)
        .map(|s| s.reason.split(':').next().unwrap_or_default())
        .collect();
    let fixes = if fixes.is_empty() {
        String::new()
    } else {
        format!("run {}, then ", fixes.join(", "))
    };
    let delay = p.steps.iter().map(|s| s.delay_seconds).max().unwrap_or(0);
    let after = if delay > 0 {
        format!(" after {delay} s")
    } else {
        String::new()
    };
    format!("would {fixes}{how}{after}")
}

/// How the platform would carry the plan out, as recorded with it.
fn traits(stored: &StoredPlan) -> super::Traits {
    stored
        .facts
        .as_ref()
        .map(|k| k.platform)
        .unwrap_or_default()
}
