//! A re-run someone asks for: a person, or a coding agent through MCP (`mcp:TOKEN-NAME`).
//! The planner decides from the session's stored diagnoses exactly as for any heal — policy,
//! attempts made, safety gate, approvals now, the healing budget when the call is due — so
//! asking is never a way around the policy, and nothing is called when it refuses.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::Shared;
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::planner::{self, Happened, Step};
use pipeguard_store::{now_ms, AuditEntry, SessionStatus as S, SessionUpdate, Task, Transition};
use serde_json::json;

/// What the planner made of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// Reopened: `planned` (the worker re-runs it) or `awaiting_approval`.
    Granted { status: S, reason: String },
    /// Nothing was done; the session stays where it was.
    Refused { status: S, reason: String },
}

/// Asks the planner for a re-run of session `id` on behalf of `who`, giving `why`.
pub async fn request(st: &Shared, id: &str, who: &Principal, why: &str) -> Result<Asked, ApiError> {
    let s = crate::routes::sessions::find(st, id).await?;
    let jobs: Vec<JobDiagnosis> = s
        .diagnosis
        .as_ref()
        .and_then(|d| serde_json::from_value(d.get("jobs")?.clone()).ok())
        .unwrap_or_default();
    let known = crate::worker::known_for(st, &s, &jobs).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e,
        )
    })?;
    let next = planner::decide(&crate::worker::facts(
        st,
        &s,
        Happened::Requested(&jobs),
        known,
    ))
    .map_err(|e| ApiError::conflict(e.to_string()))?;
    let line = format!("{} asked for a re-run ({why}): {}", who.name, next.reason);
    let detail = json!({"via": who.via, "role": who.role, "why": why, "decision": next.status,
                        "reason": next.reason});
    let Step::Plan(plan) = next.step else {
        st.store.note(&s.id, s.status, &line).await?;
        let (status, reason) = (s.status, next.reason);
        // A plan already waiting for people: the request is held with it.
        if status == S::AwaitingApproval {
            crate::audit::record(st, &who.name, "session.rerun_held", &s.id, detail).await;
            return Ok(Asked::Granted { status, reason });
        }
        crate::audit::record(st, &who.name, "session.rerun_refused", &s.id, detail).await;
        return Ok(Asked::Refused { status, reason });
    };
    // The platform refused an earlier call of this attempt (a missing permission, say): the
    // re-run asked for is a new call, recorded again when it is made.
    let attempt = s.heal_attempts + 1;
    let earlier = st.store.actions(&s.id).await?;
    if earlier.iter().any(|a| {
        a.attempt == attempt
            && a.target == "run"
            && matches!(a.status.as_str(), "refused" | "error")
    }) {
        st.store.release_action(&s.id, attempt, "run").await?;
    }
    let delay = plan
        .plan
        .steps
        .iter()
        .map(|x| x.delay_seconds)
        .max()
        .unwrap_or(0);
    let update = SessionUpdate {
        reason: Some(plan.plan.reason.clone()),
        strategy: Some(plan.plan.strategy.as_str().to_string()),
        plan: Some(plan),
        audit: Some(AuditEntry::new(
            &who.name,
            "session.rerun_requested",
            &s.id,
            detail,
        )),
        ..Default::default()
    };
    if !st
        .store
        .update_session(&s.id, Transition::new(next.event, &line), update)
        .await?
    {
        return Err(ApiError::conflict(
            "the session moved on meanwhile; ask again",
        ));
    }
    if next.status == S::Planned {
        let at = now_ms() + delay as i64 * 1000;
        st.store
            .enqueue(&s.id, &Task::Execute { approved: false }, at)
            .await?;
        st.worker_wake.notify_one();
    }
    Ok(Asked::Granted {
        status: next.status,
        reason: next.reason,
    })
}
