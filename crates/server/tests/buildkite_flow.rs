//! End-to-end healing of Buildkite builds against a mock of the Buildkite REST API v2.
//! Payloads follow the documented webhook shapes (`crates/platforms/tests/fixtures/buildkite`).

mod common;

use common::*;
use hmac::{Hmac, Mac};
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BK_SECRET: &str = "buildkite-webhook-token";
const BK_TOKEN: &str = "bkua_test";
const ORG: &str = "acme";
const PIPELINE: &str = "app";
const API: &str = "/v2/organizations/acme/pipelines/app";

async fn start_with(tweak: impl FnOnce(&mut pipeguard_server::config::Config)) -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Buildkite).webhook_secret = Some(BK_SECRET.into());
        c.platform_mut(Platform::Buildkite).token = Some(BK_TOKEN.into());
        c.platform_mut(Platform::Buildkite).api_url = c.platform(Platform::Github).api_url.clone();
        tweak(c);
    })
    .await
}

async fn start() -> TestApp {
    start_with(|_| {}).await
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `X-Buildkite-Signature` for `body` signed at `ts` with `secret`.
fn signature(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    format!(
        "timestamp={ts},signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// How a delivery proves itself.
enum Proof {
    Signed,
    Token(&'static str),
    Header(String),
    Nothing,
}

async fn post(app: &TestApp, event: &str, body: &str, proof: Proof) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/webhooks/buildkite", app.base))
        .header("content-type", "application/json")
        .header("x-buildkite-event", event)
        .body(body.to_string());
    r = match proof {
        Proof::Signed => r.header("x-buildkite-signature", signature(BK_SECRET, now(), body)),
        Proof::Token(t) => r.header("x-buildkite-token", t),
        Proof::Header(sig) => r.header("x-buildkite-signature", sig),
        Proof::Nothing => r,
    };
    r.send().await.unwrap()
}

fn build(number: u64, state: &str) -> Value {
    json!({
        "id": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
        "url": format!("https://api.buildkite.com{API}/builds/{number}"),
        "web_url": format!("https://buildkite.com/{ORG}/{PIPELINE}/builds/{number}"),
        "number": number, "state": state, "blocked": false,
        "message": "Bump serde", "commit": "abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8",
        "branch": "main", "env": {}, "source": "webhook",
        "created_at": "2026-11-23T10:00:00.000Z", "started_at": "2026-11-23T10:00:05.000Z",
        "finished_at": "2026-11-23T10:04:00.000Z"
    })
}

fn pipeline() -> Value {
    json!({"id": "849411f9-9e6d-4739-a0d8-e247088e9b52", "name": "App", "slug": PIPELINE,
           "url": format!("https://api.buildkite.com{API}"),
           "web_url": format!("https://buildkite.com/{ORG}/{PIPELINE}")})
}

/// A `build.finished` delivery shaped like Buildkite's documented one.
fn build_finished(number: u64, state: &str) -> String {
    json!({"event": "build.finished", "build": build(number, state), "pipeline": pipeline(),
           "sender": {"id": "8a7693f8-dbae-4783-9137-84090fce9045", "name": "Some Person"}})
    .to_string()
}

fn job_json(id: &str, name: &str, key: &str, state: &str, retries: Option<u32>) -> Value {
    json!({"id": id, "type": "script", "name": name, "step_key": key, "state": state,
           "soft_failed": false, "retried": false, "retries_count": retries,
           "exit_status": if state == "passed" { 0 } else { 1 },
           "started_at": "2026-11-23T10:00:10.000Z", "finished_at": "2026-11-23T10:03:50.000Z"})
}

fn job_finished(number: u64, job: Value) -> String {
    json!({"event": "job.finished", "job": job, "build": build(number, "failing"),
           "pipeline": pipeline(), "sender": {"id": "8a7693f8", "name": "Some Person"}})
    .to_string()
}

/// Mounts the build with its jobs and each failed job's log. `jobs` = (id, name, key, state, log).
async fn mount_build(mock: &MockServer, number: u64, jobs: &[(&str, &str, &str, &str, &str)]) {
    let list: Vec<Value> = jobs
        .iter()
        .map(|(id, name, key, st, _)| job_json(id, name, key, st, None))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("{API}/builds/{number}")))
        .and(header(
            "authorization",
            format!("Bearer {BK_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"number": number, "state": "failed", "finished_at": "2026-11-23T10:04:00.000Z",
                   "jobs": list}),
        ))
        .mount(mock)
        .await;
    for (id, _, _, st, log) in jobs {
        if *st == "failed" {
            Mock::given(method("GET"))
                .and(path(format!("{API}/builds/{number}/jobs/{id}/log.txt")))
                .respond_with(ResponseTemplate::new(200).set_body_string(*log))
                .mount(mock)
                .await;
        }
    }
}

fn retry_job(number: u64, id: &str) -> Mock {
    Mock::given(method("PUT"))
        .and(path(format!("{API}/builds/{number}/jobs/{id}/retry")))
        .and(header(
            "authorization",
            format!("Bearer {BK_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_json(
            "retried-job",
            "test",
            "test",
            "scheduled",
            Some(1),
        )))
}

#[tokio::test]
async fn a_transient_job_is_retried_once_despite_duplicates_and_the_passed_build_heals() {
    let app = start().await;
    mount_build(
        &app.github,
        42,
        &[
            ("job-test", ":rspec: test", "test", "failed", TRANSIENT_LOG),
            ("job-build", "build", "build", "passed", ""),
        ],
    )
    .await;
    retry_job(42, "job-test").expect(1).mount(&app.github).await;
    retry_job(42, "job-build")
        .expect(0)
        .mount(&app.github)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{API}/builds/42/rebuild")))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;

    let failed = build_finished(42, "failed");
    let r = post(&app, "build.finished", &failed, Proof::Signed).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let id = session_id_in(&first);
    // The same body again (re-signed later) is the same delivery; the plain token works too.
    let again: Value = post(&app, "build.finished", &failed, Proof::Token(BK_SECRET))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery gets the same answer");
    let job = job_finished(
        42,
        job_json("job-test", ":rspec: test", "test", "failed", None),
    );
    let j: Value = post(&app, "job.finished", &job, Proof::Signed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        j["session_id"],
        id.as_str(),
        "job and build deliveries are one session"
    );

    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["platform"], "buildkite");
    assert_eq!(s["repository"], "acme/app");
    assert_eq!(s["category"], "dependency_download");
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("Connection reset")));

    let r = post(
        &app,
        "build.finished",
        &build_finished(42, "passed"),
        Proof::Signed,
    )
    .await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    assert!(s["time_to_green_ms"].as_i64().is_some(), "{s:#}");
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        1
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn the_retried_job_failing_again_is_the_outcome() {
    let app = start_with(|c| c.healing.max_attempts = 1).await;
    mount_build(
        &app.github,
        46,
        &[("job-net", "test", "test", "failed", TRANSIENT_LOG)],
    )
    .await;
    retry_job(46, "job-net").expect(1).mount(&app.github).await;
    let r = post(
        &app,
        "build.finished",
        &build_finished(46, "failed"),
        Proof::Signed,
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    app.wait_status(&id, "verifying").await;
    // The build fails again: its build.finished says nothing new (attempt 1)…
    let again = build_finished(46, "failed").replace("Bump serde", "Bump serde ");
    let r: Value = post(&app, "build.finished", &again, Proof::Signed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["duplicate"], true, "{r}");
    // …the retried job's job.finished does: retries_count 1 is attempt 2.
    let retried = job_finished(46, job_json("job-net-2", "test", "test", "failed", Some(1)));
    let r: Value = post(&app, "job.finished", &retried, Proof::Signed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "outcome", "{r}");
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
        43,
        &[("job-compile", "compile", "compile", "failed", COMPILE_LOG)],
    )
    .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        "build.finished",
        &build_finished(43, "failed"),
        Proof::Signed,
    )
    .await;
    assert_eq!(r.status(), 202);
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
async fn a_mixed_build_retries_only_the_transient_job() {
    let app = start().await;
    mount_build(
        &app.github,
        44,
        &[
            ("job-fetch", "fetch", "fetch", "failed", TRANSIENT_LOG),
            ("job-compile", "compile", "compile", "failed", COMPILE_LOG),
        ],
    )
    .await;
    retry_job(44, "job-fetch")
        .expect(1)
        .mount(&app.github)
        .await;
    retry_job(44, "job-compile")
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        "build.finished",
        &build_finished(44, "failed"),
        Proof::Signed,
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert!(s["reason"].as_str().unwrap().contains("compile"), "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_deploy_step_waits_for_approval() {
    let app = start().await;
    // The label is only emoji; the step key says what it does.
    mount_build(
        &app.github,
        45,
        &[(
            "job-ship",
            ":rocket:",
            "deploy-production",
            "failed",
            TRANSIENT_LOG,
        )],
    )
    .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        "build.finished",
        &build_finished(45, "failed"),
        Proof::Signed,
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert_eq!(s["category"], "dependency_download");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn bad_signatures_tokens_and_replays_are_401_and_nothing_is_stored() {
    let app = start().await;
    let body = build_finished(47, "failed");
    let cases = [
        ("no proof", Proof::Nothing),
        ("wrong token", Proof::Token("not-the-token")),
        (
            "another secret",
            Proof::Header(signature("other-secret", now(), &body)),
        ),
        (
            "a replay older than five minutes",
            Proof::Header(signature(BK_SECRET, now() - 600, &body)),
        ),
        (
            "a timestamp in the future",
            Proof::Header(signature(BK_SECRET, now() + 600, &body)),
        ),
        (
            "the signature of another body",
            Proof::Header(signature(BK_SECRET, now(), &build_finished(48, "failed"))),
        ),
    ];
    for (what, proof) in cases {
        let r = post(&app, "build.finished", &body, proof).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn traversal_and_malformed_deliveries_are_400() {
    let app = start().await;
    let mut v: Value = serde_json::from_str(&build_finished(49, "failed")).unwrap();
    v["build"]["url"] =
        json!("https://api.buildkite.com/v2/organizations/../pipelines/x/builds/49");
    let r = post(&app, "build.finished", &v.to_string(), Proof::Signed).await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["message"].to_string();
    assert!(msg.contains("not a valid buildkite repository"), "{msg}");
    for bad in ["{nope", "[]", r#"{"build": {"state": "failed"}}"#] {
        let r = post(&app, "build.finished", bad, Proof::Signed).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_transient_job_is_retried_while_its_build_still_runs() {
    let app = start_with(|c| c.worker.verify_poll_seconds = 1).await;
    // The API says the build is still running: `job-slow` has not finished.
    let jobs = json!([
        job_json("job-test", ":rspec: test", "test", "failed", None),
        job_json("job-slow", "e2e", "e2e", "running", None),
    ]);
    Mock::given(method("GET"))
        .and(path(format!("{API}/builds/42")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"number": 42, "state": "failing", "jobs": jobs})),
        )
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/builds/42/jobs/job-test/log.txt")))
        .respond_with(ResponseTemplate::new(200).set_body_string(TRANSIENT_LOG))
        .expect(1..)
        .mount(&app.github)
        .await;
    retry_job(42, "job-test").expect(1).mount(&app.github).await;
    retry_job(42, "job-slow").expect(0).mount(&app.github).await;

    let job = job_finished(
        42,
        job_json("job-test", ":rspec: test", "test", "failed", None),
    );
    let id = session_id_in(
        &post(&app, "job.finished", &job, Proof::Signed)
            .await
            .json()
            .await
            .unwrap(),
    );
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        s["timeline"]
            .to_string()
            .contains("job :rspec: test failed while the run goes on: retrying it alone now"),
        "{:#}",
        s["timeline"]
    );
    // The build finishes later: green, and nothing is retried again.
    let r = post(
        &app,
        "build.finished",
        &build_finished(42, "passed"),
        Proof::Signed,
    )
    .await;
    assert_eq!(r.status(), 202);
    app.wait_status(&id, "healed").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}
