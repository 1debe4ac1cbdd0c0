//! `GET /openapi.json`: the OpenAPI 3.1 description of every route the server mounts, built
//! from the `#[utoipa::path]` annotations beside the handlers and the response shapes below.
//! Served without a credential, like `/healthz`: it tells no secret, and clients and API
//! testers need it before they hold a token.

use crate::dashboard;
use crate::metrics;
use crate::routes::{
    approvals, audit, dead_letters, events, explain, learning, readiness, sessions, status, tokens,
    webhooks,
};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use pipeguard_platforms::registry;
use std::sync::OnceLock;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pipeguard",
        description = "Self-healing CI/CD: webhook intake, healing sessions, approvals, what \
            pipeguard learned, tokens and the audit trail. Every error is JSON \
            `{\"error\", \"message\"}`."
    ),
    paths(
        status::healthz,
        status::readyz,
        metrics::metrics,
        document,
        dashboard::index,
        dashboard::asset,
        webhooks::receive,
        webhooks::generic,
        status::status,
        status::history,
        status::test_trigger,
        metrics::stats,
        dashboard::daily::daily,
        events::events,
        sessions::list_sessions,
        sessions::get_session,
        approvals::approve,
        approvals::reject,
        learning::verdict,
        dead_letters::retry,
        explain::explain,
        approvals::list,
        dead_letters::list,
        learning::flaky_tests,
        learning::quarantine_list,
        learning::quarantine_add,
        learning::quarantine_remove,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::whoami,
        audit::list,
        readiness::readiness,
        readiness::cases,
        readiness::set_mode,
    ),
    components(schemas(schema::ErrorBody)),
    modifiers(&Finish),
    security(("bearer" = [])),
    tags(
        (name = "service", description = "Health, metrics, this document and the dashboard"),
        (name = "intake", description = "Webhook deliveries from CI platforms and failure reports"),
        (name = "pipeline", description = "The original `/pipeline/*` endpoints"),
        (name = "sessions", description = "Healing sessions and decisions on their plans"),
        (name = "learning", description = "Flaky tests, quarantine, human verdicts"),
        (name = "admin", description = "Tokens, identity and the audit trail"),
    )
)]
pub struct ApiDoc;

/// What the annotations cannot say: the bearer scheme, the platform keys, and the error body
/// for every client error a route does not describe itself (the router answers
/// 404/405/408/413/415/429 as `{"error","message"}` everywhere).
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        platform_keys(doc);
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`pipeguard token create`) or a JWT from the configured \
                         OIDC provider",
                    ))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("A client error: `{\"error\", \"message\"}`")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.responses
                    .responses
                    .entry("4XX".into())
                    .or_insert_with(|| error.clone().into());
            }
        }
    }
}

/// `/webhooks/{platform}` takes the keys of the registered platforms.
fn platform_keys(doc: &mut utoipa::openapi::OpenApi) {
    let keys: Vec<&str> = registry::MODULES.iter().map(|m| m.section().key).collect();
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(keys))
        .build();
    let op = doc
        .paths
        .paths
        .get_mut("/webhooks/{platform}")
        .and_then(|p| p.post.as_mut());
    for p in op
        .into_iter()
        .flat_map(|o| o.parameters.iter_mut().flatten())
    {
        if p.name == "platform" {
            p.schema = Some(schema.clone().into());
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document, serialized once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes")
    })
}

/// `GET /openapi.json`.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
        .into_response()
}

/// Response shapes. The handlers build their JSON with `serde_json::json!`; these structs
/// describe it for the document, and the tests check them against what the handlers answer
/// (every field they send is described, with its type).
#[allow(dead_code)]
pub mod schema {
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
        /// `confirmed`, `contradicted`, `missed`, or null.
        pub outcome: Option<String>,
        pub failed_at: i64,
        /// When a person re-ran it; null when nobody did (or pipeguard did).
        pub rerun_at: Option<i64>,
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
    pub struct Retried {
        pub session_id: String,
        /// The status the session reopened in.
        pub status: String,
        /// The kinds of work queued again.
        pub requeued: Vec<String>,
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
        /// `received`, `analyzing`, `planned`, `awaiting_approval`, `healing`, `verifying`,
        /// `healed`, `failed`, `escalated`, `observed`…
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
    /// an outcome of a run pipeguard follows, or `ignored` with the reason.
    #[derive(ToSchema, Deserialize)]
    pub struct WebhookAnswer {
        pub session_id: Option<String>,
        pub status: Option<String>,
        pub duplicate: Option<bool>,
        pub reason: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use utoipa::openapi::{OpenApi as Doc, PathItem};
    use utoipa::OpenApi;

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    /// `(METHOD, path)` of every `.route(...)` in the router's source, so a route mounted
    /// later is seen here without anyone listing it.
    fn mounted() -> Vec<(String, String)> {
        let src = include_str!("mod.rs");
        let mut out = Vec::new();
        for chunk in src.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let path = chunk[1..].split('"').next().expect("a path literal");
            let mut depth = 1;
            let end = chunk
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(chunk.len(), |(i, _)| i);
            let handlers = &chunk[..end];
            for m in METHODS {
                let call = format!("{m}(");
                let called = handlers.match_indices(&call).any(|(i, _)| {
                    !handlers[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if called {
                    out.push((m.to_ascii_uppercase(), path.to_string()));
                }
            }
        }
        out
    }

    fn operation<'a>(
        doc: &'a Doc,
        method: &str,
        path: &str,
    ) -> Option<&'a utoipa::openapi::path::Operation> {
        let item: &PathItem = doc.paths.paths.get(path)?;
        match method {
            "GET" => item.get.as_ref(),
            "POST" => item.post.as_ref(),
            "PUT" => item.put.as_ref(),
            "DELETE" => item.delete.as_ref(),
            "PATCH" => item.patch.as_ref(),
            _ => None,
        }
    }

    #[test]
    fn every_mounted_route_is_described() {
        let doc = ApiDoc::openapi();
        let routes = mounted();
        assert!(
            routes.len() >= 28,
            "the router's routes were not read: {routes:?}"
        );
        for (m, p) in &routes {
            assert!(
                operation(&doc, m, p).is_some(),
                "{m} {p} is mounted but not in /openapi.json"
            );
        }
        let described: usize = doc
            .paths
            .paths
            .values()
            .map(|i| {
                [&i.get, &i.post, &i.put, &i.delete, &i.patch]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(
            described,
            routes.len(),
            "the document describes a route that is not mounted"
        );
    }

    #[test]
    fn every_route_of_the_role_table_is_described_with_the_bearer_scheme() {
        let doc = ApiDoc::openapi();
        for (m, p) in crate::auth::table() {
            let op = operation(&doc, m, p).unwrap_or_else(|| panic!("{m} {p} is not described"));
            // No `security` of its own: the document's global bearer requirement applies.
            let own = op
                .security
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap());
            assert!(
                own.is_none() || own.as_ref().unwrap().to_string().contains("bearer"),
                "{m} {p} is described as open: {own:?}"
            );
        }
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            v["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(v["security"][0]["bearer"], serde_json::json!([]));
    }

    #[test]
    fn client_errors_are_described_as_the_json_error_body() {
        let v = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let error = &v["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]));
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let r = &op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(r, "#/components/schemas/ErrorBody", "{method} {path}");
            }
        }
    }

    #[test]
    fn the_platform_parameter_lists_every_platform() {
        let v = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let keys = &v["paths"]["/webhooks/{platform}"]["post"]["parameters"][0]["schema"]["enum"];
        let want: Vec<&str> = pipeguard_platforms::registry::MODULES
            .iter()
            .map(|m| m.section().key)
            .collect();
        assert_eq!(keys, &serde_json::json!(want));
    }
}
