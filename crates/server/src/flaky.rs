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
//! Policy (pure, in `pipeguard_core::heal`): a genuine `test_failure` whose failing tests are
//! all quarantined or known flaky becomes a transient `flaky_test` diagnosis and is retried at
//! once. A failure of any other test stays escalated.

use crate::Shared;
use pipeguard_core::heal::TestRecord;
use pipeguard_store::{Observation, SessionRecord, SessionStatus, TestStats};
use serde_json::Value;

pub fn is_known_flaky(s: &TestStats) -> bool {
    TestRecord {
        test: s.test.clone(),
        runs: s.runs,
        flaky_failures: s.flaky_failures,
        flakiness_rate: s.flakiness_rate,
        quarantined: s.quarantined.then(String::new),
    }
    .known_flaky()
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
    // A quarantined test that failed again starts its count of passes over.
    if let Err(e) = st
        .store
        .quarantine_failed(&s.repository, &tests, &s.workflow)
        .await
    {
        tracing::warn!(session = %session_id, "quarantine passes not reset: {e}");
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

/// The records of `tests` in `repository`, as the pure planning step reads them.
pub async fn records(
    st: &Shared,
    repository: &str,
    tests: &[String],
) -> pipeguard_store::Result<Vec<TestRecord>> {
    if tests.is_empty() {
        return Ok(Vec::new());
    }
    let quarantine = st.store.quarantine_list(repository).await?;
    let stats = st.store.tests_stats(repository, tests).await?;
    Ok(tests
        .iter()
        .map(|t| {
            let s = stats.iter().find(|s| &s.test == t);
            TestRecord {
                test: t.clone(),
                runs: s.map(|s| s.runs).unwrap_or(0),
                flaky_failures: s.map(|s| s.flaky_failures).unwrap_or(0),
                flakiness_rate: s.map(|s| s.flakiness_rate).unwrap_or(0.0),
                quarantined: quarantine
                    .iter()
                    .find(|q| &q.test == t)
                    .map(|q| q.reason.clone()),
            }
        })
        .collect())
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
            runs_including_retries: runs,
            failed_attempts: runs - flaky,
            failures_this_week: 0,
            failures_last_week: 0,
        };
        assert!(is_known_flaky(&s(2, 1, false)));
        assert!(!is_known_flaky(&s(1, 1, false)));
        assert!(!is_known_flaky(&s(10, 1, false)));
        assert!(is_known_flaky(&s(10, 0, true)));
    }
}
