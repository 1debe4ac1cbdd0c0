//! The real binary: SIGKILL right after a 202 loses nothing and heals once; SIGTERM exits 0.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::Path;
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
    start_with(port, db, api, &[])
}

fn start_with(port: u16, db: &str, api: &str, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("PIPEGUARD_DATABASE_URL", db)
        .env("PIPEGUARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("PIPEGUARD_GITHUB_TOKEN", "ghs_x")
        .env("PIPEGUARD_GITHUB_API_URL", api)
        .env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
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

/// A fresh PostgreSQL database for one test, dropped at the end. Outside CI an unreachable
/// server skips the test; in CI (where it runs) that is a failure.
struct FreshPostgres {
    admin: String,
    name: String,
    url: String,
}

impl FreshPostgres {
    async fn create() -> Option<FreshPostgres> {
        use sqlx::Connection;
        let admin = std::env::var("PIPEGUARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        let mut conn = match sqlx::AnyConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_err() => {
                eprintln!("skipping: PostgreSQL not reachable at {admin}: {e}");
                return None;
            }
            Err(e) => panic!("PostgreSQL not reachable at {admin}: {e}"),
        };
        let name = format!(
            "pipeguard_test_{}",
            std::process::id() as u64 * 1000 + free_port() as u64
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the admin URL names a database");
        let url = format!("{base}/{name}");
        Some(FreshPostgres { admin, name, url })
    }

    async fn query(&self, sql: &str) -> Vec<sqlx::any::AnyRow> {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }

    async fn drop_database(self) {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.admin).await.unwrap();
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

const REPLICA_RUNS: u64 = 24;

/// Every run of three repositories fails with a transient log; looking a run up takes 2 s, so
/// workers are mid-analysis (holding leases, before any re-run call) when a replica dies.
async fn mount_slow_github(gh: &MockServer) {
    use wiremock::matchers::path_regex;
    let runs = r"^/repos/octo-org/repo-[0-9]/actions/runs/[0-9]+";
    Mock::given(method("GET"))
        .and(path_regex(format!("{runs}$")))
        .respond_with(SlowRun)
        .mount(gh)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!("{runs}/attempts/1/jobs$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"total_count": 1, "jobs": [{"id": 5, "name": "test", "status": "completed", "conclusion": "failure"}]}),
        ))
        .mount(gh)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/repos/octo-org/repo-[0-9]/actions/jobs/5/logs$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(LOG))
        .mount(gh)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(format!("{runs}/rerun-failed-jobs$")))
        .respond_with(ResponseTemplate::new(201))
        .mount(gh)
        .await;
}

/// A completed, failed first attempt of the run the path names, after 2 s.
struct SlowRun;

impl wiremock::Respond for SlowRun {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let id: u64 = req
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        ResponseTemplate::new(200)
            .set_body_json(
                json!({"id": id, "status": "completed", "conclusion": "failure", "run_attempt": 1}),
            )
            .set_delay(Duration::from_secs(2))
    }
}

fn run_body(run: u64) -> String {
    json!({
        "action": "completed",
        "workflow_run": {"id": run, "name": "CI", "run_attempt": 1, "status": "completed",
                         "conclusion": "failure", "head_sha": "abc", "updated_at": "2026-11-23T10:04:00Z"},
        "repository": {"full_name": format!("octo-org/repo-{}", run % 3)}
    })
    .to_string()
}

/// Sends each (delivery id, run) to replica `i % n`; a refused, cut or 5xx delivery goes to
/// the next replica, as a platform redelivers. Returns (run, session id) per delivery.
async fn deliver(bases: &[String], deliveries: Vec<(usize, String, u64)>) -> Vec<(u64, String)> {
    let client = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for (i, id, run) in deliveries {
        let (client, bases) = (client.clone(), bases.to_vec());
        set.spawn(async move {
            let body = run_body(run);
            for k in 0..bases.len() * 3 {
                let sent = client
                    .post(format!("{}/webhooks/github", bases[(i + k) % bases.len()]))
                    .header("content-type", "application/json")
                    .header("x-github-event", "workflow_run")
                    .header("x-github-delivery", &id)
                    .header("x-hub-signature-256", signed(&body))
                    .body(body.clone())
                    .send()
                    .await;
                let Ok(r) = sent else { continue };
                if !r.status().is_success() {
                    continue;
                }
                if let Ok(v) = r.json::<Value>().await {
                    return (
                        run,
                        v["session_id"].as_str().unwrap_or_default().to_string(),
                    );
                }
            }
            panic!("delivery {id} was not accepted by any replica");
        });
    }
    set.join_all().await
}

/// `audit_dir`: the replicas share one audit key and head file, out of the crate's directory.
fn start_replica(port: u16, db: &str, api: &str, audit_dir: &Path) -> Child {
    // Longer than any job here (2 s), so only a dead replica's jobs are taken again.
    let audit_dir = audit_dir.display().to_string();
    start_with(
        port,
        db,
        api,
        &[
            ("PIPEGUARD_WORKER_LEASE_SECONDS", "5"),
            ("PIPEGUARD_AUDIT_DIR", &audit_dir),
        ],
    )
}

/// Three replicas on one PostgreSQL database; every failure is delivered twice (to two
/// replicas) and once more under another id; one replica is SIGKILLed mid-load while its
/// workers hold jobs. Nothing accepted is lost, each run has one session and is re-run
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_survive_a_sigkill_and_rerun_each_failure_once() {
    let Some(pg) = FreshPostgres::create().await else {
        return;
    };
    let gh = MockServer::start().await;
    mount_slow_github(&gh).await;
    let http = admin_client(&pg.url); // also migrates the database
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let audit_dir = tempfile::tempdir().unwrap();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut replicas: Vec<Child> = Vec::new();
    for (port, base) in ports.iter().zip(&bases) {
        replicas.push(start_replica(*port, &pg.url, &gh.uri(), audit_dir.path()));
        wait_healthy(&http, base).await;
    }
    let deliveries: Vec<(usize, String, u64)> = (0..REPLICA_RUNS)
        .flat_map(|r| {
            let run = 9000 + r;
            let i = r as usize;
            [
                (i, format!("d{run}"), run),
                (i + 1, format!("d{run}"), run),
                (i + 2, format!("t{run}"), run),
            ]
        })
        .collect();
    let (first, second) = deliveries.split_at(deliveries.len() / 2);
    let mut answers = deliver(&bases, first.to_vec()).await;
    let rest = tokio::spawn({
        let (bases, second) = (bases.clone(), second.to_vec());
        async move { deliver(&bases, second).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    replicas[0].kill().unwrap(); // SIGKILL, mid-load and mid-analysis
    replicas[0].wait().unwrap();
    answers.extend(rest.await.unwrap());

    let mut session_of_run = std::collections::HashMap::new();
    for (run, session) in answers {
        let first = session_of_run.entry(run).or_insert(session.clone());
        assert_eq!(*first, session, "run {run} was answered with two sessions");
    }
    assert_eq!(session_of_run.len() as u64, REPLICA_RUNS);
    let counts = pg
        .query("SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM deliveries)")
        .await;
    use sqlx::Row;
    assert_eq!(
        (counts[0].get::<i64, _>(0), counts[0].get::<i64, _>(1)),
        (REPLICA_RUNS as i64, 2 * REPLICA_RUNS as i64)
    );

    let mut statuses = Vec::new();
    for _ in 0..600 {
        statuses = pg
            .query("SELECT status FROM sessions WHERE status <> 'verifying'")
            .await;
        if statuses.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<String> = statuses.iter().map(|r| r.get::<String, _>(0)).collect();
    assert!(left.is_empty(), "sessions not re-run: {left:?}");
    let mut reruns = std::collections::HashMap::new();
    for r in gh.received_requests().await.unwrap_or_default() {
        if r.method.as_str() == "POST" {
            *reruns.entry(r.url.path().to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(reruns.len() as u64, REPLICA_RUNS, "{reruns:?}");
    assert!(
        reruns.values().all(|n| *n == 1),
        "re-run more than once: {reruns:?}"
    );

    for mut replica in replicas.into_iter().skip(1) {
        let _ = Command::new("kill")
            .args(["-TERM", &replica.id().to_string()])
            .status();
        assert!(replica.wait().unwrap().success());
    }
    pg.drop_database().await;
}
