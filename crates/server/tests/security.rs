//! The API tried as an attacker would: every route without and with each role, revoked
//! tokens, cross-site approvals, four-eyes, traversal names on every platform, slow clients,
//! oversized bodies, TLS, and errors that are always JSON.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLES: [&str; 4] = ["viewer", "operator", "admin", "ingest"];

/// Whether `role` may do what `needed` may (the product's rule, restated for the test).
fn grants(role: &str, needed: &str) -> bool {
    match (role, needed) {
        ("admin", _) => true,
        ("ingest", n) => n == "ingest",
        (_, "ingest") => false,
        ("operator", n) => n != "admin",
        ("viewer", n) => n == "viewer",
        _ => false,
    }
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = http.request(method.clone(), format!("{base}{path}"));
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_refuses_missing_credentials_and_roles_below_its_own() {
    let app = TestApp::start().await;
    let generic = json!({"source": "ci", "job_name": "nightly", "error_message": "boom"});
    // (method, path, body, role needed)
    let routes: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/sessions", None, "viewer"),
        (Method::GET, "/api/v1/sessions/nope", None, "viewer"),
        (Method::GET, "/api/v1/stats", None, "viewer"),
        (Method::GET, "/api/v1/flaky-tests", None, "viewer"),
        (Method::GET, "/api/v1/quarantine", None, "viewer"),
        (Method::GET, "/api/v1/approvals", None, "viewer"),
        (Method::GET, "/api/v1/whoami", None, "viewer"),
        (Method::GET, "/pipeline/status", None, "viewer"),
        (Method::GET, "/pipeline/healing/history", None, "viewer"),
        (
            Method::POST,
            "/pipeline/test/trigger",
            Some(json!({"error_message": "connection reset"})),
            "viewer",
        ),
        (
            Method::POST,
            "/api/v1/sessions/nope/approve",
            Some(json!({})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/sessions/nope/reject",
            Some(json!({})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/sessions/nope/verdict",
            Some(json!({"category": "network"})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/sessions/nope/explain",
            Some(json!({})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/quarantine",
            Some(json!({"repository": "o/r", "test": "t"})),
            "operator",
        ),
        (
            Method::DELETE,
            "/api/v1/quarantine?repository=o/r&test=t",
            None,
            "operator",
        ),
        (Method::GET, "/api/v1/tokens", None, "admin"),
        (Method::GET, "/api/v1/audit", None, "admin"),
        (Method::DELETE, "/api/v1/tokens/nobody", None, "admin"),
        (Method::POST, "/pipeline/webhook", Some(generic), "ingest"),
    ];
    let anon = reqwest::Client::new();
    let mut clients = Vec::new();
    for role in ROLES {
        clients.push((
            role,
            authenticated(&app.token(&format!("t-{role}"), role).await),
        ));
    }
    for (method, path, body, needed) in &routes {
        let (status, v) = call(&anon, &app.base, method, path, body.as_ref()).await;
        assert_eq!(status, 401, "{method} {path} without a credential: {v}");
        assert_eq!(v["error"], "unauthorized", "{method} {path}: {v}");
        for (role, http) in &clients {
            let (status, v) = call(http, &app.base, method, path, body.as_ref()).await;
            if grants(role, needed) {
                assert!(
                    status != 401 && status != 403,
                    "{role} was refused {method} {path}: {status} {v}"
                );
            } else {
                assert_eq!(status, 403, "{role} reached {method} {path}: {v}");
                assert_eq!(v["error"], "forbidden");
            }
        }
    }
    // A made-up token and a token in the wrong scheme are refused alike.
    for bad in ["pgt_not-a-real-token", "Basic dXNlcjpwYXNz"] {
        let (status, _) = call(
            &authenticated(bad),
            &app.base,
            &Method::GET,
            "/api/v1/sessions",
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    // Creating a token shows it once and it works at once; a listing never shows it.
    let (status, v) = call(
        &app.http,
        &app.base,
        &Method::POST,
        "/api/v1/tokens",
        Some(&json!({"name": "bot", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (_, me) = call(
        &authenticated(&token),
        &app.base,
        &Method::GET,
        "/api/v1/whoami",
        None,
    )
    .await;
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("bot"), Some("viewer"))
    );
    let (_, list) = call(&app.http, &app.base, &Method::GET, "/api/v1/tokens", None).await;
    assert!(!list.to_string().contains(&token));
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let app = TestApp::start().await;
    let token = app.token("leaky", "operator").await;
    let http = authenticated(&token);
    let (status, _) = call(&http, &app.base, &Method::GET, "/api/v1/sessions", None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app.http,
        &app.base,
        &Method::DELETE,
        "/api/v1/tokens/leaky",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = call(&http, &app.base, &Method::GET, "/api/v1/sessions", None).await;
    assert_eq!(status, 401, "{v}");
    app.stop().await;
}

/// A deploy failure on GitHub: its plan waits for approval.
async fn awaiting_session(app: &TestApp, run: u64) -> String {
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "deploy", "failure", TRANSIENT_LOG)],
    )
    .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(format!(
            "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
        )))
        .respond_with(wiremock::ResponseTemplate::new(201))
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            &format!("d-{run}"),
            &workflow_run(run, 1, "failure", "Deploy"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "awaiting_approval").await;
    id
}

#[tokio::test]
async fn a_cross_site_request_cannot_approve_a_deploy() {
    let app = TestApp::start().await;
    let id = awaiting_session(&app, 61).await;
    let url = format!("{}/api/v1/sessions/{id}/approve", app.base);
    // What a web page can send: no credentials, a simple content type or none.
    let anon = reqwest::Client::new();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut r = anon.post(&url);
        if let Some(ct) = ct {
            r = r.header("content-type", ct).body("by=mallory");
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{ct:?}");
    }
    // Even with a credential, a body that is not JSON (a form) is refused.
    let r = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = app.http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 415, "a bodiless POST is refused too");
    let s = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(s["status"], "awaiting_approval");
    app.stop().await;
}

#[tokio::test]
async fn four_eyes_need_two_different_people_and_name_them() {
    let app = TestApp::start_with(|c| c.approvals.required = 2).await;
    let id = awaiting_session(&app, 62).await;
    let alice = authenticated(&app.token("alice", "operator").await);
    let bob = authenticated(&app.token("bob", "operator").await);
    let viewer = authenticated(&app.token("carol", "viewer").await);
    let path = format!("/api/v1/sessions/{id}/approve");
    let body = json!({"comment": "window is open", "by": "somebody-else"});
    let (status, _) = call(&viewer, &app.base, &Method::POST, &path, Some(&body)).await;
    assert_eq!(status, 403, "a viewer cannot approve");
    let (status, v) = call(&alice, &app.base, &Method::POST, &path, Some(&body)).await;
    assert_eq!(status, 202);
    assert_eq!(v["status"], "awaiting_approval");
    assert_eq!(
        (v["approvals"].as_u64(), v["required"].as_u64()),
        (Some(1), Some(2))
    );
    let (status, v) = call(&alice, &app.base, &Method::POST, &path, Some(&body)).await;
    assert_eq!(
        status, 409,
        "the same person twice is not two approvals: {v}"
    );
    let waiting = app.get("/api/v1/approvals").await;
    assert_eq!(waiting["approvals"][0]["approvals"][0]["approver"], "alice");
    let (status, v) = call(&bob, &app.base, &Method::POST, &path, Some(&body)).await;
    assert_eq!(status, 202);
    assert_eq!(v["status"], "planned");
    assert_eq!(v["approved_by"], json!(["alice", "bob"]));
    let s = app.wait_status(&id, "verifying").await;
    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("approved by alice (1 of 2)"),
        "{timeline}"
    );
    assert!(timeline.contains("approved by bob (2 of 2)"), "{timeline}");
    assert!(!timeline.contains("somebody-else"), "{timeline}");
    app.stop().await;
}

#[tokio::test]
async fn a_rejection_is_recorded_under_the_rejecting_credential() {
    let app = TestApp::start().await;
    let id = awaiting_session(&app, 63).await;
    let viewer = authenticated(&app.token("erin", "viewer").await);
    let reject = format!("/api/v1/sessions/{id}/reject");
    let (status, _) = call(&viewer, &app.base, &Method::POST, &reject, Some(&json!({}))).await;
    assert_eq!(status, 403, "a viewer cannot reject");
    let dave = authenticated(&app.token("dave", "operator").await);
    let (status, v) = call(
        &dave,
        &app.base,
        &Method::POST,
        &format!("/api/v1/sessions/{id}/reject"),
        Some(&json!({"comment": "freeze"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["reason"], "rejected by dave: freeze");
    // A rejected plan is never carried out.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let posts = app.github.received_requests().await.unwrap_or_default();
    assert!(
        posts
            .iter()
            .all(|r| r.method != wiremock::http::Method::POST),
        "a rejected deploy was re-run"
    );
    let (status, _) = call(
        &dave,
        &app.base,
        &Method::POST,
        &format!("/api/v1/sessions/{id}/approve"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 409, "nothing left to approve");
    app.stop().await;
}

#[tokio::test]
async fn names_that_could_steer_urls_are_refused_on_every_platform() {
    // Every platform configured (its API at the mock), without webhook secrets: deliveries
    // reach the name checks unsigned, as on loopback they may.
    let app = TestApp::start_with(|c| {
        let api = c.platform(Platform::Github).api_url.clone();
        for m in pipeguard_platforms::registry::MODULES {
            if m.section().credential.is_some() {
                c.platform_mut(m.platform()).api_url = api.clone();
            }
        }
    })
    .await;
    let bad = "../../../user/repos?x=";
    // (platform, headers, body)
    type Delivery<'a> = (&'a str, Vec<(&'a str, String)>, Value);
    let deliveries: Vec<Delivery> = vec![
        (
            "github",
            vec![
                ("x-github-event", "workflow_run".into()),
                ("x-github-delivery", "t-1".into()),
            ],
            {
                let mut v = workflow_run(71, 1, "failure", "CI");
                v["repository"]["full_name"] = json!(bad);
                v
            },
        ),
        (
            "gitlab",
            vec![("x-gitlab-event", "Pipeline Hook".into())],
            json!({"object_kind": "pipeline", "object_attributes": {"id": 5, "status": "failed", "ref": "main"},
                   "project": {"path_with_namespace": bad}, "builds": []}),
        ),
        (
            "jenkins",
            vec![],
            json!({"job": "../../credentials", "build": 3, "status": "FAILURE"}),
        ),
        (
            "circleci",
            vec![],
            json!({"id": "e1", "type": "workflow-completed", "project": {"slug": "gh/../x"},
                   "pipeline": {"id": "p1"}, "workflow": {"name": "build", "status": "failed"}}),
        ),
        (
            "buildbot",
            vec![],
            json!({"buildid": 9, "number": 9, "builderid": 1, "complete": true, "results": 2,
                   "builder": {"name": "a?b#c"}}),
        ),
        (
            "ansible",
            vec![],
            json!({"playbook": "../../etc/site.yml", "host": "web-1", "task": "t", "msg": "boom"}),
        ),
    ];
    for (platform, headers, body) in deliveries {
        let raw = body.to_string();
        let mut r = app
            .http
            .post(format!("{}/webhooks/{platform}", app.base))
            .header("content-type", "application/json")
            .body(raw.clone());
        for (k, v) in &headers {
            r = r.header(*k, v);
        }
        if platform == "github" {
            r = r.header("x-hub-signature-256", sign(raw.as_bytes()));
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{platform}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("not a valid"),
            "{platform}: {v}"
        );
    }
    let r = app
        .http
        .post(format!("{}/pipeline/webhook", app.base))
        .json(
            &json!({"source": "ci", "job_name": "j", "repository": "a/../b", "error_message": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.get("/api/v1/sessions").await["sessions"], json!([]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.github.received_requests().await.unwrap().is_empty(),
        "no platform call was made with a bad name"
    );
    app.stop().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_unsigned_bodies_are_not_read() {
    let app = TestApp::start_with(|c| c.api.header_timeout_seconds = 1).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow client was not cut off");
    // A delivery without a signature is refused before its (never sent) body.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
          x-github-event: workflow_run\r\ncontent-length: 20000000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered before the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_every_error_are_json() {
    // GitLab configured without a secret, so its unsigned delivery is read (and found too big).
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Gitlab).api_url = "http://127.0.0.1:9".into()
    })
    .await;
    let big = "x".repeat(200 * 1024);
    // The API takes 64 KiB.
    let (status, v) = call(
        &app.http,
        &app.base,
        &Method::POST,
        "/api/v1/quarantine",
        Some(&json!({"repository": "o/r", "test": big})),
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    // Webhooks take what the configuration says (1 MiB in these tests).
    let huge = format!("{{\"x\":\"{}\"}}", "y".repeat(2 * 1024 * 1024));
    let r = app
        .http
        .post(format!("{}/webhooks/gitlab", app.base))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Pipeline Hook")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "payload_too_large"
    );
    // 404, 405, 415, 422/400: JSON with a code and a message.
    // (method, path, content type and body, expected status)
    type Case<'a> = (Method, &'a str, Option<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        (Method::GET, "/nowhere", None, 404),
        (Method::GET, "/webhooks/github", None, 405),
        (Method::PUT, "/api/v1/sessions", None, 405),
        (
            Method::POST,
            "/api/v1/quarantine",
            Some(("text/plain", "{}")),
            415,
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(("application/json", r#"{"name": 5}"#)),
            400,
        ),
        (
            Method::POST,
            "/api/v1/quarantine",
            Some(("application/json", "{not json")),
            400,
        ),
    ];
    for (method, path, body, want) in cases {
        let mut r = app
            .http
            .request(method.clone(), format!("{}{path}", app.base));
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status == want || (want == 400 && status == 422),
            "{method} {path}: {status} {v}"
        );
        assert!(ct.starts_with("application/json"), "{method} {path}: {ct}");
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{method} {path}: {v}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_their_token_when_one_is_set() {
    let app = TestApp::start_with(|c| c.metrics.token = Some("scrape-me".into())).await;
    let anon = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    assert_eq!(anon.get(&url).send().await.unwrap().status(), 401);
    let r = anon
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("pipeguard_queue_depth"));
    // Health and readiness stay open for probes.
    for probe in ["healthz", "readyz"] {
        let r = anon
            .get(format!("{}/{probe}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
    let ready: Value = anon
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn one_source_cannot_flood_the_api() {
    let app = TestApp::start_with(|c| c.api.rate_limit_per_minute = 60).await;
    let mut limited = None;
    for _ in 0..30 {
        let r = app
            .http
            .get(format!("{}/api/v1/whoami", app.base))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited = Some(r.json::<Value>().await.unwrap());
            break;
        }
    }
    let v = limited.expect("30 requests at once were never limited");
    assert_eq!(v["error"], "rate_limited");
    app.stop().await;
}

#[tokio::test]
async fn serving_beyond_loopback_needs_webhook_secrets() {
    let github = wiremock::MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let mut cfg = config(&github, &db);
    cfg.listen = "0.0.0.0:0".into();
    cfg.platform_mut(Platform::Github).webhook_secret = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let err = pipeguard_server::serve(cfg.clone(), listener, rx)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PIPEGUARD_GITHUB_WEBHOOK_SECRET"), "{err}");
    // With `allow_unsigned` it starts (a trusted network is the operator's call).
    cfg.platform_mut(Platform::Github).allow_unsigned = true;
    let (base, tx, handle) = spawn(cfg).await;
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = tx.send(true);
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_serves_https_with_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let app = TestApp::start_with(|c| {
        c.tls.cert = Some(cert_path.clone());
        c.tls.key = Some(key_path.clone());
    })
    .await;
    let https = app.base.replace("http://", "https://");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{https}/healthz")).send().await {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = answer.expect("the TLS server answered");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    // Plain HTTP on the TLS port gets no answer.
    assert!(reqwest::get(format!("{}/healthz", app.base)).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn the_healing_budget_stops_a_retry_storm() {
    let app = TestApp::start_with(|c| c.healing.budget_per_repository_per_hour = 1).await;
    let mut ids = Vec::new();
    for run in [81u64, 82] {
        mount_run(
            &app.github,
            run,
            1,
            &[(run * 10, "build", "failure", TRANSIENT_LOG)],
        )
        .await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path(format!(
                "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
            )))
            .respond_with(wiremock::ResponseTemplate::new(201))
            .mount(&app.github)
            .await;
        let r = app
            .post_github(
                "workflow_run",
                &format!("b-{run}"),
                &workflow_run(run, 1, "failure", "CI"),
            )
            .await;
        let id = session_id(r).await;
        app.wait_session(&id, |s| {
            s["status"] == "verifying" || s["status"] == "escalated"
        })
        .await;
        ids.push(id);
    }
    let second = app.get(&format!("/api/v1/sessions/{}", ids[1])).await;
    assert_eq!(second["status"], "escalated");
    assert!(
        second["reason"]
            .as_str()
            .unwrap()
            .contains("healing budget"),
        "{second}"
    );
    let reruns = app
        .github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/rerun-failed-jobs"))
        .count();
    assert_eq!(reruns, 1);
    app.stop().await;
}
