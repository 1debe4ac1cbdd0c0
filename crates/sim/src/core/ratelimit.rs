//! An API's rate limit as a client that uses its calls up quickly meets it: `limit` calls, then
//! refusals until the window resets (`pause` after the last allowed call), then a new window.
//! GitHub answers a refusal with 403 and `x-ratelimit-*`, GitLab with 429 and `RateLimit-*`.

use super::http::with_header;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Duration;

/// How a platform names the window's headers: limit, remaining, used, reset (epoch seconds).
pub type HeaderNames = [&'static str; 4];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub limit: u32,
    pub pause: Duration,
}

/// The calls counted in the current window and when it resets.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateWindow {
    used: u32,
    /// Epoch seconds at which the window resets; `None` until its calls are used up.
    reset: Option<u64>,
    /// Calls refused so far.
    pub refused: u32,
}

/// What the window says about one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds.
    pub reset: u64,
}

pub fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RateWindow {
    /// Counts a call made at `now` (epoch seconds).
    pub fn take(&mut self, limit: RateLimit, now: u64) -> Verdict {
        if self.reset.is_some_and(|r| now >= r) {
            *self = RateWindow {
                refused: self.refused,
                ..Default::default()
            };
        }
        let allowed = self.used < limit.limit;
        self.used += allowed as u32;
        if self.used == limit.limit && self.reset.is_none() {
            // Whole seconds, as the headers say: a client waiting until then finds it open.
            self.reset = Some(now + limit.pause.as_secs().max(1));
        }
        self.refused += (!allowed) as u32;
        Verdict {
            allowed,
            limit: limit.limit,
            remaining: limit.limit - self.used,
            reset: self.reset.unwrap_or(now + 3600),
        }
    }
}

/// A call through the window (`None`: no limit): the handler's answer when allowed, else
/// `refusal`'s; either way with the window's headers.
pub async fn through(
    verdict: Option<Verdict>,
    req: Request,
    next: Next,
    refusal: impl FnOnce(&Verdict) -> Response,
    names: HeaderNames,
) -> Response {
    let Some(v) = verdict else {
        return next.run(req).await;
    };
    let r = if v.allowed {
        next.run(req).await
    } else {
        refusal(&v)
    };
    let values = [v.limit, v.remaining, v.limit - v.remaining];
    let r = names[..3]
        .iter()
        .zip(values)
        .fold(r, |r, (n, x)| with_header(r, n, &x.to_string()));
    with_header(r, names[3], &v.reset.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_once_used_up_until_it_resets() {
        let limit = RateLimit {
            limit: 2,
            pause: Duration::from_secs(5),
        };
        let mut w = RateWindow::default();
        assert!(w.take(limit, 100).allowed);
        let v = w.take(limit, 100);
        assert_eq!((v.allowed, v.remaining, v.reset), (true, 0, 105));
        assert!(!w.take(limit, 104).allowed);
        assert_eq!(w.refused, 1);
        assert!(w.take(limit, 105).allowed);
        assert_eq!(w.refused, 1);
    }
}
