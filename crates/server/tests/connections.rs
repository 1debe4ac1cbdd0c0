//! Connections below HTTP, with raw sockets: silent and idle connections (HTTP/1 and h2c) are
//! closed after `[server] idle_timeout_seconds`, requests in flight are not, slow bodies still
//! get their 408, connections beyond `max_connections` are closed at once, and hyper's own
//! answers to unparseable requests carry the JSON error body.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// [`until_closed`] on a new connection.
async fn exchange(app: &TestApp, bytes: &[u8], limit: Duration) -> (String, Duration) {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    until_closed(&mut s, bytes, limit).await
}

/// Writes `bytes`, then reads until the server closes; panics after `limit`. Returns what was
/// read and when the connection ended.
async fn until_closed(s: &mut TcpStream, bytes: &[u8], limit: Duration) -> (String, Duration) {
    let t = Instant::now();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        // A reset after the server closed is an end too.
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "still open after {limit:?}");
    (String::from_utf8_lossy(&buf).into_owned(), t.elapsed())
}

async fn short_idle() -> TestApp {
    TestApp::start_with(|c| {
        c.server.idle_timeout_seconds = 2;
        c.api.request_timeout_seconds = 4;
    })
    .await
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let app = short_idle().await;
    // A TCP connection that sends nothing.
    let (_, took) = exchange(&app, b"", Duration::from_secs(8)).await;
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );
    // An h2c connection that sends its preface and nothing more.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let (_, took) = exchange(&app, preface, Duration::from_secs(8)).await;
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );
    // The preface and an empty SETTINGS frame: a well-formed HTTP/2 connection, idle.
    let mut hello = preface.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    exchange(&app, &hello, Duration::from_secs(8)).await;
    // HTTP/1.1 keep-alive after an answered request.
    let (answer, _) = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn requests_in_flight_are_not_idle_and_slow_bodies_get_408() {
    let app = short_idle().await;
    // A body dribbled over 3 s (longer than the idle timeout) is read and answered.
    let report = br#"{"playbook":"site.yml","host":"web-1","task":"t","msg":"boom","rc":1}"#;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /webhooks/ansible HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        report.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for part in report.chunks(report.len() / 3 + 1) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.write_all(part).await.unwrap();
    }
    let (answer, _) = until_closed(&mut s, b"", Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    // A body that never comes: 408 with the JSON error at the request timeout (4 s), not a
    // closed connection at the idle timeout (2 s).
    let head = b"POST /webhooks/ansible HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                 content-length: 100\r\n\r\n{\"play";
    let (answer, took) = exchange(&app, head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(took >= Duration::from_millis(3500), "{took:?}");
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let app = TestApp::start_with(|c| c.server.max_connections = 2).await;
    // The start-up probe's connection closes with its client; give the server a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = TcpStream::connect(addr(&app)).await.unwrap();
    let _second = TcpStream::connect(addr(&app)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (answer, took) = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.is_empty(), "{answer}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A slot freed is a slot taken again.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (answer, _) = exchange(
        &app,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("pipeguard_connections_refused_total 1"),
        "{answer}"
    );
    assert!(answer.contains("pipeguard_connections_open 2"), "{answer}");
    app.stop().await;
}

/// The JSON body of a raw answer.
fn json_body(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect(answer);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn answers_to_unparseable_requests_are_json() {
    let app = TestApp::start().await;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"GARBAGE\x01 LINE\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
            "bad_request",
        ),
        (
            {
                let mut r = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
                for i in 0..2000 {
                    r.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
                }
                r.extend_from_slice(b"\r\n");
                r
            },
            "HTTP/1.1 431 ",
            "request_header_fields_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let (answer, _) = exchange(&app, &request, Duration::from_secs(5)).await;
        assert!(answer.starts_with(status), "{answer}");
        let v = json_body(&answer);
        assert_eq!(v["error"], code, "{answer}");
        assert!(v["message"].is_string(), "{answer}");
    }
    app.stop().await;
}
