//! The repository endpoints a quarantine uses: file contents (CODEOWNERS) and issues, created,
//! commented on and closed, answering as api.github.com does.

use super::state::GithubState;
use crate::core::http::json;
use crate::core::sim::Shared;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = Arc<Shared<GithubState>>;
type St = State<Sh>;

/// An issue as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    pub comments: Vec<String>,
}

pub(crate) fn routes() -> Router<Sh> {
    let repo = "/repos/{owner}/{repo}";
    Router::new()
        .route(&format!("{repo}/contents/{{*path}}"), get(contents))
        .route(&format!("{repo}/issues"), post(create_issue))
        .route(&format!("{repo}/issues/{{n}}"), patch(update_issue))
        .route(&format!("{repo}/issues/{{n}}/comments"), post(comment))
}

fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

fn issue_json(base: &str, i: &Issue) -> Value {
    json!({
        "number": i.number, "title": i.title, "body": i.body, "state": i.state,
        "html_url": format!("{base}/{}/issues/{}", i.repo, i.number),
        "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "assignees": i.assignees.iter().map(|a| json!({"login": a})).collect::<Vec<_>>(),
        "comments": i.comments.len(),
    })
}

/// A file's contents as the API sends them: base64 with a line break every 60 characters.
async fn contents(State(sh): St, Path((o, r, path)): Path<(String, String, String)>) -> Response {
    let st = sh.state.lock().await;
    let Some(text) = st.files.get(&(format!("{o}/{r}"), path.clone())) else {
        return not_found();
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    json(
        StatusCode::OK,
        json!({"type": "file", "encoding": "base64", "size": text.len(), "name": name,
               "path": path, "content": wrapped.join("\n") + "\n"}),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

async fn create_issue(
    State(sh): St,
    Path((o, r)): Path<(String, String)>,
    Json(b): Json<Value>,
) -> Response {
    let Some(title) = b["title"].as_str().filter(|t| !t.is_empty()) else {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]}),
        );
    };
    let mut st = sh.state.lock().await;
    let repo = format!("{o}/{r}");
    let number = st.issues.iter().filter(|i| i.repo == repo).count() as u64 + 1;
    let issue = Issue {
        repo,
        number,
        title: title.to_string(),
        body: b["body"].as_str().unwrap_or_default().to_string(),
        labels: strings(&b["labels"]),
        assignees: strings(&b["assignees"]),
        state: "open".into(),
        comments: vec![],
    };
    let body = issue_json(&st.html_base(), &issue);
    st.issues.push(issue);
    json(StatusCode::CREATED, body)
}

fn issue_mut<'a>(st: &'a mut GithubState, o: &str, r: &str, n: u64) -> Option<&'a mut Issue> {
    let repo = format!("{o}/{r}");
    st.issues
        .iter_mut()
        .find(|i| i.repo == repo && i.number == n)
}

async fn update_issue(
    State(sh): St,
    Path((o, r, n)): Path<(String, String, u64)>,
    Json(b): Json<Value>,
) -> Response {
    let mut st = sh.state.lock().await;
    let base = st.html_base();
    let Some(i) = issue_mut(&mut st, &o, &r, n) else {
        return not_found();
    };
    if let Some(s) = b["state"].as_str() {
        if s != "open" && s != "closed" {
            return json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed"}),
            );
        }
        i.state = s.to_string();
    }
    json(StatusCode::OK, issue_json(&base, i))
}

async fn comment(
    State(sh): St,
    Path((o, r, n)): Path<(String, String, u64)>,
    Json(b): Json<Value>,
) -> Response {
    let mut st = sh.state.lock().await;
    let Some(i) = issue_mut(&mut st, &o, &r, n) else {
        return not_found();
    };
    let text = b["body"].as_str().unwrap_or_default().to_string();
    i.comments.push(text.clone());
    json(
        StatusCode::CREATED,
        json!({"id": i.comments.len(), "body": text}),
    )
}
