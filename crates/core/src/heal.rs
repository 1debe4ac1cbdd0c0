//! What a heal is made of: each job's diagnosis refined by what humans and outcomes taught
//! ([`refine`]), the configured fixes, and the plan as stored with the session. The planner
//! (`crate::planner`) decides from them; nothing here does I/O.

use crate::analysis::Diagnosis;
use crate::category::Category;
use crate::classifier::Classifier;
use crate::event::FailedJob;
use crate::policy::{HealPlan, Risk, Strategy};
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
    /// The facts the plan was made from, so that a backtest replays what the worker saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<crate::planner::Known>,
    /// Suspect runners not taken out that the re-run is steered away from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid_runners: Vec<String>,
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

/// A configured fix run before the re-run, its command already safety-assessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    pub name: String,
    pub risk: Risk,
    /// What it runs or calls, with the assessment's reason.
    pub what: String,
    /// `Some` for a fix that belongs to one strategy (a reset command), `None` for one that
    /// applies to the failure's category whatever the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn diag(category: Category, confidence: f64) -> Diagnosis {
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

    #[test]
    fn known_flaky_tests_turn_a_test_failure_flaky_and_others_stay_genuine() {
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
        assert!(d.summary.starts_with(KNOWN_FLAKY), "{}", d.summary);
        assert!(d.summary.contains("b (quarantined: racy)"), "{}", d.summary);
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
