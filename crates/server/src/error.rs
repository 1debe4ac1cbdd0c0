//! API errors: always a status and a JSON body `{"error": code, "message": text}`.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Every error: a machine-readable code and a sentence for people.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `rate_limited`…
    pub error: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The `WWW-Authenticate` challenge of a 401: how to prove who one is.
    pub challenge: Option<&'static str>,
}

/// The challenge of API routes (tokens and JWTs).
pub const BEARER: &str = "Bearer";
/// The challenge of intakes that take their secret as a Basic auth password.
pub const BASIC: &str = "Basic realm=\"pipeguard\"";

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
        }
    }

    /// The error with a `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: &'static str) -> ApiError {
        self.challenge = Some(challenge);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
}

/// A body that is not JSON (the routes' and the authentication layer's answer).
pub fn unsupported_media_type(content_type: &str) -> ApiError {
    let message = if content_type.is_empty() {
        "missing Content-Type: send application/json".to_string()
    } else {
        format!("content type {content_type:?} is not accepted: send application/json")
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// A request body read up to `limit` bytes; 413 beyond.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    })
}

/// The bounds of a list endpoint's paging parameters (`max` is the endpoint's largest page),
/// with one message for all of them.
pub fn check_page(limit: i64, offset: i64, max: i64) -> Result<(), ApiError> {
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1..={max}")));
    }
    if offset < 0 {
        return Err(ApiError::bad_request("offset must be >= 0"));
    }
    Ok(())
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    /// An extractor's refusal keeps its status when it is about the body's size or type
    /// (413, 415); JSON of the wrong shape is a 400, as the API documents.
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(e.status(), "payload_too_large", e.body_text())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::new(e.status(), "unsupported_media_type", e.body_text())
            }
            _ => ApiError::bad_request(e.body_text()),
        }
    }
}

impl From<pipeguard_store::StoreError> for ApiError {
    fn from(e: pipeguard_store::StoreError) -> ApiError {
        tracing::error!("store: {e}");
        // 503 tells a webhook sender to deliver again later: nothing was accepted.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database is unavailable; retry later",
        )
    }
}

impl ApiError {
    /// The error's response with one more header (`WWW-Authenticate`, `Retry-After`).
    pub fn into_response_with_header(self, name: &'static str, value: &'static str) -> Response {
        let mut r = self.into_response();
        r.headers_mut()
            .insert(name, axum::http::HeaderValue::from_static(value));
        r
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(c) = self.challenge {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(c),
            );
        }
        r
    }
}
