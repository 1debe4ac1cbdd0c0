//! People's decisions on plans waiting for approval: each approval belongs to the credential
//! that gave it, `[approvals] required` distinct people must approve, and a plan nobody
//! approved in time is escalated.

use crate::auth::Principal;
use crate::Shared;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::planner::{self, Happened, Step};
use pipeguard_store::{
    now_ms, ApprovalRecord, RetryDead, SessionFilter, SessionRecord, SessionStatus as S,
    SessionUpdate, Task, Transition,
};

/// What a decision did.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// Enough people approved: the plan runs.
    Approved {
        by: Vec<String>,
    },
    /// Approved, but more people must approve.
    Waiting {
        approvals: usize,
        required: usize,
    },
    Rejected,
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no session {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] pipeguard_store::StoreError),
}

fn expiry_ms(st: &Shared) -> i64 {
    st.config.approvals.expire_hours as i64 * 3600 * 1000
}

/// When the plan waiting in `s` lapses.
pub fn expires_at(st: &Shared, s: &SessionRecord) -> i64 {
    s.updated_at + expiry_ms(st)
}

async fn awaiting(st: &Shared, id: &str) -> Result<SessionRecord, DecisionError> {
    let s = st
        .store
        .get_session(id)
        .await?
        .ok_or_else(|| DecisionError::NotFound(id.to_string()))?;
    if s.status != S::AwaitingApproval {
        return Err(DecisionError::Conflict(format!(
            "session is {}, not awaiting_approval",
            s.status
        )));
    }
    if now_ms() > expires_at(st, &s) {
        return Err(DecisionError::Conflict(
            "the plan waited longer than [approvals] expire_hours; it is being escalated".into(),
        ));
    }
    Ok(s)
}

/// The current plan's approvals that have not lapsed.
pub async fn current_approvals(
    st: &Shared,
    s: &SessionRecord,
) -> pipeguard_store::Result<Vec<ApprovalRecord>> {
    let since = now_ms() - expiry_ms(st);
    Ok(st
        .store
        .decisions(&s.id)
        .await?
        .into_iter()
        .filter(|a| a.attempt == s.heal_attempts && a.decision == "approved" && a.at >= since)
        .collect())
}

async fn record(
    st: &Shared,
    s: &SessionRecord,
    who: &Principal,
    decision: &str,
    comment: Option<&str>,
) -> Result<(), DecisionError> {
    let fresh = st
        .store
        .record_decision(&ApprovalRecord {
            session_id: s.id.clone(),
            attempt: s.heal_attempts,
            approver: who.name.clone(),
            decision: decision.to_string(),
            comment: comment.map(String::from),
            at: now_ms(),
        })
        .await?;
    if !fresh {
        return Err(DecisionError::Conflict(format!(
            "{} already decided on this plan",
            who.name
        )));
    }
    Ok(())
}

fn decision_entry(
    who: &Principal,
    action: &str,
    session: &str,
    approvers: &[String],
    comment: Option<&str>,
) -> pipeguard_store::AuditEntry {
    pipeguard_store::AuditEntry::new(
        &who.name,
        action,
        session,
        serde_json::json!({"via": who.via, "role": who.role, "approvers": approvers,
                           "comment": comment}),
    )
}

fn with_comment(text: String, comment: Option<&str>) -> String {
    match comment.filter(|c| !c.is_empty()) {
        Some(c) => format!("{text}: {c}"),
        None => text,
    }
}

pub async fn approve(
    st: &Shared,
    id: &str,
    who: &Principal,
    comment: Option<&str>,
) -> Result<Decided, DecisionError> {
    let s = awaiting(st, id).await?;
    record(st, &s, who, "approved", comment).await?;
    let approvals = current_approvals(st, &s).await?;
    let required = st.config.approvals.required as usize;
    let by: Vec<String> = approvals.iter().map(|a| a.approver.clone()).collect();
    let note = with_comment(
        format!("approved by {} ({} of {required})", who.name, by.len()),
        comment,
    );
    let happened = Happened::Approved {
        approvals: by.len(),
        required,
    };
    let known = pipeguard_core::planner::Known::default();
    let next = planner::decide(&crate::worker::facts(st, &s, happened, known))
        .map_err(|e| DecisionError::Conflict(e.to_string()))?;
    if next.step == Step::Wait {
        st.store.note(&s.id, S::AwaitingApproval, &note).await?;
        let e = decision_entry(who, "approval.given", &s.id, &by, comment);
        st.store.audit(e).await?;
        return Ok(Decided::Waiting {
            approvals: by.len(),
            required,
        });
    }
    let update = SessionUpdate {
        audit: Some(decision_entry(who, "approval.granted", &s.id, &by, comment)),
        ..Default::default()
    };
    let t = Transition::new(next.event, &note);
    if !st.store.update_session(&s.id, t, update).await? {
        return Err(DecisionError::Conflict(
            "the session moved on meanwhile".into(),
        ));
    }
    st.store
        .enqueue(&s.id, &Task::Execute { approved: true }, now_ms())
        .await?;
    st.worker_wake.notify_one();
    Ok(Decided::Approved { by })
}

pub async fn reject(
    st: &Shared,
    id: &str,
    who: &Principal,
    comment: Option<&str>,
) -> Result<Decided, DecisionError> {
    let s = awaiting(st, id).await?;
    record(st, &s, who, "rejected", comment).await?;
    let reason = with_comment(format!("rejected by {}", who.name), comment);
    let moved = st
        .store
        .update_session(
            &s.id,
            Transition::new(Event::Reject, &reason),
            SessionUpdate {
                reason: Some(reason.clone()),
                finished_at: Some(now_ms()),
                ..Default::default()
            },
        )
        .await?;
    if !moved {
        return Err(DecisionError::Conflict(
            "the session moved on meanwhile".into(),
        ));
    }
    Ok(Decided::Rejected)
}

/// What sending a failed session's work again did.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried {
    pub kinds: Vec<String>,
    pub status: S,
}

/// Sends a failed session's dead letters again, as `who`.
pub async fn retry(st: &Shared, id: &str, who: &Principal) -> Result<Retried, DecisionError> {
    match st.store.retry_dead(id, &who.name).await? {
        RetryDead::NotFound => Err(DecisionError::NotFound(id.to_string())),
        RetryDead::NotFailed(s) => Err(DecisionError::Conflict(format!(
            "session {id} is {}, not failed: only a failed session's work is sent again",
            s.as_str()
        ))),
        RetryDead::NothingDead => Err(DecisionError::Conflict(format!(
            "session {id} has no dead letters"
        ))),
        RetryDead::Requeued { kinds, status } => {
            let detail = serde_json::json!({"requeued": kinds, "status": status.as_str(),
                                            "via": who.via});
            crate::audit::record(st, &who.name, "session.retried", id, detail).await;
            st.worker_wake.notify_one();
            Ok(Retried { kinds, status })
        }
    }
}

/// Escalates plans nobody approved in time. Returns how many.
pub async fn expire(st: &Shared) -> pipeguard_store::Result<usize> {
    let filter = SessionFilter {
        status: Some(S::AwaitingApproval),
        ..Default::default()
    };
    let mut n = 0;
    for s in st.store.find_sessions(&filter, 500, 0).await? {
        if now_ms() <= expires_at(st, &s) {
            continue;
        }
        let reason = format!(
            "not approved within {} h; escalated",
            st.config.approvals.expire_hours
        );
        let moved = st
            .store
            .update_session(
                &s.id,
                Transition::new(Event::Lapse, &reason),
                SessionUpdate {
                    reason: Some(reason.clone()),
                    finished_at: Some(now_ms()),
                    ..Default::default()
                },
            )
            .await?;
        n += moved as usize;
    }
    Ok(n)
}
