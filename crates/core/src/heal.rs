//! Healing decisions as one pure step: what humans and outcomes taught refines each job's
//! diagnosis ([`refine`]), then [`plan`] turns the diagnosed jobs of a run, the platform's
//! capabilities, learning statistics and the configured fixes into the stored plan. The
//! worker gathers these facts from the store and the configuration; nothing here does I/O.

use crate::analysis::Diagnosis;
use crate::category::Category;
use crate::classifier::Classifier;
use crate::event::{FailedJob, FailureEvent};
use crate::learning::{self, Learned};
use crate::policy::{Capabilities, Decision, HealPlan, PlanStep, Policy, Risk, StepKind, Strategy};
use serde::{Deserialize, Serialize};

/// Flakiness rate from which a test counts as known flaky.
pub const MIN_FLAKINESS_RATE: f64 = 0.25;
/// Observed failures needed before the rate is trusted.
pub const MIN_RUNS: i64 = 2;
/// Confidence given to a diagnosis turned flaky by history or quarantine.
pub const KNOWN_FLAKY_CONFIDENCE: f64 = 0.9;
/// How a known-flaky diagnosis's summary starts.
pub const KNOWN_FLAKY: &str = "known flaky: ";
/// The `analyzer` of a diagnosis the learned classifier made.
pub const LEARNED: &str = "learned";

/// A failed job with its own diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDiagnosis {
    pub job: FailedJob,
    pub diagnosis: Diagnosis,
}

/// The plan as stored with the session: what the execute step carries out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub plan: HealPlan,
    /// What the plan heals (in a mixed run, the transient jobs' cause): its fixes run.
    pub category: Category,
    /// The jobs to re-run.
    pub jobs: Vec<FailedJob>,
    /// They are every failed job of the run, so a run-level re-run is equivalent.
    pub all_failed: bool,
    /// Some failed jobs need a human: only the transient ones are re-run.
    pub mixed: bool,
    /// Transient jobs waiting for a later attempt: on a platform that re-runs one job per
    /// attempt (GitHub), each goes when the previous attempt completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<FailedJob>,
    /// The attempt whose completion is the outcome of the heal in progress, when the
    /// platform named it (the Jenkins build a queue item became).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_attempt: Option<u32>,
}

/// What a test's history says, for the known-flaky check.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    pub test: String,
    pub runs: i64,
    pub flaky_failures: i64,
    pub flakiness_rate: f64,
    /// The quarantine reason when the test is quarantined.
    pub quarantined: Option<String>,
}

impl TestRecord {
    pub fn known_flaky(&self) -> bool {
        self.quarantined.is_some()
            || (self.runs >= MIN_RUNS && self.flakiness_rate >= MIN_FLAKINESS_RATE)
    }
}

/// What people and earlier outcomes taught, gathered before refining.
pub struct Knowledge<'a> {
    /// Trained on human verdicts; used where the knowledge base is unsure.
    pub classifier: Option<&'a Classifier>,
    pub min_confidence: f64,
    /// The repository's records of the tests the diagnoses name.
    pub tests: &'a [TestRecord],
}

/// Whether the knowledge base is unsure of a diagnosis.
pub fn unsure(d: &Diagnosis, min_confidence: f64) -> bool {
    d.category == Category::Unknown || d.confidence < min_confidence
}

/// Refines a fresh diagnosis: the classifier where the knowledge base is unsure, then the
/// flaky-test history.
pub fn refine(d: &mut Diagnosis, k: &Knowledge) {
    if let Some(model) = k.classifier.filter(|m| m.examples() > 0) {
        if unsure(d, k.min_confidence) {
            classify(model, d);
        }
    }
    apply_known_flaky(d, k.tests);
}

/// The text a diagnosis is classified by: its evidence lines. Verdicts store the same text, so
/// the classifier learns and predicts from one kind of input.
pub fn evidence_text(d: &Diagnosis) -> String {
    d.evidence
        .iter()
        .map(|e| e.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn classify(model: &Classifier, d: &mut Diagnosis) {
    let Some(p) = model.classify(&evidence_text(d)) else {
        return;
    };
    if p.category == d.category && d.confidence >= p.posterior {
        return;
    }
    d.summary = format!(
        "learned from {} human verdicts: {} (posterior {:.2}; the knowledge base said {} at {:.2})",
        p.examples, p.category, p.posterior, d.category, d.confidence
    );
    d.category = p.category;
    d.transient = p.category.is_transient();
    d.strategy = Strategy::default_for(p.category);
    d.confidence = p.posterior;
    d.analyzer = LEARNED.to_string();
}

/// Turns a genuine test failure into a flaky-test diagnosis when every failing test it names
/// is quarantined or known flaky. One test never seen flaky is enough to need a human.
fn apply_known_flaky(d: &mut Diagnosis, tests: &[TestRecord]) {
    if d.category != Category::TestFailure || d.failing_tests.is_empty() {
        return;
    }
    let mut why = Vec::new();
    for test in &d.failing_tests {
        match tests.iter().find(|t| &t.test == test && t.known_flaky()) {
            Some(TestRecord {
                quarantined: Some(reason),
                ..
            }) => why.push(format!("{test} (quarantined: {reason})")),
            Some(t) => why.push(format!(
                "{test} (flaky in {} of {} failing runs)",
                t.flaky_failures, t.runs
            )),
            None => return,
        }
    }
    d.category = Category::FlakyTest;
    d.transient = true;
    d.strategy = Strategy::Retry;
    d.confidence = KNOWN_FLAKY_CONFIDENCE;
    d.summary = format!("{KNOWN_FLAKY}{}", why.join(", "));
}

/// The diagnoses a run's plan is made from.
pub struct Choice<'a> {
    /// Speaks for the run: a job that needs a human wins, since the run cannot go green
    /// without one; otherwise the least confident transient job.
    pub run: &'a Diagnosis,
    /// What the plan heals: in a mixed run, the transient jobs' cause.
    pub heal: &'a Diagnosis,
}

pub fn choose(jobs: &[JobDiagnosis]) -> Option<Choice<'_>> {
    let run = jobs
        .iter()
        .map(|j| &j.diagnosis)
        .find(|d| !d.transient)
        .or_else(|| {
            jobs.iter()
                .map(|j| &j.diagnosis)
                .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
        })?;
    let heal = if jobs.iter().all(|j| j.diagnosis.transient) {
        run
    } else {
        jobs.iter()
            .map(|j| &j.diagnosis)
            .find(|d| d.transient)
            .unwrap_or(run)
    };
    Some(Choice { run, heal })
}

/// A configured fix run before the re-run, its command already safety-assessed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    pub name: String,
    pub risk: Risk,
    /// What it runs or calls, with the assessment's reason.
    pub what: String,
    /// `Some` for a fix that belongs to one strategy (a reset command), `None` for one that
    /// applies to the failure's category whatever the strategy.
    pub strategy: Option<Strategy>,
}

/// Everything the plan depends on besides the diagnoses.
pub struct Facts<'a> {
    pub policy: &'a Policy,
    pub capabilities: Capabilities,
    /// Heals already made for the run.
    pub attempts_done: u32,
    /// Outcomes of each strategy on this failure's fingerprint and category.
    pub learned: Vec<(Strategy, Learned)>,
    pub fixes: Vec<Fix>,
}

/// The plan for a run's diagnosed jobs; `None` when no job was diagnosed.
pub fn plan(jobs: &[JobDiagnosis], event: &FailureEvent, facts: &Facts) -> Option<StoredPlan> {
    let choice = choose(jobs)?;
    let transient: Vec<FailedJob> = jobs
        .iter()
        .filter(|j| j.diagnosis.transient)
        .map(|j| j.job.clone())
        .collect();
    let genuine: Vec<&JobDiagnosis> = jobs.iter().filter(|j| !j.diagnosis.transient).collect();
    let mixed = !genuine.is_empty() && !transient.is_empty();
    let mut plan_event = event.clone();
    plan_event.jobs = if transient.is_empty() {
        jobs.iter().map(|j| j.job.clone()).collect()
    } else {
        transient.clone()
    };
    let heal = choice.heal;
    let mut plan = facts
        .policy
        .plan(heal, &plan_event, &facts.capabilities, facts.attempts_done);
    if plan.strategy.acts() {
        let learned = facts
            .learned
            .iter()
            .find(|(s, _)| *s == plan.strategy)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        plan = learning::apply(plan, &learned);
    }
    explain_refinement(heal, &mut plan);
    add_fixes(&facts.fixes, &mut plan);
    if mixed {
        plan.reason = format!(
            "{}; job(s) {} need a human",
            plan.reason,
            genuine
                .iter()
                .map(|g| format!("{} ({})", g.job.name, g.diagnosis.category))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Some(StoredPlan {
        plan,
        category: heal.category,
        jobs: transient,
        all_failed: genuine.is_empty(),
        mixed,
        queued: vec![],
        awaiting_attempt: None,
    })
}

/// The plan for one job that failed while the rest of its run still runs, on a platform that
/// retries a job meanwhile. Only a transient failure that a plain retry heals without a person
/// or a fix, and only that job: the other jobs' outcomes are unknown, so it is never a
/// run-level re-run (`all_failed` stays false). `None`: wait for the run to complete and plan
/// over all its failed jobs.
pub fn plan_early(job: &JobDiagnosis, event: &FailureEvent, facts: &Facts) -> Option<StoredPlan> {
    if !job.diagnosis.transient {
        return None;
    }
    let mut stored = plan(std::slice::from_ref(job), event, facts)?;
    let p = &stored.plan;
    let plain_retry = p.decision == Decision::Act
        && p.strategy == Strategy::Retry
        && p.steps.iter().all(|s| s.kind != StepKind::Fix);
    if !plain_retry {
        return None;
    }
    stored.all_failed = false;
    stored.mixed = false;
    stored.plan.reason = format!(
        "{}; job {} retried while the rest of the run goes on",
        stored.plan.reason, job.job.name
    );
    Some(stored)
}

/// Makes the plan of a known-flaky or learned diagnosis say why, and retries known-flaky
/// tests at once: waiting does not make a flaky test pass.
fn explain_refinement(d: &Diagnosis, plan: &mut HealPlan) {
    if plan.decision != Decision::Act && plan.decision != Decision::AwaitApproval {
        return;
    }
    if d.summary.starts_with(KNOWN_FLAKY) {
        for step in plan.steps.iter_mut() {
            if step.kind == StepKind::Retry {
                step.delay_seconds = 0;
                step.reason = format!("{}; no backoff for a known flaky test", step.reason);
            }
        }
        plan.reason = format!("{}: retry at once", d.summary);
    } else if d.analyzer == LEARNED {
        plan.reason = format!("{}; {}", plan.reason, d.summary);
    }
}

/// Puts the fixes that run before the re-run into the plan, each with its safety risk. A
/// high-risk command makes the plan wait for approval; a refused one escalates it.
fn add_fixes(fixes: &[Fix], plan: &mut HealPlan) {
    if !matches!(plan.decision, Decision::Act | Decision::AwaitApproval) {
        return;
    }
    let strategy = plan.strategy;
    for f in fixes
        .iter()
        .filter(|f| f.strategy.is_none_or(|s| s == strategy))
    {
        if f.risk == Risk::Refused {
            let reason = format!(
                "fix {} refused by the safety assessment: {}",
                f.name, f.what
            );
            *plan = HealPlan::escalated(reason);
            plan.steps[0].risk = Risk::Refused;
            return;
        }
        if f.risk >= Risk::High && plan.decision == Decision::Act {
            plan.decision = Decision::AwaitApproval;
            plan.reason = format!(
                "{}; fix {} is high-risk, so a human must approve",
                plan.reason, f.name
            );
        }
        let at = plan
            .steps
            .iter()
            .position(|p| p.kind == StepKind::Retry)
            .unwrap_or(plan.steps.len());
        plan.steps.insert(
            at,
            PlanStep {
                kind: StepKind::Fix,
                strategy,
                risk: f.risk,
                reason: format!("{}: {}", f.name, f.what),
                delay_seconds: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(category: Category, confidence: f64) -> Diagnosis {
        Diagnosis {
            category,
            confidence,
            transient: category.is_transient() && confidence >= 0.5,
            evidence: vec![],
            fingerprint: format!("fp-{category}"),
            strategy: Strategy::default_for(category),
            failing_tests: vec![],
            analyzer: "rules".into(),
            signature: None,
            summary: String::new(),
        }
    }

    fn job(name: &str, d: Diagnosis) -> JobDiagnosis {
        JobDiagnosis {
            job: FailedJob {
                id: name.into(),
                name: name.into(),
                ..Default::default()
            },
            diagnosis: d,
        }
    }

    fn facts(policy: &Policy) -> Facts<'_> {
        Facts {
            policy,
            capabilities: Capabilities {
                retry: true,
                ..Default::default()
            },
            attempts_done: 0,
            learned: vec![],
            fixes: vec![],
        }
    }

    #[test]
    fn a_mixed_run_re_runs_only_the_transient_jobs_and_names_the_others() {
        let p = Policy::default();
        let jobs = [
            job("build", diag(Category::CompilationError, 0.9)),
            job("fetch", diag(Category::Network, 0.8)),
        ];
        let s = plan(&jobs, &FailureEvent::default(), &facts(&p)).unwrap();
        assert_eq!(s.plan.decision, Decision::Act);
        assert_eq!(s.category, Category::Network);
        assert!(s.mixed && !s.all_failed);
        assert_eq!(s.jobs.len(), 1);
        assert_eq!(s.jobs[0].name, "fetch");
        assert!(
            s.plan.reason.contains("build (compilation_error)"),
            "{}",
            s.plan.reason
        );
        assert_eq!(
            choose(&jobs).unwrap().run.category,
            Category::CompilationError
        );
    }

    #[test]
    fn an_early_plan_retries_only_its_transient_job_and_never_the_whole_run() {
        let p = Policy::default();
        let f = facts(&p);
        let ev = FailureEvent::default();
        let s = plan_early(&job("fetch", diag(Category::Network, 0.9)), &ev, &f).unwrap();
        assert_eq!(s.plan.decision, Decision::Act);
        assert!(!s.all_failed, "the other jobs are not known yet");
        assert_eq!(s.jobs.len(), 1);
        assert!(
            s.plan.reason.contains("job fetch retried while"),
            "{}",
            s.plan.reason
        );
        // A genuine failure, a deploy that needs approval and a remedy other than a retry wait
        // for the run.
        assert!(plan_early(&job("unit", diag(Category::CompilationError, 0.9)), &ev, &f).is_none());
        assert!(plan_early(&job("deploy-prod", diag(Category::Network, 0.9)), &ev, &f).is_none());
        let mut scaled = facts(&p);
        scaled.capabilities.scale_resources = true;
        assert!(plan_early(&job("t", diag(Category::OutOfMemory, 0.9)), &ev, &scaled).is_none());
        let mut fixed = facts(&p);
        fixed.fixes = vec![Fix {
            name: "mirror".into(),
            risk: Risk::Low,
            what: "x".into(),
            strategy: None,
        }];
        assert!(plan_early(&job("fetch", diag(Category::Network, 0.9)), &ev, &fixed).is_none());
    }

    #[test]
    fn learning_for_the_chosen_strategy_can_escalate() {
        let p = Policy::default();
        let mut f = facts(&p);
        f.learned = vec![(
            Strategy::Retry,
            Learned {
                fingerprint: learning::ArmStats {
                    healed: 0,
                    failed: 4,
                },
                ..Default::default()
            },
        )];
        let s = plan(
            &[job("t", diag(Category::Network, 0.9))],
            &FailureEvent::default(),
            &f,
        )
        .unwrap();
        assert_eq!(s.plan.decision, Decision::Escalate);
        assert!(s.plan.reason.starts_with("learning:"), "{}", s.plan.reason);
    }

    #[test]
    fn fixes_gate_the_plan_by_their_risk_and_strategy() {
        let p = Policy::default();
        let fix = |risk, strategy| Fix {
            name: "mirror".into(),
            risk,
            what: "ansible-playbook x".into(),
            strategy,
        };
        let mut f = facts(&p);
        f.fixes = vec![fix(Risk::High, None)];
        let s = plan(
            &[job("t", diag(Category::Network, 0.9))],
            &FailureEvent::default(),
            &f,
        )
        .unwrap();
        assert_eq!(s.plan.decision, Decision::AwaitApproval);
        assert!(s
            .plan
            .steps
            .iter()
            .any(|st| st.kind == StepKind::Fix && st.risk == Risk::High));
        f.fixes = vec![fix(Risk::Refused, None)];
        let s = plan(
            &[job("t", diag(Category::Network, 0.9))],
            &FailureEvent::default(),
            &f,
        )
        .unwrap();
        assert_eq!(s.plan.decision, Decision::Escalate);
        // A reset command belongs to the reset strategy: a plain retry does not run it.
        f.fixes = vec![fix(Risk::Refused, Some(Strategy::ResetEnvironment))];
        let s = plan(
            &[job("t", diag(Category::Network, 0.9))],
            &FailureEvent::default(),
            &f,
        )
        .unwrap();
        assert_eq!(s.plan.decision, Decision::Act);
    }

    #[test]
    fn known_flaky_tests_are_retried_at_once_and_others_escalated() {
        let record = |test: &str, runs, flaky, q: Option<&str>| TestRecord {
            test: test.into(),
            runs,
            flaky_failures: flaky,
            flakiness_rate: flaky as f64 / runs.max(1) as f64,
            quarantined: q.map(String::from),
        };
        let tests = [record("a", 4, 2, None), record("b", 1, 0, Some("racy"))];
        let k = Knowledge {
            classifier: None,
            min_confidence: 0.5,
            tests: &tests,
        };
        let mut d = diag(Category::TestFailure, 0.9);
        d.failing_tests = vec!["a".into(), "b".into()];
        refine(&mut d, &k);
        assert_eq!(d.category, Category::FlakyTest);
        assert!(d.summary.contains("b (quarantined: racy)"), "{}", d.summary);
        let p = Policy::default();
        let s = plan(&[job("t", d)], &FailureEvent::default(), &facts(&p)).unwrap();
        let retry = s
            .plan
            .steps
            .iter()
            .find(|s| s.kind == StepKind::Retry)
            .unwrap();
        assert_eq!(retry.delay_seconds, 0);
        let mut other = diag(Category::TestFailure, 0.9);
        other.failing_tests = vec!["a".into(), "never-flaky".into()];
        refine(&mut other, &k);
        assert_eq!(other.category, Category::TestFailure);
        assert!(!record("c", 10, 1, None).known_flaky());
        assert!(!record("c", 1, 1, None).known_flaky());
    }

    #[test]
    fn the_classifier_speaks_only_where_the_rules_are_unsure() {
        let mut model = Classifier::new();
        for _ in 0..5 {
            model.train(
                "connection reset by peer while fetching index",
                Category::Network,
            );
        }
        let k = Knowledge {
            classifier: Some(&model),
            min_confidence: 0.5,
            tests: &[],
        };
        let mut unsure_d = diag(Category::Unknown, 0.1);
        unsure_d.evidence = vec![crate::analysis::Evidence {
            line: 1,
            text: "connection reset by peer while fetching index".into(),
        }];
        refine(&mut unsure_d, &k);
        assert_eq!(unsure_d.category, Category::Network);
        assert_eq!(unsure_d.analyzer, LEARNED);
        let mut sure = diag(Category::CompilationError, 0.9);
        sure.evidence = unsure_d.evidence.clone();
        refine(&mut sure, &k);
        assert_eq!(sure.category, Category::CompilationError);
    }
}
