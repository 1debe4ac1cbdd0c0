//! The transient-failure figures of `docs/simulate.md`, pinned on the shipped trace: a change
//! to the analyzer, the policy or the model that moves them must update the documentation too.

use pipeguard_core::simulate::{parse_trace, simulate, SimConfig, TransientArm};
use pipeguard_core::Analyzer;

fn near(got: f64, want: f64, tolerance: f64, what: &str) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got}, documented {want} (± {tolerance})"
    );
}

#[test]
fn the_shipped_trace_gives_the_documented_transient_figures() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../traces/default.jsonl");
    let runs = parse_trace(&std::fs::read_to_string(path).unwrap()).unwrap();
    let r = simulate(&runs, &Analyzer::builtin(), &SimConfig::default());
    let t = &r.transient;
    assert_eq!(t.runs, 699);
    assert_eq!(t.notice_minutes, 45.0);
    let manual = t.arm(TransientArm::ManualRerun);
    let after = t.arm(TransientArm::PipeguardAfterRun);
    let early = t.arm(TransientArm::Pipeguard);
    near(manual.time_to_green_minutes.mean, 98.1, 1.0, "manual mean");
    near(
        after.time_to_green_minutes.mean,
        44.4,
        1.0,
        "after-run mean",
    );
    near(
        early.time_to_green_minutes.mean,
        43.6,
        1.0,
        "pipeguard mean",
    );
    near(early.time_to_green_minutes.p50, 22.8, 1.0, "pipeguard p50");
    near(early.mean_reduction, 0.555, 0.01, "shorter mean");
    near(
        manual.failure_to_retry_minutes.p50,
        48.7,
        1.0,
        "manual call p50",
    );
    near(early.pipeguard_retry_minutes.p50, 2.8, 1.0, "own call p50");
    near(
        after.pipeguard_retry_minutes.p50,
        4.6,
        1.0,
        "after-run call p50",
    );
    // Early retries only ever bring the time to green and the call forward.
    assert!(early.time_to_green_minutes.mean < after.time_to_green_minutes.mean);
    assert!(early.pipeguard_retry_minutes.mean < after.pipeguard_retry_minutes.mean);
    assert!(early.retried_before_run_end > 0 && after.retried_before_run_end == 0);
}
