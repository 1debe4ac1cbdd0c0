//! Replays a trace of failed pipeline runs through pipeguard's real decision path (analyzer →
//! the worker's planner, `planner::decide`, with learning) and through two baselines, so the value of healing can be measured
//! before it is switched on. Pure and deterministic: the same trace gives the same report.
//!
//! The trace format and the metrics are documented in `docs/simulate.md`.

mod bad_runner;
mod generate;
mod storm;
mod transient;

pub use bad_runner::{BadRunnerArm, BadRunnerConfig, BadRunnerReport};
pub use generate::{generate, GeneratorMix, MIX};
pub use storm::{simulate_storm, StormArm, StormArmReport, StormConfig, StormReport};
pub use transient::{Spread, TransientArm, TransientArmReport, TransientReport};

use crate::analysis::{Analyzer, Diagnosis};
use crate::category::Category;
use crate::event::{FailedJob, FailureEvent, Platform};
use crate::heal::JobDiagnosis;
use crate::learning::{ArmStats, Learned};
use crate::lifecycle::SessionStatus;
use crate::planner::{self, Facts, Happened, Known, Step};
use crate::policy::{Capabilities, Decision, HealPlan, Policy, StepKind, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// One failed run of a trace: what the CI showed, and the ground truth the replay is judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRun {
    pub id: String,
    pub repository: String,
    /// The failed job's name; deploy, release or publish jobs meet the approval gate.
    pub job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Ground truth: what really caused the failure.
    pub category: Category,
    /// The failing log excerpt the analyzer reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Used when there is no log: the diagnosis is then the ground truth (a perfect analyzer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// How many plain re-runs it takes to pass: 1 = the first re-run passes; absent = none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reruns_to_pass: Option<u32>,
    /// Whether the category's own remedy (bigger runner, cleared cache, healed host) followed by
    /// a re-run passes; absent = the same as a plain re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy_passes: Option<bool>,
    /// Minutes one run of the job takes (the cost of each re-run).
    pub duration_minutes: f64,
    /// Minutes from the moment a person takes the failure over until the run is green.
    pub fix_minutes: f64,
    /// The CI platform: whether pipeguard may retry the job before the run completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Minutes the rest of the run (its other jobs) went on after the job failed; absent = 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_rest_minutes: Option<f64>,
}

impl TraceRun {
    /// Ground truth says a machine may heal it.
    pub fn is_transient(&self) -> bool {
        self.category.is_transient()
    }

    /// Whether the `n`-th (1-based) heal attempt with `strategy` turns the run green.
    fn attempt_passes(&self, strategy: Strategy, n: u32) -> bool {
        match (strategy, self.remedy_passes) {
            (Strategy::Retry, _) | (_, None) => self.reruns_to_pass == Some(n),
            (_, Some(p)) => p,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("`id` is empty".into());
        }
        if self.log.is_none() && self.fingerprint.is_none() {
            return Err("a run needs a `log` or a `fingerprint`".into());
        }
        if !(self.duration_minutes.is_finite() && self.duration_minutes > 0.0) {
            return Err(format!(
                "`duration_minutes` must be a positive number, not {}",
                self.duration_minutes
            ));
        }
        if !(self.fix_minutes.is_finite() && self.fix_minutes >= 0.0) {
            return Err(format!(
                "`fix_minutes` must be zero or more, not {}",
                self.fix_minutes
            ));
        }
        if self
            .run_rest_minutes
            .is_some_and(|m| !(m.is_finite() && m >= 0.0))
        {
            return Err("`run_rest_minutes` must be zero or more".into());
        }
        if self.reruns_to_pass == Some(0) {
            return Err("`reruns_to_pass` counts re-runs and starts at 1".into());
        }
        Ok(())
    }
}

/// A trace line that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TraceError {}

/// Reads a JSONL trace: one run a line; blank lines are skipped.
pub fn parse_trace(text: &str) -> Result<Vec<TraceRun>, TraceError> {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| TraceError {
            line: i + 1,
            message,
        };
        let run: TraceRun = serde_json::from_str(line).map_err(|e| {
            // serde's own position counts lines of the one-line document: keep the column.
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m);
            err(format!("column {}: {msg}", e.column()))
        })?;
        run.validate().map_err(err)?;
        runs.push(run);
    }
    if runs.is_empty() {
        return Err(TraceError {
            line: 0,
            message: "the trace holds no run".into(),
        });
    }
    Ok(runs)
}

/// Writes runs as JSONL, one a line.
pub fn to_jsonl(runs: &[TraceRun]) -> String {
    let mut out = String::new();
    for r in runs {
        out.push_str(&serde_json::to_string(r).expect("a trace run serialises"));
        out.push('\n');
    }
    out
}

/// Minutes until a person notices a failed run and re-runs it: 54.42 % of restarted Travis CI
/// builds were restarted within an hour of the failure (Durieux et al., MSR 2020), so the
/// median is just under an hour; 45 minutes reads it conservatively.
pub const NOTICE_MINUTES: f64 = 45.0;

/// How the replay is run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub policy: Policy,
    /// What the executor can do: re-run, and (as for a repository with a `scale` mapping on a
    /// platform with a cache API or cache-key variable) scale and clear caches.
    pub caps: Capabilities,
    /// Minutes a deploy waits for a person to approve its re-run.
    pub approval_minutes: f64,
    /// Re-runs of the naive baseline (GitLab's `retry: 2`).
    pub naive_retries: u32,
    /// Runs per window of the learning curve.
    pub window: usize,
    /// Minutes from a failed run's end until a person notices it and re-runs it (the realistic
    /// baseline of the transient-failure report; docs/simulate.md gives the source).
    pub notice_minutes: f64,
    /// Re-runs a person tries before investigating the cause.
    pub manual_reruns: u32,
    /// Platforms where pipeguard retries a failed job while the rest of its run goes on.
    pub early_platforms: Vec<Platform>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            policy: Policy::default(),
            caps: Capabilities {
                retry: true,
                scale_resources: true,
                clear_cache: true,
                ..Default::default()
            },
            approval_minutes: 30.0,
            naive_retries: 2,
            window: 200,
            notice_minutes: NOTICE_MINUTES,
            manual_reruns: 2,
            early_platforms: vec![Platform::Gitlab, Platform::Buildkite],
        }
    }
}

/// The arms compared, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Every failure waits for a person.
    NoHealing,
    /// Re-run whatever failed, up to `naive_retries` times, as CI retry settings do.
    RetryTwice,
    /// pipeguard's analyzer and policy without learning from outcomes.
    PipeguardStatic,
    /// pipeguard as it runs: analyzer, policy and learning.
    Pipeguard,
}

impl Arm {
    pub const ALL: [Arm; 4] = [
        Arm::NoHealing,
        Arm::RetryTwice,
        Arm::PipeguardStatic,
        Arm::Pipeguard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arm::NoHealing => "no_healing",
            Arm::RetryTwice => "retry_twice",
            Arm::PipeguardStatic => "pipeguard_static",
            Arm::Pipeguard => "pipeguard",
        }
    }
}

/// What happened to one run under one arm.
#[derive(Debug, Clone, Default, PartialEq)]
struct Outcome {
    /// Green without a person.
    healed: bool,
    /// Green by a re-run although the ground truth needs a human: the re-run hid a defect.
    false_heal: bool,
    /// A person had to act (fix, restart or approve).
    human: bool,
    /// Handed to a person by a decision (not after exhausting re-runs).
    escalated: bool,
    learned_escalation: bool,
    awaited_approval: bool,
    /// A deploy re-run without anyone approving it.
    unapproved_deploy_rerun: bool,
    reruns: u32,
    rerun_minutes: f64,
    wasted_minutes: f64,
    time_to_green: f64,
    /// Minutes from the failure (the run's end, for a platform that waits) to the first re-run
    /// call: approval and backoff; `None` when nothing was re-run.
    first_call: Option<f64>,
    /// The first heal was a plain retry without approval: one a platform that retries jobs
    /// while the run goes on takes before the run completes.
    first_plain_retry: bool,
}

impl Outcome {
    fn rerun(&mut self, run: &TraceRun, passed: bool) {
        self.reruns += 1;
        self.rerun_minutes += run.duration_minutes;
        self.time_to_green += run.duration_minutes;
        if !passed || !run.is_transient() {
            self.wasted_minutes += run.duration_minutes;
        }
        if passed {
            self.false_heal = !run.is_transient() && !self.human;
            self.healed = !self.false_heal && !self.human;
        }
    }

    fn hand_to_person(&mut self, run: &TraceRun) {
        self.human = true;
        self.time_to_green += run.fix_minutes;
    }
}

/// Metrics of one arm over the whole trace.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    pub arm: Arm,
    pub runs: usize,
    /// Green without a person (false heals excluded).
    pub healed: usize,
    pub success_rate: f64,
    pub false_heals: usize,
    pub human_interventions: usize,
    pub escalations: usize,
    pub learned_escalations: usize,
    pub awaiting_approval: usize,
    pub unapproved_deploy_reruns: usize,
    pub reruns: u32,
    pub rerun_minutes: f64,
    /// Re-run minutes of genuine failures, and of re-runs that failed.
    pub wasted_minutes: f64,
    pub mean_time_to_green_minutes: f64,
    pub median_time_to_green_minutes: f64,
}

/// One window of the learning curve.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// 1-based index of the first and last run of the window.
    pub first_run: usize,
    pub last_run: usize,
    pub pipeguard_success_rate: f64,
    pub pipeguard_wasted_minutes: f64,
    pub pipeguard_learned_escalations: usize,
    pub static_success_rate: f64,
    pub static_wasted_minutes: f64,
}

/// How well the analyzer's transient/needs-a-human call matched the ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosisReport {
    pub analyzed_runs: usize,
    /// Of runs diagnosed transient, the share whose ground truth is transient.
    pub transient_precision: f64,
    /// Of runs whose ground truth is transient, the share diagnosed transient.
    pub transient_recall: f64,
    /// Runs diagnosed `unknown`.
    pub unknown: usize,
    /// Runs whose diagnosed category equals the ground truth.
    pub category_matches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub runs: usize,
    pub genuine_runs: usize,
    pub deploy_runs: usize,
    pub arms: Vec<ArmReport>,
    /// Time to green over the transient failures alone, against a person re-running them.
    pub transient: TransientReport,
    pub window: usize,
    pub learning_curve: Vec<WindowReport>,
    pub diagnosis: DiagnosisReport,
}

impl Report {
    pub fn arm(&self, arm: Arm) -> &ArmReport {
        self.arms
            .iter()
            .find(|a| a.arm == arm)
            .expect("every arm is reported")
    }
}

/// Replays `runs` in order through every arm.
pub fn simulate(runs: &[TraceRun], analyzer: &Analyzer, cfg: &SimConfig) -> Report {
    let diagnoses: Vec<Diagnosis> = runs.iter().map(|r| diagnose(analyzer, r)).collect();
    let no_healing: Vec<Outcome> = runs.iter().map(no_healing).collect();
    let naive: Vec<Outcome> = runs.iter().map(|r| retry_naively(r, cfg)).collect();
    let stat = replay_pipeguard(runs, &diagnoses, cfg, false);
    let learned = replay_pipeguard(runs, &diagnoses, cfg, true);

    let window = cfg.window.max(1);
    let learning_curve = (0..runs.len())
        .step_by(window)
        .map(|start| {
            let end = (start + window).min(runs.len());
            let (p, s) = (&learned[start..end], &stat[start..end]);
            WindowReport {
                first_run: start + 1,
                last_run: end,
                pipeguard_success_rate: share(p.iter().filter(|o| o.healed).count(), p.len()),
                pipeguard_wasted_minutes: round1(p.iter().map(|o| o.wasted_minutes).sum()),
                pipeguard_learned_escalations: p.iter().filter(|o| o.learned_escalation).count(),
                static_success_rate: share(s.iter().filter(|o| o.healed).count(), s.len()),
                static_wasted_minutes: round1(s.iter().map(|o| o.wasted_minutes).sum()),
            }
        })
        .collect();

    Report {
        runs: runs.len(),
        genuine_runs: runs.iter().filter(|r| !r.is_transient()).count(),
        deploy_runs: runs.iter().filter(|r| is_deploy(r, &cfg.policy)).count(),
        arms: vec![
            arm_report(Arm::NoHealing, &no_healing),
            arm_report(Arm::RetryTwice, &naive),
            arm_report(Arm::PipeguardStatic, &stat),
            arm_report(Arm::Pipeguard, &learned),
        ],
        transient: transient::report(runs, &learned, cfg),
        window,
        learning_curve,
        diagnosis: diagnosis_report(runs, &diagnoses),
    }
}

fn diagnose(analyzer: &Analyzer, run: &TraceRun) -> Diagnosis {
    match &run.log {
        Some(log) => analyzer.analyze(log.as_bytes()),
        // No log: the ground truth stands in for a perfect analyzer.
        None => Diagnosis {
            category: run.category,
            confidence: 1.0,
            transient: run.category.is_transient(),
            evidence: vec![],
            fingerprint: run.fingerprint.clone().unwrap_or_default(),
            strategy: Strategy::default_for(run.category),
            failing_tests: vec![],
            analyzer: "trace".into(),
            signature: None,
            summary: String::new(),
        },
    }
}

fn event(run: &TraceRun) -> FailureEvent {
    FailureEvent {
        repository: run.repository.clone(),
        run_id: run.id.clone(),
        attempt: 1,
        jobs: vec![FailedJob {
            id: "1".into(),
            name: run.job.clone(),
            stage: run.stage.clone(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn is_deploy(run: &TraceRun, policy: &Policy) -> bool {
    let mut names = vec![run.job.as_str()];
    names.extend(run.stage.as_deref());
    policy.has_side_effects(&names)
}

fn no_healing(run: &TraceRun) -> Outcome {
    let mut o = Outcome::default();
    o.hand_to_person(run);
    o
}

fn retry_naively(run: &TraceRun, cfg: &SimConfig) -> Outcome {
    let mut o = Outcome::default();
    let deploy = is_deploy(run, &cfg.policy);
    for n in 1..=cfg.naive_retries {
        let passed = run.attempt_passes(Strategy::Retry, n);
        o.unapproved_deploy_rerun |= deploy;
        o.rerun(run, passed);
        if passed {
            return o;
        }
    }
    o.hand_to_person(run);
    o
}

/// Outcomes carried from earlier runs: per (fingerprint, strategy), and the repository's
/// record per (repository, category, strategy), as the store's `learned` counts them.
#[derive(Default)]
struct Record {
    by_fingerprint: HashMap<(String, Strategy), ArmStats>,
    by_category: HashMap<(String, Category, Strategy), ArmStats>,
}

impl Record {
    /// What the worker's `learned` facts would say about `diag` in `repository`.
    fn learned(&self, repository: &str, diag: &Diagnosis) -> Vec<(Strategy, Learned)> {
        STRATEGIES
            .into_iter()
            .map(|st| {
                let fp = (diag.fingerprint.clone(), st);
                let cat = (repository.to_string(), diag.category, st);
                let learned = Learned {
                    fingerprint: self.by_fingerprint.get(&fp).copied().unwrap_or_default(),
                    category: self.by_category.get(&cat).copied().unwrap_or_default(),
                };
                (st, learned)
            })
            .filter(|(_, l)| l.fingerprint.trials() + l.category.trials() > 0)
            .collect()
    }

    fn count(&mut self, repository: &str, diag: &Diagnosis, st: Strategy, healed: bool) {
        let fp = self.by_fingerprint.entry((diag.fingerprint.clone(), st));
        let arms = [
            fp.or_default(),
            self.by_category
                .entry((repository.to_string(), diag.category, st))
                .or_default(),
        ];
        for a in arms {
            if healed {
                a.healed += 1;
            } else {
                a.failed += 1;
            }
        }
    }
}

const STRATEGIES: [Strategy; 5] = [
    Strategy::Retry,
    Strategy::ScaleResources,
    Strategy::ClearCache,
    Strategy::ResetEnvironment,
    Strategy::HealHost,
];

/// pipeguard's arm: the server's session loop through the worker's planner, one run at a
/// time, with outcomes carried from earlier runs when `learn` is set.
fn replay_pipeguard(
    runs: &[TraceRun],
    diagnoses: &[Diagnosis],
    cfg: &SimConfig,
    learn: bool,
) -> Vec<Outcome> {
    let mut record = Record::default();
    runs.iter()
        .zip(diagnoses)
        .map(|(run, diag)| {
            let o = replay_session(run, diag, cfg, learn.then_some(&record));
            if let Some((strategy, healed)) = o.1 {
                record.count(&run.repository, diag, strategy, healed);
            }
            o.0
        })
        .collect()
}

/// One session: the planner decides on the diagnosis, then on each attempt's outcome, as the
/// worker asks it. Returns the outcome and, when a strategy was tried, whether it healed.
fn replay_session(
    run: &TraceRun,
    diag: &Diagnosis,
    cfg: &SimConfig,
    record: Option<&Record>,
) -> (Outcome, Option<(Strategy, bool)>) {
    let ev = event(run);
    let jobs = [JobDiagnosis {
        job: ev.jobs[0].clone(),
        diagnosis: diag.clone(),
    }];
    let mut o = Outcome::default();
    let mut known = Known {
        capabilities: cfg.caps.clone(),
        learned: record
            .map(|r| r.learned(&run.repository, diag))
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut attempts = 0u32;
    let mut tried = None;
    loop {
        let mut f = Facts {
            status: SessionStatus::Analyzing,
            happened: Happened::Diagnosed(&jobs),
            event: &ev,
            policy: &cfg.policy,
            attempts_done: attempts,
            plan: None,
            known: known.clone(),
        };
        let next = planner::decide(&f).expect("a diagnosed session is analyzing");
        let Step::Plan(stored) = next.step else {
            unreachable!("one diagnosed job always gives a plan")
        };
        let plan = &stored.plan;
        if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
            o.escalated = true;
            o.learned_escalation = plan.reason.starts_with("learning:");
            o.hand_to_person(run);
            // An escalation after a heal counts against the strategy tried, as the store does.
            return (o, tried.map(|t| (t, false)));
        }
        attempts += 1;
        let passed = rerun(run, &mut o, plan, cfg, attempts);
        if plan.strategy != Strategy::Retry {
            known.capabilities.used.push(plan.strategy);
        }
        tried = Some(plan.strategy);
        f.attempts_done = attempts;
        match completed(f, &stored, passed) {
            SessionStatus::Healed => return (o, Some((plan.strategy, true))),
            SessionStatus::Analyzing => continue,
            // Out of heal attempts: handed to a person.
            _ => {
                o.escalated = true;
                o.hand_to_person(run);
                return (o, Some((plan.strategy, false)));
            }
        }
    }
}

/// Where the planner takes the session once the heal's attempt completed.
fn completed<'a>(
    mut f: Facts<'a>,
    stored: &'a crate::heal::StoredPlan,
    passed: bool,
) -> SessionStatus {
    f.status = SessionStatus::Verifying;
    f.plan = Some(stored);
    f.happened = Happened::Completed {
        attempt: f.attempts_done + 1,
        shown: f.attempts_done as i64 + 1,
        success: passed,
    };
    let after = planner::decide(&f).expect("an attempt completes while verifying");
    after.status
}

/// One heal attempt of `plan`: the approval a deploy waits for, the backoff and the re-run.
fn rerun(run: &TraceRun, o: &mut Outcome, plan: &HealPlan, cfg: &SimConfig, n: u32) -> bool {
    if plan.decision == Decision::AwaitApproval {
        o.awaited_approval = true;
        o.human = true;
        o.time_to_green += cfg.approval_minutes;
    }
    let delay_minutes = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Retry)
        .map(|s| s.delay_seconds as f64 / 60.0)
        .sum::<f64>();
    o.time_to_green += delay_minutes;
    if o.first_call.is_none() {
        o.first_call = Some(o.time_to_green);
        o.first_plain_retry = plan.decision == Decision::Act && plan.strategy == Strategy::Retry;
    }
    let passed = run.attempt_passes(plan.strategy, n);
    o.rerun(run, passed);
    passed
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn arm_report(arm: Arm, os: &[Outcome]) -> ArmReport {
    let count = |f: fn(&Outcome) -> bool| os.iter().filter(|o| f(o)).count();
    let healed = count(|o| o.healed);
    let ttg: Vec<f64> = os.iter().map(|o| o.time_to_green).collect();
    ArmReport {
        arm,
        runs: os.len(),
        healed,
        success_rate: share(healed, os.len()),
        false_heals: count(|o| o.false_heal),
        human_interventions: count(|o| o.human),
        escalations: count(|o| o.escalated),
        learned_escalations: count(|o| o.learned_escalation),
        awaiting_approval: count(|o| o.awaited_approval),
        unapproved_deploy_reruns: count(|o| o.unapproved_deploy_rerun),
        reruns: os.iter().map(|o| o.reruns).sum(),
        rerun_minutes: round1(os.iter().map(|o| o.rerun_minutes).sum()),
        wasted_minutes: round1(os.iter().map(|o| o.wasted_minutes).sum()),
        mean_time_to_green_minutes: round1(ttg.iter().sum::<f64>() / os.len().max(1) as f64),
        median_time_to_green_minutes: round1(median(ttg)),
    }
}

fn diagnosis_report(runs: &[TraceRun], diagnoses: &[Diagnosis]) -> DiagnosisReport {
    let analyzed: Vec<(&TraceRun, &Diagnosis)> = runs
        .iter()
        .zip(diagnoses)
        .filter(|(r, _)| r.log.is_some())
        .collect();
    let said = analyzed.iter().filter(|(_, d)| d.transient).count();
    let right = analyzed
        .iter()
        .filter(|(r, d)| d.transient && r.is_transient())
        .count();
    let truly = analyzed.iter().filter(|(r, _)| r.is_transient()).count();
    DiagnosisReport {
        analyzed_runs: analyzed.len(),
        transient_precision: share(right, said),
        transient_recall: share(right, truly),
        unknown: analyzed
            .iter()
            .filter(|(_, d)| d.category == Category::Unknown)
            .count(),
        category_matches: analyzed
            .iter()
            .filter(|(r, d)| d.category == r.category)
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning;

    fn run(id: usize, category: Category, log: &str, reruns_to_pass: Option<u32>) -> TraceRun {
        TraceRun {
            id: format!("r{id}"),
            repository: "acme/api".into(),
            job: "test".into(),
            stage: None,
            category,
            log: Some(log.into()),
            fingerprint: None,
            reruns_to_pass,
            remedy_passes: None,
            duration_minutes: 10.0,
            fix_minutes: 60.0,
            platform: None,
            run_rest_minutes: None,
        }
    }

    const RESET: &str = "npm ERR! code ECONNRESET\nnpm ERR! network aborted\nnpm ERR! errno ECONNRESET\nnpm ERR! network request to https://registry.npmjs.org/left-pad failed, reason: socket hang up\n##[error]Process completed with exit code 1.";
    const ASSERT: &str = "running 12 tests\ntest parser::tests::keeps_order ... FAILED\n\nfailures:\n---- parser::tests::keeps_order stdout ----\nthread 'parser::tests::keeps_order' panicked at src/parser.rs:88:9:\nassertion `left == right` failed\n  left: 3\n right: 4\ntest result: FAILED. 11 passed; 1 failed\nerror: test failed, to rerun pass `--lib`";

    #[test]
    fn pipeguard_retries_transient_and_escalates_genuine() {
        let runs = vec![
            run(1, Category::Network, RESET, Some(1)),
            run(2, Category::TestFailure, ASSERT, None),
        ];
        let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
        let p = r.arm(Arm::Pipeguard);
        assert_eq!(p.healed, 1);
        assert_eq!(p.reruns, 1, "only the network failure is re-run");
        assert_eq!(p.wasted_minutes, 0.0);
        let naive = r.arm(Arm::RetryTwice);
        assert_eq!(
            naive.reruns, 3,
            "one re-run heals the first, two fail on the second"
        );
        assert_eq!(naive.wasted_minutes, 20.0);
        assert_eq!(r.arm(Arm::NoHealing).healed, 0);
        assert_eq!(r.arm(Arm::NoHealing).mean_time_to_green_minutes, 60.0);
    }

    #[test]
    fn a_fingerprint_whose_retries_never_pass_is_escalated_after_learning() {
        // The same transient-looking failure, which no re-run ever fixes.
        let runs: Vec<TraceRun> = (0..8)
            .map(|i| run(i, Category::ConfigurationError, RESET, None))
            .collect();
        let cfg = SimConfig {
            window: 4,
            ..Default::default()
        };
        let r = simulate(&runs, &Analyzer::builtin(), &cfg);
        let p = r.arm(Arm::Pipeguard);
        let s = r.arm(Arm::PipeguardStatic);
        assert_eq!(
            s.reruns, 16,
            "without learning every run spends its two re-runs"
        );
        assert_eq!(
            p.reruns,
            2 * learning::MIN_TRIALS,
            "after MIN_TRIALS failed sessions the fingerprint is escalated"
        );
        assert_eq!(p.learned_escalations, 8 - learning::MIN_TRIALS as usize);
        let curve = &r.learning_curve;
        assert!(curve[1].pipeguard_wasted_minutes < curve[0].pipeguard_wasted_minutes);
        assert_eq!(curve[1].pipeguard_wasted_minutes, 0.0);
    }

    #[test]
    fn out_of_memory_is_scaled_once_and_heals_where_a_plain_rerun_would_not() {
        let oom = "   Compiling app v0.1.0\nerror: could not compile `app` (lib)\nCaused by:\n  process didn't exit successfully: `rustc --crate-name app` (signal: 9, SIGKILL: kill)\n";
        let mut scaled = run(1, Category::OutOfMemory, oom, None);
        scaled.remedy_passes = Some(true);
        let mut hopeless = run(2, Category::OutOfMemory, oom, None);
        hopeless.remedy_passes = Some(false);
        let runs = vec![scaled, hopeless];
        let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
        let p = r.arm(Arm::Pipeguard);
        assert_eq!(p.healed, 1, "the bigger runner heals the first");
        assert_eq!(
            p.reruns, 2,
            "one scaled run each; the second is not scaled again"
        );
        let retry_only = SimConfig {
            caps: Capabilities {
                retry: true,
                ..Default::default()
            },
            ..SimConfig::default()
        };
        let r = simulate(&runs, &Analyzer::builtin(), &retry_only);
        assert_eq!(r.arm(Arm::Pipeguard).healed, 0);
    }

    #[test]
    fn a_deploy_is_never_rerun_without_approval() {
        let mut r1 = run(1, Category::Network, RESET, Some(1));
        r1.job = "deploy-production".into();
        let r = simulate(&[r1], &Analyzer::builtin(), &SimConfig::default());
        let p = r.arm(Arm::Pipeguard);
        assert_eq!(p.unapproved_deploy_reruns, 0);
        assert_eq!(p.awaiting_approval, 1);
        assert_eq!(p.healed, 0, "an approved re-run needed a person");
        assert_eq!(r.arm(Arm::RetryTwice).unapproved_deploy_reruns, 1);
    }

    #[test]
    fn a_genuine_failure_that_a_rerun_turns_green_is_a_false_heal() {
        let runs = vec![run(1, Category::TestFailure, ASSERT, Some(2))];
        let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
        let naive = r.arm(Arm::RetryTwice);
        assert_eq!((naive.false_heals, naive.healed), (1, 0));
        assert_eq!(naive.wasted_minutes, 20.0);
        assert_eq!(r.arm(Arm::Pipeguard).false_heals, 0);
    }

    #[test]
    fn transient_failures_are_timed_against_a_person_and_retried_early_where_allowed() {
        let mut gitlab = run(1, Category::Network, RESET, Some(1));
        gitlab.platform = Some(Platform::Gitlab);
        gitlab.run_rest_minutes = Some(20.0);
        let mut github = gitlab.clone();
        github.platform = Some(Platform::Github);
        // A genuine failure is not part of the transient report.
        let runs = vec![gitlab, github, run(3, Category::TestFailure, ASSERT, None)];
        let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
        let t = &r.transient;
        assert_eq!(t.runs, 2);
        // A person: the 20 minutes the run goes on, 45 to notice, 10 to re-run.
        let manual = t.arm(TransientArm::ManualRerun);
        assert_eq!(manual.time_to_green_minutes.mean, 75.0);
        assert_eq!(manual.failure_to_retry_minutes.mean, 65.0);
        assert_eq!(manual.retried_by_pipeguard, 0);
        // pipeguard after the run: 20 + 0.5 backoff + 10.
        let after = t.arm(TransientArm::PipeguardAfterRun);
        assert_eq!(after.time_to_green_minutes.mean, 30.5);
        assert_eq!(after.failure_to_retry_minutes.p50, 20.5);
        assert_eq!(after.retried_before_run_end, 0);
        // Early on GitLab: the retry (0.5 + 10) runs beside the rest of the run (20).
        let early = t.arm(TransientArm::Pipeguard);
        assert_eq!(early.time_to_green_minutes.p50, 20.0);
        assert_eq!(early.time_to_green_minutes.p90, 30.5);
        assert_eq!(early.failure_to_retry_minutes.p50, 0.5);
        assert_eq!(early.pipeguard_retry_minutes.p90, 20.5);
        assert_eq!(manual.pipeguard_retry_minutes.mean, 0.0);
        assert_eq!(
            (early.retried_by_pipeguard, early.retried_before_run_end),
            (2, 1)
        );
        assert_eq!(early.mean_reduction, 0.663);
        // A person who notices at once leaves less to gain.
        let quick = SimConfig {
            notice_minutes: 0.0,
            ..Default::default()
        };
        let r = simulate(&runs, &Analyzer::builtin(), &quick);
        assert_eq!(
            r.transient
                .arm(TransientArm::ManualRerun)
                .time_to_green_minutes
                .mean,
            30.0
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let good = to_jsonl(&[run(1, Category::Network, RESET, Some(1))]);
        let text = format!("{good}\n{{\"id\": \"x\"}}\n");
        let e = parse_trace(&text).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("missing field"), "{e}");
        assert!(
            !e.message.contains("line 1"),
            "one position, the trace's: {e}"
        );
        let mut bad = run(2, Category::Network, RESET, Some(0));
        bad.reruns_to_pass = Some(0);
        let e = parse_trace(&to_jsonl(&[bad])).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("reruns_to_pass"), "{e}");
        assert!(parse_trace("\n\n").is_err());
        assert_eq!(parse_trace(&good).unwrap().len(), 1);
    }

    #[test]
    fn on_a_generated_trace_pipeguard_wastes_less_than_naive_retries_and_heals_more_than_nothing() {
        let runs = generate(400, 7);
        let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
        let p = r.arm(Arm::Pipeguard);
        let naive = r.arm(Arm::RetryTwice);
        let none = r.arm(Arm::NoHealing);
        assert!(p.wasted_minutes < naive.wasted_minutes, "{p:?} {naive:?}");
        assert!(p.success_rate > none.success_rate);
        assert!(p.false_heals < naive.false_heals);
        assert!(p.mean_time_to_green_minutes < none.mean_time_to_green_minutes);
        assert!(p.wasted_minutes <= r.arm(Arm::PipeguardStatic).wasted_minutes);
    }
}
