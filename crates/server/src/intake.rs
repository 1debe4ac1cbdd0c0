//! Webhook intake: verify, normalise, store durably, answer. Nothing slow happens here; the
//! worker takes the stored work from the queue.

use crate::error::ApiError;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_platforms::{github, signature, Parsed};
use pipeguard_store::{Intake, IntakeResult};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(crate) fn require_json(h: &HeaderMap) -> Result<(), ApiError> {
    match header(h, "content-type") {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/json") => Ok(()),
        Some(ct) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {ct:?} is not accepted: send application/json"),
        )),
        None => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "missing Content-Type: send application/json",
        )),
    }
}

/// The repository a delivery says it is about, read before verification only to choose
/// the secret that must verify it (a repository can have its own).
pub(crate) fn claimed_repo(body: &[u8], pointers: &[&str]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    pointers
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str).map(String::from))
}

pub(crate) fn answer(r: IntakeResult) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::ACCEPTED);
    (status, Json(r.body)).into_response()
}

pub async fn github(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // GitHub can also send `application/x-www-form-urlencoded` with the JSON in `payload`;
    // the signature covers the raw form body.
    let form = header(&headers, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let json_body: Bytes = if form {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("form body is not UTF-8"))?;
        crate::intake_platforms::query_param(Some(text), "payload")
            .ok_or_else(|| ApiError::bad_request("form body has no payload field"))?
            .into()
    } else {
        body.clone()
    };
    // Authenticity first: an unsigned or forged delivery learns nothing and stores nothing.
    let claimed = claimed_repo(&json_body, &["/repository/full_name"]);
    if let Some(secret) = st.webhook_secret(
        Platform::Github,
        claimed.as_deref(),
        st.config.github.webhook_secret.as_deref(),
    ) {
        let sig = header(&headers, "x-hub-signature-256")
            .ok_or_else(|| ApiError::unauthorized("missing X-Hub-Signature-256"))?;
        if !signature::verify_hmac_sha256(secret.as_bytes(), &body, sig, "sha256=") {
            return Err(ApiError::unauthorized(
                "X-Hub-Signature-256 does not match the body",
            ));
        }
    }
    if !form {
        require_json(&headers)?;
    }
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| ApiError::bad_request("missing X-GitHub-Event header"))?;
    let delivery = header(&headers, "x-github-delivery")
        .ok_or_else(|| ApiError::bad_request("missing X-GitHub-Delivery header"))?;
    if let Some(r) = st.store.find_delivery(Platform::Github, delivery).await? {
        return Ok(answer(r));
    }
    let parsed = github::parse_webhook(event, &json_body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let intake = match parsed {
        Parsed::Ping => {
            return Ok((StatusCode::OK, Json(json!({"status": "pong"}))).into_response())
        }
        Parsed::Ignored(reason) => {
            let body = json!({"status": "ignored", "reason": reason});
            st.store
                .record_ignored(Platform::Github, delivery, 200, &body)
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
    let r = st.store.intake(Platform::Github, delivery, intake).await?;
    if let Some(id) = &r.session_id {
        tracing::info!(delivery, session = %id, status = r.status, "github delivery stored");
    }
    st.worker_wake.notify_one();
    Ok(answer(r))
}

/// The seed's generic failure report, for systems without a native integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericFailure {
    pub source: String,
    pub job_name: String,
    #[serde(default)]
    pub build_number: Option<Value>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub target_hosts: Vec<String>,
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
}

pub async fn generic(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let f: GenericFailure = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid failure report: {e}")))?;
    if f.source.trim().is_empty() || f.job_name.trim().is_empty() {
        return Err(ApiError::bad_request(
            "source and job_name must not be empty",
        ));
    }
    if f.error_message.as_deref().unwrap_or("").is_empty()
        && f.log.as_deref().unwrap_or("").is_empty()
    {
        return Err(ApiError::bad_request(
            "give error_message or log: there is nothing to diagnose",
        ));
    }
    let build = match &f.build_number {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "build_number must be a string or a number",
            ))
        }
    };
    let delivery = match header(&headers, "idempotency-key") {
        Some(k) => k.to_string(),
        None => hex::encode(Sha256::digest(&body)),
    };
    let log = match (&f.log, &f.error_message) {
        (Some(l), Some(m)) if !l.contains(m.as_str()) => format!("{l}\n{m}"),
        (Some(l), _) => l.clone(),
        (None, m) => m.clone().unwrap_or_default(),
    };
    let ev = FailureEvent {
        platform: Some(Platform::Generic),
        repository: f.repository.clone().unwrap_or_else(|| f.source.clone()),
        run_id: format!("{}#{}", f.job_name, build),
        attempt: 1,
        workflow: f.job_name.clone(),
        jobs: vec![FailedJob {
            id: f.job_name.clone(),
            name: f.job_name.clone(),
            stage: f.stage.clone(),
            ..Default::default()
        }],
        target_hosts: f.target_hosts.clone(),
        log: Some(log),
        error_message: f.error_message.clone(),
        finished_at_ms: Some(pipeguard_store::now_ms()),
        ..Default::default()
    };
    let r = st
        .store
        .intake(Platform::Generic, &delivery, Intake::Failure(ev))
        .await?;
    st.worker_wake.notify_one();
    Ok(answer(r))
}
