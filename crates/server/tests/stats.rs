//! `/api/v1/stats` beyond categories and platforms: per host, retry success, time to hand-off,
//! compute spent on heals, flaky tests and verdict agreement.

mod common;

use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn stats_report_hosts_retries_handoffs_and_heal_compute() {
    let app = TestApp::start().await;
    // A transient failure, re-run and healed.
    mount_run(
        &app.github,
        44,
        1,
        &[(11, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/44/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(1)
        .mount(&app.github)
        .await;
    let r = app
        .post_github("workflow_run", "s-1", &workflow_run(44, 1, "failure", "CI"))
        .await;
    let healed = session_id(r).await;
    app.wait_status(&healed, "verifying").await;
    app.post_github("workflow_run", "s-2", &workflow_run(44, 2, "success", "CI"))
        .await;
    app.wait_status(&healed, "healed").await;
    // A genuine failure, escalated.
    mount_run(&app.github, 45, 1, &[(12, "build", "failure", COMPILE_LOG)]).await;
    let r = app
        .post_github("workflow_run", "s-3", &workflow_run(45, 1, "failure", "CI"))
        .await;
    let escalated = session_id(r).await;
    app.wait_status(&escalated, "escalated").await;
    // A failed Ansible task on a host.
    let r = app
        .http
        .post(format!("{}/webhooks/ansible", app.base))
        .json(&json!({
            "playbook": "site.yml", "host": "web-1", "task": "Fetch release",
            "msg": "Request failed: <urlopen error [Errno 104] Connection reset by peer>", "rc": 100
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let host_session = session_id(r).await;
    app.wait_session(&host_session, |s| {
        ["healed", "failed", "escalated", "skipped"].contains(&s["status"].as_str().unwrap_or(""))
    })
    .await;

    let s: Value = app.get("/api/v1/stats").await;
    // The existing contract is kept.
    for key in [
        "total",
        "by_category",
        "by_platform",
        "time_to_green_ms",
        "escalations",
        "top_fingerprints",
    ] {
        assert!(!s[key].is_null(), "{key} missing: {s}");
    }
    assert_eq!(s["time_to_green_ms"]["median"], 300_000);
    let hosts = s["by_host"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{s}");
    assert_eq!(
        (&hosts[0]["host"], &hosts[0]["sessions"]),
        (&json!("web-1"), &json!(1))
    );
    assert_eq!(s["retry"]["sessions"], 1, "{s}");
    assert_eq!(s["retry"]["healed"], 1);
    assert_eq!(s["retry"]["success_rate"], 1.0);
    // The escalated run and possibly the Ansible session (when it was not healed).
    assert!(
        s["time_to_handoff_ms"]["count"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(s["time_to_handoff_ms"]["median"].is_i64());
    // One re-run of a run that took 10:00:05 → 10:04:00 (GitHub's timestamps).
    let minutes = s["heal_compute_minutes"]["estimated"].as_f64().unwrap();
    assert!((minutes - 235.0 / 60.0).abs() < 1e-6, "{minutes}");
    assert!(s["escalations"].as_i64().unwrap() >= 1);
    assert_eq!(s["flaky_tests"], 0);
    assert_eq!(s["verdicts"]["count"], 0);
    assert!(s["verdicts"]["agreement_rate"].is_null());

    // A verdict that agrees with the knowledge base counts as agreement.
    let (code, _) = api_call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/sessions/{escalated}/verdict"),
        Some(r#"{"category": "compilation_error"}"#),
    )
    .await;
    assert_eq!(code, 201);
    let s: Value = app.get("/api/v1/stats").await;
    assert_eq!(s["verdicts"]["agreement_rate"], 1.0, "{s}");
    let (gh, _dir, _) = app.stop().await;
    gh.verify().await;
}
