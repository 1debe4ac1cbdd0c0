//! `pipeguard flaky`, `flaky quarantine …`, `verdict` and `report` against a real server
//! process: what a user sees, and a non-zero exit with the server's reason on errors.

use serde_json::{json, Value};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pipeguard_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    c.args(args)
        .env_remove("PIPEGUARD_URL")
        .env_remove("PIPEGUARD_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn flaky_quarantine_verdict_and_report_commands() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_pipeguard"))
            .arg("serve")
            .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "PIPEGUARD_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("p.db").display()),
            )
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "server did not start");

    // Tokens come from the CLI, against the same database.
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let db_env = [("PIPEGUARD_DATABASE_URL", db.as_str())];
    let created = pipeguard_with(
        &["token", "create", "--role", "operator", "--name", "cli-op"],
        &db_env,
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_string();
    assert!(token.starts_with("pgt_"), "{token}");
    let listed = stdout(&pipeguard_with(&["token", "list"], &db_env));
    assert!(
        listed.contains("cli-op") && listed.contains("operator"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "a listing never shows the token");
    let pipeguard = |args: &[&str]| pipeguard_with(args, &[("PIPEGUARD_TOKEN", token.as_str())]);
    let anonymous = pipeguard_with(&["flaky", "--server", &base], &[]);
    assert_eq!(anonymous.status.code(), Some(2));
    assert!(
        stderr(&anonymous).contains("401") && stderr(&anonymous).contains("PIPEGUARD_TOKEN"),
        "{}",
        stderr(&anonymous)
    );

    let o = pipeguard(&["flaky", "--server", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "No flaky tests seen.\n");

    let test = "suite::upload resumes #2";
    let o = pipeguard(&[
        "flaky",
        "quarantine",
        "add",
        "--server",
        &base,
        "--repository",
        "o/r",
        "--test",
        test,
        "--reason",
        "races the server",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("races the server"), "{}", stdout(&o));
    let o = pipeguard(&[
        "flaky",
        "quarantine",
        "list",
        "--format",
        "json",
        "--server",
        &base,
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["quarantine"][0]["test"], test);
    let remove = [
        "flaky",
        "quarantine",
        "remove",
        "--server",
        &base,
        "--repository",
        "o/r",
        "--test",
        test,
    ];
    let o = pipeguard(&remove);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no longer quarantined"));
    let o = pipeguard(&remove);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not quarantined"), "{}", stderr(&o));

    // A verdict on a real session, then the errors a user can make.
    let ingest = pipeguard_with(
        &["token", "create", "--role", "ingest", "--name", "reporter"],
        &db_env,
    );
    let ingest = stdout(&ingest).trim().to_string();
    let r: Value = http
        .post(format!("{base}/pipeline/webhook"))
        .bearer_auth(&ingest)
        .json(&json!({"source": "ci", "job_name": "nightly", "build_number": 7,
                      "stage": "test", "error_message": "quuxd: spline reticulation came back empty"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["session_id"].as_str().unwrap().to_string();
    let o = pipeguard(&[
        "verdict",
        &id,
        "--category",
        "network",
        "--note",
        "NIC flaps",
        "--server",
        &base,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("recorded network"), "{}", stdout(&o));
    let o = pipeguard(&["verdict", &id, "--category", "gremlins", "--server", &base]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown category"), "{}", stderr(&o));
    let o = pipeguard(&[
        "verdict",
        "no-such",
        "--category",
        "network",
        "--server",
        &base,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no session no-such"), "{}", stderr(&o));

    let o = pipeguard(&["report", "--server", &base, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdicts"]["count"], 1);
    let o = pipeguard(&["report", "--server", &base]);
    assert!(stdout(&o).contains("Human verdicts: 1"), "{}", stdout(&o));

    // Dead letters: none yet; a session that is not there is the server's 404, by --url too.
    let o = pipeguard(&["retry-dead", "--list", "--url", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "no dead letters\n");
    let o = pipeguard(&["retry-dead", "no-such", "--server", &base]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("404") && stderr(&o).contains("no-such"),
        "{}",
        stderr(&o)
    );

    // A revoked token is refused at once.
    let revoked = pipeguard_with(&["token", "revoke", "cli-op"], &db_env);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let o = pipeguard(&["flaky", "--server", &base]);
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    assert!(!pipeguard_with(&["token", "revoke", "cli-op"], &db_env)
        .status
        .success());

    // Nobody listening: a clear error, not a panic.
    let down = format!("http://127.0.0.1:{}", free_port());
    let o = pipeguard(&["flaky", "--server", &down]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));
}
