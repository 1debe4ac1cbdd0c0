//! The repository side a quarantine needs on GitLab: who owns a test (CODEOWNERS through the
//! repository files API) and its ticket (an issue filed with the owner assigned when the
//! owner is a user, then closed with a note on release).
//! <https://docs.gitlab.com/api/repository_files/#get-raw-file-from-repository>,
//! <https://docs.gitlab.com/api/issues/#new-issue>, <https://docs.gitlab.com/api/users/>.

use super::client::project_api;
use crate::api::{encode, ApiClient};
use crate::{Issue, PlatformError, Ticket};
use pipeguard_core::event::FailureEvent;
use reqwest::Method;
use serde_json::{json, Value};

/// Where GitLab looks for CODEOWNERS, in its order: the first one found is used.
pub const CODEOWNERS_PATHS: [&str; 3] = ["CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"];

pub(super) async fn codeowners(
    api: &ApiClient,
    ev: &FailureEvent,
) -> Result<Option<String>, PlatformError> {
    let project = project_api(ev)?;
    for p in CODEOWNERS_PATHS {
        // The default branch's file: HEAD names it.
        let path = format!("{project}/repository/files/{}/raw?ref=HEAD", encode(p));
        let r = match api.call("read CODEOWNERS", Method::GET, &path, None).await {
            Ok(r) => r,
            Err(PlatformError::Refused { status: 404, .. }) => continue,
            Err(e) => return Err(e),
        };
        let text = r
            .text()
            .await
            .map_err(|e| PlatformError::Transient(format!("read CODEOWNERS: {e}")))?;
        return Ok(Some(text));
    }
    Ok(None)
}

/// The user id of `username`, `None` when no user has that name (a group, an address).
async fn user_id(api: &ApiClient, username: &str) -> Result<Option<u64>, PlatformError> {
    let path = format!("/api/v4/users?username={}", encode(username));
    let users: Vec<Value> = api.get_json("look up a user", &path).await?;
    Ok(users.first().and_then(|u| u["id"].as_u64()))
}

pub(super) async fn open(
    api: &ApiClient,
    ev: &FailureEvent,
    issue: &Issue,
) -> Result<Option<Ticket>, PlatformError> {
    let mut assignee_ids = Vec::new();
    for name in &issue.assignees {
        // A name that is no user stays mentioned in the description only.
        if let Some(id) = user_id(api, name).await? {
            assignee_ids.push(id);
        }
    }
    let body = json!({"title": issue.title, "description": issue.body,
                      "labels": issue.labels.join(","), "assignee_ids": assignee_ids});
    let path = format!("{}/issues", project_api(ev)?);
    // Once: a lost answer must not file the issue twice.
    let r = api
        .call_once("file an issue", Method::POST, &path, Some(&body))
        .await?;
    let v: Value = crate::api::read_json("file an issue", r).await?;
    match (v["iid"].as_u64(), v["web_url"].as_str()) {
        (Some(iid), Some(url)) => Ok(Some(Ticket {
            id: iid.to_string(),
            url: url.to_string(),
        })),
        _ => Err(PlatformError::Permanent(
            "the issue answer names no iid or web_url".into(),
        )),
    }
}

pub(super) async fn close(
    api: &ApiClient,
    ev: &FailureEvent,
    ticket: &Ticket,
    comment: &str,
) -> Result<(), PlatformError> {
    let issue = format!("{}/issues/{}", project_api(ev)?, encode(&ticket.id));
    let note = json!({"body": comment});
    api.call(
        "comment on an issue",
        Method::POST,
        &format!("{issue}/notes"),
        Some(&note),
    )
    .await?;
    let state = json!({"state_event": "close"});
    api.call("close an issue", Method::PUT, &issue, Some(&state))
        .await?;
    Ok(())
}
