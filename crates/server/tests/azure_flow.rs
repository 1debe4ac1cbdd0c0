//! End-to-end healing of Azure Pipelines builds against a mock of the Azure DevOps Build REST
//! API 7.1. Payloads follow the documented `build.complete` service hook
//! (`crates/platforms/tests/fixtures/azure`).

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AZ_SECRET: &str = "azure-hook-password";
const AZ_PAT: &str = "azure-pat";
/// `:azure-pat` in Basic auth, as a personal access token is sent.
const PAT_AUTH: &str = "Basic OmF6dXJlLXBhdA==";
const ORG: &str = "FabrikamFiber";
const PROJECT: &str = "Fabrikam";

fn builds(id: u64) -> String {
    format!("/{ORG}/{PROJECT}/_apis/build/builds/{id}")
}

async fn start_with(tweak: impl FnOnce(&mut pipeguard_server::config::Config)) -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Azure).webhook_secret = Some(AZ_SECRET.into());
        c.platform_mut(Platform::Azure).token = Some(AZ_PAT.into());
        c.platform_mut(Platform::Azure).api_url = c.platform(Platform::Github).api_url.clone();
        tweak(c);
    })
    .await
}

async fn start() -> TestApp {
    start_with(|_| {}).await
}

/// Posts a service hook delivery with the secret as the Basic auth password (`None`: no auth).
async fn post(app: &TestApp, password: Option<&str>, body: &str) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/webhooks/azure", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    if let Some(p) = password {
        r = r.basic_auth("pipeguard", Some(p));
    }
    r.send().await.unwrap()
}

/// A `build.complete` delivery shaped like the documented sample (resource version 2.0).
fn build_complete(event_id: &str, build: u64, result: &str) -> String {
    let base = format!("https://dev.azure.com/{ORG}/{PROJECT}");
    json!({
        "subscriptionId": "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e", "notificationId": 1,
        "id": event_id, "eventType": "build.complete", "publisherId": "tfs",
        "message": {"text": format!("Build 20261123.{build} {result}")},
        "resource": {
            "_links": {"self": {"href": format!("{base}/_apis/build/Builds/{build}")},
                       "web": {"href": format!("{base}/_build/results?buildId={build}")}},
            "id": build, "buildNumber": format!("20261123.{build}"),
            "status": "completed", "result": result,
            "startTime": "2026-11-23T10:00:00Z", "finishTime": "2026-11-23T10:04:00Z",
            "url": format!("{base}/_apis/build/Builds/{build}"),
            "definition": {"id": 5, "name": "Fabrikam-CI"},
            "project": {"id": "16dcfeeb-d8fd-495c-917b-fec46cb44fbb", "name": PROJECT},
            "sourceBranch": "refs/heads/main",
            "sourceVersion": "600c52d2d5b655caa111abfd863e5a9bd304bb0e",
            "reason": "individualCI"
        },
        "resourceVersion": "2.0",
        "createdDate": "2026-11-23T10:04:02Z"
    })
    .to_string()
}

/// A failed job in a stage: (stage, job name, log).
type FailedJobSpec<'a> = (&'a str, &'a str, &'a str);

/// Mounts the build (completed with `result`), its timeline with one stage per distinct stage
/// name, and the failed tasks' logs.
async fn mount_build(mock: &MockServer, id: u64, result: &str, jobs: &[FailedJobSpec<'_>]) {
    mount_build_seen(mock, id, result, jobs, u64::MAX).await
}

/// [`mount_build`] whose timeline answers `times` times.
async fn mount_build_seen(
    mock: &MockServer,
    id: u64,
    result: &str,
    jobs: &[FailedJobSpec<'_>],
    times: u64,
) {
    Mock::given(method("GET"))
        .and(path(builds(id)))
        .and(header("authorization", PAT_AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "status": "completed", "result": result,
            "finishTime": "2026-11-23T10:04:00Z", "definition": {"id": 5},
            "sourceBranch": "refs/heads/main"})))
        .mount(mock)
        .await;
    let mut records = vec![json!({"id": "s-build", "type": "Stage", "name": "Build",
        "identifier": "build", "state": "completed", "result": "succeeded", "attempt": 1})];
    for (i, (stage, name, log)) in jobs.iter().enumerate() {
        let sid = format!("s-{}", stage.to_lowercase());
        if !records.iter().any(|r| r["id"] == sid.as_str()) {
            records.push(json!({"id": sid, "type": "Stage", "name": stage,
                "identifier": stage.to_lowercase(), "state": "completed", "result": "failed",
                "attempt": 1}));
        }
        let (phase, job, task) = (format!("p-{i}"), format!("j-{i}"), format!("t-{i}"));
        records.push(
            json!({"id": phase, "parentId": sid, "type": "Phase", "name": name,
            "state": "completed", "result": "failed", "attempt": 1}),
        );
        records.push(
            json!({"id": job, "parentId": phase, "type": "Job", "name": name,
            "state": "completed", "result": "failed", "attempt": 1, "log": {"id": 100 + i}}),
        );
        records.push(
            json!({"id": task, "parentId": job, "type": "Task", "name": "Run script",
            "state": "completed", "result": "failed", "attempt": 1, "log": {"id": 200 + i},
            "issues": [{"type": "error", "message": "Bash exited with code '1'."}]}),
        );
        Mock::given(method("GET"))
            .and(path(format!("{}/logs/{}", builds(id), 200 + i)))
            .and(query_param("api-version", "7.1"))
            .respond_with(ResponseTemplate::new(200).set_body_string(*log))
            .mount(mock)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!("{}/timeline", builds(id))))
        .and(header("authorization", PAT_AUTH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"records": records, "id": "tl"})),
        )
        .up_to_n_times(times)
        .mount(mock)
        .await;
}

fn retry_build(id: u64) -> Mock {
    Mock::given(method("PATCH"))
        .and(path(builds(id)))
        .and(query_param("retry", "true"))
        .and(header("authorization", PAT_AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": id})))
}

fn retry_stage(id: u64, stage: &str) -> Mock {
    Mock::given(method("PATCH"))
        .and(path(format!("{}/stages/{stage}", builds(id))))
        .and(wiremock::matchers::body_json(
            json!({"state": "retry", "forceRetryAllJobs": false}),
        ))
        .respond_with(ResponseTemplate::new(200))
}

#[tokio::test]
async fn a_transient_failure_is_retried_once_despite_duplicates_and_the_success_heals() {
    let app = start().await;
    mount_build(
        &app.github,
        100,
        "failed",
        &[("Test", "unit", TRANSIENT_LOG)],
    )
    .await;
    retry_build(100).expect(1).mount(&app.github).await;
    let failed = build_complete("evt-100", 100, "failed");
    let r = post(&app, Some(AZ_SECRET), &failed).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let id = session_id_in(&first);
    // Service hooks retry a delivery with the same event id; the token header works too.
    let again: Value = app
        .http
        .post(format!("{}/webhooks/azure", app.base))
        .header("content-type", "application/json")
        .header("x-pipeguard-token", AZ_SECRET)
        .body(failed.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery gets the same answer");

    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["platform"], "azure");
    assert_eq!(s["repository"], "FabrikamFiber/Fabrikam");
    assert_eq!(s["category"], "dependency_download");
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("Connection reset")));

    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-101", 100, "succeeded"),
    )
    .await;
    assert_eq!(r.status(), 202);
    app.wait_status(&id, "healed").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_retry_that_fails_again_is_found_by_polling_the_timeline_attempt() {
    let app = start_with(|c| {
        c.healing.max_attempts = 1;
        c.worker.verify_poll_seconds = 1;
    })
    .await;
    // The analysis reads the timeline twice (run state, logs) at attempt 1; after the retry
    // the poll finds attempt 2 failed.
    mount_build_seen(
        &app.github,
        104,
        "failed",
        &[("Test", "unit", TRANSIENT_LOG)],
        2,
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{}/timeline", builds(104))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [
            {"id": "s", "type": "Stage", "name": "Test", "identifier": "test", "result": "failed", "attempt": 2},
            {"id": "j", "parentId": "s", "type": "Job", "name": "unit", "result": "failed", "attempt": 2,
             "previousAttempts": [{"attempt": 1, "timelineId": "t1", "recordId": "j1"}]}
        ]})))
        .with_priority(6)
        .expect(1..)
        .mount(&app.github)
        .await;
    retry_build(104).expect(1).mount(&app.github).await;
    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-104", 104, "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    // Out of heal attempts: escalated with the policy's reason, as a fresh plan would be.
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("after 1 heal attempt(s); the limit is 1"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_genuine_failure_is_escalated_with_evidence_and_never_retried() {
    let app = start().await;
    mount_build(
        &app.github,
        101,
        "failed",
        &[("Build", "compile", COMPILE_LOG)],
    )
    .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-110", 101, "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("error[E0308]")));
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_mixed_build_retries_only_the_stage_of_the_transient_job() {
    let app = start().await;
    mount_build(
        &app.github,
        102,
        "failed",
        &[
            ("Test", "fetch", TRANSIENT_LOG),
            ("Lint", "clippy", COMPILE_LOG),
        ],
    )
    .await;
    retry_stage(102, "test").expect(1).mount(&app.github).await;
    retry_stage(102, "lint").expect(0).mount(&app.github).await;
    retry_build(102).expect(0).mount(&app.github).await;
    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-120", 102, "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert!(s["reason"].as_str().unwrap().contains("clippy"), "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_transient_job_sharing_its_stage_with_a_genuine_one_is_not_retried() {
    let app = start().await;
    mount_build(
        &app.github,
        105,
        "failed",
        &[
            ("Test", "fetch", TRANSIENT_LOG),
            ("Test", "unit", COMPILE_LOG),
        ],
    )
    .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-150", 105, "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("retries a stage's failed jobs together"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_failed_job_in_a_deploy_stage_waits_for_approval() {
    let app = start().await;
    mount_build(
        &app.github,
        103,
        "failed",
        &[("Deploy", "rollout", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(AZ_SECRET),
        &build_complete("evt-130", 103, "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert_eq!(s["category"], "dependency_download");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_wrong_password_or_no_credential_is_401_and_nothing_is_stored() {
    let app = start().await;
    let body = build_complete("evt-140", 106, "failed");
    for (what, password) in [("no credential", None), ("wrong password", Some("nope"))] {
        let r = post(&app, password, &body).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    let r = app
        .http
        .post(format!("{}/webhooks/azure", app.base))
        .header("content-type", "application/json")
        .header("x-pipeguard-token", "nope")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    // The event id of a refused delivery is not burnt.
    assert_eq!(post(&app, Some(AZ_SECRET), &body).await.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn traversal_and_malformed_deliveries_are_400() {
    let app = start().await;
    let mut v: Value = serde_json::from_str(&build_complete("evt-160", 107, "failed")).unwrap();
    v["resource"]["url"] = json!("https://dev.azure.com/FabrikamFiber/../_apis/build/Builds/107");
    let r = post(&app, Some(AZ_SECRET), &v.to_string()).await;
    assert_eq!(r.status(), 400);
    for bad in [
        "{nope",
        "[]",
        r#"{"id": "x", "eventType": "build.complete", "resource": {"id": 1}}"#,
    ] {
        let r = post(&app, Some(AZ_SECRET), bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}
