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
use pipeguard_store::{AuditEntry, RunnerRecord};
use serde_json::{json, Value};

/// `GET /api/v1/runners`: every runner seen in the window, by platform and name.
#[utoipa::path(
    get, path = "/api/v1/runners", tag = "runners",
    responses(
        (status = 200, description = "Each runner's jobs, failures, unrelated failures and state", body = crate::routes::openapi::schema::Runners),
    )
)]
pub async fn list(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let runners: Vec<Value> = crate::runners::list(&st)
        .await?
        .iter()
        .map(|r| {
            json!({"platform": r.platform, "name": r.count.name, "jobs": r.count.jobs,
                   "failures": r.count.failures, "unrelated_failures": r.count.unrelated_failures,
                   "suspect": r.suspect, "quarantined": r.quarantined})
        })
        .collect();
    Ok(Json(json!({ "runners": runners })))
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
        (status = 200, description = "Taken out", body = crate::routes::openapi::schema::RunnerChanged),
        (status = 404, description = "No such runner seen", body = crate::routes::openapi::schema::ErrorBody),
        (status = 409, description = "The platform's API cannot take it out, or refused", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn quarantine(
    State(st): State<Shared>,
    Path((platform, name)): Path<(String, String)>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let (p, rec) = find(&st, &platform, &name).await?;
    let ci = st
        .ci(p, rec.repository.as_deref().unwrap_or_default())
        .filter(|c| c.can_take_out_runners())
        .ok_or_else(|| {
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
    Ok(Json(
        json!({"platform": p.as_str(), "name": name, "suspect": true, "quarantined": true}),
    ))
}

/// `POST /api/v1/runners/{platform}/{name}/release`: the runner is no longer suspect nor
/// quarantined in pipeguard, and its counts start afresh. Putting it back into service on
/// the platform (unpause, start the agent, bring the node online) is the operator's.
#[utoipa::path(
    post, path = "/api/v1/runners/{platform}/{name}/release", tag = "runners",
    params(("platform" = String, Path, description = "The platform key"),
           ("name" = String, Path, description = "The runner's name as listed")),
    responses(
        (status = 200, description = "Released", body = crate::routes::openapi::schema::RunnerChanged),
        (status = 400, description = "Unknown platform", body = crate::routes::openapi::schema::ErrorBody),
        (status = 404, description = "No such runner seen", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn release(
    State(st): State<Shared>,
    Path((platform, name)): Path<(String, String)>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"platform": p.as_str(), "name": name, "suspect": false, "quarantined": false}),
    ))
}
