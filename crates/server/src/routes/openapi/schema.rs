//! Shapes the handlers' own types cannot give the document yet: records of the store and
//! the core that handlers answer as they are (they derive no `ToSchema`), and the webhook
//! and Slack answers. `tests/openapi.rs` checks what the handlers send against them.

use serde_json::Value;
use utoipa::ToSchema;

/// How often pipeguard's decisions on one repository would have been right.
#[derive(ToSchema)]
pub struct Readiness {
    pub repository: String,
    pub platform: String,
    /// The effective mode now: `act` or `observe`.
    pub mode: String,
    /// Failures it would have re-run (or did, in act mode).
    pub would_retry: i64,
    /// Of those, re-run afterwards and green.
    pub confirmed: i64,
    /// Of those, re-run afterwards and failed again.
    pub contradicted: i64,
    /// Failures it would not have re-run.
    pub withheld: i64,
    /// Of those, a person's plain re-run went green.
    pub missed: i64,
    /// confirmed / (confirmed + contradicted); null without evidence.
    pub precision: Option<f64>,
    /// Median minutes from a would-be re-run's failure to a person's re-run; null when
    /// none was re-run by a person.
    pub median_minutes_to_rerun: Option<f64>,
    /// The first recorded decision's failure (milliseconds since the epoch).
    pub since: Option<i64>,
}

/// A job that failed for good.
#[derive(ToSchema)]
pub struct DeadLetter {
    pub job_id: i64,
    pub session_id: String,
    /// `analyze`, `execute`, `outcome`, `verify`, `notify`, `passed_later`, `rerun`.
    pub kind: String,
    pub error: Option<String>,
    pub tries: i64,
    /// When it was last due (milliseconds since the epoch).
    pub at: i64,
}

/// Something pipeguard did on the platform or a host.
#[derive(ToSchema)]
pub struct Action {
    pub attempt: i64,
    pub target: String,
    pub kind: String,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

#[derive(ToSchema)]
pub struct TimelineEntry {
    pub at: i64,
    pub status: String,
    pub message: String,
}

/// A person's category for a session.
#[derive(ToSchema)]
pub struct Verdict {
    pub session_id: String,
    pub category: String,
    pub diagnosed_category: Option<String>,
    pub diagnosed_by: Option<String>,
    pub note: String,
    pub evidence: String,
    pub created_at: i64,
}

#[derive(ToSchema)]
pub struct ApprovalRecord {
    pub session_id: String,
    pub attempt: i64,
    pub approver: String,
    pub decision: String,
    pub comment: Option<String>,
    pub at: i64,
}

#[derive(ToSchema)]
pub struct DayOutcome {
    /// The UTC day's start (ms since the epoch).
    pub day_ms: i64,
    pub finished: i64,
    pub healed: i64,
    pub failed: i64,
    pub escalated: i64,
    pub time_to_green_median_ms: Option<i64>,
    pub time_to_green_p90_ms: Option<i64>,
}

#[derive(ToSchema)]
pub struct QuarantineEntry {
    pub repository: String,
    pub test: String,
    pub reason: String,
    pub added_at: i64,
    /// Who fixes it.
    pub owner: String,
    /// Released at the latest then (milliseconds since the epoch).
    pub expires_at: i64,
    /// First-attempt green runs of `workflow` since it was quarantined or last failed.
    pub passes_since: i64,
    /// The workflow (pipeline) it was seen failing in, whose green runs are its passes; null
    /// when unknown, then every green run of the repository is one.
    pub workflow: Option<String>,
    /// Its ticket, with `[flaky] tickets`.
    pub ticket_url: Option<String>,
    /// Why its ticket is not filed yet (pipeguard tries again); null once filed.
    pub ticket_error: Option<String>,
}

/// A token's record; the token itself is never shown again.
#[derive(ToSchema)]
pub struct TokenRecord {
    pub name: String,
    /// `viewer`, `operator`, `admin` or `ingest`.
    pub role: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    /// Position in the sealed chain; null until the entry is sealed.
    pub seq: Option<i64>,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// A failure reported by any system (`POST /pipeline/webhook`).
#[derive(ToSchema, serde::Deserialize)]
pub struct FailureReport {
    /// The reporting system (`cron`, `jenkins`…).
    pub source: String,
    pub job_name: String,
    /// A number or a string.
    #[schema(value_type = Option<Object>)]
    pub build_number: Option<Value>,
    pub stage: Option<String>,
    pub error_message: Option<String>,
    #[serde(default)]
    pub target_hosts: Vec<String>,
    pub log: Option<String>,
    pub repository: Option<String>,
}

/// A Slack button press as Slack posts it: one form field holding the interaction's JSON.
#[derive(ToSchema)]
pub struct SlackInteraction {
    /// The `block_actions` payload, as JSON text.
    pub payload: String,
}

/// What a button press did: `decided` (the session moved) or `ignored`, and in words.
#[derive(ToSchema)]
pub struct CommandAnswer {
    pub status: String,
    pub session_id: Option<String>,
    pub message: String,
}
