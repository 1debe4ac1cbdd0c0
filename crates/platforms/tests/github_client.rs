//! The GitHub client against a mock of the Actions API that refuses any request without the
//! token: reads, dispatches and cache deletions carry it; job and cache lists are read past
//! their first page; a 502 is tried again only after the backoff.

use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::github::GithubClient;
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::{Ci, RunState};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{any, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "ghs_client_test";
const RUN: &str = "/repos/o/r/actions/runs/7";

/// A mock API where only requests with the token reach the mounted answers.
async fn api() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Requires authentication"})),
        )
        .with_priority(u8::MAX)
        .mount(&s)
        .await;
    s
}

fn authed(m: &str, p: impl Into<String>) -> wiremock::MockBuilder {
    Mock::given(method(m))
        .and(path(p.into()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
}

fn client(s: &MockServer, opts: HttpOptions) -> GithubClient {
    let section = Section {
        api_url: s.uri(),
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    GithubClient::new(&section, &opts)
}

fn quick() -> HttpOptions {
    HttpOptions {
        tries: 1,
        ..Default::default()
    }
}

fn event() -> FailureEvent {
    FailureEvent {
        repository: "o/r".into(),
        run_id: "7".into(),
        attempt: 1,
        branch: Some("main".into()),
        ..Default::default()
    }
}

fn job(id: u64, conclusion: &str) -> Value {
    json!({"id": id, "name": format!("job-{id}"), "conclusion": conclusion})
}

#[tokio::test]
async fn failed_jobs_are_found_on_every_page_and_their_logs_read_with_the_token() {
    let s = api().await;
    let jobs = format!("{RUN}/attempts/1/jobs");
    // 120 jobs: a failure on each page.
    let first: Vec<Value> = (1..=100)
        .map(|i| job(i, if i == 5 { "failure" } else { "success" }))
        .collect();
    let second: Vec<Value> = (101..=120)
        .map(|i| job(i, if i == 117 { "timed_out" } else { "success" }))
        .collect();
    for (page, list) in [("1", first), ("2", second)] {
        authed("GET", &jobs)
            .and(query_param("page", page))
            .and(query_param("per_page", "100"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"total_count": 120, "jobs": list})),
            )
            .expect(1)
            .mount(&s)
            .await;
    }
    for id in [5, 117] {
        authed("GET", format!("/repos/o/r/actions/jobs/{id}/logs"))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!("log of {id}\n")))
            .expect(1)
            .mount(&s)
            .await;
    }
    let logs = client(&s, quick()).failed_logs(&event()).await.unwrap();
    let got: Vec<(&str, String)> = logs
        .iter()
        .map(|l| {
            (
                l.job.name.as_str(),
                String::from_utf8_lossy(&l.log).trim().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("job-5", "log of 5".into()),
            ("job-117", "log of 117".into())
        ]
    );
    s.verify().await;
}

#[tokio::test]
async fn the_run_is_read_with_the_token() {
    let s = api().await;
    authed("GET", RUN)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 7, "status": "completed", "conclusion": "success", "run_attempt": 2,
            "updated_at": "2026-11-23T10:09:00Z"
        })))
        .expect(1)
        .mount(&s)
        .await;
    let state = client(&s, quick()).run_state(&event()).await.unwrap();
    assert!(
        matches!(
            state,
            RunState::Completed {
                attempt: 2,
                success: true,
                ..
            }
        ),
        "{state:?}"
    );
}

#[tokio::test]
async fn caches_of_every_page_are_deleted_with_the_token() {
    let s = api().await;
    let list = "/repos/o/r/actions/caches";
    let cache = |id: u64| json!({"id": id, "key": format!("cargo-{id}")});
    let first: Vec<Value> = (1..=100).map(cache).collect();
    for (page, items) in [("1", first), ("2", vec![cache(101)])] {
        authed("GET", list)
            .and(query_param("ref", "refs/heads/main"))
            .and(query_param("key", "cargo-"))
            .and(query_param("page", page))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total_count": 101, "actions_caches": items})),
            )
            .expect(1)
            .mount(&s)
            .await;
    }
    for id in 1..=101 {
        authed("DELETE", format!("{list}/{id}"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&s)
            .await;
    }
    let done = client(&s, quick())
        .clear_caches(&event(), Some("cargo-"))
        .await
        .unwrap();
    assert!(done.starts_with("deleted 101 cache(s) of main"), "{done}");
    s.verify().await;
}

#[tokio::test]
async fn a_dispatch_carries_the_token_and_the_inputs() {
    let s = api().await;
    authed("POST", "/repos/o/r/actions/workflows/ci.yml/dispatches")
        .and(body_partial_json(
            json!({"ref": "main", "inputs": {"runner": "large"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"workflow_run_id": 99})))
        .expect(1)
        .mount(&s)
        .await;
    let inputs = [("runner".to_string(), "large".to_string())];
    let r = client(&s, quick())
        .rerun_with(&event(), Some("ci.yml"), &inputs)
        .await
        .unwrap();
    assert_eq!(r.new_run_id.as_deref(), Some("99"));
    s.verify().await;
}

/// Answers 502 `failures` times, then the run; remembers when each request came.
struct FlakyRun {
    seen: Arc<Mutex<Vec<Instant>>>,
    failures: usize,
}

impl Respond for FlakyRun {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        if seen.len() <= self.failures {
            return ResponseTemplate::new(502);
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "id": 7, "status": "in_progress", "run_attempt": 1
        }))
    }
}

#[tokio::test]
async fn a_502_is_tried_again_only_after_the_backoff() {
    let s = api().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    authed("GET", RUN)
        .respond_with(FlakyRun {
            seen: seen.clone(),
            failures: 2,
        })
        .mount(&s)
        .await;
    let backoff = Duration::from_millis(200);
    let opts = HttpOptions {
        tries: 3,
        backoff,
        ..Default::default()
    };
    let state = client(&s, opts).run_state(&event()).await.unwrap();
    assert!(
        matches!(state, RunState::InProgress { attempt: 1 }),
        "{state:?}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "two 502s, then the answer");
    // Jitter draws each wait from half the bound up to the bound, and the bound doubles:
    // at least 100 ms, then at least 200 ms. No upper bound: a busy machine is slow.
    let waits: Vec<Duration> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(waits[0] >= backoff / 2, "first retry after {:?}", waits[0]);
    assert!(waits[1] >= backoff, "second retry after {:?}", waits[1]);
}
