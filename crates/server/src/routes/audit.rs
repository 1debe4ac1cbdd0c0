//! `GET /api/v1/audit` (admins): the audit trail, newest first, with its integrity.

use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use pipeguard_store::AuditQuery;
use serde::Deserialize;
use serde_json::{json, Value};

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

/// `GET /api/v1/audit`: the audit trail, newest first (admins).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin", params(Params),
    responses(
        (status = 200, description = "Entries, and with `verify` the chain's integrity", body = crate::routes::openapi::schema::AuditPage),
        (status = 400, description = "A bad limit, offset or parameter", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn list(
    State(st): State<Shared>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
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
    let mut body = json!({"entries": entries});
    if p.verify {
        let report = st.store.verify_audit().await?;
        body["intact"] = json!(report.is_intact());
        body["head"] = json!(report.head);
        body["problem"] = json!(report.problem);
    }
    Ok(Json(body))
}
