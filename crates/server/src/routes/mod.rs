//! The HTTP routes: intake, the seed's `/pipeline/*` endpoints, the API and metrics.

pub mod learning;
pub mod sessions;
pub mod status;
pub mod webhooks;

use crate::error::ApiError;
use crate::{metrics, Shared};
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(status::healthz))
        .route("/webhooks/{platform}", post(webhooks::receive))
        .route("/pipeline/webhook", post(webhooks::generic))
        .route("/pipeline/status", get(status::status))
        .route("/pipeline/healing/history", get(status::history))
        .route("/pipeline/test/trigger", post(status::test_trigger))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/stats", get(metrics::stats))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route("/api/v1/sessions/{id}", get(sessions::get_session))
        .route("/api/v1/sessions/{id}/approve", post(sessions::approve))
        .route("/api/v1/sessions/{id}/reject", post(sessions::reject))
        .route("/api/v1/sessions/{id}/verdict", post(learning::verdict))
        .route("/api/v1/flaky-tests", get(learning::flaky_tests))
        .route(
            "/api/v1/quarantine",
            get(learning::quarantine_list)
                .post(learning::quarantine_add)
                .delete(learning::quarantine_remove),
        )
        .fallback(status::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_webhooks,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
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
