//! An in-process OpenAI-compatible endpoint with scripted answers that records every request.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use pipeguard_llm::LlmConfig;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Clone)]
pub enum Scripted {
    /// 200 with this message content (and `usage.total_tokens`).
    Content(String, u64),
    /// 200 with `message.refusal` set.
    Refusal(String),
    /// Any status and body.
    Raw(u16, String),
    /// Answer after a delay.
    Delayed(Duration, Box<Scripted>),
}

/// A request as the endpoint received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub raw: String,
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Clone, Default)]
struct Shared {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub struct FakeModel {
    pub url: String,
    shared: Shared,
}

impl FakeModel {
    pub async fn start(script: Vec<Scripted>) -> FakeModel {
        let shared = Shared {
            script: Arc::new(Mutex::new(script.into())),
            ..Shared::default()
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeModel {
            url: format!("http://{addr}/v1"),
            shared,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// A configuration pointing at this endpoint, with a 1 s deadline.
    pub fn config(&self) -> LlmConfig {
        LlmConfig {
            url: Some(self.url.clone()),
            model: Some("test-model".into()),
            api_key: Some("sk-test-key-for-the-fake".into()),
            timeout_seconds: 1,
            ..LlmConfig::default()
        }
    }
}

async fn answer(State(st): State<Shared>, headers: HeaderMap, raw: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&raw).into_owned();
    st.requests.lock().unwrap().push(Recorded {
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let next = st.script.lock().unwrap().pop_front();
    match next {
        Some(s) => respond(s).await,
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no scripted answer left").into_response(),
    }
}

async fn respond(s: Scripted) -> Response {
    let mut s = s;
    while let Scripted::Delayed(d, inner) = s {
        tokio::time::sleep(d).await;
        s = *inner;
    }
    match s {
        Scripted::Content(content, tokens) => axum::Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens / 2, "total_tokens": tokens},
        }))
        .into_response(),
        Scripted::Refusal(text) => axum::Json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": text}, "finish_reason": "stop"}],
            "usage": {"total_tokens": 20},
        }))
        .into_response(),
        Scripted::Raw(status, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Scripted::Delayed(..) => unreachable!("unwrapped above"),
    }
}

/// A valid answer with these fix commands.
pub fn answer_with_fixes(category: &str, fixes: &[&str]) -> String {
    json!({
        "category": category,
        "root_cause": "The job could not reach registry.example.org: DNS resolution failed on the runner.",
        "confidence": 0.8,
        "diagnostic_commands": ["getent hosts registry.example.org"],
        "fix_commands": fixes,
        "verification_commands": ["curl -sSfI https://registry.example.org/"],
        "rollback_commands": [],
    })
    .to_string()
}
