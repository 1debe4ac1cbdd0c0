//! `pipeguard mcp` as an agent launches it: a plain JSON-RPC exchange over its stdin and
//! stdout (initialize, tools/list, tools/call) against a `pipeguard serve` process, with a
//! viewer token — so the retry tool is neither listed nor callable.

mod common;

use common::{bin, free_port, text};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token(dir: &std::path::Path, db: &str, role: &str, name: &str) -> String {
    let out = bin(dir)
        .args(["token", "create", "--role", role, "--name", name])
        .env("PIPEGUARD_DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_healthy(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
            let mut first = String::new();
            let _ = BufReader::new(s).read_line(&mut first);
            if first.contains(" 200 ") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not become healthy");
}

fn send(stdin: &mut ChildStdin, v: Value) {
    writeln!(stdin, "{v}").unwrap();
    stdin.flush().unwrap();
}

/// The next message with `id`, skipping notifications.
fn answer(out: &mut BufReader<ChildStdout>, id: i64) -> Value {
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "pipeguard mcp closed stdout"
        );
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["id"] == id {
            return v;
        }
    }
}

#[test]
fn an_agent_speaks_json_rpc_to_pipeguard_mcp_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pg.db").display());
    let port = free_port();
    let server = bin(dir.path())
        .arg("serve")
        .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("PIPEGUARD_DATABASE_URL", &db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    wait_healthy(port);
    let reader = token(dir.path(), &db, "viewer", "reader");

    let child = bin(dir.path())
        .args(["mcp", "--server", &format!("http://127.0.0.1:{port}")])
        .env("PIPEGUARD_TOKEN", &reader)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut mcp = Killed(child);
    let mut stdin = mcp.0.stdin.take().unwrap();
    let mut out = BufReader::new(mcp.0.stdout.take().unwrap());

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "shell", "version": "1"}}}),
    );
    let init = answer(&mut out, 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "pipeguard", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    let list = answer(&mut out, 2);
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "explain_failure",
            "get_diagnosis",
            "list_failures",
            "list_flaky_tests"
        ]
    );

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "list_failures", "arguments": {"limit": 5}}}),
    );
    let r = answer(&mut out, 3);
    assert_eq!(
        r["result"]["structuredContent"],
        json!({"failures": []}),
        "{r}"
    );
    assert_ne!(r["result"]["isError"], true);

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "request_retry", "arguments": {"session": "x", "reason": "y"}}}),
    );
    let r = answer(&mut out, 4);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["error"], "forbidden",
        "{r}"
    );

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "get_diagnosis", "arguments": {}}}),
    );
    let r = answer(&mut out, 5);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["structuredContent"]["message"]
            .as_str()
            .unwrap()
            .contains("session"),
        "{r}"
    );
    drop(stdin);
    let status = mcp.0.wait().unwrap();
    assert!(
        status.success(),
        "pipeguard mcp ends when the agent closes stdin"
    );
}

#[test]
fn without_a_token_or_with_a_wrong_one_pipeguard_mcp_says_so_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(["mcp", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("PIPEGUARD_TOKEN"), "{}", text(&out));
    let out = bin(dir.path())
        .args(["mcp", "--server", "http://127.0.0.1:9"])
        .env("PIPEGUARD_TOKEN", "pg_x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot reach"), "{}", text(&out));
}
