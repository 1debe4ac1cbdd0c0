//! `GET /api/v1/stats/daily?days=N`: outcomes and time to green per UTC day, for the charts.

use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use pipeguard_store::{now_ms, DAY_MS};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// 1..=366 (default 30).
    #[serde(default = "default_days")]
    days: i64,
}

fn default_days() -> i64 {
    30
}

#[utoipa::path(
    get, path = "/api/v1/stats/daily", tag = "learning", params(DailyQuery),
    responses(
        (status = 200, description = "Outcomes per UTC day", body = crate::routes::openapi::schema::DailyStats),
        (status = 400, description = "days out of range", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn daily(
    State(st): State<Shared>,
    q: Result<Query<DailyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !(1..=366).contains(&q.days) {
        return Err(ApiError::bad_request("days must be 1..=366"));
    }
    let now = now_ms();
    let days = st
        .store
        .daily_outcomes(now - (q.days - 1) * DAY_MS, now)
        .await?;
    Ok(Json(json!({"days": days})))
}
