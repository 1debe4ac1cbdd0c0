//! Health, and the seed's `/pipeline/*` endpoints: status, healing history, test trigger.

use crate::error::ApiError;
use crate::routes::query::Page;
use crate::routes::sessions::Session;
use crate::Shared;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use pipeguard_core::analysis::Hints;
use pipeguard_core::event::{FailedJob, FailureEvent};
use pipeguard_core::policy::Capabilities;
use pipeguard_store::SessionStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The service's state: `ok` (`/healthz`) or `ready` (`/readyz`), and the healing queue.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Jobs waiting or running in the healing queue.
    pub queue_depth: i64,
    /// `ok`, or `ready`.
    pub status: &'static str,
}

/// `GET /healthz`: the service and its database answer.
#[utoipa::path(
    get, path = "/healthz", tag = "service", security(()),
    responses(
        (status = 200, description = "Up; the queue's depth", body = Health),
        (status = 503, description = "The database does not answer", body = crate::error::ErrorBody),
    )
)]
pub async fn healthz(State(st): State<Shared>) -> Result<Json<Health>, ApiError> {
    let queue_depth = st.store.queue_depth().await?;
    Ok(Json(Health {
        queue_depth,
        status: "ok",
    }))
}

#[utoipa::path(
    get, path = "/readyz", tag = "service", security(()),
    responses(
        (status = 200, description = "Ready to take traffic", body = Health),
        (status = 503, description = "The database does not answer, or the server drains", body = crate::error::ErrorBody),
    )
)]
/// Readiness for load balancers and Kubernetes: 503 while the database cannot be reached or
/// the server is draining, so traffic goes to another replica instead.
pub async fn readyz(State(st): State<Shared>) -> Result<Json<Health>, ApiError> {
    let unready = |m: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", m);
    if *st.shutdown.borrow() {
        return Err(unready("shutting down".into()));
    }
    let queue_depth = st
        .store
        .queue_depth()
        .await
        .map_err(|e| unready(format!("database: {e}")))?;
    Ok(Json(Health {
        queue_depth,
        status: "ready",
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

fn success_rate(healed: i64, failed: i64) -> f64 {
    if healed + failed == 0 {
        0.0
    } else {
        healed as f64 / (healed + failed) as f64
    }
}

#[derive(Serialize, ToSchema)]
pub struct PipelineStatus {
    pub pipeline_healing: HealingStatus,
}

#[derive(Serialize, ToSchema)]
pub struct HealingStatus {
    pub escalated: i64,
    pub failed: i64,
    pub healed: i64,
    /// healed / (healed + failed); 0 when neither.
    pub healing_success_rate: f64,
    pub monitoring_active: bool,
    pub queue_depth: i64,
    pub sessions_by_status: BTreeMap<String, i64>,
    pub total_failures: i64,
    pub uptime_seconds: i64,
}

/// A count of `counts` by status, 0 for a status without sessions.
fn count(counts: &[(SessionStatus, i64)], s: SessionStatus) -> i64 {
    counts
        .iter()
        .find(|(k, _)| *k == s)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// `GET /pipeline/status`: session counts by outcome and the queue.
#[utoipa::path(
    get, path = "/pipeline/status", tag = "pipeline",
    responses((status = 200, description = "Counts by outcome", body = PipelineStatus))
)]
pub async fn status(State(st): State<Shared>) -> Result<Json<PipelineStatus>, ApiError> {
    let counts = st.store.status_counts().await?;
    let get = |s| count(&counts, s);
    let (healed, failed) = (get(SessionStatus::Healed), get(SessionStatus::Failed));
    Ok(Json(PipelineStatus {
        pipeline_healing: HealingStatus {
            escalated: get(SessionStatus::Escalated),
            failed,
            healed,
            healing_success_rate: success_rate(healed, failed),
            monitoring_active: true,
            queue_depth: st.store.queue_depth().await?,
            sessions_by_status: counts
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            total_failures: counts.iter().map(|(_, n)| n).sum(),
            uptime_seconds: (pipeguard_store::now_ms() - st.started_at_ms) / 1000,
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct HealingHistory {
    pub healing_history: Vec<Session>,
    pub success_rate: f64,
    pub total_sessions: i64,
}

/// `GET /pipeline/healing/history`: a page of sessions, newest first.
#[utoipa::path(
    get, path = "/pipeline/healing/history", tag = "pipeline", params(Page),
    responses((status = 200, description = "Sessions and the success rate", body = HealingHistory))
)]
pub async fn history(
    State(st): State<Shared>,
    Query(p): Query<Page>,
) -> Result<Json<HealingHistory>, ApiError> {
    p.check()?;
    let sessions = st.store.list_sessions(p.limit, p.offset).await?;
    let counts = st.store.status_counts().await?;
    let get = |s| count(&counts, s);
    Ok(Json(HealingHistory {
        healing_history: sessions.iter().map(Session::of).collect(),
        success_rate: success_rate(get(SessionStatus::Healed), get(SessionStatus::Failed)),
        total_sessions: counts.iter().map(|(_, n)| n).sum(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    host: Option<String>,
    error_message: String,
    #[serde(default)]
    job_name: Option<String>,
}

/// What a failure would get: diagnosis and plan, nothing executed.
#[derive(Serialize, ToSchema)]
pub struct TriggerResult {
    #[schema(value_type = Object)]
    pub diagnosis: pipeguard_core::Diagnosis,
    /// Always false.
    pub executed: bool,
    /// Null when the planner would not act.
    #[schema(value_type = Option<Object>)]
    pub plan: Option<pipeguard_core::HealPlan>,
}

/// Shows the diagnosis and the plan a failure would get, executing nothing.
#[utoipa::path(
    post, path = "/pipeline/test/trigger", tag = "pipeline", request_body = TriggerRequest,
    responses((status = 200, description = "Diagnosis and plan; nothing executed", body = TriggerResult))
)]
pub async fn test_trigger(
    State(st): State<Shared>,
    body: Result<Json<TriggerRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TriggerResult>, ApiError> {
    let Json(req) = body?;
    if req.error_message.trim().is_empty() {
        return Err(ApiError::bad_request("error_message must not be empty"));
    }
    let mut diagnosis = st.analyzer.analyze_with(
        req.error_message.as_bytes(),
        &Hints {
            exit_code: None,
            platform_reason: req.error_type.clone(),
        },
    );
    // A caller-stated type is a hint only when the message itself is not recognised.
    if let (pipeguard_core::Category::Unknown, Some(t)) =
        (diagnosis.category, req.error_type.as_deref())
    {
        if let Ok(c) = t.parse::<pipeguard_core::Category>() {
            diagnosis.category = c;
            diagnosis.transient = c.is_transient();
            diagnosis.confidence = 0.5;
            diagnosis.strategy = pipeguard_core::Strategy::default_for(c);
        }
    }
    let event = FailureEvent {
        target_hosts: req.host.clone().into_iter().collect(),
        jobs: req
            .job_name
            .clone()
            .map(|n| FailedJob {
                id: n.clone(),
                name: n,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let caps = Capabilities {
        retry: true,
        scale_resources: true,
        clear_cache: true,
        reset_environment: true,
        heal_host: req.host.is_some(),
        ..Default::default()
    };
    let plan = trigger_plan(&st, diagnosis.clone(), &event, caps);
    Ok(Json(TriggerResult {
        diagnosis,
        executed: false,
        plan,
    }))
}

/// The plan the worker's planner makes for a first failure with `caps`, before any budget,
/// learning or fix: the heal plan a session would store.
fn trigger_plan(
    st: &Shared,
    diagnosis: pipeguard_core::Diagnosis,
    event: &FailureEvent,
    capabilities: Capabilities,
) -> Option<pipeguard_core::HealPlan> {
    use pipeguard_core::heal::JobDiagnosis;
    use pipeguard_core::planner::{self, Facts, Happened, Known, Step};
    let jobs = [JobDiagnosis {
        job: event.jobs.first().cloned().unwrap_or_default(),
        diagnosis,
    }];
    let facts = Facts {
        status: SessionStatus::Analyzing,
        happened: Happened::Diagnosed(&jobs),
        event,
        policy: &st.policy,
        attempts_done: 0,
        plan: None,
        known: Known {
            capabilities,
            ..Default::default()
        },
    };
    match planner::decide(&facts).ok()?.step {
        Step::Plan(stored) => Some(stored.plan),
        _ => None,
    }
}
