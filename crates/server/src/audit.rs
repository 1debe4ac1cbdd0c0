//! What the service appends to the audit trail, beyond what the store records itself.

use crate::Shared;

/// A refused credential: who tried, on what, and why (never the credential itself).
pub async fn failed_login(_st: &Shared, source: &str, route: &str, why: &str) {
    tracing::info!(target: "audit", source, route, why, "auth.failed");
}

/// A token created or revoked through the API.
pub async fn token_changed(_st: &Shared, actor: &str, action: &str, name: &str, role: &str) {
    tracing::info!(target: "audit", actor, name, role, "{action}");
}
