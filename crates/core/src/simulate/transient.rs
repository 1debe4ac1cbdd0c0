//! Time to green over the transient failures alone (the ones a healer can shorten), against
//! the realistic baseline: a person notices the failed run some minutes after it ends and
//! re-runs it, a second time if needed, then investigates. pipeguard's failures it hands over
//! take the same path; the ones it re-runs itself wait for the run to complete, except on
//! platforms that retry a job while the run goes on.

use super::{round1, Outcome, SimConfig, TraceRun};
use crate::event::Platform;
use crate::policy::Strategy;
use crate::stats::percentile;
use serde::Serialize;

/// The ways of getting a transient failure green that the report compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientArm {
    /// A person notices the failed run, re-runs it, then investigates.
    ManualRerun,
    /// pipeguard, waiting for every run to complete before re-running.
    PipeguardAfterRun,
    /// pipeguard as it runs: a failed job retried at once where the platform allows it.
    Pipeguard,
}

impl TransientArm {
    pub const ALL: [TransientArm; 3] = [
        TransientArm::ManualRerun,
        TransientArm::PipeguardAfterRun,
        TransientArm::Pipeguard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransientArm::ManualRerun => "manual_rerun",
            TransientArm::PipeguardAfterRun => "pipeguard_after_run",
            TransientArm::Pipeguard => "pipeguard",
        }
    }
}

/// Mean, median and 90th percentile of minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Spread {
    fn of(xs: &[f64]) -> Spread {
        if xs.is_empty() {
            return Spread {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
            };
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            mean: round1(mean),
            p50: round1(percentile(&sorted, 0.5).unwrap_or(0.0)),
            p90: round1(percentile(&sorted, 0.9).unwrap_or(0.0)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TransientArmReport {
    pub arm: TransientArm,
    /// Minutes from the job's failure until the run is green.
    pub time_to_green_minutes: Spread,
    /// Minutes from the job's failure to the first re-run call, whoever made it.
    pub failure_to_retry_minutes: Spread,
    /// The same over the runs whose first re-run pipeguard called itself.
    pub pipeguard_retry_minutes: Spread,
    /// Runs whose first re-run pipeguard called.
    pub retried_by_pipeguard: usize,
    /// Runs re-run before the rest of their run completed.
    pub retried_before_run_end: usize,
    /// How much shorter the mean time to green is than the manual baseline's (0.7 = 70 %).
    pub mean_reduction: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransientReport {
    /// Runs whose ground truth is transient.
    pub runs: usize,
    pub notice_minutes: f64,
    pub manual_reruns: u32,
    pub early_platforms: Vec<Platform>,
    pub arms: Vec<TransientArmReport>,
}

impl TransientReport {
    pub fn arm(&self, arm: TransientArm) -> &TransientArmReport {
        self.arms
            .iter()
            .find(|a| a.arm == arm)
            .expect("every arm is reported")
    }
}

/// One run under one arm: minutes to green, minutes to the first re-run call, who called it
/// and whether before the run completed.
#[derive(Debug, Clone, Copy)]
struct Timing {
    green: f64,
    call: f64,
    by_pipeguard: bool,
    early: bool,
}

/// A person's path from the moment the failed run is in front of them: notice, re-run and wait,
/// up to `manual_reruns` times, then investigate (`fix_minutes`).
fn by_hand(run: &TraceRun, cfg: &SimConfig) -> Timing {
    let mut green = 0.0;
    for n in 1..=cfg.manual_reruns {
        green += cfg.notice_minutes + run.duration_minutes;
        if run.attempt_passes(Strategy::Retry, n) {
            return person(green, cfg);
        }
    }
    person(green + run.fix_minutes, cfg)
}

fn person(green: f64, cfg: &SimConfig) -> Timing {
    Timing {
        green,
        call: cfg.notice_minutes,
        by_pipeguard: false,
        early: false,
    }
}

/// pipeguard's path: its own re-runs from the run's end (or from the failure, when the first is
/// a plain retry on a platform that allows it), or the person's path when it re-ran nothing.
fn by_pipeguard(run: &TraceRun, o: &Outcome, early_allowed: bool, cfg: &SimConfig) -> Timing {
    let rest = run.run_rest_minutes.unwrap_or(0.0);
    let Some(first) = o.first_call else {
        return after(rest, by_hand(run, cfg));
    };
    if !(early_allowed && o.first_plain_retry && rest > 0.0) {
        return Timing {
            green: rest + o.time_to_green,
            call: rest + first,
            by_pipeguard: true,
            early: false,
        };
    }
    // The retried job runs beside the rest of the run; whatever follows starts once both ended.
    let retried = first + run.duration_minutes;
    Timing {
        green: rest.max(retried) + (o.time_to_green - retried),
        call: first,
        by_pipeguard: true,
        early: first < rest,
    }
}

/// A timing that starts once the rest of the run completed.
fn after(rest: f64, t: Timing) -> Timing {
    Timing {
        green: rest + t.green,
        call: rest + t.call,
        ..t
    }
}

fn arm_report(arm: TransientArm, ts: &[Timing], baseline_mean: Option<f64>) -> TransientArmReport {
    let green: Vec<f64> = ts.iter().map(|t| t.green).collect();
    let call: Vec<f64> = ts.iter().map(|t| t.call).collect();
    let own: Vec<f64> = ts
        .iter()
        .filter(|t| t.by_pipeguard)
        .map(|t| t.call)
        .collect();
    let ttg = Spread::of(&green);
    let mean = green.iter().sum::<f64>() / green.len().max(1) as f64;
    TransientArmReport {
        arm,
        time_to_green_minutes: ttg,
        failure_to_retry_minutes: Spread::of(&call),
        pipeguard_retry_minutes: Spread::of(&own),
        retried_by_pipeguard: ts.iter().filter(|t| t.by_pipeguard).count(),
        retried_before_run_end: ts.iter().filter(|t| t.early).count(),
        mean_reduction: baseline_mean
            .filter(|b| *b > 0.0)
            .map(|b| (1000.0 * (1.0 - mean / b)).round() / 1000.0)
            .unwrap_or(0.0),
    }
}

/// The report over the runs whose ground truth is transient, with pipeguard's outcomes `os`.
pub(super) fn report(runs: &[TraceRun], os: &[Outcome], cfg: &SimConfig) -> TransientReport {
    let transient: Vec<(&TraceRun, &Outcome)> = runs
        .iter()
        .zip(os)
        .filter(|(r, _)| r.is_transient())
        .collect();
    let manual: Vec<Timing> = transient
        .iter()
        .map(|(r, _)| after(r.run_rest_minutes.unwrap_or(0.0), by_hand(r, cfg)))
        .collect();
    let arm = |early: bool| -> Vec<Timing> {
        transient
            .iter()
            .map(|(r, o)| {
                let allowed = early && r.platform.is_some_and(|p| cfg.early_platforms.contains(&p));
                by_pipeguard(r, o, allowed, cfg)
            })
            .collect()
    };
    let base = manual.iter().map(|t| t.green).sum::<f64>() / manual.len().max(1) as f64;
    TransientReport {
        runs: transient.len(),
        notice_minutes: cfg.notice_minutes,
        manual_reruns: cfg.manual_reruns,
        early_platforms: cfg.early_platforms.clone(),
        arms: vec![
            arm_report(TransientArm::ManualRerun, &manual, None),
            arm_report(TransientArm::PipeguardAfterRun, &arm(false), Some(base)),
            arm_report(TransientArm::Pipeguard, &arm(true), Some(base)),
        ],
    }
}
