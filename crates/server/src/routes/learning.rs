//! The API of what pipeguard learns: flaky tests, the quarantine list and human verdicts.
//!
//! - `GET /api/v1/flaky-tests?repository=&limit=`: tests that were flaky at least once, ranked
//!   by the time their failures cost.
//! - `GET /api/v1/quarantine?repository=`, `POST /api/v1/quarantine` `{repository, test,
//!   reason, owner?, file?, expires_in_days?}` (201; see `crate::quarantine`), `DELETE /api/v1/quarantine?repository=R&test=T` (200, or 404 when not
//!   quarantined). Repository and test names hold `/` and `::`, so they travel in the query or
//!   body rather than in path segments.
//! - `POST /api/v1/sessions/{id}/verdict` `{category, note?}`: 201 with the stored verdict.

use super::query::Q;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pipeguard_core::Category;
use pipeguard_store::{QuarantineEntry, TestStats, VerdictRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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

/// A test that failed and passed on the same code, and what it cost.
#[derive(Serialize, ToSchema)]
pub struct FlakyTest {
    /// `failed_attempts / runs_including_retries`: what retries cannot hide.
    pub attempt_failure_rate: f64,
    /// Of `runs_including_retries`, the attempts that failed.
    pub failed_attempts: i64,
    pub failures: i64,
    pub first_seen: i64,
    pub flakiness_rate: f64,
    pub flaky_failures: i64,
    pub known_flaky: bool,
    pub last_seen: i64,
    pub quarantined: bool,
    pub repository: String,
    pub runs: i64,
    /// Attempts of the runs it failed in, re-runs included.
    pub runs_including_retries: i64,
    pub test: String,
    pub time_lost_seconds: f64,
    pub trend: FlakyTrend,
}

/// Failures in the last 7 days against the 7 before.
#[derive(Serialize, ToSchema)]
pub struct FlakyTrend {
    pub failures_last_week: i64,
    pub failures_this_week: i64,
    pub worse_this_week: bool,
}

impl FlakyTest {
    pub fn of(s: &TestStats) -> FlakyTest {
        FlakyTest {
            attempt_failure_rate: s.attempt_failure_rate(),
            failed_attempts: s.failed_attempts,
            failures: s.failures,
            first_seen: s.first_seen_at,
            flakiness_rate: s.flakiness_rate,
            flaky_failures: s.flaky_failures,
            known_flaky: crate::flaky::is_known_flaky(s),
            last_seen: s.last_seen_at,
            quarantined: s.quarantined,
            repository: s.repository.clone(),
            runs: s.runs,
            runs_including_retries: s.runs_including_retries,
            test: s.test.clone(),
            time_lost_seconds: s.time_lost_ms as f64 / 1000.0,
            trend: FlakyTrend {
                failures_last_week: s.failures_last_week,
                failures_this_week: s.failures_this_week,
                worse_this_week: s.worse_this_week(),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FlakyTests {
    pub flaky_tests: Vec<FlakyTest>,
}

#[derive(Serialize, ToSchema)]
pub struct QuarantineList {
    #[schema(value_type = Vec<crate::routes::openapi::schema::QuarantineEntry>)]
    pub quarantine: Vec<QuarantineEntry>,
}

/// `GET /api/v1/flaky-tests`: flaky tests ranked by the time their failures cost.
#[utoipa::path(
    get, path = "/api/v1/flaky-tests", tag = "learning", params(FlakyQuery),
    responses(
        (status = 200, description = "Flaky tests", body = FlakyTests),
        (status = 400, description = "A bad limit or parameter", body = crate::error::ErrorBody),
    )
)]
pub async fn flaky_tests(
    State(st): State<Shared>,
    Q(q): Q<FlakyQuery>,
) -> Result<Json<FlakyTests>, ApiError> {
    crate::error::check_page(q.limit, 0, 500)?;
    let tests = st.store.flaky_tests(&q.repository, q.limit).await?;
    Ok(Json(FlakyTests {
        flaky_tests: tests.iter().map(FlakyTest::of).collect(),
    }))
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
    responses((status = 200, description = "Quarantined tests", body = QuarantineList))
)]
pub async fn quarantine_list(
    State(st): State<Shared>,
    Q(q): Q<RepoQuery>,
) -> Result<Json<QuarantineList>, ApiError> {
    let quarantine = st.store.quarantine_list(&q.repository).await?;
    Ok(Json(QuarantineList { quarantine }))
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
        (status = 400, description = "An empty repository or test", body = crate::error::ErrorBody),
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
    Ok((StatusCode::CREATED, Json(entry)))
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

#[derive(Serialize, ToSchema)]
pub struct QuarantineRemoved {
    pub removed: bool,
    pub repository: String,
    pub test: String,
}

/// `DELETE /api/v1/quarantine?repository=R&test=T`: lifts a quarantine.
#[utoipa::path(
    delete, path = "/api/v1/quarantine", tag = "learning", params(QuarantineKey),
    responses(
        (status = 200, description = "Lifted", body = QuarantineRemoved),
        (status = 400, description = "An empty repository or test", body = crate::error::ErrorBody),
        (status = 404, description = "The test is not quarantined", body = crate::error::ErrorBody),
    )
)]
pub async fn quarantine_remove(
    State(st): State<Shared>,
    Q(k): Q<QuarantineKey>,
) -> Result<Json<QuarantineRemoved>, ApiError> {
    required("repository", &k.repository)?;
    required("test", &k.test)?;
    let (repository, test) = (k.repository.trim(), k.test.trim());
    if !st.store.quarantine_remove(repository, test).await? {
        return Err(ApiError::not_found(format!(
            "{test} is not quarantined in {repository}"
        )));
    }
    Ok(Json(QuarantineRemoved {
        removed: true,
        repository: repository.to_string(),
        test: test.to_string(),
    }))
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
        (status = 400, description = "An unknown category", body = crate::error::ErrorBody),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
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
    Ok((StatusCode::CREATED, Json(stored)))
}
