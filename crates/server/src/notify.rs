//! Telling people: when a session is escalated, failed or waits for approval, each
//! configured channel gets the evidence. Sending runs as a queued job, so a channel that is
//! down is tried again and a restart loses nothing.

pub mod platform;

use crate::tenants::NotifyConfig;
use pipeguard_platforms::api::{client, send, HttpOptions};
use pipeguard_platforms::webhook::hmac_sha256_hex;
use pipeguard_platforms::PlatformError;
use pipeguard_store::SessionRecord;
use serde_json::{json, Value};

pub struct Notifier {
    http: reqwest::Client,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}

/// The evidence lines of a session's diagnosis, as stored.
fn evidence(s: &SessionRecord) -> Vec<String> {
    s.diagnosis
        .as_ref()
        .and_then(|d| d["evidence"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The generic webhook body: the session's facts and the evidence. `status` is the one the
/// message was queued for (the session may have moved on since).
pub fn generic_payload(s: &SessionRecord, status: &str) -> Value {
    json!({
        "event": format!("session.{status}"),
        "session": {
            "id": s.id,
            "platform": s.platform,
            "repository": s.repository,
            "run_id": s.run_id,
            "workflow": s.workflow,
            "head_sha": s.head_sha,
            "url": s.event.url,
            "status": status,
            "category": s.category,
            "confidence": s.confidence,
            "strategy": s.strategy,
            "heal_attempts": s.heal_attempts,
            "reason": s.reason,
            "evidence": evidence(s),
            "explanation": crate::analyst::notification_text(s),
        },
        "api": format!("/api/v1/sessions/{}", s.id),
    })
}

/// A Slack incoming-webhook body (`text` for notifications, `blocks` for the message).
pub fn slack_payload(s: &SessionRecord, status: &str) -> Value {
    let what = match status {
        "awaiting_approval" => "waits for approval",
        "failed" => "could not be healed",
        _ => "needs a human",
    };
    let run = match &s.event.url {
        Some(u) => format!("<{u}|{} run {}>", s.workflow, s.run_id),
        None => format!("{} run {}", s.workflow, s.run_id),
    };
    let headline = format!("pipeguard: {} {run} on {} {what}", s.repository, s.platform);
    let mut detail = format!(
        "*{}* ({})\n{}",
        s.category.as_deref().unwrap_or("unknown"),
        s.confidence
            .map(|c| format!("confidence {c:.2}"))
            .unwrap_or_default(),
        slack_escape(s.reason.as_deref().unwrap_or(""))
    );
    let ev = evidence(s);
    if !ev.is_empty() {
        // Slack caps a section's text at 3000 characters.
        let lines: String = slack_escape(&ev.join("\n")).chars().take(2500).collect();
        detail.push_str(&format!("\n```{lines}```"));
    }
    let mut body = json!({
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("session `{}`", s.id)}]},
        ],
    });
    if let (Some(x), Some(blocks)) = (
        crate::analyst::notification_text(s),
        body["blocks"].as_array_mut(),
    ) {
        // A section of its own: Slack caps each at 3000 characters.
        let x: String = slack_escape(&x).chars().take(2900).collect();
        blocks.insert(
            2,
            json!({"type": "section", "text": {"type": "mrkdwn", "text": x}}),
        );
    }
    if let (Some(b), Some(blocks)) = (slack_buttons(s, status), body["blocks"].as_array_mut()) {
        blocks.push(b);
    }
    body
}

/// A Slack button: `(action_id, label, style)`.
type Button = (&'static str, &'static str, &'static str);

/// The buttons of a Slack message by the status it tells of. A press comes back to
/// `POST /webhooks/slack/interactions` with the session as its value.
const SLACK_BUTTONS: &[(&str, &[Button])] = &[
    (
        "awaiting_approval",
        &[
            ("approve", "Approve", "primary"),
            ("reject", "Reject", "danger"),
        ],
    ),
    ("failed", &[("retry", "Retry", "primary")]),
];

/// The `actions` block for `status`, when people can decide something there.
fn slack_buttons(s: &SessionRecord, status: &str) -> Option<Value> {
    let (_, buttons) = SLACK_BUTTONS.iter().find(|(st, _)| *st == status)?;
    let elements: Vec<Value> = buttons
        .iter()
        .map(|(id, label, style)| {
            json!({"type": "button", "action_id": id, "value": s.id, "style": style,
                   "text": {"type": "plain_text", "text": label}})
        })
        .collect();
    Some(json!({"type": "actions", "block_id": "pipeguard", "elements": elements}))
}

/// Log text is untrusted: Slack's control characters are escaped, and a code fence inside it
/// cannot close the block it is shown in.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("```", "`\u{200b}``")
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier { http: client() }
    }

    /// The shared client, also used for custom strategies' HTTP calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends one session's news to one channel.
    pub async fn send(
        &self,
        ch: &NotifyConfig,
        s: &SessionRecord,
        status: &str,
    ) -> Result<(), PlatformError> {
        let body = if ch.kind == "slack" {
            slack_payload(s, status)
        } else {
            generic_payload(s, status)
        };
        self.post(ch, &body).await
    }

    /// Sends an incident's one message (`incident` as the API shows it) to one channel.
    pub async fn send_incident(
        &self,
        ch: &NotifyConfig,
        incident: &Value,
        closed: bool,
    ) -> Result<(), PlatformError> {
        let what = if closed { "closed" } else { "opened" };
        let body = if ch.kind == "slack" {
            let i = incident;
            let text = format!(
                "pipeguard: incident {} {what}: {} at {} across {} repositories; {} session(s) held, {} released, {} canary re-run(s)",
                i["id"], i["cause"].as_str().unwrap_or(""), i["target"].as_str().unwrap_or(""),
                i["repositories"], i["sessions_held"], i["sessions_released"], i["canaries"]
            );
            json!({ "text": text })
        } else {
            json!({"event": format!("incident.{what}"), "incident": incident, "api": "/api/v1/incidents"})
        };
        self.post(ch, &body).await
    }

    /// Posts `body` to a webhook or Slack channel, signed when the channel has a secret.
    pub async fn post(&self, ch: &NotifyConfig, body: &Value) -> Result<(), PlatformError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let signature = ch
            .secret
            .as_ref()
            .map(|secret| format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &bytes)));
        send("notify", &ch.url, &HttpOptions::default(), || {
            let mut b = self
                .http
                .post(&ch.url)
                .header("Content-Type", "application/json")
                .body(bytes.clone());
            if let Some(sig) = &signature {
                b = b.header("X-Pipeguard-Signature-256", sig);
            }
            b
        })
        .await
        .map(|_| ())
    }
}

/// The channels (their indexes) whose `on` lists `quarantine_expired` for `repository`.
pub fn quarantine_channels<'a>(
    st: &'a crate::Shared,
    repository: &'a str,
) -> impl Iterator<Item = usize> + 'a {
    st.config
        .notify
        .iter()
        .enumerate()
        .filter_map(move |(i, ch)| {
            (ch.wants("quarantine_expired", repository)
                && matches!(ch.kind.as_str(), "webhook" | "slack"))
            .then_some(i)
        })
}

/// What a quarantine's end tells its owner's channel.
pub struct QuarantineNotice<'a> {
    pub repository: &'a str,
    pub test: &'a str,
    pub owner: &'a str,
    pub ticket_url: Option<&'a str>,
    pub why: &'a str,
}

impl Notifier {
    /// Tells one channel that a quarantined test was released at its end date, naming its
    /// owner (a queued job: tried again while the channel is down).
    pub async fn send_quarantine(
        &self,
        ch: &NotifyConfig,
        n: &QuarantineNotice<'_>,
    ) -> Result<(), PlatformError> {
        let text = format!(
            "pipeguard: the quarantine of `{}` in {} ended ({}). Owner: {}{}",
            n.test,
            n.repository,
            n.why,
            n.owner,
            n.ticket_url
                .map(|u| format!(", ticket {u}"))
                .unwrap_or_default()
        );
        let body = if ch.kind == "slack" {
            json!({"text": slack_escape(&text)})
        } else {
            json!({"event": "quarantine_expired", "repository": n.repository, "test": n.test,
                   "owner": n.owner, "ticket_url": n.ticket_url, "message": text})
        };
        self.post(ch, &body).await
    }
}
