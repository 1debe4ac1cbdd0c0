//! Sessions: the list, one session with its diagnosis, plan, actions and timeline, and a
//! human's decision on a plan waiting for approval.

use crate::error::ApiError;
use crate::routes::status::Page;
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::Json;
use pipeguard_store::SessionRecord;
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
