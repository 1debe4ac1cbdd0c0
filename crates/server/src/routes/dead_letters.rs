//! Dead letters: work that failed for good. `GET /api/v1/dead-letters` lists them;
//! `POST /api/v1/sessions/{id}/retry` (operators) sends a session's dead letters again.

use crate::audit;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pipeguard_store::RetryDead;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn list(
    State(st): State<Shared>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1..=1000"));
    }
    let letters = st.store.dead_letters(limit).await?;
    let total = st.store.dead_letter_count().await?;
    Ok(Json(json!({"dead_letters": letters, "total": total})))
}

pub async fn retry(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
) -> Result<impl IntoResponse, ApiError> {
    match st.store.retry_dead(&id, &who.name).await? {
        RetryDead::NotFound => Err(ApiError::not_found(format!("no session {id}"))),
        RetryDead::NotFailed(s) => Err(ApiError::conflict(format!(
            "session {id} is {}, not failed: only a failed session's work is sent again",
            s.as_str()
        ))),
        RetryDead::NothingDead => Err(ApiError::conflict(format!(
            "session {id} has no dead letters"
        ))),
        RetryDead::Requeued { kinds, status } => {
            let detail = json!({"requeued": kinds, "status": status.as_str()});
            audit::record(&st, &who.name, "session.retried", &id, detail).await;
            st.worker_wake.notify_one();
            let body = json!({"session_id": id, "status": status.as_str(), "requeued": kinds});
            Ok((StatusCode::ACCEPTED, Json(body)))
        }
    }
}
