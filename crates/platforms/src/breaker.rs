//! A circuit breaker per platform endpoint: after several calls in a row found the endpoint
//! down, calls fail at once for a while (the jobs wait in the queue instead of each spending
//! its tries), then one probe is let through; its success closes the circuit again.
//!
//! Process-wide and keyed by scheme, host and port, so every client of one endpoint (the
//! platform's own and the per-repository ones) shares what it learned.

use crate::api::HttpOptions;
use crate::PlatformError;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; others fail fast until it reports.
    HalfOpen {
        since: Instant,
    },
}

fn states() -> &'static Mutex<HashMap<String, State>> {
    static S: OnceLock<Mutex<HashMap<String, State>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// `https://api.github.com/api/v3` → `https://api.github.com`.
pub fn key(base: &str) -> String {
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
        None => base.to_string(),
    }
}

/// Whether a call to `endpoint` may go out now.
pub fn admit(endpoint: &str, opts: &HttpOptions) -> Result<(), PlatformError> {
    let mut map = states().lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let state = map
        .entry(endpoint.to_string())
        .or_insert(State::Closed { failures: 0 });
    match *state {
        State::Closed { .. } => Ok(()),
        State::Open { until } if now >= until => {
            *state = State::HalfOpen { since: now };
            Ok(())
        }
        // A probe that never reported (its task died) must not keep the circuit shut.
        State::HalfOpen { since } if now.duration_since(since) > opts.breaker_open => {
            *state = State::HalfOpen { since: now };
            Ok(())
        }
        State::Open { until } => Err(open_error(endpoint, until.saturating_duration_since(now))),
        State::HalfOpen { .. } => Err(open_error(endpoint, Duration::from_secs(1))),
    }
}

fn open_error(endpoint: &str, wait: Duration) -> PlatformError {
    PlatformError::Busy {
        message: format!("{endpoint} is failing: circuit open, not calling it for now"),
        retry_after: wait.max(Duration::from_secs(1)),
    }
}

pub fn success(endpoint: &str) {
    let mut map = states().lock().unwrap_or_else(|e| e.into_inner());
    map.insert(endpoint.to_string(), State::Closed { failures: 0 });
}

pub fn failure(endpoint: &str, opts: &HttpOptions) {
    let mut map = states().lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let state = map
        .entry(endpoint.to_string())
        .or_insert(State::Closed { failures: 0 });
    *state = match *state {
        State::Closed { failures } if failures + 1 < opts.breaker_threshold.max(1) => {
            State::Closed {
                failures: failures + 1,
            }
        }
        _ => {
            tracing::warn!(endpoint, "circuit opened for {:?}", opts.breaker_open);
            State::Open {
                until: now + opts.breaker_open,
            }
        }
    };
}

/// Endpoints whose circuit is open now, for `/metrics`.
pub fn open_endpoints() -> Vec<String> {
    let map = states().lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    map.iter()
        .filter(|(_, s)| matches!(s, State::Open { until } if *until > now))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> HttpOptions {
        HttpOptions {
            breaker_threshold: 2,
            breaker_open: Duration::from_millis(50),
            ..Default::default()
        }
    }

    #[test]
    fn opens_after_the_threshold_then_probes_then_closes() {
        let e = "http://breaker-test.invalid:1";
        let o = opts();
        assert!(admit(e, &o).is_ok());
        failure(e, &o);
        assert!(admit(e, &o).is_ok(), "one failure is below the threshold");
        failure(e, &o);
        assert!(matches!(admit(e, &o), Err(PlatformError::Busy { .. })));
        assert!(open_endpoints().contains(&e.to_string()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(admit(e, &o).is_ok(), "one probe after the open period");
        assert!(admit(e, &o).is_err(), "only one probe at a time");
        success(e);
        assert!(admit(e, &o).is_ok());
        assert!(!open_endpoints().contains(&e.to_string()));
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let e = "http://breaker-test-2.invalid:1";
        let o = opts();
        failure(e, &o);
        failure(e, &o);
        std::thread::sleep(Duration::from_millis(60));
        assert!(admit(e, &o).is_ok());
        failure(e, &o);
        assert!(admit(e, &o).is_err());
    }

    #[test]
    fn keys_are_endpoints() {
        assert_eq!(
            key("https://ghe.example.com/api/v3"),
            "https://ghe.example.com"
        );
        assert_eq!(key("http://127.0.0.1:8010"), "http://127.0.0.1:8010");
    }
}
