//! Sessions: the list, one session with its diagnosis, plan, actions and timeline, and a
//! human's decision on a plan waiting for approval.

use super::query::{Page, Q};
use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Path, State};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_core::heal::StoredPlan;
use pipeguard_core::Category;
use pipeguard_platforms::label::{self, RunRef};
use pipeguard_store::{ActionRecord, SessionFilter, SessionRecord, SessionStatus, VerdictRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The session's run as its platform names it (see `pipeguard_platforms::label`).
fn run_ref(s: &SessionRecord) -> RunRef<'_> {
    RunRef {
        platform: Platform::parse(&s.platform),
        workflow: &s.workflow,
        run_id: &s.run_id,
        current_run: &s.event.run_id,
        first_attempt: s.first_attempt,
        current_attempt: s.current_attempt,
        heal_attempts: s.heal_attempts,
    }
}

/// A healing session as lists show it (fields in the order the API always sent them).
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// The job's green runs the evidence was read against; null without any.
    #[schema(value_type = Option<BaselineRef>)]
    pub baseline: Option<Value>,
    pub category: Option<String>,
    pub confidence: Option<f64>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The run being verified (a heal can start a new one).
    pub current_run: String,
    /// The log lines the diagnosis rests on.
    #[schema(value_type = Vec<EvidenceLine>)]
    pub evidence: Value,
    pub fingerprint: Option<String>,
    pub first_attempt: i64,
    pub head_sha: Option<String>,
    pub heal_attempts: i64,
    pub id: String,
    /// The incident that held it (status `held` while it does).
    pub incident_id: Option<i64>,
    pub platform: String,
    /// When retention removed its log, evidence and diagnosis (milliseconds since the epoch).
    pub purged_at: Option<i64>,
    pub reason: Option<String>,
    pub repository: String,
    /// The failed run.
    pub run: String,
    /// The attempt as the platform counts it.
    pub run_attempt: i64,
    /// The run and its repeats as the platform names them: `#1003, retry 1` (GitLab),
    /// `search-indexer #42` (Jenkins), `CI run 123, attempt 2` (GitHub).
    pub run_label: String,
    /// `received`, `analyzing`, `planned`, `awaiting_approval`, `executing`, `verifying`,
    /// `held`, `healed`, `failed`, `escalated`, `skipped`, `observed`
    #[schema(value_type = String)]
    pub status: SessionStatus,
    pub strategy: Option<String>,
    pub time_to_green_ms: Option<i64>,
    pub updated_at: i64,
    pub url: Option<String>,
    pub workflow: String,
}

impl Session {
    pub fn of(s: &SessionRecord) -> Session {
        let run = run_ref(s);
        let diagnosis = |key: &str| s.diagnosis.as_ref().and_then(|d| d.get(key).cloned());
        Session {
            baseline: diagnosis("baseline"),
            category: s.category.clone(),
            confidence: s.confidence,
            created_at: s.created_at,
            current_run: s.event.run_id.clone(),
            evidence: diagnosis("evidence").unwrap_or_else(|| json!([])),
            fingerprint: s.fingerprint.clone(),
            first_attempt: s.first_attempt,
            head_sha: s.head_sha.clone(),
            heal_attempts: s.heal_attempts,
            id: s.id.clone(),
            incident_id: s.incident_id,
            platform: s.platform.clone(),
            purged_at: s.purged_at,
            reason: s.reason.clone(),
            repository: s.repository.clone(),
            run: s.run_id.clone(),
            run_attempt: label::attempt(&run),
            run_label: label::run_label(&run),
            status: s.status,
            strategy: s.strategy.clone(),
            time_to_green_ms: s.time_to_green_ms,
            updated_at: s.updated_at,
            url: s.event.url.clone(),
            workflow: s.workflow.clone(),
        }
    }
}

/// One line of evidence, as the stored diagnosis holds it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EvidenceLine {
    /// 1-based line number in the job's log.
    line: i64,
    text: String,
    /// Whether none of the job's green runs printed this line (its template); present
    /// only when the failure was read against green runs.
    new: Option<bool>,
}

/// The green runs of the same job a failure was compared with, as the stored diagnosis
/// holds them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaselineRef {
    /// Their run ids (or links), newest first.
    green_runs: Vec<String>,
    /// Lines of the failing step before the failure that no green run printed.
    new_lines: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

/// One session with its diagnosis, plan, actions, timeline and verdict.
#[derive(Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: Session,
    #[schema(value_type = Vec<crate::routes::openapi::schema::Action>)]
    pub actions: Vec<ActionRecord>,
    #[schema(value_type = Option<Object>)]
    pub diagnosis: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub plan: Option<StoredPlan>,
    #[schema(value_type = Vec<crate::routes::openapi::schema::TimelineEntry>)]
    pub timeline: Vec<Value>,
    #[schema(value_type = Option<crate::routes::openapi::schema::Verdict>)]
    pub verdict: Option<VerdictRecord>,
}

/// Sessions per page when the query names no limit (as `Page`'s default).
const DEFAULT_LIMIT: i64 = 50;

/// `GET /api/v1/sessions`: a page of sessions, optionally only those of one repository,
/// status, category or platform. Unknown parameters and values are refused, so a typo does not
/// silently list everything.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1..=500 (default 50).
    limit: Option<i64>,
    offset: Option<i64>,
    /// Only this repository's sessions.
    repository: Option<String>,
    status: Option<String>,
    category: Option<String>,
    platform: Option<String>,
}

impl ListQuery {
    fn page(&self) -> Result<Page, ApiError> {
        let page = Page {
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            offset: self.offset.unwrap_or(0),
        };
        page.check()?;
        Ok(page)
    }

    fn filter(&self) -> Result<SessionFilter, ApiError> {
        let status = match non_empty(&self.status) {
            Some(s) => Some(s.parse::<SessionStatus>().map_err(|_| {
                ApiError::bad_request(format!(
                    "unknown status {s:?}: one of {}",
                    SessionStatus::ALL.map(SessionStatus::as_str).join(", ")
                ))
            })?),
            None => None,
        };
        let category = non_empty(&self.category);
        if let Some(c) = category {
            c.parse::<Category>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        let platform = non_empty(&self.platform);
        if let Some(p) = platform.filter(|p| Platform::parse(p).is_none()) {
            return Err(ApiError::bad_request(format!("unknown platform {p:?}")));
        }
        Ok(SessionFilter {
            repository: non_empty(&self.repository).map(str::to_string),
            status,
            category: category.map(str::to_string),
            platform: platform.map(str::to_string),
        })
    }
}

/// An empty parameter (`?status=`, as an HTML form sends "any") filters nothing.
fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /api/v1/sessions`: a page of sessions, newest first, optionally filtered.
#[utoipa::path(
    get, path = "/api/v1/sessions", tag = "sessions", params(ListQuery),
    responses(
        (status = 200, description = "A page of sessions", body = SessionList),
        (status = 400, description = "An unknown parameter, status, category or platform", body = crate::error::ErrorBody),
    )
)]
pub async fn list_sessions(
    State(st): State<Shared>,
    Q(q): Q<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let (page, filter) = (q.page()?, q.filter()?);
    let sessions = st
        .store
        .find_sessions(&filter, page.limit, page.offset)
        .await?;
    Ok(Json(SessionList {
        sessions: sessions.iter().map(Session::of).collect(),
    }))
}

/// The session `id`, or a 404.
pub async fn find(st: &Shared, id: &str) -> Result<SessionRecord, ApiError> {
    st.store
        .get_session(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))
}

/// `GET /api/v1/sessions/{id}`: one session with its diagnosis, plan, actions and timeline.
#[utoipa::path(
    get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 404, description = "No such session", body = crate::error::ErrorBody),
    )
)]
pub async fn get_session(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let s = find(&st, &id).await?;
    Ok(Json(SessionDetail {
        session: Session::of(&s),
        actions: st.store.actions(&id).await?,
        diagnosis: s.diagnosis.clone(),
        plan: s.plan.clone(),
        timeline: st.store.session_log(&id).await?,
        verdict: st.store.verdict(&id).await?,
    }))
}
