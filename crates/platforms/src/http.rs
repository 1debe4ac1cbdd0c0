//! Shared HTTP client behaviour: bounded retries with backoff on transient answers.

use crate::PlatformError;
use reqwest::{RequestBuilder, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Failed platform API calls (each failed try), for `pipeguard_platform_api_errors_total`.
pub static API_ERRORS: AtomicU64 = AtomicU64::new(0);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("pipeguard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client builds")
}

fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Sends the request built by `make`, retrying transient failures up to `tries` times with
/// doubling delays from `base`. Non-success answers become [`PlatformError`]s.
pub async fn send(
    what: &str,
    tries: u32,
    base: Duration,
    make: impl Fn() -> RequestBuilder,
) -> Result<Response, PlatformError> {
    let mut delay = base;
    let mut last = String::new();
    for i in 0..tries.max(1) {
        if i > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        match make().send().await {
            Ok(r) if r.status().is_success() => return Ok(r),
            Ok(r) if transient(r.status()) => {
                last = format!("{what}: HTTP {}", r.status());
            }
            Ok(r) => {
                API_ERRORS.fetch_add(1, Ordering::Relaxed);
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                return Err(PlatformError::Permanent(format!(
                    "{what}: HTTP {status}: {body}"
                )));
            }
            Err(e) => last = format!("{what}: {e}"),
        }
        API_ERRORS.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(attempt = i + 1, "{last}");
    }
    Err(PlatformError::Transient(last))
}

/// Longest log tail kept per job: failures explain themselves at the end, and a runaway log
/// must not exhaust memory.
pub const LOG_TAIL_BYTES: usize = 32 * 1024 * 1024;

/// Reads a body as it streams in, keeping at most its last `limit` bytes.
pub async fn read_tail(
    mut r: Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, PlatformError> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| PlatformError::Transient(format!("{what}: {e}")))?
    {
        buf.extend_from_slice(&chunk);
        // Trim in large steps so the copy is amortised.
        if buf.len() > limit.saturating_mul(2) {
            buf.drain(..buf.len() - limit);
        }
    }
    if buf.len() > limit {
        buf.drain(..buf.len() - limit);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_tail_of_a_long_body_is_kept() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
            .mount(&mock)
            .await;
        let r = client().get(mock.uri()).send().await.unwrap();
        let tail = read_tail(r, 1000, "log").await.unwrap();
        assert_eq!(tail, body[body.len() - 1000..]);
        let r = client().get(mock.uri()).send().await.unwrap();
        assert_eq!(read_tail(r, 1 << 20, "log").await.unwrap(), body);
    }
}
