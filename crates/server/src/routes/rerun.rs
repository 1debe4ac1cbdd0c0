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
use pipeguard_store::SessionStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest reason kept with a request.
const MAX_REASON: usize = 2000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Why a re-run is wanted (on the timeline and in the audit trail; at most 2000 characters).
    reason: String,
}

/// What the planner made of a requested re-run.
#[derive(Serialize, ToSchema)]
pub struct RerunAnswer {
    /// `rerun`, `awaiting_approval` or `refused`.
    pub decision: &'static str,
    /// `refused`, on a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The reason again, on a refusal (as every error body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The planner's reason (also on the timeline).
    pub reason: String,
    /// The identity that asked (`mcp:TOKEN-NAME` through MCP).
    pub requested_by: String,
    pub session_id: String,
    /// The session's status after the decision.
    #[schema(value_type = String)]
    pub status: SessionStatus,
}

/// `POST /api/v1/sessions/{id}/rerun`: the planner decides on a re-run (operators).
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/rerun", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    request_body(content = RerunRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Granted: `decision` is `rerun` (the worker re-runs it) or `awaiting_approval`", body = RerunAnswer),
        (status = 400, description = "No reason, or a bad body", body = crate::error::ErrorBody),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
        (status = 409, description = "Refused (`error` is `refused`): a genuine failure, no attempt left, a session pipeguard still handles or a green run; nothing was called", body = RerunAnswer),
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
    let answer = |decision, refused: bool, status, reason: String| RerunAnswer {
        decision,
        error: refused.then_some("refused"),
        message: refused.then(|| reason.clone()),
        reason,
        requested_by: who.name.clone(),
        session_id: id.clone(),
        status,
    };
    let (code, body) = match rerun::request(&st, &id, &who, why).await? {
        Asked::Granted { status, reason } => {
            let decision = if status == SessionStatus::Planned {
                "rerun"
            } else {
                status.as_str()
            };
            (
                StatusCode::ACCEPTED,
                answer(decision, false, status, reason),
            )
        }
        Asked::Refused { status, reason } => (
            StatusCode::CONFLICT,
            answer("refused", true, status, reason),
        ),
    };
    Ok((code, Json(body)).into_response())
}
