//! The one exponential backoff: the platform client's retries, `pipeguard run`'s retries, the
//! Ansible loop's rounds and the planner's wait before a heal all grow the same way.
//!
//! The delay drawn inside the bound is *equal jitter* (half the bound fixed, half random):
//! clients that failed together do not retry together, and none retries at once.

use std::time::Duration;

/// `base` doubled per retry, capped at `cap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

/// Doublings at most: past 2^16 any base is beyond every cap in use.
const MAX_DOUBLINGS: u32 = 16;

impl Backoff {
    /// Without a cap beyond the doublings' own.
    pub fn uncapped(base: Duration) -> Backoff {
        Backoff {
            base,
            cap: Duration::MAX,
        }
    }

    /// The bound before retry `n` (0 = the first retry): `base × 2^n`, at most `cap`.
    pub fn bound(&self, n: u32) -> Duration {
        self.base
            .saturating_mul(1 << n.min(MAX_DOUBLINGS))
            .min(self.cap)
    }

    /// The delay before retry `n`, with `unit` a random draw in [0, 1]: in [bound/2, bound].
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let bound = self.bound(n);
        let half = bound / 2;
        half + (bound - half).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(20),
        };
        let bounds: Vec<u64> = (0..5).map(|n| b.bound(n).as_secs()).collect();
        assert_eq!(bounds, [2, 4, 8, 16, 20]);
        let huge = Backoff::uncapped(Duration::from_secs(30));
        assert_eq!(huge.bound(40), Duration::from_secs(30 << 16));
    }

    #[test]
    fn equal_jitter_keeps_half_the_bound_and_draws_the_rest() {
        let b = Backoff::uncapped(Duration::from_millis(800));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(1600));
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(1200));
        // A draw outside [0, 1] stays inside the bound.
        assert_eq!(b.delay(0, 7.0), Duration::from_millis(800));
        assert_eq!(
            Backoff::uncapped(Duration::ZERO).delay(3, 0.9),
            Duration::ZERO
        );
    }
}
