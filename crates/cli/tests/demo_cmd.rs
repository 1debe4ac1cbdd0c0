//! `pipeguard demo` as a newcomer runs it: the real binary, its own simulators and database;
//! within 90 s its API shows healed, escalated and awaiting-approval sessions of several
//! categories.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the demo however the test ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo in an empty directory; returns it and the token it printed.
fn start(dir: &std::path::Path, port: u16, extra: &[&str]) -> (Demo, String) {
    let mut child = bin(dir)
        .args([
            "demo",
            "--no-open",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    // Keeps reading so the demo never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.strip_prefix("token: ") {
                let _ = tx.send(t.trim().to_string());
            }
        }
    });
    let token = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo prints a `token: …` line");
    (demo, token)
}

/// [`start`] off the async runtime's threads.
async fn launch(
    dir: &std::path::Path,
    port: u16,
    extra: &'static [&'static str],
) -> (Demo, String) {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || start(&d, port, extra))
        .await
        .unwrap()
}

/// One page of the demo's session list, newest first.
async fn sessions(http: &reqwest::Client, port: u16, token: &str) -> Value {
    http.get(format!("http://127.0.0.1:{port}/api/v1/sessions?limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Status → categories seen, from one page of the session list.
fn outcomes(list: &Value) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut seen = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for s in list["sessions"].as_array().into_iter().flatten() {
        let status = s["status"].as_str().unwrap_or("").to_string();
        let category = s["category"].as_str().unwrap_or("").to_string();
        seen.entry(status).or_default().insert(category);
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_shows_every_outcome_within_ninety_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut demo, token) = launch(dir.path(), port, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the dashboard is served");
    let anonymous = http
        .get(format!("{base}/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the API needs the printed token");

    let started = Instant::now();
    let wanted = ["healed", "escalated", "awaiting_approval"];
    let last = loop {
        let last = outcomes(&sessions(&http, port, &token).await);
        let categories: BTreeSet<&String> = last
            .iter()
            .filter(|(status, _)| wanted.contains(&status.as_str()))
            .flat_map(|(_, c)| c)
            .collect();
        if wanted.iter().all(|w| last.contains_key(*w)) && categories.len() >= 4 {
            break last;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "after 90 s the demo shows only {last:?}"
        );
        assert!(demo.0.try_wait().unwrap().is_none(), "the demo exited");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "all three outcomes after {:.1} s: {last:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !dir.path().join("pipeguard.db").exists(),
        "the demo's database is temporary, not ./pipeguard.db"
    );
    // Ctrl-C: the server stops and the demo exits 0.
    // SAFETY: signalling the child this test started and still owns.
    unsafe { libc::kill(demo.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the demo ignored Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
}

/// The sessions of `repository`'s statuses, from one page of the list.
fn statuses(list: &Value, repository: &str) -> Vec<String> {
    list["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["repository"] == repository)
        .map(|s| s["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// docs/demo.md: the registry timeout of acme/shop heals in every round without a person
/// (no round runs it on a `release` branch), while the acme/payments deploy waits.
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_timeout_heals_in_every_round_and_only_the_deploy_waits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_demo, token) = launch(dir.path(), port, &["--every", "5"]).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let list = sessions(&http, port, &token).await;
        let shop = statuses(&list, "acme/shop");
        assert!(
            !shop.iter().any(|s| s == "awaiting_approval"),
            "a registry timeout waits for approval: {shop:?}"
        );
        let deploys = statuses(&list, "acme/payments");
        let healed = shop.iter().filter(|s| *s == "healed").count();
        // Three rounds: the third is the one that ran on `release` before.
        if healed >= 3 && deploys.iter().any(|s| s == "awaiting_approval") {
            assert!(
                deploys
                    .iter()
                    .all(|s| s == "awaiting_approval" || s == "received" || s == "analyzing"),
                "the deploy always waits for a person: {deploys:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "after 120 s: acme/shop {shop:?}, acme/payments {deploys:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A taken port stops the demo at once with a message that names --listen.
#[test]
fn a_taken_port_is_refused_with_a_hint_to_use_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin(dir.path())
        .args([
            "demo",
            "--no-open",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo kept running on a taken port");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("127.0.0.1:{port} is already in use"))
            && said.contains(&format!("pipeguard demo --listen 127.0.0.1:{}", port + 1)),
        "{said}"
    );
    assert!(!said.contains("token:"), "nothing started: {said}");
    drop(taken);
}
