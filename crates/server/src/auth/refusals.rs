//! Refused credentials in the audit trail without one row per guess: the first refusal of a
//! burst from a source is recorded at once; the rest are counted and written as one row per
//! source and minute (a source guessing 600 times a minute leaves one row a minute).

use crate::Shared;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Sources tracked at once; beyond, refusals are recorded one by one as before.
const MAX_SOURCES: usize = 10_000;
/// Distinct routes named in one summary row.
const MAX_ROUTES: usize = 10;

/// Refusals from one source in one minute not yet written.
#[derive(Debug, Clone)]
struct Window {
    minute: i64,
    count: u64,
    routes: BTreeSet<String>,
    why: String,
}

/// One summary row: `count` refusals from `source` in the minute starting at `minute * 60 s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub source: String,
    pub minute: i64,
    pub count: u64,
    pub routes: Vec<String>,
    pub why: String,
}

#[derive(Default)]
pub struct Refusals {
    windows: Mutex<HashMap<String, Window>>,
}

impl Window {
    fn new(minute: i64) -> Window {
        Window {
            minute,
            count: 0,
            routes: BTreeSet::new(),
            why: String::new(),
        }
    }

    fn add(&mut self, route: &str, why: &str) {
        self.count += 1;
        if self.routes.len() < MAX_ROUTES {
            self.routes.insert(route.to_string());
        }
        self.why = why.to_string();
    }

    /// The window's summary, leaving it empty.
    fn take(&mut self, source: &str) -> Option<Summary> {
        (self.count > 0).then(|| Summary {
            source: source.to_string(),
            minute: self.minute,
            count: std::mem::take(&mut self.count),
            routes: std::mem::take(&mut self.routes).into_iter().collect(),
            why: std::mem::take(&mut self.why),
        })
    }
}

impl Refusals {
    /// Notes a refusal at `now_ms`: whether to record it at once (the first of a burst), and
    /// the summaries of the source's ended minute, if any.
    pub fn note(&self, source: &str, route: &str, why: &str, now_ms: i64) -> (bool, Vec<Summary>) {
        let minute = now_ms.div_euclid(60_000);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(source) && windows.len() >= MAX_SOURCES {
            return (true, vec![]);
        }
        let w = windows
            .entry(source.to_string())
            .or_insert_with(|| Window::new(minute - 2));
        if w.minute == minute {
            w.add(route, why);
            return (false, vec![]);
        }
        let ended = w.take(source).into_iter().collect();
        // A burst that went on through the last minute is summarised; a new one is told at once.
        let continuing = w.minute == minute - 1;
        *w = Window::new(minute);
        if continuing {
            w.add(route, why);
        }
        (!continuing, ended)
    }

    /// Summaries of every minute that has ended by `now_ms`; sources quiet since are dropped.
    pub fn due(&self, now_ms: i64) -> Vec<Summary> {
        let minute = now_ms.div_euclid(60_000);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let due = windows
            .iter_mut()
            .filter(|(_, w)| w.minute < minute)
            .filter_map(|(s, w)| w.take(s))
            .collect();
        windows.retain(|_, w| w.minute >= minute - 1);
        due
    }
}

async fn write(st: &Shared, s: Summary) {
    let detail = json!({
        "source": s.source, "count": s.count, "routes": s.routes, "why": s.why,
        "from_ms": s.minute * 60_000, "to_ms": (s.minute + 1) * 60_000,
    });
    let target = s.routes.first().cloned().unwrap_or_default();
    let actor = format!("source:{}", s.source);
    crate::audit::record(st, &actor, "auth.failed", &target, detail).await;
}

/// Records a refused credential as [`Refusals::note`] says.
pub async fn refused(st: &Shared, source: &str, route: &str, why: &str) {
    let (now, ended) = st
        .refusals
        .note(source, route, why, pipeguard_store::now_ms());
    for s in ended {
        write(st, s).await;
    }
    if now {
        crate::audit::failed_login(st, source, route, why).await;
    }
}

/// Writes the summaries of ended minutes every few seconds, and all of them at shutdown.
pub async fn flush(st: Shared, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => false,
            _ = shutdown.wait_for(|v| *v) => true,
        };
        let now = if stop {
            i64::MAX - 120_000
        } else {
            pipeguard_store::now_ms()
        };
        for s in st.refusals.due(now) {
            write(&st, s).await;
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    #[test]
    fn a_burst_is_told_once_then_summarised_once_a_minute() {
        let r = Refusals::default();
        let t0 = 100 * M;
        assert_eq!(r.note("10.0.0.1", "/a", "bad", t0), (true, vec![]));
        for i in 1..600 {
            assert_eq!(
                r.note("10.0.0.1", "/a", "bad", t0 + i * 90),
                (false, vec![])
            );
        }
        // Another source is told at once too.
        assert!(r.note("10.0.0.2", "/b", "bad", t0 + 1).0);
        assert!(r.due(t0 + 59_999).is_empty(), "the minute has not ended");
        let due = r.due(t0 + M);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].count, due[0].minute), (599, 100));
        assert_eq!(due[0].routes, ["/a"]);
        // The burst goes on into the next minute: no new immediate row, one summary.
        assert_eq!(
            r.note("10.0.0.1", "/c", "worse", t0 + M + 5),
            (false, vec![])
        );
        let (now, ended) = r.note("10.0.0.1", "/a", "bad", t0 + 2 * M + 5);
        assert!(!now);
        assert_eq!(ended[0].count, 1);
        assert_eq!(ended[0].why, "worse");
        // After a quiet minute, a new burst is told at once again.
        let (now, ended) = r.note("10.0.0.1", "/a", "bad", t0 + 4 * M);
        assert!(now);
        assert_eq!(ended.len(), 1, "the minute before the pause");
        // Quiet sources are forgotten.
        r.due(t0 + 10 * M);
        assert!(r.windows.lock().unwrap().is_empty());
    }
}
