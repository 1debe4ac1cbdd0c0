//! `GET/POST /api/v1/tokens`, `DELETE /api/v1/tokens/{name}` (admins), `GET /api/v1/whoami`.

use crate::auth::{tokens, Principal, Role};
use crate::error::ApiError;
use crate::Shared;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use pipeguard_store::TokenRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1-64 letters, digits, `-`, `_`, `.` or `@`.
    name: String,
    /// `viewer`, `operator`, `admin` or `ingest`.
    role: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    #[schema(value_type = Vec<crate::routes::openapi::schema::TokenRecord>)]
    pub tokens: Vec<TokenRecord>,
}

/// The new token, shown this once.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    pub name: String,
    pub role: Role,
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenRevoked {
    pub name: String,
    pub revoked: bool,
}

/// `GET /api/v1/tokens`: every token's name, role and last use (never the token).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "admin",
    responses((status = 200, description = "The tokens", body = TokenList))
)]
pub async fn list(State(st): State<Shared>) -> Result<Json<TokenList>, ApiError> {
    let tokens = st.store.list_tokens().await?;
    Ok(Json(TokenList { tokens }))
}

/// Creates a token and shows it this once.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "admin", request_body = NewToken,
    responses(
        (status = 201, description = "The new token, shown this once", body = TokenCreated),
        (status = 400, description = "A bad name or role", body = crate::error::ErrorBody),
        (status = 409, description = "A token with this name exists", body = crate::error::ErrorBody),
    )
)]
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
        Json(TokenCreated {
            name: t.name,
            role,
            token,
        }),
    ))
}

/// `DELETE /api/v1/tokens/{name}`: the token stops working at once.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{name}", tag = "admin",
    params(("name" = String, Path, description = "The token's name")),
    responses(
        (status = 200, description = "Revoked", body = TokenRevoked),
        (status = 404, description = "No live token with this name", body = crate::error::ErrorBody),
    )
)]
pub async fn revoke(
    State(st): State<Shared>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<TokenRevoked>, ApiError> {
    if !st.store.revoke_token(&name).await? {
        return Err(ApiError::not_found(format!("no live token named {name}")));
    }
    crate::audit::token_changed(&st, &who.name, "token.revoked", &name, "").await;
    Ok(Json(TokenRevoked {
        name,
        revoked: true,
    }))
}

/// The caller's identity and role, so a client (the dashboard) knows what to offer.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "admin",
    responses((status = 200, description = "The caller's identity", body = Principal))
)]
pub async fn whoami(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}
