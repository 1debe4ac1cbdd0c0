//! Sessions: the list, one session with its diagnosis, plan, actions and timeline, and a
//! human's decision on a plan waiting for approval.

use crate::error::ApiError;
use crate::routes::status::Page;
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pipeguard_store::{SessionRecord, SessionStatus, Task, Transition};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn session_json(s: &SessionRecord) -> Value {
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
    v["plan"] = json!(s.plan);
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
            &Task::Execute { approved: true },
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
