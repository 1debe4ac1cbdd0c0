//! The real binary: SIGKILL right after a 202 loses nothing and heals once; SIGTERM exits 0.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cret";
const REPO: &str = "octo-org/octo-repo";
const LOG: &str =
    "error: failed to download from `https://static.crates.io/crates/x/x-1.0.0.crate`\n\
Caused by:\n  [56] Failure when receiving data from the peer (Connection reset by peer)\n\
##[error]Process completed with exit code 101.\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(port: u16, db: &str, api: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("PIPEGUARD_DATABASE_URL", db)
        .env("PIPEGUARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("PIPEGUARD_GITHUB_TOKEN", "ghs_x")
        .env("PIPEGUARD_GITHUB_API_URL", api)
        .env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A client with an admin token made by `pipeguard token create` for the database.
fn admin_client(db: &str) -> reqwest::Client {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .args(["token", "create", "--role", "admin", "--name", "test"])
        .env("PIPEGUARD_DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not become healthy");
}

fn signed(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn sigkill_after_202_then_restart_processes_the_event_once() {
    let gh = MockServer::start().await;
    // A slow API keeps the first process busy with the job when it is killed.
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/77")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 77, "status": "completed", "conclusion": "failure", "run_attempt": 1}))
                .set_delay(Duration::from_millis(700)),
        )
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/77/attempts/1/jobs")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"total_count": 1, "jobs": [{"id": 5, "name": "test", "status": "completed", "conclusion": "failure"}]}),
        ))
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/jobs/5/logs")))
        .respond_with(ResponseTemplate::new(200).set_body_string(LOG))
        .mount(&gh)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/77/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&gh)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = admin_client(&db);
    let mut child = start(port, &db, &gh.uri());
    wait_healthy(&http, &base).await;

    let body = json!({
        "action": "completed",
        "workflow_run": {"id": 77, "name": "CI", "run_attempt": 1, "status": "completed", "conclusion": "failure",
                         "head_sha": "abc", "updated_at": "2026-11-23T10:04:00Z"},
        "repository": {"full_name": REPO}
    })
    .to_string();
    let r = http
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "workflow_run")
        .header("x-github-delivery", "kill-1")
        .header("x-hub-signature-256", signed(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut child = start(port, &db, &gh.uri());
    wait_healthy(&http, &base).await;
    let mut status = Value::Null;
    for _ in 0..300 {
        let s: Value = http
            .get(format!("{base}/api/v1/sessions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = s["status"].clone();
        if status == "verifying" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "verifying");
    // A redelivery after the restart changes nothing either.
    let r = http
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "workflow_run")
        .header("x-github-delivery", "kill-1")
        .header("x-hub-signature-256", signed(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["session_id"], id.as_str());

    // SIGTERM: a clean stop with exit status 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let code = child.wait().unwrap();
    assert!(code.success(), "exit after SIGTERM: {code:?}");
    gh.verify().await;
}
