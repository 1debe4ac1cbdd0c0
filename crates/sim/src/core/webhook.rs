//! Webhook deliveries: built by each platform, sent in order by one background task, and kept
//! with the answer they got.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, Notify};

/// Where deliveries go: pipeguard's intake URL and the secret it checks (the HMAC key for
/// GitHub and CircleCI, the token for GitLab and Jenkins).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
}

impl WebhookTarget {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> WebhookTarget {
        WebhookTarget {
            url: url.into(),
            secret: secret.into(),
        }
    }
}

/// One delivery as built by a platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event name (`workflow_job`, `Pipeline Hook`, `job-completed`, `COMPLETED`…).
    pub event: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A delivery and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentDelivery {
    pub delivery: Delivery,
    /// The receiver's HTTP status; `None` when it was not sent (no target, or an error).
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// `<hex HMAC-SHA256 of body>` with `secret` as key.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Delivery>,
    pub(crate) sent: Arc<Mutex<Vec<SentDelivery>>>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Outbox {
    /// Starts the sender; without a target, deliveries are only recorded.
    pub(crate) fn start(target: Option<WebhookTarget>) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let (log, count, done) = (sent.clone(), pending.clone(), drained.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client builds");
            while let Some(d) = rx.recv().await {
                let (status, error) = match &target {
                    None => (None, Some("no webhook target configured".to_string())),
                    Some(t) => post(&http, &t.url, &d).await,
                };
                log.lock().await.push(SentDelivery {
                    delivery: d,
                    status,
                    error,
                });
                if count.fetch_sub(1, Ordering::SeqCst) == 1 {
                    done.notify_waiters();
                }
            }
        });
        Outbox {
            tx,
            sent,
            pending,
            drained,
        }
    }

    pub(crate) fn send(&self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            self.pending.fetch_add(1, Ordering::SeqCst);
            // The receiver lives as long as the sender task, which never stops first.
            let _ = self.tx.send(d);
        }
    }

    /// Waits until every delivery handed over so far was sent (or failed).
    pub(crate) async fn drained(&self) {
        loop {
            let wait = self.drained.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            wait.await;
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, d: &Delivery) -> (Option<u16>, Option<String>) {
    let mut req = http.post(url).body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) => (Some(r.status().as_u16()), None),
        Err(e) => {
            tracing::warn!(event = %d.event, "webhook delivery failed: {e}");
            (None, Some(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_githubs_documented_vector() {
        assert_eq!(
            hmac_hex("It's a Secret to Everybody", b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
