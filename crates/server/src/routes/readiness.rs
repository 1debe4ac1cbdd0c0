//! `GET /api/v1/readiness` (how often pipeguard would have been right, per repository),
//! `GET /api/v1/readiness/cases` (the decisions behind one repository's figures) and
//! `POST /api/v1/mode` (switch a repository between observe and act; admins, audited).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use pipeguard_core::event::Platform;
use pipeguard_core::planner::Mode;
use pipeguard_core::readiness::{readiness as figures, recommendation, RepositoryReadiness};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadinessQuery {
    /// One repository; all of them without it.
    #[serde(default)]
    repository: Option<String>,
}

/// The readiness of `repository` (or of every repository with recorded decisions).
pub async fn report(
    st: &Shared,
    repository: Option<&str>,
) -> Result<Vec<RepositoryReadiness>, pipeguard_store::StoreError> {
    let mut out = Vec::new();
    for g in st.store.readiness_rows(repository).await? {
        let platform = Platform::parse(&g.platform).unwrap_or(Platform::Generic);
        let decided: Vec<_> = g.rows.iter().map(|r| r.decided()).collect();
        out.push(RepositoryReadiness {
            mode: st.mode_for(platform, &g.repository).await?,
            figures: figures(&decided),
            since: g.rows.first().map(|r| r.record.failed_at),
            repository: g.repository,
            platform: g.platform,
        });
    }
    Ok(out)
}

/// `GET /api/v1/readiness`: per repository, the decisions a later re-run measured.
#[utoipa::path(
    get, path = "/api/v1/readiness", tag = "sessions", params(ReadinessQuery),
    responses((status = 200, description = "One row per repository", body = crate::routes::openapi::schema::ReadinessList))
)]
pub async fn readiness(
    State(st): State<Shared>,
    q: Result<Query<ReadinessQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request(e.body_text()))?.0;
    let repos = report(&st, q.repository.as_deref().map(str::trim)).await?;
    Ok(Json(json!({ "repositories": repos })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CasesQuery {
    repository: String,
}

/// `GET /api/v1/readiness/cases?repository=R`: the recommendation in words and each decision
/// behind the figures, with its session.
#[utoipa::path(
    get, path = "/api/v1/readiness/cases", tag = "sessions", params(CasesQuery),
    responses(
        (status = 200, description = "The repository's decisions, oldest failure first", body = crate::routes::openapi::schema::ReadinessCases),
        (status = 400, description = "No repository given", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn cases(
    State(st): State<Shared>,
    q: Result<Query<CasesQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request(e.body_text()))?.0;
    let repository = q.repository.trim();
    if repository.is_empty() {
        return Err(ApiError::bad_request("repository must not be empty"));
    }
    let groups = st.store.readiness_rows(Some(repository)).await?;
    let rows: Vec<_> = groups.iter().flat_map(|g| &g.rows).collect();
    let decided: Vec<_> = rows.iter().map(|r| r.decided()).collect();
    let cases: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"session_id": r.record.session_id, "platform": r.record.platform,
                   "mode": r.record.mode, "would_retry": r.record.would_retry,
                   "outcome": r.outcome, "failed_at": r.record.failed_at,
                   "rerun_at": r.rerun_at, "branch": r.record.on.branch,
                   "head_sha": r.record.on.head_sha})
        })
        .collect();
    Ok(Json(json!({
        "repository": repository,
        "recommendation": recommendation(&figures(&decided)),
        "cases": cases,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// The repository as its platform names it (`owner/repo`, a GitLab project path…).
    repository: String,
    /// `act` or `observe`.
    mode: String,
}

/// The longest repository name taken (GitLab paths nest; none comes near this).
const MAX_REPOSITORY: usize = 512;

/// `POST /api/v1/mode`: switches a repository between observe and act; it overrides the
/// configuration file's mode from the next failure on.
#[utoipa::path(
    post, path = "/api/v1/mode", tag = "admin", request_body = ModeRequest,
    responses(
        (status = 200, description = "The repository's mode now, and the one set before (null: the file's)", body = crate::routes::openapi::schema::ModeSet),
        (status = 400, description = "An empty repository or an unknown mode", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn set_mode(
    State(st): State<Shared>,
    Extension(who): Extension<Principal>,
    body: Result<Json<ModeRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(r) = body?;
    let repository = r.repository.trim();
    if repository.is_empty()
        || repository.len() > MAX_REPOSITORY
        || repository.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "repository: 1-{MAX_REPOSITORY} characters, no control characters"
        )));
    }
    let mode = Mode::parse(r.mode.trim()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "mode {:?} is not a mode: use act or observe",
            r.mode
        ))
    })?;
    let before = st.store.set_mode(repository, mode, &who.name).await?;
    tracing::info!(repository, %mode, by = %who.name, "mode set");
    Ok(Json(
        json!({"repository": repository, "mode": mode, "before": before}),
    ))
}
