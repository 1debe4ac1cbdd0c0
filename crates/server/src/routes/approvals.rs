//! `POST /api/v1/sessions/{id}/approve|reject` and `GET /api/v1/approvals`: a person's decision
//! on a plan that waits, recorded under the credential's identity (never a body field).

use crate::approvals::{self, Decided, DecisionError};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::sessions::session_json;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pipeguard_store::{SessionFilter, SessionStatus};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest comment kept with a decision.
const MAX_COMMENT: usize = 2000;

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct Decision {
    /// Kept with the decision (at most 2000 characters).
    #[serde(default)]
    comment: Option<String>,
    /// Accepted from older clients and ignored: the approver is the credential's identity.
    #[serde(default)]
    #[allow(dead_code)]
    by: Option<String>,
}

fn decision(body: Result<Json<Decision>, JsonRejection>) -> Result<Decision, ApiError> {
    let Json(d) = body?;
    if d.comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        return Err(ApiError::bad_request(format!(
            "comment is longer than {MAX_COMMENT} characters"
        )));
    }
    Ok(d)
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> ApiError {
        match e {
            DecisionError::NotFound(_) => ApiError::not_found(e.to_string()),
            DecisionError::Conflict(m) => ApiError::conflict(m),
            DecisionError::Store(s) => s.into(),
        }
    }
}

/// `POST /api/v1/sessions/{id}/approve`: the credential's approval of the waiting plan.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/approve", tag = "sessions", params(("id" = String, Path, description = "The session id")),
    request_body(content = Decision, description = "An optional comment", content_type = "application/json"),
    responses(
        (status = 202, description = "Approved: the plan runs, or waits for more approvals", body = crate::routes::openapi::schema::Approved),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "The session waits for no approval, or this identity approved already", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn approve(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    body: Result<Json<Decision>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let d = decision(body)?;
    let body = match approvals::approve(&st, &id, &who, d.comment.as_deref()).await? {
        Decided::Approved { by } => {
            json!({"session_id": id, "status": "planned", "approved_by": by})
        }
        Decided::Waiting {
            approvals,
            required,
        } => json!({"session_id": id, "status": "awaiting_approval", "approvals": approvals,
                   "required": required, "approved_by": [who.name]}),
        Decided::Rejected => unreachable!("approve never rejects"),
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `POST /api/v1/sessions/{id}/reject`: the plan is not run; the session is escalated.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/reject", tag = "sessions", params(("id" = String, Path, description = "The session id")),
    request_body(content = Decision, description = "An optional comment", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected", body = crate::routes::openapi::schema::Rejected),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "The session waits for no approval", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn reject(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    body: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let d = decision(body)?;
    approvals::reject(&st, &id, &who, d.comment.as_deref()).await?;
    Ok(Json(
        json!({"session_id": id, "status": "escalated", "rejected_by": who.name}),
    ))
}

/// Plans waiting for people, with the approvals each has and when it lapses.
#[utoipa::path(
    get, path = "/api/v1/approvals", tag = "sessions",
    responses((status = 200, description = "Plans waiting for approval", body = crate::routes::openapi::schema::ApprovalList))
)]
pub async fn list(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let filter = SessionFilter {
        status: Some(SessionStatus::AwaitingApproval),
        ..Default::default()
    };
    let mut out = Vec::new();
    for s in st.store.find_sessions(&filter, 500, 0).await? {
        let approvals = approvals::current_approvals(&st, &s).await?;
        out.push(json!({
            "session": session_json(&s),
            "plan": s.plan,
            "approvals": approvals,
            "required": st.config.approvals.required,
            "expires_at": approvals::expires_at(&st, &s),
        }));
    }
    Ok(Json(json!({"approvals": out})))
}
