//! The repository endpoints a quarantine uses, answering as API v4 does: a file's raw text
//! (`GET /projects/{id}/repository/files/{path}/raw?ref=`, CODEOWNERS), users by name
//! (`GET /users?username=`), and issues filed, noted on and closed
//! (`POST /projects/{id}/issues`, `POST …/issues/{iid}/notes`, `PUT …/issues/{iid}`).

use super::state::GitlabState;
use crate::core::http::{json, pairs, param, text};
use crate::core::sim::Shared;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = Arc<Shared<GitlabState>>;
type St = State<Sh>;

/// An issue as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub project: String,
    pub iid: u64,
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    pub assignee_ids: Vec<u64>,
    /// `opened` or `closed`.
    pub state: String,
    pub notes: Vec<String>,
}

pub(super) fn routes() -> Router<Sh> {
    let p = "/api/v4/projects/{project}";
    Router::new()
        .route(&format!("{p}/repository/files/{{path}}/raw"), get(raw_file))
        .route(&format!("{p}/issues"), post(create_issue))
        .route(&format!("{p}/issues/{{iid}}"), put(update_issue))
        .route(&format!("{p}/issues/{{iid}}/notes"), post(issue_note))
        .route("/api/v4/users", get(users))
}

fn message(status: StatusCode, m: &str) -> Response {
    json(status, json!({"message": m}))
}

/// The project a URL names: one with pipelines (by id or path), or a path with files.
fn project(st: &GitlabState, id_or_path: &str) -> Option<String> {
    st.project(id_or_path).map(|p| p.path.clone()).or_else(|| {
        st.files
            .keys()
            .any(|(p, _)| p == id_or_path)
            .then(|| id_or_path.to_string())
    })
}

async fn raw_file(
    State(sh): St,
    Path((proj, path)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let Some(proj) = project(&st, &proj) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    // Older GitLab requires `ref`; the stand-in has one branch, `main`, which HEAD names.
    let q = pairs(q.as_deref());
    match param(&q, "ref") {
        Some("HEAD" | "main") => {}
        Some(_) => return message(StatusCode::NOT_FOUND, "404 Commit Not Found"),
        None => return json(StatusCode::BAD_REQUEST, json!({"error": "ref is missing"})),
    }
    match st.files.get(&(proj, path)) {
        Some(t) => text(StatusCode::OK, t.clone()),
        None => message(StatusCode::NOT_FOUND, "404 File Not Found"),
    }
}

async fn users(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let st = sh.state.lock().await;
    let q = pairs(q.as_deref());
    let name = param(&q, "username").unwrap_or_default();
    let found: Vec<Value> = st
        .config
        .users()
        .filter(|u| u.username.eq_ignore_ascii_case(name))
        .map(|u| json!({"id": u.id, "username": u.username, "state": "active"}))
        .collect();
    json(StatusCode::OK, Value::Array(found))
}

fn issue_json(st: &GitlabState, i: &Issue) -> Value {
    let assignees: Vec<Value> = i
        .assignee_ids
        .iter()
        .map(|id| {
            let name = st
                .config
                .users()
                .find(|u| u.id == *id)
                .map(|u| u.username.clone());
            json!({"id": id, "username": name})
        })
        .collect();
    json!({
        "id": 9000 + i.iid, "iid": i.iid, "title": i.title, "description": i.description,
        "state": i.state, "labels": i.labels, "assignees": assignees,
        "web_url": format!("{}/{}/-/issues/{}", st.base_url, i.project, i.iid),
    })
}

async fn create_issue(State(sh): St, Path(proj): Path<String>, Json(b): Json<Value>) -> Response {
    let mut st = sh.state.lock().await;
    let Some(proj) = project(&st, &proj) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let Some(title) = b["title"].as_str().filter(|t| !t.is_empty()) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "title is missing"}),
        );
    };
    // `labels` is a comma-separated string.
    let labels = b["labels"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let iid = st.issues.iter().filter(|i| i.project == proj).count() as u64 + 1;
    let issue = Issue {
        project: proj,
        iid,
        title: title.to_string(),
        description: b["description"].as_str().unwrap_or_default().to_string(),
        labels,
        assignee_ids: b["assignee_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect(),
        state: "opened".into(),
        notes: vec![],
    };
    let body = issue_json(&st, &issue);
    st.issues.push(issue);
    json(StatusCode::CREATED, body)
}

/// Runs `change` on the project's issue `iid` (404 when there is none): its error is the
/// answer, else the answer is `201` with what it returns, or `200` with the issue.
async fn on_issue(
    sh: &Sh,
    proj: &str,
    iid: u64,
    change: impl FnOnce(&mut Issue) -> Result<Option<Value>, (StatusCode, Value)>,
) -> Response {
    let mut st = sh.state.lock().await;
    let Some(proj) = project(&st, proj) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let Some(i) = st
        .issues
        .iter_mut()
        .find(|i| i.project == proj && i.iid == iid)
    else {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    };
    match change(i) {
        Err((status, body)) => json(status, body),
        Ok(Some(v)) => json(StatusCode::CREATED, v),
        Ok(None) => {
            let i = i.clone();
            json(StatusCode::OK, issue_json(&st, &i))
        }
    }
}

/// `state_event=close|reopen`.
async fn update_issue(
    State(sh): St,
    Path((proj, iid)): Path<(String, u64)>,
    Json(b): Json<Value>,
) -> Response {
    on_issue(&sh, &proj, iid, |i| {
        match b["state_event"].as_str() {
            Some("close") => i.state = "closed".into(),
            Some("reopen") => i.state = "opened".into(),
            Some(_) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    json!({"error": "state_event does not have a valid value"}),
                ))
            }
            None => {}
        }
        Ok(None)
    })
    .await
}

async fn issue_note(
    State(sh): St,
    Path((proj, iid)): Path<(String, u64)>,
    Json(b): Json<Value>,
) -> Response {
    on_issue(&sh, &proj, iid, |i| {
        let Some(body) = b["body"].as_str().filter(|t| !t.is_empty()) else {
            return Err((
                StatusCode::BAD_REQUEST,
                json!({"message": "400 Bad request - body is missing"}),
            ));
        };
        i.notes.push(body.to_string());
        Ok(Some(
            json!({"id": i.notes.len(), "body": body, "system": false}),
        ))
    })
    .await
}
