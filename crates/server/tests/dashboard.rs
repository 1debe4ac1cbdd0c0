//! The dashboard's server side: the page and its assets, session filters, the live event
//! stream and the daily stats.

mod common;

use common::{api_call, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn get_raw(app: &TestApp, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reports a failure through the generic webhook; returns the session id.
async fn report(app: &TestApp, ingest: &str, repository: &str, job: &str, log: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/pipeline/webhook", app.base))
        .bearer_auth(ingest)
        .json(
            &json!({"source": "nightly", "repository": repository, "job_name": job,
                      "build_number": 1, "log": log}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    common::session_id(r).await
}

const NETWORK_LOG: &str = "curl: (56) Recv failure: Connection reset by peer\n";

#[tokio::test]
async fn the_page_is_served_without_a_credential_with_a_strict_csp() {
    let app = TestApp::start().await;
    let r = get_raw(&app, "/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    let csp = header(&r, "content-security-policy").to_string();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));
    // Every script is a file: the CSP forbids inline ones, so one would silently not run.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script type=\"module\" src=").count()
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
    app.stop().await;
}

/// Every file the page loads, following the scripts' imports, is served with its type, and
/// nothing is fetched from elsewhere.
#[tokio::test]
async fn every_asset_the_page_loads_is_served_with_its_content_type() {
    let app = TestApp::start().await;
    let html = get_raw(&app, "/").await.text().await.unwrap();
    let mut todo: Vec<String> = refs(&html, &["href=\"", "src=\""]);
    let mut seen = BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !path.starts_with("/assets/") || !seen.insert(path.clone()) {
            continue;
        }
        let r = get_raw(&app, &path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let expected = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(header(&r, "content-type"), expected, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let body = r.text().await.unwrap();
        todo.extend(
            refs(&body, &["from \"./"])
                .into_iter()
                .map(|f| format!("/assets/{f}")),
        );
    }
    for must in [
        "/assets/app.js",
        "/assets/app.css",
        "/assets/sessions.js",
        "/assets/session.js",
        "/assets/live.js",
        "/assets/charts.js",
    ] {
        assert!(seen.contains(must), "{must} not reached from the page");
    }
    let missing = get_raw(&app, "/assets/nope.js").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, "content-type"), "application/json");
    app.stop().await;
}

/// The quoted values after each of `starts` in `text`.
fn refs(text: &str, starts: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for start in starts {
        for (i, _) in text.match_indices(start) {
            let rest = &text[i + start.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn an_unchanged_asset_is_answered_304() {
    let app = TestApp::start().await;
    let r = get_raw(&app, "/assets/app.js").await;
    let etag = header(&r, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag:?}");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let again = reqwest::Client::new()
        .get(format!("{}/assets/app.js", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let other = reqwest::Client::new()
        .get(format!("{}/assets/app.css", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    app.stop().await;
}

async fn sessions(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) =
        api_call(app, Method::GET, &format!("/api/v1/sessions{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["sessions"].as_array().unwrap().clone()
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sessions_are_filtered_by_repository_status_category_and_platform() {
    let app = TestApp::start().await;
    let ingest = app.token("nightly", "ingest").await;
    report(&app, &ingest, "team/api", "build", NETWORK_LOG).await;
    report(
        &app,
        &ingest,
        "team/api",
        "lint",
        "error[E0308]: mismatched types\n",
    )
    .await;
    report(&app, &ingest, "team/web", "test", NETWORK_LOG).await;
    // A GitHub deploy: another platform, and it waits for approval.
    common::mount_run(
        &app.github,
        7,
        1,
        &[(70, "deploy", "failure", common::TRANSIENT_LOG)],
    )
    .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-1",
            &common::workflow_run(7, 1, "failure", "Deploy"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Let every session settle, so statuses and categories stay put while we look.
    let settled = |s: &Value| {
        [
            "awaiting_approval",
            "healed",
            "failed",
            "escalated",
            "skipped",
        ]
        .contains(&s["status"].as_str().unwrap())
    };
    let mut all = Vec::new();
    for _ in 0..200 {
        all = sessions(&app, "").await;
        if all.len() == 4 && all.iter().all(settled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(all.len(), 4);
    for field in ["repository", "status", "category", "platform"] {
        let values: BTreeSet<String> = all
            .iter()
            .filter_map(|s| s[field].as_str().map(str::to_string))
            .collect();
        assert!(
            values.len() >= 2,
            "the sessions differ in {field}: {values:?}"
        );
        for v in values {
            let expected: Vec<Value> = all
                .iter()
                .filter(|s| s[field] == v.as_str())
                .cloned()
                .collect();
            let got = sessions(&app, &format!("?{field}={v}")).await;
            assert_eq!(ids(&got), ids(&expected), "{field}={v}");
        }
    }
    let both = sessions(&app, "?repository=team/api&category=network").await;
    assert_eq!(both.len(), 1, "{both:#?}");
    // An empty value is "any", as an HTML form sends it.
    assert_eq!(sessions(&app, "?status=&platform=").await.len(), 4);
    assert_eq!(sessions(&app, "?limit=2&offset=2").await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn bad_filters_are_400_with_a_message() {
    let app = TestApp::start().await;
    for (q, says) in [
        ("?status=bogus", "unknown status"),
        ("?category=weather", "unknown category"),
        ("?platform=gopher", "unknown platform"),
        ("?colour=red", "unknown field"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
    ] {
        let (status, body) =
            api_call(&app, Method::GET, &format!("/api/v1/sessions{q}"), None).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"], "bad_request", "{q}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(says), "{q}: {msg}");
    }
    app.stop().await;
}

/// Reads an event stream until `pred` holds for an event, or `limit` passes.
async fn read_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    limit: Duration,
    pred: impl Fn(&str, &Value) -> bool,
) -> Option<(String, Value)> {
    let end = Instant::now() + limit;
    loop {
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                let data: Value = serde_json::from_str(&data).unwrap();
                if pred(&event, &data) {
                    return Some((event, data));
                }
            }
        }
        let left = end.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return None,
        }
    }
}

async fn open_events(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/v1/events{query}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_stream_a_new_session_and_its_changes_past_the_request_timeout() {
    let app = TestApp::start_with(|c| c.api.request_timeout_seconds = 1).await;
    let viewer = app.token("vera", "viewer").await;
    let ingest = app.token("nightly", "ingest").await;
    let mut resp = open_events(&app, &viewer, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").starts_with("text/event-stream"));
    let mut buf = String::new();
    let ready = read_until(&mut resp, &mut buf, Duration::from_secs(5), |e, _| {
        e == "ready"
    })
    .await;
    assert!(ready.is_some(), "no ready event");
    // Longer than the request timeout: the stream is not cut by it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = report(&app, &ingest, "team/live", "build", NETWORK_LOG).await;
    // The new session, then its diagnosis (one event when both happened between two polls).
    let diagnosed = read_until(&mut resp, &mut buf, Duration::from_secs(5), |e, d| {
        e == "session" && d["id"] == id.as_str() && d["category"] == "network"
    })
    .await
    .expect("the session and its diagnosis within 5 s");
    assert_eq!(diagnosed.1["repository"], "team/live");
    // A client that goes away ends its stream: the server stops at once.
    drop(resp);
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_reconnecting_client_gets_the_changes_it_missed_and_roles_apply() {
    let app = TestApp::start().await;
    let viewer = app.token("vera", "viewer").await;
    let ingest = app.token("nightly", "ingest").await;
    let before = pipeguard_store::now_ms();
    let id = report(&app, &ingest, "team/missed", "build", NETWORK_LOG).await;
    let mut resp = open_events(&app, &viewer, &format!("?since={before}")).await;
    let mut buf = String::new();
    let seen = read_until(&mut resp, &mut buf, Duration::from_secs(5), |e, d| {
        e == "session" && d["id"] == id.as_str()
    })
    .await;
    assert!(
        seen.is_some(),
        "a change made before reconnecting was not sent"
    );
    drop(resp);
    assert_eq!(
        open_events(&app, &ingest, "").await.status(),
        StatusCode::FORBIDDEN
    );
    let anon = get_raw(&app, "/api/v1/events").await;
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        open_events(&app, &viewer, "?since=soon").await.status(),
        StatusCode::BAD_REQUEST
    );
    app.stop().await;
}

#[tokio::test]
async fn an_open_event_stream_ends_when_the_server_stops() {
    let app = TestApp::start().await;
    let viewer = app.token("vera", "viewer").await;
    let mut resp = open_events(&app, &viewer, "").await;
    let mut buf = String::new();
    assert!(
        read_until(&mut resp, &mut buf, Duration::from_secs(5), |e, _| e
            == "ready")
        .await
        .is_some()
    );
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = resp.chunk().await {} });
    let started = Instant::now();
    // Well under the stream's own lifetime: the stop ends it.
    let bound = pipeguard_server::routes::events::LIFETIME / 2;
    tokio::time::timeout(bound, app.stop())
        .await
        .expect("the server stopped while a client was streaming");
    reader.await.unwrap();
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

#[tokio::test]
async fn daily_stats_have_one_entry_per_day_and_count_finished_sessions() {
    let app = TestApp::start().await;
    let ingest = app.token("nightly", "ingest").await;
    let viewer = app.token("vera", "viewer").await;
    let id = report(
        &app,
        &ingest,
        "team/daily",
        "build",
        "error[E0308]: mismatched types\n",
    )
    .await;
    let s = app.wait_session(&id, |s| s["status"] == "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/stats/daily?days=7", app.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = days.last().unwrap();
    let day_ms = pipeguard_store::DAY_MS;
    assert_eq!(today["day_ms"], pipeguard_store::now_ms() / day_ms * day_ms);
    assert_eq!(
        (today["finished"].as_i64(), today["escalated"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(days[..6].iter().all(|d| d["finished"] == 0));
    for bad in ["?days=0", "?days=400", "?weeks=1"] {
        let (status, _) = api_call(
            &app,
            Method::GET,
            &format!("/api/v1/stats/daily{bad}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    app.stop().await;
}
