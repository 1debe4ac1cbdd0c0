//! Counters behind `pipeguard_llm_requests_total{outcome}` and `pipeguard_llm_tokens_total`.

use crate::analyst::Outcome;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counters {
    requests: [AtomicU64; Outcome::ALL.len()],
    tokens: AtomicU64,
}

/// A copy of the counters since the process started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Every outcome, zeros included, so each series exists from the first scrape.
    pub requests: Vec<(Outcome, u64)>,
    /// Tokens spent (the endpoint's `usage.total_tokens`, else the estimate).
    pub tokens: u64,
}

impl Counters {
    pub fn record(&self, outcome: Outcome, tokens: u64) {
        self.requests[outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: Outcome::ALL
                .iter()
                .map(|o| (*o, self.requests[o.index()].load(Ordering::Relaxed)))
                .collect(),
            tokens: self.tokens.load(Ordering::Relaxed),
        }
    }
}

impl MetricsSnapshot {
    pub fn requests_for(&self, outcome: Outcome) -> u64 {
        self.requests
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    }
}
