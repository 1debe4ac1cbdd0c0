//! Incidents: `GET /api/v1/incidents` lists them; `POST /api/v1/incidents/{id}/close`
//! (operators) closes one by hand — its held sessions are then released in the paced wave,
//! as when a canary is green.

use super::query::{Limit, Limited};
use crate::audit;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use pipeguard_store::IncidentSummary;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// An outage as the API and its notifications show it: failures of one transient cause on
/// one external target from many repositories. Its sessions are held, probed by one canary
/// at a time, and released in a paced wave when it closes.
#[derive(Serialize, ToSchema)]
pub struct Incident {
    /// Canary re-runs that probed the cause.
    pub canaries: i64,
    /// The failure category (`dependency_download`, `network`, `service_unavailable`…).
    pub cause: String,
    /// `null` while open.
    pub closed_at: Option<i64>,
    pub id: i64,
    /// Milliseconds since the epoch.
    pub opened_at: i64,
    /// Repositories that failed with the cause (from the detection window before it
    /// opened until it closed).
    pub repositories: i64,
    /// Sessions it held.
    pub sessions_held: i64,
    /// Held sessions its wave released for their re-run.
    pub sessions_released: i64,
    /// The external host the failures named (`registry.npmjs.org`).
    pub target: String,
}

impl Incident {
    pub fn of(i: &IncidentSummary) -> Incident {
        let r = &i.incident;
        Incident {
            canaries: r.canaries,
            cause: r.cause.clone(),
            closed_at: r.closed_at,
            id: r.id,
            opened_at: r.opened_at,
            repositories: i.repositories,
            sessions_held: i.sessions_held,
            sessions_released: r.sessions_released,
            target: r.target.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Incidents {
    pub incidents: Vec<Incident>,
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
    get, path = "/api/v1/incidents", tag = "sessions", params(Limit),
    responses(
        (status = 200, description = "The incidents, newest first", body = Incidents),
        (status = 400, description = "A bad limit", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(st): State<Shared>,
    Limited(limit): Limited,
) -> Result<Json<Incidents>, ApiError> {
    let all = st.store.list_incidents(None, limit, window_ms(&st)).await?;
    Ok(Json(Incidents {
        incidents: all.iter().map(Incident::of).collect(),
    }))
}

/// `POST /api/v1/incidents/{id}/close`: close an open incident by hand (operators); its held
/// sessions are released in the paced wave.
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/close", tag = "sessions",
    params(("id" = i64, Path, description = "The incident id")),
    responses(
        (status = 200, description = "Closed; the wave releases its held sessions", body = Incident),
        (status = 400, description = "Not an incident id", body = crate::error::ErrorBody),
        (status = 404, description = "No such incident", body = crate::error::ErrorBody),
        (status = 409, description = "Closed already", body = crate::error::ErrorBody),
    )
)]
pub async fn close(
    State(st): State<Shared>,
    id: Result<Path<i64>, PathRejection>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Incident>, ApiError> {
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
    let body = Incident::of(&closed);
    audit::record(
        &st,
        &who.name,
        "incident.closed",
        &id.to_string(),
        json!(body),
    )
    .await;
    crate::worker::closed_by_hand(&st, id).await;
    st.worker_wake.notify_one();
    Ok(Json(body))
}
