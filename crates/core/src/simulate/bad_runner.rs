//! A bad runner in the storm: one runner of the pool starts failing a share of its jobs, each
//! from another repository. The healers that judge failures one by one re-run each of them,
//! and a re-run that lands on the same runner fails again, until people notice. pipeguard
//! counts the jobs per runner, flags the runner by the same test the server uses
//! ([`runners::judge`]), takes it out, and re-runs the failures it caused once it is out.

use super::storm::{StormArm, StormConfig};
use super::{round1, TraceRun};
use crate::category::Category;
use crate::runners::{self, RunnerCount, THRESHOLDS};
use serde::Serialize;
use std::collections::HashSet;

/// The pool and its bad runner.
#[derive(Debug, Clone)]
pub struct BadRunnerConfig {
    /// Runners in the pool (the trace's failures ran on them in turn).
    pub pool: u32,
    /// Jobs the pool runs a minute, passed or failed.
    pub jobs_per_minute: f64,
    /// When the runner goes bad (minutes from the start) and how long until people notice
    /// and take it out by hand.
    pub start_minutes: f64,
    pub minutes: f64,
    /// Share of its jobs that fail while it is bad.
    pub fail_share: f64,
}

impl Default for BadRunnerConfig {
    fn default() -> Self {
        BadRunnerConfig {
            pool: 20,
            jobs_per_minute: 20.0,
            start_minutes: 45.0,
            minutes: 240.0,
            fail_share: 0.5,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BadRunnerArm {
    pub arm: StormArm,
    /// Jobs the bad runner failed.
    pub failures: u32,
    /// Re-runs of those failures, and of them the ones that landed on it again and failed.
    pub reruns: u32,
    pub failed_again: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BadRunnerReport {
    pub pool: u32,
    pub bad_from_minutes: f64,
    /// Minutes after it went bad that pipeguard flagged it; `None`: never.
    pub flagged_after_minutes: Option<f64>,
    /// Its unrelated failures when flagged, and the test's p-value then.
    pub flagged_at_failures: u64,
    pub p_value: f64,
    pub arms: Vec<BadRunnerArm>,
    /// Re-runs the per-failure healer spent on the bad runner's failures beyond pipeguard's.
    pub reruns_saved: i64,
}

/// The pool's counts, minute by minute: the trace's failures in turn over the healthy
/// runners (runner 0 is the bad one), every runner's share of the jobs, and the bad runner's
/// failures. Returns when pipeguard flagged it (minute, its failures, p-value).
fn flag(failures: &[(f64, &TraceRun)], b: &BadRunnerConfig, until: f64) -> Option<(f64, u64, f64)> {
    let pool = b.pool.max(2) as usize;
    let mut counts: Vec<RunnerCount> = (0..pool)
        .map(|r| RunnerCount {
            name: format!("runner-{r}"),
            ..Default::default()
        })
        .collect();
    let mut causes: Vec<HashSet<(String, Category)>> = vec![HashSet::new(); pool];
    let (mut next, mut bad_jobs) = (0usize, 0.0f64);
    let mut t = 0.0;
    while t <= until {
        for c in counts.iter_mut() {
            c.jobs += (b.jobs_per_minute / pool as f64).round().max(1.0) as u64;
        }
        for (_, run) in failures.iter().filter(|(at, _)| *at >= t && *at < t + 1.0) {
            let r = 1 + next % (pool - 1);
            next += 1;
            counts[r].failures += 1;
            if causes[r].insert((run.repository.clone(), run.category)) {
                counts[r].unrelated_failures += 1;
            }
        }
        if t >= b.start_minutes {
            // Its failures, evenly: each from another repository, so each is unrelated.
            bad_jobs += b.jobs_per_minute / pool as f64 * b.fail_share;
            while bad_jobs >= 1.0 {
                bad_jobs -= 1.0;
                counts[0].failures += 1;
                counts[0].unrelated_failures += 1;
            }
            let v = runners::judge(&counts[0], &counts, &THRESHOLDS);
            if v.suspect {
                return Some((t, counts[0].unrelated_failures, v.p_value));
            }
        }
        t += 1.0;
    }
    None
}

/// The bad runner's failures from `from` for `minutes`, each re-run up to `attempts` times;
/// a re-run goes to the pool's runners in turn and fails again on the bad one while it is in.
fn undetected(arm: StormArm, b: &BadRunnerConfig, attempts: u32) -> BadRunnerArm {
    let pool = b.pool.max(2);
    let failures = (b.jobs_per_minute / pool as f64 * b.fail_share * b.minutes).floor() as u32;
    let (mut reruns, mut failed_again, mut turn) = (0, 0, 0u32);
    for _ in 0..failures {
        for _ in 0..attempts {
            reruns += 1;
            turn += 1;
            if turn % pool != 0 {
                break;
            }
            failed_again += 1;
        }
    }
    BadRunnerArm {
        arm,
        failures,
        reruns,
        failed_again,
    }
}

pub(super) fn simulate(
    failures: &[(f64, &TraceRun)],
    cfg: &StormConfig,
    horizon: f64,
) -> BadRunnerReport {
    let b = &cfg.bad_runner;
    let until = (b.start_minutes + b.minutes).min(horizon);
    let flagged = flag(failures, b, until);
    let per = undetected(StormArm::PerFailure, b, cfg.policy.max_attempts.max(1));
    let naive = undetected(StormArm::RetryEverything, b, cfg.retries.max(1));
    // It failed until flagged and taken out; each of those is re-run once it is out, on a
    // healthy runner.
    let caught = flagged.map_or(per.failures, |(_, n, _)| n as u32);
    let pg = BadRunnerArm {
        arm: StormArm::Pipeguard,
        failures: caught,
        reruns: caught,
        failed_again: 0,
    };
    BadRunnerReport {
        pool: b.pool,
        bad_from_minutes: b.start_minutes,
        flagged_after_minutes: flagged.map(|(t, _, _)| round1(t - b.start_minutes)),
        flagged_at_failures: flagged.map_or(0, |(_, n, _)| n),
        p_value: flagged.map_or(1.0, |(_, _, p)| p),
        reruns_saved: per.reruns as i64 - pg.reruns as i64,
        arms: vec![naive, per, pg],
    }
}
