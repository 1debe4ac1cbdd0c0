//! `GET /api/v1/readiness` (how often pipeguard would have been right, per repository),
//! `GET /api/v1/readiness/cases` (the decisions behind one repository's figures) and
//! `POST /api/v1/mode` (switch a repository between observe and act; admins, audited).

use super::query::Q;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::{Extension, Json};
use pipeguard_core::event::Platform;
use pipeguard_core::planner::Mode;
use pipeguard_core::readiness::{
    readiness as figures, recommendation, Outcome, RepositoryReadiness,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

#[derive(Serialize, ToSchema)]
pub struct ReadinessList {
    #[schema(value_type = Vec<crate::routes::openapi::schema::Readiness>)]
    pub repositories: Vec<RepositoryReadiness>,
}

/// `GET /api/v1/readiness`: per repository, the decisions a later re-run measured.
#[utoipa::path(
    get, path = "/api/v1/readiness", tag = "sessions", params(ReadinessQuery),
    responses((status = 200, description = "One row per repository", body = ReadinessList))
)]
pub async fn readiness(
    State(st): State<Shared>,
    Q(q): Q<ReadinessQuery>,
) -> Result<Json<ReadinessList>, ApiError> {
    let repositories = report(&st, q.repository.as_deref().map(str::trim)).await?;
    Ok(Json(ReadinessList { repositories }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CasesQuery {
    repository: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReadinessCases {
    pub cases: Vec<ReadinessCase>,
    /// `act: …` or `observe: …`, with the figures behind it.
    pub recommendation: String,
    pub repository: String,
}

/// One decision behind the figures.
#[derive(Serialize, ToSchema)]
pub struct ReadinessCase {
    /// The failure's branch and commit, where its platform told them.
    pub branch: Option<String>,
    pub failed_at: i64,
    pub head_sha: Option<String>,
    /// The mode it was decided in.
    #[schema(value_type = String)]
    pub mode: Mode,
    /// `confirmed`, `contradicted`, `missed`, `fixed_by_push` (a later green run of its
    /// workflow on its branch was for a new commit), or null.
    #[schema(value_type = Option<String>)]
    pub outcome: Option<Outcome>,
    pub platform: String,
    /// When a person re-ran it; null when nobody did (or pipeguard did).
    pub rerun_at: Option<i64>,
    pub session_id: String,
    pub would_retry: bool,
}

/// `GET /api/v1/readiness/cases?repository=R`: the recommendation in words and each decision
/// behind the figures, with its session.
#[utoipa::path(
    get, path = "/api/v1/readiness/cases", tag = "sessions", params(CasesQuery),
    responses(
        (status = 200, description = "The repository's decisions, oldest failure first", body = ReadinessCases),
        (status = 400, description = "No repository given", body = crate::error::ErrorBody),
    )
)]
pub async fn cases(
    State(st): State<Shared>,
    Q(q): Q<CasesQuery>,
) -> Result<Json<ReadinessCases>, ApiError> {
    let repository = q.repository.trim();
    if repository.is_empty() {
        return Err(ApiError::bad_request("repository must not be empty"));
    }
    let groups = st.store.readiness_rows(Some(repository)).await?;
    let rows: Vec<_> = groups.iter().flat_map(|g| &g.rows).collect();
    let decided: Vec<_> = rows.iter().map(|r| r.decided()).collect();
    let cases = rows
        .iter()
        .map(|r| ReadinessCase {
            branch: r.record.on.branch.clone(),
            failed_at: r.record.failed_at,
            head_sha: r.record.on.head_sha.clone(),
            mode: r.record.mode,
            outcome: r.outcome,
            platform: r.record.platform.clone(),
            rerun_at: r.rerun_at,
            session_id: r.record.session_id.clone(),
            would_retry: r.record.would_retry,
        })
        .collect();
    Ok(Json(ReadinessCases {
        cases,
        recommendation: recommendation(&figures(&decided)),
        repository: repository.to_string(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// The repository as its platform names it (`owner/repo`, a GitLab project path…).
    repository: String,
    /// `act` or `observe`.
    mode: String,
}

#[derive(Serialize, ToSchema)]
pub struct ModeSet {
    /// The mode set through the API before; null when the file's applied.
    #[schema(value_type = Option<String>)]
    pub before: Option<Mode>,
    #[schema(value_type = String)]
    pub mode: Mode,
    pub repository: String,
}

/// The longest repository name taken (GitLab paths nest; none comes near this).
const MAX_REPOSITORY: usize = 512;

/// `POST /api/v1/mode`: switches a repository between observe and act; it overrides the
/// configuration file's mode from the next failure on.
#[utoipa::path(
    post, path = "/api/v1/mode", tag = "admin", request_body = ModeRequest,
    responses(
        (status = 200, description = "The repository's mode now, and the one set before (null: the file's)", body = ModeSet),
        (status = 400, description = "An empty repository or an unknown mode", body = crate::error::ErrorBody),
    )
)]
pub async fn set_mode(
    State(st): State<Shared>,
    Extension(who): Extension<Principal>,
    body: Result<Json<ModeRequest>, JsonRejection>,
) -> Result<Json<ModeSet>, ApiError> {
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
    Ok(Json(ModeSet {
        before,
        mode,
        repository: repository.to_string(),
    }))
}
