//! What only CircleCI shows, against a mock of CircleCI's v1.1 and v2 APIs (the scenarios
//! every platform shares run in conformance.rs).
//! Payloads follow the documented outbound webhook shape (no licensed captures exist).

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const C_SECRET: &str = "circle-signing-secret";
const C_TOKEN: &str = "circle-api-token";
const SLUG: &str = "gh/acme/api";

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Circleci).webhook_secret = Some(C_SECRET.into());
        c.platform_mut(Platform::Circleci).token = Some(C_TOKEN.into());
        c.platform_mut(Platform::Circleci).api_url = c.platform(Platform::Github).api_url.clone();
    })
    .await
}

/// Posts `body` signed with the configured secret, as CircleCI does.
async fn post_signed(app: &TestApp, body: &str) -> reqwest::Response {
    post_signed_with(app, C_SECRET, body).await
}

async fn post_signed_with(app: &TestApp, secret: &str, body: &str) -> reqwest::Response {
    let signature = format!("v1={}", pipeguard_sim::hmac_hex(secret, body.as_bytes()));
    app.http
        .post(format!("{}/webhooks/circleci", app.base))
        .header("content-type", "application/json")
        .header("circleci-event-type", "workflow-completed")
        .header("circleci-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn delivery(id: &str, kind: &str, pipeline: &str, workflow: &str, status: &str) -> String {
    let mut v = json!({
        "id": id, "type": kind, "happened_at": "2026-11-23T10:04:00.000Z",
        "webhook": {"id": "cf8c4fdd-0587-4da1-b4ca-4846e9640af9", "name": "pipeguard"},
        "project": {"id": "84996744-a854-4f5e-aea3-04e2851dc1d2", "name": "api", "slug": SLUG},
        "organization": {"id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c", "name": "acme"},
        "workflow": {"id": workflow, "name": "build-test", "status": status,
                     "created_at": "2026-11-23T10:00:00.000Z", "stopped_at": "2026-11-23T10:04:00.000Z",
                     "url": format!("https://app.circleci.com/pipelines/github/acme/api/130/workflows/{workflow}")},
        "pipeline": {"id": pipeline, "number": 130, "created_at": "2026-11-23T09:59:59.000Z",
                     "trigger": {"type": "webhook"},
                     "vcs": {"provider_name": "github", "origin_repository_url": "https://github.com/acme/api",
                             "target_repository_url": "https://github.com/acme/api",
                             "revision": "1dc6aa69bc8b9b4a7a5e8d1e1d8e2c2c4b5a6f70", "branch": "main"}}
    });
    if kind == "job-completed" {
        v["job"] = json!({"id": "job-uuid-test", "name": "test", "number": 136, "status": status,
                          "started_at": "2026-11-23T10:00:05.000Z", "stopped_at": "2026-11-23T10:03:50.000Z"});
    }
    v.to_string()
}

/// Mounts the pipeline's workflows, the workflow's jobs and each failed job's step output.
/// `jobs` = (job uuid, number, name, status, log).
async fn mount_workflow(
    mock: &MockServer,
    pipeline: &str,
    workflow: &str,
    jobs: &[(&str, u64, &str, &str, &str)],
) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/pipeline/{pipeline}/workflow")))
        .and(header("circle-token", C_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": workflow, "name": "build-test", "status": "failed",
                       "pipeline_id": pipeline, "pipeline_number": 130, "project_slug": SLUG,
                       "created_at": "2026-11-23T10:00:00Z", "stopped_at": "2026-11-23T10:04:00Z"},
                      {"id": "other-wf", "name": "nightly", "status": "success",
                       "created_at": "2026-11-23T10:00:00Z"}],
            "next_page_token": null
        })))
        .mount(mock)
        .await;
    let items: Vec<Value> = jobs
        .iter()
        .map(|(id, n, name, st, _)| json!({"id": id, "job_number": n, "name": name, "status": st, "type": "build", "project_slug": SLUG}))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/workflow/{workflow}/job")))
        .and(header("circle-token", C_TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": items, "next_page_token": null})),
        )
        .mount(mock)
        .await;
    for (_, n, _, st, log) in jobs {
        if *st != "failed" {
            continue;
        }
        Mock::given(method("GET"))
            .and(path(format!("/api/v1.1/project/github/acme/api/{n}")))
            .and(header("circle-token", C_TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "build_num": n, "status": "failed",
                "steps": [
                    {"name": "Spin up environment", "actions": [{"name": "Spin up environment", "status": "success",
                        "failed": null, "has_output": true, "output_url": format!("{}/output/{n}/0", mock.uri())}]},
                    {"name": "cargo test", "actions": [{"name": "cargo test", "status": "failed", "failed": true,
                        "exit_code": 101, "has_output": true, "output_url": format!("{}/output/{n}/1", mock.uri())}]}
                ]
            })))
            .mount(mock)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/output/{n}/1")))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!([{"message": log, "time": "2026-11-23T10:03:49Z", "type": "out", "truncated": false}]),
            ))
            .mount(mock)
            .await;
        // The successful step's output is not needed: it must not be downloaded.
        Mock::given(method("GET"))
            .and(path(format!("/output/{n}/0")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(0)
            .mount(mock)
            .await;
    }
}

#[tokio::test]
async fn transient_failure_reruns_the_workflow_from_failed_once() {
    let app = start().await;
    mount_workflow(
        &app.github,
        "pipe-1",
        "wf-1",
        &[
            ("job-uuid-test", 136, "test", "failed", TRANSIENT_LOG),
            ("job-uuid-lint", 135, "lint", "success", ""),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/workflow/wf-1/rerun"))
        .and(header("circle-token", C_TOKEN))
        .and(body_json(json!({"from_failed": true})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"workflow_id": "wf-2"})))
        .expect(1)
        .mount(&app.github)
        .await;

    let wf = delivery("evt-1", "workflow-completed", "pipe-1", "wf-1", "failed");
    let r = post_signed(&app, &wf).await;
    assert_eq!(r.status(), 202);
    app.wait_status(&session_id_in(&r.json().await.unwrap()), "verifying")
        .await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn malformed_deliveries_are_400_and_nothing_is_stored() {
    let app = start().await;
    for bad in [
        "{nope",
        "[]",
        r#"{"id": "x", "type": "workflow-completed"}"#,
    ] {
        let r = post_signed(&app, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_successful_rerun_closes_the_session_as_healed() {
    let app = start().await;
    mount_workflow(
        &app.github,
        "pipe-5",
        "wf-5",
        &[("job-uuid-t", 150, "test", "failed", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/workflow/wf-5/rerun"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"workflow_id": "wf-6"})))
        .expect(1)
        .mount(&app.github)
        .await;
    let r = post_signed(
        &app,
        &delivery("evt-5", "workflow-completed", "pipe-5", "wf-5", "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    app.wait_status(&id, "verifying").await;
    // The rerun is a new workflow with the same name in the same pipeline, green at 10:11:30.
    let mut green: Value = serde_json::from_str(&delivery(
        "evt-6",
        "workflow-completed",
        "pipe-5",
        "wf-6",
        "success",
    ))
    .unwrap();
    green["workflow"]["stopped_at"] = json!("2026-11-23T10:11:30.000Z");
    let r = post_signed(&app, &green.to_string()).await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    // Failed at 10:04:00 by CircleCI's own times: 450 s to green.
    assert_eq!(s["time_to_green_ms"], 450_000, "{s:#}");
    assert_eq!(
        s["run_label"], "build-test in pipeline pipe-5, rerun 1",
        "{s:#}"
    );
    assert_eq!(s["run_attempt"], 2, "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn only_the_transient_job_is_rerun_when_another_needs_a_human() {
    let app = start().await;
    mount_workflow(
        &app.github,
        "pipe-7",
        "wf-7",
        &[
            ("job-uuid-fetch", 160, "fetch", "failed", TRANSIENT_LOG),
            ("job-uuid-build", 161, "build", "failed", COMPILE_LOG),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/workflow/wf-7/rerun"))
        .and(body_json(json!({"jobs": ["job-uuid-fetch"]})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"workflow_id": "wf-8"})))
        .expect(1)
        .mount(&app.github)
        .await;
    let r = post_signed(
        &app,
        &delivery("evt-7", "workflow-completed", "pipe-7", "wf-7", "failed"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert!(s["reason"].as_str().unwrap().contains("build"), "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_corrupt_cache_triggers_a_pipeline_with_a_fresh_cache_key_and_its_failure_escalates() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Circleci).webhook_secret = Some(C_SECRET.into());
        c.platform_mut(Platform::Circleci).token = Some(C_TOKEN.into());
        c.platform_mut(Platform::Circleci).api_url = c.platform(Platform::Github).api_url.clone();
        let mut r = pipeguard_server::tenants::RepoConfig {
            platform: "circleci".into(),
            name: SLUG.into(),
            // A per-repository webhook secret replaces the platform's.
            webhook_secret: Some("repo-secret".into()),
            ..Default::default()
        };
        r.cache.variable = Some("cache-version".into());
        c.repos.push(r);
    })
    .await;
    let log = "npm ci\nnpm ERR! code EINTEGRITY\nnpm ERR! sha512-abc integrity checksum failed when using sha512\nExited with code exit status 1\n";
    mount_workflow(
        &app.github,
        "pipe-c1",
        "wf-c1",
        &[("job-uuid-test", 140, "test", "failed", log)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v2/project/{SLUG}/pipeline")))
        .and(header("circle-token", C_TOKEN))
        .and(wiremock::matchers::body_partial_json(
            json!({"branch": "main"}),
        ))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "pipe-c2", "number": 131, "state": "created"})),
        )
        .expect(1)
        .mount(&app.github)
        .await;
    let wf = delivery("evt-c1", "workflow-completed", "pipe-c1", "wf-c1", "failed");
    // Signed with the platform's secret: this repository has its own.
    assert_eq!(post_signed(&app, &wf).await.status(), 401);
    let r = post_signed_with(&app, "repo-secret", &wf).await;
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["strategy"], "clear_cache", "{s:#}");
    assert_eq!(s["current_run"], "pipe-c2/build-test");
    let got = app.github.received_requests().await.unwrap();
    let trigger = got
        .iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/pipeline"))
        .unwrap();
    let body: Value = serde_json::from_slice(&trigger.body).unwrap();
    let key = body["parameters"]["cache-version"].as_str().unwrap();
    assert!(key.starts_with("pipeguard-"), "{body}");

    // The new pipeline fails the same way: the cache was already cleared once.
    mount_workflow(
        &app.github,
        "pipe-c2",
        "wf-c2",
        &[("job-uuid-test", 141, "test", "failed", log)],
    )
    .await;
    let wf2 = delivery("evt-c2", "workflow-completed", "pipe-c2", "wf-c2", "failed");
    let r = post_signed_with(&app, "repo-secret", &wf2).await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("clear_cache (done once"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}
