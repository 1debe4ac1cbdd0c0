//! Who may deliver, and what refusals leave behind: the generic report needs the `ingest` role
//! or its secret on both of its paths (loopback too); 401s carry their challenge; unknown and
//! unconfigured platforms are refused without adding metric series; webhook-supplied text
//! cannot forge server log lines; refused logins are aggregated in the audit trail.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_store::{AuditQuery, AuditRecord};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

fn report() -> Value {
    json!({"source": "jenkins-legacy", "job_name": "deploy", "build_number": 7,
           "error_message": "Connection reset by peer"})
}

async fn post(
    app: &TestApp,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &Value,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some((name, value)) = auth {
        r = r.header(name, value);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn the_generic_report_needs_ingest_or_its_secret_on_both_paths() {
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Generic).webhook_secret = Some("generic-secret".into())
    })
    .await;
    let ingest = format!("Bearer {}", app.token("reporter", "ingest").await);
    let viewer = format!("Bearer {}", app.token("reader", "viewer").await);
    for (i, path) in ["/webhooks/generic", "/pipeline/webhook"]
        .iter()
        .enumerate()
    {
        let r = post(&app, path, None, &report()).await;
        assert_eq!(r.status(), 401, "{path} without a credential");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized", "{path}");
        let r = post(&app, path, Some(("authorization", &viewer)), &report()).await;
        assert_eq!(r.status(), 403, "{path} with a viewer token");
        let mut body = report();
        body["build_number"] = json!(100 + i);
        let r = post(&app, path, Some(("authorization", &ingest)), &body).await;
        assert_eq!(r.status(), 202, "{path} with an ingest token");
        body["build_number"] = json!(200 + i);
        let r = post(
            &app,
            path,
            Some(("x-pipeguard-token", "generic-secret")),
            &body,
        )
        .await;
        assert_eq!(r.status(), 202, "{path} with the generic secret");
    }
    app.stop().await;
}

#[tokio::test]
async fn refusals_carry_the_challenge_the_route_accepts() {
    let app = TestApp::start_with(|c| {
        c.metrics.token = Some("scrape".into());
        for p in [Platform::Azure, Platform::Buildbot, Platform::Teamcity] {
            c.platform_mut(p).webhook_secret = Some("hook-password".into());
        }
        c.platform_mut(Platform::Ansible).webhook_secret = Some("tok".into());
    })
    .await;
    let anon = reqwest::Client::new();
    for p in ["/api/v1/sessions", "/metrics"] {
        let r = anon.get(format!("{}{p}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{p}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{p}");
    }
    // Secrets taken as a Basic auth password: with none, or a wrong one.
    for platform in ["azure", "buildbot", "teamcity"] {
        for auth in [None, Some(("authorization", "Basic cGc6bm9wZQ=="))] {
            let r = post(&app, &format!("/webhooks/{platform}"), auth, &json!({})).await;
            assert_eq!(r.status(), 401, "{platform} {auth:?}");
            assert_eq!(
                r.headers()["www-authenticate"],
                "Basic realm=\"pipeguard\"",
                "{platform}"
            );
        }
    }
    let r = post(&app, "/webhooks/ansible", None, &json!({})).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_unconfigured_platforms_are_refused_without_new_series() {
    // These tests configure GitHub only.
    let app = TestApp::start().await;
    for name in ["foo1", "foo2", "..%2Fadmin"] {
        let r = post(&app, &format!("/webhooks/{name}"), None, &json!({})).await;
        assert_eq!(r.status(), 404, "{name}");
    }
    // A well-formed Jenkins Notification plugin delivery, unsigned, to a server that has no
    // [jenkins]: refused now instead of stored to fail later.
    let jenkins = json!({"name": "app", "url": "job/app/", "build": {
        "full_url": "http://ci.example.com/job/app/3/", "number": 3, "phase": "COMPLETED",
        "timestamp": 1_763_892_000_000_i64, "duration": 95_000,
        "status": "FAILURE", "url": "job/app/3/"}});
    let r = post(&app, "/webhooks/jenkins", None, &jenkins).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
    assert!(
        v["message"].as_str().unwrap().contains("not configured"),
        "{v}"
    );
    let sessions = app.get("/api/v1/sessions").await;
    assert_eq!(sessions["sessions"], json!([]), "{sessions}");
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for absent in ["foo1", "foo2", "admin"] {
        assert!(!metrics.contains(absent), "{absent} in {metrics}");
    }
    assert!(
        metrics
            .contains("pipeguard_webhooks_received_total{platform=\"unknown\",status=\"404\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("pipeguard_webhooks_received_total{platform=\"jenkins\",status=\"404\"} 1"),
        "{metrics}"
    );
    app.stop().await;
    // The same delivery is taken once the platform is configured to take it.
    let app =
        TestApp::start_with(|c| c.platform_mut(Platform::Jenkins).allow_unsigned = true).await;
    let r = post(&app, "/webhooks/jenkins", None, &jenkins).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    app.stop().await;
}

/// Everything the server logs in this test binary, formatted as `serve` formats it.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || Sink(sink.clone()))
            .init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn control_characters_from_a_webhook_cannot_forge_log_lines() {
    let log = captured();
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Azure).webhook_secret = Some("hook-password".into());
        c.platform_mut(Platform::Azure).token = Some("pat".into());
        c.platform_mut(Platform::Azure).api_url = c.platform(Platform::Github).api_url.clone();
    })
    .await;
    let forged = "x\n2026-12-07T04:00:00.000000Z  INFO pipeguard: FORGED admin logged in\r\nmore";
    let base = "https://dev.azure.com/Org/Proj";
    let delivery = json!({
        "id": forged, "eventType": "build.complete", "publisherId": "tfs",
        "resource": {"id": 41, "buildNumber": "41", "status": "completed", "result": "failed",
                     "url": format!("{base}/_apis/build/Builds/41"),
                     "definition": {"id": 5, "name": "CI"},
                     "project": {"id": "p", "name": "Proj"},
                     "sourceBranch": "refs/heads/main", "sourceVersion": "abc"},
        "resourceVersion": "2.0"
    });
    let r = post(
        &app,
        "/webhooks/azure",
        Some(("authorization", "Basic cGc6aG9vay1wYXNzd29yZA==")),
        &delivery,
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // Let the worker take the session too: its log lines count as well.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.stop().await;
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-12-07T04:00:00") && !line.starts_with("more"),
            "a forged line: {line:?}\n{text}"
        );
    }
    assert!(
        text.contains(r#"delivery="x\n2026-12-07T04:00:00.000000Z  INFO pipeguard: FORGED"#),
        "the delivery is logged, escaped:\n{text}"
    );
}

async fn refusal_rows(db_url: &str) -> Vec<AuditRecord> {
    let store = pipeguard_store::Store::connect(db_url).await.unwrap();
    let q = AuditQuery {
        action: Some("auth.failed".into()),
        limit: 1000,
        ..Default::default()
    };
    let rows = store.audit_entries(&q).await.unwrap();
    store.close().await;
    rows
}

/// A refused credential counts 1 in a prompt row, `count` in a summary row.
fn refusals_in(rows: &[AuditRecord]) -> u64 {
    rows.iter()
        .map(|r| r.detail["count"].as_u64().unwrap_or(1))
        .sum()
}

#[tokio::test]
async fn refused_logins_are_aggregated_per_source_and_minute() {
    let app = TestApp::start().await;
    let guess = |n: u32| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/whoami", app.base))
            .bearer_auth(format!("pgt_guess{n}"))
            .send()
    };
    assert_eq!(guess(0).await.unwrap().status(), 401);
    let first = refusal_rows(&app.db_url).await;
    assert_eq!(first.len(), 1, "the first refusal is recorded at once");
    assert_eq!(first[0].actor, "source:127.0.0.1");
    for n in 1..200 {
        assert_eq!(guess(n).await.unwrap().status(), 401);
    }
    // Stopping writes what was counted and not yet written.
    let (_github, _dir, db) = app.stop().await;
    let rows = refusal_rows(&db).await;
    assert_eq!(refusals_in(&rows), 200, "{rows:#?}");
    // One prompt row and one row per minute (two when the guesses crossed a minute).
    assert!((2..=3).contains(&rows.len()), "{rows:#?}");
    let summary = &rows[0];
    assert_eq!(summary.detail["routes"], json!(["/api/v1/whoami"]));
    assert!(summary.detail["why"].is_string());
}
