//! What only GitHub Actions shows, against a mock of the Actions REST API: the scenarios every
//! platform shares run in conformance.rs.

mod common;

use common::*;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

fn rerun_failed(run_id: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run_id}/rerun-failed-jobs"
        )))
        .and(header("authorization", "Bearer ghs_testtoken"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
}

#[tokio::test]
async fn time_to_green_is_read_from_githubs_own_timestamps() {
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        44,
        1,
        &[(11, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    rerun_failed(44).expect(1).mount(&app.github).await;
    let r = app
        .post_github(
            "workflow_run",
            "d-20",
            &workflow_run(44, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "verifying").await;

    let r = app
        .post_github(
            "workflow_run",
            "d-21",
            &workflow_run(44, 2, "success", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    // Failed at 10:04:00, green at 10:09:00 by GitHub's own timestamps.
    assert_eq!(s["time_to_green_ms"], 300_000);
    assert_eq!(s["run_attempt"], 2);
    // (The suite in conformance.rs checks the other figures on every platform.)
    let stats = app.get("/api/v1/stats").await;
    assert_eq!(stats["time_to_green_ms"]["median"], 300_000);
    let text = metrics_text(&app).await;
    for line in [
        "pipeguard_webhooks_received_total{platform=\"github\",status=\"202\"} 2",
        "pipeguard_time_to_green_seconds_bucket{le=\"300.0\"} 1",
        "pipeguard_time_to_green_seconds_bucket{le=\"60.0\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn failure_again_retries_until_the_limit_then_escalates() {
    let app = TestApp::start_with(|c| c.healing.max_attempts = 1).await;
    mount_run(
        &app.github,
        45,
        1,
        &[(12, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    rerun_failed(45).expect(1).mount(&app.github).await;
    let r = app
        .post_github(
            "workflow_run",
            "d-30",
            &workflow_run(45, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "verifying").await;
    app.post_github(
        "workflow_run",
        "d-31",
        &workflow_run(45, 2, "failure", "CI"),
    )
    .await;
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("after 1 heal attempt(s); the limit is 1"),
        "{s}"
    );
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn only_the_transient_jobs_are_rerun_when_others_are_genuine() {
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        46,
        1,
        &[
            (21, "integration", "failure", TRANSIENT_LOG),
            (22, "build", "failure", COMPILE_LOG),
        ],
    )
    .await;
    rerun_failed(46).expect(0).mount(&app.github).await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/{REPO}/actions/jobs/21/rerun")))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/{REPO}/actions/jobs/22/rerun")))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-40",
            &workflow_run(46, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("build (compilation_error)"),
        "{s}"
    );
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn platform_errors_are_retried_with_backoff() {
    let app = TestApp::start().await;
    // The job list fails twice with 502 before answering.
    Mock::given(method("GET"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/48/attempts/1/jobs"
        )))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&app.github)
        .await;
    mount_run(
        &app.github,
        48,
        1,
        &[(41, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    rerun_failed(48).expect(1).mount(&app.github).await;
    let r = app
        .post_github(
            "workflow_run",
            "d-60",
            &workflow_run(48, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "verifying").await;
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn persistent_platform_errors_fail_the_session_with_the_reason() {
    let app = TestApp::start_with(|c| c.worker.max_job_tries = 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/49")))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-70",
            &workflow_run(49, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    let s = app.wait_status(&id, "failed").await;
    assert!(s["reason"].as_str().unwrap().contains("503"), "{s}");
    app.stop().await;
}

#[tokio::test]
async fn a_failure_whose_retries_never_heal_stops_being_retried() {
    let app = TestApp::start_with(|c| c.healing.max_attempts = 1).await;
    for run in [60u64, 61, 62] {
        mount_run(
            &app.github,
            run,
            1,
            &[(run * 10, "test", "failure", TRANSIENT_LOG)],
        )
        .await;
        rerun_failed(run).expect(1).mount(&app.github).await;
        let r = app
            .post_github(
                "workflow_run",
                &format!("l-{run}"),
                &workflow_run(run, 1, "failure", "CI"),
            )
            .await;
        let id = session_id(r).await;
        app.wait_status(&id, "verifying").await;
        app.post_github(
            "workflow_run",
            &format!("l-{run}-2"),
            &workflow_run(run, 2, "failure", "CI"),
        )
        .await;
        app.wait_status(&id, "escalated").await;
    }
    // The same failure a fourth time: learning says retrying it wastes compute.
    mount_run(
        &app.github,
        63,
        1,
        &[(630, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    rerun_failed(63).expect(0).mount(&app.github).await;
    let r = app
        .post_github(
            "workflow_run",
            "l-63",
            &workflow_run(63, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        s["reason"].as_str().unwrap().starts_with("learning:"),
        "{s}"
    );
    assert_eq!(s["category"], "dependency_download");
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}
