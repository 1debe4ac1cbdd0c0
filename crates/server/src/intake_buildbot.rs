//! Webhook intake of Buildbot's `HttpStatusPush` reporter: verify → require JSON → parse (the
//! delivery key is the build and its phase, inside the body) → replay → store → answer.

use crate::error::ApiError;
use crate::intake::{answer, header, require_json};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_platforms::{buildbot, signature, Parsed};
use pipeguard_store::Intake;
use serde_json::json;

/// The reporter can send the secret two ways: `auth=(user, secret)` (Basic auth; the user
/// name is free) or `headers={"X-Pipeguard-Token": secret}`.
fn verify(secret: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let given = header(headers, "x-pipeguard-token")
        .map(str::to_string)
        .or_else(|| {
            header(headers, "authorization")
                .and_then(buildbot::parse_basic_auth)
                .map(|(_, p)| p)
        });
    match given {
        None => Err(ApiError::unauthorized(
            "missing credentials: Basic auth or X-Pipeguard-Token",
        )),
        Some(g) if signature::token_eq(secret, &g) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(
            "Basic auth password or X-Pipeguard-Token does not match",
        )),
    }
}

/// `POST /webhooks/buildbot`: the build dicts of `reporters.HttpStatusPush`.
pub async fn buildbot(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(st.config.buildbot.webhook_secret.as_deref(), &headers)?;
    require_json(&headers)?;
    let d = buildbot::parse_webhook(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let platform = Platform::Buildbot;
    if let Some(r) = st.store.find_delivery(platform, &d.key).await? {
        return Ok(answer(r));
    }
    let intake = match d.parsed {
        Parsed::Ping => {
            return Ok((StatusCode::OK, Json(json!({"status": "pong"}))).into_response())
        }
        Parsed::Ignored(reason) => {
            let body = json!({"status": "ignored", "reason": reason});
            st.store
                .record_ignored(platform, &d.key, 200, &body)
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
    let r = st.store.intake(platform, &d.key, intake).await?;
    if let Some(id) = &r.session_id {
        tracing::info!(delivery = %d.key, session = %id, status = r.status, "buildbot delivery stored");
    }
    st.worker_wake.notify_one();
    Ok(answer(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn secret_comes_as_basic_auth_password_or_token_header() {
        // "buildbot:s3cret" and "buildbot:nope".
        let good = with("authorization", "Basic YnVpbGRib3Q6czNjcmV0");
        let bad = with("authorization", "Basic YnVpbGRib3Q6bm9wZQ==");
        assert!(verify(Some("s3cret"), &good).is_ok());
        assert!(verify(Some("s3cret"), &with("x-pipeguard-token", "s3cret")).is_ok());
        assert!(verify(Some("s3cret"), &bad).is_err());
        assert!(verify(Some("s3cret"), &with("x-pipeguard-token", "s3cre")).is_err());
        assert!(verify(Some("s3cret"), &HeaderMap::new()).is_err());
        assert!(verify(None, &HeaderMap::new()).is_ok());
    }
}
