//! A webhook receiver on 127.0.0.1 for the tests: keeps every delivery's headers and body.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(g): State<Arc<Mutex<Vec<Received>>>>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        g.lock().await.push(Received { headers, body });
                        StatusCode::ACCEPTED
                    },
                ),
            )
            .with_state(got.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver { url, got }
    }

    /// Waits until `f` holds on what arrived (at most 5 s).
    pub async fn wait(&self, f: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..2500 {
            let got = self.got.lock().await.clone();
            if f(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the expected deliveries did not arrive");
    }
}

pub const WAIT: Duration = Duration::from_secs(5);
