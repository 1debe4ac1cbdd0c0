//! The MCP server as a coding agent uses it, through the SDK's own client: over streamable
//! HTTP at `POST /mcp`, and the stdio handler of `pipeguard mcp` (over an in-memory pipe)
//! calling the server's API. Against the mock GitHub Actions API: the platform calls an
//! agent's request makes, or must not make, are counted there.

mod common;

use common::*;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

type Client = RunningService<RoleClient, ()>;

async fn connect(app: &TestApp, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base))
        .auth_header(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake")
}

async fn tool_names(c: &Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

async fn call(c: &Client, tool: &str, args: Value) -> (bool, Value) {
    let mut p = CallToolRequestParams::new(tool.to_string());
    p.arguments = args.as_object().cloned();
    let r: CallToolResult = c.call_tool(p).await.unwrap();
    (
        r.is_error.unwrap_or(false),
        r.structured_content.unwrap_or(Value::Null),
    )
}

fn rerun_path(run: u64) -> String {
    format!("/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs")
}

/// POSTs the mock GitHub received on `p`.
async fn posts(app: &TestApp, p: &str) -> usize {
    let reqs = app.github.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == p)
        .count()
}

async fn failed_run(app: &TestApp, run: u64, workflow: &str, log: &str) -> String {
    mount_run(&app.github, run, 1, &[(run * 10, "build", "failure", log)]).await;
    let r = app
        .post_github(
            "workflow_run",
            &format!("mcp-{run}"),
            &workflow_run(run, 1, "failure", workflow),
        )
        .await;
    assert_eq!(r.status(), 202);
    session_id(r).await
}

#[tokio::test]
async fn an_agent_reads_diagnoses_and_the_planner_decides_its_re_runs() {
    let app = TestApp::start().await;
    let agent = app.token("agent", "operator").await;
    let reader = app.token("reader", "viewer").await;

    // A compile error: escalated by pipeguard, and the agent's re-run is refused.
    let compile = failed_run(&app, 80, "CI", COMPILE_LOG).await;
    app.wait_status(&compile, "escalated").await;
    // A transient failure whose first re-run the platform refused (the app lacked a
    // permission then): escalated, and the agent's request re-runs it once.
    Mock::given(method("POST"))
        .and(path(rerun_path(81)))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .up_to_n_times(1)
        .mount(&app.github)
        .await;
    let transient = failed_run(&app, 81, "CI", TRANSIENT_LOG).await;
    let s = app.wait_status(&transient, "escalated").await;
    assert!(s["reason"].as_str().unwrap().contains("refused"), "{s}");
    Mock::given(method("POST"))
        .and(path(rerun_path(81)))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&app.github)
        .await;
    // A deploy waits for a human's approval.
    let deploy = failed_run(&app, 82, "deploy production", TRANSIENT_LOG).await;
    app.wait_status(&deploy, "awaiting_approval").await;

    let c = connect(&app, &agent).await;
    let all = tool_names(&c).await;
    assert_eq!(
        all,
        [
            "explain_failure",
            "get_diagnosis",
            "list_failures",
            "list_flaky_tests",
            "quarantine_test",
            "request_retry"
        ]
    );

    let (err, listed) = call(
        &c,
        "list_failures",
        json!({"repository": REPO, "limit": 10}),
    )
    .await;
    assert!(!err, "{listed}");
    let ids: Vec<&str> = listed["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["session"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&compile.as_str()) && ids.contains(&deploy.as_str()),
        "{listed}"
    );

    let (err, d) = call(&c, "get_diagnosis", json!({"session": compile})).await;
    assert!(!err, "{d}");
    assert_eq!(d["diagnosis"]["category"], "compilation_error", "{d}");
    let evidence = d["diagnosis"]["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e["text"].as_str().unwrap().contains("E0308")),
        "{d}"
    );
    assert!(!d["timeline"].as_array().unwrap().is_empty());

    // Refused with the reason; the platform is not called.
    let (err, r) = call(
        &c,
        "request_retry",
        json!({"session": compile, "reason": "maybe a blip"}),
    )
    .await;
    assert!(err, "{r}");
    assert_eq!(
        (r["decision"].as_str(), r["http_status"].as_u64()),
        (Some("refused"), Some(409)),
        "{r}"
    );
    assert!(
        r["message"].as_str().unwrap().contains("compilation_error"),
        "{r}"
    );
    assert_eq!(posts(&app, &rerun_path(80)).await, 0);

    // Transient: re-run once.
    let (err, r) = call(
        &c,
        "request_retry",
        json!({"session": transient, "reason": "crates.io reset the connection"}),
    )
    .await;
    assert!(!err, "{r}");
    assert_eq!(r["decision"], "rerun", "{r}");
    assert_eq!(r["requested_by"], "mcp:agent");
    let s = app.wait_status(&transient, "verifying").await;
    assert_eq!(
        posts(&app, &rerun_path(81)).await,
        2,
        "the refused call and the agent's re-run"
    );
    let (err, again) = call(
        &c,
        "request_retry",
        json!({"session": transient, "reason": "again"}),
    )
    .await;
    assert!(err && again["decision"] == "refused", "{again}");
    assert!(
        again["message"].as_str().unwrap().contains("already"),
        "{again}"
    );
    assert_eq!(posts(&app, &rerun_path(81)).await, 2, "no second re-run");
    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("mcp:agent asked for a re-run (crates.io reset the connection)"),
        "{timeline}"
    );

    // Deploy: held for approval, nothing called.
    let (err, r) = call(
        &c,
        "request_retry",
        json!({"session": deploy, "reason": "flaky network"}),
    )
    .await;
    assert!(!err, "{r}");
    assert_eq!(
        (r["decision"].as_str(), r["status"].as_str()),
        (Some("awaiting_approval"), Some("awaiting_approval"))
    );
    assert_eq!(posts(&app, &rerun_path(82)).await, 0);

    // The audit trail names the agent.
    let audit = app.get("/api/v1/audit?limit=200").await.to_string();
    assert!(audit.contains("\"actor\":\"mcp:agent\""), "{audit}");
    assert!(audit.contains("session.rerun_requested") && audit.contains("session.rerun_refused"));

    // A viewer sees the read tools only, and cannot ask for a re-run.
    let v = connect(&app, &reader).await;
    assert_eq!(
        tool_names(&v).await,
        [
            "explain_failure",
            "get_diagnosis",
            "list_failures",
            "list_flaky_tests"
        ]
    );
    let (err, r) = call(
        &v,
        "request_retry",
        json!({"session": transient, "reason": "x"}),
    )
    .await;
    assert!(err && r["error"] == "forbidden", "{r}");
    let (err, _) = call(&v, "get_diagnosis", json!({"session": transient})).await;
    assert!(!err);
    let _ = v.cancel().await;
    let _ = c.cancel().await;

    // Without a credential there is no MCP session.
    let anon = reqwest::Client::new()
        .post(format!("{}/mcp", app.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_stdio_handler_calls_the_server_with_the_token_and_its_role() {
    let app = TestApp::start().await;
    let reader = app.token("reader", "viewer").await;
    let compile = failed_run(&app, 90, "CI", COMPILE_LOG).await;
    app.wait_status(&compile, "escalated").await;

    let mcp = pipeguard_server::mcp::Mcp::remote(&app.base, &reader)
        .await
        .unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(s) = mcp.serve(server_io).await {
            let _ = s.waiting().await;
        }
    });
    let c = ().serve(client_io).await.unwrap();
    assert_eq!(
        tool_names(&c).await,
        [
            "explain_failure",
            "get_diagnosis",
            "list_failures",
            "list_flaky_tests"
        ]
    );
    let (err, d) = call(&c, "get_diagnosis", json!({"session": compile})).await;
    assert!(
        !err && d["diagnosis"]["category"] == "compilation_error",
        "{d}"
    );
    let (err, r) = call(
        &c,
        "request_retry",
        json!({"session": compile, "reason": "x"}),
    )
    .await;
    assert!(err && r["error"] == "forbidden", "{r}");
    let (err, r) = call(&c, "get_diagnosis", json!({"session": "no-such"})).await;
    assert!(err && r["http_status"] == 404, "{r}");
    let _ = c.cancel().await;

    // A wrong token is said at start.
    let e = pipeguard_server::mcp::Mcp::remote(&app.base, "pg_wrong")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("401"), "{e}");
    app.stop().await;
}
