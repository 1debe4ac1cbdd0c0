//! Merge requests, notes and group memberships as API v4 keeps them: notes on a merge request
//! (`POST /projects/{id}/merge_requests/{iid}/notes`), comments on a commit
//! (`POST /projects/{id}/repository/commits/{sha}/comments`), a group's members inherited
//! included (`GET /groups/{id}/members/all/{user_id}`), and a person's note sent as a
//! `Note Hook` delivery.

use super::payload::{delivery, project_json};
use super::state::GitlabState;
use crate::core::http::{gitlab_hook_time, json};
use crate::core::sim::Shared;
use crate::core::webhook::Delivery;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

type Sh = Arc<Shared<GitlabState>>;

/// A GitLab user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: u64,
    pub username: String,
}

impl User {
    pub fn new(id: u64, username: impl Into<String>) -> User {
        User {
            id,
            username: username.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub project: String,
    pub iid: u64,
    /// The head commit.
    pub sha: String,
}

/// Where a note is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Noteable {
    MergeRequest(u64),
    Commit(String),
}

/// A note (or commit comment) and who wrote it (`None`: the API's token, i.e. pipeguard).
#[derive(Debug, Clone)]
pub struct Note {
    pub project: String,
    pub on: Noteable,
    pub body: String,
    pub author: Option<User>,
}

pub(super) fn routes() -> Router<Sh> {
    let p = "/api/v4/projects/{project}";
    Router::new()
        .route(&format!("{p}/merge_requests/{{iid}}/notes"), post(mr_note))
        .route(
            &format!("{p}/repository/commits/{{sha}}/comments"),
            post(commit_comment),
        )
        .route("/api/v4/groups/{group}/members/all/{user}", get(member))
}

fn message(status: StatusCode, m: &str) -> Response {
    json(status, json!({"message": m}))
}

fn note_json(id: usize, n: &Note) -> Value {
    json!({"id": id, "body": n.body, "system": false,
           "created_at": gitlab_hook_time(OffsetDateTime::now_utc()),
           "author": {"id": 0, "username": "pipeguard-bot"}})
}

async fn mr_note(
    State(sh): State<Sh>,
    Path((project, iid)): Path<(String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut st = sh.state.lock().await;
    let Some(path) = st.project(&project).map(|p| p.path.clone()) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    if !st
        .merge_requests
        .iter()
        .any(|m| m.project == path && m.iid == iid)
    {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    }
    let Some(text) = body["body"].as_str().filter(|b| !b.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
    };
    let note = Note {
        project: path,
        on: Noteable::MergeRequest(iid),
        body: text.to_string(),
        author: None,
    };
    st.notes.push(note.clone());
    json(StatusCode::CREATED, note_json(st.notes.len(), &note))
}

async fn commit_comment(
    State(sh): State<Sh>,
    Path((project, sha)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut st = sh.state.lock().await;
    let Some(path) = st.project(&project).map(|p| p.path.clone()) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let Some(text) = body["note"].as_str().filter(|b| !b.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - note is missing");
    };
    let note = Note {
        project: path,
        on: Noteable::Commit(sha),
        body: text.to_string(),
        author: None,
    };
    st.notes.push(note.clone());
    json(
        StatusCode::CREATED,
        json!({"note": note.body, "author": {"username": "pipeguard-bot"}}),
    )
}

/// A member of the group or of a group above it (`members/all`), else 404.
async fn member(State(sh): State<Sh>, Path((group, user)): Path<(String, u64)>) -> Response {
    let mut st = sh.state.lock().await;
    st.membership_lookups.push((group.clone(), user));
    let member = st
        .config
        .groups
        .iter()
        .filter(|(g, _)| group == **g || group.starts_with(&format!("{g}/")))
        .flat_map(|(_, users)| users)
        .find(|u| u.id == user)
        .cloned();
    match member {
        Some(u) => json(
            StatusCode::OK,
            json!({"id": u.id, "username": u.username, "state": "active",
                   "access_level": 30}),
        ),
        None => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

/// `Note Hook`: `author` wrote `text` on a merge request or a commit of `project`.
pub(super) fn note_hook(
    st: &GitlabState,
    project: &str,
    on: &Noteable,
    author: &User,
    text: &str,
) -> Delivery {
    let p = project_json(st, project);
    let (kind, mr, commit_id) = match on {
        Noteable::MergeRequest(iid) => {
            let m = st
                .merge_requests
                .iter()
                .find(|m| m.project == project && m.iid == *iid);
            let sha = m.map(|m| m.sha.clone()).unwrap_or_default();
            let mr = json!({"iid": iid, "id": 1000 + iid, "state": "opened",
                            "title": "Change", "source_branch": "feature",
                            "last_commit": {"id": sha, "message": "Change\n"}});
            ("MergeRequest", mr, Value::Null)
        }
        Noteable::Commit(sha) => ("Commit", Value::Null, json!(sha)),
    };
    let mut body = json!({
        "object_kind": "note",
        "event_type": "note",
        "user": {"id": author.id, "name": author.username, "username": author.username},
        "project_id": p["id"],
        "project": p,
        "object_attributes": {
            "id": st.notes.len() + 1, "note": text, "noteable_type": kind,
            "author_id": author.id, "commit_id": commit_id, "system": false,
            "created_at": gitlab_hook_time(OffsetDateTime::now_utc()),
        },
    });
    if kind == "MergeRequest" {
        body["merge_request"] = mr;
    } else {
        body["commit"] = json!({"id": commit_id, "message": "Change\n"});
    }
    delivery(st, "Note Hook", body)
}
