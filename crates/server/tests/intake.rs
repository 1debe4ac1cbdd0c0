//! Intake contract: authentication, validation and durability of deliveries.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::json;

#[tokio::test]
async fn bad_or_missing_signature_is_401_and_stores_nothing() {
    let app = TestApp::start().await;
    let body = workflow_run(50, 1, "failure", "CI").to_string();
    for sig in [Some("sha256=0000"), Some("garbage"), None] {
        let mut req = app
            .http
            .post(format!("{}/webhooks/github", app.base))
            .header("content-type", "application/json")
            .header("x-github-event", "workflow_run")
            .header("x-github-delivery", "d-bad")
            .body(body.clone());
        if let Some(s) = sig {
            req = req.header("x-hub-signature-256", s);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["error"], "unauthorized");
    }
    let history = app.get("/pipeline/healing/history").await;
    assert_eq!(history["total_sessions"], 0);
    let (_gh, _dir, db) = app.stop().await;
    let store = pipeguard_store::Store::connect(&db).await.unwrap();
    assert_eq!(store.count_deliveries().await.unwrap(), 0);
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn ping_and_uninteresting_events_are_acknowledged_and_ignored() {
    let app = TestApp::start().await;
    let r = app
        .post_github(
            "ping",
            "p-1",
            &json!({"zen": "Keep it logically awesome.", "hook_id": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_github("workflow_run", "p-2", &workflow_run(51, 1, "success", "CI"))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_github("push", "p-3", &json!({"ref": "refs/heads/main"}))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_github(
            "workflow_run",
            "p-4",
            &workflow_run(51, 1, "cancelled", "CI"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_wrong_type_and_oversized_bodies_are_rejected_cleanly() {
    let app = TestApp::start().await;
    let send = |body: String, ct: &'static str| {
        let sig = sign(body.as_bytes());
        app.http
            .post(format!("{}/webhooks/github", app.base))
            .header("content-type", ct)
            .header("x-github-event", "workflow_run")
            .header("x-github-delivery", "m-1")
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
    };
    let r = send("{not json".into(), "application/json").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "bad_request"
    );
    let r = send(
        json!({"action": "completed", "workflow_run": {"id": "x"}}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(
        workflow_run(52, 1, "failure", "CI").to_string(),
        "text/plain",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 415);
    // A form body without GitHub's `payload` field.
    let r = send(
        workflow_run(52, 1, "failure", "CI").to_string(),
        "application/x-www-form-urlencoded",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = send(big, "application/json").await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    // Nothing half-stored: the same delivery id, now valid, is processed normally.
    let r = app
        .post_github("workflow_run", "m-1", &workflow_run(52, 1, "failure", "CI"))
        .await;
    assert_eq!(r.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn generic_webhook_and_test_trigger() {
    let app = TestApp::start().await;
    let r = app
        .http
        .post(format!("{}/pipeline/webhook", app.base))
        .json(&json!({"source": "jenkins", "job_name": "api-tests", "build_number": 17, "stage": "test",
                      "error_message": "error[E0425]: cannot find value `x` in this scope", "target_hosts": ["web-1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");

    let r = app
        .http
        .post(format!("{}/pipeline/webhook", app.base))
        .json(&json!({"source": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = app
        .http
        .post(format!("{}/pipeline/test/trigger", app.base))
        .json(&json!({"error_type": "network", "host": "web-1", "error_message": "curl: (56) Recv failure: Connection reset by peer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["executed"], false);
    assert_eq!(v["diagnosis"]["category"], "network");
    assert_eq!(v["plan"]["decision"], "act");
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        1,
        "trigger stores nothing"
    );
    let r = app
        .http
        .post(format!("{}/pipeline/test/trigger", app.base))
        .json(&json!({"host": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn accepted_work_survives_a_restart_and_runs_once() {
    // The worker is slowed by a slow API; the server stops right after answering 202.
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        53,
        1,
        &[(61, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    let r = app
        .post_github("workflow_run", "r-1", &workflow_run(53, 1, "failure", "CI"))
        .await;
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    let http = app.http.clone();
    let (gh, dir, db) = app.stop().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(format!(
            "/repos/{REPO}/actions/runs/53/rerun-failed-jobs"
        )))
        .respond_with(wiremock::ResponseTemplate::new(201))
        .expect(1)
        .mount(&gh)
        .await;
    let (base, tx, handle) = spawn(config(&gh, &db)).await;
    let mut status = String::new();
    for _ in 0..200 {
        let s: serde_json::Value = http
            .get(format!("{base}/api/v1/sessions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = s["status"].as_str().unwrap_or("").to_string();
        if status == "verifying" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "verifying");
    let _ = tx.send(true);
    handle.await.unwrap().unwrap();
    gh.verify().await;
    drop(dir);
}

#[tokio::test]
async fn ansible_callback_reports_are_authenticated_and_diagnosed() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Ansible).webhook_secret = Some("tok".into())
    })
    .await;
    // The shape contrib/ansible/callback_plugins/pipeguard.py posts for a failed task.
    let report = json!({
        "playbook": "site.yml", "host": "web-1", "task": "Fetch release", "module": "ansible.builtin.get_url",
        "msg": "Request failed: <urlopen error [Errno 104] Connection reset by peer>",
        "stdout": "", "stderr": "", "rc": 100, "unreachable": false
    });
    let post = |token: Option<&'static str>, body: serde_json::Value| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/ansible", app.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(post(None, report.clone()).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("nope"), report.clone()).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(Some("tok"), json!({"host": "web-1"}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );

    let r = post(Some("tok"), report.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    // The same report again is the same session.
    let again: serde_json::Value = post(Some("tok"), report)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["session_id"], id.as_str());
    let s = app.wait_session(&id, |s| s["category"].is_string()).await;
    assert_eq!(s["platform"], "ansible");
    assert_eq!(s["category"], "network", "{s}");
    assert!(s["evidence"].as_array().unwrap().iter().any(|e| e["text"]
        .as_str()
        .unwrap()
        .contains("Connection reset by peer")));
    app.stop().await;
}

#[tokio::test]
async fn form_encoded_deliveries_are_verified_over_the_form_and_parsed_from_payload() {
    let app = TestApp::start().await;
    mount_run(
        &app.github,
        61,
        1,
        &[(6101, "test", "failure", COMPILE_LOG)],
    )
    .await;
    let json = workflow_run(61, 1, "failure", "CI").to_string();
    let form = format!("payload={}", pipeguard_platforms::api::encode(&json));
    let post = |sig: String| {
        app.http
            .post(format!("{}/webhooks/github", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-github-event", "workflow_run")
            .header("x-github-delivery", "form-1")
            .header("x-hub-signature-256", sig)
            .body(form.clone())
            .send()
    };
    // Signed over the decoded JSON instead of the form body: not what GitHub signs.
    let r = post(sign(json.as_bytes())).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = post(sign(form.as_bytes())).await.unwrap();
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    app.stop().await;
}
