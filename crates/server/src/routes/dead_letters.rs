//! Dead letters: work that failed for good. `GET /api/v1/dead-letters` lists them;
//! `POST /api/v1/sessions/{id}/retry` (operators) sends a session's dead letters again.

use super::query::{Limit, Limited};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pipeguard_store::DeadLetter;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct DeadLetters {
    #[schema(value_type = Vec<crate::routes::openapi::schema::DeadLetter>)]
    pub dead_letters: Vec<DeadLetter>,
    /// All dead letters, not only those listed.
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Retried {
    /// The kinds of work queued again.
    pub requeued: Vec<String>,
    pub session_id: String,
    /// The status the session reopened in.
    pub status: &'static str,
}

/// `GET /api/v1/dead-letters`: work that failed for good, newest first.
#[utoipa::path(
    get, path = "/api/v1/dead-letters", tag = "sessions", params(Limit),
    responses(
        (status = 200, description = "The dead letters and how many there are", body = DeadLetters),
        (status = 400, description = "A bad limit", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(st): State<Shared>,
    Limited(limit): Limited,
) -> Result<Json<DeadLetters>, ApiError> {
    let dead_letters = st.store.dead_letters(limit).await?;
    let total = st.store.dead_letter_count().await?;
    Ok(Json(DeadLetters {
        dead_letters,
        total,
    }))
}

/// `POST /api/v1/sessions/{id}/retry`: send a failed session's dead letters again (operators).
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/retry", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 202, description = "Queued again; the session reopened", body = Retried),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
        (status = 409, description = "Not failed, or nothing dead", body = crate::error::ErrorBody),
    )
)]
pub async fn retry(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
) -> Result<impl IntoResponse, ApiError> {
    let r = crate::approvals::retry(&st, &id, &who).await?;
    let body = Retried {
        requeued: r.kinds,
        session_id: id,
        status: r.status.as_str(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}
