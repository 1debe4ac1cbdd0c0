//! What the service appends to the audit trail, beyond what the store records itself
//! (accepted webhooks, purges, key rotations). Appending never fails a request: a trail that
//! cannot be written is logged loudly instead.

use crate::Shared;
use pipeguard_store::AuditEntry;
use serde_json::{json, Value};

pub async fn record(st: &Shared, actor: &str, action: &str, target: &str, detail: Value) {
    let e = AuditEntry::new(actor, action, target, detail);
    if let Err(err) = st.store.audit(e).await {
        tracing::error!(action, target, "cannot append to the audit trail: {err}");
    }
}

/// A refused credential: who tried, on what, and why (never the credential itself).
pub async fn failed_login(st: &Shared, source: &str, route: &str, why: &str) {
    let detail = json!({"source": source, "route": route, "why": why});
    record(
        st,
        &format!("source:{source}"),
        "auth.failed",
        route,
        detail,
    )
    .await;
}

/// A token created or revoked through the API.
pub async fn token_changed(st: &Shared, actor: &str, action: &str, name: &str, role: &str) {
    record(st, actor, action, name, json!({"role": role})).await;
}

/// A platform call or command a heal made.
pub async fn acted(st: &Shared, session: &str, action: &str, detail: &str, status: &str) {
    let d = json!({"detail": detail, "status": status});
    record(st, "pipeguard", action, session, d).await;
}
