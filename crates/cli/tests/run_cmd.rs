//! `pipeguard run` against real child processes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pipeguard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    c.env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0.05");
    c
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    pipeguard().args(args).output().unwrap()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn transient_failure_is_retried_once_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("failed-once");
    let s = script(
        dir.path(),
        "flaky.sh",
        &format!(
            "if [ ! -e {m} ]; then touch {m}; echo 'fetching deps'; echo 'curl: (56) Recv failure: Connection reset by peer' >&2; exit 56; fi\necho 'all good'",
            m = marker.display()
        ),
    );
    let json = dir.path().join("report.json");
    let out = run(&[
        "run",
        "--json-file",
        json.to_str().unwrap(),
        "--",
        s.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fetching deps\nall good\n"
    );
    let r = report(&json);
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["exit_code"], 56);
    assert_eq!(attempts[0]["decision"], "retry");
    assert_eq!(attempts[0]["diagnosis"]["category"], "network");
    assert_eq!(attempts[1]["exit_code"], 0);
    assert_eq!(r["healed"], true);
}

#[test]
fn compile_error_is_not_retried_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let s = script(
        dir.path(),
        "build.sh",
        &format!(
            "echo x >> {c}\necho 'error[E0425]: cannot find value `foo` in this scope' >&2\necho ' --> src/main.rs:2:5' >&2\nexit 101",
            c = count.display()
        ),
    );
    let json = dir.path().join("report.json");
    let out = run(&[
        "run",
        "--json-file",
        json.to_str().unwrap(),
        "--",
        s.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[E0425]"),
        "child stderr passed through: {stderr}"
    );
    assert!(
        stderr.contains("pipeguard: gave up after 1 attempt"),
        "{stderr}"
    );
    assert!(stderr.contains("compilation_error"), "{stderr}");
    let r = report(&json);
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(r["attempts"][0]["decision"], "gave_up");
    assert_eq!(r["exit_code"], 101);
}

#[test]
fn retries_stop_at_max_retries_with_the_last_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let s = script(
        dir.path(),
        "down.sh",
        &format!(
            "echo x >> {c}\nn=$(wc -l < {c})\necho 'HTTP 503 Service Unavailable' >&2\nexit $((10 + n))",
            c = count.display()
        ),
    );
    let out = run(&["run", "--max-retries", "3", "--", s.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 4);
    assert_eq!(out.status.code(), Some(14), "the last attempt's exit code");
    let out = run(&["run", "--max-retries", "0", "--", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(15));
}

#[test]
fn plain_exit_codes_pass_through() {
    for code in [0, 1, 3, 77, 255] {
        let out = run(&["run", "--", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.status.code(), Some(code));
    }
}

#[test]
fn output_is_passed_through_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let f = dir.path().join("blob");
    std::fs::write(&f, &data).unwrap();
    let out = run(&["run", "--", "cat", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout == data,
        "stdout differs ({} bytes vs {})",
        out.stdout.len(),
        data.len()
    );
    assert!(out.stderr.is_empty());

    let out = run(&[
        "run",
        "--",
        "sh",
        "-c",
        "printf 'no newline'; printf 'err\\r\\n' >&2",
    ]);
    assert_eq!(out.stdout, b"no newline");
    assert_eq!(out.stderr, b"err\r\n");
}

#[test]
fn signal_death_is_128_plus_signal() {
    let out = run(&["run", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn missing_program_is_127_and_not_retried() {
    let out = run(&["run", "--", "/nonexistent/pipeguard-test-binary"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}

#[test]
fn sigterm_is_forwarded_to_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let s = script(
        dir.path(),
        "wait.sh",
        &format!(
            "trap 'echo got-term; exit 42' TERM\ntouch {r}\nwhile true; do sleep 0.05; done",
            r = ready.display()
        ),
    );
    let mut child = pipeguard()
        .args(["run", "--", s.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "child never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(42), "stdout: {stdout}");
    assert!(stdout.contains("got-term"));
}

#[test]
fn bad_arguments_are_rejected_clearly() {
    let out = run(&["run"]);
    assert_ne!(out.status.code(), Some(0));
    let out = run(&["run", "--backoff-seconds", "-1", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backoff"));
}
