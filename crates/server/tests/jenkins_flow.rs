//! What only Jenkins shows (the scenarios every platform shares run in conformance.rs):
//! healing of Jenkins builds against a mock of Jenkins' remote access API.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const J_SECRET: &str = "jenkins-shared-secret";
/// `pg:jt-token`, as HTTP basic auth sends a user and its API token.
const BASIC: &str = "Basic cGc6anQtdG9rZW4=";

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Jenkins).webhook_secret = Some(J_SECRET.into());
        c.platform_mut(Platform::Jenkins).user = Some("pg".into());
        c.platform_mut(Platform::Jenkins).token = Some("jt-token".into());
        // A Jenkins served under a context path, as many are.
        c.platform_mut(Platform::Jenkins).api_url =
            format!("{}/jenkins/", c.platform(Platform::Github).api_url);
    })
    .await
}

async fn post(app: &TestApp, token: Option<&str>, query: &str, body: &str) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/webhooks/jenkins{query}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        r = r.header("x-pipeguard-token", t);
    }
    r.send().await.unwrap()
}

/// The Notification plugin's JSON (`model/BuildState.java`) for a job in folder `team`.
fn notification(job: &str, number: u64, phase: &str, status: &str) -> String {
    notification_at(job, number, phase, status, 1_763_892_000_000)
}

/// [`notification`] of a build that started at `started_ms` and ran 95 s.
fn notification_at(job: &str, number: u64, phase: &str, status: &str, started_ms: i64) -> String {
    let url = job
        .split('/')
        .map(|n| format!("job/{n}/"))
        .collect::<String>();
    json!({
        "name": job.rsplit('/').next().unwrap(),
        "display_name": job,
        "url": url,
        "build": {
            "full_url": format!("https://ci.example.com/jenkins/{url}{number}/"),
            "number": number, "queue_id": 4711, "timestamp": started_ms,
            "duration": 95_000, "phase": phase, "status": status,
            "url": format!("{url}{number}/"),
            "scm": {"url": "https://git.example.com/api.git", "branch": "origin/main",
                    "commit": "3484a3fb816e0859fd6e1cea078d76385ff50625"},
            "parameters": {"TARGET": "staging"}, "log": "", "notes": "", "artifacts": {}
        }
    })
    .to_string()
}

/// `job` = `team/api` → `/jenkins/job/team/job/api/`.
fn job_path(job: &str) -> String {
    let mut p = "/jenkins/".to_string();
    for n in job.split('/') {
        p.push_str(&format!("job/{n}/"));
    }
    p
}

async fn mount_build(mock: &MockServer, job: &str, number: u64, log: &str, params: Value) {
    let jp = job_path(job);
    Mock::given(method("GET"))
        .and(path(format!("{jp}lastBuild/api/json")))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_class": "hudson.model.FreeStyleBuild", "number": number, "building": false,
            "result": "FAILURE", "timestamp": 1_763_892_000_000i64, "duration": 95_000
        })))
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{jp}{number}/consoleText")))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(200).set_body_string(log))
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{jp}{number}/api/json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "actions": [{"_class": "hudson.model.CauseAction"},
                        {"_class": "hudson.model.ParametersAction", "parameters": params}]
        })))
        .mount(mock)
        .await;
    // What the job declares: the parameters it ran with, and a workspace wipe switch.
    let mut declared: Vec<Value> = params
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"name": p["name"]}))
        .collect();
    declared.push(json!({"name": "WIPE_WORKSPACE"}));
    Mock::given(method("GET"))
        .and(path(format!("{jp}api/json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "property": [{"parameterDefinitions": declared}]
        })))
        .mount(mock)
        .await;
}

#[tokio::test]
async fn transient_failure_is_rebuilt_once_with_its_parameters_and_crumb() {
    let app = start().await;
    mount_build(
        &app.github,
        "team/api",
        18,
        TRANSIENT_LOG,
        json!([{"_class": "hudson.model.StringParameterValue", "name": "TARGET", "value": "staging"}]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/jenkins/crumbIssuer/api/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": "c0ffee", "crumbRequestField": "Jenkins-Crumb"}),
        ))
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/jenkins/job/team/job/api/buildWithParameters"))
        .and(header("authorization", BASIC))
        .and(header("jenkins-crumb", "c0ffee"))
        .and(body_string("TARGET=staging"))
        .respond_with(
            ResponseTemplate::new(201).insert_header("Location", "https://ci/queue/item/9/"),
        )
        .expect(1)
        .mount(&app.github)
        .await;

    let completed = notification("team/api", 18, "COMPLETED", "FAILURE");
    let r = post(&app, Some(J_SECRET), "", &completed).await;
    assert_eq!(r.status(), 202);
    app.wait_status(&session_id_in(&r.json().await.unwrap()), "verifying")
        .await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn the_generic_form_with_the_token_in_the_query_is_accepted() {
    let app = start().await;
    mount_build(&app.github, "app", 5, COMPILE_LOG, json!([])).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;
    // The generic form, with the token in the query as a plain curl step would send it.
    let body = json!({"job": "app", "build": 5, "url": "https://ci/jenkins/job/app/5/", "status": "FAILURE"});
    let r = post(&app, None, &format!("?token={J_SECRET}"), &body.to_string()).await;
    assert_eq!(r.status(), 202);
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_wrong_query_token_is_401_and_malformed_is_400_and_nothing_is_stored() {
    let app = start().await;
    let body = notification("team/api", 30, "COMPLETED", "FAILURE");
    assert_eq!(post(&app, None, "?token=nope", &body).await.status(), 401);
    for bad in [
        "{oops",
        "[1,2]",
        r#"{"build": {"number": 1}}"#,
        r#"{"job": "x", "build": {}, "status": "FAILURE"}"#,
    ] {
        let r = post(&app, Some(J_SECRET), "", bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    // QUEUED/STARTED phases are valid and ignored.
    let started = notification("team/api", 30, "STARTED", "");
    assert_eq!(post(&app, Some(J_SECRET), "", &started).await.status(), 200);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn the_next_successful_build_closes_the_session_as_healed() {
    let app = start().await;
    // No parameters and no crumb issuer (CSRF protection off): a plain `build`.
    mount_build(&app.github, "solo", 41, TRANSIENT_LOG, json!([])).await;
    Mock::given(method("POST"))
        .and(path("/jenkins/job/solo/build"))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(J_SECRET),
        "",
        &notification("solo", 41, "FINALIZED", "FAILURE"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    app.wait_status(&id, "verifying").await;
    let r = post(
        &app,
        Some(J_SECRET),
        "",
        // Started ten minutes after the failed build: green 600 s after it failed.
        &notification_at("solo", 42, "COMPLETED", "SUCCESS", 1_763_892_600_000),
    )
    .await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    assert!(
        s["reason"].as_str().unwrap().contains("attempt 42"),
        "build 42 is the outcome: {s:#}"
    );
    assert_eq!(s["run_label"], "solo #41, rebuilt as #42", "{s:#}");
    // By Jenkins' own build times (start + duration), not by when the notification came.
    assert_eq!(s["time_to_green_ms"], 600_000, "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_corrupt_cache_rebuilds_on_a_wiped_workspace_with_the_configured_parameter() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Jenkins).webhook_secret = Some(J_SECRET.into());
        c.platform_mut(Platform::Jenkins).user = Some("pg".into());
        c.platform_mut(Platform::Jenkins).token = Some("jt-token".into());
        c.platform_mut(Platform::Jenkins).api_url =
            format!("{}/jenkins/", c.platform(Platform::Github).api_url);
        c.repos.push(pipeguard_server::tenants::RepoConfig {
            platform: "jenkins".into(),
            name: "team/api".into(),
            reset: Some(pipeguard_server::tenants::Trigger {
                inputs: [("WIPE_WORKSPACE".to_string(), "true".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    })
    .await;
    let log = "[Pipeline] sh\n+ ./gradlew build\n\
               java.util.zip.ZipException: invalid LOC header (bad signature)\n\
               FAILURE: Build failed with an exception.\nFinished: FAILURE\n";
    mount_build(
        &app.github,
        "team/api",
        30,
        log,
        json!([{"_class": "hudson.model.StringParameterValue", "name": "TARGET", "value": "staging"}]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/jenkins/crumbIssuer/api/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"crumb": "c0ffee", "crumbRequestField": "Jenkins-Crumb"})),
        )
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/jenkins/job/team/job/api/buildWithParameters"))
        .and(body_string("TARGET=staging&WIPE_WORKSPACE=true"))
        .and(header("jenkins-crumb", "c0ffee"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(J_SECRET),
        "",
        &notification("team/api", 30, "COMPLETED", "FAILURE"),
    )
    .await;
    let id = session_id(r).await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["category"], "cache_corruption", "{s:#}");
    assert_eq!(s["strategy"], "reset_environment", "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}
