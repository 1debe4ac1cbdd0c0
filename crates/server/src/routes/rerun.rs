//! `POST /api/v1/sessions/{id}/rerun`: ask for a re-run of a session's run (operators; coding
//! agents through MCP). The planner decides (see `crate::rerun`); the answer says what it did.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::rerun::{self, Asked};
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

/// Longest reason kept with a request.
const MAX_REASON: usize = 2000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Why a re-run is wanted (on the timeline and in the audit trail; at most 2000 characters).
    reason: String,
}

/// `POST /api/v1/sessions/{id}/rerun`: the planner decides on a re-run (operators).
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/rerun", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    request_body(content = RerunRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Granted: `decision` is `rerun` (the worker re-runs it) or `awaiting_approval`", body = crate::routes::openapi::schema::RerunAnswer),
        (status = 400, description = "No reason, or a bad body", body = crate::routes::openapi::schema::ErrorBody),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "Refused (`error` is `refused`): a genuine failure, no attempt left, a session pipeguard still handles or a green run; nothing was called", body = crate::routes::openapi::schema::RerunAnswer),
    )
)]
pub async fn rerun(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    body: Result<Json<RerunRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let why = b.reason.trim();
    if why.is_empty() || why.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "reason must be 1..={MAX_REASON} characters"
        )));
    }
    let answer = match rerun::request(&st, &id, &who, why).await? {
        Asked::Granted { status, reason } => {
            let decision = if status == pipeguard_store::SessionStatus::Planned {
                "rerun"
            } else {
                status.as_str()
            };
            let body = json!({"session_id": id, "decision": decision, "status": status,
                              "reason": reason, "requested_by": who.name});
            (StatusCode::ACCEPTED, Json(body))
        }
        Asked::Refused { status, reason } => {
            let body = json!({"error": "refused", "message": reason, "session_id": id,
                              "decision": "refused", "status": status, "reason": reason,
                              "requested_by": who.name});
            (StatusCode::CONFLICT, Json(body))
        }
    };
    Ok(answer.into_response())
}
