//! Notifications where the team already looks: on the commit itself. A GitHub check run (or
//! commit status, for tokens that are not a GitHub App's) and a GitLab commit status plus a
//! note on the commit's open merge requests, with the diagnosis, the evidence and a link to the
//! session page. The channel's `url` is the dashboard's address; the platform's credentials
//! are the ones pipeguard heals with.

use crate::config::Config;
use crate::tenants::NotifyConfig;
use pipeguard_core::event::Platform;
use pipeguard_platforms::api::{encode, ApiClient, Auth, HttpOptions};
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::PlatformError;
use pipeguard_store::SessionRecord;
use reqwest::Method;
use serde_json::{json, Value};

/// The channel kinds that write to the platform, and the platform each one is for.
pub const KINDS: &[(&str, Platform)] = &[
    ("github_check", Platform::Github),
    ("github_status", Platform::Github),
    ("gitlab_status", Platform::Gitlab),
];

/// The platform a channel kind writes to; `None` for Slack and webhooks.
pub fn platform_of(kind: &str) -> Option<Platform> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

/// Whether the channel is told about this session: a platform kind only about sessions of
/// its platform that name a commit.
pub fn applies(ch: &NotifyConfig, s: &SessionRecord) -> bool {
    match platform_of(&ch.kind) {
        Some(p) => s.platform == p.as_str() && s.head_sha.as_deref().is_some_and(|x| !x.is_empty()),
        None => true,
    }
}

/// What the message says, by the status it was queued for.
struct Wording {
    title: &'static str,
    /// `None` while the session is being healed: the check run is in progress.
    github_conclusion: Option<&'static str>,
    github_state: &'static str,
    gitlab_state: &'static str,
}

const NEEDS_A_HUMAN: Wording = Wording {
    title: "needs a human",
    github_conclusion: Some("failure"),
    github_state: "failure",
    gitlab_state: "failed",
};

const HEALING: Wording = Wording {
    title: "is being healed",
    github_conclusion: None,
    github_state: "pending",
    gitlab_state: "running",
};

/// By session status; any other status needs a human.
const WORDING: &[(&str, Wording)] = &[
    (
        "awaiting_approval",
        Wording {
            title: "waits for an operator's approval",
            github_conclusion: Some("action_required"),
            github_state: "pending",
            gitlab_state: "pending",
        },
    ),
    (
        "healed",
        Wording {
            title: "was healed",
            github_conclusion: Some("success"),
            github_state: "success",
            gitlab_state: "success",
        },
    ),
    (
        "failed",
        Wording {
            title: "could not be healed",
            github_conclusion: Some("failure"),
            github_state: "failure",
            gitlab_state: "failed",
        },
    ),
    ("planned", HEALING),
    ("executing", HEALING),
    ("verifying", HEALING),
];

fn wording(status: &str) -> &'static Wording {
    WORDING
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(&NEEDS_A_HUMAN, |(_, w)| w)
}

/// The buttons of a check run whose session waits for approval (GitHub: label at most 20
/// characters, description 40, identifier 20).
pub const APPROVAL_ACTIONS: &[(&str, &str, &str)] = &[
    ("Approve re-run", "Run the held plan", "approve"),
    ("Reject", "Do not run it; escalate", "reject"),
];

/// Whether a channel of this kind follows its sessions past the statuses it is `on`: a check
/// run, once created, shows every later change.
pub fn follows(kind: &str) -> bool {
    kind == "github_check"
}

/// The session page on the dashboard.
pub fn session_link(ch: &NotifyConfig, s: &SessionRecord) -> String {
    format!("{}/#/sessions/{}", ch.url.trim_end_matches('/'), s.id)
}

/// A line that cannot close the code block it is shown in.
fn fence_safe(text: &str) -> String {
    text.replace("```", "`\u{200b}``")
}

/// The Markdown body: diagnosis, reason, evidence lines, link.
pub fn markdown(ch: &NotifyConfig, s: &SessionRecord, status: &str) -> String {
    let w = wording(status);
    let mut out = format!(
        "**pipeguard**: the failed {} run {} {}.\n\n",
        s.workflow, s.run_id, w.title
    );
    out.push_str(&format!(
        "- diagnosis: `{}`{}\n",
        s.category.as_deref().unwrap_or("unknown"),
        s.confidence
            .map(|c| format!(" (confidence {c:.2})"))
            .unwrap_or_default()
    ));
    if let Some(r) = s.reason.as_deref().filter(|r| !r.is_empty()) {
        out.push_str(&format!("- why: {}\n", fence_safe(r)));
    }
    let ev = super::evidence(s);
    if !ev.is_empty() {
        let lines: String = fence_safe(&ev.join("\n")).chars().take(6000).collect();
        out.push_str(&format!("\nEvidence:\n```\n{lines}\n```\n"));
    }
    out.push_str(&format!(
        "\n[Open the session in pipeguard]({})\n",
        session_link(ch, s)
    ));
    out
}

/// The title line: the status and the category; a heal says how and how long it took.
fn title(s: &SessionRecord, status: &str) -> String {
    let category = s.category.as_deref().unwrap_or("unknown");
    match (status, s.time_to_green_ms) {
        ("healed", Some(ms)) => format!(
            "{category}: healed by {} after {} m {} s",
            s.strategy.as_deref().unwrap_or("re-run"),
            ms / 60_000,
            ms / 1000 % 60
        ),
        _ => format!("{category}: {}", wording(status).title),
    }
}

/// The credentials pipeguard heals this repository with: its `[[repos]]` entry's, else the
/// platform's.
fn section_for(config: &Config, p: Platform, repository: &str) -> Section {
    let mut section = config.platform(p).clone();
    if let Some((_, r)) = crate::tenants::find_repo(&config.repos, p, repository) {
        if let Some(t) = &r.token {
            section.token = Some(t.clone());
        }
        if let Some(u) = &r.api_url {
            section.api_url = u.clone();
        }
    }
    section
}

/// Sends one session's news to a platform channel.
pub async fn send(
    config: &Config,
    http: &HttpOptions,
    ch: &NotifyConfig,
    s: &SessionRecord,
    status: &str,
) -> Result<(), PlatformError> {
    let Some(p) = platform_of(&ch.kind) else {
        return Ok(());
    };
    let sha = s.head_sha.clone().unwrap_or_default();
    if p == Platform::Github {
        let section = section_for(config, p, &s.repository);
        let api = github(&section, http, &s.repository, &ch.kind).await?;
        return github_send(&api, ch, s, status, &sha).await;
    }
    let api = gitlab_api(config, http, &s.repository).map_err(|e| match e {
        PlatformError::Refused { status, message } => PlatformError::Refused {
            status,
            message: format!("{}: {message}", ch.kind),
        },
        other => other,
    })?;
    gitlab_status(&api, ch, s, status, &sha).await
}

/// The API as the repository's token, else as the GitHub App's installation for it.
async fn github(
    section: &Section,
    http: &HttpOptions,
    repository: &str,
    kind: &str,
) -> Result<ApiClient, PlatformError> {
    if let Some(token) = section.token.clone() {
        return Ok(
            ApiClient::new(&section.api_url, Auth::Bearer(token), http.clone())
                .with_header("Accept", "application/vnd.github+json")
                .with_header("X-GitHub-Api-Version", "2022-11-28"),
        );
    }
    match pipeguard_platforms::github::shared_app(section, http) {
        Ok(Some(app)) => app.client_for(repository).await,
        Ok(None) => Err(PlatformError::Refused {
            status: 0,
            message: format!("{kind}: no github token or app configured"),
        }),
        Err(e) => Err(PlatformError::NotConfigured(e)),
    }
}

async fn github_send(
    api: &ApiClient,
    ch: &NotifyConfig,
    s: &SessionRecord,
    status: &str,
    sha: &str,
) -> Result<(), PlatformError> {
    if ch.kind == "github_check" {
        let body = check_run(ch, s, status, sha);
        return upsert_check_run(api, &s.repository, &s.id, body).await;
    }
    let body = json!({
        "state": wording(status).github_state,
        "target_url": session_link(ch, s),
        "description": short(&title(s, status), 140),
        "context": "pipeguard",
    });
    let path = format!("/repos/{}/statuses/{sha}", s.repository);
    api.call("create commit status", Method::POST, &path, Some(&body))
        .await?;
    Ok(())
}

/// One check run per session: the commit's `pipeguard` check run whose `external_id` is the
/// session is updated (`PATCH`), else one is created.
async fn upsert_check_run(
    api: &ApiClient,
    repository: &str,
    session: &str,
    mut body: Value,
) -> Result<(), PlatformError> {
    let repo = format!("/repos/{repository}");
    let sha = body["head_sha"].as_str().unwrap_or_default();
    let list = format!(
        "{repo}/commits/{}/check-runs?check_name=pipeguard&filter=all",
        encode(sha)
    );
    let existing = match api.get_json::<Value>("list check runs", &list).await {
        Ok(v) => v["check_runs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["external_id"] == session)
            .and_then(|r| r["id"].as_u64()),
        // No check run seen for the commit yet.
        Err(PlatformError::Refused { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    match existing {
        Some(id) => {
            body.as_object_mut().map(|b| b.remove("head_sha"));
            let path = format!("{repo}/check-runs/{id}");
            api.call("update check run", Method::PATCH, &path, Some(&body))
                .await?;
        }
        None => {
            let path = format!("{repo}/check-runs");
            api.call("create check run", Method::POST, &path, Some(&body))
                .await?;
        }
    }
    Ok(())
}

/// `POST /repos/{owner}/{repo}/check-runs`: a check whose output carries the diagnosis,
/// completed with the session's conclusion or in progress while it heals; `details_url`
/// opens the session, and a session awaiting approval shows the approval buttons.
pub fn check_run(ch: &NotifyConfig, s: &SessionRecord, status: &str, sha: &str) -> Value {
    let w = wording(status);
    let actions: Vec<Value> = APPROVAL_ACTIONS
        .iter()
        .filter(|_| status == "awaiting_approval")
        .map(|(label, description, identifier)| {
            json!({"label": label, "description": description, "identifier": identifier})
        })
        .collect();
    let mut body = json!({
        "name": "pipeguard",
        "head_sha": sha,
        "status": "completed",
        "details_url": session_link(ch, s),
        "external_id": s.id,
        "output": {
            "title": title(s, status),
            // GitHub caps the summary at 65535 characters.
            "summary": short(&markdown(ch, s, status), 60_000),
        },
        "actions": actions,
    });
    match w.github_conclusion {
        Some(c) => body["conclusion"] = json!(c),
        None => body["status"] = json!("in_progress"),
    }
    body
}

/// Writes `note` (what a person's button press did) as the title of check run `id` of the
/// session, keeping the rest as the session's status shows it.
pub async fn note_on_check_run(
    config: &Config,
    http: &HttpOptions,
    s: &SessionRecord,
    id: u64,
    note: &str,
) -> Result<(), PlatformError> {
    let Some(ch) = config.notify.iter().find(|c| c.kind == "github_check") else {
        return Ok(());
    };
    let api = github_api(config, http, &s.repository).await?;
    let mut body = check_run(ch, s, s.status.as_str(), "");
    body.as_object_mut().map(|b| b.remove("head_sha"));
    body["output"]["title"] = json!(short(note, 250));
    let path = format!("/repos/{}/check-runs/{id}", s.repository);
    api.call("update check run", Method::PATCH, &path, Some(&body))
        .await?;
    Ok(())
}

/// GitHub's API for `repository`, with the credentials pipeguard heals it with.
pub async fn github_api(
    config: &Config,
    http: &HttpOptions,
    repository: &str,
) -> Result<ApiClient, PlatformError> {
    let section = section_for(config, Platform::Github, repository);
    github(&section, http, repository, "github").await
}

/// GitLab's API (`/api/v4`) for `repository`, with the credentials pipeguard heals it with.
pub fn gitlab_api(
    config: &Config,
    http: &HttpOptions,
    repository: &str,
) -> Result<ApiClient, PlatformError> {
    let section = section_for(config, Platform::Gitlab, repository);
    let Some(token) = section.token.clone() else {
        return Err(PlatformError::Refused {
            status: 0,
            message: "no gitlab token configured".into(),
        });
    };
    let base = format!("{}/api/v4", section.api_url.trim_end_matches('/'));
    Ok(ApiClient::new(
        &base,
        Auth::Header("PRIVATE-TOKEN", token),
        http.clone(),
    ))
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// `POST /projects/{id}/statuses/{sha}`, then a note on each open merge request of the commit
/// (`GET /projects/{id}/repository/commits/{sha}/merge_requests`).
async fn gitlab_status(
    api: &ApiClient,
    ch: &NotifyConfig,
    s: &SessionRecord,
    status: &str,
    sha: &str,
) -> Result<(), PlatformError> {
    let project = format!("/projects/{}", encode(&s.repository));
    let mut body = json!({
        "state": wording(status).gitlab_state,
        "name": "pipeguard",
        "target_url": session_link(ch, s),
        "description": short(&title(s, status), 250),
    });
    if let Some(branch) = s.event.branch.as_deref() {
        body["ref"] = json!(branch);
    }
    let path = format!("{project}/statuses/{sha}");
    api.call("create commit status", Method::POST, &path, Some(&body))
        .await?;
    let mrs: Vec<Value> = api
        .get_json(
            "commit merge requests",
            &format!("{project}/repository/commits/{sha}/merge_requests"),
        )
        .await?;
    let note = json!({"body": markdown(ch, s, status)});
    for mr in mrs.iter().filter(|m| m["state"] == "opened") {
        let Some(iid) = mr["iid"].as_u64() else {
            continue;
        };
        let path = format!("{project}/merge_requests/{iid}/notes");
        api.call("merge request note", Method::POST, &path, Some(&note))
            .await?;
    }
    Ok(())
}
