//! Runners: `GET /api/v1/runners` lists each runner's jobs, failures and state;
//! `POST /api/v1/runners/{platform}/{name}/quarantine` takes a runner out through its
//! platform's API (what `[runners] quarantine = "approve"` waits for) and
//! `POST /api/v1/runners/{platform}/{name}/release` clears it (operators; both audited).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use pipeguard_core::event::{Platform, Runner};
use pipeguard_platforms::Ci;
use pipeguard_store::{AuditEntry, RunnerRecord};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A runner, agent or node over the last 24 hours (since its release, if later).
#[derive(Serialize, ToSchema)]
pub struct RunnerEntry {
    /// Whether pipeguard can take it out through its platform's API here (GitHub's cannot;
    /// elsewhere the platform's token must be set).
    pub can_take_out: bool,
    /// Why it is suspect, how it was taken out or who released it, as recorded; `null`
    /// while nothing was decided about it.
    pub detail: Option<String>,
    pub failures: u64,
    /// Jobs it ran, passed or failed, as deliveries and diagnoses told.
    pub jobs: u64,
    pub name: String,
    /// The platform key: `github`, `gitlab`, `buildkite`, `jenkins`…
    pub platform: String,
    /// Taken out through the platform's API.
    pub quarantined: bool,
    /// Its unrelated failures are far above its pool's (binomial test, p < 0.001, at
    /// least 5); stays so until released.
    pub suspect: bool,
    /// Failures counted once per (repository, category).
    pub unrelated_failures: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Runners {
    pub runners: Vec<RunnerEntry>,
}

/// A runner after an operator's quarantine or release.
#[derive(Serialize, ToSchema)]
pub struct RunnerChanged {
    pub name: String,
    pub platform: &'static str,
    pub quarantined: bool,
    pub suspect: bool,
}

/// `GET /api/v1/runners`: every runner seen in the window, by platform and name.
#[utoipa::path(
    get, path = "/api/v1/runners", tag = "runners",
    responses(
        (status = 200, description = "Each runner's jobs, failures, unrelated failures and state", body = Runners),
    )
)]
pub async fn list(State(st): State<Shared>) -> Result<Json<Runners>, ApiError> {
    let runners = crate::runners::list(&st)
        .await?
        .into_iter()
        .map(|r| RunnerEntry {
            can_take_out: Platform::parse(&r.platform)
                .and_then(|p| taker(&st, p, &r))
                .is_some(),
            detail: r.detail,
            failures: r.count.failures,
            jobs: r.count.jobs,
            name: r.count.name,
            platform: r.platform,
            quarantined: r.quarantined,
            suspect: r.suspect,
            unrelated_failures: r.count.unrelated_failures,
        })
        .collect();
    Ok(Json(Runners { runners }))
}

/// The client that can take `rec` out, if its platform's API can and is configured.
fn taker<'a>(st: &'a Shared, p: Platform, rec: &RunnerRecord) -> Option<&'a dyn Ci> {
    st.ci(p, rec.repository.as_deref().unwrap_or_default())
        .filter(|c| c.can_take_out_runners())
}

/// The runner the path names, as recorded.
async fn find(
    st: &Shared,
    platform: &str,
    name: &str,
) -> Result<(Platform, RunnerRecord), ApiError> {
    let p = Platform::parse(platform)
        .ok_or_else(|| ApiError::bad_request(format!("unknown platform {platform:?}")))?;
    let rec = crate::runners::list(st)
        .await?
        .into_iter()
        .find(|r| r.platform == p.as_str() && r.count.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no {platform} runner {name:?} was seen")))?;
    Ok((p, rec))
}

/// `POST /api/v1/runners/{platform}/{name}/quarantine`: takes the runner out (GitLab pause,
/// Buildkite agent stop, Jenkins node offline) as an operator decided.
#[utoipa::path(
    post, path = "/api/v1/runners/{platform}/{name}/quarantine", tag = "runners",
    params(("platform" = String, Path, description = "The platform key"),
           ("name" = String, Path, description = "The runner's name as listed")),
    responses(
        (status = 200, description = "Taken out", body = RunnerChanged),
        (status = 404, description = "No such runner seen", body = crate::error::ErrorBody),
        (status = 409, description = "The platform's API cannot take it out, or refused", body = crate::error::ErrorBody),
    )
)]
pub async fn quarantine(
    State(st): State<Shared>,
    Path((platform, name)): Path<(String, String)>,
    Extension(who): Extension<Principal>,
) -> Result<Json<RunnerChanged>, ApiError> {
    let (p, rec) = find(&st, &platform, &name).await?;
    let ci = taker(&st, p, &rec).ok_or_else(|| {
            ApiError::conflict(format!(
                "{platform}'s API cannot take a runner out here (GitHub cannot; elsewhere set the platform's token): take {name} out by hand"
            ))
        })?;
    let runner = Runner {
        name: name.clone(),
        id: rec.runner_id.clone(),
    };
    if !crate::runners::take_out(&st, ci, p.as_str(), &runner, &who.name).await? {
        return Err(ApiError::conflict(format!(
            "{platform} refused to take {name} out; see the server log"
        )));
    }
    Ok(Json(RunnerChanged {
        name,
        platform: p.as_str(),
        quarantined: true,
        suspect: true,
    }))
}

/// `POST /api/v1/runners/{platform}/{name}/release`: the runner is no longer suspect nor
/// quarantined in pipeguard, and its counts start afresh. Putting it back into service on
/// the platform (unpause, start the agent, bring the node online) is the operator's.
#[utoipa::path(
    post, path = "/api/v1/runners/{platform}/{name}/release", tag = "runners",
    params(("platform" = String, Path, description = "The platform key"),
           ("name" = String, Path, description = "The runner's name as listed")),
    responses(
        (status = 200, description = "Released", body = RunnerChanged),
        (status = 400, description = "Unknown platform", body = crate::error::ErrorBody),
        (status = 404, description = "No such runner seen", body = crate::error::ErrorBody),
    )
)]
pub async fn release(
    State(st): State<Shared>,
    Path((platform, name)): Path<(String, String)>,
    Extension(who): Extension<Principal>,
) -> Result<Json<RunnerChanged>, ApiError> {
    let p = Platform::parse(&platform)
        .ok_or_else(|| ApiError::bad_request(format!("unknown platform {platform:?}")))?;
    let audit = AuditEntry::new(
        &who.name,
        "runner.released",
        &format!("{platform}/{name}"),
        json!({}),
    );
    if !st.store.release_runner(p.as_str(), &name, audit).await? {
        return Err(ApiError::not_found(format!(
            "no {platform} runner {name:?} was seen"
        )));
    }
    Ok(Json(RunnerChanged {
        name,
        platform: p.as_str(),
        quarantined: false,
        suspect: false,
    }))
}
