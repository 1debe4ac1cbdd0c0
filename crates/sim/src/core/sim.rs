//! A running simulator: its state behind a mutex, the HTTP server on 127.0.0.1, the clock that
//! moves runs on, the outbox of webhook deliveries and the record of every request received.

use super::webhook::{Delivery, Outbox, SentDelivery, WebhookTarget};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A platform's state, moved on by the clock.
pub trait Model: Send + 'static {
    /// Applies every transition due at `now`; returns the deliveries they caused and when the
    /// next one is due.
    fn advance(&mut self, now: Instant) -> Advance;
}

#[derive(Default)]
pub struct Advance {
    pub deliveries: Vec<Delivery>,
    pub next: Option<Instant>,
}

impl Advance {
    pub(crate) fn due(&mut self, at: Option<Instant>) {
        self.next = match (self.next, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// One request as the simulator received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("timed out after {0:?} waiting for the simulator")]
pub struct Timeout(pub Duration);

/// A failure to inject: the next `times` requests whose path contains `path` (and whose method
/// is `method`, when set) are answered `status`, either instead of being handled or after being
/// handled (an answer lost on the way back: the platform acted, the client cannot know).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub path: String,
    pub method: Option<String>,
    pub status: u16,
    pub times: usize,
    pub after_handling: bool,
}

impl Fault {
    /// Answered `status` without being handled.
    pub fn refuse(path: impl Into<String>, status: u16) -> Fault {
        Fault {
            path: path.into(),
            method: None,
            status,
            times: 1,
            after_handling: false,
        }
    }

    /// Handled, then answered `status`.
    pub fn lose_answer(path: impl Into<String>, status: u16) -> Fault {
        Fault {
            after_handling: true,
            ..Fault::refuse(path, status)
        }
    }

    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }

    pub fn method(mut self, m: impl Into<String>) -> Fault {
        self.method = Some(m.into());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && path.contains(&self.path)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

pub(crate) struct Shared<S> {
    pub(crate) state: Mutex<S>,
    /// Wakes the clock after a request changed the state.
    pub(crate) poke: Notify,
    pub(crate) outbox: Outbox,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    /// The same routes on a second port: another origin, as a platform's blob storage is
    /// (GitHub's log downloads redirect there).
    pub(crate) storage_url: String,
}

impl<S> Shared<S> {
    /// Wakes the clock: call after changing the state.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }
}

/// A running simulator of one platform. Dropping it stops its server.
pub struct Sim<S> {
    pub(crate) shared: Arc<Shared<S>>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl<S> Drop for Sim<S> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves `routes` over the state built by `make`.
pub(crate) async fn start<S: Model>(
    webhook: Option<WebhookTarget>,
    make: impl FnOnce(&str) -> S,
    routes: impl FnOnce(Arc<Shared<S>>) -> Router<Arc<Shared<S>>>,
) -> std::io::Result<Sim<S>> {
    start_on(0, webhook, make, routes).await
}

/// As [`start`], on `port` (0: a free one): for a server started before its stand-in.
pub(crate) async fn start_on<S: Model>(
    port: u16,
    webhook: Option<WebhookTarget>,
    make: impl FnOnce(&str) -> S,
    routes: impl FnOnce(Arc<Shared<S>>) -> Router<Arc<Shared<S>>>,
) -> std::io::Result<Sim<S>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let storage = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let shared = Arc::new(Shared {
        state: Mutex::new(make(&base_url)),
        poke: Notify::new(),
        outbox: Outbox::start(webhook),
        requests: Mutex::new(Vec::new()),
        faults: Mutex::new(Vec::new()),
        storage_url: format!("http://{}", storage.local_addr()?),
    });
    let app = routes(shared.clone())
        .layer(middleware::from_fn_with_state(shared.clone(), record::<S>))
        .with_state(shared.clone());
    let serve = |listener: tokio::net::TcpListener, app: Router| {
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("simulator server stopped: {e}");
            }
        })
    };
    let server = serve(listener, app.clone());
    let storage = serve(storage, app);
    let clock = tokio::spawn(drive(shared.clone()));
    Ok(Sim {
        shared,
        addr,
        tasks: vec![server, storage, clock],
    })
}

/// The clock: applies due transitions, sends what they caused, sleeps until the next one or
/// until a request pokes it.
async fn drive<S: Model>(shared: Arc<Shared<S>>) {
    loop {
        let adv = shared.state.lock().await.advance(Instant::now());
        shared.outbox.send(adv.deliveries);
        match adv.next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shared.poke.notified() => {}
                }
            }
            None => shared.poke.notified().await,
        }
    }
}

/// Keeps every request (method, path, headers, body) for the tests to inspect, and applies
/// injected faults.
async fn record<S: Send + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    shared.requests.lock().await.push(RecordedRequest {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: bytes.to_vec(),
    });
    let fault = {
        let mut faults = shared.faults.lock().await;
        let found = faults
            .iter_mut()
            .find(|f| f.matches(parts.method.as_str(), parts.uri.path()));
        found.map(|f| {
            f.times -= 1;
            f.clone()
        })
    };
    let failed = |f: &Fault| {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
        (status, "injected fault").into_response()
    };
    match fault {
        Some(f) if !f.after_handling => failed(&f),
        Some(f) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            failed(&f)
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

impl<S: Model> Sim<S> {
    /// `http://127.0.0.1:<port>`: the API root to give pipeguard.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root of the simulator's storage origin (another port): where downloads go.
    pub fn storage_url(&self) -> String {
        self.shared.storage_url.clone()
    }

    /// Every request received so far, oldest first.
    pub async fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().await.clone()
    }

    /// Every webhook delivery made so far, oldest first, with the receiver's answer.
    pub async fn deliveries(&self) -> Vec<SentDelivery> {
        self.shared.outbox.drained().await;
        self.shared.outbox.sent.lock().await.clone()
    }

    /// Sends later deliveries to `target` (`None`: only record them). Lets a simulator start
    /// before the pipeguard it reports to.
    pub async fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.shared.outbox.set_target(target).await;
    }

    /// Makes matching requests fail (see [`Fault`]).
    pub async fn inject(&self, fault: Fault) {
        self.shared.faults.lock().await.push(fault);
    }

    /// Reads the state.
    pub async fn inspect<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&*self.shared.state.lock().await)
    }

    /// Waits until `f` holds on the state.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        f: impl Fn(&S) -> bool,
    ) -> Result<(), Timeout> {
        let deadline = Instant::now() + timeout;
        loop {
            if f(&*self.shared.state.lock().await) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Changes the state with `f` and lets the clock see the change.
    pub(crate) async fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut *self.shared.state.lock().await);
        self.shared.poke();
        r
    }
}
