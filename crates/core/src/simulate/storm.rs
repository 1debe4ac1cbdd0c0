//! A storm: the trace replayed minute by minute with an outage in it (for a period, a share
//! of the failures that arrive are one registry's), through three healers: re-run everything
//! that fails, pipeguard deciding per failure (the planner without incidents), and pipeguard
//! with incidents (held, one canary at a time, a paced wave). Both pipeguard arms ask the
//! planner (`planner::decide`) for every move, as the worker does.

use super::bad_runner::{self, BadRunnerConfig, BadRunnerReport};
use super::{diagnose, event, round1, TraceRun};
use crate::analysis::{Analyzer, Diagnosis, Evidence};
use crate::category::Category;
use crate::heal::{JobDiagnosis, StoredPlan};
use crate::incident::{self, Open};
use crate::lifecycle::SessionStatus;
use crate::planner::{self, Budget, Count, Facts, Happened, Known, Next, Step};
use crate::policy::{Capabilities, Policy, Strategy};
use serde::Serialize;
use std::collections::HashSet;

/// The outage and the healers' limits.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Failures arriving per minute (the trace's runs, in order).
    pub failures_per_minute: f64,
    pub outage_start_minutes: f64,
    pub outage_minutes: f64,
    /// Share of the failures arriving during the outage that are the outage's.
    pub outage_share: f64,
    /// Re-runs per hour over all repositories (`[healing] budget_per_hour`).
    pub budget_per_hour: u32,
    /// Re-runs of the retry-everything healer per failure.
    pub retries: u32,
    pub policy: Policy,
    pub incidents: incident::Settings,
    pub bad_runner: BadRunnerConfig,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            failures_per_minute: 2.0,
            outage_start_minutes: 30.0,
            outage_minutes: 90.0,
            outage_share: 0.6,
            budget_per_hour: 300,
            retries: 2,
            policy: Policy::default(),
            incidents: incident::Settings::default(),
            bad_runner: BadRunnerConfig::default(),
        }
    }
}

/// The healers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StormArm {
    RetryEverything,
    PerFailure,
    Pipeguard,
}

impl StormArm {
    pub const ALL: [StormArm; 3] = [
        StormArm::RetryEverything,
        StormArm::PerFailure,
        StormArm::Pipeguard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StormArm::RetryEverything => "retry_everything",
            StormArm::PerFailure => "per_failure",
            StormArm::Pipeguard => "pipeguard",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StormArmReport {
    pub arm: StormArm,
    pub reruns: u32,
    /// Re-runs of the outage's failures that failed because the outage went on.
    pub reruns_into_outage: u32,
    pub canaries: u32,
    pub outage_healed: usize,
    /// Outage failures handed to people (attempts or budget used up, or given up).
    pub outage_to_people: usize,
    /// Minutes from the outage's end until its last failure was green.
    pub minutes_to_green_after_outage: f64,
    pub unrelated_transient: usize,
    pub unrelated_healed: usize,
    /// Unrelated transient failures handed to people because the budget was used up.
    pub unrelated_stopped_by_budget: usize,
    /// Re-runs the hourly budget still allowed when the outage ended.
    pub budget_left_at_outage_end: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub failures: usize,
    pub outage_failures: usize,
    pub outage_start_minutes: f64,
    pub outage_minutes: f64,
    pub arms: Vec<StormArmReport>,
    pub bad_runner: BadRunnerReport,
}

/// The outage's failures name this registry.
const TARGET: &str = "registry.npmjs.org";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Outage,
    Unrelated {
        transient: bool,
        passes_on: Option<u32>,
    },
}

/// One failure of the storm and its diagnosis.
struct Failure<'a> {
    at: f64,
    run: &'a TraceRun,
    kind: Kind,
    diagnosis: Diagnosis,
}

/// Where a failure's session is.
#[derive(Debug, Clone, Default)]
struct Session {
    status: Option<SessionStatus>,
    /// When its next move is due (a call after backoff, or a re-run's outcome).
    due: f64,
    plan: Option<StoredPlan>,
    attempts: u32,
    green_at: Option<f64>,
    person: bool,
    budget_stop: bool,
    canary: bool,
}

fn outage_diagnosis() -> Diagnosis {
    Diagnosis {
        category: Category::DependencyDownload,
        confidence: 0.9,
        transient: true,
        evidence: vec![Evidence {
            line: 3,
            text: format!("npm ERR! network request to https://{TARGET}/react failed"),
        }],
        fingerprint: "registry-outage".into(),
        strategy: Strategy::Retry,
        failing_tests: vec![],
        analyzer: "rules".into(),
        signature: None,
        summary: String::new(),
    }
}

/// The storm: the trace's runs arriving at the configured rate, the outage's share of those
/// arriving during it replaced by the outage's failure (spread evenly).
fn storm<'a>(runs: &'a [TraceRun], analyzer: &Analyzer, cfg: &StormConfig) -> Vec<Failure<'a>> {
    let share = cfg.outage_share.clamp(0.0, 1.0);
    let end = cfg.outage_start_minutes + cfg.outage_minutes;
    let mut during = 0.0;
    runs.iter()
        .enumerate()
        .map(|(i, run)| {
            let at = i as f64 / cfg.failures_per_minute.max(0.01);
            if at >= cfg.outage_start_minutes && at < end {
                during += 1.0;
                if (during * share).floor() > ((during - 1.0) * share).floor() {
                    let diagnosis = outage_diagnosis();
                    return Failure {
                        at,
                        run,
                        kind: Kind::Outage,
                        diagnosis,
                    };
                }
            }
            let kind = Kind::Unrelated {
                transient: run.is_transient(),
                passes_on: run.reruns_to_pass,
            };
            Failure {
                at,
                run,
                kind,
                diagnosis: diagnose(analyzer, run),
            }
        })
        .collect()
}

/// Replays the storm through each healer.
pub fn simulate_storm(runs: &[TraceRun], analyzer: &Analyzer, cfg: &StormConfig) -> StormReport {
    let failures = storm(runs, analyzer, cfg);
    let unrelated: Vec<(f64, &TraceRun)> = failures
        .iter()
        .filter(|f| f.kind != Kind::Outage)
        .map(|f| (f.at, f.run))
        .collect();
    let horizon = failures.last().map_or(0.0, |f| f.at);
    StormReport {
        bad_runner: bad_runner::simulate(&unrelated, cfg, horizon),
        failures: failures.len(),
        outage_failures: failures.iter().filter(|f| f.kind == Kind::Outage).count(),
        outage_start_minutes: cfg.outage_start_minutes,
        outage_minutes: cfg.outage_minutes,
        arms: StormArm::ALL
            .into_iter()
            .map(|arm| Replay::new(arm, &failures, cfg).run())
            .collect(),
    }
}

/// The open (or closed) incident of the pipeguard arm.
#[derive(Debug, Default)]
struct Incident {
    opened_at: Option<f64>,
    closed_at: Option<f64>,
    given_up: bool,
    canary: Option<usize>,
    next_canary: f64,
    canaries: u32,
    last_release: f64,
}

struct Replay<'a, 'b> {
    arm: StormArm,
    failures: &'b [Failure<'a>],
    cfg: &'b StormConfig,
    sessions: Vec<Session>,
    reruns: Vec<f64>,
    into_outage: u32,
    incident: Incident,
    /// Outage failures seen so far: (minute, repository), for detection.
    seen: Vec<(f64, &'a str)>,
}

impl<'a, 'b> Replay<'a, 'b> {
    fn new(arm: StormArm, failures: &'b [Failure<'a>], cfg: &'b StormConfig) -> Self {
        Replay {
            arm,
            failures,
            cfg,
            sessions: vec![Session::default(); failures.len()],
            reruns: vec![],
            into_outage: 0,
            incident: Incident::default(),
            seen: vec![],
        }
    }

    fn outage_end(&self) -> f64 {
        self.cfg.outage_start_minutes + self.cfg.outage_minutes
    }

    fn run(mut self) -> StormArmReport {
        let last = self.failures.last().map_or(0.0, |f| f.at);
        let horizon = last.max(self.outage_end()) + 24.0 * 60.0;
        let mut t = 0.0;
        while t <= horizon {
            for i in 0..self.failures.len() {
                self.step(i, t);
            }
            if self.arm == StormArm::Pipeguard {
                self.incident_step(t);
            }
            t += 1.0;
        }
        self.report()
    }

    /// Moves failure `i` on at minute `t`, when its move is due.
    fn step(&mut self, i: usize, t: f64) {
        let f = &self.failures[i];
        let s = &self.sessions[i];
        if f.at > t || s.green_at.is_some() || s.person || s.due > t {
            return;
        }
        if self.arm == StormArm::RetryEverything {
            return self.retry_everything(i, t);
        }
        match s.status {
            None => {
                if f.kind == Kind::Outage {
                    self.seen.push((t, f.run.repository.as_str()));
                    self.detect(t);
                }
                self.diagnosed(i, t, 0)
            }
            Some(SessionStatus::Planned) => self.due(i, t),
            _ => {}
        }
    }

    fn retry_everything(&mut self, i: usize, t: f64) {
        let n = self.sessions[i].attempts + 1;
        if n > self.cfg.retries {
            return self.hand_over(i, t, false);
        }
        self.rerun(i, t, n);
    }

    /// Re-runs failure `i` at `t` (heal attempt `n`); its outcome is known a run later.
    fn rerun(&mut self, i: usize, t: f64, n: u32) -> bool {
        let f = &self.failures[i];
        let done = t + f.run.duration_minutes;
        self.reruns.push(t);
        let passed = match f.kind {
            Kind::Outage => t >= self.outage_end(),
            Kind::Unrelated { passes_on, .. } => passes_on.is_some_and(|k| n >= k),
        };
        if f.kind == Kind::Outage && !passed {
            self.into_outage += 1;
        }
        let s = &mut self.sessions[i];
        s.attempts = n;
        s.due = done;
        if passed {
            s.green_at = Some(done);
        }
        passed
    }

    fn hand_over(&mut self, i: usize, t: f64, budget: bool) {
        let s = &mut self.sessions[i];
        s.person = true;
        s.budget_stop = budget;
        s.green_at = Some(t + self.failures[i].run.fix_minutes);
    }

    fn open_incident(&self, i: usize) -> Option<Open> {
        let inc = &self.incident;
        let open = inc.opened_at.is_some() && inc.closed_at.is_none();
        (open && self.failures[i].kind == Kind::Outage).then(|| Open {
            id: 1,
            target: TARGET.into(),
            canary: inc.canary == Some(i),
        })
    }

    fn budget(&self, t: f64) -> Budget {
        let used = self.reruns.iter().filter(|r| **r > t - 60.0).count() as i64;
        let limit = self.cfg.budget_per_hour;
        Budget {
            repository: None,
            global: Some(Count { used, limit }),
            wave: (limit > 0).then(|| Count {
                used,
                limit: incident::wave_limit(limit, &self.cfg.incidents),
            }),
        }
    }

    fn decide(&self, i: usize, status: SessionStatus, happened: Happened, attempts: u32) -> Next {
        let f = &self.failures[i];
        let ev = event(f.run);
        let known = Known {
            capabilities: Capabilities {
                retry: true,
                ..Default::default()
            },
            incident: self.open_incident(i),
            ..Default::default()
        };
        let facts = Facts {
            status,
            happened,
            event: &ev,
            policy: &self.cfg.policy,
            attempts_done: attempts,
            plan: self.sessions[i].plan.as_ref(),
            known,
        };
        planner::decide(&facts).expect("the replay follows the state machine")
    }

    /// The planner on the (fresh) diagnosis: plan with backoff, hold, or hand over.
    fn diagnosed(&mut self, i: usize, t: f64, attempts: u32) {
        let f = &self.failures[i];
        let ev = event(f.run);
        let jobs = [JobDiagnosis {
            job: ev.jobs[0].clone(),
            diagnosis: f.diagnosis.clone(),
        }];
        let next = self.decide(
            i,
            SessionStatus::Analyzing,
            Happened::Diagnosed(&jobs),
            attempts,
        );
        let Step::Plan(plan) = next.step else {
            return self.hand_over(i, t, false);
        };
        let delay = plan
            .plan
            .steps
            .iter()
            .map(|s| s.delay_seconds)
            .max()
            .unwrap_or(0);
        let s = &mut self.sessions[i];
        s.plan = Some(plan);
        s.status = Some(next.status);
        s.due = t + delay as f64 / 60.0;
        if !matches!(next.status, SessionStatus::Planned | SessionStatus::Held) {
            self.hand_over(i, t, false);
        }
    }

    /// The call is due: the planner checks the budget and the incident.
    fn due(&mut self, i: usize, t: f64) {
        let next = self.decide(
            i,
            SessionStatus::Planned,
            Happened::Due(self.budget(t)),
            self.sessions[i].attempts,
        );
        match next.step {
            Step::Hold(_) => self.sessions[i].status = Some(SessionStatus::Held),
            Step::Call(..) => {
                let n = self.sessions[i].attempts + 1;
                let canary = self.sessions[i].canary;
                if !self.rerun(i, t, n) {
                    self.sessions[i].status = Some(SessionStatus::Verifying);
                    self.failed(i, t + self.failures[i].run.duration_minutes, canary);
                }
            }
            _ => self.hand_over(i, t, next.reason.contains("budget")),
        }
    }

    /// A re-run failed: diagnosed afresh (held again while the incident is open) unless no
    /// attempt is left.
    fn failed(&mut self, i: usize, at: f64, canary: bool) {
        let attempts = self.sessions[i].attempts;
        let done = Happened::Completed {
            attempt: attempts + 1,
            shown: attempts as i64 + 1,
            success: false,
        };
        let next = self.decide(i, SessionStatus::Verifying, done, attempts);
        if next.step != Step::Diagnose {
            return self.hand_over(i, at, false);
        }
        if canary {
            self.sessions[i].canary = false;
            self.incident.canary = None;
            let delay = incident::canary_delay_seconds(self.incident.canaries, &self.cfg.incidents);
            self.incident.next_canary = at + delay as f64 / 60.0;
        }
        self.diagnosed(i, at, attempts);
    }

    fn detect(&mut self, t: f64) {
        if self.arm != StormArm::Pipeguard || self.incident.opened_at.is_some() {
            return;
        }
        let since = t - self.cfg.incidents.window_minutes as f64;
        let repos: HashSet<&str> = self
            .seen
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, r)| *r)
            .collect();
        if incident::opens(repos.len(), &self.cfg.incidents) {
            self.incident.opened_at = Some(t);
            self.incident.next_canary =
                t + incident::canary_delay_seconds(0, &self.cfg.incidents) as f64 / 60.0;
        }
    }

    fn held(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|i| {
                self.sessions[*i].status == Some(SessionStatus::Held) && !self.sessions[*i].person
            })
            .collect()
    }

    /// The incident's minute: its canary's outcome, the next canary, the wave, giving up.
    fn incident_step(&mut self, t: f64) {
        let Some(opened) = self.incident.opened_at else {
            return;
        };
        if let Some(c) = self.incident.canary {
            if self.sessions[c].green_at.is_some_and(|g| g <= t)
                && self.incident.closed_at.is_none()
            {
                self.incident.closed_at = Some(t);
                self.incident.last_release = t;
                self.incident.canary = None;
            }
            return;
        }
        if self.incident.closed_at.is_some() {
            return self.wave(t);
        }
        if !self.incident.given_up && t - opened > self.cfg.incidents.give_up_hours as f64 * 60.0 {
            self.incident.given_up = true;
            self.incident.closed_at = Some(t);
            for i in self.held() {
                self.hand_over(i, t, false);
            }
            return;
        }
        if t < self.incident.next_canary {
            return;
        }
        let held = self.held();
        let Some(&c) = held
            .iter()
            .min_by_key(|i| (self.sessions[**i].attempts, **i))
        else {
            return;
        };
        self.incident.canary = Some(c);
        self.incident.canaries += 1;
        self.release(c, t, true);
    }

    fn wave(&mut self, t: f64) {
        let held = self.held();
        let hour = self.budget(t).global.map(|c| incident::HourBudget {
            limit: c.limit,
            used: c.used,
        });
        let since = ((t - self.incident.last_release) * 60_000.0) as i64;
        let n = incident::release_now(held.len(), since, hour, &self.cfg.incidents);
        if n > 0 {
            self.incident.last_release = t;
        }
        for i in held.into_iter().take(n) {
            self.release(i, t, false);
        }
    }

    fn release(&mut self, i: usize, t: f64, canary: bool) {
        let next = self.decide(
            i,
            SessionStatus::Held,
            Happened::Released {
                incident: 1,
                canary,
            },
            self.sessions[i].attempts,
        );
        if let Step::Execute(Some(plan)) = next.step {
            self.sessions[i].plan = Some(plan);
        }
        self.sessions[i].status = Some(next.status);
        self.sessions[i].canary = canary;
        self.due(i, t);
    }

    fn report(&self) -> StormArmReport {
        let end = self.outage_end();
        let outage: Vec<&Session> = self.of(|k| k == Kind::Outage);
        let unrelated: Vec<&Session> = self.of(|k| {
            matches!(
                k,
                Kind::Unrelated {
                    transient: true,
                    ..
                }
            )
        });
        let used = self
            .reruns
            .iter()
            .filter(|r| **r > end - 60.0 && **r <= end)
            .count() as i64;
        StormArmReport {
            arm: self.arm,
            reruns: self.reruns.len() as u32,
            reruns_into_outage: self.into_outage,
            canaries: self.incident.canaries,
            outage_healed: outage
                .iter()
                .filter(|s| !s.person && s.green_at.is_some())
                .count(),
            outage_to_people: outage.iter().filter(|s| s.person).count(),
            minutes_to_green_after_outage: round1(
                outage
                    .iter()
                    .filter_map(|s| s.green_at)
                    .fold(0.0, f64::max)
                    .max(end)
                    - end,
            ),
            unrelated_transient: unrelated.len(),
            unrelated_healed: unrelated
                .iter()
                .filter(|s| !s.person && s.green_at.is_some())
                .count(),
            unrelated_stopped_by_budget: unrelated.iter().filter(|s| s.budget_stop).count(),
            // Negative for the healer that ignores the budget: how far it overspent.
            budget_left_at_outage_end: self.cfg.budget_per_hour as i64 - used,
        }
    }

    fn of(&self, pred: impl Fn(Kind) -> bool) -> Vec<&Session> {
        self.failures
            .iter()
            .zip(&self.sessions)
            .filter(|(f, _)| pred(f.kind))
            .map(|(_, s)| s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::generate;

    #[test]
    fn through_an_outage_pipeguard_spends_a_few_canaries_and_keeps_the_budget_for_the_rest() {
        let runs = generate(600, 7);
        let analyzer = Analyzer::builtin();
        let r = simulate_storm(&runs, &analyzer, &StormConfig::default());
        assert!(r.outage_failures > 50, "{r:?}");
        let arm = |a| r.arms.iter().find(|x| x.arm == a).unwrap().clone();
        let (naive, per, pg) = (
            arm(StormArm::RetryEverything),
            arm(StormArm::PerFailure),
            arm(StormArm::Pipeguard),
        );
        // A handful of canaries instead of a re-run of every failure into the outage.
        assert!(pg.canaries >= 2 && pg.canaries <= 8, "{pg:?}");
        assert!(pg.reruns_into_outage <= pg.canaries + 3, "{pg:?}");
        assert!(
            per.reruns_into_outage > 10 * pg.reruns_into_outage.max(1),
            "{per:?}"
        );
        assert!(
            naive.reruns_into_outage > per.reruns_into_outage / 2,
            "{naive:?}"
        );
        // Nearly all the outage broke is healed in the wave (a failed canary may use up its
        // session's attempts), and green far sooner than by the per-failure healer.
        assert_eq!(pg.outage_healed + pg.outage_to_people, r.outage_failures);
        assert!(pg.outage_to_people * 10 <= r.outage_failures, "{pg:?}");
        assert!(per.outage_to_people > r.outage_failures / 2, "{per:?}");
        assert!(
            pg.minutes_to_green_after_outage * 4.0 < per.minutes_to_green_after_outage,
            "{pg:?} {per:?}"
        );
        // The budget outlives the outage, and unrelated failures are healed meanwhile.
        assert!(
            pg.budget_left_at_outage_end > per.budget_left_at_outage_end,
            "{pg:?} {per:?}"
        );
        assert_eq!(pg.unrelated_stopped_by_budget, 0, "{pg:?}");
        assert!(
            pg.unrelated_healed >= per.unrelated_healed,
            "{pg:?} {per:?}"
        );
    }

    /// The shipped trace at 5 failures a minute, half of them the outage's while it lasts.
    fn dense(reserve_share: f64) -> StormReport {
        let runs =
            crate::simulate::parse_trace(include_str!("../../../../traces/default.jsonl")).unwrap();
        let mut cfg = StormConfig {
            failures_per_minute: 5.0,
            outage_share: 0.5,
            ..Default::default()
        };
        cfg.incidents.reserve_share = reserve_share;
        simulate_storm(&runs, &Analyzer::builtin(), &cfg)
    }

    fn arm(r: &StormReport, a: StormArm) -> StormArmReport {
        r.arms.iter().find(|x| x.arm == a).unwrap().clone()
    }

    #[test]
    fn the_wave_leaves_its_reserve_to_unrelated_failures() {
        // Without a reserve the wave takes the budget unrelated failures after it needed.
        let all = dense(0.0);
        let (per, pg) = (
            arm(&all, StormArm::PerFailure),
            arm(&all, StormArm::Pipeguard),
        );
        assert!(
            pg.unrelated_stopped_by_budget > per.unrelated_stopped_by_budget,
            "{pg:?} {per:?}"
        );
        // With a quarter kept back none is stopped, more are healed, and the wave still
        // heals the outage far sooner than the per-failure healer.
        let kept = dense(0.25);
        let (per, pg) = (
            arm(&kept, StormArm::PerFailure),
            arm(&kept, StormArm::Pipeguard),
        );
        assert_eq!(pg.unrelated_stopped_by_budget, 0, "{pg:?}");
        assert!(pg.unrelated_stopped_by_budget < per.unrelated_stopped_by_budget);
        assert!(
            pg.unrelated_healed > arm(&all, StormArm::Pipeguard).unrelated_healed,
            "{pg:?}"
        );
        assert!(
            pg.unrelated_healed >= per.unrelated_healed,
            "{pg:?} {per:?}"
        );
        assert_eq!(
            pg.outage_healed,
            arm(&all, StormArm::Pipeguard).outage_healed
        );
        assert!(
            pg.minutes_to_green_after_outage * 4.0 < per.minutes_to_green_after_outage,
            "{pg:?} {per:?}"
        );
    }

    #[test]
    fn a_bad_runner_is_flagged_taken_out_and_its_failures_rerun_once() {
        let runs = generate(600, 7);
        let r = simulate_storm(&runs, &Analyzer::builtin(), &StormConfig::default());
        let b = &r.bad_runner;
        let of = |a| b.arms.iter().find(|x| x.arm == a).unwrap().clone();
        let (per, pg) = (of(StormArm::PerFailure), of(StormArm::Pipeguard));
        let after = b.flagged_after_minutes.expect("flagged");
        assert!(after > 0.0 && after < 120.0, "{b:?}");
        assert!(b.flagged_at_failures >= THRESHOLD_MIN, "{b:?}");
        assert!(b.p_value < crate::runners::THRESHOLDS.p_value, "{b:?}");
        // Out once flagged: its failures stop there, each re-run once on a healthy runner.
        assert_eq!(pg.failures as u64, b.flagged_at_failures);
        assert_eq!((pg.reruns, pg.failed_again), (pg.failures, 0));
        assert!(per.failures > 3 * pg.failures, "{per:?} {pg:?}");
        assert!(per.failed_again > 0, "{per:?}");
        assert_eq!(b.reruns_saved, per.reruns as i64 - pg.reruns as i64);
        assert!(b.reruns_saved > 0);
    }

    const THRESHOLD_MIN: u64 = crate::runners::THRESHOLDS.min_unrelated;
}
