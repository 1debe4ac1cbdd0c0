//! The API of what pipeguard learns: flaky tests, the quarantine list and human verdicts.
//!
//! - `GET /api/v1/flaky-tests?repository=&limit=`: tests that were flaky at least once, ranked
//!   by the time their failures cost.
//! - `GET /api/v1/quarantine?repository=`, `POST /api/v1/quarantine` `{repository, test,
//!   reason, owner?, file?, expires_in_days?}` (201; see `crate::quarantine`), `DELETE /api/v1/quarantine?repository=R&test=T` (200, or 404 when not
//!   quarantined). Repository and test names hold `/` and `::`, so they travel in the query or
//!   body rather than in path segments.
//! - `POST /api/v1/sessions/{id}/verdict` `{category, note?}`: 201 with the stored verdict.

use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pipeguard_core::Category;
use pipeguard_store::{TestStats, VerdictRecord};
use serde::Deserialize;
use serde_json::{json, Value};

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    Ok(b.map(|Json(t)| t)?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlakyQuery {
    #[serde(default)]
    repository: String,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

pub fn flaky_json(s: &TestStats) -> Value {
    json!({
        "test": s.test,
        "repository": s.repository,
        "runs": s.runs,
        "failures": s.failures,
        "flaky_failures": s.flaky_failures,
        "flakiness_rate": s.flakiness_rate,
        "time_lost_seconds": s.time_lost_ms as f64 / 1000.0,
        "first_seen": s.first_seen_at,
        "last_seen": s.last_seen_at,
        "quarantined": s.quarantined,
        "known_flaky": crate::flaky::is_known_flaky(s),
        "runs_including_retries": s.runs_including_retries,
        "failed_attempts": s.failed_attempts,
        "attempt_failure_rate": s.attempt_failure_rate(),
        "trend": {"failures_this_week": s.failures_this_week,
                  "failures_last_week": s.failures_last_week,
                  "worse_this_week": s.worse_this_week()},
    })
}

/// `GET /api/v1/flaky-tests`: flaky tests ranked by the time their failures cost.
#[utoipa::path(
    get, path = "/api/v1/flaky-tests", tag = "learning", params(FlakyQuery),
    responses(
        (status = 200, description = "Flaky tests", body = crate::routes::openapi::schema::FlakyTests),
        (status = 400, description = "A bad limit or parameter", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn flaky_tests(
    State(st): State<Shared>,
    q: Result<Query<FlakyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    crate::error::check_page(q.limit, 0, 500)?;
    let tests = st.store.flaky_tests(&q.repository, q.limit).await?;
    Ok(Json(
        json!({"flaky_tests": tests.iter().map(flaky_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RepoQuery {
    #[serde(default)]
    repository: String,
}

/// `GET /api/v1/quarantine`: quarantined tests.
#[utoipa::path(
    get, path = "/api/v1/quarantine", tag = "learning", params(RepoQuery),
    responses((status = 200, description = "Quarantined tests", body = crate::routes::openapi::schema::QuarantineList))
)]
pub async fn quarantine_list(
    State(st): State<Shared>,
    q: Result<Query<RepoQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    Ok(Json(
        json!({"quarantine": st.store.quarantine_list(&q.repository).await?}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRequest {
    repository: String,
    test: String,
    #[serde(default)]
    reason: String,
    /// Who fixes it (default: CODEOWNERS of `file`, the repository's `default_owner`, the caller).
    #[serde(default)]
    owner: Option<String>,
    /// The test's file, whose CODEOWNERS entry names the owner.
    #[serde(default)]
    file: Option<String>,
    /// Released after this many days at the latest (1..=365, default 14).
    #[serde(default)]
    expires_in_days: Option<u32>,
}

fn required(name: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{name} must not be empty")));
    }
    Ok(())
}

/// `POST /api/v1/quarantine`: quarantines a test.
#[utoipa::path(
    post, path = "/api/v1/quarantine", tag = "learning", request_body = QuarantineRequest,
    responses(
        (status = 201, description = "Quarantined", body = crate::routes::openapi::schema::QuarantineEntry),
        (status = 400, description = "An empty repository or test", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn quarantine_add(
    State(st): State<Shared>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    b: Result<Json<QuarantineRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let r = body(b)?;
    required("repository", &r.repository)?;
    required("test", &r.test)?;
    let max = crate::quarantine::MAX_DAYS;
    if r.expires_in_days.is_some_and(|d| !(1..=max).contains(&d)) {
        return Err(ApiError::bad_request(format!(
            "expires_in_days must be 1..={max}"
        )));
    }
    let asked = crate::quarantine::Request {
        repository: r.repository.trim(),
        test: r.test.trim(),
        reason: r.reason.trim(),
        owner: r.owner.as_deref(),
        file: r.file.as_deref().map(str::trim).filter(|f| !f.is_empty()),
        expires_in_days: r.expires_in_days,
    };
    let entry = crate::quarantine::quarantine(&st, &asked, &who).await?;
    Ok((StatusCode::CREATED, Json(json!(entry))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuarantineKey {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    test: String,
}

/// `DELETE /api/v1/quarantine?repository=R&test=T`: lifts a quarantine.
#[utoipa::path(
    delete, path = "/api/v1/quarantine", tag = "learning", params(QuarantineKey),
    responses(
        (status = 200, description = "Lifted", body = crate::routes::openapi::schema::QuarantineRemoved),
        (status = 400, description = "An empty repository or test", body = crate::routes::openapi::schema::ErrorBody),
        (status = 404, description = "The test is not quarantined", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn quarantine_remove(
    State(st): State<Shared>,
    q: Result<Query<QuarantineKey>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let k = query(q)?;
    required("repository", &k.repository)?;
    required("test", &k.test)?;
    let (repository, test) = (k.repository.trim(), k.test.trim());
    if !st.store.quarantine_remove(repository, test).await? {
        return Err(ApiError::not_found(format!(
            "{test} is not quarantined in {repository}"
        )));
    }
    Ok(Json(
        json!({"repository": repository, "test": test, "removed": true}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictRequest {
    category: String,
    #[serde(default)]
    note: String,
}

#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/verdict", tag = "learning",
    params(("id" = String, Path, description = "The session id")), request_body = VerdictRequest,
    responses(
        (status = 201, description = "The stored verdict", body = crate::routes::openapi::schema::Verdict),
        (status = 400, description = "An unknown category", body = crate::routes::openapi::schema::ErrorBody),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
/// A human's category for a session. It trains the learned classifier and counts in the
/// knowledge base's agreement figures; the session itself is not changed.
pub async fn verdict(
    State(st): State<Shared>,
    Path(id): Path<String>,
    b: Result<Json<VerdictRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let r = body(b)?;
    let category: Category = r.category.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "unknown category {:?}; one of: {}",
            r.category,
            Category::ALL.map(|c| c.as_str()).join(", ")
        ))
    })?;
    let s = st
        .store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    let diagnosis = s.diagnosis.clone().unwrap_or(Value::Null);
    let stored = st
        .store
        .put_verdict(&VerdictRecord {
            session_id: s.id.clone(),
            category: category.to_string(),
            diagnosed_category: s.category.clone(),
            diagnosed_by: diagnosis["analyzer"].as_str().map(str::to_string),
            note: r.note.trim().to_string(),
            evidence: crate::learned::evidence_text_json(&diagnosis),
            created_at: 0,
        })
        .await?;
    if category == Category::FlakyTest {
        crate::flaky::human_says_flaky(&st, &s).await?;
    }
    let said = s.category.as_deref().unwrap_or("nothing");
    st.store
        .note(
            &s.id,
            s.status,
            &format!("verdict: a human says {category} (pipeguard said {said})"),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(stored))))
}
