//! What a newcomer trips over: no server running, a directory instead of a file, a terminal
//! instead of a pipe, a pipe closed early, logs and progress in files or on terminals.

mod common;

use common::*;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A pseudo-terminal: (the side the test reads and writes, the side the child gets).
fn pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors that we own from here on.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are not owned elsewhere.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Everything the terminal showed until the child closed it.
fn drain(mut master: File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Linux answers EIO once no process holds the other side any more.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn api_commands_without_a_server_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        vec!["report", "--url", &url],
        vec!["flaky", "--url", &url],
        vec!["verdict", "s-1", "--category", "network", "--url", &url],
    ] {
        let out = bin(dir.path()).args(&args).output().unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(
            t.contains(&format!("cannot reach a pipeguard server at {url}")),
            "{t}"
        );
        assert!(t.contains("pipeguard serve") && t.contains("--url"), "{t}");
        assert!(!t.contains("panicked") && !t.contains("backtrace"), "{t}");
    }
}

#[test]
fn analyze_names_a_directory_and_says_it_reads_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = bin(dir.path()).args(["analyze", "logs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("logs is a directory") && t.contains("pipeguard eval logs"),
        "{t}"
    );

    let (mut master, slave) = pty();
    let mut child = bin(dir.path())
        .args(["analyze", "--format", "json"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut hint = String::new();
    err.read_line(&mut hint).unwrap();
    assert!(hint.contains("reads a log from standard input"), "{hint}");
    // A line typed at the terminal, then Ctrl-D.
    master.write_all(b"npm ERR! code ECONNRESET\n\x04").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"category\""));

    // From a pipe there is no hint.
    let mut piped = bin(dir.path())
        .arg("analyze")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped.stdin.take().unwrap().write_all(b"ok\n").unwrap();
    let out = piped.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("standard input"));
}

#[test]
fn read_only_commands_create_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path()).arg("hosts").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no hosts yet"), "{}", text(&out));
    let json = bin(dir.path())
        .args(["hosts", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), "[]");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[healing]\nmax_attempts = 1\n").unwrap();
    let out = bin(dir.path())
        .args(["backtest", "--policy", "policy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert!(!dir.path().join("pipeguard.db").exists());
}

#[test]
fn simulate_alone_replays_the_built_in_trace_and_mentions_generate() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path()).arg("simulate").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out);
    assert!(
        t.contains("--trace FILE") && t.contains("--generate N"),
        "{t}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Megabytes of output: far more than a pipe holds, so writes hit the closed end.
    let mut child = bin(dir.path())
        .args(["simulate", "--generate", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(101), "no panic exit");
}

#[test]
fn logs_have_no_colour_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin(dir.path())
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "PIPEGUARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("p.db").display()),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("pipeguard listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("pipeguard listening"), "{seen}");
    assert!(!seen.contains('\x1b'), "escape codes in a pipe: {seen:?}");
}

/// A labeled set of `n` logs for `eval`.
fn labeled_logs(dir: &Path, n: usize) {
    for i in 0..n {
        let case = dir.join("set").join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(
            case.join("log.txt"),
            "curl: (56) Recv failure: Connection reset by peer\n",
        )
        .unwrap();
        std::fs::write(case.join("label.json"), r#"{"category": "network"}"#).unwrap();
    }
}

#[test]
fn progress_goes_to_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("labeled");
    labeled_logs(&logs, 3);
    let piped = bin(dir.path()).args(["eval", "labeled"]).output().unwrap();
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("analyzing logs"));

    let (master, slave) = pty();
    let child = bin(dir.path())
        .args(["eval", "labeled"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let shown = drain(master);
    assert!(shown.contains("analyzing logs 3/3"), "{shown:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("analyzing logs"),
        "progress never goes to stdout"
    );
}

/// `pipeguard hosts` warns about a host about to run out of disk and writes the cleanup
/// playbook offered for it; a healthy host gets no warning.
#[test]
fn hosts_warns_before_a_disk_fills_up_and_offers_the_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pipeguard.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = pipeguard_store::Store::connect(&url).await.unwrap();
        for (name, free, total) in [("db-2", 2_048, 40_952), ("web-1", 30_000, 40_000)] {
            let facts = serde_json::json!({"os_family": "Debian", "pkg_mgr": "apt",
                "service_mgr": "systemd", "disk_free_mb": free, "disk_total_mb": total,
                "memfree_mb": 900, "memtotal_mb": 2000});
            let mut h = pipeguard_store::hosts::HostRecord {
                name: name.into(),
                facts: facts.clone(),
                source: "ansible".into(),
                ..Default::default()
            };
            h.disk_free_mb = Some(free);
            h.disk_total_mb = Some(total);
            store.upsert_host(&h).await.unwrap();
        }
        store.close().await;
    });
    let out = bin(dir.path())
        .args(["hosts", "--cleanup-playbook", "cleanup.yml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("WARNING db-2: disk / 2048 of 40952 MB free (5.0%)"),
        "{t}"
    );
    assert!(!t.contains("WARNING web-1"), "{t}");
    let yml = std::fs::read_to_string(dir.path().join("cleanup.yml")).unwrap();
    assert!(
        yml.contains("hosts: \"db-2\"") && yml.contains("apt-get"),
        "{yml}"
    );
    assert!(!yml.contains("web-1"), "{yml}");
}
