//! Human verdicts: stored with the session, and once enough say so, a failure the knowledge
//! base does not know is diagnosed by the learned classifier and healed instead of escalated.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// A failure no signature knows; the shard and error id change from run to run.
fn unknown_log(run: u64) -> String {
    let t = "2026-11-23T10:01:00.0000000Z";
    format!(
        "{t} ##[group]Run ./scripts/reticulate.sh\n\
         {t} quuxd: spline reticulation of shard db-{run} came back empty (0x{run:x}f)\n\
         {t} ##[error]Process completed with exit code 1.\n"
    )
}

async fn unknown_run(app: &TestApp, run: u64, reruns: u64) -> String {
    let log = unknown_log(run);
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "integration", "failure", &log)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(reruns)
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            &format!("v-{run}"),
            &workflow_run(run, 1, "failure", "CI"),
        )
        .await;
    session_id(r).await
}

async fn verdict(app: &TestApp, id: &str, body: &str) -> (u16, serde_json::Value) {
    api_call(
        app,
        Method::POST,
        &format!("/api/v1/sessions/{id}/verdict"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn verdicts_turn_an_escalated_unknown_failure_into_a_retried_one() {
    let app = TestApp::start().await;
    let mut labelled = Vec::new();
    for run in [80u64, 81, 82] {
        let id = unknown_run(&app, run, 0).await;
        let s = app.wait_status(&id, "escalated").await;
        assert_eq!(s["category"], "unknown", "{s}");
        labelled.push(id);
    }
    for id in &labelled[..2] {
        let (code, v) = verdict(
            &app,
            id,
            r#"{"category": "network", "note": "the shard's NIC flaps"}"#,
        )
        .await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["category"], "network");
        assert_eq!(v["diagnosed_category"], "unknown");
        assert_eq!(v["note"], "the shard's NIC flaps");
    }
    let s = app.get(&format!("/api/v1/sessions/{}", labelled[0])).await;
    assert_eq!(s["verdict"]["category"], "network");
    assert!(s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message"].as_str().unwrap().starts_with("verdict:")));

    // Two verdicts are not enough evidence: still escalated.
    let id = unknown_run(&app, 83, 0).await;
    app.wait_status(&id, "escalated").await;

    // A third: the same kind of failure is now diagnosed as network and re-run.
    let (code, _) = verdict(&app, &labelled[2], r#"{"category": "network"}"#).await;
    assert_eq!(code, 201);
    let id = unknown_run(&app, 84, 1).await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["category"], "network", "{s}");
    assert_eq!(s["diagnosis"]["analyzer"], "learned");
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("learned from 3 human verdicts"), "{reason}");

    // The evaluation counts how often pipeguard agreed with the humans.
    let stats = app.get("/api/v1/stats").await;
    let v = &stats["verdicts"];
    assert_eq!(v["count"], 3, "{stats}");
    assert_eq!(v["agreement_rate"], 0.0);
    assert_eq!(
        v["confusion"],
        json!([{"diagnosed": "unknown", "human": "network", "count": 3}])
    );
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}

#[tokio::test]
async fn bad_verdicts_are_json_4xx_and_store_nothing() {
    let app = TestApp::start().await;
    let id = unknown_run(&app, 90, 0).await;
    app.wait_status(&id, "escalated").await;
    let cases = [
        (id.as_str(), r#"{"category": "gremlins"}"#, 400),
        (id.as_str(), r#"{"category": "network""#, 400),
        (id.as_str(), r#"{"note": "no category"}"#, 400),
        (id.as_str(), r#"{"category": "network", "by": 3}"#, 400),
        ("no-such-session", r#"{"category": "network"}"#, 404),
    ];
    for (sid, body, want) in cases {
        let (code, v) = verdict(&app, sid, body).await;
        assert_eq!(code, want, "{body}: {v}");
        assert!(v["error"].is_string(), "{body}: {v}");
    }
    let (_, v) = verdict(&app, &id, r#"{"category": "gremlins"}"#).await;
    assert!(v["message"].as_str().unwrap().contains("network"), "{v}");
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert!(s["verdict"].is_null(), "{s}");
    app.stop().await;
}
