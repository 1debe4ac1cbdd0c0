//! Deliveries as the platforms really send them, through `/webhooks/{platform}`: CircleCI
//! projects of GitLab / GitHub App organizations (commit in `trigger_parameters.git`, no job
//! in API v1.1), GitLab's legacy Build Hook, an Azure DevOps service hook with minimal
//! resource details, and a Jenkins Notification plugin URL with `user:secret@`.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const SECRET: &str = "hook-secret";
const CIRCLE_SLUG: &str = "circleci/4e7nKd6JXmMVGoDsHf1jqm/XL5BXkMYLSVp2dFphbE4f8";
const SHA: &str = "8f4c1e2a9b7d3c5e6f708192a3b4c5d6e7f80912";

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        let api = c.platform(Platform::Github).api_url.clone();
        for p in [
            Platform::Circleci,
            Platform::Gitlab,
            Platform::Azure,
            Platform::Jenkins,
        ] {
            c.platform_mut(p).webhook_secret = Some(SECRET.into());
        }
        c.platform_mut(Platform::Circleci).token = Some("circle-token".into());
        c.platform_mut(Platform::Circleci).api_url = api;
    })
    .await
}

/// The session id of a delivery answered 202.
async fn accepted(r: reqwest::Response) -> String {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    session_id_in(&serde_json::from_str(&text).unwrap())
}

/// A client without the app's bearer token: deliveries prove themselves.
fn plain() -> reqwest::Client {
    reqwest::Client::new()
}

/// CircleCI's documented `job-completed` for a GitLab project: no `pipeline.vcs`.
fn circleci_gitlab_delivery() -> String {
    json!({
        "id": "5ef3a8c2-1b7e-4d4f-9a3e-6c2d1b0a9f88", "type": "job-completed",
        "happened_at": "2026-11-23T10:04:00.000Z",
        "webhook": {"id": "cf8c4fdd-0587-4da1-b4ca-4846e9640af9", "name": "pipeguard"},
        "project": {"id": "d0a4e6b2-3c5f-4e1a-9b8d-7f6e5d4c3b2a", "name": "api", "slug": CIRCLE_SLUG},
        "organization": {"id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c", "name": "acme"},
        "workflow": {"id": "wf-gl-1", "name": "build-test", "status": "failed",
                     "created_at": "2026-11-23T10:00:00.000Z", "stopped_at": "2026-11-23T10:04:00.000Z",
                     "url": "https://app.circleci.com/pipelines/circleci/4e7nKd6JXmMVGoDsHf1jqm/XL5BXkMYLSVp2dFphbE4f8/12/workflows/wf-gl-1"},
        "pipeline": {"id": "pipe-gl-1", "number": 12, "created_at": "2026-11-23T09:59:59.000Z",
                     "trigger": {"type": "gitlab"},
                     "trigger_parameters": {
                         "gitlab": {"type": "push", "ref": "refs/heads/feature/login",
                                    "branch": "feature/login", "checkout_sha": SHA,
                                    "repo_name": "api", "web_url": "https://gitlab.com/acme/api"},
                         "git": {"tag": "", "checkout_sha": SHA, "ref": "refs/heads/feature/login",
                                 "branch": "feature/login",
                                 "checkout_url": "https://gitlab.com/acme/api.git", "commit_sha": SHA},
                         "circleci": {"event_type": "push", "trigger_type": "gitlab",
                                      "event_time": "2026-11-23T09:59:58.000Z"}}},
        "job": {"id": "job-gl-1", "name": "test", "number": 7, "status": "failed",
                "started_at": "2026-11-23T10:00:05.000Z", "stopped_at": "2026-11-23T10:03:50.000Z"}
    })
    .to_string()
}

fn circle_sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The session keeps the commit CircleCI sent in `trigger_parameters.git`, and API v1.1's
/// 404 for the GitLab project's job escalates the failure without a log instead of failing it.
#[tokio::test]
async fn circleci_gitlab_project_keeps_its_commit_and_escalates_without_a_log() {
    let app = start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/pipeline/pipe-gl-1/workflow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": "wf-gl-1", "name": "build-test", "status": "failed",
                       "created_at": "2026-11-23T10:00:00Z", "stopped_at": "2026-11-23T10:04:00Z"}],
            "next_page_token": null
        })))
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/workflow/wf-gl-1/job"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": "job-gl-1", "job_number": 7, "name": "test", "status": "failed"}],
            "next_page_token": null
        })))
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1.1/project/{CIRCLE_SLUG}/7")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .expect(1..)
        .mount(&app.github)
        .await;
    let body = circleci_gitlab_delivery();
    let r = plain()
        .post(format!("{}/webhooks/circleci", app.base))
        .header("content-type", "application/json")
        .header("circleci-event-type", "job-completed")
        .header("circleci-signature", circle_sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    let id = accepted(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["head_sha"], SHA);
    assert_eq!(s["repository"], CIRCLE_SLUG);
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

/// Older GitLab's Build Hook (go-gitlab's `build.json` shape): no `pipeline_id`.
#[tokio::test]
async fn gitlab_legacy_build_hook_is_accepted() {
    let app = start().await;
    let body = json!({
        "object_kind": "build", "ref": "gitlab-script-trigger", "tag": false,
        "before_sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
        "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
        "build_id": 1977, "build_name": "test", "build_stage": "test", "build_status": "failed",
        "build_created_at": "2021-02-23T02:41:37.886Z", "build_started_at": "2021-02-23T02:41:40.000Z",
        "build_finished_at": "2021-02-23T02:43:01.000Z", "build_duration": 81.0,
        "build_allow_failure": false, "build_failure_reason": "script_failure",
        "project_id": 380, "project_name": "gitlab-org/gitlab-test",
        "user": {"id": 42, "name": "User1", "username": "user1"},
        "commit": {"id": 2366, "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
                   "message": "test\n", "status": "failed"},
        "repository": {"name": "gitlab_test",
                       "homepage": "http://192.168.64.1:3005/gitlab-org/gitlab-test",
                       "git_http_url": "http://192.168.64.1:3005/gitlab-org/gitlab-test.git"},
        "environment": null
    });
    let r = plain()
        .post(format!("{}/webhooks/gitlab", app.base))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Build Hook")
        .header("x-gitlab-token", SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let id = accepted(r).await;
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(s["repository"], "gitlab-org/gitlab-test");
    assert_eq!(s["run"], "2366");
}

/// A service hook subscription sending minimal resource details.
#[tokio::test]
async fn azure_minimal_resource_details_are_accepted() {
    let app = start().await;
    let page = "https://dev.azure.com/FabrikamFiber/web/build.aspx?pcguid=e4e4e4e4-ffff-aaaa-bbbb-c5c5c5c5c5c5&builduri=vstfs%3a%2f%2f%2fBuild%2fBuild%2f2727068";
    let body = json!({
        "subscriptionId": "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e", "notificationId": 3,
        "id": "b1b1b1b1-cccc-dddd-eeee-f2f2f2f2f2f2", "eventType": "build.complete",
        "publisherId": "tfs",
        "message": {"text": "Build 20241202.1 failed"},
        "resource": {"id": 2727068, "buildNumber": "20241202.1", "status": "completed",
                     "result": "failed", "url": page},
        "resourceVersion": "2.0",
        "resourceContainers": {
            "collection": {"id": "e4e4e4e4-ffff-aaaa-bbbb-c5c5c5c5c5c5", "baseUrl": "https://dev.azure.com/FabrikamFiber/"},
            "account": {"id": "f5f5f5f5-aaaa-bbbb-cccc-d6d6d6d6d6d6", "baseUrl": "https://dev.azure.com/FabrikamFiber/"},
            "project": {"id": "16dcfeeb-d8fd-495c-917b-fec46cb44fbb", "baseUrl": "https://dev.azure.com/FabrikamFiber/"}
        },
        "createdDate": "2024-12-02T20:59:49.4561538Z"
    });
    let r = plain()
        .post(format!("{}/webhooks/azure", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .basic_auth("pipeguard", Some(SECRET))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let id = accepted(r).await;
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        s["repository"],
        "FabrikamFiber/16dcfeeb-d8fd-495c-917b-fec46cb44fbb"
    );
    assert_eq!(s["run"], "2727068");
}

/// The Notification plugin's endpoint `https://jenkins:SECRET@host/webhooks/jenkins` arrives
/// as Basic auth: the secret is the password; another password is refused.
#[tokio::test]
async fn jenkins_secret_as_the_basic_auth_password() {
    let app = start().await;
    let body = json!({
        "name": "api", "display_name": "api", "url": "job/team/job/api/",
        "build": {"full_url": "https://ci.example.com/job/team/job/api/18/", "number": 18,
                  "queue_id": 4711, "timestamp": 1_763_892_000_000_i64, "duration": 95_000,
                  "phase": "COMPLETED", "status": "FAILURE", "url": "job/team/job/api/18/",
                  "scm": {"url": "https://git.example.com/team/api.git", "branch": "origin/main",
                          "commit": "1dc6aa69bc8b9b4a7a5e8d1e1d8e2c2c4b5a6f70"},
                  "log": "npm ERR! network ECONNRESET\n"}
    })
    .to_string();
    let post = |password: &'static str| {
        plain()
            .post(format!("{}/webhooks/jenkins", app.base))
            .header("content-type", "application/json")
            .basic_auth("jenkins", Some(password))
            .body(body.clone())
            .send()
    };
    let wrong = post("not-the-secret").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let v: Value = wrong.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized");
    let r = post(SECRET).await.unwrap();
    let id = accepted(r).await;
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(s["repository"], "team/api");
}
