//! Flaky tests, from real outcomes, and the policy that uses them.
//!
//! A test is flaky when it failed and then passed on the same commit without a code change.
//! pipeguard sees exactly that when a session is `healed`: a re-run of the same run (same
//! commit) went green, so every test its diagnosis named failing was a flaky failure. When a
//! session ends `failed` or `escalated`, its failing tests count as plain failures, until a
//! human's `flaky_test` verdict on it says otherwise.
//!
//! Time lost by one failure: for a healed session its time to green (failure → green run);
//! for a failed or escalated one the failed run's duration when the platform reported its
//! start and end (the compute it burnt), else 0. A test's impact is the sum over its failures,
//! i.e. failures × mean time lost, and `/api/v1/flaky-tests` ranks by it.
//!
//! Policy: a genuine `test_failure` whose failing tests are all quarantined or known flaky
//! (flakiness rate ≥ `MIN_FLAKINESS_RATE` over ≥ `MIN_RUNS` observed failures) becomes a
//! transient `flaky_test` diagnosis and is retried at once. A failure of any other test stays
//! escalated.

use crate::Shared;
use pipeguard_core::policy::{Decision, HealPlan, StepKind};
use pipeguard_core::{Category, Diagnosis, Strategy};
use pipeguard_store::{Observation, SessionRecord, SessionStatus, TestStats};
use serde_json::Value;

/// Flakiness rate from which a test counts as known flaky.
pub const MIN_FLAKINESS_RATE: f64 = 0.25;
/// Observed failures needed before the rate is trusted.
pub const MIN_RUNS: i64 = 2;
/// Confidence given to a diagnosis turned flaky by history or quarantine.
pub const KNOWN_FLAKY_CONFIDENCE: f64 = 0.9;
/// How a known-flaky diagnosis's summary starts; `adjust_plan` recognises it by this.
const KNOWN_FLAKY: &str = "known flaky: ";

pub fn is_known_flaky(s: &TestStats) -> bool {
    s.quarantined || (s.runs >= MIN_RUNS && s.flakiness_rate >= MIN_FLAKINESS_RATE)
}

/// Every failing test a session's diagnosis named, over all its jobs, without repeats.
pub fn failing_tests(diagnosis: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let jobs = diagnosis["jobs"].as_array().into_iter().flatten();
    let lists = std::iter::once(&diagnosis["failing_tests"])
        .chain(jobs.map(|j| &j["diagnosis"]["failing_tests"]));
    for list in lists {
        for t in list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        }
    }
    out
}

fn time_lost_ms(s: &SessionRecord) -> i64 {
    if s.status == SessionStatus::Healed {
        return s.time_to_green_ms.unwrap_or(0);
    }
    match (s.event.started_at_ms, s.event.finished_at_ms) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => 0,
    }
}

/// Counts a finished session's failing tests: flaky when it healed, failures when it failed or
/// was escalated. Other states count nothing. Errors are logged, never fail the caller: the
/// statistics must not stop healing.
pub async fn record_outcome(st: &Shared, session_id: &str) {
    let s = match st.store.get_session(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(session = %session_id, "flaky statistics not recorded: {e}");
            return;
        }
    };
    let flaky = match s.status {
        SessionStatus::Healed => true,
        SessionStatus::Failed | SessionStatus::Escalated => false,
        _ => return,
    };
    let tests = failing_tests(s.diagnosis.as_ref().unwrap_or(&Value::Null));
    let obs = Observation {
        session_id: &s.id,
        repository: &s.repository,
        tests: &tests,
        flaky,
        time_lost_ms: time_lost_ms(&s),
    };
    if let Err(e) = st.store.record_test_outcomes(&obs).await {
        tracing::warn!(session = %session_id, "flaky statistics not recorded: {e}");
    }
}

/// A human's `flaky_test` verdict: the session's failing tests count as flaky failures (those
/// already counted as failures are turned into flaky ones).
pub async fn human_says_flaky(st: &Shared, s: &SessionRecord) -> pipeguard_store::Result<()> {
    let tests = failing_tests(s.diagnosis.as_ref().unwrap_or(&Value::Null));
    st.store
        .record_test_outcomes(&Observation {
            session_id: &s.id,
            repository: &s.repository,
            tests: &tests,
            flaky: true,
            time_lost_ms: time_lost_ms(s),
        })
        .await?;
    st.store.mark_flaky(&s.id).await?;
    Ok(())
}

/// Turns a genuine test failure into a flaky-test diagnosis when every failing test it names is
/// quarantined or known flaky in `repository`.
pub async fn apply_known_flaky(
    st: &Shared,
    repository: &str,
    d: &mut Diagnosis,
) -> pipeguard_store::Result<()> {
    if d.category != Category::TestFailure || d.failing_tests.is_empty() {
        return Ok(());
    }
    let quarantine = st.store.quarantine_list(repository).await?;
    let stats = st.store.tests_stats(repository, &d.failing_tests).await?;
    let mut why = Vec::new();
    for test in &d.failing_tests {
        if let Some(q) = quarantine.iter().find(|q| &q.test == test) {
            why.push(format!("{test} (quarantined: {})", q.reason));
        } else if let Some(s) = stats.iter().find(|s| &s.test == test && is_known_flaky(s)) {
            why.push(format!(
                "{test} (flaky in {} of {} failing runs)",
                s.flaky_failures, s.runs
            ));
        } else {
            // One test never seen flaky is enough to need a human.
            return Ok(());
        }
    }
    d.category = Category::FlakyTest;
    d.transient = true;
    d.strategy = Strategy::Retry;
    d.confidence = KNOWN_FLAKY_CONFIDENCE;
    d.summary = format!("{KNOWN_FLAKY}{}", why.join(", "));
    Ok(())
}

/// Makes the plan of a known-flaky or learned diagnosis say why, and retries known-flaky
/// tests at once: waiting does not make a flaky test pass.
pub fn adjust_plan(d: &Diagnosis, plan: &mut HealPlan) {
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
    } else if d.analyzer == crate::learned::ANALYZER {
        plan.reason = format!("{}; {}", plan.reason, d.summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failing_tests_are_collected_over_jobs_once() {
        let d = json!({
            "failing_tests": ["a"],
            "jobs": [
                {"diagnosis": {"failing_tests": ["a", "b"]}},
                {"diagnosis": {"failing_tests": []}},
                {"diagnosis": {}}
            ]
        });
        assert_eq!(failing_tests(&d), vec!["a", "b"]);
        assert!(failing_tests(&Value::Null).is_empty());
    }

    #[test]
    fn known_flaky_needs_enough_runs_and_rate() {
        let s = |runs, flaky, quarantined| TestStats {
            repository: "o/r".into(),
            test: "t".into(),
            runs,
            failures: runs - flaky,
            flaky_failures: flaky,
            flakiness_rate: flaky as f64 / runs as f64,
            time_lost_ms: 0,
            first_seen_at: 0,
            last_seen_at: 0,
            quarantined,
        };
        assert!(is_known_flaky(&s(2, 1, false)));
        assert!(!is_known_flaky(&s(1, 1, false)));
        assert!(!is_known_flaky(&s(10, 1, false)));
        assert!(is_known_flaky(&s(10, 0, true)));
    }
}
