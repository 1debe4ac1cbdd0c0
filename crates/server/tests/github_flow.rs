//! End-to-end healing of GitHub Actions runs against a mock of the Actions REST API.

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
async fn transient_failure_is_rerun_exactly_once_despite_duplicate_deliveries() {
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        42,
        1,
        &[
            (7, "build", "failure", TRANSIENT_LOG),
            (8, "lint", "success", ""),
        ],
    )
    .await;
    rerun_failed(42).expect(1).mount(&app.github).await;

    let run = workflow_run(42, 1, "failure", "CI");
    let received = std::time::Instant::now();
    let r = app.post_github("workflow_run", "d-1", &run).await;
    assert_eq!(r.status(), 202);
    let first: serde_json::Value = r.json().await.unwrap();
    let id = first["session_id"].as_str().unwrap().to_string();
    // The same delivery again, and the job-level delivery of the same attempt: one session.
    let again: serde_json::Value = app
        .post_github("workflow_run", "d-1", &run)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery gets the same answer");
    let job: serde_json::Value = app
        .post_github("workflow_job", "d-2", &workflow_job(42, 7, 1, "build"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["session_id"], id.as_str());

    let s = app.wait_status(&id, "verifying").await;
    eprintln!(
        "webhook receipt to re-run call: {:?} (backoff 0, polled every 50 ms)",
        received.elapsed()
    );
    assert_eq!(s["category"], "dependency_download");
    assert_eq!(s["heal_attempts"], 1);
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("Connection reset")));
    assert_eq!(s["actions"].as_array().unwrap().len(), 1);
    let history = app.get("/pipeline/healing/history").await;
    assert_eq!(history["total_sessions"], 1);
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn genuine_failure_is_escalated_with_evidence_and_never_rerun() {
    let app = TestApp::start().await;
    mount_run(&app.github, 43, 1, &[(9, "build", "failure", COMPILE_LOG)]).await;
    rerun_failed(43).expect(0).mount(&app.github).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;

    let r = app
        .post_github(
            "workflow_run",
            "d-10",
            &workflow_run(43, 1, "failure", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    let evidence = s["evidence"].as_array().unwrap();
    assert!(
        evidence.iter().any(|e| e["text"]
            .as_str()
            .unwrap()
            .contains("error[E0308]: mismatched types")),
        "{evidence:?}"
    );
    assert!(evidence.iter().all(|e| e["line"].as_u64().unwrap() >= 1));
    let status = app.get("/pipeline/status").await;
    assert_eq!(status["pipeline_healing"]["escalated"], 1);
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn success_on_the_next_attempt_heals_and_records_time_to_green() {
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
    let status = app.get("/pipeline/status").await;
    assert_eq!(status["pipeline_healing"]["healing_success_rate"], 1.0);

    let stats = app.get("/api/v1/stats").await;
    assert_eq!(stats["time_to_green_ms"]["median"], 300_000);
    assert_eq!(stats["by_category"][0]["category"], "dependency_download");
    assert_eq!(stats["by_category"][0]["healing_success_rate"], 1.0);
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics"));
    let text = metrics.text().await.unwrap();
    for line in [
        "pipeguard_sessions_total{platform=\"github\",category=\"dependency_download\",outcome=\"healed\"} 1",
        "pipeguard_webhooks_received_total{platform=\"github\",status=\"202\"} 2",
        "pipeguard_time_to_green_seconds_count 1",
        "pipeguard_time_to_green_seconds_bucket{le=\"300.0\"} 1",
        "pipeguard_time_to_green_seconds_bucket{le=\"60.0\"} 0",
        "pipeguard_queue_depth ",
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
async fn deploy_workflows_wait_for_approval_before_any_rerun() {
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        47,
        1,
        &[(31, "deploy-production", "failure", TRANSIENT_LOG)],
    )
    .await;
    let rerun = rerun_failed(47)
        .expect(1)
        .mount_as_scoped(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-50",
            &workflow_run(47, 1, "failure", "Deploy"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "awaiting_approval").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        rerun.received_requests().await.len(),
        0,
        "re-ran a deploy without approval"
    );
    let r = app
        .http
        .post(format!("{}/api/v1/sessions/{id}/approve", app.base))
        .json(&json!({"by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "verifying").await;
    // The approver is the credential, not the body's `by`.
    let timeline = s["timeline"].to_string();
    assert!(timeline.contains("approved by test-admin"), "{timeline}");
    assert!(!timeline.contains("alice"), "{timeline}");
    // A second approval is a conflict, not a second re-run.
    let r = app
        .http
        .post(format!("{}/api/v1/sessions/{id}/approve", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    drop(rerun);
    app.stop().await;
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
