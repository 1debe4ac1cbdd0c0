//! Learning from outcomes: how often a strategy healed a failure fingerprint, as a Beta
//! posterior whose prior is the built-in policy's belief that transient failures heal.

use crate::policy::{Decision, HealPlan};
use serde::{Deserialize, Serialize};

/// Outcomes of one arm (a strategy on a fingerprint, or on a category).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    pub healed: u32,
    pub failed: u32,
}

impl ArmStats {
    pub fn trials(&self) -> u32 {
        self.healed + self.failed
    }

    /// Posterior mean of the heal rate under a Beta(`prior_healed`, `prior_failed`) prior.
    pub fn posterior_mean(&self, prior: (f64, f64)) -> f64 {
        (self.healed as f64 + prior.0) / (self.trials() as f64 + prior.0 + prior.1)
    }
}

/// What was learned about the failure at hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    pub fingerprint: ArmStats,
    pub category: ArmStats,
}

/// The built-in belief: a transient diagnosis heals on retry about two times in three, held
/// weakly (1.5 pseudo-observations) so three straight failures outweigh it.
pub const PRIOR: (f64, f64) = (1.0, 0.5);
/// Below this posterior heal rate a strategy is not worth its compute.
pub const MIN_HEAL_RATE: f64 = 0.25;
/// Evidence needed before learning overrides the built-in policy.
pub const MIN_TRIALS: u32 = 3;
/// A category mixes many different failures, so its record must be longer to count.
pub const MIN_CATEGORY_TRIALS: u32 = 10;

/// Adjusts a plan with what outcomes taught: a fingerprint whose heals keep failing is
/// escalated instead of retried again. The reason says when learning changed the choice.
pub fn apply(plan: HealPlan, learned: &Learned) -> HealPlan {
    if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
        return plan;
    }
    let fp = learned.fingerprint;
    let rate = fp.posterior_mean(PRIOR);
    if fp.trials() >= MIN_TRIALS && rate < MIN_HEAL_RATE {
        let reason = format!(
            "learning: {} healed {} of {} times for this failure fingerprint (estimated heal rate {:.2} < {:.2}); escalating instead of spending more compute",
            plan.strategy.as_str(),
            fp.healed,
            fp.trials(),
            rate,
            MIN_HEAL_RATE
        );
        return HealPlan::escalated(reason);
    }
    // A failure not seen often enough is judged by its category's record in the repository.
    let cat = learned.category;
    let cat_rate = cat.posterior_mean(PRIOR);
    if fp.trials() < MIN_TRIALS && cat.trials() >= MIN_CATEGORY_TRIALS && cat_rate < MIN_HEAL_RATE {
        let reason = format!(
            "learning: {} healed {} of {} failures of this category in this repository (estimated heal rate {:.2} < {:.2}); escalating instead of spending more compute",
            plan.strategy.as_str(),
            cat.healed,
            cat.trials(),
            cat_rate,
            MIN_HEAL_RATE
        );
        return HealPlan::escalated(reason);
    }
    let mut plan = plan;
    if fp.trials() >= MIN_TRIALS {
        plan.reason = format!(
            "{}; learning: healed {} of {} times before (estimated heal rate {rate:.2})",
            plan.reason,
            fp.healed,
            fp.trials()
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Strategy;

    fn act() -> HealPlan {
        HealPlan {
            decision: Decision::Act,
            strategy: Strategy::Retry,
            steps: vec![],
            reason: "network is transient: retry".into(),
        }
    }

    #[test]
    fn a_fingerprint_that_never_heals_is_escalated() {
        let learned = Learned {
            fingerprint: ArmStats {
                healed: 0,
                failed: 3,
            },
            ..Default::default()
        };
        let p = apply(act(), &learned);
        assert_eq!(p.decision, Decision::Escalate);
        assert!(p.reason.starts_with("learning:"), "{}", p.reason);
    }

    #[test]
    fn too_little_evidence_or_good_record_keeps_the_plan() {
        let few = Learned {
            fingerprint: ArmStats {
                healed: 0,
                failed: 2,
            },
            ..Default::default()
        };
        assert_eq!(apply(act(), &few), act());
        let good = Learned {
            fingerprint: ArmStats {
                healed: 4,
                failed: 1,
            },
            ..Default::default()
        };
        let p = apply(act(), &good);
        assert_eq!(p.decision, Decision::Act);
        assert!(p.reason.contains("healed 4 of 5"), "{}", p.reason);
    }

    #[test]
    fn a_category_that_rarely_heals_speaks_for_new_fingerprints_only_with_enough_evidence() {
        let poor = ArmStats {
            healed: 1,
            failed: 11,
        };
        let p = apply(
            act(),
            &Learned {
                category: poor,
                ..Default::default()
            },
        );
        assert_eq!(p.decision, Decision::Escalate);
        assert!(p.reason.contains("of this category"), "{}", p.reason);
        // Too short a record, or a fingerprint with its own good record, keeps the plan.
        let short = ArmStats {
            healed: 0,
            failed: 5,
        };
        let keep = Learned {
            category: short,
            ..Default::default()
        };
        assert_eq!(apply(act(), &keep).decision, Decision::Act);
        let own = Learned {
            fingerprint: ArmStats {
                healed: 3,
                failed: 0,
            },
            category: poor,
        };
        assert_eq!(apply(act(), &own).decision, Decision::Act);
    }

    #[test]
    fn posterior_moves_from_the_prior_with_evidence() {
        let none = ArmStats::default();
        assert!((none.posterior_mean(PRIOR) - 2.0 / 3.0).abs() < 1e-9);
        let bad = ArmStats {
            healed: 0,
            failed: 9,
        };
        assert!(bad.posterior_mean(PRIOR) < 0.2);
    }
}
