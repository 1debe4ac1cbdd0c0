//! The web dashboard: one page and its scripts and styles, embedded in the binary (no CDN,
//! no external fonts), served at `/` without a credential. The page asks for an API token,
//! keeps it in the tab's `sessionStorage` and sends it as a bearer header to the API; the
//! API's roles decide what it may do.

mod assets;
pub mod daily;

use crate::error::ApiError;
use assets::{Asset, ASSETS};
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Only this origin's scripts, styles and connections; no inline script, no framing. A token
/// in `sessionStorage` is out of reach of injected script only while this holds.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the page.
#[utoipa::path(
    get, path = "/", tag = "service", security(()),
    responses((status = 200, description = "The dashboard's page", content_type = "text/html", body = String))
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve(assets::page(), &headers)
}

/// `GET /assets/{name}`: a script, style sheet or icon of the page.
#[utoipa::path(
    get, path = "/assets/{name}", tag = "service", security(()),
    params(("name" = String, Path, description = "The asset's file name (`app.js`, `app.css`…)")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 304, description = "The browser's copy is current"),
        (status = 404, description = "No such asset", body = crate::error::ErrorBody),
    )
)]
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found(format!("no asset {name:?}")).into_response(),
    }
}

/// The asset with its type and validator; 304 when the browser's copy is current. Browsers
/// revalidate each time (`no-cache`), so a new binary's page is never mixed with old scripts.
fn serve(a: &'static Asset, req: &HeaderMap) -> Response {
    let etag = a.etag();
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
