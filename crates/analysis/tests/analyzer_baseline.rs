//! A failure read against the job's green runs: lines every green run prints are noise, the
//! lines the failure added are the evidence, and without a baseline nothing changes.

use pipeguard_analysis::{Analyzer, Baseline, Compared, Hints};
use pipeguard_taxonomy::Category;

fn gha(lines: &[&str]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "2025-04-15T00:56:{:02}.{:07}Z {l}\n",
                i % 60,
                i * 7919 % 10_000_000
            )
        })
        .collect()
}

fn learn(logs: &[&str]) -> Baseline {
    let mut b = Baseline::new();
    for (k, l) in logs.iter().enumerate() {
        b.learn(format!("green/{k}"), l.as_bytes()).unwrap();
    }
    b
}

fn against(failed: &str, green: &Baseline) -> Compared {
    Analyzer::builtin()
        .analyze_against(failed.as_bytes(), &Hints::default(), green, |_| {})
        .unwrap()
}

/// A job whose deploy step always prints a connection error it recovers from.
fn job(extra: &[&str], exit: bool) -> String {
    let mut lines = vec![
        "##[group]Run ./scripts/release-check.sh",
        "Checking mirrors",
        "curl: (56) Recv failure: Connection reset by peer",
        "mirror eu-2 skipped",
        "Checked 14 mirrors in 3.2s",
    ];
    lines.extend_from_slice(extra);
    if exit {
        lines.push("##[error]Process completed with exit code 1.");
    }
    gha(&lines)
}

#[test]
fn an_error_every_green_run_prints_is_noise_and_what_the_failure_added_decides() {
    let green = learn(&[&job(&[], false)]);
    let failed = job(&["Error: Input required and not supplied: token"], true);
    // Alone, the connection reset reads as a network failure worth a retry.
    let alone = Analyzer::builtin().analyze(failed.as_bytes());
    assert_eq!(alone.category, Category::ConfigurationError, "{alone:?}");
    let c = against(&failed, &green);
    assert_eq!(c.diagnosis.category, Category::ConfigurationError);
    assert!(!c.diagnosis.transient);
    let new = c.evidence_new.clone().unwrap();
    assert_eq!(new.len(), c.diagnosis.evidence.len());
    for (e, n) in c.diagnosis.evidence.iter().zip(&new) {
        assert!(*n, "an evidence line the green run prints: {e:?}");
        assert!(!e.text.contains("Connection reset"), "{e:?}");
    }
    assert!(c
        .diagnosis
        .evidence
        .iter()
        .any(|e| e.line == 6 && e.text.contains("Input required")));
    assert_eq!(c.green_runs, ["green/0"]);
    assert_eq!(c.new_lines, 1);
}

#[test]
fn a_transient_looking_line_the_green_runs_print_is_not_retried() {
    let green = learn(&[&job(&[], false)]);
    let failed = job(
        &["mirror us-1 returned a checksum that does not match"],
        true,
    );
    let alone = Analyzer::builtin().analyze(failed.as_bytes());
    assert!(
        alone.transient,
        "without a baseline the reset looks transient: {alone:?}"
    );
    let c = against(&failed, &green);
    assert!(!c.diagnosis.transient, "{:?}", c.diagnosis);
    // Nothing classifiable was added: an honest unknown, shown with what the failure added.
    assert_eq!(c.diagnosis.category, Category::Unknown);
    assert!(c
        .diagnosis
        .evidence
        .iter()
        .any(|e| e.line == 6 && e.text.contains("checksum")));
}

#[test]
fn without_a_baseline_the_analysis_is_unchanged() {
    let failed = job(&["Error: Input required and not supplied: token"], true);
    let a = Analyzer::builtin();
    let alone = a.analyze(failed.as_bytes());
    let c = a
        .analyze_against(
            failed.as_bytes(),
            &Hints::default(),
            &Baseline::new(),
            |_| {},
        )
        .unwrap();
    assert_eq!(c.diagnosis, alone);
    assert_eq!(c.evidence_new, None);
    assert_eq!(c.new_lines, 0);
}

#[test]
fn new_lines_are_found_across_chunks_with_their_line_numbers() {
    // Over 1 MiB of passing output, so the added lines sit in the chunk before the exit line.
    let mut green_lines = vec!["##[group]Run cargo test --workspace".to_string()];
    for i in 0..30_000 {
        green_lines.push(format!("test store::tests::case_{} ... ok", i % 500));
    }
    let refs: Vec<&str> = green_lines.iter().map(String::as_str).collect();
    let green = learn(&[&gha(&refs)]);
    let mut failed_lines = green_lines.clone();
    failed_lines.push("thread 'store::tests::keeps_order' panicked at src/store.rs:88:9".into());
    failed_lines.push("left: 3, right: 4".into());
    let pad = 1_100_000usize.saturating_sub(failed_lines.iter().map(|l| l.len() + 37).sum());
    for _ in 0..pad / 40 {
        failed_lines.push("test store::tests::case_7 ... ok".into());
    }
    failed_lines.push("##[error]Process completed with exit code 101.".into());
    let refs: Vec<&str> = failed_lines.iter().map(String::as_str).collect();
    let failed = gha(&refs);
    assert!(failed.len() > 1 << 20);
    let c = against(&failed, &green);
    let panic_line = 30_002;
    let ev = &c.diagnosis.evidence;
    let hit = ev
        .iter()
        .find(|e| e.text.contains("panicked at"))
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(hit.line, panic_line);
    assert_eq!(c.new_lines, 2);
    let new = c.evidence_new.unwrap();
    assert!(ev.iter().zip(&new).all(|(e, n)| *n || e.line == panic_line));
}
