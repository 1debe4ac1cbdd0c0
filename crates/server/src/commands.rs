//! Decisions people give where they already look: a button on the session's GitHub check
//! run, a `/pipeguard approve|reject|retry` note on a GitLab merge request or commit, a
//! Slack button. Each is the API's decision (`crate::approvals`), recorded as `github:LOGIN`,
//! `gitlab:USER` or `slack:USER_ID` with its source, allowed only for the configured approvers.

use crate::approvals::{self, Decided, DecisionError};
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::Shared;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_platforms::api::{encode, ApiClient};
use pipeguard_platforms::{Command, CommandPlace, PlatformError, Verb};
use pipeguard_store::{SessionFilter, SessionRecord, SessionStatus as S};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a team or group membership read from the platform is trusted.
const MEMBERSHIP_TTL: Duration = Duration::from_secs(60);

/// Where a decision came from: the audit's `via` and the approver's name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    GithubCheckRun,
    GitlabNote,
    Slack,
}

impl Source {
    fn via(self) -> &'static str {
        match self {
            Source::GithubCheckRun => "github_check_run",
            Source::GitlabNote => "gitlab_note",
            Source::Slack => "slack",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Source::GithubCheckRun => "github",
            Source::GitlabNote => "gitlab",
            Source::Slack => "slack",
        }
    }

    /// The person as the approval records them.
    pub fn principal(self, user: &str) -> Principal {
        Principal {
            name: format!("{}:{user}", self.prefix()),
            role: Role::Operator,
            via: self.via(),
        }
    }
}

/// Team and group memberships read from the platforms, kept briefly: a burst of presses asks
/// once, and a removal from a team counts within a minute.
#[derive(Default)]
pub struct Memberships {
    seen: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

impl Memberships {
    fn get(&self, group: &str, user: &str) -> Option<bool> {
        let seen = self.seen.lock().unwrap();
        let (member, at) = seen.get(&(group.to_string(), user.to_string()))?;
        (at.elapsed() < MEMBERSHIP_TTL).then_some(*member)
    }

    fn put(&self, group: &str, user: &str, member: bool) {
        let mut seen = self.seen.lock().unwrap();
        seen.insert(
            (group.to_string(), user.to_string()),
            (member, Instant::now()),
        );
    }
}

/// What a decision did, in words for the place it was given.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub text: String,
    /// Whether the session moved (an approval that runs the plan, a rejection, a retry).
    pub acted: bool,
}

/// Carries out `verb` on session `id` as `who`, through the API's decision path.
pub async fn carry_out(st: &Shared, id: &str, verb: Verb, who: &Principal) -> Outcome {
    let done = match verb {
        Verb::Approve => approvals::approve(st, id, who, None)
            .await
            .map(|d| match d {
                Decided::Approved { by } => (
                    format!("approved by {}: the plan runs", by.join(", ")),
                    true,
                ),
                Decided::Waiting {
                    approvals,
                    required,
                } => (
                    format!(
                        "approved by {} ({approvals} of {required}); {} more needed",
                        who.name,
                        required.saturating_sub(approvals)
                    ),
                    false,
                ),
                Decided::Rejected => (format!("rejected by {}", who.name), true),
            }),
        Verb::Reject => approvals::reject(st, id, who, None).await.map(|_| {
            (
                format!("rejected by {}: the session is escalated", who.name),
                true,
            )
        }),
        Verb::Retry => approvals::retry(st, id, who).await.map(|r| {
            let text = format!("sent again by {}: {}", who.name, r.kinds.join(", "));
            (text, true)
        }),
    };
    match done {
        Ok((text, acted)) => Outcome { text, acted },
        Err(DecisionError::Store(e)) => {
            tracing::error!(session = id, "cannot record a decision: {e}");
            Outcome {
                text: "the decision could not be recorded; try again".into(),
                acted: false,
            }
        }
        Err(e) => Outcome {
            text: e.to_string(),
            acted: false,
        },
    }
}

/// The refusal people see.
pub fn may_not(user: &str, verb: Verb) -> String {
    format!("{user} may not {}", verb.as_str())
}

/// A command delivered by a platform's webhook (already verified): the session it names,
/// the approvers check, the decision, and the answer where it was given.
pub async fn from_platform(
    st: &Shared,
    platform: Platform,
    c: Command,
) -> Result<Response, ApiError> {
    let source = match platform {
        Platform::Github => Source::GithubCheckRun,
        Platform::Gitlab => Source::GitlabNote,
        _ => {
            return Err(ApiError::bad_request(format!(
                "{platform} takes no commands"
            )))
        }
    };
    let Some(s) = session_for(st, platform, &c).await? else {
        let text = format!("no pipeguard session of {} matches this", c.repository);
        return Ok(answer(StatusCode::OK, None, &text, false));
    };
    let outcome = match allowed(st, platform, &c).await {
        Ok(true) => carry_out(st, &s.id, c.verb, &source.principal(&c.user)).await,
        Ok(false) => Outcome {
            text: may_not(&c.user, c.verb),
            acted: false,
        },
        Err(e) => {
            tracing::warn!(user = %c.user, "cannot read approvers' memberships: {e}");
            Outcome {
                text: format!(
                    "{}: memberships could not be read",
                    may_not(&c.user, c.verb)
                ),
                acted: false,
            }
        }
    };
    if let Err(e) = reply(st, platform, &c, &s, &outcome).await {
        tracing::warn!(session = %s.id, "cannot answer where the command was given: {e}");
    }
    Ok(answer(
        StatusCode::OK,
        Some(&s.id),
        &outcome.text,
        outcome.acted,
    ))
}

fn answer(status: StatusCode, session: Option<&str>, text: &str, acted: bool) -> Response {
    let body = json!({"status": if acted { "decided" } else { "ignored" },
                      "session_id": session, "message": text});
    (status, Json(body)).into_response()
}

/// The session a command is about, on the platform and repository the delivery is from: the
/// check run's, or the newest on the commit (one waiting for the verb first).
async fn session_for(
    st: &Shared,
    platform: Platform,
    c: &Command,
) -> Result<Option<SessionRecord>, pipeguard_store::StoreError> {
    let ours = |s: &SessionRecord| {
        s.platform == platform.as_str() && s.repository.eq_ignore_ascii_case(&c.repository)
    };
    let sha = match &c.place {
        CommandPlace::CheckRun { session, .. } => {
            return Ok(st.store.get_session(session).await?.filter(ours))
        }
        CommandPlace::MergeRequest { sha, .. } | CommandPlace::Commit { sha } => sha,
    };
    let filter = SessionFilter {
        repository: Some(c.repository.clone()),
        platform: Some(platform.as_str().into()),
        ..Default::default()
    };
    let on_commit: Vec<SessionRecord> = st
        .store
        .find_sessions(&filter, 200, 0)
        .await?
        .into_iter()
        .filter(|s| s.head_sha.as_deref() == Some(sha.as_str()))
        .collect();
    let wanted = if c.verb == Verb::Retry {
        S::Failed
    } else {
        S::AwaitingApproval
    };
    Ok(on_commit
        .iter()
        .find(|s| s.status == wanted)
        .or(on_commit.first())
        .cloned())
}

/// Whether the platform's `approvers` name the user, or a team or group they are in.
async fn allowed(st: &Shared, platform: Platform, c: &Command) -> Result<bool, PlatformError> {
    let approvers = &st.config.platform(platform).approvers;
    if approvers.iter().any(|a| a.eq_ignore_ascii_case(&c.user)) {
        return Ok(true);
    }
    let http = st.registry.http();
    for group in approvers {
        let key = format!("{}:{group}", platform.as_str());
        if let Some(member) = st.memberships.get(&key, &c.user) {
            if member {
                return Ok(true);
            }
            continue;
        }
        let member = match platform {
            Platform::Github => {
                let Some((org, team)) = group.split_once('/') else {
                    continue;
                };
                let api = crate::notify::platform::github_api(&st.config, http, &c.repository);
                github_member(&api.await?, org, team, &c.user).await?
            }
            _ => {
                let api = crate::notify::platform::gitlab_api(&st.config, http, &c.repository)?;
                gitlab_member(&api, group, c.user_id).await?
            }
        };
        st.memberships.put(&key, &c.user, member);
        if member {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `GET /orgs/{org}/teams/{team_slug}/memberships/{username}`: an active member.
async fn github_member(
    api: &ApiClient,
    org: &str,
    team: &str,
    login: &str,
) -> Result<bool, PlatformError> {
    let path = format!(
        "/orgs/{}/teams/{}/memberships/{}",
        encode(org),
        encode(team),
        encode(login)
    );
    match api.get_json::<Value>("team membership", &path).await {
        Ok(v) => Ok(v["state"] == "active"),
        Err(PlatformError::Refused { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `GET /groups/{id}/members/all/{user_id}`: a member of the group, directly or inherited.
async fn gitlab_member(
    api: &ApiClient,
    group: &str,
    user_id: Option<u64>,
) -> Result<bool, PlatformError> {
    let Some(user_id) = user_id else {
        return Ok(false);
    };
    let path = format!("/groups/{}/members/all/{user_id}", encode(group));
    match api.get_json::<Value>("group membership", &path).await {
        Ok(v) => Ok(v["state"].as_str().is_none_or(|s| s == "active")),
        Err(PlatformError::Refused { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The answer where the command was given: the check run's title (unless the approval runs
/// the plan, whose progress the check run then shows), or a note on the merge request or
/// commit.
async fn reply(
    st: &Shared,
    platform: Platform,
    c: &Command,
    s: &SessionRecord,
    outcome: &Outcome,
) -> Result<(), PlatformError> {
    let http = st.registry.http();
    let now = st.store.get_session(&s.id).await.ok().flatten();
    let s = now.as_ref().unwrap_or(s);
    let text = format!("pipeguard: {} (session {})", outcome.text, s.id);
    match (&c.place, platform) {
        (CommandPlace::CheckRun { id, .. }, _) => {
            if outcome.acted && c.verb == Verb::Approve {
                return Ok(());
            }
            crate::notify::platform::note_on_check_run(&st.config, http, s, *id, &outcome.text)
                .await
        }
        (CommandPlace::MergeRequest { iid, .. }, Platform::Gitlab) => {
            let api = crate::notify::platform::gitlab_api(&st.config, http, &c.repository)?;
            let path = format!(
                "/projects/{}/merge_requests/{iid}/notes",
                encode(&c.repository)
            );
            let body = json!({"body": text});
            api.call("merge request note", Method::POST, &path, Some(&body))
                .await
                .map(|_| ())
        }
        (CommandPlace::Commit { sha }, Platform::Gitlab) => {
            let api = crate::notify::platform::gitlab_api(&st.config, http, &c.repository)?;
            let path = format!(
                "/projects/{}/repository/commits/{}/comments",
                encode(&c.repository),
                encode(sha)
            );
            let body = json!({"note": text});
            api.call("commit comment", Method::POST, &path, Some(&body))
                .await
                .map(|_| ())
        }
        _ => Ok(()),
    }
}
