//! A pool of workers: a slow platform call holds back only its own session, and one
//! platform cannot take every worker.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const SLOW: Duration = Duration::from_secs(4);

/// Mounts run `run` whose job log download takes `SLOW`.
async fn slow_run(app: &TestApp, run: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/{run}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": run, "status": "completed", "conclusion": "failure", "run_attempt": 1
        })))
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/{run}/attempts/1/jobs")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total_count": 1,
            "jobs": [{"id": run * 10, "name": "build", "status": "completed", "conclusion": "failure"}]})))
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/repos/{REPO}/actions/jobs/{}/logs",
            run * 10
        )))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(TRANSIENT_LOG)
                .set_delay(SLOW),
        )
        .mount(&app.github)
        .await;
}

async fn fast_run(app: &TestApp, run: u64) {
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "build", "failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201))
        .mount(&app.github)
        .await;
}

#[tokio::test]
async fn a_slow_log_download_does_not_delay_another_sessions_retry() {
    let app = TestApp::start().await;
    slow_run(&app, 301).await;
    fast_run(&app, 302).await;
    let t0 = Instant::now();
    let slow = session_id(
        app.post_github(
            "workflow_run",
            "c-1",
            &workflow_run(301, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fast = session_id(
        app.post_github(
            "workflow_run",
            "c-2",
            &workflow_run(302, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    app.wait_status(&fast, "verifying").await;
    let fast_done = t0.elapsed();
    let s = app.get(&format!("/api/v1/sessions/{slow}")).await;
    assert_eq!(
        s["status"], "analyzing",
        "the slow session is still downloading"
    );
    assert!(
        fast_done < SLOW,
        "the fast session waited for the slow one: {fast_done:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_platform_cannot_take_every_worker() {
    // One job of a platform at a time: a second GitHub session waits for the slow one,
    // while a generic report (another platform) goes through at once.
    let app = TestApp::start_with(|c| c.worker.per_platform = 1).await;
    slow_run(&app, 311).await;
    fast_run(&app, 312).await;
    let slow = session_id(
        app.post_github(
            "workflow_run",
            "p-1",
            &workflow_run(311, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = session_id(
        app.post_github(
            "workflow_run",
            "p-2",
            &workflow_run(312, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let other = session_id(
        app.http
            .post(format!("{}/pipeline/webhook", app.base))
            .json(&json!({"source": "ci", "job_name": "lint", "error_message":
                          "error[E0425]: cannot find value `x` in this scope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    app.wait_status(&other, "escalated").await;
    let s = app.get(&format!("/api/v1/sessions/{queued}")).await;
    assert_eq!(
        s["status"], "received",
        "waits while GitHub's one slot is busy"
    );
    app.wait_status(&queued, "verifying").await;
    let s = app.get(&format!("/api/v1/sessions/{slow}")).await;
    assert_ne!(s["status"], "analyzing", "the slow one finished first");
    app.stop().await;
}
