//! A set of keys read from the database and trusted for a short while, so that a per-delivery
//! write that would change nothing is skipped without a read: the repositories with quarantined
//! tests, the branches with failures a push may fix.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read is trusted. A change made by another process is seen within it; a write
/// skipped meanwhile only delays what the next one records.
const FRESH: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct FreshSet(Mutex<State>);

#[derive(Default)]
struct State {
    read: Option<(Instant, HashSet<String>)>,
    /// Counts the drops: a read that started before one must not be kept.
    generation: u64,
}

impl FreshSet {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(answer)` while the last read is fresh.
    pub(crate) fn has(&self, key: &str) -> Option<bool> {
        self.state()
            .read
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, keys)| keys.contains(key))
    }

    /// Forgets the set: a change may have added a key. Call it after the change committed.
    pub(crate) fn drop_set(&self) {
        let mut s = self.state();
        s.read = None;
        s.generation += 1;
    }

    /// Taken before a read, given back to [`FreshSet::keep`].
    pub(crate) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Keeps what a read begun at `generation` found, unless the set was dropped since: that
    /// read may have missed the change.
    pub(crate) fn keep(&self, generation: u64, keys: HashSet<String>) {
        let mut s = self.state();
        if s.generation == generation {
            s.read = Some((Instant::now(), keys));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let set = FreshSet::default();
        assert_eq!(set.has("o/r"), None, "nothing read yet");
        let g = set.generation();
        set.keep(g, HashSet::from(["o/r".to_string()]));
        assert_eq!((set.has("o/r"), set.has("o/x")), (Some(true), Some(false)));
        // A read starts, a change commits and drops the set, the read ends.
        let g = set.generation();
        set.drop_set();
        set.keep(g, HashSet::new());
        assert_eq!(set.has("o/x"), None, "the stale read was not kept");
        let g = set.generation();
        set.keep(g, HashSet::new());
        assert_eq!(set.has("o/x"), Some(false));
    }
}
