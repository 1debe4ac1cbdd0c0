//! Webhook intake of GitLab CI, Jenkins and CircleCI: the same verify → require JSON →
//! delivery id → replay → parse → store → answer sequence as GitHub's, with each platform's
//! own way of proving a delivery authentic.

use crate::config::Config;
use crate::error::ApiError;
use crate::intake::{answer, header, require_json};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_platforms::{gitlab, signature, ParseError, Parsed};
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
    check_token(
        st.config.gitlab.webhook_secret.as_deref(),
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
