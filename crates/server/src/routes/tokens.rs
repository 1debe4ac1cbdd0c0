//! `GET/POST /api/v1/tokens`, `DELETE /api/v1/tokens/{name}` (admins), `GET /api/v1/whoami`.

use crate::auth::{tokens, Principal, Role};
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
}

pub async fn list(State(st): State<Shared>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"tokens": st.store.list_tokens().await?})))
}

/// Creates a token and shows it this once.
pub async fn create(
    State(st): State<Shared>,
    Extension(who): Extension<Principal>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(t) = body?;
    let role: Role = t.role.parse().map_err(ApiError::bad_request)?;
    if !tokens::valid_name(&t.name) {
        return Err(ApiError::bad_request(
            "name: 1-64 letters, digits, '-', '_', '.' or '@'",
        ));
    }
    let token = tokens::generate();
    if !st
        .store
        .create_token(&t.name, role.as_str(), &tokens::hash(&token))
        .await?
    {
        return Err(ApiError::conflict(format!(
            "a token named {} exists",
            t.name
        )));
    }
    crate::audit::token_changed(&st, &who.name, "token.created", &t.name, role.as_str()).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": t.name, "role": role, "token": token})),
    ))
}

pub async fn revoke(
    State(st): State<Shared>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !st.store.revoke_token(&name).await? {
        return Err(ApiError::not_found(format!("no live token named {name}")));
    }
    crate::audit::token_changed(&st, &who.name, "token.revoked", &name, "").await;
    Ok(Json(json!({"name": name, "revoked": true})))
}

/// The caller's identity and role, so a client (the dashboard) knows what to offer.
pub async fn whoami(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}
