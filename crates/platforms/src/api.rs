//! The one HTTP client every platform talks through: authentication, bounded retries with
//! backoff (equal jitter), `Retry-After` and rate-limit headers, a circuit breaker per endpoint,
//! the platforms' pagination styles and bounded log tails.

use crate::breaker;
use crate::PlatformError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pipeguard_core::backoff::Backoff;
use reqwest::header::HeaderMap;
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Failed platform API calls (each failed try), for `pipeguard_platform_api_errors_total`.
pub static API_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Longest log tail kept per job: failures explain themselves at the end, and a runaway log
/// must not exhaust memory.
pub const LOG_TAIL_BYTES: usize = 32 * 1024 * 1024;

/// RFC 3986 unreserved characters stay; everything else in a path segment or query value is
/// percent-encoded, so a name can never add a segment, a query or a fragment.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment or query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// How a client retries and backs off; shared by every platform.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Tries per call on transient answers (5xx, 429, timeouts).
    pub tries: u32,
    /// First delay between tries; doubled per try, with equal jitter (core's `Backoff`).
    pub backoff: Duration,
    /// Consecutive failed calls to one endpoint that open its circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails calls fast before one probe is let through.
    pub breaker_open: Duration,
    /// Longest wait inside one call for a `Retry-After` or a rate-limit reset; anything longer
    /// is handed back as [`PlatformError::Busy`] so the job is retried later instead of
    /// holding a worker (zero: every requested wait is the caller's to announce and make).
    pub max_inline_wait: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tries: 3,
            backoff: Duration::from_millis(500),
            breaker_threshold: 5,
            breaker_open: Duration::from_secs(30),
            max_inline_wait: Duration::from_secs(5),
        }
    }
}

/// How a platform authenticates API calls.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Bearer(String),
    /// A token in a named header (`PRIVATE-TOKEN`, `Circle-Token`).
    Header(&'static str, String),
    Basic(String, Option<String>),
}

/// Where a paginated list keeps its items and how it names the next page.
#[derive(Debug, Clone, Copy)]
pub enum Paging {
    /// `?page=N&per_page=…`; the items under `items` (`None` = the body is the array); stops
    /// at an empty or short page, or when `total` items were read.
    PageNumber {
        items: Option<&'static str>,
        total: Option<&'static str>,
        per_page: usize,
    },
    /// GitLab: the array body, the next page number in `X-Next-Page`.
    NextPageHeader,
    /// A token in the body (`next_page_token`) sent back as a query parameter (`page-token`).
    BodyToken {
        items: &'static str,
        token: &'static str,
        param: &'static str,
    },
    /// A token in a response header (Azure's `x-ms-continuationtoken`) sent back as a query
    /// parameter (`continuationToken`).
    HeaderToken {
        items: &'static str,
        header: &'static str,
        param: &'static str,
    },
    /// RFC 8288 `Link: <…>; rel="next"` (Buildkite), the array body.
    LinkHeader,
}

/// Pages read at most per list: a bound on work, not a product limit.
const MAX_PAGES: usize = 50;

/// Redirects followed at most per call, as browsers and reqwest's default do.
const MAX_REDIRECTS: usize = 10;

/// A platform's API: its root URL, credentials and fixed headers.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// The origin credentials go to; `None` when the root is no plain http(s) URL.
    origin: Option<url::Origin>,
    auth: Auth,
    headers: Vec<(&'static str, &'static str)>,
    opts: HttpOptions,
}

/// What every pipeguard HTTP client has: its name and bounded waits.
fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("pipeguard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
}

fn shared_http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| http_builder().build().expect("HTTP client builds"))
        .clone()
}

/// The platform clients' HTTP client: it follows no redirect itself, so that every hop is
/// checked by [`ApiClient`] (credentials go only to the API's own origin).
fn api_http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            http_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client builds")
        })
        .clone()
}

/// A plain client for calls outside a platform API (notifications, custom fixes).
pub fn client() -> reqwest::Client {
    shared_http()
}

/// Scheme, host and port, compared exactly: `https://ci.example.com.evil.net` or
/// `http://ci.example.com@evil.example` are other origins. A URL with user info is no
/// origin pipeguard sends anything to.
fn origin(url: &Url) -> Option<url::Origin> {
    let plain = url.username().is_empty() && url.password().is_none();
    let origin = url.origin();
    (plain && origin.is_tuple()).then_some(origin)
}

fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long the server asks us to wait: `Retry-After` (seconds or an HTTP date), GitHub's
/// `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch seconds), or GitLab's 429 with
/// `RateLimit-Reset` (epoch seconds) alone, as some of its limits answer.
pub fn requested_wait(status: StatusCode, h: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            let at = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok()?;
            return Some(Duration::from_secs(at.saturating_sub(now_secs())));
        }
    }
    let limited = status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN;
    let reset = if limited && text("x-ratelimit-remaining") == Some("0") {
        text("x-ratelimit-reset")
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        text("ratelimit-reset")
    } else {
        None
    };
    let reset: u64 = reset?.parse().ok()?;
    Some(Duration::from_secs(reset.saturating_sub(now_secs()).max(1)))
}

/// What one try produced.
enum Try {
    Done(Response),
    Again(String, Option<Duration>),
    Fail(PlatformError),
}

impl ApiClient {
    pub fn new(base: &str, auth: Auth, opts: HttpOptions) -> ApiClient {
        let base = base.trim().trim_end_matches('/').to_string();
        ApiClient {
            http: api_http(),
            origin: Url::parse(&base).ok().as_ref().and_then(origin),
            base,
            auth,
            headers: Vec::new(),
            opts,
        }
    }

    /// A header sent with every call (GitHub's `Accept` and API version).
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> ApiClient {
        self.headers.push((name, value));
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_credentials(&self) -> bool {
        !matches!(self.auth, Auth::None)
    }

    /// `path` under the root, or an absolute URL as it is (links the API handed out).
    pub fn url(&self, path: &str) -> String {
        if is_absolute(path) {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Whether `url` is on the API's own origin (where its credentials may go).
    pub fn on_origin(&self, url: &Url) -> bool {
        self.origin.is_some() && origin(url) == self.origin
    }

    /// Where a call goes: a path under the root, or a URL the platform handed out (a queue
    /// item, a next page), which must be on the API's own origin: anything else is refused
    /// rather than sent the credentials or fetched blind.
    pub fn target(&self, path: &str) -> Result<Url, PlatformError> {
        let url = Url::parse(&self.url(path))
            .map_err(|e| PlatformError::Permanent(format!("{path:?} is not a URL: {e}")))?;
        if is_absolute(path) && !self.on_origin(&url) {
            return Err(PlatformError::Permanent(format!(
                "{} is not on the configured API origin {}; not called",
                redacted(&url),
                self.base
            )));
        }
        Ok(url)
    }

    /// A request with the credentials and fixed headers; credentials only go to the API's own
    /// origin (a pre-signed download link elsewhere gets none).
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let mut b = self.http.request(method, url);
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        if !Url::parse(url).is_ok_and(|u| self.on_origin(&u)) {
            return b;
        }
        match &self.auth {
            Auth::None => b,
            Auth::Bearer(t) => b.bearer_auth(t),
            Auth::Header(name, t) => b.header(*name, t),
            Auth::Basic(u, p) => b.basic_auth(u, p.as_ref()),
        }
    }

    /// A GET of a URL the platform handed out that lives elsewhere by design (CircleCI's
    /// pre-signed step output): never with credentials, user info refused.
    pub async fn get_elsewhere(&self, what: &str, url: &str) -> Result<Response, PlatformError> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| origin(u).is_some())
            .ok_or_else(|| {
                PlatformError::Permanent(format!("{what}: {url:?} is no plain http(s) URL"))
            })?;
        self.send_with(what, self.opts.tries, || {
            self.anonymous(Method::GET, &parsed)
        })
        .await
    }

    /// A request without credentials: only the fixed headers.
    fn anonymous(&self, method: Method, url: &Url) -> RequestBuilder {
        let mut b = self.http.request(method, url.clone());
        for (k, v) in &self.headers {
            b = b.header(*k, *v);
        }
        b
    }

    /// Sends `req`, following redirects: on the same origin as it is, to another origin only
    /// as a plain GET without credentials or cookies (GitHub's log downloads go to blob
    /// storage), never to a URL with user info.
    async fn follow(&self, what: &str, mut req: Request) -> Result<Response, Try> {
        for _ in 0..=MAX_REDIRECTS {
            let again = req.try_clone();
            let from = req.url().clone();
            let method = req.method().clone();
            let r = match self.http.execute(req).await {
                Ok(r) => r,
                Err(e) => return Err(Try::Again(format!("{what}: {e}"), None)),
            };
            let Some(to) = redirect_target(&r, &from) else {
                return Ok(r);
            };
            let refuse =
                |why: String| Try::Fail(PlatformError::Permanent(format!("{what}: {why}")));
            if origin(&to).is_none() {
                return Err(refuse(format!(
                    "redirected to {}; not followed",
                    redacted(&to)
                )));
            }
            let to_get = r.status() == StatusCode::SEE_OTHER
                || (method == Method::POST && r.status().as_u16() < 303);
            req = if origin(&to) == origin(&from) {
                let mut next = again.ok_or_else(|| refuse("a redirected stream".into()))?;
                *next.url_mut() = to;
                if to_get {
                    *next.method_mut() = Method::GET;
                    *next.body_mut() = None;
                    next.headers_mut().remove(reqwest::header::CONTENT_TYPE);
                }
                next
            } else if method == Method::GET || to_get {
                self.anonymous(Method::GET, &to)
                    .build()
                    .map_err(|e| refuse(e.to_string()))?
            } else {
                return Err(refuse(format!(
                    "a {method} redirected to another origin ({}); not followed",
                    redacted(&to)
                )));
            };
        }
        Err(Try::Fail(PlatformError::Permanent(format!(
            "{what}: more than {MAX_REDIRECTS} redirects"
        ))))
    }

    async fn one_try(&self, what: &str, req: RequestBuilder) -> Try {
        let req = match req.build() {
            Ok(req) => req,
            Err(e) => return Try::Fail(PlatformError::Permanent(format!("{what}: {e}"))),
        };
        match self.follow(what, req).await {
            Ok(r) if r.status().is_success() => Try::Done(r),
            Ok(r) => {
                let status = r.status();
                let wait = requested_wait(status, r.headers());
                if transient(status) || wait.is_some() {
                    return Try::Again(format!("{what}: HTTP {status}"), wait);
                }
                let body = r.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                Try::Fail(PlatformError::Refused {
                    status: status.as_u16(),
                    message: format!("{what}: HTTP {status}: {body}"),
                })
            }
            Err(t) => t,
        }
    }

    /// Sends what `make` builds, up to `tries` times on transient answers. Non-success answers
    /// become [`PlatformError`]s; a long requested wait is handed back as `Busy`.
    pub async fn send_with(
        &self,
        what: &str,
        tries: u32,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, PlatformError> {
        let endpoint = breaker::key(&self.base);
        breaker::admit(&endpoint, &self.opts)?;
        let backoff = Backoff::uncapped(self.opts.backoff);
        let mut last = String::new();
        for i in 0..tries.max(1) {
            match self.one_try(what, make()).await {
                Try::Done(r) => {
                    breaker::success(&endpoint);
                    return Ok(r);
                }
                Try::Fail(e) => {
                    // The service answered: it is up, whatever it thought of the request.
                    API_ERRORS.fetch_add(1, Ordering::Relaxed);
                    breaker::success(&endpoint);
                    return Err(e);
                }
                Try::Again(msg, wait) => {
                    API_ERRORS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempt = i + 1, "{msg}");
                    last = msg;
                    if let Some(w) = wait {
                        if w > self.opts.max_inline_wait || i + 1 == tries.max(1) {
                            breaker::success(&endpoint);
                            return Err(PlatformError::Busy {
                                message: last,
                                retry_after: w,
                            });
                        }
                        tokio::time::sleep(w).await;
                    } else if i + 1 < tries.max(1) {
                        tokio::time::sleep(backoff.delay(i, rand::random())).await;
                    }
                }
            }
        }
        breaker::failure(&endpoint, &self.opts);
        Err(PlatformError::Transient(last))
    }

    /// A call with the configured number of tries.
    pub async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, PlatformError> {
        let url = self.target(path)?;
        self.send_with(what, self.opts.tries, || {
            let b = self.request(method.clone(), url.as_str());
            match body {
                Some(v) => b.json(v),
                None => b,
            }
        })
        .await
    }

    /// A call made exactly once: one that starts a run must not be repeated on a lost answer,
    /// which may hide a run that started.
    pub async fn call_once(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, PlatformError> {
        let url = self.target(path)?;
        self.send_with(what, 1, || {
            let b = self.request(method.clone(), url.as_str());
            match body {
                Some(v) => b.json(v),
                None => b,
            }
        })
        .await
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T, PlatformError> {
        read_json(what, self.call(what, Method::GET, path, None).await?).await
    }

    /// Every item of a paginated list (bounded to [`MAX_PAGES`] pages).
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        paging: Paging,
    ) -> Result<Vec<T>, PlatformError> {
        let mut items: Vec<T> = Vec::new();
        let mut next: Option<String> = Some(first_page(path, paging));
        for page in 1..=MAX_PAGES {
            let Some(url) = next.take() else { break };
            let r = self.call(what, Method::GET, &url, None).await?;
            let headers = r.headers().clone();
            let body: Value = read_json(what, r).await?;
            let (batch, more, total) = page_items(what, body, paging)?;
            let n = batch.len();
            items.extend(batch);
            if total.is_some_and(|t| items.len() as u64 >= t) {
                break;
            }
            next = next_page(path, paging, page, n, &headers, more.as_ref());
        }
        Ok(items)
    }

    /// The last [`LOG_TAIL_BYTES`] of a log; `None` when the platform no longer has it (a
    /// 4xx: logs expire), so the failure is diagnosed without it rather than not at all.
    pub async fn log_tail(&self, what: &str, path: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        match self.call(what, Method::GET, path, None).await {
            Ok(r) => Ok(Some(read_tail(r, LOG_TAIL_BYTES, what).await?)),
            Err(PlatformError::Refused { message, .. }) => {
                tracing::warn!("log unavailable: {message}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn is_absolute(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://")
}

/// A URL for a message: without its user info, which may be a credential.
fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Where a 3xx answer points, resolved against the URL asked.
fn redirect_target(r: &Response, from: &Url) -> Option<Url> {
    if !r.status().is_redirection() || r.status() == StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = r.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    from.join(location).ok()
}

/// A request outside a platform API (a notification channel, a custom fix's endpoint), with
/// the same retries, waits and circuit breaker as platform calls.
pub async fn send(
    what: &str,
    url: &str,
    opts: &HttpOptions,
    make: impl Fn() -> RequestBuilder,
) -> Result<Response, PlatformError> {
    ApiClient::new(url, Auth::None, opts.clone())
        .send_with(what, opts.tries, make)
        .await
}

pub async fn read_json<T: DeserializeOwned>(what: &str, r: Response) -> Result<T, PlatformError> {
    r.json()
        .await
        .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))
}

fn with_query(path: &str, k: &str, v: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{k}={}", encode(v))
}

fn first_page(path: &str, paging: Paging) -> String {
    match paging {
        Paging::PageNumber { per_page, .. } => with_query(
            &with_query(path, "per_page", &per_page.to_string()),
            "page",
            "1",
        ),
        Paging::NextPageHeader => with_query(path, "page", "1"),
        _ => path.to_string(),
    }
}

/// One page's items, with the continuation token and the list's total when the body has them.
type Page<T> = (Vec<T>, Option<String>, Option<u64>);

fn page_items<T: DeserializeOwned>(
    what: &str,
    mut body: Value,
    paging: Paging,
) -> Result<Page<T>, PlatformError> {
    let total = match paging {
        Paging::PageNumber { total: Some(k), .. } => body[k].as_u64(),
        _ => None,
    };
    let (list, token) = match paging {
        Paging::PageNumber { items: Some(k), .. } => (body[k].take(), None),
        Paging::PageNumber { items: None, .. } | Paging::NextPageHeader | Paging::LinkHeader => {
            (body, None)
        }
        Paging::BodyToken { items, token, .. } => {
            let t = body[token].as_str().map(String::from);
            (body[items].take(), t)
        }
        Paging::HeaderToken { items, .. } => (body[items].take(), None),
    };
    let list = if list.is_null() {
        Value::Array(vec![])
    } else {
        list
    };
    let items = serde_json::from_value(list)
        .map_err(|e| PlatformError::Transient(format!("{what}: unexpected answer: {e}")))?;
    Ok((items, token.filter(|t| !t.is_empty()), total))
}

fn next_page(
    path: &str,
    paging: Paging,
    page: usize,
    got: usize,
    headers: &HeaderMap,
    body_token: Option<&String>,
) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    match paging {
        Paging::PageNumber { per_page, .. } => (got >= per_page).then(|| {
            let p = with_query(path, "per_page", &per_page.to_string());
            with_query(&p, "page", &(page + 1).to_string())
        }),
        Paging::NextPageHeader => {
            let n: usize = header("x-next-page")?.parse().ok()?;
            (n > page).then(|| with_query(path, "page", &n.to_string()))
        }
        Paging::BodyToken { param, .. } => body_token.map(|t| with_query(path, param, t)),
        Paging::HeaderToken {
            header: h, param, ..
        } => header(h).map(|t| with_query(path, param, &t)),
        Paging::LinkHeader => link_next(&header("link")?),
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn link_next(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

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

/// Milliseconds since the Unix epoch (0 if the clock is before it). The one clock of this crate:
/// platforms sits below the store in the crate graph, so it cannot use `pipeguard_store::now_ms`.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn opts() -> HttpOptions {
        HttpOptions {
            tries: 3,
            backoff: Duration::from_millis(5),
            ..Default::default()
        }
    }

    #[test]
    fn names_cannot_add_segments_or_queries() {
        assert_eq!(
            encode("../../user/repos?x="),
            "..%2F..%2Fuser%2Frepos%3Fx%3D"
        );
        assert_eq!(encode("grp/sub/my.proj"), "grp%2Fsub%2Fmy.proj");
        assert_eq!(encode("a b#c"), "a%20b%23c");
    }

    #[test]
    fn link_header_next() {
        let l = r#"<https://api.buildkite.com/v2/x?page=2>; rel="next", <https://api.buildkite.com/v2/x?page=9>; rel="last""#;
        assert_eq!(
            link_next(l).as_deref(),
            Some("https://api.buildkite.com/v2/x?page=2")
        );
        assert_eq!(link_next(r#"<https://x?page=9>; rel="last""#), None);
    }

    #[test]
    fn waits_asked_by_the_server() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            requested_wait(StatusCode::TOO_MANY_REQUESTS, &h),
            Some(Duration::from_secs(3))
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert(
            "x-ratelimit-reset",
            (now_secs() + 120).to_string().parse().unwrap(),
        );
        let w = requested_wait(StatusCode::FORBIDDEN, &h).unwrap();
        assert!(
            w >= Duration::from_secs(118) && w <= Duration::from_secs(120),
            "{w:?}"
        );
        // Remaining calls left: a 403 is a refusal, not a wait.
        h.insert("x-ratelimit-remaining", "10".parse().unwrap());
        assert_eq!(requested_wait(StatusCode::FORBIDDEN, &h), None);
        // GitLab's 429 without Retry-After: until RateLimit-Reset.
        let mut h = HeaderMap::new();
        h.insert(
            "ratelimit-reset",
            (now_secs() + 60).to_string().parse().unwrap(),
        );
        let w = requested_wait(StatusCode::TOO_MANY_REQUESTS, &h).unwrap();
        assert!(
            w >= Duration::from_secs(58) && w <= Duration::from_secs(60),
            "{w:?}"
        );
        assert_eq!(requested_wait(StatusCode::OK, &h), None);
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_long_waits_are_handed_back() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/short"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/short"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": 1})))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/long"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "60"))
            .expect(1)
            .mount(&mock)
            .await;
        let c = ApiClient::new(&mock.uri(), Auth::None, opts());
        let t = std::time::Instant::now();
        let v: Value = c.get_json("short", "/short").await.unwrap();
        assert_eq!(v["ok"], 1);
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "{:?}",
            t.elapsed()
        );
        match c.get_json::<Value>("long", "/long").await {
            Err(PlatformError::Busy { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(60))
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        mock.verify().await;
    }

    #[tokio::test]
    async fn pages_follow_each_style() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/gl"))
            .and(query_param("page", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "2")
                    .set_body_json(serde_json::json!([1, 2])),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/gl"))
            .and(query_param("page", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "")
                    .set_body_json(serde_json::json!([3])),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/cc"))
            .and(query_param("page-token", "t/2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"items": [5], "next_page_token": null})),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/cc"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"items": [4], "next_page_token": "t/2"})),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/gh"))
            .and(query_param("page", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"total_count": 3, "jobs": [1, 2]})),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/gh"))
            .and(query_param("page", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"total_count": 3, "jobs": [3]})),
            )
            .mount(&mock)
            .await;
        let c = ApiClient::new(&mock.uri(), Auth::None, opts());
        let gl: Vec<u32> = c
            .get_all("gl", "/gl", Paging::NextPageHeader)
            .await
            .unwrap();
        assert_eq!(gl, [1, 2, 3]);
        let token = Paging::BodyToken {
            items: "items",
            token: "next_page_token",
            param: "page-token",
        };
        let cc: Vec<u32> = c.get_all("cc", "/cc", token).await.unwrap();
        assert_eq!(cc, [4, 5]);
        let numbered = Paging::PageNumber {
            items: Some("jobs"),
            total: Some("total_count"),
            per_page: 2,
        };
        let gh: Vec<u32> = c.get_all("gh", "/gh", numbered).await.unwrap();
        assert_eq!(gh, [1, 2, 3]);
    }

    #[test]
    fn origins_are_compared_exactly() {
        let c = ApiClient::new("https://ci.example.com/api/v3", Auth::None, opts());
        let on = |u: &str| c.on_origin(&Url::parse(u).unwrap());
        assert!(on("https://ci.example.com/queue/item/1/"));
        assert!(on("https://CI.example.com:443/x"));
        for other in [
            "https://ci.example.com.evil.net/x",
            "http://ci.example.com/x",
            "https://ci.example.com:8443/x",
            "https://ci.example.com@evil.example/x",
            "https://user:pw@ci.example.com/x",
        ] {
            assert!(!on(other), "{other}");
            assert!(
                matches!(c.target(other), Err(PlatformError::Permanent(_))),
                "{other}"
            );
        }
        assert_eq!(
            c.target("/repos/o/r").unwrap().as_str(),
            "https://ci.example.com/api/v3/repos/o/r"
        );
    }

    #[tokio::test]
    async fn a_redirect_on_the_origin_keeps_the_credential_and_a_post_becomes_a_get() {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/old"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/new"))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/new"))
            .and(wiremock::matchers::header("private-token", "t"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": 2})))
            .expect(1)
            .mount(&mock)
            .await;
        let c = ApiClient::new(
            &mock.uri(),
            Auth::Header("PRIVATE-TOKEN", "t".into()),
            opts(),
        );
        let body = serde_json::json!({"a": 1});
        let r = c.call("moved", Method::POST, "/old", Some(&body)).await;
        let v: Value = read_json("moved", r.unwrap()).await.unwrap();
        assert_eq!(v["ok"], 2);
        mock.verify().await;
    }

    #[tokio::test]
    async fn a_write_is_not_redirected_to_another_origin() {
        let (api, elsewhere) = (MockServer::start().await, MockServer::start().await);
        Mock::given(method("PUT"))
            .respond_with(
                ResponseTemplate::new(307).insert_header("location", elsewhere.uri() + "/x"),
            )
            .mount(&api)
            .await;
        let c = ApiClient::new(&api.uri(), Auth::Bearer("t".into()), opts());
        let r = c.call("write", Method::PUT, "/x", None).await;
        assert!(matches!(r, Err(PlatformError::Permanent(_))), "{r:?}");
        assert!(elsewhere.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn only_the_tail_of_a_long_body_is_kept() {
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
