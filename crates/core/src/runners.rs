//! Bad runners: a runner, agent or node whose jobs fail for unrelated reasons far more often
//! than its pool's. Pure statistics over counts the store keeps; the server acts on them.
//!
//! Failures of one repository with one category are one cause (the code or its tests), so a
//! runner's *unrelated* failures count each (repository, category) once. A runner is suspect
//! when that count is at least [`THRESHOLDS`]`.min_unrelated` and a one-sided binomial test
//! says its rate of unrelated failures per job is above the pool's with p below
//! [`THRESHOLDS`]`.p_value`.

use crate::event::Runner;
use serde::{Deserialize, Serialize};

/// When a runner is suspect, as data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Unrelated failures needed before a runner can be suspect at all.
    pub min_unrelated: u64,
    /// The binomial test's significance: a runner is suspect below it.
    pub p_value: f64,
    /// The pool's rate is taken as at least this: a pool with no unrelated failure yet must
    /// not make one runner's few failures infinitely unlikely.
    pub pool_floor: f64,
    /// Jobs the rest of the pool must have run for its rate to mean anything.
    pub min_pool_jobs: u64,
    /// Jobs and failures older than this are forgotten.
    pub window_hours: u32,
}

pub const THRESHOLDS: Thresholds = Thresholds {
    min_unrelated: 5,
    p_value: 0.001,
    pool_floor: 0.02,
    min_pool_jobs: 10,
    window_hours: 24,
};

/// One job a runner ran, as a delivery or the jobs API tells.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerJob {
    pub runner: Runner,
    pub job_id: String,
    pub repository: String,
    pub failed: bool,
}

/// A runner's counts over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerCount {
    pub name: String,
    pub jobs: u64,
    pub failures: u64,
    /// Failures counted once per (repository, category).
    pub unrelated_failures: u64,
}

/// What the test says of one runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub suspect: bool,
    /// P(at least this many unrelated failures | the pool's rate); 1.0 when not tested.
    pub p_value: f64,
    /// The rate it was compared with (floored).
    pub pool_rate: f64,
}

/// Judges `runner` against the rest of its pool (`pool` may include it; it is left out).
pub fn judge(runner: &RunnerCount, pool: &[RunnerCount], t: &Thresholds) -> Verdict {
    let (jobs, unrelated) = pool
        .iter()
        .filter(|r| r.name != runner.name)
        .fold((0u64, 0u64), |(j, u), r| {
            (j + r.jobs.max(r.failures), u + r.unrelated_failures)
        });
    let pool_rate = if jobs == 0 {
        1.0
    } else {
        (unrelated as f64 / jobs as f64).max(t.pool_floor)
    };
    let untested = Verdict {
        suspect: false,
        p_value: 1.0,
        pool_rate,
    };
    if runner.unrelated_failures < t.min_unrelated || jobs < t.min_pool_jobs {
        return untested;
    }
    // Jobs seen only through their failure still ran.
    let n = runner.jobs.max(runner.failures);
    let p_value = upper_tail(runner.unrelated_failures, n, pool_rate);
    Verdict {
        suspect: p_value < t.p_value,
        p_value,
        pool_rate,
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space so large `n` neither overflows nor
/// underflows the first term.
pub fn upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) built up term by term.
    let mut ln_c: f64 = (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum();
    let mut sum = 0.0;
    for i in k..=n {
        sum += (ln_c + i as f64 * lp + (n - i) as f64 * lq).exp();
        ln_c += ((n - i) as f64 / (i + 1) as f64).ln();
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, jobs: u64, failures: u64, unrelated: u64) -> RunnerCount {
        RunnerCount {
            name: name.into(),
            jobs,
            failures,
            unrelated_failures: unrelated,
        }
    }

    #[test]
    fn binomial_tail_matches_hand_computed_values() {
        // P(X ≥ 1 | 10, 0.1) = 1 - 0.9^10
        assert!((upper_tail(1, 10, 0.1) - (1.0 - 0.9f64.powi(10))).abs() < 1e-12);
        // P(X ≥ 3 | 3, 0.5) = 1/8
        assert!((upper_tail(3, 3, 0.5) - 0.125).abs() < 1e-12);
        // P(X ≥ 2 | 4, 0.5) = 11/16
        assert!((upper_tail(2, 4, 0.5) - 11.0 / 16.0).abs() < 1e-12);
        assert_eq!(upper_tail(0, 5, 0.3), 1.0);
        assert_eq!(upper_tail(6, 5, 0.3), 0.0);
        // Large n stays finite and exact (computed with exact fractions: 0.0217056246358024).
        let big = upper_tail(30, 10_000, 0.002);
        assert!((big - 0.021_705_624_635_802_4).abs() < 1e-9, "{big}");
    }

    #[test]
    fn a_runner_failing_unrelated_jobs_far_above_its_pool_is_suspect() {
        // 12 unrelated failures in 20 jobs against a pool at 2 in 200.
        let bad = count("bad", 20, 12, 12);
        let pool = [count("a", 100, 1, 1), count("b", 100, 1, 1), bad.clone()];
        let v = judge(&bad, &pool, &THRESHOLDS);
        assert!(v.suspect, "{v:?}");
        assert!(v.p_value < 1e-10, "{v:?}");
        assert_eq!(v.pool_rate, THRESHOLDS.pool_floor, "1% is floored at 2%");
    }

    #[test]
    fn the_same_failures_from_one_cause_are_not_suspect() {
        // 12 failures, all of one repository and category: one unrelated failure.
        let related = count("healthy", 20, 12, 1);
        let pool = [count("a", 100, 1, 1), related.clone()];
        assert!(!judge(&related, &pool, &THRESHOLDS).suspect);
    }

    #[test]
    fn a_runner_no_worse_than_its_pool_is_not_suspect() {
        // 5 unrelated failures in 100 jobs where the pool fails 5 in 100 too.
        let r = count("r", 100, 5, 5);
        let pool = [count("a", 100, 5, 5), count("b", 100, 5, 5)];
        let v = judge(&r, &pool, &THRESHOLDS);
        assert!(!v.suspect && v.p_value > 0.3, "{v:?}");
    }

    #[test]
    fn below_the_minimum_count_nothing_is_tested() {
        // 4 of 4 jobs failed for 4 unrelated reasons: striking, but too few to take out.
        let r = count("r", 4, 4, 4);
        let pool = [count("a", 200, 0, 0)];
        assert_eq!(judge(&r, &pool, &THRESHOLDS).p_value, 1.0);
        // One more and the test runs and flags it: (0.02)^5 is far below 0.001.
        let r = count("r", 5, 5, 5);
        assert!(judge(&r, &pool, &THRESHOLDS).suspect);
    }

    #[test]
    fn without_a_pool_there_is_nothing_to_compare_with() {
        let r = count("only", 10, 10, 10);
        let v = judge(&r, std::slice::from_ref(&r), &THRESHOLDS);
        assert!(!v.suspect);
        let few = [count("a", 9, 0, 0)];
        assert!(
            !judge(&r, &few, &THRESHOLDS).suspect,
            "9 pool jobs are too few"
        );
    }

    #[test]
    fn the_threshold_decides_between_close_cases() {
        // 6 unrelated in 30 jobs against 4%: p ≈ 0.00106, suspect only at a looser p.
        let r = count("r", 30, 6, 6);
        let pool = [count("a", 100, 4, 4)];
        let v = judge(&r, &pool, &THRESHOLDS);
        assert!(!v.suspect && v.p_value > 0.001 && v.p_value < 0.01, "{v:?}");
        let loose = Thresholds {
            p_value: 0.01,
            ..THRESHOLDS
        };
        assert!(judge(&r, &pool, &loose).suspect);
    }
}
