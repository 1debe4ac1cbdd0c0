//! Test harness: the app on a random port with a fresh SQLite database and a mock GitHub API.
#![allow(dead_code)]

use pipeguard_core::event::Platform;
use pipeguard_server::config::Config;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SECRET: &str = "test-secret";
pub const REPO: &str = "octo-org/octo-repo";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// An admin token, sent with every API call of the helpers below.
    pub token: String,
    pub github: MockServer,
    pub db_url: String,
    pub dir: tempfile::TempDir,
    shutdown: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub fn config(github: &MockServer, db_url: &str) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.to_string(),
        max_body_bytes: 1024 * 1024,
        ..Default::default()
    };
    c.platform_mut(Platform::Github).webhook_secret = Some(SECRET.into());
    c.platform_mut(Platform::Github).token = Some("ghs_testtoken".into());
    c.platform_mut(Platform::Github).api_url = github.uri();
    c.healing.backoff_seconds = 0;
    // Tests call the API from one address many times a second.
    c.api.rate_limit_per_minute = 0;
    c.worker.http_backoff_ms = 10;
    c
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// The app reading GitLab's API at `api_url` (a stand-in) with the stand-in's token
    /// `glpat-sim` and webhook secret `gl-secret`.
    pub async fn start_gitlab(api_url: String, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::start_with(|c| {
            let g = c.platform_mut(Platform::Gitlab);
            g.api_url = api_url;
            g.token = Some("glpat-sim".into());
            g.webhook_secret = Some("gl-secret".into());
            tweak(c);
        })
        .await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let github = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("pipeguard.db").display());
        Self::start_at(dir, db_url, github, "test-admin", tweak).await
    }

    /// The app on an existing database (another backend, or again after a stop) with the
    /// GitHub mock `github`; `admin` names its admin token, new in that database.
    pub async fn start_at(
        dir: tempfile::TempDir,
        db_url: String,
        github: MockServer,
        admin: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut cfg = config(&github, &db_url);
        // The audit key and head files in the test's directory, never the crate's.
        cfg.encryption.audit_dir = Some(dir.path().to_path_buf());
        tweak(&mut cfg);
        let token = create_token(&db_url, admin, "admin").await;
        let (base, shutdown, handle) = spawn(cfg).await;
        TestApp {
            base,
            http: authenticated(&token),
            token,
            github,
            db_url,
            dir,
            shutdown,
            handle,
        }
    }

    pub async fn stop(self) -> (MockServer, tempfile::TempDir, String) {
        let _ = self.shutdown.send(true);
        self.handle.await.unwrap().unwrap();
        (self.github, self.dir, self.db_url)
    }

    pub async fn post_github(
        &self,
        event: &str,
        delivery: &str,
        body: &Value,
    ) -> reqwest::Response {
        let raw = body.to_string();
        self.http
            .post(format!("{}/webhooks/github", self.base))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign(raw.as_bytes()))
            .body(raw)
            .send()
            .await
            .unwrap()
    }

    /// A token with `role`, created in the app's database.
    pub async fn token(&self, name: &str, role: &str) -> String {
        create_token(&self.db_url, name, role).await
    }

    pub async fn get(&self, p: &str) -> Value {
        self.http
            .get(format!("{}{p}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls a session until `pred` holds, or panics with its last state.
    pub async fn wait_session(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.get(&format!("/api/v1/sessions/{id}")).await;
            if pred(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("session never reached the expected state: {last:#}");
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_session(id, |s| s["status"] == status).await
    }
}

/// A client with a fresh admin token of the database at `db_url`.
pub async fn admin_client(db_url: &str) -> reqwest::Client {
    let name = format!("admin-{}", &uuid_like());
    authenticated(&create_token(db_url, &name, "admin").await)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client that sends `token` as its bearer credential with every request.
pub fn authenticated(token: &str) -> reqwest::Client {
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

/// Creates an API token straight in the database, as `pipeguard token create` does.
pub async fn create_token(db_url: &str, name: &str, role: &str) -> String {
    let store = pipeguard_store::Store::connect(db_url).await.unwrap();
    let token = pipeguard_server::auth::tokens::generate();
    assert!(store
        .create_token(name, role, &pipeguard_server::auth::tokens::hash(&token))
        .await
        .unwrap());
    store.close().await;
    token
}

pub async fn spawn(
    cfg: Config,
) -> (
    String,
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(pipeguard_server::serve(cfg, listener, rx));
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (base, tx, handle)
}

/// The session id in an intake answer's body.
pub fn session_id_in(body: &Value) -> String {
    body["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_id in {body}"))
        .to_string()
}

/// The session id of an intake answer.
pub async fn session_id(r: reqwest::Response) -> String {
    session_id_in(&r.json().await.unwrap())
}

pub fn sign(body: &[u8]) -> String {
    format!("sha256={}", pipeguard_sim::hmac_hex(SECRET, body))
}

/// A `workflow_run` delivery shaped like GitHub's (octokit's payload examples).
pub fn workflow_run(run_id: u64, attempt: u32, conclusion: &str, name: &str) -> Value {
    json!({
        "action": "completed",
        "workflow_run": {
            "id": run_id, "name": name, "run_attempt": attempt, "run_number": 163,
            "status": "completed", "conclusion": conclusion, "event": "push",
            "head_branch": "main", "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
            "html_url": format!("https://github.com/{REPO}/actions/runs/{run_id}"),
            "created_at": "2026-11-23T10:00:00Z", "run_started_at": "2026-11-23T10:00:05Z",
            "updated_at": if attempt == 1 { "2026-11-23T10:04:00Z" } else { "2026-11-23T10:09:00Z" },
            "jobs_url": format!("https://api.github.com/repos/{REPO}/actions/runs/{run_id}/jobs"),
            "rerun_url": format!("https://api.github.com/repos/{REPO}/actions/runs/{run_id}/rerun"),
        },
        "repository": {"id": 186853002, "name": "octo-repo", "full_name": REPO, "private": false},
        "sender": {"login": "octocat", "id": 1}
    })
}

pub fn workflow_job(run_id: u64, job_id: u64, attempt: u32, name: &str) -> Value {
    json!({
        "action": "completed",
        "workflow_job": {
            "id": job_id, "run_id": run_id, "run_attempt": attempt, "name": name,
            "status": "completed", "conclusion": "failure", "workflow_name": "CI",
            "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625", "head_branch": "main",
            "started_at": "2026-11-23T10:00:10Z", "completed_at": "2026-11-23T10:03:50Z",
            "labels": ["ubuntu-latest"], "steps": []
        },
        "repository": {"id": 186853002, "name": "octo-repo", "full_name": REPO},
        "sender": {"login": "octocat", "id": 1}
    })
}

/// Mounts the read side of the Actions API for one run attempt: the run, its jobs and logs.
/// `jobs` = (job id, name, conclusion, log).
pub async fn mount_run(
    gh: &MockServer,
    run_id: u64,
    attempt: u32,
    jobs: &[(u64, &str, &str, &str)],
) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs/{run_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": run_id, "status": "completed", "conclusion": "failure", "run_attempt": attempt,
            "updated_at": "2026-11-23T10:04:00Z"
        })))
        .mount(gh)
        .await;
    let list: Vec<Value> = jobs
        .iter()
        .map(|(id, name, conclusion, _)| json!({"id": id, "run_id": run_id, "run_attempt": attempt, "name": name, "status": "completed", "conclusion": conclusion}))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run_id}/attempts/{attempt}/jobs"
        )))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": list.len(), "jobs": list})),
        )
        .mount(gh)
        .await;
    for (id, _, _, log) in jobs {
        // As documented: 302 to a short-lived download URL on another path.
        Mock::given(method("GET"))
            .and(path(format!("/repos/{REPO}/actions/jobs/{id}/logs")))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("Location", format!("{}/blob/logs/{id}.txt", gh.uri())),
            )
            .mount(gh)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/blob/logs/{id}.txt")))
            .respond_with(ResponseTemplate::new(200).set_body_string(*log))
            .mount(gh)
            .await;
    }
}

pub const TRANSIENT_LOG: &str = "2026-11-23T10:01:00.0000000Z ##[group]Run cargo fetch\n\
2026-11-23T10:01:01.0000000Z     Updating crates.io index\n\
2026-11-23T10:01:31.0000000Z error: failed to download from `https://static.crates.io/crates/serde/serde-1.0.0.crate`\n\
2026-11-23T10:01:31.0000000Z Caused by:\n\
2026-11-23T10:01:31.0000000Z   [56] Failure when receiving data from the peer (Connection reset by peer)\n\
2026-11-23T10:01:32.0000000Z ##[error]Process completed with exit code 101.\n";

pub const COMPILE_LOG: &str = "2026-11-23T10:01:00.0000000Z ##[group]Run cargo build --locked\n\
2026-11-23T10:01:20.0000000Z    Compiling app v0.1.0 (/home/runner/work/app)\n\
2026-11-23T10:01:21.0000000Z error[E0308]: mismatched types\n\
2026-11-23T10:01:21.0000000Z  --> src/main.rs:4:18\n\
2026-11-23T10:01:21.0000000Z   |\n\
2026-11-23T10:01:21.0000000Z 4 |     let x: u32 = \"five\";\n\
2026-11-23T10:01:21.0000000Z   |            ---   ^^^^^^ expected `u32`, found `&str`\n\
2026-11-23T10:01:21.0000000Z error: could not compile `app` (bin \"app\") due to 1 previous error\n\
2026-11-23T10:01:22.0000000Z ##[error]Process completed with exit code 101.\n";

/// Calls the app's API with an optional raw body (sent as JSON); the status and the answer,
/// `Null` when the answer is not JSON.
pub async fn api_call(
    app: &TestApp,
    method: reqwest::Method,
    p: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{p}", app.base))
        .bearer_auth(&app.token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A `cargo test` log in which one test fails its assertion.
pub fn failing_test_log(test: &str) -> String {
    let t = "2026-11-23T10:01:00.0000000Z";
    format!(
        "{t} ##[group]Run cargo test\n{t} running 2 tests\n{t} test api::lists ... ok\n\
         {t} test {test} ... FAILED\n{t} \n{t} failures:\n{t} \n{t} ---- {test} stdout ----\n\
         {t} thread '{test}' panicked at 'assertion failed: done', src/api.rs:9:9\n{t} \n\
         {t} failures:\n{t}     {test}\n{t} \n\
         {t} test result: FAILED. 1 passed; 1 failed; 0 ignored\n\
         {t} error: test failed, to rerun pass `--lib`\n\
         {t} ##[error]Process completed with exit code 101.\n"
    )
}

/// The app's `/metrics` exposition.
pub async fn metrics_text(app: &TestApp) -> String {
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}
