//! `POST /webhooks/slack/interactions`: a button pressed on one of pipeguard's Slack messages.
//! Slack signs each request (<https://api.slack.com/authentication/verifying-requests-from-slack>):
//! `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{X-Slack-Request-Timestamp}:{body}">` with
//! the app's signing secret; a timestamp more than 5 minutes away is a replay. The body is
//! form-encoded, `payload=<block_actions JSON>`; the message is then updated through the
//! payload's `response_url` with who decided.

use crate::commands::{carry_out, may_not, Outcome, Source};
use crate::error::ApiError;
use crate::Shared;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use pipeguard_platforms::webhook::{header, query_param, verify_hmac_sha256};
use pipeguard_platforms::Verb;
use serde_json::{json, Value};

/// How far Slack's timestamp may be from now, in seconds.
const WINDOW_S: i64 = 5 * 60;

/// Checks Slack's signature over `v0:{timestamp}:{body}` and the timestamp's age.
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now_s: i64) -> Result<(), String> {
    let ts =
        header(headers, "x-slack-request-timestamp").ok_or("missing X-Slack-Request-Timestamp")?;
    let sig = header(headers, "x-slack-signature").ok_or("missing X-Slack-Signature")?;
    let at: i64 = ts
        .parse()
        .map_err(|_| "X-Slack-Request-Timestamp is not a number")?;
    if (now_s - at).abs() > WINDOW_S {
        return Err(
            "X-Slack-Request-Timestamp is more than 5 minutes away: a stale request".into(),
        );
    }
    let mut signed = format!("v0:{ts}:").into_bytes();
    signed.extend_from_slice(body);
    if verify_hmac_sha256(secret.as_bytes(), &signed, sig, "v0=") {
        Ok(())
    } else {
        Err("X-Slack-Signature does not match the request".into())
    }
}

/// The one button press of a `block_actions` payload.
struct Press {
    user: String,
    verb: Verb,
    session: String,
    response_url: Option<String>,
}

fn press(body: &[u8]) -> Result<Press, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8")?;
    let payload = query_param(Some(text), "payload").ok_or("the form has no payload field")?;
    let p: Value =
        serde_json::from_str(&payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    if p["type"] != "block_actions" {
        return Err(format!("payload type {} is not block_actions", p["type"]));
    }
    let action = &p["actions"][0];
    let verb = action["action_id"]
        .as_str()
        .and_then(Verb::parse)
        .ok_or_else(|| {
            format!(
                "action_id {} is not a pipeguard button",
                action["action_id"]
            )
        })?;
    let field = |v: &Value, name: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("payload has no {name}"))
    };
    Ok(Press {
        user: field(&p["user"]["id"], "user.id")?,
        verb,
        session: field(&action["value"], "actions[0].value")?,
        response_url: p["response_url"].as_str().map(String::from),
    })
}

/// `POST /webhooks/slack/interactions`.
#[utoipa::path(
    post, path = "/webhooks/slack/interactions", tag = "intake", security(()),
    request_body(content = crate::routes::openapi::schema::SlackInteraction, description = "Slack's form-encoded `payload=<block_actions JSON>`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The press was handled; `message` says what it did", body = crate::routes::openapi::schema::CommandAnswer),
        (status = 400, description = "Not a pipeguard button press", body = crate::error::ErrorBody),
        (status = 401, description = "Unsigned, forged or stale (more than 5 minutes away)", body = crate::error::ErrorBody),
        (status = 404, description = "No `[slack] signing_secret` is configured", body = crate::error::ErrorBody),
    )
)]
pub async fn interactions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Some(secret) = st.config.slack.signing_secret.as_deref() else {
        return Err(ApiError::not_found(
            "Slack interactions are not configured here: set [slack] signing_secret \
             (PIPEGUARD_SLACK_SIGNING_SECRET)",
        ));
    };
    let body = crate::routes::read_body(body, st.config.api.max_body_bytes).await?;
    let now_s = pipeguard_store::now_ms() / 1000;
    verify(secret, &headers, &body, now_s).map_err(ApiError::unauthorized)?;
    let p = press(&body).map_err(ApiError::bad_request)?;
    let outcome = if st.config.slack.approvers.contains(&p.user) {
        carry_out(&st, &p.session, p.verb, &Source::Slack.principal(&p.user)).await
    } else {
        Outcome {
            text: may_not(&format!("<@{}>", p.user), p.verb),
            acted: false,
        }
    };
    if let Some(url) = &p.response_url {
        if let Err(e) = update_message(&st, url, &p, &outcome).await {
            tracing::warn!(session = %p.session, "cannot update the Slack message: {e}");
        }
    }
    Ok(Json(json!({
        "status": if outcome.acted { "decided" } else { "ignored" },
        "session_id": p.session,
        "message": outcome.text,
    })))
}

/// A decision replaces the message (its buttons go) with who decided; a refusal or a
/// decision that changed nothing is shown to the presser alone.
async fn update_message(
    st: &Shared,
    url: &str,
    p: &Press,
    outcome: &Outcome,
) -> Result<(), pipeguard_platforms::PlatformError> {
    let body = if outcome.acted {
        let text = format!(
            "pipeguard: session `{}` {} (<@{}> pressed {})",
            p.session,
            outcome.text,
            p.user,
            p.verb.as_str()
        );
        json!({"replace_original": true, "text": text,
               "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
    } else {
        json!({"replace_original": false, "response_type": "ephemeral",
               "text": format!("pipeguard: {}", outcome.text)})
    };
    let http = st.notifier.http();
    let opts = pipeguard_platforms::api::HttpOptions::default();
    pipeguard_platforms::api::send("slack response_url", url, &opts, || {
        http.post(url).json(&body)
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeguard_platforms::webhook::hmac_sha256_hex;

    fn signed(secret: &str, ts: i64, body: &[u8]) -> HeaderMap {
        let mut text = format!("v0:{ts}:").into_bytes();
        text.extend_from_slice(body);
        let sig = format!("v0={}", hmac_sha256_hex(secret.as_bytes(), &text));
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", ts.to_string().parse().unwrap());
        h.insert("x-slack-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn slack_s_signature_and_window_are_checked() {
        let body = b"payload=%7B%7D";
        let now = 1_800_000_000;
        assert!(verify("s3cret", &signed("s3cret", now - 299, body), body, now).is_ok());
        let stale = verify("s3cret", &signed("s3cret", now - 301, body), body, now);
        assert!(stale.unwrap_err().contains("stale"));
        let future = verify("s3cret", &signed("s3cret", now + 301, body), body, now);
        assert!(future.is_err());
        let forged = verify("s3cret", &signed("other", now, body), body, now);
        assert!(forged.unwrap_err().contains("does not match"));
        let changed = verify("s3cret", &signed("s3cret", now, body), b"payload=x", now);
        assert!(changed.is_err());
        assert!(verify("s3cret", &HeaderMap::new(), body, now).is_err());
    }

    #[test]
    fn a_press_names_the_user_the_verb_and_the_session() {
        let payload = json!({"type": "block_actions", "user": {"id": "U1"},
            "actions": [{"action_id": "reject", "value": "s-1"}],
            "response_url": "https://hooks.slack.com/actions/x"});
        let body = format!(
            "payload={}",
            pipeguard_platforms::api::encode(&payload.to_string())
        );
        let p = press(body.as_bytes()).unwrap();
        assert_eq!(
            (p.user.as_str(), p.verb, p.session.as_str()),
            ("U1", Verb::Reject, "s-1")
        );
        assert!(press(b"payload=%7B%22type%22%3A%22view_submission%22%7D").is_err());
        assert!(press(b"nothing=1").is_err());
    }
}
