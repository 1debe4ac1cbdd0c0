//! The query string of the API's routes: read strictly, so an unknown or malformed parameter
//! is a 400 `{"error","message"}` like every API error, and a list's page is checked once.

use crate::error::{check_page, ApiError};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The query read as `T` (a struct that refuses unknown fields); 400 when it does not read.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, ApiError> {
        let Query(t) = Query::<T>::from_request_parts(parts, st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(Q(t))
    }
}

/// The largest page of a list route.
const MAX_LIMIT: i64 = 1000;
/// A list route's page without `limit`.
const DEFAULT_LIMIT: i64 = 100;

/// `?limit=N` of a list route that takes nothing else.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// 1..=1000 (default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// The checked page size of a list route (`params(Limit)` in its annotation).
pub struct Limited(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Limited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, ApiError> {
        let Q(Limit { limit }) = Q::from_request_parts(parts, st).await?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        check_page(limit, 0, MAX_LIMIT)?;
        Ok(Limited(limit))
    }
}

/// `?limit=N&offset=M` of the session lists: 1..=500, 50 without it.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    50
}

impl Page {
    pub fn check(&self) -> Result<(), ApiError> {
        check_page(self.limit, self.offset, 500)
    }
}
