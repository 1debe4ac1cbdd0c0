//! Check runs as the Checks API keeps them (create, update, list by commit, get), their
//! `actions` buttons with GitHub's limits, a button press sent as a signed `check_run`
//! `requested_action` delivery, and team memberships
//! (`GET /orgs/{org}/teams/{team_slug}/memberships/{username}`).

use super::payload::{delivery, repo_json};
use super::state::GithubState;
use crate::core::http::{json, pairs, param, rfc3339_s};
use crate::core::sim::Shared;
use crate::core::webhook::Delivery;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

type Sh = Arc<Shared<GithubState>>;

/// The Checks API's limits on an action button.
const ACTION_LIMITS: &[(&str, usize)] = &[("label", 20), ("description", 40), ("identifier", 20)];
const MAX_ACTIONS: usize = 3;
const CONCLUSIONS: &[&str] = &[
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];

/// One check run: its repository and the object as the API shows it.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub repo: String,
    pub body: Value,
    /// Every version written (create, then each update), oldest first.
    pub history: Vec<Value>,
}

pub(super) fn routes() -> Router<Sh> {
    let repo = "/repos/{owner}/{repo}";
    Router::new()
        .route(&format!("{repo}/check-runs"), post(create))
        .route(
            &format!("{repo}/check-runs/{{id}}"),
            get(get_one).patch(update),
        )
        .route(&format!("{repo}/commits/{{sha}}/check-runs"), get(list))
        .route(
            "/orgs/{org}/teams/{team}/memberships/{user}",
            get(membership),
        )
}

fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest/checks/runs"}),
    )
}

/// The fields a write may carry, checked as GitHub does (422 with the reason).
fn check(body: &Value, creating: bool) -> Result<(), String> {
    if creating {
        for k in ["name", "head_sha"] {
            if !body[k].is_string() {
                return Err(format!("{k} wasn't supplied."));
            }
        }
    }
    if let Some(c) = body["conclusion"].as_str() {
        if !CONCLUSIONS.contains(&c) {
            return Err(format!(
                "conclusion {c:?} is not a member of {CONCLUSIONS:?}"
            ));
        }
    }
    if body["status"] == "completed" && !body["conclusion"].is_string() {
        return Err("conclusion is required when status is completed".into());
    }
    let output = &body["output"];
    let described = output["title"].is_string() && output["summary"].is_string();
    if !output.is_null() && !described {
        return Err("output needs title and summary".into());
    }
    let actions = body["actions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if actions.len() > MAX_ACTIONS {
        return Err(format!("at most {MAX_ACTIONS} actions"));
    }
    for a in actions {
        for (k, max) in ACTION_LIMITS {
            let v = a[*k]
                .as_str()
                .ok_or(format!("actions: {k} wasn't supplied."))?;
            if v.is_empty() || v.chars().count() > *max {
                return Err(format!(
                    "actions: {k} {v:?} is longer than {max} characters"
                ));
            }
        }
    }
    Ok(())
}

/// Writes `patch`'s fields over `run` as `PATCH` does (`output` and `actions` replaced whole).
fn apply(run: &mut Value, patch: &Value) {
    for k in [
        "name",
        "status",
        "conclusion",
        "details_url",
        "external_id",
        "output",
        "actions",
    ] {
        if !patch[k].is_null() {
            run[k] = patch[k].clone();
        }
    }
    // Back in progress: no conclusion until it completes again.
    if run["status"] != "completed" {
        run["conclusion"] = Value::Null;
        run["completed_at"] = Value::Null;
    }
    if run["status"] == "completed" && run["completed_at"].is_null() {
        run["completed_at"] = json!(rfc3339_s(OffsetDateTime::now_utc()));
    }
}

async fn create(
    State(sh): State<Sh>,
    Path((o, r)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(m) = check(&body, true) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &m);
    }
    let mut st = sh.state.lock().await;
    let id = st.check_runs.keys().max().copied().unwrap_or(4_000_000) + 1;
    let repo = format!("{o}/{r}");
    let mut run = json!({
        "id": id, "head_sha": body["head_sha"], "status": "queued", "conclusion": null,
        "external_id": "", "actions": [], "output": {"title": null, "summary": null},
        "html_url": format!("{}/{repo}/runs/{id}", st.base_url),
        "started_at": rfc3339_s(OffsetDateTime::now_utc()), "completed_at": null,
        "app": {"slug": "pipeguard"},
    });
    apply(&mut run, &body);
    st.check_runs.insert(
        id,
        CheckRun {
            repo,
            body: run.clone(),
            history: vec![run.clone()],
        },
    );
    json(StatusCode::CREATED, run)
}

async fn update(
    State(sh): State<Sh>,
    Path((o, r, id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(m) = check(&body, false) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &m);
    }
    let mut st = sh.state.lock().await;
    let Some(run) = st
        .check_runs
        .get_mut(&id)
        .filter(|c| c.repo == format!("{o}/{r}"))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    apply(&mut run.body, &body);
    run.history.push(run.body.clone());
    json(StatusCode::OK, run.body.clone())
}

async fn get_one(State(sh): State<Sh>, Path((o, r, id)): Path<(String, String, u64)>) -> Response {
    let st = sh.state.lock().await;
    match st
        .check_runs
        .get(&id)
        .filter(|c| c.repo == format!("{o}/{r}"))
    {
        Some(c) => json(StatusCode::OK, c.body.clone()),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET …/commits/{sha}/check-runs?check_name=&filter=`: the commit's check runs.
async fn list(
    State(sh): State<Sh>,
    Path((o, r, sha)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = pairs(q.as_deref());
    let name = param(&q, "check_name");
    let st = sh.state.lock().await;
    let repo = format!("{o}/{r}");
    let runs: Vec<Value> = st
        .check_runs
        .values()
        .filter(|c| c.repo == repo && c.body["head_sha"] == sha.as_str())
        .filter(|c| name.is_none_or(|n| c.body["name"] == n))
        .map(|c| c.body.clone())
        .rev()
        .collect();
    json(
        StatusCode::OK,
        json!({"total_count": runs.len(), "check_runs": runs}),
    )
}

/// Active membership of `user` in `org/team`, else 404 as GitHub answers.
async fn membership(
    State(sh): State<Sh>,
    Path((org, team, user)): Path<(String, String, String)>,
) -> Response {
    let mut st = sh.state.lock().await;
    let slug = format!("{org}/{team}");
    st.membership_lookups.push((slug.clone(), user.clone()));
    let member = st
        .config
        .teams
        .get(&slug)
        .is_some_and(|members| members.iter().any(|m| m.eq_ignore_ascii_case(&user)));
    if member {
        let url = format!("{}/orgs/{org}/teams/{team}/memberships/{user}", st.base_url);
        json(
            StatusCode::OK,
            json!({"url": url, "role": "member", "state": "active"}),
        )
    } else {
        error(StatusCode::NOT_FOUND, "Not Found")
    }
}

/// `check_run` `requested_action`: `login` pressed the button `identifier` of check run `id`.
pub(super) fn press_delivery(
    st: &GithubState,
    id: u64,
    identifier: &str,
    login: &str,
) -> Option<Delivery> {
    let run = st.check_runs.get(&id)?;
    let installation = st
        .config
        .app
        .as_ref()
        .and_then(|a| {
            a.installations
                .iter()
                .find(|(_, rs)| rs.contains(&run.repo))
        })
        .map(|(id, _)| json!({"id": id}));
    let body = json!({
        "action": "requested_action",
        "check_run": run.body,
        "requested_action": {"identifier": identifier},
        "repository": repo_json(st, &run.repo),
        "sender": {"login": login, "id": super::payload::stable_id(login), "type": "User"},
        "installation": installation,
    });
    Some(delivery("check_run", body))
}
