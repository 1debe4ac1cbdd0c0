//! `GET /api/v1/events`: session changes as server-sent events, for live views.
//!
//! The stream polls the database (`sessions_changed_since`), so it sees what every replica
//! did, and sends `event: session` with the session's list JSON, its `id` the change time a
//! client passes back as `?since=` when it reconnects. The request timeout only bounds the
//! time to the response's headers, which this handler returns at once; each stream then ends
//! by itself after `LIFETIME` (the client reconnects), which keeps a server that is stopping
//! from waiting on open dashboards longer than that.

use super::query::Q;
use crate::error::ApiError;
use crate::routes::sessions::Session;
use crate::Shared;
use axum::extract::State;
use axum::http::header::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use pipeguard_store::{now_ms, SessionRecord};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the database is asked for changes.
const POLL: Duration = Duration::from_millis(500);
/// Changes committed this late behind the newest one seen are still picked up (a writer's
/// transaction, or another replica's clock, may lag).
const OVERLAP_MS: i64 = 2_000;
/// Changes read per query.
const BATCH: i64 = 200;
/// How long one stream lasts before the client is asked to reconnect; shorter than the
/// server's drain on shutdown.
pub const LIFETIME: Duration = Duration::from_secs(20);
/// How far back a reconnecting client may ask for changes; a client away longer reloads.
const MAX_BACKLOG_MS: i64 = 15 * 60 * 1000;
const KEEP_ALIVE: Duration = Duration::from_secs(10);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The `id` of the last event the client saw.
    since: Option<i64>,
}

/// `GET /api/v1/events`: `ready`, then `session` events as sessions change; the stream ends
/// after a while and the client reconnects with `since`.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "sessions", params(EventsQuery),
    responses((status = 200, description = "Server-sent events (`ready`, `session`)", content_type = "text/event-stream", body = String))
)]
pub async fn events(
    State(st): State<Shared>,
    Q(q): Q<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    let since = q.since.unwrap_or(now).clamp(now - MAX_BACKLOG_MS, now);
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(feed(st, Cursor::new(since), tx));
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>))
    });
    let sse = Sse::<_>::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // Reverse proxies that buffer responses (nginx) would hold the events back.
    let no_buffering = (
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(([no_buffering], sse))
}

/// Sends `ready`, then each change, until the client goes away, the stream's lifetime ends or
/// the database fails.
async fn feed(st: Shared, mut cursor: Cursor, tx: mpsc::Sender<Event>) {
    let end = Instant::now() + LIFETIME;
    let ready = Event::default()
        .event("ready")
        .id(cursor.newest.to_string())
        .data(json!({"since": cursor.newest}).to_string());
    if tx.send(ready).await.is_err() {
        return;
    }
    let mut shutdown = st.shutdown.clone();
    loop {
        let full = match st
            .store
            .sessions_changed_since(cursor.query_from(), BATCH)
            .await
        {
            Ok(rows) => {
                let full = rows.len() as i64 == BATCH;
                for s in cursor.fresh(rows, full) {
                    if tx.send(session_event(&s)).await.is_err() {
                        return;
                    }
                }
                full
            }
            Err(e) => {
                tracing::warn!("events: cannot read changes: {e}");
                let msg = json!({"message": "the database is unavailable; reconnect later"});
                let _ = tx
                    .send(Event::default().event("error").data(msg.to_string()))
                    .await;
                return;
            }
        };
        if Instant::now() >= end {
            return;
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::time::sleep_until(end) => return,
            _ = tx.closed() => return,
            // The server is stopping: end the stream so it does not hold the stop up.
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

fn session_event(s: &SessionRecord) -> Event {
    Event::default()
        .event("session")
        .id(s.updated_at.to_string())
        .data(serde_json::to_string(&Session::of(s)).unwrap_or_default())
}

/// What a stream has sent: the newest change time seen, and the changes sent inside the
/// overlap window, so a change read twice is sent once.
struct Cursor {
    newest: i64,
    sent: HashMap<String, i64>,
    /// The last batch was full of changes already sent: the window holds more changes than
    /// a batch, so the next query starts at the newest instead of overlapping.
    stalled: bool,
}

impl Cursor {
    fn new(since: i64) -> Cursor {
        Cursor {
            newest: since,
            sent: HashMap::new(),
            stalled: false,
        }
    }

    fn query_from(&self) -> i64 {
        if self.stalled {
            self.newest
        } else {
            self.newest - OVERLAP_MS
        }
    }

    /// The changes of `rows` not sent yet, in order; remembers them.
    fn fresh<T: Change>(&mut self, rows: Vec<T>, full: bool) -> Vec<T> {
        let mut out = Vec::new();
        for s in rows {
            let (id, at) = s.key();
            self.newest = self.newest.max(at);
            if self.sent.get(id) != Some(&at) {
                self.sent.insert(id.to_string(), at);
                out.push(s);
            }
        }
        let horizon = self.newest - OVERLAP_MS;
        self.sent.retain(|_, at| *at >= horizon);
        self.stalled = full && out.is_empty();
        out
    }
}

/// A session's change: its id and when it changed.
trait Change {
    fn key(&self) -> (&str, i64);
}

impl Change for SessionRecord {
    fn key(&self) -> (&str, i64) {
        (&self.id, self.updated_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Change for (&'static str, i64) {
        fn key(&self) -> (&str, i64) {
            (self.0, self.1)
        }
    }

    #[test]
    fn a_change_read_again_in_the_overlap_is_sent_once_and_a_new_change_is_sent() {
        let mut c = Cursor::new(10_000);
        assert_eq!(c.query_from(), 10_000 - OVERLAP_MS);
        let first = c.fresh(vec![("a", 10_100), ("b", 10_200)], false);
        assert_eq!(first, [("a", 10_100), ("b", 10_200)]);
        assert_eq!(c.newest, 10_200);
        // The next poll overlaps: a and b again, a changed since, c is new.
        let again = c.fresh(vec![("b", 10_200), ("a", 10_300), ("c", 10_300)], false);
        assert_eq!(again, [("a", 10_300), ("c", 10_300)]);
    }

    #[test]
    fn a_late_commit_older_than_the_newest_is_still_sent() {
        let mut c = Cursor::new(0);
        c.fresh(vec![("a", 5_000)], false);
        // b was written at 4_500 but committed after a was read.
        let late = c.fresh(vec![("b", 4_500), ("a", 5_000)], false);
        assert_eq!(late, [("b", 4_500)]);
    }

    #[test]
    fn a_full_batch_of_known_changes_moves_the_query_past_the_overlap() {
        let mut c = Cursor::new(0);
        c.fresh(vec![("a", 100), ("b", 100)], true);
        assert!(!c.stalled);
        assert!(c.fresh(vec![("a", 100), ("b", 100)], true).is_empty());
        assert!(c.stalled);
        assert_eq!(c.query_from(), 100);
    }
}
