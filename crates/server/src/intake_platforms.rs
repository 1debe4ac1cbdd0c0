//! Webhook intake of GitLab CI, Jenkins and CircleCI: the same verify → require JSON →
//! delivery id → replay → parse → store → answer sequence as GitHub's, with each platform's
//! own way of proving a delivery authentic.

use crate::config::Config;
use crate::error::ApiError;
use crate::intake::{answer, claimed_repo, header, require_json};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_platforms::{circleci, gitlab, jenkins, signature, ParseError, Parsed};
use pipeguard_store::Intake;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Logs at start which platforms accept deliveries without proof of origin.
pub fn warn_unverified(config: &Config) {
    if config.gitlab.webhook_secret.is_none() {
        tracing::warn!(
            "PIPEGUARD_GITLAB_WEBHOOK_SECRET is not set: GitLab deliveries are accepted without a token"
        );
    }
    if config.jenkins.webhook_secret.is_none() {
        tracing::warn!(
            "PIPEGUARD_JENKINS_WEBHOOK_SECRET is not set: Jenkins deliveries are accepted without a token"
        );
    }
    if config.circleci.webhook_secret.is_none() {
        tracing::warn!(
            "PIPEGUARD_CIRCLECI_WEBHOOK_SECRET is not set: CircleCI deliveries are accepted unsigned"
        );
    }
}

/// The repository a parsed delivery is about.
fn repo_of(p: &Parsed) -> Option<String> {
    match p {
        Parsed::Failure(ev) => Some(ev.repository.clone()),
        Parsed::Success { repository, .. } => Some(repository.clone()),
        _ => None,
    }
}

fn bad(e: ParseError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// Checks a shared token in constant time; `None` = no secret configured = accept.
fn check_token(expected: Option<&str>, given: Option<&str>, name: &str) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = given.ok_or_else(|| ApiError::unauthorized(format!("missing {name}")))?;
    if !signature::token_eq(expected, given) {
        return Err(ApiError::unauthorized(format!("{name} does not match")));
    }
    Ok(())
}

/// A delivery id when the sender gives none: the body's hash, so a resent body is a replay.
fn body_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Stores what a verified, parsed delivery means and answers as GitHub's intake does.
async fn store_parsed(
    st: &Shared,
    platform: Platform,
    delivery: &str,
    parsed: Parsed,
) -> Result<Response, ApiError> {
    let intake = match parsed {
        Parsed::Ping => {
            return Ok((StatusCode::OK, Json(json!({"status": "pong"}))).into_response())
        }
        Parsed::Ignored(reason) => {
            let body = json!({"status": "ignored", "reason": reason});
            st.store
                .record_ignored(platform, delivery, 200, &body)
                .await?;
            return Ok((StatusCode::OK, Json(body)).into_response());
        }
        Parsed::Failure(ev) => Intake::Failure(*ev),
        Parsed::Success {
            repository,
            run_id,
            attempt,
            finished_at_ms,
        } => Intake::Success {
            repository,
            run_id,
            attempt,
            finished_at_ms,
        },
    };
    let r = st.store.intake(platform, delivery, intake).await?;
    if let Some(id) = &r.session_id {
        tracing::info!(%platform, delivery, session = %id, status = r.status, "delivery stored");
    }
    st.worker_wake.notify_one();
    Ok(answer(r))
}

/// `POST /webhooks/gitlab`: Pipeline Hook and Job Hook.
pub async fn gitlab(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The repository the parser will act on chooses the secret (a Job Hook may name it only
    // in `repository.homepage`).
    let claimed = header(&headers, "x-gitlab-event")
        .and_then(|event| gitlab::parse_webhook(event, &body).ok())
        .and_then(|p| repo_of(&p))
        .or_else(|| claimed_repo(&body, &["/project/path_with_namespace"]));
    check_token(
        st.webhook_secret(
            Platform::Gitlab,
            claimed.as_deref(),
            st.config.gitlab.webhook_secret.as_deref(),
        ),
        header(&headers, "x-gitlab-token"),
        "X-Gitlab-Token",
    )?;
    require_json(&headers)?;
    let event = header(&headers, "x-gitlab-event")
        .ok_or_else(|| ApiError::bad_request("missing X-Gitlab-Event header"))?;
    let delivery = header(&headers, "x-gitlab-event-uuid")
        .or_else(|| header(&headers, "idempotency-key"))
        .map(str::to_string)
        .unwrap_or_else(|| body_id(&body));
    if let Some(r) = st.store.find_delivery(Platform::Gitlab, &delivery).await? {
        return Ok(answer(r));
    }
    let parsed = gitlab::parse_webhook(event, &body).map_err(bad)?;
    store_parsed(&st, Platform::Gitlab, &delivery, parsed).await
}

/// One query parameter, percent-decoded (`+` is a space, as in forms).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            let b = v.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                    (b'%', Some(x)) => {
                        out.push(x);
                        i += 3;
                    }
                    (c, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    })
}

/// `POST /webhooks/jenkins`: the Notification plugin's JSON or `{job, build, url, status}`.
/// Jenkins signs nothing, so the shared secret comes as `X-Pipeguard-Token` or `?token=`.
pub async fn jenkins(
    State(st): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let from_query = query_param(query.as_deref(), "token");
    let claimed = jenkins::parse_webhook(&body)
        .ok()
        .and_then(|d| repo_of(&d.parsed));
    check_token(
        st.webhook_secret(
            Platform::Jenkins,
            claimed.as_deref(),
            st.config.jenkins.webhook_secret.as_deref(),
        ),
        header(&headers, "x-pipeguard-token").or(from_query.as_deref()),
        "X-Pipeguard-Token (or ?token=)",
    )?;
    require_json(&headers)?;
    // The delivery key is in the body (job + build + phase), so parse before the replay check.
    let d = jenkins::parse_webhook(&body).map_err(bad)?;
    if let Some(r) = st.store.find_delivery(Platform::Jenkins, &d.key).await? {
        return Ok(answer(r));
    }
    store_parsed(&st, Platform::Jenkins, &d.key, d.parsed).await
}

/// `POST /webhooks/circleci`: `workflow-completed` and `job-completed`, signed with
/// `circleci-signature: v1=<hex HMAC-SHA256 of the body>`.
pub async fn circleci(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claimed = claimed_repo(&body, &["/project/slug"]);
    if let Some(secret) = st.webhook_secret(
        Platform::Circleci,
        claimed.as_deref(),
        st.config.circleci.webhook_secret.as_deref(),
    ) {
        let sig = header(&headers, "circleci-signature")
            .ok_or_else(|| ApiError::unauthorized("missing circleci-signature"))?;
        if !circleci::verify_signature(secret.as_bytes(), &body, sig) {
            return Err(ApiError::unauthorized(
                "circleci-signature does not match the body",
            ));
        }
    }
    require_json(&headers)?;
    // The documented deduplication key is the payload's `id`, so parse first.
    let d = circleci::parse_webhook(&body).map_err(bad)?;
    if let Some(r) = st.store.find_delivery(Platform::Circleci, &d.id).await? {
        return Ok(answer(r));
    }
    store_parsed(&st, Platform::Circleci, &d.id, d.parsed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&token=s%2B3+x"), "token").as_deref(),
            Some("s+3 x")
        );
        assert_eq!(query_param(Some("token"), "token").as_deref(), Some(""));
        assert_eq!(query_param(Some("a=%zz"), "a").as_deref(), Some("%zz"));
        assert_eq!(query_param(None, "token"), None);
    }
}
