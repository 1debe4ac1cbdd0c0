//! `pipeguard analyze` and `pipeguard signatures` as a user runs them.

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pipeguard"))
}

#[test]
fn analyze_prints_json_with_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    std::fs::write(
        &log,
        "Getting source\nfatal: unable to access 'https://gitlab.com/a/b.git/': Could not resolve host: gitlab.com\nERROR: Job failed: exit code 1\n",
    )
    .unwrap();
    let out = bin()
        .args(["analyze", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["category"], "network");
    assert_eq!(v["transient"], true);
    assert_eq!(v["strategy"], "retry");
    assert_eq!(v["evidence"][0]["line"], 2);
    assert!(v["confidence"].as_f64().unwrap() >= 0.5);
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
    // A network failure names no failing test.
    assert_eq!(v["failing_tests"], serde_json::json!([]));
}

#[test]
fn analyze_reads_stdin_and_prints_text() {
    let mut child = bin()
        .args(["analyze", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"--- FAIL: TestParse (0.01s)\nFAIL\tgithub.com/a/b\t0.02s\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("category:    test_failure"), "{text}");
    assert!(text.contains("TestParse"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");
}

#[test]
fn analyze_reports_a_missing_file_clearly() {
    let out = bin()
        .args(["analyze", "/nonexistent/job.log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open /nonexistent/job.log"), "{err}");
}

#[test]
fn signatures_test_names_the_signature_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let cfg = dir.path().join("pipeguard.toml");
    std::fs::write(&log, "ok\nWidgetPoolExhausted: no widgets\n").unwrap();
    std::fs::write(
        &cfg,
        "[[signatures]]\nid = \"widget-pool\"\npattern = 'WidgetPoolExhausted'\ncategory = \"infrastructure\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["signatures", "test"])
        .arg(&log)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("      2 | widget-pool"), "{text}");
    assert!(text.contains("decision: infrastructure"), "{text}");
    let list = bin().args(["signatures", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("gitlab-system-failure"));
}

#[test]
fn eval_reports_category_accuracy_and_false_retries_from_categories_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let write = |case: &str, log: &str| {
        let d = dir.path().join("set").join(case);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("log.txt"), log).unwrap();
        std::fs::write(d.join("label.json"), "{\"chunk\": null}").unwrap();
    };
    write(
        "a",
        "$ cargo build\nerror[E0425]: cannot find value `x` in this scope\nThe command \"cargo build\" exited with 101.\n",
    );
    write(
        "b",
        "$ npm ci\nnpm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET\nThe command \"npm ci\" exited with 1.\n",
    );
    std::fs::write(
        dir.path().join("categories.jsonl"),
        concat!(
            "{\"dataset\": \"set\", \"case\": \"a\", \"category\": \"compilation_error\", \"confidence\": \"high\"}\n",
            "{\"dataset\": \"set\", \"case\": \"b\", \"category\": \"lint_error\", \"confidence\": \"medium\"}\n",
        ),
    )
    .unwrap();
    let out = bin().arg("eval").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("category accuracy (categories.jsonl, high+medium labels): 1/2 = 0.50"),
        "{text}"
    );
    // The "lint" label is genuine and the download error is transient: one false retry.
    assert!(
        text.contains("genuine failures marked transient (a retry that cannot help): 1/2"),
        "{text}"
    );
    assert!(
        text.contains("lint_error -> dependency_download x1"),
        "{text}"
    );
}

#[test]
fn eval_scores_the_retry_decision_and_the_evidence_against_labels() {
    let dir = tempfile::tempdir().unwrap();
    let write = |case: &str, log: &str, label: serde_json::Value| {
        let d = dir.path().join("set").join(case);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("log.txt"), log).unwrap();
        std::fs::write(d.join("label.json"), label.to_string()).unwrap();
    };
    let reset = "$ npm ci\nnpm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET\nThe command \"npm ci\" exited with 1.\n";
    let compile = "$ cargo build\nerror[E0425]: cannot find value `x` in this scope\nThe command \"cargo build\" exited with 101.\n";
    // An intermittent failure found, a regular one found, an intermittent one missed.
    write(
        "net",
        reset,
        serde_json::json!({"category": "intermittent", "chunk": "npm ERR! network read ECONNRESET"}),
    );
    write(
        "compile",
        compile,
        serde_json::json!({"category": "not_intermittent", "lines": [[2, 2]]}),
    );
    write(
        "flaky",
        compile,
        serde_json::json!({"category": "intermittent", "chunk": "a line the log does not have at all"}),
    );
    let out = bin().arg("eval").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "transient decision (n=3): precision 1.00 recall 0.50 F1 0.67  (tp 1 fp 0 fn 1 tn 1)",
        "evidence contains the human-picked chunk: 1/2 = 0.50",
        "evidence contains a labeled error line: 1/1 = 1.00",
        "3 logs,",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    // A directory without cases is an error, not an empty report.
    let empty = tempfile::tempdir().unwrap();
    let out = bin().arg("eval").arg(empty.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no <dataset>/<case>"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
