//! The read and control API: health, the seed's `/pipeline/*` endpoints, sessions, approvals.

use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pipeguard_core::analysis::Hints;
use pipeguard_core::event::{FailedJob, FailureEvent};
use pipeguard_core::policy::Capabilities;
use pipeguard_store::{SessionRecord, SessionStatus, Transition};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn healthz(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    let depth = st.store.queue_depth().await?;
    Ok(Json(json!({"status": "ok", "queue_depth": depth})))
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

#[derive(Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

impl Page {
    fn check(&self) -> Result<(), ApiError> {
        if !(1..=500).contains(&self.limit) || self.offset < 0 {
            return Err(ApiError::bad_request(
                "limit must be 1..=500 and offset >= 0",
            ));
        }
        Ok(())
    }
}

fn session_json(s: &SessionRecord) -> Value {
    let evidence = s
        .diagnosis
        .as_ref()
        .and_then(|d| d.get("evidence").cloned())
        .unwrap_or_else(|| json!([]));
    json!({
        "id": s.id,
        "platform": s.platform,
        "repository": s.repository,
        "run": s.run_id,
        "run_attempt": s.current_attempt,
        // The run being verified: a heal can start a new one (a bigger runner).
        "current_run": s.event.run_id,
        "first_attempt": s.first_attempt,
        "workflow": s.workflow,
        "head_sha": s.head_sha,
        "url": s.event.url,
        "status": s.status,
        "category": s.category,
        "confidence": s.confidence,
        "fingerprint": s.fingerprint,
        "strategy": s.strategy,
        "reason": s.reason,
        "heal_attempts": s.heal_attempts,
        "evidence": evidence,
        "time_to_green_ms": s.time_to_green_ms,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

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

pub async fn list_sessions(
    State(st): State<Shared>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    p.check()?;
    let sessions = st.store.list_sessions(p.limit, p.offset).await?;
    Ok(Json(
        json!({"sessions": sessions.iter().map(session_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get_session(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = st
        .store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    let mut v = session_json(&s);
    v["diagnosis"] = s.diagnosis.clone().unwrap_or(Value::Null);
    v["plan"] = s.plan.clone().unwrap_or(Value::Null);
    v["actions"] = json!(st.store.actions(&id).await?);
    v["timeline"] = json!(st.store.session_log(&id).await?);
    v["verdict"] = json!(st.store.verdict(&id).await?);
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
pub struct Verdict {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

fn verdict_note(action: &str, v: &Verdict) -> String {
    let by = v.by.as_deref().unwrap_or("an operator");
    match v.comment.as_deref() {
        Some(c) if !c.is_empty() => format!("{action} by {by}: {c}"),
        _ => format!("{action} by {by}"),
    }
}

fn verdict(body: Option<Json<Verdict>>) -> Verdict {
    body.map(|Json(v)| v).unwrap_or_default()
}

/// Approves a plan waiting for a human; the worker executes it next.
pub async fn approve(
    State(st): State<Shared>,
    Path(id): Path<String>,
    body: Option<Json<Verdict>>,
) -> Result<impl IntoResponse, ApiError> {
    let v = verdict(body);
    let note = verdict_note("approved", &v);
    let moved = st
        .store
        .transition(
            &id,
            Transition {
                from: &[SessionStatus::AwaitingApproval],
                to: SessionStatus::Planned,
                message: &note,
            },
        )
        .await?;
    if !moved {
        return Err(match st.store.get_session(&id).await? {
            None => ApiError::not_found(format!("no session {id}")),
            Some(s) => {
                ApiError::conflict(format!("session is {}, not awaiting_approval", s.status))
            }
        });
    }
    st.store
        .enqueue(
            &id,
            "execute",
            &json!({"approved": true}),
            pipeguard_store::now_ms(),
        )
        .await?;
    st.worker_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"session_id": id, "status": "planned"})),
    ))
}

pub async fn reject(
    State(st): State<Shared>,
    Path(id): Path<String>,
    body: Option<Json<Verdict>>,
) -> Result<impl IntoResponse, ApiError> {
    let v = verdict(body);
    let note = verdict_note("rejected", &v);
    let moved = st
        .store
        .transition(
            &id,
            Transition {
                from: &[SessionStatus::AwaitingApproval],
                to: SessionStatus::Escalated,
                message: &note,
            },
        )
        .await?;
    if !moved {
        return Err(match st.store.get_session(&id).await? {
            None => ApiError::not_found(format!("no session {id}")),
            Some(s) => {
                ApiError::conflict(format!("session is {}, not awaiting_approval", s.status))
            }
        });
    }
    Ok(Json(json!({"session_id": id, "status": "escalated"})))
}

#[derive(Deserialize)]
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
pub async fn test_trigger(
    State(st): State<Shared>,
    body: Result<Json<TriggerRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
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
    let plan = st.policy.plan(&diagnosis, &event, &caps, 0);
    Ok(Json(
        json!({"diagnosis": diagnosis, "plan": plan, "executed": false}),
    ))
}
