//! The repository side a quarantine needs: who owns a test (CODEOWNERS through the contents
//! API) and its ticket (an issue filed, then closed on release).

use super::client::{repo_path, GithubClient};
use crate::api::encode;
use crate::{Issue, PlatformError, Ticket};
use base64::Engine;
use pipeguard_core::event::FailureEvent;
use reqwest::Method;
use serde_json::{json, Value};

/// Where GitHub looks for CODEOWNERS, in its order: the first one found is used.
pub const CODEOWNERS_PATHS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

pub(super) async fn codeowners(
    gh: &GithubClient,
    ev: &FailureEvent,
) -> Result<Option<String>, PlatformError> {
    let api = gh.api_for(ev).await?;
    let repo = repo_path(ev)?;
    for p in CODEOWNERS_PATHS {
        let path = format!(
            "{repo}/contents/{}",
            p.split('/').map(encode).collect::<Vec<_>>().join("/")
        );
        let file: Value = match api.get_json("read CODEOWNERS", &path).await {
            Ok(v) => v,
            Err(PlatformError::Refused { status: 404, .. }) => continue,
            Err(e) => return Err(e),
        };
        // The contents API sends a file as base64 with line breaks.
        let b64: String = file["content"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| PlatformError::Permanent(format!("{p}: not base64: {e}")))?;
        return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(None)
}

pub(super) async fn open(
    gh: &GithubClient,
    ev: &FailureEvent,
    issue: &Issue,
) -> Result<Option<Ticket>, PlatformError> {
    let api = gh.api_for(ev).await?;
    let body = json!({"title": issue.title, "body": issue.body, "labels": issue.labels,
                      "assignees": issue.assignees});
    let path = format!("{}/issues", repo_path(ev)?);
    // Once: a lost answer must not file the issue twice.
    let r = api
        .call_once("file an issue", Method::POST, &path, Some(&body))
        .await?;
    let v: Value = crate::api::read_json("file an issue", r).await?;
    let id = v["number"].as_u64().map(|n| n.to_string());
    match (id, v["html_url"].as_str()) {
        (Some(id), Some(url)) => Ok(Some(Ticket {
            id,
            url: url.to_string(),
        })),
        _ => Err(PlatformError::Permanent(
            "the issue answer names no number".into(),
        )),
    }
}

pub(super) async fn close(
    gh: &GithubClient,
    ev: &FailureEvent,
    ticket: &Ticket,
    comment: &str,
) -> Result<(), PlatformError> {
    let api = gh.api_for(ev).await?;
    let issue = format!("{}/issues/{}", repo_path(ev)?, encode(&ticket.id));
    let c = json!({"body": comment});
    api.call(
        "comment on an issue",
        Method::POST,
        &format!("{issue}/comments"),
        Some(&c),
    )
    .await?;
    let state = json!({"state": "closed", "state_reason": "completed"});
    api.call("close an issue", Method::PATCH, &issue, Some(&state))
        .await?;
    Ok(())
}
