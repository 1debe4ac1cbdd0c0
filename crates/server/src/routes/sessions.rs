//! Sessions: the list, one session with its diagnosis, plan, actions and timeline, and a
//! human's decision on a plan waiting for approval.

use crate::error::ApiError;
use crate::routes::status::Page;
use crate::Shared;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_core::Category;
use pipeguard_platforms::label::{self, RunRef};
use pipeguard_store::{SessionFilter, SessionRecord, SessionStatus};
use serde::Deserialize;
use serde_json::{json, Value};

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

pub fn session_json(s: &SessionRecord) -> Value {
    let run = run_ref(s);
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
        "run_attempt": label::attempt(&run),
        "run_label": label::run_label(&run),
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
        // Against which green runs of the job the evidence was read (`null`: none known).
        "baseline": s.diagnosis.as_ref().and_then(|d| d.get("baseline").cloned()),
        "time_to_green_ms": s.time_to_green_ms,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "purged_at": s.purged_at,
        "incident_id": s.incident_id,
    })
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
        (status = 200, description = "A page of sessions", body = crate::routes::openapi::schema::SessionList),
        (status = 400, description = "An unknown parameter, status, category or platform", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn list_sessions(
    State(st): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (page, filter) = (q.page()?, q.filter()?);
    let sessions = st
        .store
        .find_sessions(&filter, page.limit, page.offset)
        .await?;
    Ok(Json(
        json!({"sessions": sessions.iter().map(session_json).collect::<Vec<_>>()}),
    ))
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
        (status = 200, description = "The session", body = crate::routes::openapi::schema::SessionDetail),
        (status = 404, description = "No such session", body = crate::routes::openapi::schema::ErrorBody),
    )
)]
pub async fn get_session(
    State(st): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = find(&st, &id).await?;
    let mut v = session_json(&s);
    v["diagnosis"] = s.diagnosis.clone().unwrap_or(Value::Null);
    v["plan"] = json!(s.plan);
    v["actions"] = json!(st.store.actions(&id).await?);
    v["timeline"] = json!(st.store.session_log(&id).await?);
    v["verdict"] = json!(st.store.verdict(&id).await?);
    Ok(Json(v))
}
