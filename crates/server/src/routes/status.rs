//! Health, and the seed's `/pipeline/*` endpoints: status, healing history, test trigger.

use crate::error::ApiError;
use crate::routes::sessions::session_json;
use crate::Shared;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use pipeguard_core::analysis::Hints;
use pipeguard_core::event::{FailedJob, FailureEvent};
use pipeguard_core::policy::Capabilities;
use pipeguard_store::SessionStatus;
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET /healthz`: the service and its database answer.
#[utoipa::path(
    get, path = "/healthz", tag = "service", security(()),
    responses(
        (status = 200, description = "Up; the queue's depth", body = crate::routes::openapi::schema::Health),
        (status = 503, description = "The database does not answer", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn healthz(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let depth = st.store.queue_depth().await?;
    Ok(Json(json!({"status": "ok", "queue_depth": depth})))
}

#[utoipa::path(
    get, path = "/readyz", tag = "service", security(()),
    responses(
        (status = 200, description = "Ready to take traffic", body = crate::routes::openapi::schema::Ready),
        (status = 503, description = "The database does not answer, or the server drains", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
/// Readiness for load balancers and Kubernetes: 503 while the database cannot be reached or
/// the server is draining, so traffic goes to another replica instead.
pub async fn readyz(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let unready = |m: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", m);
    if *st.shutdown.borrow() {
        return Err(unready("shutting down".into()));
    }
    let depth = st
        .store
        .queue_depth()
        .await
        .map_err(|e| unready(format!("database: {e}")))?;
    Ok(Json(json!({"status": "ready", "queue_depth": depth})))
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

/// `GET /pipeline/status`: session counts by outcome and the queue.
#[utoipa::path(
    get, path = "/pipeline/status", tag = "pipeline",
    responses((status = 200, description = "Counts by outcome", body = crate::routes::openapi::schema::PipelineStatus))
)]
pub async fn status(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let counts = st.store.status_counts().await?;
    let get = |s: SessionStatus| {
        counts
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_status: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(k, n)| (k.as_str().to_string(), json!(n)))
        .collect();
    Ok(Json(json!({
        "pipeline_healing": {
            "monitoring_active": true,
            "total_failures": total,
            "healed": get(SessionStatus::Healed),
            "failed": get(SessionStatus::Failed),
            "escalated": get(SessionStatus::Escalated),
            "healing_success_rate": success_rate(get(SessionStatus::Healed), get(SessionStatus::Failed)),
            "sessions_by_status": by_status,
            "queue_depth": st.store.queue_depth().await?,
            "uptime_seconds": (pipeguard_store::now_ms() - st.started_at_ms) / 1000,
        }
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    50
}

impl Page {
    pub fn check(&self) -> Result<(), ApiError> {
        crate::error::check_page(self.limit, self.offset, 500)
    }
}

/// `GET /pipeline/healing/history`: a page of sessions, newest first.
#[utoipa::path(
    get, path = "/pipeline/healing/history", tag = "pipeline", params(Page),
    responses((status = 200, description = "Sessions and the success rate", body = crate::routes::openapi::schema::HealingHistory))
)]
pub async fn history(
    State(st): State<Shared>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    p.check()?;
    let sessions = st.store.list_sessions(p.limit, p.offset).await?;
    let counts = st.store.status_counts().await?;
    let get = |s: SessionStatus| {
        counts
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    Ok(Json(json!({
        "healing_history": sessions.iter().map(session_json).collect::<Vec<_>>(),
        "success_rate": success_rate(get(SessionStatus::Healed), get(SessionStatus::Failed)),
        "total_sessions": counts.iter().map(|(_, n)| n).sum::<i64>(),
    })))
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

/// Shows the diagnosis and the plan a failure would get, executing nothing.
#[utoipa::path(
    post, path = "/pipeline/test/trigger", tag = "pipeline", request_body = TriggerRequest,
    responses((status = 200, description = "Diagnosis and plan; nothing executed", body = crate::routes::openapi::schema::TriggerResult))
)]
pub async fn test_trigger(
    State(st): State<Shared>,
    body: Result<Json<TriggerRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"diagnosis": diagnosis, "plan": plan, "executed": false}),
    ))
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
