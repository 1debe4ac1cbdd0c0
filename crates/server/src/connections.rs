//! Bounds on connections below HTTP: how many may be open at once, and how long one may stay
//! open with no request in flight. Slow headers are hyper's (`header_read_timeout`) and slow
//! bodies the router's (408); what neither sees is a connection that never sends a request (a
//! silent socket, an HTTP/2 preface and nothing after it) or an idle HTTP/2 connection, so
//! each connection counts its requests and is closed once it has had none for a while.

use axum::body::{Body, Bytes};
use hyper::body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the connection loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// No request in flight for this long: the connection is closed.
    pub idle_timeout: Duration,
    /// Time to send a request's headers (and to finish a TLS handshake).
    pub header_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            max_connections: c.server.max_connections.max(1),
            idle_timeout: Duration::from_secs(c.server.idle_timeout_seconds.max(1)),
            header_timeout: Duration::from_secs(c.api.header_timeout_seconds.max(1)),
        }
    }
}

/// The cap on open connections, with the figures `/metrics` shows.
#[derive(Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    open: Gauge,
    refused: Counter,
    last_warning_ms: Arc<AtomicI64>,
}

impl Gate {
    pub fn new(max: usize, open: Gauge, refused: Counter) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(max)),
            open,
            refused,
            last_warning_ms: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// A slot for one more connection, or `None` when all are taken (the caller closes it).
    pub fn admit(&self) -> Option<Slot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.open.inc();
                Some(Slot {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.refused.inc();
                // One line per minute at most: a flood must not also flood the log.
                let now = pipeguard_store::now_ms();
                let last = self.last_warning_ms.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= 60_000
                    && self
                        .last_warning_ms
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        refused_so_far = self.refused.get(),
                        "[server] max_connections reached: new connections are closed at once"
                    );
                }
                None
            }
        }
    }
}

/// An open connection's place under the cap, given back when it closes.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A connection's requests in flight and when the last one ended.
#[derive(Clone)]
pub struct Activity(Arc<ActivityInner>);

struct ActivityInner {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when a request last ended.
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(ActivityInner {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }))
    }
}

impl Activity {
    /// A request starts; it ends when the guard (held by its response body) is dropped.
    pub fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight; zero while one is.
    pub fn idle_for(&self) -> Duration {
        if self.0.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.0.last_ms.load(Ordering::SeqCst));
        self.0.opened.elapsed().saturating_sub(last)
    }
}

pub struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0 .0;
        a.last_ms
            .store(a.opened.elapsed().as_millis() as u64, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped
/// (an event stream stays in flight as long as it is open).
pub struct Tracked {
    pub body: Body,
    pub _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves when the connection has been idle for `limit`.
pub async fn idle(activity: &Activity, limit: Duration) {
    loop {
        let idle = activity.idle_for();
        if idle >= limit {
            return;
        }
        tokio::time::sleep(limit - idle).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_between_requests() {
        let a = Activity::default();
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.idle_for() >= Duration::from_millis(20), "never asked");
        let r = a.begin();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(a.idle_for(), Duration::ZERO, "a request is in flight");
        drop(r);
        assert!(
            a.idle_for() < Duration::from_millis(15),
            "counted from its end"
        );
    }

    #[test]
    fn the_gate_refuses_beyond_its_cap_and_frees_slots() {
        let (open, refused) = (Gauge::default(), Counter::default());
        let g = Gate::new(2, open.clone(), refused.clone());
        let a = g.admit().unwrap();
        let _b = g.admit().unwrap();
        assert!(g.admit().is_none());
        assert_eq!((open.get(), refused.get()), (2, 1));
        drop(a);
        assert!(g.admit().is_some());
        assert_eq!(open.get(), 1, "the new slot was dropped at once too");
    }
}
