//! Dead letters: work that failed for good is listed, counted in /metrics, and sent again by
//! an operator, after which the session heals as if nothing had happened.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_dead_analysis_is_listed_counted_and_sent_again_by_an_operator() {
    let app = TestApp::start_with(|c| c.worker.max_job_tries = 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/81")))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "dl-1",
            &workflow_run(81, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "failed").await;

    let listed = app.get("/api/v1/dead-letters").await;
    assert_eq!(
        keys(&listed),
        ["dead_letters", "total"],
        "the documented shape"
    );
    assert_eq!(listed["total"], 1, "{listed}");
    let letter = &listed["dead_letters"][0];
    let fields = ["at", "error", "job_id", "kind", "session_id", "tries"];
    assert_eq!(keys(letter), fields, "the documented shape");
    assert_eq!(letter["session_id"], id.as_str());
    assert_eq!(letter["kind"], "analyze");
    assert!(
        letter["error"].as_str().unwrap().contains("503"),
        "{letter}"
    );
    assert!(metrics_text(&app)
        .await
        .contains("pipeguard_dead_letters 1"));

    // A viewer sees them but may not send them again.
    let viewer = authenticated(&app.token("dl-viewer", "viewer").await);
    let r = viewer
        .post(format!("{}/api/v1/sessions/{id}/retry", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The platform is back: the operator's retry analyzes again and heals.
    app.github.reset().await;
    mount_run(
        &app.github,
        81,
        1,
        &[(810, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/81/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(1)
        .mount(&app.github)
        .await;
    let operator = authenticated(&app.token("dl-operator", "operator").await);
    let r = operator
        .post(format!("{}/api/v1/sessions/{id}/retry", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    let fields = ["requeued", "session_id", "status"];
    assert_eq!(keys(&body), fields, "the documented shape");
    assert_eq!(body["status"], "received");
    assert_eq!(body["requeued"], json!(["analyze"]));
    let s = app.wait_status(&id, "verifying").await;
    let timeline = s.to_string();
    assert!(timeline.contains("retried by dl-operator"), "{s:#}");
    assert_eq!(app.get("/api/v1/dead-letters").await["total"], 0);
    assert!(metrics_text(&app)
        .await
        .contains("pipeguard_dead_letters 0"));

    // Nothing is dead any more, and the session is not failed: a second retry is refused.
    let (status, err) = api_call(
        &app,
        Method::POST,
        &format!("/api/v1/sessions/{id}/retry"),
        Some("{}"),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = api_call(
        &app,
        Method::POST,
        "/api/v1/sessions/nope/retry",
        Some("{}"),
    )
    .await;
    assert_eq!(status, 404);
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn the_dead_letter_list_rejects_a_bad_limit_with_json() {
    let app = TestApp::start().await;
    let (status, err) = api_call(&app, Method::GET, "/api/v1/dead-letters?limit=0", None).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("limit"), "{err}");
    app.stop().await;
}

/// The fields of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}
