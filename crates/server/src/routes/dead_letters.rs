//! Dead letters: work that failed for good. `GET /api/v1/dead-letters` lists them;
//! `POST /api/v1/sessions/{id}/retry` (operators) sends a session's dead letters again.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// 1..=1000 (default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/dead-letters`: work that failed for good, newest first.
#[utoipa::path(
    get, path = "/api/v1/dead-letters", tag = "sessions", params(Params),
    responses(
        (status = 200, description = "The dead letters and how many there are", body = crate::routes::openapi::schema::DeadLetters),
        (status = 400, description = "A bad limit", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn list(
    State(st): State<Shared>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(100);
    crate::error::check_page(limit, 0, 1000)?;
    let letters = st.store.dead_letters(limit).await?;
    let total = st.store.dead_letter_count().await?;
    Ok(Json(json!({"dead_letters": letters, "total": total})))
}

/// `POST /api/v1/sessions/{id}/retry`: send a failed session's dead letters again (operators).
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/retry", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 202, description = "Queued again; the session reopened", body = crate::routes::openapi::schema::Retried),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "Not failed, or nothing dead", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn retry(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
) -> Result<impl IntoResponse, ApiError> {
    let r = crate::approvals::retry(&st, &id, &who).await?;
    let body = json!({"session_id": id, "status": r.status.as_str(), "requeued": r.kinds});
    Ok((StatusCode::ACCEPTED, Json(body)))
}
