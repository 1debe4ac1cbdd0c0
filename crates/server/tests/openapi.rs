//! `/openapi.json` against the live server: served without a credential, and what the real
//! handlers answer has the shapes the document gives them (every field described, with its
//! type; the document names that shape for the route and status).

mod common;

use common::*;
use pipeguard_server::routes::openapi::schema;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The schema the document gives `method path` for `status`.
fn documented(doc: &Value, method: &str, path: &str, status: u16) -> String {
    let r = &doc["paths"][path][method]["responses"][status.to_string()];
    let schema = &r["content"]["application/json"]["schema"]["$ref"];
    schema
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status} has no JSON schema: {r}"))
        .trim_start_matches("#/components/schemas/")
        .to_string()
}

/// Calls the route, checks the status, that the document names `T` for it, and that the
/// answer reads as `T` (whose fields refuse unknown keys).
async fn check<T: DeserializeOwned>(
    app: &TestApp,
    doc: &Value,
    (method, path, url): (Method, &str, &str),
    body: Option<Value>,
    status: u16,
) -> Value {
    let mut req = app
        .http
        .request(method.clone(), format!("{}{url}", app.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), status, "{method} {url}");
    let v: Value = resp.json().await.unwrap();
    let name = std::any::type_name::<T>().rsplit("::").next().unwrap();
    let method = method.as_str().to_ascii_lowercase();
    assert_eq!(
        documented(doc, &method, path, status),
        name,
        "{method} {path}"
    );
    if let Err(e) = serde_json::from_value::<T>(v.clone()) {
        panic!("{method} {url} answered what the document does not describe: {e}\n{v:#}");
    }
    v
}

#[tokio::test]
async fn the_document_is_open_and_the_handlers_answer_its_shapes() {
    let app = TestApp::start().await;
    let resp = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served without a credential");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // A session whose deploy plan waits for approval gives the session routes content.
    let run = 4242;
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "deploy", "failure", TRANSIENT_LOG)],
    )
    .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-openapi",
            &workflow_run(run, 1, "failure", "Deploy"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    serde_json::from_value::<schema::WebhookAnswer>(answer.clone()).unwrap();
    let id = session_id_in(&answer);
    app.wait_status(&id, "awaiting_approval").await;

    let get = |path| (Method::GET, path, path);
    check::<schema::Health>(&app, &doc, get("/healthz"), None, 200).await;
    check::<schema::Ready>(&app, &doc, get("/readyz"), None, 200).await;
    check::<schema::DeadLetters>(&app, &doc, get("/api/v1/dead-letters"), None, 200).await;
    check::<schema::PipelineStatus>(&app, &doc, get("/pipeline/status"), None, 200).await;
    let h =
        check::<schema::HealingHistory>(&app, &doc, get("/pipeline/healing/history"), None, 200)
            .await;
    assert_eq!(h["healing_history"][0]["id"], id.as_str());
    let list = check::<schema::SessionList>(&app, &doc, get("/api/v1/sessions"), None, 200).await;
    assert_eq!(list["sessions"][0]["id"], id.as_str());
    let url = format!("/api/v1/sessions/{id}");
    let one = (Method::GET, "/api/v1/sessions/{id}", url.as_str());
    let s = check::<schema::SessionDetail>(&app, &doc, one, None, 200).await;
    assert!(s["plan"].is_object() && s["diagnosis"].is_object(), "{s:#}");
    let waiting =
        check::<schema::ApprovalList>(&app, &doc, get("/api/v1/approvals"), None, 200).await;
    assert_eq!(waiting["approvals"][0]["session"]["id"], id.as_str());
    check::<schema::Stats>(&app, &doc, get("/api/v1/stats"), None, 200).await;
    check::<schema::DailyStats>(&app, &doc, get("/api/v1/stats/daily"), None, 200).await;
    check::<schema::FlakyTests>(&app, &doc, get("/api/v1/flaky-tests"), None, 200).await;
    check::<schema::Whoami>(&app, &doc, get("/api/v1/whoami"), None, 200).await;

    let url = format!("/api/v1/sessions/{id}/verdict");
    let verdict = (Method::POST, "/api/v1/sessions/{id}/verdict", url.as_str());
    let body = json!({"category": "network", "note": "the registry was down"});
    check::<schema::Verdict>(&app, &doc, verdict, Some(body), 201).await;
    let url = format!("/api/v1/sessions/{id}/reject");
    let reject = (Method::POST, "/api/v1/sessions/{id}/reject", url.as_str());
    check::<schema::Rejected>(&app, &doc, reject, Some(json!({"comment": "not now"})), 200).await;
    let url = format!("/api/v1/sessions/{id}/approve");
    let approve = (Method::POST, "/api/v1/sessions/{id}/approve", url.as_str());
    check::<schema::ErrorBody>(&app, &doc, approve, Some(json!({})), 409).await;

    let trigger = (
        Method::POST,
        "/pipeline/test/trigger",
        "/pipeline/test/trigger",
    );
    let body = json!({"error_message": "npm ERR! network ECONNRESET"});
    check::<schema::TriggerResult>(&app, &doc, trigger, Some(body), 200).await;

    let q = (Method::POST, "/api/v1/quarantine", "/api/v1/quarantine");
    let body = json!({"repository": REPO, "test": "tests::flaky", "reason": "flaky"});
    check::<schema::QuarantineEntry>(&app, &doc, q, Some(body), 201).await;
    check::<schema::QuarantineList>(&app, &doc, get("/api/v1/quarantine"), None, 200).await;
    let url = format!("/api/v1/quarantine?repository={REPO}&test=tests::flaky");
    let lift = (Method::DELETE, "/api/v1/quarantine", url.as_str());
    check::<schema::QuarantineRemoved>(&app, &doc, lift, None, 200).await;

    let tokens = (Method::POST, "/api/v1/tokens", "/api/v1/tokens");
    let body = json!({"name": "reader", "role": "viewer"});
    check::<schema::TokenCreated>(&app, &doc, tokens, Some(body), 201).await;
    check::<schema::TokenList>(&app, &doc, get("/api/v1/tokens"), None, 200).await;
    let revoke = (
        Method::DELETE,
        "/api/v1/tokens/{name}",
        "/api/v1/tokens/reader",
    );
    check::<schema::TokenRevoked>(&app, &doc, revoke, None, 200).await;
    let audit = (Method::GET, "/api/v1/audit", "/api/v1/audit?verify=true");
    let trail = check::<schema::AuditPage>(&app, &doc, audit, None, 200).await;
    assert!(
        trail["entries"].as_array().is_some_and(|e| !e.is_empty()),
        "{trail:#}"
    );

    // Errors: the documented JSON body, whichever layer answers.
    let missing = (
        Method::GET,
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/nope",
    );
    check::<schema::ErrorBody>(&app, &doc, missing, None, 404).await;
    let bad = (
        Method::GET,
        "/api/v1/sessions",
        "/api/v1/sessions?status=bogus",
    );
    check::<schema::ErrorBody>(&app, &doc, bad, None, 400).await;
    app.stop().await;
}
