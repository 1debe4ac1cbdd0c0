//! Incidents: `GET /api/v1/incidents` lists them; `POST /api/v1/incidents/{id}/close`
//! (operators) closes one by hand — its held sessions are then released in the paced wave,
//! as when a canary is green.

use crate::audit;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use pipeguard_store::IncidentSummary;
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

/// An incident as the API and its notifications show it.
pub fn incident_json(i: &IncidentSummary) -> Value {
    let r = &i.incident;
    json!({
        "id": r.id,
        "cause": r.cause,
        "target": r.target,
        "opened_at": r.opened_at,
        "closed_at": r.closed_at,
        "repositories": i.repositories,
        "sessions_held": i.sessions_held,
        "sessions_released": r.sessions_released,
        "canaries": r.canaries,
    })
}

fn window_ms(st: &Shared) -> i64 {
    st.config.incidents.window_minutes as i64 * 60_000
}

/// The incident with what it touched.
pub async fn summary(st: &Shared, id: i64) -> Result<Option<IncidentSummary>, ApiError> {
    Ok(st
        .store
        .list_incidents(Some(id), 1, window_ms(st))
        .await?
        .pop())
}

/// `GET /api/v1/incidents`: newest first.
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "sessions", params(Params),
    responses(
        (status = 200, description = "The incidents, newest first", body = crate::routes::openapi::schema::Incidents),
        (status = 400, description = "A bad limit", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn list(
    State(st): State<Shared>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(100);
    super::check_page(limit, 0, 1000)?;
    let all = st.store.list_incidents(None, limit, window_ms(&st)).await?;
    let list: Vec<Value> = all.iter().map(incident_json).collect();
    Ok(Json(json!({ "incidents": list })))
}

/// `POST /api/v1/incidents/{id}/close`: close an open incident by hand (operators); its held
/// sessions are released in the paced wave.
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/close", tag = "sessions",
    params(("id" = i64, Path, description = "The incident id")),
    responses(
        (status = 200, description = "Closed; the wave releases its held sessions", body = crate::routes::openapi::schema::Incident),
        (status = 400, description = "Not an incident id", body = crate::routes::openapi::schema::ErrorBody),
        (status = 404, description = "No such incident", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "Closed already", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn close(
    State(st): State<Shared>,
    id: Result<Path<i64>, PathRejection>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if st.store.get_incident(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no incident {id}")));
    }
    if !st.store.close_incident(id, &who.name).await? {
        return Err(ApiError::conflict(format!(
            "incident {id} is closed already"
        )));
    }
    let closed = summary(&st, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    let body = incident_json(&closed);
    audit::record(
        &st,
        &who.name,
        "incident.closed",
        &id.to_string(),
        body.clone(),
    )
    .await;
    crate::worker::closed_by_hand(&st, id).await;
    st.worker_wake.notify_one();
    Ok(Json(body))
}
