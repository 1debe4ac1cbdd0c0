//! What only GitLab CI shows, against a mock of the GitLab REST API v4: the scenarios every
//! platform shares run in conformance.rs.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GL_SECRET: &str = "gl-webhook-token";
const GL_TOKEN: &str = "glpat-test";
const PROJECT: &str = "grp/sub/proj";
/// The project path as the API wants it in URLs.
const API: &str = "/api/v4/projects/grp%2Fsub%2Fproj";

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).webhook_secret = Some(GL_SECRET.into());
        c.platform_mut(Platform::Gitlab).token = Some(GL_TOKEN.into());
        c.platform_mut(Platform::Gitlab).api_url = c.platform(Platform::Github).api_url.clone();
    })
    .await
}

async fn post(
    app: &TestApp,
    event: &str,
    uuid: &str,
    token: &str,
    body: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}/webhooks/gitlab", app.base))
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid)
        .header("x-gitlab-token", token)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A Pipeline Hook shaped like GitLab's documented example. `builds` = (id, name, stage, status, reason).
fn pipeline_hook(id: u64, status: &str, builds: &[(u64, &str, &str, &str, &str)]) -> Value {
    let builds: Vec<Value> = builds
        .iter()
        .map(|(bid, name, stage, st, reason)| {
            json!({"id": bid, "stage": stage, "name": name, "status": st,
                   "created_at": "2026-11-23 10:00:00 UTC", "allow_failure": false,
                   "failure_reason": if *st == "failed" { json!(reason) } else { Value::Null },
                   "environment": if *stage == "deploy" { json!({"name": "production", "action": "start"}) } else { Value::Null }})
        })
        .collect();
    json!({
        "object_kind": "pipeline",
        "object_attributes": {"id": id, "iid": 12, "ref": "main", "tag": false,
            "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "source": "push",
            "status": status, "detailed_status": status, "stages": ["build", "test", "deploy"],
            "created_at": "2026-11-23 10:00:00 UTC", "finished_at": "2026-11-23 10:04:00 UTC",
            "duration": 240, "url": format!("https://gitlab.example.com/{PROJECT}/-/pipelines/{id}")},
        "user": {"id": 1, "name": "Admin", "username": "root"},
        "project": {"id": 77, "name": "proj", "path_with_namespace": PROJECT,
            "web_url": format!("https://gitlab.example.com/{PROJECT}"), "default_branch": "main"},
        "builds": builds
    })
}

/// Mounts the read side of the API for one pipeline. `jobs` = (id, name, status, reason, trace).
async fn mount_pipeline(mock: &MockServer, id: u64, jobs: &[(u64, &str, &str, &str, &str)]) {
    Mock::given(method("GET"))
        .and(path(format!("{API}/pipelines/{id}")))
        .and(header("private-token", GL_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "status": "failed", "ref": "main", "finished_at": "2026-11-23T10:04:00.000Z"
        })))
        .mount(mock)
        .await;
    let list = |only_failed: bool| -> Vec<Value> {
        jobs.iter()
            .filter(|j| !only_failed || j.2 == "failed")
            .map(|(jid, name, st, reason, _)| {
                json!({"id": jid, "name": name, "stage": "test",
                "status": st, "allow_failure": false,
                "failure_reason": if *st == "failed" { json!(reason) } else { Value::Null }})
            })
            .collect()
    };
    Mock::given(method("GET"))
        .and(path(format!("{API}/pipelines/{id}/jobs")))
        .and(query_param("scope[]", "failed"))
        .and(header("private-token", GL_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(true)))
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/pipelines/{id}/jobs")))
        .and(query_param("include_retried", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(false)))
        .mount(mock)
        .await;
    for (jid, _, st, _, trace) in jobs {
        if *st == "failed" {
            Mock::given(method("GET"))
                .and(path(format!("{API}/jobs/{jid}/trace")))
                .and(header("private-token", GL_TOKEN))
                .respond_with(ResponseTemplate::new(200).set_body_string(*trace))
                .mount(mock)
                .await;
        }
    }
}

fn retry_pipeline(id: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!("{API}/pipelines/{id}/retry")))
        .and(header("private-token", GL_TOKEN))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": id, "status": "pending"})),
        )
}

#[tokio::test]
async fn a_finished_pipeline_with_one_transient_job_is_retried_whole() {
    let app = start().await;
    mount_pipeline(
        &app.github,
        100,
        &[
            (501, "test", "failed", "script_failure", TRANSIENT_LOG),
            (500, "build", "success", "", ""),
        ],
    )
    .await;
    retry_pipeline(100).expect(1).mount(&app.github).await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/jobs/501/retry")))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;

    let hook = pipeline_hook(
        100,
        "failed",
        &[(501, "test", "test", "failed", "script_failure")],
    )
    .to_string();
    let r = post(&app, "Pipeline Hook", "uuid-1", GL_SECRET, &hook).await;
    assert_eq!(r.status(), 202);
    let id = session_id_in(&r.json().await.unwrap());
    app.wait_status(&id, "verifying").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn only_the_transient_job_is_retried_when_another_needs_a_human() {
    let app = start().await;
    mount_pipeline(
        &app.github,
        101,
        &[
            (601, "fetch", "failed", "script_failure", TRANSIENT_LOG),
            (602, "compile", "failed", "script_failure", COMPILE_LOG),
        ],
    )
    .await;
    retry_pipeline(101).expect(0).mount(&app.github).await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/jobs/601/retry")))
        .and(header("private-token", GL_TOKEN))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 603})))
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/jobs/602/retry")))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;
    let hook = pipeline_hook(
        101,
        "failed",
        &[
            (601, "fetch", "test", "failed", "script_failure"),
            (602, "compile", "test", "failed", "script_failure"),
        ],
    )
    .to_string();
    let r = post(&app, "Pipeline Hook", "uuid-m", GL_SECRET, &hook).await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert!(s["reason"].as_str().unwrap().contains("compile"), "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn malformed_deliveries_are_400_and_their_uuid_is_not_burnt() {
    let app = start().await;
    let hook = pipeline_hook(
        103,
        "failed",
        &[(801, "test", "test", "failed", "script_failure")],
    )
    .to_string();
    for bad in ["{not json", "[]", r#"{"object_attributes": {"id": 1}}"#] {
        let r = post(&app, "Pipeline Hook", "uuid-b2", GL_SECRET, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    }
    let r = post(
        &app,
        "Job Hook",
        "uuid-b3",
        GL_SECRET,
        r#"{"build_status": "failed"}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    // The uuid of a rejected delivery is not burnt: the corrected one is accepted.
    let r = post(&app, "Pipeline Hook", "uuid-b2", GL_SECRET, &hook).await;
    assert_eq!(r.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn a_later_successful_pipeline_hook_closes_the_session_as_healed() {
    let app = start().await;
    mount_pipeline(
        &app.github,
        104,
        &[(
            901,
            "test",
            "failed",
            "runner_system_failure",
            TRANSIENT_LOG,
        )],
    )
    .await;
    retry_pipeline(104).expect(1).mount(&app.github).await;
    let failed = pipeline_hook(
        104,
        "failed",
        &[(901, "test", "test", "failed", "runner_system_failure")],
    )
    .to_string();
    let id = session_id_in(
        &post(&app, "Pipeline Hook", "uuid-s1", GL_SECRET, &failed)
            .await
            .json()
            .await
            .unwrap(),
    );
    app.wait_status(&id, "verifying").await;

    let ok = pipeline_hook(104, "success", &[(902, "test", "test", "success", "")]).to_string();
    let r = post(&app, "Pipeline Hook", "uuid-s2", GL_SECRET, &ok).await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    // The passed pipeline reports no attempt of its own: it was the first retry.
    assert_eq!(s["run_label"], "#104, retry 1", "{s:#}");
    assert_eq!(s["run_attempt"], 2, "{s:#}");
    // A success of a pipeline nobody is healing is ignored.
    let other = pipeline_hook(999, "success", &[]).to_string();
    let r = post(&app, "Pipeline Hook", "uuid-s3", GL_SECRET, &other).await;
    assert_eq!(r.status(), 200);
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_failed_job_with_a_production_environment_waits_for_approval() {
    let app = start().await;
    // Only the webhook knows the environment (the jobs API does not list it); the name and
    // the API's stage say nothing about deploying.
    mount_pipeline(
        &app.github,
        105,
        &[(951, "rollout", "failed", "script_failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&app.github)
        .await;
    let hook = pipeline_hook(
        105,
        "failed",
        &[(951, "rollout", "deploy", "failed", "script_failure")],
    )
    .to_string();
    let r = post(&app, "Pipeline Hook", "uuid-e1", GL_SECRET, &hook).await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert_eq!(s["category"], "dependency_download");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn without_a_configured_secret_deliveries_are_accepted() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).webhook_secret = None;
        c.platform_mut(Platform::Gitlab).token = Some(GL_TOKEN.into());
        c.platform_mut(Platform::Gitlab).api_url = c.platform(Platform::Github).api_url.clone();
    })
    .await;
    mount_pipeline(
        &app.github,
        106,
        &[(961, "build", "failed", "script_failure", COMPILE_LOG)],
    )
    .await;
    let hook = pipeline_hook(
        106,
        "failed",
        &[(961, "build", "build", "failed", "script_failure")],
    )
    .to_string();
    let r = app
        .http
        .post(format!("{}/webhooks/gitlab", app.base))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Pipeline Hook")
        .body(hook.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    // Without X-Gitlab-Event-UUID the body identifies the delivery: the same body replays.
    let again: Value = post(&app, "Pipeline Hook", "", "ignored", &hook)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first, "a replay, not a second delivery");
    app.stop().await;
}

#[tokio::test]
async fn without_a_webhook_the_outcome_is_polled_from_the_pipeline_api() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).webhook_secret = Some(GL_SECRET.into());
        c.platform_mut(Platform::Gitlab).token = Some(GL_TOKEN.into());
        c.platform_mut(Platform::Gitlab).api_url = c.platform(Platform::Github).api_url.clone();
        c.worker.verify_poll_seconds = 1;
    })
    .await;
    // The first look (before healing) sees the failed pipeline; the poll after the retry
    // sees it green.
    Mock::given(method("GET"))
        .and(path(format!("{API}/pipelines/107")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 107, "status": "failed"})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/pipelines/107")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 107, "status": "success", "finished_at": "2026-11-23T10:09:00.000Z"}),
        ))
        .mount(&app.github)
        .await;
    mount_pipeline(
        &app.github,
        107,
        &[(
            971,
            "test",
            "failed",
            "stuck_or_timeout_failure",
            TRANSIENT_LOG,
        )],
    )
    .await;
    retry_pipeline(107).expect(1).mount(&app.github).await;
    let hook = pipeline_hook(
        107,
        "failed",
        &[(971, "test", "test", "failed", "stuck_or_timeout_failure")],
    )
    .to_string();
    let id = session_id_in(
        &post(&app, "Pipeline Hook", "uuid-p1", GL_SECRET, &hook)
            .await
            .json()
            .await
            .unwrap(),
    );
    let s = app.wait_status(&id, "healed").await;
    assert!(s["time_to_green_ms"].as_i64().unwrap() > 0, "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

const OOM_TRACE: &str = "$ ./gradlew test\n> Task :compileJava\n\
Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n\
ERROR: Job failed: exit code 137\n";

const CORRUPT_CHECKOUT_TRACE: &str = "Fetching changes with git depth set to 20...\n\
Reinitialized existing Git repository in /builds/grp/sub/proj/.git/\n\
fatal: loose object 1234abcd5678 (stored in .git/objects/12/34abcd5678) is corrupt\n\
ERROR: Job failed: exit code 1\n";

fn new_pipeline(id: u64, variables: Value) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!("{API}/pipeline")))
        .and(header("private-token", GL_TOKEN))
        .and(wiremock::matchers::body_partial_json(
            json!({"ref": "main", "variables": variables}),
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": id, "status": "created"})),
        )
}

#[tokio::test]
async fn out_of_memory_starts_a_pipeline_on_a_bigger_runner_whose_success_heals() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).webhook_secret = Some(GL_SECRET.into());
        c.platform_mut(Platform::Gitlab).token = Some(GL_TOKEN.into());
        c.platform_mut(Platform::Gitlab).api_url = c.platform(Platform::Github).api_url.clone();
        c.repos.push(pipeguard_server::tenants::RepoConfig {
            platform: "gitlab".into(),
            name: "grp/*".into(),
            scale: Some(pipeguard_server::tenants::Trigger {
                inputs: [("RUNNER_TAG".to_string(), "saas-linux-xlarge".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    })
    .await;
    mount_pipeline(
        &app.github,
        120,
        &[(920, "test", "failed", "script_failure", OOM_TRACE)],
    )
    .await;
    new_pipeline(
        121,
        json!([{"key": "RUNNER_TAG", "value": "saas-linux-xlarge"}]),
    )
    .expect(1)
    .mount(&app.github)
    .await;
    retry_pipeline(120).expect(0).mount(&app.github).await;
    let failed = pipeline_hook(
        120,
        "failed",
        &[(920, "test", "test", "failed", "script_failure")],
    )
    .to_string();
    let id = session_id_in(
        &post(&app, "Pipeline Hook", "uuid-oom-1", GL_SECRET, &failed)
            .await
            .json()
            .await
            .unwrap(),
    );
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["category"], "out_of_memory", "{s:#}");
    assert_eq!(s["current_run"], "121");
    let ok = pipeline_hook(121, "success", &[(930, "test", "test", "success", "")]).to_string();
    let r = post(&app, "Pipeline Hook", "uuid-oom-2", GL_SECRET, &ok).await;
    assert_eq!(r.status(), 202);
    app.wait_status(&id, "healed").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_corrupt_checkout_reruns_on_a_fresh_clone() {
    let app = start().await;
    mount_pipeline(
        &app.github,
        130,
        &[(
            940,
            "install",
            "failed",
            "script_failure",
            CORRUPT_CHECKOUT_TRACE,
        )],
    )
    .await;
    new_pipeline(131, json!([{"key": "GIT_STRATEGY", "value": "clone"}]))
        .expect(1)
        .mount(&app.github)
        .await;
    let failed = pipeline_hook(
        130,
        "failed",
        &[(940, "install", "test", "failed", "script_failure")],
    )
    .to_string();
    let id = session_id_in(
        &post(&app, "Pipeline Hook", "uuid-ac-1", GL_SECRET, &failed)
            .await
            .json()
            .await
            .unwrap(),
    );
    let s = app.wait_status(&id, "verifying").await;
    // No cache variable is configured, so a fresh clone stands in for clearing caches.
    assert_eq!(s["category"], "cache_corruption", "{s:#}");
    assert_eq!(s["strategy"], "reset_environment", "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

/// The commit of every pipeline hook above.
const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";

#[tokio::test]
async fn escalation_sets_a_commit_status_and_notes_the_open_merge_request_but_a_heal_does_not() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).webhook_secret = Some(GL_SECRET.into());
        c.platform_mut(Platform::Gitlab).token = Some(GL_TOKEN.into());
        c.platform_mut(Platform::Gitlab).api_url = c.platform(Platform::Github).api_url.clone();
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            kind: "gitlab_status".into(),
            url: "https://pipeguard.example.com/".into(),
            ..Default::default()
        });
    })
    .await;
    let mock = &app.github;
    mount_pipeline(
        mock,
        110,
        &[(711, "build", "failed", "script_failure", COMPILE_LOG)],
    )
    .await;
    mount_pipeline(
        mock,
        111,
        &[(
            811,
            "test",
            "failed",
            "runner_system_failure",
            TRANSIENT_LOG,
        )],
    )
    .await;
    retry_pipeline(111).expect(1).mount(mock).await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/statuses/{SHA}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{API}/repository/commits/{SHA}/merge_requests"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"iid": 5, "state": "opened"}, {"iid": 3, "state": "merged"}
        ])))
        .mount(mock)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/merge_requests/5/notes")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 9})))
        .mount(mock)
        .await;

    // A transient failure healed by a retry: nothing is written to the commit.
    let failed = pipeline_hook(
        111,
        "failed",
        &[(811, "test", "test", "failed", "runner_system_failure")],
    );
    let r = post(&app, "Pipeline Hook", "n-1", GL_SECRET, &failed.to_string()).await;
    let healed = session_id_in(&r.json().await.unwrap());
    app.wait_status(&healed, "verifying").await;
    let ok = pipeline_hook(111, "success", &[(812, "test", "test", "success", "")]);
    post(&app, "Pipeline Hook", "n-2", GL_SECRET, &ok.to_string()).await;
    let s = app.wait_status(&healed, "healed").await;
    assert_eq!(
        s["reason"], "healed by retry on attempt 2",
        "people count attempts"
    );

    let hook = pipeline_hook(
        110,
        "failed",
        &[(711, "build", "build", "failed", "script_failure")],
    );
    let r = post(&app, "Pipeline Hook", "n-3", GL_SECRET, &hook.to_string()).await;
    let escalated = session_id_in(&r.json().await.unwrap());
    app.wait_status(&escalated, "escalated").await;

    let sent = |p: String| {
        let mock = &app.github;
        async move {
            for _ in 0..200 {
                let got: Vec<wiremock::Request> = mock
                    .received_requests()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.method.as_str() == "POST" && r.url.path() == p)
                    .collect();
                if !got.is_empty() {
                    return got;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("nothing posted to {p}");
        }
    };
    let statuses = sent(format!("{API}/statuses/{SHA}")).await;
    assert_eq!(statuses.len(), 1, "one status, for the escalation only");
    let s = &statuses[0];
    assert_eq!(s.headers["private-token"], GL_TOKEN);
    let body: Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["state"], "failed");
    assert_eq!(body["name"], "pipeguard");
    assert_eq!(body["ref"], "main");
    assert_eq!(
        body["target_url"],
        format!("https://pipeguard.example.com/#/sessions/{escalated}")
    );
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("compilation_error: needs a human"),
        "{body}"
    );
    let notes = sent(format!("{API}/merge_requests/5/notes")).await;
    assert_eq!(notes.len(), 1);
    let note: Value = serde_json::from_slice(&notes[0].body).unwrap();
    let text = note["body"].as_str().unwrap();
    assert!(text.contains("error[E0308]: mismatched types"), "{text}");
    assert!(text.contains(&format!("#/sessions/{escalated}")), "{text}");
    assert!(!text.contains(&healed));
    let all = app.github.received_requests().await.unwrap();
    assert!(
        !all.iter()
            .any(|r| r.url.path().contains("/merge_requests/3/")),
        "a merged request gets no note"
    );
    assert!(
        !all.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&healed)),
        "nothing is sent about the healed session"
    );
    app.stop().await;
}
