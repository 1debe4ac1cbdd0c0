//! `GET /api/v1/audit` (admins): the audit trail, newest first, with its integrity.

use super::query::Q;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::State;
use axum::Json;
use pipeguard_store::{AuditHead, AuditProblem, AuditQuery, AuditRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// 1..=1000 (default 100).
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    /// An action (`approval.granted`) or a family (`approval.*`).
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    /// Also walk the whole chain (slower on a long trail).
    #[serde(default)]
    verify: bool,
}

/// Audit entries, newest first; with `verify=true` also the chain's integrity.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<crate::routes::openapi::schema::AuditRecord>)]
    pub entries: Vec<AuditRecord>,
    /// Absent without `verify`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Integrity)]
    pub integrity: Option<Integrity>,
}

/// The chain's integrity, with `verify=true` (all three fields, or none).
#[derive(Serialize, ToSchema)]
pub struct Integrity {
    #[schema(value_type = Option<Object>)]
    pub head: Option<AuditHead>,
    #[schema(required = false)]
    pub intact: bool,
    #[schema(value_type = Option<Object>)]
    pub problem: Option<AuditProblem>,
}

/// `GET /api/v1/audit`: the audit trail, newest first (admins).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin", params(Params),
    responses(
        (status = 200, description = "Entries, and with `verify` the chain's integrity", body = AuditPage),
        (status = 400, description = "A bad limit, offset or parameter", body = crate::error::ErrorBody),
    )
)]
pub async fn list(State(st): State<Shared>, Q(p): Q<Params>) -> Result<Json<AuditPage>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    let offset = p.offset.unwrap_or(0);
    crate::error::check_page(limit, offset, 1000)?;
    let entries = st
        .store
        .audit_entries(&AuditQuery {
            limit,
            offset,
            action: p.action,
            actor: p.actor,
            target: p.target,
        })
        .await?;
    let integrity = match p.verify {
        true => {
            let report = st.store.verify_audit().await?;
            Some(Integrity {
                intact: report.is_intact(),
                head: report.head,
                problem: report.problem,
            })
        }
        false => None,
    };
    Ok(Json(AuditPage { entries, integrity }))
}
