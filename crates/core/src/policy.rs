//! Policy: turns a diagnosis into an ordered heal plan, and says why.

use crate::analysis::Diagnosis;
use crate::backoff::Backoff;
use crate::category::Category;
use crate::event::FailureEvent;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use pipeguard_taxonomy::{Risk, Strategy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Diagnose,
    Fix,
    Verify,
    Retry,
    Escalate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub kind: StepKind,
    pub strategy: Strategy,
    pub risk: Risk,
    pub reason: String,
    /// Seconds to wait before the step runs.
    #[serde(default)]
    pub delay_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Execute the steps.
    Act,
    /// Execute only after a human approved.
    AwaitApproval,
    /// Hand to a human.
    Escalate,
    /// Nothing to do.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealPlan {
    pub decision: Decision,
    pub strategy: Strategy,
    pub steps: Vec<PlanStep>,
    pub reason: String,
}

impl HealPlan {
    /// A plan that hands the failure to a human with `reason`.
    pub fn escalated(reason: String) -> HealPlan {
        HealPlan {
            decision: Decision::Escalate,
            strategy: Strategy::Escalate,
            steps: vec![PlanStep {
                kind: StepKind::Escalate,
                strategy: Strategy::Escalate,
                risk: Risk::Low,
                reason: reason.clone(),
                delay_seconds: 0,
            }],
            reason,
        }
    }
}

/// Settings the plan depends on; built from configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Retries per run (GitLab's `retry:max` is 2).
    pub max_attempts: u32,
    /// Base delay before a retry; doubled per attempt.
    pub backoff_seconds: u64,
    /// Job, stage or environment names that deploy, release or publish: never re-run unapproved.
    pub side_effect_patterns: Vec<String>,
    /// Minimum confidence to act on a transient diagnosis.
    pub min_confidence: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 2,
            backoff_seconds: 30,
            side_effect_patterns: ["deploy", "release", "publish", "production"]
                .map(String::from)
                .to_vec(),
            min_confidence: 0.5,
        }
    }
}

/// What the executor can do for this event, so the plan does not promise the impossible.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub retry: bool,
    pub scale_resources: bool,
    pub clear_cache: bool,
    pub reset_environment: bool,
    pub heal_host: bool,
    /// Strategies already carried out for this run. Scaling, clearing caches and resetting
    /// change the environment, so each is done at most once per run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub used: Vec<Strategy>,
}

impl Capabilities {
    pub fn supports(&self, s: Strategy) -> bool {
        match s {
            Strategy::Retry => self.retry,
            Strategy::ScaleResources => self.scale_resources,
            Strategy::ClearCache => self.clear_cache,
            Strategy::ResetEnvironment => self.reset_environment,
            Strategy::HealHost => self.heal_host,
            Strategy::Escalate | Strategy::None => true,
        }
    }

    /// What to do instead when `s` is not available: a clean workspace also clears local
    /// caches and files a previous build left with the wrong owner.
    fn alternative(&self, s: Strategy) -> Option<Strategy> {
        let alt = match s {
            Strategy::HealHost | Strategy::ClearCache => Strategy::ResetEnvironment,
            _ => return None,
        };
        self.supports(alt).then_some(alt)
    }
}

/// Strategies that change the environment rather than only re-running.
fn changes_environment(s: Strategy) -> bool {
    matches!(
        s,
        Strategy::ScaleResources | Strategy::ClearCache | Strategy::ResetEnvironment
    )
}

impl Policy {
    /// True when a job's name, stage or environment says it changes what is live.
    pub fn has_side_effects(&self, names: &[&str]) -> bool {
        names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            self.side_effect_patterns
                .iter()
                .any(|p| !p.is_empty() && n.contains(&p.to_ascii_lowercase()))
        })
    }

    /// Why no heal attempt is left for a failure of `category`, if none is.
    pub fn exhausted(&self, category: Category, attempts_done: u32) -> Option<String> {
        (attempts_done >= self.max_attempts).then(|| {
            format!(
                "{category} persisted after {attempts_done} heal attempt(s); the limit is {}",
                self.max_attempts
            )
        })
    }

    /// The policy's part of a plan for one failure, before learning, fixes and gates: only
    /// the planner (`crate::planner::decide`) calls it. `attempts_done` counts heals already
    /// made for the run.
    pub(crate) fn plan(
        &self,
        diagnosis: &Diagnosis,
        event: &FailureEvent,
        caps: &Capabilities,
        attempts_done: u32,
    ) -> HealPlan {
        let category = diagnosis.category;
        if category == Category::Cancelled {
            return HealPlan {
                decision: Decision::Skip,
                strategy: Strategy::None,
                steps: vec![],
                reason: "the run was cancelled; nothing to heal".into(),
            };
        }
        if !diagnosis.transient {
            let why = if category == Category::Unknown {
                "the cause is not recognised with confidence; a human should look".to_string()
            } else {
                format!("{category} needs a code or configuration change; retrying would not help")
            };
            return escalate(why);
        }
        if diagnosis.confidence < self.min_confidence {
            return escalate(format!(
                "{category} diagnosed with confidence {:.2}, below the {:.2} needed to act",
                diagnosis.confidence, self.min_confidence
            ));
        }
        if let Some(why) = self.exhausted(category, attempts_done) {
            return escalate(why);
        }
        let mut strategy = diagnosis.strategy;
        // A job that ran out of time may need a bigger runner, when one is configured.
        if category == Category::Timeout
            && strategy == Strategy::Retry
            && caps.scale_resources
            && !caps.used.contains(&Strategy::ScaleResources)
        {
            strategy = Strategy::ScaleResources;
        }
        if changes_environment(strategy) && caps.used.contains(&strategy) {
            return escalate(format!(
                "{category} persisted after {} (done once for this run); a human should look",
                strategy.as_str()
            ));
        }
        let mut fallback_note = String::new();
        if !caps.supports(strategy) {
            if let Some(alt) = caps.alternative(strategy) {
                if caps.used.contains(&alt) {
                    return escalate(format!(
                        "{category} persisted after {} (done once for this run); a human should look",
                        alt.as_str()
                    ));
                }
                fallback_note = format!(
                    " ({} is not available here, so {})",
                    strategy.as_str(),
                    alt.as_str()
                );
                strategy = alt;
            }
        }
        if !caps.supports(strategy) {
            if caps.retry && strategy != Strategy::Retry {
                fallback_note = format!(
                    " ({} is not available here, so a plain retry)",
                    strategy.as_str()
                );
                strategy = Strategy::Retry;
            } else {
                return escalate(format!(
                    "{category} would need {} which this source cannot do",
                    strategy.as_str()
                ));
            }
        }
        let delay = Backoff::uncapped(Duration::from_secs(self.backoff_seconds))
            .bound(attempts_done)
            .as_secs();
        let mut steps = vec![PlanStep {
            kind: StepKind::Diagnose,
            strategy,
            risk: Risk::Low,
            reason: format!("{category} (confidence {:.2})", diagnosis.confidence),
            delay_seconds: 0,
        }];
        if strategy != Strategy::Retry {
            steps.push(PlanStep {
                kind: StepKind::Fix,
                strategy,
                risk: if strategy == Strategy::HealHost {
                    Risk::Medium
                } else {
                    Risk::Low
                },
                reason: format!("{} before re-running", strategy.as_str()),
                delay_seconds: 0,
            });
        }
        steps.push(PlanStep {
            kind: StepKind::Retry,
            strategy,
            risk: Risk::Low,
            reason: format!(
                "attempt {} of {} after {delay}s backoff",
                attempts_done + 1,
                self.max_attempts
            ),
            delay_seconds: delay,
        });
        steps.push(PlanStep {
            kind: StepKind::Verify,
            strategy,
            risk: Risk::Low,
            reason: "the next completion of the run tells whether it healed".into(),
            delay_seconds: 0,
        });
        let names: Vec<&str> = event
            .jobs
            .iter()
            .flat_map(|j| {
                [
                    Some(j.name.as_str()),
                    j.stage.as_deref(),
                    j.environment.as_deref(),
                ]
                .into_iter()
                .flatten()
            })
            .chain(std::iter::once(event.workflow.as_str()))
            .collect();
        if self.has_side_effects(&names) {
            for s in &mut steps {
                if s.kind == StepKind::Retry {
                    s.risk = Risk::High;
                }
            }
            return HealPlan {
                decision: Decision::AwaitApproval,
                strategy,
                steps,
                reason: format!(
                    "{category} looks transient, but the job deploys or publishes: re-running changes what is live, so a human must approve{fallback_note}"
                ),
            };
        }
        HealPlan {
            decision: Decision::Act,
            strategy,
            steps,
            reason: format!(
                "{category} is transient: {}{fallback_note}",
                strategy.as_str()
            ),
        }
    }
}

fn escalate(reason: String) -> HealPlan {
    HealPlan::escalated(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Diagnosis;

    fn diag(category: Category) -> Diagnosis {
        Diagnosis {
            category,
            confidence: 0.9,
            transient: category.is_transient(),
            evidence: vec![],
            fingerprint: "fp".into(),
            strategy: Strategy::default_for(category),
            failing_tests: vec![],
            analyzer: "test".into(),
            signature: None,
            summary: String::new(),
        }
    }

    fn caps(f: impl FnOnce(&mut Capabilities)) -> Capabilities {
        let mut c = Capabilities {
            retry: true,
            ..Default::default()
        };
        f(&mut c);
        c
    }

    fn plan(c: Category, caps: &Capabilities) -> HealPlan {
        Policy::default().plan(&diag(c), &FailureEvent::default(), caps, 0)
    }

    #[test]
    fn the_backoff_doubles_with_each_attempt_and_deploys_make_the_retry_high_risk() {
        let c = caps(|_| {});
        let delay = |attempts| {
            let p = Policy::default().plan(
                &diag(Category::Network),
                &FailureEvent::default(),
                &c,
                attempts,
            );
            let retry = p.steps.iter().find(|s| s.kind == StepKind::Retry).unwrap();
            retry.delay_seconds
        };
        assert_eq!((delay(0), delay(1)), (30, 60));
        let deploy = FailureEvent {
            workflow: "deploy production".into(),
            ..Default::default()
        };
        let p = Policy::default().plan(&diag(Category::Network), &deploy, &c, 0);
        for s in &p.steps {
            let want = if s.kind == StepKind::Retry {
                Risk::High
            } else {
                Risk::Low
            };
            assert_eq!(s.risk, want, "{:?}", s.kind);
        }
    }

    #[test]
    fn earlier_retries_do_not_count_as_a_changed_environment() {
        // Retries are bounded by max_attempts, not by the once-per-run rule of scaling,
        // cache clearing and resetting.
        let p = plan(Category::Network, &caps(|c| c.used = vec![Strategy::Retry]));
        assert_eq!((p.decision, p.strategy), (Decision::Act, Strategy::Retry));
    }

    #[test]
    fn a_platform_that_cannot_even_retry_gets_an_escalation_not_a_retry() {
        let nothing = Capabilities::default();
        let p = plan(Category::CacheCorruption, &nothing);
        assert_eq!(p.decision, Decision::Escalate, "{}", p.reason);
        assert_ne!(p.strategy, Strategy::Retry);
    }

    #[test]
    fn scaling_happens_once_per_run_then_escalates() {
        let first = plan(Category::OutOfMemory, &caps(|c| c.scale_resources = true));
        assert_eq!(
            (first.decision, first.strategy),
            (Decision::Act, Strategy::ScaleResources)
        );
        let again = plan(
            Category::OutOfMemory,
            &caps(|c| {
                c.scale_resources = true;
                c.used = vec![Strategy::ScaleResources];
            }),
        );
        assert_eq!(again.decision, Decision::Escalate);
        assert!(again.reason.contains("done once"), "{}", again.reason);
    }

    #[test]
    fn a_timeout_gets_a_bigger_runner_only_when_one_is_configured() {
        assert_eq!(
            plan(Category::Timeout, &caps(|_| {})).strategy,
            Strategy::Retry
        );
        assert_eq!(
            plan(Category::Timeout, &caps(|c| c.scale_resources = true)).strategy,
            Strategy::ScaleResources
        );
    }

    #[test]
    fn a_clean_workspace_stands_in_for_missing_cache_and_host_fixes() {
        let p = plan(
            Category::CacheCorruption,
            &caps(|c| c.reset_environment = true),
        );
        assert_eq!(p.strategy, Strategy::ResetEnvironment);
        assert!(
            p.reason.contains("clear_cache is not available"),
            "{}",
            p.reason
        );
        let p = plan(
            Category::PermissionDenied,
            &caps(|c| c.reset_environment = true),
        );
        assert_eq!(p.strategy, Strategy::ResetEnvironment);
        // Without either, a plain retry, said so.
        let p = plan(Category::CacheCorruption, &caps(|_| {}));
        assert_eq!(p.strategy, Strategy::Retry);
        // Nor is a workspace reset twice when it stands in for clearing caches.
        let p = plan(
            Category::CacheCorruption,
            &caps(|c| {
                c.reset_environment = true;
                c.used = vec![Strategy::ResetEnvironment];
            }),
        );
        assert_eq!(p.decision, Decision::Escalate);
        // A cache already cleared once does not get cleared again.
        let p = plan(
            Category::CacheCorruption,
            &caps(|c| {
                c.clear_cache = true;
                c.used = vec![Strategy::ClearCache];
            }),
        );
        assert_eq!(p.decision, Decision::Escalate);
    }

    #[test]
    fn genuine_failures_are_never_scaled_or_retried() {
        let p = plan(
            Category::CompilationError,
            &caps(|c| {
                c.scale_resources = true;
                c.clear_cache = true;
                c.reset_environment = true;
            }),
        );
        assert_eq!(p.decision, Decision::Escalate);
    }
}
