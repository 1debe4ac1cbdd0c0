//! A GitHub App as api.github.com serves it: `GET /app` and
//! `GET /repos/{owner}/{repo}/installation` with the app's RS256 JWT,
//! `POST /app/installations/{id}/access_tokens` issuing installation tokens, and those tokens
//! accepted only on their installation's repositories.

use super::state::GithubState;
use crate::core::http::{bearer, json, rfc3339_s};
use crate::core::sim::Shared;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

type Sh = Arc<Shared<GithubState>>;

/// The app GitHub knows: its id, public key, installations and granted permissions.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub id: String,
    /// The public key, DER (SubjectPublicKeyInfo or PKCS#1).
    pub public_key_der: Vec<u8>,
    /// Installation id → the repositories (`owner/repo`) it covers.
    pub installations: BTreeMap<u64, Vec<String>>,
    /// How long an issued token lives (GitHub: one hour).
    pub token_ttl: Duration,
    /// `GET /app`'s `permissions`.
    pub permissions: Value,
}

impl AppConfig {
    pub fn new(id: impl Into<String>, public_key_der: Vec<u8>) -> AppConfig {
        AppConfig {
            id: id.into(),
            public_key_der,
            installations: BTreeMap::new(),
            token_ttl: Duration::from_secs(3600),
            permissions: json!({"actions": "write", "checks": "write", "contents": "read",
                                "pull_requests": "read", "metadata": "read"}),
        }
    }

    pub fn installation(mut self, id: u64, repos: &[&str]) -> AppConfig {
        self.installations
            .insert(id, repos.iter().map(|r| r.to_string()).collect());
        self
    }
}

/// What the app side saw: JWT claims, tokens issued, which installation each call used.
#[derive(Debug, Default, Clone)]
pub struct AppLog {
    /// The claims of every accepted JWT.
    pub jwt_claims: Vec<Value>,
    /// Tokens issued, per installation.
    pub issued: BTreeMap<u64, u32>,
    /// `(repository, installation of the token)` of each repository call made with an
    /// installation token.
    pub calls: Vec<(String, u64)>,
    pub(crate) tokens: BTreeMap<String, (u64, OffsetDateTime)>,
}

pub(super) fn routes() -> Router<Sh> {
    Router::new()
        .route("/app", get(get_app))
        .route("/app/installations/{id}/access_tokens", post(access_token))
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
}

fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

/// The app's JWT checked as GitHub does: RS256 by the app's key, `iss` the app, `iat` not in
/// the future, `exp` not past and at most 10 minutes ahead.
/// A refusal: status and message.
pub(super) type Denied = (u16, String);

fn deny((status, message): Denied) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    error(status, &message)
}

fn verify_jwt(st: &mut GithubState, req_token: Option<&str>) -> Result<(), Denied> {
    let unauthorized = |m: &str| Err((401, m.to_string()));
    let Some(app) = st.config.app.clone() else {
        return unauthorized("no app is registered");
    };
    let Some(token) = req_token else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[app.id.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss"]);
    v.leeway = 0;
    let key = DecodingKey::from_rsa_der(&app.public_key_der);
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return unauthorized(&format!("A JSON web token could not be decoded: {e}")),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(i64::MAX),
        claims["exp"].as_i64().unwrap_or(i64::MAX),
    );
    if iat > now {
        return unauthorized(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
        );
    }
    if exp > now + 600 {
        return unauthorized("'Expiration time' claim ('exp') is too far in the future");
    }
    st.app_log.jwt_claims.push(claims);
    Ok(())
}

async fn get_app(State(sh): State<Sh>, req: Request) -> Response {
    let mut st = sh.state.lock().await;
    if let Err(d) = verify_jwt(&mut st, bearer(req.headers())) {
        return deny(d);
    }
    let app = st.config.app.clone().expect("verified");
    json(
        StatusCode::OK,
        json!({"id": app.id, "slug": "pipeguard", "name": "pipeguard",
               "permissions": app.permissions,
               "events": ["check_run", "workflow_job", "workflow_run"]}),
    )
}

async fn repo_installation(
    State(sh): State<Sh>,
    Path((o, r)): Path<(String, String)>,
    req: Request,
) -> Response {
    let mut st = sh.state.lock().await;
    if let Err(d) = verify_jwt(&mut st, bearer(req.headers())) {
        return deny(d);
    }
    let repo = format!("{o}/{r}");
    let app = st.config.app.clone().expect("verified");
    match app.installations.iter().find(|(_, rs)| rs.contains(&repo)) {
        Some((id, _)) => json(
            StatusCode::OK,
            json!({"id": id, "app_id": app.id, "repository_selection": "selected"}),
        ),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn access_token(State(sh): State<Sh>, Path(id): Path<u64>, req: Request) -> Response {
    let mut st = sh.state.lock().await;
    if let Err(d) = verify_jwt(&mut st, bearer(req.headers())) {
        return deny(d);
    }
    let app = st.config.app.clone().expect("verified");
    if !app.installations.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let n = st.app_log.issued.entry(id).or_default();
    *n += 1;
    let token = format!("ghs_sim_{id}_{n}");
    let expires = OffsetDateTime::now_utc() + app.token_ttl;
    st.app_log.tokens.insert(token.clone(), (id, expires));
    json(
        StatusCode::CREATED,
        json!({"token": token, "expires_at": rfc3339_s(expires),
               "permissions": app.permissions, "repository_selection": "selected"}),
    )
}

/// `/repos/{owner}/{repo}/…` → `owner/repo`.
fn repository_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    (parts.next() == Some("repos")).then_some(())?;
    Some(format!("{}/{}", parts.next()?, parts.next()?))
}

/// Whether an installation token may call `path`: not expired, and the repository is one
/// of its installation's (403 otherwise, as GitHub answers "Resource not accessible by
/// integration"). `None` when `token` is no installation token.
pub(super) fn check_installation_token(
    st: &mut GithubState,
    token: &str,
    path: &str,
) -> Option<Result<(), Denied>> {
    let (installation, expires) = *st.app_log.tokens.get(token)?;
    if OffsetDateTime::now_utc() >= expires {
        return Some(Err((401, "Bad credentials".into())));
    }
    let repo = repository_of(path).unwrap_or_default();
    // `/orgs/{org}/…`: the organisation the installation's repositories belong to.
    let org = path
        .strip_prefix("/orgs/")
        .and_then(|p| p.split('/').next())
        .map(|o| format!("{o}/"));
    let covered = st
        .config
        .app
        .as_ref()
        .and_then(|a| a.installations.get(&installation))
        .is_some_and(|repos| match &org {
            Some(org) => repos.iter().any(|r| r.starts_with(org.as_str())),
            None => repos.contains(&repo),
        });
    st.app_log.calls.push((repo, installation));
    Some(if covered {
        Ok(())
    } else {
        Err((403, "Resource not accessible by integration".into()))
    })
}
