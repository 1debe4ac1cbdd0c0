//! What a newcomer sees from the real binary: `serve`'s start-up lines (warnings only for the
//! platforms in use, where to log in, the command that makes the first token) and one clear
//! line, within seconds, when the database URL is wrong.

mod common;
#[path = "../../../tests/support/require.rs"]
mod require;

use common::{bin, free_port};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[github]
token = "ghs_example"

[gitlab]
webhook_secret = "gl-secret"
"#;

/// `serve` in `dir` until its start-up lines are out: everything it wrote to stderr up to the
/// first line containing `until`, then SIGTERM.
fn serve_until(dir: &Path, port: u16, until: &str) -> Vec<String> {
    let mut child = bin(dir)
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = vec![];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.contains(until)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                stop(&mut child);
                panic!("no line with {until:?} within 30 s: {lines:#?}");
            }
        }
    }
    stop(&mut child);
    lines
}

fn stop(child: &mut Child) {
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
}

#[test]
fn serve_warns_about_configured_platforms_only_and_says_how_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeguard.toml"), CONFIG).unwrap();
    let port = free_port();
    let lines = serve_until(dir.path(), port, "no API token yet");
    let text = lines.join("\n");
    // GitHub has a token and no secret: warned. GitLab has its secret: quiet. The nine
    // platforms nobody configured: not a word.
    let secret_warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("_WEBHOOK_SECRET is not set"))
        .collect();
    assert_eq!(secret_warnings.len(), 1, "{text}");
    assert!(secret_warnings[0].contains("PIPEGUARD_GITHUB_WEBHOOK_SECRET"));
    for other in ["GITLAB", "JENKINS", "CIRCLECI", "BUILDBOT", "ANSIBLE"] {
        assert!(!text.contains(&format!("PIPEGUARD_{other}_")), "{text}");
    }
    assert!(
        text.contains(&format!("dashboard: http://127.0.0.1:{port}/")),
        "{text}"
    );

    // The hint's command, run as printed beside the same pipeguard.toml, makes the token...
    let hint = lines
        .iter()
        .find(|l| l.contains("no API token yet"))
        .unwrap();
    let command = hint.split('`').nth(1).expect("a command in backticks");
    assert_eq!(command, "pipeguard token create --role admin --name you");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = bin(dir.path()).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", common::text(&out));

    // ...after which the next start no longer asks for one.
    let lines = serve_until(dir.path(), port, "dashboard: ");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !lines.iter().any(|l| l.contains("no API token yet")),
        "{lines:#?}"
    );
}

/// `serve` with `url` exits non-zero within 10 s, its whole stderr one line naming `cause`
/// and the URL without its password.
fn fails_fast(url: &str, shown_url: &str, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = bin(dir.path())
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("PIPEGUARD_DATABASE_URL", url)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{url}: {stderr}");
    assert!(took < Duration::from_secs(10), "{url}: took {took:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{url}: {stderr}");
    let expected = format!("pipeguard: error: cannot open database {shown_url}: {cause}");
    assert!(stderr.starts_with(&expected), "{url}: {stderr}");
    assert!(!stderr.contains("hunter2"), "password shown: {stderr}");
}

#[test]
fn a_file_that_is_not_a_database_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.db");
    std::fs::write(&file, "these are notes, not a database\n".repeat(200)).unwrap();
    let url = format!("sqlite://{}", file.display());
    fails_fast(&url, &url, "not a database file");
}

#[test]
fn a_closed_port_is_connection_refused_without_the_password() {
    let port = free_port();
    fails_fast(
        &format!("postgres://pipeguard:hunter2@127.0.0.1:{port}/pipeguard"),
        &format!("postgres://pipeguard:***@127.0.0.1:{port}/pipeguard"),
        "connection refused",
    );
}

#[test]
fn a_server_that_never_answers_is_given_up_on_within_10_s() {
    // The kernel completes connections to a listening socket nobody reads from: the start-up
    // message goes unanswered, as with a stuck server or a firewall that drops packets.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    fails_fast(
        &format!("postgres://pipeguard:hunter2@127.0.0.1:{port}/pipeguard"),
        &format!("postgres://pipeguard:***@127.0.0.1:{port}/pipeguard"),
        "no answer within 8 s",
    );
}

/// PostgreSQL at 127.0.0.1:5432 (trust authentication) answers; without it, a skip (a failure
/// under CI).
fn postgres_listens() -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok();
    require::require("PostgreSQL at 127.0.0.1:5432", up.then_some(())).is_some()
}

#[test]
fn a_missing_postgres_database_or_user_is_named() {
    if !postgres_listens() {
        return;
    }
    fails_fast(
        "postgres://postgres:hunter2@127.0.0.1:5432/no_such_pipeguard_db",
        "postgres://postgres:***@127.0.0.1:5432/no_such_pipeguard_db",
        "database does not exist",
    );
    fails_fast(
        "postgres://no_such_pipeguard_user:hunter2@127.0.0.1:5432/postgres",
        "postgres://no_such_pipeguard_user:***@127.0.0.1:5432/postgres",
        "authentication failed",
    );
}
