//! Per-source rate limits on the API, so one client (or a password-guessing loop) cannot
//! starve the others.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

pub struct SourceLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl SourceLimiter {
    /// `per_minute` requests per source address, with bursts of a tenth of that; 0 = off.
    pub fn new(per_minute: u32) -> SourceLimiter {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new((per_minute / 10).max(10)).unwrap_or(n);
            RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        SourceLimiter { limiter }
    }

    pub fn check(&self, source: &str) -> bool {
        match &self.limiter {
            Some(l) => {
                if l.len() > 100_000 {
                    l.retain_recent();
                }
                l.check_key(&source.to_string()).is_ok()
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_limited_and_others_are_not() {
        let l = SourceLimiter::new(60);
        let allowed = (0..50).filter(|_| l.check("10.0.0.1")).count();
        assert_eq!(allowed, 10, "the burst, then refusals");
        assert!(l.check("10.0.0.2"));
        assert!(SourceLimiter::new(0).check("x"));
    }
}
