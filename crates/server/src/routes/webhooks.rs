//! One intake path for every platform: `POST /webhooks/{platform}` (and the seed's
//! `POST /pipeline/webhook`, the generic source, which `/webhooks/generic` is too: both need
//! the generic secret or the `ingest` role). Verify → parse → check names → replay →
//! store with the session and its first job → answer. Nothing slow happens here; the worker
//! takes the stored work from the queue.

use crate::auth::{self, Role};
use crate::config::Config;
use crate::error::ApiError;
use crate::Shared;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::event::Platform;
use pipeguard_core::runners::RunnerJob;
use pipeguard_platforms::registry;
use pipeguard_platforms::webhook::{header, WebhookRequest};
use pipeguard_platforms::{Module, Parsed};
use pipeguard_store::{Intake, IntakeOutcome};
use serde::Serialize;
use utoipa::ToSchema;

/// `POST /webhooks/{platform}`.
#[utoipa::path(
    post, path = "/webhooks/{platform}", tag = "intake", security(()),
    params(("platform" = String, Path, description = "The platform's key")),
    request_body(content = Object, description = "The platform's webhook payload, as it sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "A ping, or a delivery pipeguard ignores (the reason says why)", body = WebhookAnswer),
        (status = 202, description = "Stored: a new session, a replay, or an outcome of a followed run", body = WebhookAnswer),
        (status = 400, description = "Not the platform's payload, or a name that could steer API URLs", body = crate::error::ErrorBody),
        (status = 401, description = "Unsigned, or the signature or token does not match", body = crate::error::ErrorBody),
        (status = 413, description = "Larger than `max_body_bytes`", body = crate::error::ErrorBody),
        (status = 415, description = "A content type the platform does not send", body = crate::error::ErrorBody),
        (status = 404, description = "No such platform, or one not configured here", body = crate::error::ErrorBody),
    )
)]
pub async fn receive(
    State(st): State<Shared>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let module = registry::by_key(&key)
        .ok_or_else(|| ApiError::not_found(format!("no platform {key:?}")))?;
    if module.platform() == Platform::Generic {
        return generic(State(st), RawQuery(query), headers, body).await;
    }
    if !takes_deliveries(&st.config, module) {
        let key = module.section().key;
        return Err(ApiError::not_found(format!(
            "{key} is not configured here: give [{key}] a webhook secret or an API \
             credential (PIPEGUARD_{}_WEBHOOK_SECRET)",
            key.to_ascii_uppercase()
        )));
    }
    intake(&st, module, query.as_deref(), &headers, body, false).await
}

/// Whether the configuration names the platform's API: a credential, a user, another API URL,
/// or a `[[repos]]` entry.
pub fn api_configured(config: &Config, module: &dyn Module) -> bool {
    let s = config.platform(module.platform());
    s.token.is_some()
        || s.user.is_some()
        || s.api_url != module.section().default_api_url
        || config
            .repos
            .iter()
            .any(|r| r.platform() == Some(module.platform()))
}

/// Whether deliveries of a platform are taken: its API is configured, or its section says
/// to take them (a webhook secret, `allow_unsigned`), or it is a reporting source pipeguard
/// never calls back (Ansible, the generic report), which needs nothing more. Others would be
/// stored only to fail for want of a client.
pub fn takes_deliveries(config: &Config, module: &dyn Module) -> bool {
    let s = config.platform(module.platform());
    module.section().credential.is_none()
        || s.webhook_secret.is_some()
        || s.allow_unsigned
        || api_configured(config, module)
}

/// The `WWW-Authenticate` challenge for a platform's refused deliveries: Basic where its
/// secret may come as a Basic auth password, Bearer where as a bearer token, none where it
/// signs (no HTTP authentication scheme describes a signature).
fn challenge(module: &dyn Module) -> Option<&'static str> {
    let presents = |value: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("authorization", axum::http::HeaderValue::from_static(value));
        module.presents_credential(&h, None)
    };
    if presents("Basic cGlwZWd1YXJkOng=") {
        Some(crate::error::BASIC)
    } else if presents("Bearer x") {
        Some(crate::error::BEARER)
    } else {
        None
    }
}

/// A refused delivery, with the platform's challenge.
fn refused(module: &dyn Module, message: String) -> ApiError {
    let e = ApiError::unauthorized(message);
    match challenge(module) {
        Some(c) => e.with_challenge(c),
        None => e,
    }
}

#[utoipa::path(
    post, path = "/pipeline/webhook", tag = "intake", security(("bearer" = [])),
    request_body(content = crate::routes::openapi::schema::FailureReport, description = "A failure report", content_type = "application/json"),
    responses(
        (status = 200, description = "A ping, or a delivery pipeguard ignores (the reason says why)", body = WebhookAnswer),
        (status = 202, description = "Stored: a new session, a replay, or an outcome of a followed run", body = WebhookAnswer),
        (status = 400, description = "Not the platform's payload, or a name that could steer API URLs", body = crate::error::ErrorBody),
        (status = 401, description = "Unsigned, or the signature or token does not match", body = crate::error::ErrorBody),
        (status = 413, description = "Larger than `max_body_bytes`", body = crate::error::ErrorBody),
        (status = 415, description = "A content type the platform does not send", body = crate::error::ErrorBody),
        (status = 403, description = "The credential lacks the `ingest` role", body = crate::error::ErrorBody),
    )
)]
/// `POST /pipeline/webhook`: the generic failure report, proven by the generic source's own
/// webhook secret or by a bearer token with the `ingest` role.
pub async fn generic(
    State(st): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let module = registry::module(Platform::Generic).expect("the generic source is registered");
    let by_secret = st.guards(Platform::Generic) && module.presents_credential(&headers, None);
    if !by_secret {
        let who = auth::authenticate(&st, &headers)
            .await
            .map_err(|why| ApiError::unauthorized(why).with_challenge(crate::error::BEARER))?;
        if !who.role.grants(Role::Ingest) {
            return Err(ApiError::forbidden(format!(
                "reporting failures needs the ingest role; {} has {}",
                who.name,
                who.role.as_str()
            )));
        }
    }
    intake(&st, module, query.as_deref(), &headers, body, !by_secret).await
}

/// Refuses deliveries the platform's (or the repository's) secret does not prove. Without a
/// secret, deliveries are accepted only on a loopback address or with `allow_unsigned`.
fn check_origin(
    st: &Shared,
    module: &dyn Module,
    req: &WebhookRequest,
    claimed: Option<&str>,
) -> Result<(), ApiError> {
    let platform = module.platform();
    match st.webhook_secret(platform, claimed) {
        Some(secret) => module.verify(req, secret).map_err(|e| refused(module, e)),
        None if st.loopback || st.config.platform(platform).allow_unsigned => Ok(()),
        None => Err(refused(
            module,
            format!(
                "no webhook secret is configured for {platform}: set PIPEGUARD_{}_WEBHOOK_SECRET",
                module.section().key.to_ascii_uppercase()
            ),
        )),
    }
}

async fn intake(
    st: &Shared,
    module: &dyn Module,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    authorized: bool,
) -> Result<Response, ApiError> {
    let platform = module.platform();
    // No credential at all while one is required: refused before the body is read.
    if !authorized && st.guards(platform) && !module.presents_credential(headers, query) {
        return Err(refused(
            module,
            format!("this {platform} delivery carries no credential"),
        ));
    }
    let body = crate::error::read_body(body, st.config.max_body_bytes).await?;
    let req = WebhookRequest {
        headers,
        query,
        body: &body,
    };
    // Parsed once. The repository the delivery names chooses the secret (a repository can
    // have its own), so parsing comes first; nothing parsed is used before the signature
    // over the raw bytes is verified.
    let parsed = module.parse(&req);
    if !authorized {
        let claimed = parsed.as_ref().ok().and_then(|d| d.parsed.repository());
        check_origin(st, module, &req, claimed)?;
    }
    let content_type = header(headers, "content-type").unwrap_or("");
    if !module.accepts(content_type) {
        return Err(crate::error::unsupported_media_type(content_type));
    }
    let mut delivery = parsed.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let seen = std::mem::take(&mut delivery.runners);
    if let Some(name) = delivery.parsed.repository() {
        if !module.valid_repository(name) {
            return Err(ApiError::bad_request(format!(
                "{name:?} is not a valid {platform} repository name"
            )));
        }
    }
    // A replay is answered from the store inside the write (exact even for twins that
    // arrive together), so there is no separate look-up first.
    let mut green = None;
    let mut passed = None;
    let mut pushed = None;
    let intake = match delivery.parsed {
        Parsed::Ping => {
            let pong = WebhookAnswer {
                status: Some("pong".into()),
                ..Default::default()
            };
            return Ok((StatusCode::OK, Json(pong)).into_response());
        }
        Parsed::Ignored(reason) => {
            let o = st
                .store
                .record_ignored(platform, &delivery.id, &reason)
                .await?;
            // A job that passed is ignored for healing but counts for its runner.
            count_runner_jobs(st, platform, seen);
            return Ok(answer(o));
        }
        Parsed::Command(c) => return crate::commands::from_platform(st, platform, *c).await,
        Parsed::Failure(ev) => Intake::Failure(*ev),
        Parsed::Success {
            repository,
            workflow,
            run_id,
            attempt,
            finished_at_ms,
            commit,
        } => {
            pushed = workflow
                .clone()
                .zip(commit)
                .map(|(w, c)| (w, c, finished_at_ms));
            passed = Some((repository.clone(), workflow.clone()));
            green = workflow.map(|w| (w, repository.clone(), run_id.clone(), attempt));
            Intake::Success {
                repository,
                run_id,
                attempt,
                finished_at_ms,
            }
        }
    };
    let run_id = match &intake {
        Intake::Failure(ev) => ev.run_id.clone(),
        Intake::Success { run_id, .. } => run_id.clone(),
    };
    let r = st
        .store
        .intake(platform, &delivery.id, &module.run_link(&run_id), intake)
        .await?;
    if let Some(id) = r.outcome.session_id() {
        // The delivery id is the sender's text: Debug-escaped, so it cannot start a log line.
        tracing::info!(%platform, delivery = ?delivery.id, session = %id, "delivery stored");
    }
    st.worker_wake.notify_one();
    count_runner_jobs(st, platform, seen);
    // A green run no session followed (not a heal's re-run): a pass for the quarantined tests
    // of its workflow, when the repository may have any.
    if let (Some((repository, ran)), IntakeOutcome::Ignored { .. }) = (passed, &r.outcome) {
        let pushed = pushed.filter(|(workflow, commit, _)| {
            !st.store
                .surely_nothing_to_fix(&repository, workflow, &commit.branch)
        });
        if let Some((workflow, commit, at)) = pushed {
            // A new commit's green run: earlier unmeasured failures on its branch were fixed
            // (skipped above where the last read found none).
            let (st, repository) = (st.clone(), repository.clone());
            tokio::spawn(async move {
                let fixed =
                    crate::import::push_fixed(&st, platform, &repository, &workflow, &commit, at);
                if let Err(e) = fixed.await {
                    tracing::warn!(%platform, "recording a push fix: {e}");
                }
            });
        }
        if !st.store.surely_unquarantined(&repository) {
            let passed = crate::quarantine::passed_owned(st.clone(), repository, ran);
            tokio::spawn(passed);
        }
    }
    if let Some((workflow, repository, run_id, attempt)) = green {
        // After the delivery is stored, so learning never delays or fails its intake.
        let green = crate::worker::baseline::Green {
            platform,
            repository,
            workflow,
            run_id,
            attempt,
        };
        tokio::spawn(crate::worker::baseline::learn_green(st.clone(), green));
    }
    Ok(answer(r.outcome))
}

/// Counts the jobs a stored delivery names per runner, after its answer is decided.
fn count_runner_jobs(st: &Shared, platform: Platform, seen: Vec<RunnerJob>) {
    if !seen.is_empty() {
        tokio::spawn(crate::runners::record_seen(st.clone(), platform, seen));
    }
}

/// What intake did with a delivery: a new session (`received`), a replay (`duplicate`),
/// an outcome of a run pipeguard follows, `ignored` with the reason, or a person's command
/// (a check run's button, a `/pipeguard` note): `decided` or `ignored` with the `message`
/// answered where it was given.
#[derive(Serialize, ToSchema, Default)]
pub struct WebhookAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl WebhookAnswer {
    fn session(session_id: String, status: &str) -> WebhookAnswer {
        WebhookAnswer {
            session_id: Some(session_id),
            status: Some(status.to_string()),
            ..Default::default()
        }
    }
}

/// What HTTP says about a delivery's outcome.
pub fn answer(o: IntakeOutcome) -> Response {
    let accepted = |a: WebhookAnswer| (StatusCode::ACCEPTED, Json(a)).into_response();
    match o {
        IntakeOutcome::Created { session_id } => {
            accepted(WebhookAnswer::session(session_id, "received"))
        }
        IntakeOutcome::Duplicate { session_id, status } => accepted(WebhookAnswer {
            duplicate: Some(true),
            session_id: Some(session_id),
            status: status.map(|s| s.as_str().to_string()),
            ..Default::default()
        }),
        IntakeOutcome::Outcome { session_id } => {
            accepted(WebhookAnswer::session(session_id, "outcome"))
        }
        IntakeOutcome::PassedLater { session_id } => {
            accepted(WebhookAnswer::session(session_id, "passed_later"))
        }
        IntakeOutcome::Rerun { session_id } => {
            accepted(WebhookAnswer::session(session_id, "rerun"))
        }
        IntakeOutcome::Ignored { reason } => {
            let a = WebhookAnswer {
                reason: Some(reason),
                status: Some("ignored".into()),
                ..Default::default()
            };
            (StatusCode::OK, Json(a)).into_response()
        }
        // A person's command (a button, a note): the answer it recorded.
        IntakeOutcome::Recorded { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED),
            Json(body),
        )
            .into_response(),
    }
}
