//! `GET /api/v1/stats/daily?days=N`: outcomes and time to green per UTC day, for the charts.

use crate::error::ApiError;
use crate::routes::query::Q;
use crate::Shared;
use axum::extract::State;
use axum::Json;
use pipeguard_store::{now_ms, DayOutcome, DAY_MS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

#[derive(Serialize, ToSchema)]
pub struct DailyStats {
    #[schema(value_type = Vec<crate::routes::openapi::schema::DayOutcome>)]
    pub days: Vec<DayOutcome>,
}

#[utoipa::path(
    get, path = "/api/v1/stats/daily", tag = "learning", params(DailyQuery),
    responses(
        (status = 200, description = "Outcomes per UTC day", body = DailyStats),
        (status = 400, description = "days out of range", body = crate::error::ErrorBody),
    )
)]
pub async fn daily(
    State(st): State<Shared>,
    Q(q): Q<DailyQuery>,
) -> Result<Json<DailyStats>, ApiError> {
    if !(1..=366).contains(&q.days) {
        return Err(ApiError::bad_request("days must be 1..=366"));
    }
    let now = now_ms();
    let days = st
        .store
        .daily_outcomes(now - (q.days - 1) * DAY_MS, now)
        .await?;
    Ok(Json(DailyStats { days }))
}
