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

/// How a platform proves a delivery comes from it, with the target's secret.
#[derive(Debug, Clone, PartialEq)]
pub enum Signing {
    /// `<header>: <prefix><hex HMAC-SHA256 of the body>` (GitHub, CircleCI).
    Hmac {
        header: &'static str,
        prefix: &'static str,
    },
    /// The secret itself in a header (GitLab, Jenkins through pipeguard's header).
    Token { header: &'static str },
    /// The secret in the URL's query (Jenkins' Notification plugin cannot set headers).
    Query { param: &'static str },
}

/// One delivery as built by a platform; the outbox signs it with the target's secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event name (`workflow_job`, `Pipeline Hook`, `job-completed`, `COMPLETED`…).
    pub event: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub signing: Signing,
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
    /// As sent: signed when there was a target.
    pub delivery: Delivery,
    /// Where it went.
    pub url: Option<String>,
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
    target: Arc<Mutex<Option<WebhookTarget>>>,
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
        let target = Arc::new(Mutex::new(target));
        let (log, count, done) = (sent.clone(), pending.clone(), drained.clone());
        let to = target.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client builds");
            while let Some(d) = rx.recv().await {
                let target = to.lock().await.clone();
                let sent = match target {
                    None => SentDelivery {
                        delivery: d,
                        url: None,
                        status: None,
                        error: Some("no webhook target configured".to_string()),
                    },
                    Some(t) => {
                        let (url, d) = sign(&t, d);
                        let (status, error) = post(&http, &url, &d).await;
                        SentDelivery {
                            delivery: d,
                            url: Some(url),
                            status,
                            error,
                        }
                    }
                };
                log.lock().await.push(sent);
                if count.fetch_sub(1, Ordering::SeqCst) == 1 {
                    done.notify_waiters();
                }
            }
        });
        Outbox {
            tx,
            target,
            sent,
            pending,
            drained,
        }
    }

    /// Where later deliveries go (`None`: recorded only).
    pub(crate) async fn set_target(&self, target: Option<WebhookTarget>) {
        *self.target.lock().await = target;
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

/// The URL to post to and the delivery with the target's secret applied.
fn sign(t: &WebhookTarget, mut d: Delivery) -> (String, Delivery) {
    let mut url = t.url.clone();
    match d.signing {
        Signing::Hmac { header, prefix } => {
            let sig = format!("{prefix}{}", hmac_hex(&t.secret, &d.body));
            d.headers.push((header.to_string(), sig));
        }
        Signing::Token { header } => d.headers.push((header.to_string(), t.secret.clone())),
        Signing::Query { param } => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let value: String = form_urlencoded::byte_serialize(t.secret.as_bytes()).collect();
            url = format!("{url}{sep}{param}={value}");
        }
    }
    (url, d)
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
    fn each_signing_uses_the_secret_its_way() {
        let t = WebhookTarget::new("http://127.0.0.1:9/hook?x=1", "s e");
        let d = |signing| Delivery {
            event: "e".into(),
            headers: vec![],
            body: b"Hello, World!".to_vec(),
            signing,
        };
        let (_, hm) = sign(
            &t,
            d(Signing::Hmac {
                header: "sig",
                prefix: "v1=",
            }),
        );
        assert_eq!(
            hm.header("sig"),
            Some(format!("v1={}", hmac_hex("s e", b"Hello, World!")).as_str())
        );
        let (_, tok) = sign(&t, d(Signing::Token { header: "x-token" }));
        assert_eq!(tok.header("X-Token"), Some("s e"));
        let (url, q) = sign(&t, d(Signing::Query { param: "token" }));
        assert_eq!(url, "http://127.0.0.1:9/hook?x=1&token=s+e");
        assert!(q.headers.is_empty());
    }

    #[test]
    fn hmac_matches_githubs_documented_vector() {
        assert_eq!(
            hmac_hex("It's a Secret to Everybody", b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
