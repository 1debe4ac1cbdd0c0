//! Response shapes. The handlers build their JSON with `serde_json::json!`; these structs
//! describe it for the document, and the tests check them against what the handlers answer
//! (every field they send is described, with its type).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every error: a machine-readable code and a sentence for people.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `rate_limited`…
    pub error: String,
    pub message: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessList {
    pub repositories: Vec<Readiness>,
}

/// How often pipeguard's decisions on one repository would have been right.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessCases {
    pub repository: String,
    /// `act: …` or `observe: …`, with the figures behind it.
    pub recommendation: String,
    pub cases: Vec<ReadinessCase>,
}

/// One decision behind the figures.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessCase {
    pub session_id: String,
    pub platform: String,
    /// The mode it was decided in.
    pub mode: String,
    pub would_retry: bool,
    /// `confirmed`, `contradicted`, `missed`, `fixed_by_push` (a later green run of its
    /// workflow on its branch was for a new commit), or null.
    pub outcome: Option<String>,
    pub failed_at: i64,
    /// When a person re-ran it; null when nobody did (or pipeguard did).
    pub rerun_at: Option<i64>,
    /// The failure's branch and commit, where its platform told them.
    pub branch: Option<String>,
    pub head_sha: Option<String>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSet {
    pub repository: String,
    pub mode: String,
    /// The mode set through the API before; null when the file's applied.
    pub before: Option<String>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Jobs waiting or running in the healing queue.
    pub queue_depth: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    pub queue_depth: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
    /// All dead letters, not only those listed.
    pub total: i64,
}

/// A job that failed for good.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incidents {
    pub incidents: Vec<Incident>,
}

/// An outage: failures of one transient cause on one external target from many
/// repositories. Its sessions are held, probed by one canary at a time, and released in
/// a paced wave when it closes.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    pub id: i64,
    /// The failure category (`dependency_download`, `network`, `service_unavailable`…).
    pub cause: String,
    /// The external host the failures named (`registry.npmjs.org`).
    pub target: String,
    /// Milliseconds since the epoch.
    pub opened_at: i64,
    /// `null` while open.
    pub closed_at: Option<i64>,
    /// Repositories that failed with the cause (from the detection window before it
    /// opened until it closed).
    pub repositories: i64,
    /// Sessions it held.
    pub sessions_held: i64,
    /// Held sessions its wave released for their re-run.
    pub sessions_released: i64,
    /// Canary re-runs that probed the cause.
    pub canaries: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retried {
    pub session_id: String,
    /// The status the session reopened in.
    pub status: String,
    /// The kinds of work queued again.
    pub requeued: Vec<String>,
}

/// What the planner made of a requested re-run.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunAnswer {
    pub session_id: String,
    /// `rerun`, `awaiting_approval` or `refused`.
    pub decision: String,
    /// The session's status after the decision.
    pub status: String,
    /// The planner's reason (also on the timeline).
    pub reason: String,
    /// The identity that asked (`mcp:TOKEN-NAME` through MCP).
    pub requested_by: String,
    /// `refused`, on a refusal.
    pub error: Option<String>,
    /// The reason again, on a refusal (as every error body).
    pub message: Option<String>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineStatus {
    pub pipeline_healing: HealingStatus,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealingStatus {
    pub monitoring_active: bool,
    pub total_failures: i64,
    pub healed: i64,
    pub failed: i64,
    pub escalated: i64,
    /// healed / (healed + failed); 0 when neither.
    pub healing_success_rate: f64,
    pub sessions_by_status: BTreeMap<String, i64>,
    pub queue_depth: i64,
    pub uptime_seconds: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealingHistory {
    pub healing_history: Vec<Session>,
    pub success_rate: f64,
    pub total_sessions: i64,
}

/// What a failure would get: diagnosis and plan, nothing executed.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerResult {
    #[schema(value_type = Object)]
    pub diagnosis: Value,
    #[schema(value_type = Object)]
    pub plan: Value,
    /// Always false.
    pub executed: bool,
}

/// A healing session as lists show it. Open to more fields: `SessionDetail` adds its
/// own to these (a closed schema would refuse them under `allOf`).
#[derive(ToSchema, Deserialize)]
pub struct Session {
    pub id: String,
    pub platform: String,
    pub repository: String,
    /// The failed run.
    pub run: String,
    /// The attempt as the platform counts it.
    pub run_attempt: i64,
    /// The run and its repeats as the platform names them: `#1003, retry 1` (GitLab),
    /// `search-indexer #42` (Jenkins), `CI run 123, attempt 2` (GitHub).
    pub run_label: String,
    /// The run being verified (a heal can start a new one).
    pub current_run: String,
    pub first_attempt: i64,
    pub workflow: String,
    pub head_sha: Option<String>,
    pub url: Option<String>,
    /// `received`, `analyzing`, `planned`, `awaiting_approval`, `executing`, `verifying`,
    /// `held`, `healed`, `failed`, `escalated`, `skipped`, `observed`
    pub status: String,
    pub category: Option<String>,
    pub confidence: Option<f64>,
    pub fingerprint: Option<String>,
    pub strategy: Option<String>,
    pub reason: Option<String>,
    pub heal_attempts: i64,
    /// The log lines the diagnosis rests on.
    pub evidence: Vec<EvidenceLine>,
    /// The job's green runs the evidence was read against; absent or null without any.
    pub baseline: Option<BaselineRef>,
    pub time_to_green_ms: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    /// When retention removed its log, evidence and diagnosis (milliseconds since the epoch).
    pub purged_at: Option<i64>,
    /// The incident that held it (status `held` while it does).
    pub incident_id: Option<i64>,
}

/// One line of evidence.
#[derive(ToSchema, Deserialize)]
pub struct EvidenceLine {
    /// 1-based line number in the job's log.
    pub line: i64,
    pub text: String,
    /// Whether none of the job's green runs printed this line (its template); present
    /// only when the failure was read against green runs.
    pub new: Option<bool>,
}

/// The green runs of the same job a failure was compared with.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRef {
    /// Their run ids (or links), newest first.
    pub green_runs: Vec<String>,
    /// Lines of the failing step before the failure that no green run printed.
    pub new_lines: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

/// One session with its diagnosis, plan, actions, timeline and verdict.
#[derive(ToSchema, Deserialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: Session,
    #[schema(value_type = Option<Object>)]
    pub diagnosis: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub plan: Option<Value>,
    pub actions: Vec<Action>,
    pub timeline: Vec<TimelineEntry>,
    pub verdict: Option<Verdict>,
}

/// Something pipeguard did on the platform or a host.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub attempt: i64,
    pub target: String,
    pub kind: String,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    pub at: i64,
    pub status: String,
    pub message: String,
}

/// A person's category for a session.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub session_id: String,
    pub category: String,
    pub diagnosed_category: Option<String>,
    pub diagnosed_by: Option<String>,
    pub note: String,
    pub evidence: String,
    pub created_at: i64,
}

/// An approval: `planned` when enough people approved, else still `awaiting_approval`
/// with the count so far.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approved {
    pub session_id: String,
    pub status: String,
    pub approved_by: Vec<String>,
    pub approvals: Option<i64>,
    pub required: Option<i64>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    pub session_id: String,
    /// `escalated`.
    pub status: String,
    pub rejected_by: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    pub session_id: String,
    pub attempt: i64,
    pub approver: String,
    pub decision: String,
    pub comment: Option<String>,
    pub at: i64,
}

/// A plan waiting for people.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingApproval {
    pub session: Session,
    #[schema(value_type = Option<Object>)]
    pub plan: Option<Value>,
    pub approvals: Vec<ApprovalRecord>,
    pub required: i64,
    /// When the approvals given so far lapse (ms since the epoch).
    pub expires_at: i64,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalList {
    pub approvals: Vec<PendingApproval>,
}

/// Outcomes overall and by category, platform and host; time to green; verdicts.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub total: Tally,
    pub by_category: Vec<Tally>,
    pub by_platform: Vec<Tally>,
    pub by_host: Vec<Tally>,
    pub retry: RetryStats,
    pub time_to_green_ms: Percentiles,
    pub time_to_handoff_ms: Percentiles,
    #[schema(value_type = Object)]
    pub heal_compute_minutes: Value,
    #[schema(value_type = Object)]
    pub verdicts: Value,
    pub flaky_tests: i64,
    pub escalations: i64,
    #[schema(value_type = Vec<Object>)]
    pub top_fingerprints: Vec<Value>,
}

/// Outcomes of one scope (`scope`, `category`, `platform` or `host` names it).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    pub scope: Option<String>,
    pub category: Option<String>,
    pub platform: Option<String>,
    pub host: Option<String>,
    pub sessions: i64,
    pub healed: i64,
    pub failed: i64,
    pub escalated: i64,
    /// Null when nothing was healed or failed.
    pub healing_success_rate: Option<f64>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryStats {
    pub sessions: i64,
    pub healed: i64,
    pub success_rate: Option<f64>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    pub count: i64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyStats {
    pub days: Vec<DayOutcome>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlakyTest {
    pub test: String,
    pub repository: String,
    pub runs: i64,
    pub failures: i64,
    pub flaky_failures: i64,
    pub flakiness_rate: f64,
    pub time_lost_seconds: f64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub quarantined: bool,
    pub known_flaky: bool,
    /// Attempts of the runs it failed in, re-runs included.
    pub runs_including_retries: i64,
    /// Of those, the attempts that failed.
    pub failed_attempts: i64,
    /// `failed_attempts / runs_including_retries`: what retries cannot hide.
    pub attempt_failure_rate: f64,
    pub trend: FlakyTrend,
}

/// Failures in the last 7 days against the 7 before.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlakyTrend {
    pub failures_this_week: i64,
    pub failures_last_week: i64,
    pub worse_this_week: bool,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlakyTests {
    pub flaky_tests: Vec<FlakyTest>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineEntry {
    pub repository: String,
    pub test: String,
    pub reason: String,
    pub added_at: i64,
    /// Who fixes it.
    pub owner: String,
    /// Released at the latest then (milliseconds since the epoch).
    pub expires_at: i64,
    /// First-attempt green runs of its repository since it was quarantined or last failed.
    pub passes_since: i64,
    /// Its ticket, with `[flaky] tickets`.
    pub ticket_url: Option<String>,
    /// Why its ticket is not filed yet (pipeguard tries again); null once filed.
    pub ticket_error: Option<String>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineList {
    pub quarantine: Vec<QuarantineEntry>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRemoved {
    pub repository: String,
    pub test: String,
    pub removed: bool,
}

/// A runner, agent or node over the last 24 hours (since its release, if later).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerEntry {
    /// The platform key: `github`, `gitlab`, `buildkite`, `jenkins`…
    pub platform: String,
    pub name: String,
    /// Jobs it ran, passed or failed, as deliveries and diagnoses told.
    pub jobs: u64,
    pub failures: u64,
    /// Failures counted once per (repository, category).
    pub unrelated_failures: u64,
    /// Its unrelated failures are far above its pool's (binomial test, p < 0.001, at
    /// least 5); stays so until released.
    pub suspect: bool,
    /// Taken out through the platform's API.
    pub quarantined: bool,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runners {
    pub runners: Vec<RunnerEntry>,
}

/// A runner after an operator's quarantine or release.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerChanged {
    pub platform: String,
    pub name: String,
    pub suspect: bool,
    pub quarantined: bool,
}

/// A token's record; the token itself is never shown again.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub name: String,
    /// `viewer`, `operator`, `admin` or `ingest`.
    pub role: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenList {
    pub tokens: Vec<TokenRecord>,
}

/// The new token, shown this once.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreated {
    pub name: String,
    pub role: String,
    pub token: String,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    pub name: String,
    pub revoked: bool,
}

/// The identity a request acts as.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    /// The token's name or the JWT's subject.
    pub name: String,
    pub role: String,
    /// `token` or `jwt`.
    pub via: String,
}

/// Audit entries, newest first; with `verify=true` also the chain's integrity.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    pub intact: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub head: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub problem: Option<Value>,
}

#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// What intake did with a delivery: a new session (`received`), a replay (`duplicate`),
/// an outcome of a run pipeguard follows, `ignored` with the reason, or a person's command
/// (a check run's button, a `/pipeguard` note): `decided` or `ignored` with the `message`
/// answered where it was given.
#[derive(ToSchema, Deserialize)]
pub struct WebhookAnswer {
    pub session_id: Option<String>,
    pub status: Option<String>,
    pub duplicate: Option<bool>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A Slack button press as Slack posts it: one form field holding the interaction's JSON.
#[derive(ToSchema, Deserialize)]
pub struct SlackInteraction {
    /// The `block_actions` payload, as JSON text.
    pub payload: String,
}

/// What a button press did: `decided` (the session moved) or `ignored`, and in words.
#[derive(ToSchema, Deserialize)]
pub struct CommandAnswer {
    pub status: String,
    pub session_id: Option<String>,
    pub message: String,
}
