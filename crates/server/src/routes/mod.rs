//! The HTTP routes. Open: `/healthz`, `/openapi.json`, the webhooks (each platform proves itself with its own
//! secret) and `/metrics` (unless `[metrics] token` is set). Everything else needs a bearer
//! credential with the role `auth::ROUTES` names.

pub mod approvals;
pub mod audit;
pub mod dead_letters;
pub mod events;
pub mod explain;
pub mod learning;
pub mod openapi;
pub mod readiness;
pub mod sessions;
pub mod status;
pub mod tokens;
pub mod webhooks;

use crate::error::ApiError;
use crate::{auth, dashboard, metrics, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// Routes that need a credential; `auth::authorize` checks it against the route's role.
fn api(st: &Shared) -> Router<Shared> {
    Router::new()
        .route("/pipeline/status", get(status::status))
        .route("/pipeline/healing/history", get(status::history))
        .route("/pipeline/test/trigger", post(status::test_trigger))
        .route("/api/v1/stats", get(metrics::stats))
        .route("/api/v1/stats/daily", get(dashboard::daily::daily))
        // Server-sent events: the request timeout ends at the headers, sent at once.
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route("/api/v1/sessions/{id}", get(sessions::get_session))
        .route("/api/v1/sessions/{id}/approve", post(approvals::approve))
        .route("/api/v1/sessions/{id}/reject", post(approvals::reject))
        .route("/api/v1/sessions/{id}/verdict", post(learning::verdict))
        .route("/api/v1/sessions/{id}/retry", post(dead_letters::retry))
        .route("/api/v1/sessions/{id}/explain", post(explain::explain))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route("/api/v1/flaky-tests", get(learning::flaky_tests))
        .route(
            "/api/v1/quarantine",
            get(learning::quarantine_list)
                .post(learning::quarantine_add)
                .delete(learning::quarantine_remove),
        )
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{name}", delete(tokens::revoke))
        .route("/api/v1/whoami", get(tokens::whoami))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/readiness", get(readiness::readiness))
        .route("/api/v1/readiness/cases", get(readiness::cases))
        .route("/api/v1/mode", post(readiness::set_mode))
        .route_layer(from_fn_with_state(st.clone(), auth::authorize))
        .layer(DefaultBodyLimit::max(st.config.api.max_body_bytes))
}

pub fn router(st: Shared) -> Router {
    let timeout = Duration::from_secs(st.config.api.request_timeout_seconds.max(1));
    Router::new()
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/openapi.json", get(openapi::document))
        .route("/webhooks/{platform}", post(webhooks::receive))
        .route("/pipeline/webhook", post(webhooks::generic))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .merge(api(&st))
        .fallback(status::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(st.clone(), metrics::count_webhooks))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(from_fn(json_errors))
        .layer(from_fn_with_state(st.clone(), security_headers))
        .with_state(st)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Every error is `{"error", "message"}` JSON, whatever answered it (the router's 405, the
/// body limit's 413, an extractor's 415 or 422, the timeout's 408).
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response();
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Answers are not cached or sniffed; with TLS, browsers are told to stay on HTTPS.
async fn security_headers(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if st.config.tls.cert.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    resp
}

/// A request body read up to `limit` bytes; 413 beyond.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    })
}

pub fn unsupported_media_type(content_type: &str) -> ApiError {
    let message = if content_type.is_empty() {
        "missing Content-Type: send application/json".to_string()
    } else {
        format!("content type {content_type:?} is not accepted: send application/json")
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// The bounds of a list endpoint's paging parameters (`max` is the endpoint's largest page),
/// with one message for all of them.
pub(crate) fn check_page(limit: i64, offset: i64, max: i64) -> Result<(), ApiError> {
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1..={max}")));
    }
    if offset < 0 {
        return Err(ApiError::bad_request("offset must be >= 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every authenticated route is in the role table, so none falls back to admin-only by
    /// mistake and none is open by omission.
    #[test]
    fn every_api_route_has_a_role() {
        let routes = [
            ("GET", "/pipeline/status"),
            ("GET", "/pipeline/healing/history"),
            ("POST", "/pipeline/test/trigger"),
            ("GET", "/api/v1/stats"),
            ("GET", "/api/v1/stats/daily"),
            ("GET", "/api/v1/events"),
            ("GET", "/api/v1/sessions"),
            ("GET", "/api/v1/sessions/{id}"),
            ("POST", "/api/v1/sessions/{id}/approve"),
            ("POST", "/api/v1/sessions/{id}/reject"),
            ("POST", "/api/v1/sessions/{id}/verdict"),
            ("POST", "/api/v1/sessions/{id}/explain"),
            ("GET", "/api/v1/approvals"),
            ("GET", "/api/v1/flaky-tests"),
            ("GET", "/api/v1/quarantine"),
            ("POST", "/api/v1/quarantine"),
            ("DELETE", "/api/v1/quarantine"),
            ("GET", "/api/v1/tokens"),
            ("POST", "/api/v1/tokens"),
            ("DELETE", "/api/v1/tokens/{name}"),
            ("GET", "/api/v1/whoami"),
            ("GET", "/api/v1/audit"),
            ("GET", "/api/v1/readiness"),
            ("GET", "/api/v1/readiness/cases"),
            ("POST", "/api/v1/mode"),
        ];
        let table: Vec<_> = super::auth::table().collect();
        for r in routes {
            assert!(table.contains(&r), "{r:?} is not in auth::ROUTES");
        }
    }
}
