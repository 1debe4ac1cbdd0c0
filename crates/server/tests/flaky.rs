//! Flaky tests from real outcomes: quarantine, retry at once, statistics, and stable tests that
//! stay escalated. Against the mock GitHub Actions API.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const FLAKY: &str = "api::upload_resumes";

fn rerun_failed(run_id: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run_id}/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
}

/// A run whose `test` job fails with `test` failing; returns the session id once analyzed.
async fn failing_run(app: &TestApp, run: u64, test: &str, reruns: u64) -> String {
    let log = failing_test_log(test);
    mount_run(&app.github, run, 1, &[(run * 10, "test", "failure", &log)]).await;
    rerun_failed(run).expect(reruns).mount(&app.github).await;
    let r = app
        .post_github(
            "workflow_run",
            &format!("f-{run}"),
            &workflow_run(run, 1, "failure", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    session_id(r).await
}

async fn second_attempt(app: &TestApp, run: u64, conclusion: &str) {
    let r = app
        .post_github(
            "workflow_run",
            &format!("f-{run}-2"),
            &workflow_run(run, 2, conclusion, "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
}

async fn flaky_list(app: &TestApp, query: &str) -> Vec<Value> {
    let v = app.get(&format!("/api/v1/flaky-tests{query}")).await;
    v["flaky_tests"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn quarantined_then_known_flaky_tests_are_retried_at_once_and_counted() {
    // A long backoff: a known flaky test must be re-run without it.
    let app = TestApp::start_with(|c| {
        c.healing.backoff_seconds = 600;
        c.healing.max_attempts = 1;
    })
    .await;
    let (code, q) = api_call(
        &app,
        Method::POST,
        "/api/v1/quarantine",
        Some(
            &json!({"repository": REPO, "test": FLAKY, "reason": "races the upload server"})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(code, 201, "{q}");
    assert_eq!(q["test"], FLAKY);
    let listed = app.get("/api/v1/quarantine").await;
    assert_eq!(listed["quarantine"][0]["reason"], "races the upload server");

    // Two failures of the quarantined test: retried at once, then green on the same commit.
    for run in [70u64, 71] {
        let id = failing_run(&app, run, FLAKY, 1).await;
        let s = app.wait_status(&id, "verifying").await;
        assert_eq!(s["category"], "flaky_test", "{s}");
        let reason = s["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(&format!("known flaky: {FLAKY} (quarantined")),
            "{reason}"
        );
        let steps = s["plan"]["plan"]["steps"].as_array().unwrap();
        assert!(steps.iter().all(|st| st["delay_seconds"] == 0), "{steps:?}");
        second_attempt(&app, run, "success").await;
        app.wait_status(&id, "healed").await;
    }
    let list = flaky_list(&app, &format!("?repository={REPO}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let t = &list[0];
    assert_eq!(t["test"], FLAKY);
    assert_eq!(t["repository"], REPO);
    assert_eq!(
        (t["runs"].as_i64(), t["flaky_failures"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(t["failures"], 0);
    assert_eq!(t["flakiness_rate"], 1.0);
    // Each heal took 10:04 → 10:09 by GitHub's timestamps.
    assert_eq!(t["time_lost_seconds"], 600.0);
    assert_eq!(t["quarantined"], true);
    assert!(t["last_seen"].as_i64().unwrap() > 0);
    assert!(flaky_list(&app, "?repository=someone/else")
        .await
        .is_empty());

    // Out of quarantine, its history alone still marks it flaky.
    let del = format!("/api/v1/quarantine?repository={REPO}&test={FLAKY}");
    let (code, body) = api_call(&app, Method::DELETE, &del, None).await;
    assert_eq!((code, &body["removed"]), (200, &json!(true)));
    let (code, body) = api_call(&app, Method::DELETE, &del, None).await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    let id = failing_run(&app, 72, FLAKY, 1).await;
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("flaky in 2 of 2 failing runs"),
        "{s}"
    );
    // This time it fails again: a plain failure, and the rate drops.
    second_attempt(&app, 72, "failure").await;
    app.wait_status(&id, "escalated").await;
    let t = &flaky_list(&app, "").await[0];
    assert_eq!(
        (t["runs"].as_i64(), t["failures"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(t["quarantined"], false);

    let metrics = metrics_text(&app).await;
    assert!(metrics.contains("pipeguard_flaky_tests 1"), "{metrics}");
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn a_stable_tests_failure_is_escalated_until_a_human_calls_it_flaky() {
    let app = TestApp::start().await;
    let id = failing_run(&app, 75, "api::checksum_matches", 0).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "test_failure");
    assert_eq!(
        s["diagnosis"]["failing_tests"],
        json!(["api::checksum_matches"])
    );
    // Counted, but never flaky, so not listed.
    assert!(flaky_list(&app, "").await.is_empty());
    // Another test quarantined does not make this one retried.
    api_call(
        &app,
        Method::POST,
        "/api/v1/quarantine",
        Some(&json!({"repository": REPO, "test": FLAKY}).to_string()),
    )
    .await;
    let id = failing_run(&app, 76, "api::checksum_matches", 0).await;
    app.wait_status(&id, "escalated").await;
    // A human re-ran it and it passed: their flaky_test verdict makes it flaky in 1 of 2 runs,
    // so its next failure is retried.
    let (code, v) = api_call(
        &app,
        Method::POST,
        &format!("/api/v1/sessions/{id}/verdict"),
        Some(r#"{"category": "flaky_test", "note": "passed when re-run by hand"}"#),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let list = flaky_list(&app, "").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (
            list[0]["runs"].as_i64(),
            list[0]["failures"].as_i64(),
            list[0]["flaky_failures"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let id = failing_run(&app, 77, "api::checksum_matches", 1).await;
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("api::checksum_matches (flaky in 1 of 2 failing runs)"),
        "{s}"
    );
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn bad_flaky_and_quarantine_requests_are_json_4xx() {
    let app = TestApp::start().await;
    let cases: [(Method, &str, Option<&str>, u16); 7] = [
        (Method::GET, "/api/v1/flaky-tests?limit=0", None, 400),
        (Method::GET, "/api/v1/flaky-tests?limit=lots", None, 400),
        (Method::POST, "/api/v1/quarantine", Some("{not json"), 400),
        (
            Method::POST,
            "/api/v1/quarantine",
            Some(r#"{"repository":"o/r"}"#),
            400,
        ),
        (
            Method::POST,
            "/api/v1/quarantine",
            Some(r#"{"repository":"o/r","test":"  "}"#),
            400,
        ),
        (
            Method::DELETE,
            "/api/v1/quarantine?repository=o/r",
            None,
            400,
        ),
        (
            Method::DELETE,
            "/api/v1/quarantine?repository=o/r&test=t",
            None,
            404,
        ),
    ];
    for (m, p, body, want) in cases {
        let (code, v) = api_call(&app, m.clone(), p, body).await;
        assert_eq!(code, want, "{m} {p} {body:?}: {v}");
        assert!(v["error"].is_string(), "{m} {p}: {v}");
    }
    assert!(app.get("/api/v1/quarantine").await["quarantine"]
        .as_array()
        .unwrap()
        .is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_escalated_run_that_passes_when_re_run_by_a_person_makes_its_tests_flaky() {
    let app = TestApp::start().await;
    let test = "api::tests::races_the_clock";
    let id = failing_run(&app, 70, test, 0).await;
    app.wait_status(&id, "escalated").await;
    let before = flaky_list(&app, &format!("?repository={REPO}")).await;
    assert!(
        before.iter().all(|t| t["flaky_failures"] == 0),
        "{before:#?}"
    );
    // Someone re-runs it by hand and it passes on the same commit.
    let r = app
        .post_github(
            "workflow_run",
            "f-70-ok",
            &workflow_run(70, 2, "success", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "passed_later", "{body}");
    let mut flaky = Vec::new();
    for _ in 0..100 {
        flaky = flaky_list(&app, &format!("?repository={REPO}")).await;
        if flaky
            .iter()
            .any(|t| t["test"] == test && t["flaky_failures"] == 1)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        flaky
            .iter()
            .any(|t| t["test"] == test && t["flaky_failures"] == 1),
        "{flaky:#?}"
    );
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        s["status"], "escalated",
        "the session stays as it was: {s:#}"
    );
    assert!(
        s["timeline"]
            .to_string()
            .contains("passed on the same commit"),
        "{s:#}"
    );
    app.stop().await;
}
