//! `POST /api/v1/sessions/{id}/approve|reject` and `GET /api/v1/approvals`: a person's decision
//! on a plan that waits, recorded under the credential's identity (never a body field).

use crate::approvals::{self, Decided, DecisionError};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::sessions::Session;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pipeguard_core::heal::StoredPlan;
use pipeguard_store::{ApprovalRecord, SessionFilter, SessionStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// An approval: `planned` when enough people approved, else still `awaiting_approval`
/// with the count so far.
#[derive(Serialize, ToSchema)]
pub struct Approved {
    /// How many approved so far; only while more must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<usize>,
    pub approved_by: Vec<String>,
    /// How many must; only while more must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<usize>,
    pub session_id: String,
    /// `planned` or `awaiting_approval`.
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Rejected {
    pub rejected_by: String,
    pub session_id: String,
    /// `escalated`.
    pub status: &'static str,
}

/// A plan waiting for people.
#[derive(Serialize, ToSchema)]
pub struct PendingApproval {
    #[schema(value_type = Vec<crate::routes::openapi::schema::ApprovalRecord>)]
    pub approvals: Vec<ApprovalRecord>,
    /// When the approvals given so far lapse (ms since the epoch).
    pub expires_at: i64,
    #[schema(value_type = Option<Object>)]
    pub plan: Option<StoredPlan>,
    pub required: u32,
    pub session: Session,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<PendingApproval>,
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
        (status = 202, description = "Approved: the plan runs, or waits for more approvals", body = Approved),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
        (status = 409, description = "The session waits for no approval, or this identity approved already", body = crate::error::ErrorBody),
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
        Decided::Approved { by } => Approved {
            approvals: None,
            approved_by: by,
            required: None,
            session_id: id,
            status: "planned",
        },
        Decided::Waiting {
            approvals,
            required,
        } => Approved {
            approvals: Some(approvals),
            approved_by: vec![who.name],
            required: Some(required),
            session_id: id,
            status: "awaiting_approval",
        },
        Decided::Rejected => unreachable!("approve never rejects"),
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `POST /api/v1/sessions/{id}/reject`: the plan is not run; the session is escalated.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/reject", tag = "sessions", params(("id" = String, Path, description = "The session id")),
    request_body(content = Decision, description = "An optional comment", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected", body = Rejected),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
        (status = 409, description = "The session waits for no approval", body = crate::error::ErrorBody),
    )
)]
pub async fn reject(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
    body: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<Rejected>, ApiError> {
    let d = decision(body)?;
    approvals::reject(&st, &id, &who, d.comment.as_deref()).await?;
    Ok(Json(Rejected {
        rejected_by: who.name,
        session_id: id,
        status: "escalated",
    }))
}

/// Plans waiting for people, with the approvals each has and when it lapses.
#[utoipa::path(
    get, path = "/api/v1/approvals", tag = "sessions",
    responses((status = 200, description = "Plans waiting for approval", body = ApprovalList))
)]
pub async fn list(State(st): State<Shared>) -> Result<Json<ApprovalList>, ApiError> {
    let filter = SessionFilter {
        status: Some(SessionStatus::AwaitingApproval),
        ..Default::default()
    };
    let mut out = Vec::new();
    for s in st.store.find_sessions(&filter, 500, 0).await? {
        let approvals = approvals::current_approvals(&st, &s).await?;
        out.push(PendingApproval {
            approvals,
            expires_at: approvals::expires_at(&st, &s),
            plan: s.plan.clone(),
            required: st.config.approvals.required,
            session: Session::of(&s),
        });
    }
    Ok(Json(ApprovalList { approvals: out }))
}
