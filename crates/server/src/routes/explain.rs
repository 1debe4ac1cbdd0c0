//! `POST /api/v1/sessions/{id}/explain`: an operator asks the configured model about a
//! session's failure now. The explanation is stored with the session's diagnosis (replacing
//! an earlier one) and returned; it changes neither the diagnosis nor the plan.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::Diagnosis;
use pipeguard_store::{SessionRecord, Transition};
use serde_json::Value;

fn no_model() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_model",
        "no model is configured: set PIPEGUARD_LLM_URL and PIPEGUARD_LLM_MODEL (or url and \
         model under [llm])",
    )
}

/// The session's diagnosis and the failed job it speaks for.
fn diagnosed(s: &SessionRecord) -> Result<(Diagnosis, Option<JobDiagnosis>), ApiError> {
    let stored = s.diagnosis.as_ref().ok_or_else(|| {
        ApiError::conflict(format!(
            "session {} has no diagnosis yet ({}); ask once it is analyzed",
            s.id,
            s.status.as_str()
        ))
    })?;
    let d: Diagnosis = serde_json::from_value(stored.clone())
        .map_err(|e| ApiError::conflict(format!("the stored diagnosis cannot be read: {e}")))?;
    let jobs: Vec<JobDiagnosis> =
        serde_json::from_value(stored.get("jobs").cloned().unwrap_or_default()).unwrap_or_default();
    let job = jobs
        .iter()
        .find(|j| j.diagnosis.fingerprint == d.fingerprint)
        .or(jobs.first())
        .cloned();
    Ok((d, job))
}

/// `POST /api/v1/sessions/{id}/explain`: ask the configured model now (operators).
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/explain", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 200, description = "The model's explanation, as stored under `diagnosis.explanation`", content_type = "application/json", body = Object),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
        (status = 409, description = "The session has no diagnosis yet", body = crate::error::ErrorBody),
        (status = 503, description = "No model is configured", body = crate::error::ErrorBody),
    )
)]
pub async fn explain(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let s = crate::routes::sessions::find(&st, &id).await?;
    let analyst = st.analyst.clone().ok_or_else(no_model)?;
    let (d, job) = diagnosed(&s)?;
    // The log itself is kept only when the event carried it; else the stored evidence.
    let lines = s
        .event
        .log
        .as_deref()
        .map(|l| crate::analyst::context_lines(l.as_bytes(), &d.evidence))
        .unwrap_or_default();
    let job_name = job.as_ref().map(|j| j.job.name.clone()).unwrap_or_default();
    let e = crate::analyst::ask(&st, &analyst, &s, &d, job.as_ref().map(|j| &j.job), lines).await;
    // Asked after the plan: it decides nothing (the diagnosis's `analyzer` still says
    // whether an earlier answer did).
    let stored = crate::analyst::stored(&e, &job_name, false);
    let mut diagnosis = s.diagnosis.clone().unwrap_or_default();
    diagnosis["explanation"] = stored.clone();
    let message = format!("{} asked the model: {}", who.name, e.reason);
    // The same status: only the diagnosis changes, and the timeline says who asked.
    let saved = st
        .store
        .update_session(
            &id,
            Transition::new(pipeguard_core::lifecycle::Event::Amend(s.status), &message),
            pipeguard_store::SessionUpdate {
                diagnosis: Some(diagnosis),
                ..Default::default()
            },
        )
        .await?;
    if !saved {
        tracing::info!(session = %id, "the session moved on; the explanation is returned only");
    }
    Ok(Json(stored))
}
