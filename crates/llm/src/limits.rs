//! Cost controls: answers cached per fingerprint and host kind, and a rolling hourly budget
//! of tokens.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);
/// Most cached answers.
const MAX_ENTRIES: usize = 1024;

/// Answers by key for `ttl`; the bound and what to evict first are quick_cache's.
pub struct Cache<V> {
    ttl: Duration,
    entries: quick_cache::unsync::Cache<String, (Instant, V)>,
}

impl<V: Clone> Cache<V> {
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: quick_cache::unsync::Cache::new(MAX_ENTRIES),
        }
    }

    /// The value and its age, when stored less than the TTL ago.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<(V, Duration)> {
        let (at, v) = self.entries.get(key)?;
        let age = now.saturating_duration_since(*at);
        if age < self.ttl {
            return Some((v.clone(), age));
        }
        self.entries.remove(key);
        None
    }

    pub fn put(&mut self, key: String, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        self.entries.insert(key, (now, value));
    }
}

/// Tokens spent in the last hour, against a limit (0 = none).
pub struct Budget {
    limit: u64,
    spent: VecDeque<(Instant, u64)>,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget {
            limit,
            spent: VecDeque::new(),
        }
    }

    pub fn spent(&mut self, now: Instant) -> u64 {
        while self
            .spent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= HOUR)
        {
            self.spent.pop_front();
        }
        self.spent.iter().map(|(_, t)| t).sum()
    }

    /// Whether a request of about `tokens` fits in what is left of the hour.
    pub fn allows(&mut self, tokens: u64, now: Instant) -> bool {
        self.limit == 0 || self.spent(now) + tokens <= self.limit
    }

    pub fn record(&mut self, tokens: u64, now: Instant) {
        if tokens > 0 {
            self.spent.push_back((now, tokens));
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_values_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(60));
        c.put("fp".into(), 7, t0);
        assert_eq!(
            c.get("fp", t0 + Duration::from_secs(59)),
            Some((7, Duration::from_secs(59)))
        );
        assert_eq!(c.get("fp", t0 + Duration::from_secs(60)), None);
        assert_eq!(c.get("fp", t0), None, "an expired entry is gone");
        let mut off = Cache::new(Duration::ZERO);
        off.put("fp".into(), 7, t0);
        assert_eq!(off.get("fp", t0), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 10 {
            c.put(i.to_string(), i, t0 + Duration::from_millis(i as u64));
        }
        assert!(c.entries.len() <= MAX_ENTRIES, "{}", c.entries.len());
        let kept = (0..MAX_ENTRIES + 10)
            .filter(|i| c.get(&i.to_string(), t0).is_some())
            .count();
        assert!(kept <= MAX_ENTRIES && kept > MAX_ENTRIES / 2, "{kept} kept");
    }

    #[test]
    fn the_budget_is_a_rolling_hour() {
        let t0 = Instant::now();
        let mut b = Budget::new(1000);
        assert!(b.allows(1000, t0));
        b.record(600, t0);
        b.record(300, t0 + Duration::from_secs(1800));
        assert!(b.allows(100, t0 + Duration::from_secs(1800)));
        assert!(!b.allows(101, t0 + Duration::from_secs(1800)));
        // The first spend leaves the window an hour after it was made.
        assert_eq!(b.spent(t0 + HOUR), 300);
        assert!(b.allows(700, t0 + HOUR));
        assert!(Budget::new(0).allows(u64::MAX, t0));
    }
}
