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
fn analyze_against_a_green_run_marks_the_new_evidence_lines() {
    let dir = tempfile::tempdir().unwrap();
    let green = dir.path().join("green.log");
    let failed = dir.path().join("failed.log");
    let common = "2024-05-01T10:00:01.1000000Z ##[group]Run ./scripts/publish.sh\n\
                  2024-05-01T10:00:02.2000000Z ##[error]Node.js 16 actions are deprecated.\n\
                  2024-05-01T10:00:03.3000000Z uploaded 12 files in 3.1s\n";
    std::fs::write(&green, common).unwrap();
    std::fs::write(
        &failed,
        format!(
            "{common}2024-05-01T10:01:04.4000000Z Error: Input required and not supplied: token\n\
             2024-05-01T10:01:05.5000000Z ##[error]Process completed with exit code 1.\n"
        ),
    )
    .unwrap();
    let out = bin()
        .args(["analyze", "--format", "json"])
        .arg(&failed)
        .arg("--baseline")
        .arg(&green)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["category"], "configuration_error");
    let ev = v["evidence"].as_array().unwrap();
    assert!(!ev.is_empty());
    for e in ev {
        let line = e["line"].as_u64().unwrap();
        assert_eq!(e["new"], serde_json::json!(line == 4), "{e}");
    }
    assert!(ev.iter().any(|e| e["line"] == 4));
    assert_eq!(v["baseline"]["new_lines"], 1);
    assert!(v["baseline"]["green_runs"][0]
        .as_str()
        .unwrap()
        .ends_with("green.log"));

    // Without --baseline the fields are absent; a missing baseline is a clear error.
    let plain = bin()
        .args(["analyze", "--format", "json"])
        .arg(&failed)
        .output()
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(p["evidence"][0].get("new").is_none() && p.get("baseline").is_none());
    let bad = bin()
        .arg("analyze")
        .arg(&failed)
        .args(["--baseline", "/nonexistent/green.log"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot open baseline"));
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
