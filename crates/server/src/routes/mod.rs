//! The HTTP routes. Open: `/healthz`, `/openapi.json`, the webhooks (each platform proves itself with its own
//! secret) and `/metrics` (unless `[metrics] token` is set). Everything else needs a bearer
//! credential with the role its row of [`table`] names.

pub mod approvals;
pub mod audit;
pub mod dead_letters;
pub mod events;
pub mod explain;
pub mod incidents;
pub mod learning;
pub mod openapi;
pub mod query;
pub mod readiness;
pub mod rerun;
pub mod runners;
pub mod sessions;
pub mod slack;
pub mod status;
pub mod tokens;
pub mod webhooks;

use crate::auth::{self, Guard, Role, Roles};
use crate::error::ApiError;
use crate::{dashboard, metrics, Shared};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::PathItem;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the route proves its caller itself (a webhook secret, the metrics token, an
    /// ingest token) or tells no secret.
    Open,
    /// A bearer credential whose role grants this one (`auth::authorize`).
    Bearer(Role),
}

/// Every route, declared once: who may call it, and the handler whose `#[utoipa::path]` gives
/// its method, path and answers. The router, the role check and `/openapi.json` come from here.
pub fn table() -> Vec<(Access, UtoipaMethodRouter<Shared>)> {
    use Access::{Bearer, Open};
    use Role::{Admin, Operator, Viewer};
    vec![
        (Open, routes!(status::healthz)),
        (Open, routes!(status::readyz)),
        (Open, routes!(openapi::document)),
        (Open, routes!(slack::interactions)),
        (Open, routes!(webhooks::receive)),
        // A webhook secret or an `ingest` token, which the handler checks.
        (Open, routes!(webhooks::generic)),
        // Unless `[metrics] token` is set, which the handler checks.
        (Open, routes!(metrics::metrics)),
        (Open, routes!(dashboard::index)),
        (Open, routes!(dashboard::asset)),
        (Bearer(Viewer), routes!(status::status)),
        (Bearer(Viewer), routes!(status::history)),
        // Computes a diagnosis and plan for a message; acts on nothing.
        (Bearer(Viewer), routes!(status::test_trigger)),
        (Bearer(Viewer), routes!(metrics::stats)),
        (Bearer(Viewer), routes!(dashboard::daily::daily)),
        // Server-sent events: the request timeout ends at the headers, sent at once.
        (Bearer(Viewer), routes!(events::events)),
        (Bearer(Viewer), routes!(sessions::list_sessions)),
        (Bearer(Viewer), routes!(sessions::get_session)),
        (Bearer(Operator), routes!(approvals::approve)),
        (Bearer(Operator), routes!(approvals::reject)),
        (Bearer(Operator), routes!(learning::verdict)),
        (Bearer(Operator), routes!(dead_letters::retry)),
        // Asks the configured model now; spends tokens, changes no plan.
        (Bearer(Operator), routes!(explain::explain)),
        // The planner decides; a refusal calls nothing.
        (Bearer(Operator), routes!(rerun::rerun)),
        (Bearer(Viewer), routes!(approvals::list)),
        (Bearer(Viewer), routes!(incidents::list)),
        (Bearer(Operator), routes!(incidents::close)),
        (Bearer(Viewer), routes!(dead_letters::list)),
        (Bearer(Viewer), routes!(learning::flaky_tests)),
        (Bearer(Viewer), routes!(learning::quarantine_list)),
        (Bearer(Operator), routes!(learning::quarantine_add)),
        (Bearer(Operator), routes!(learning::quarantine_remove)),
        (Bearer(Viewer), routes!(runners::list)),
        (Bearer(Operator), routes!(runners::quarantine)),
        (Bearer(Operator), routes!(runners::release)),
        (Bearer(Admin), routes!(tokens::list)),
        (Bearer(Admin), routes!(tokens::create)),
        (Bearer(Admin), routes!(tokens::revoke)),
        (Bearer(Viewer), routes!(tokens::whoami)),
        (Bearer(Admin), routes!(audit::list)),
        (Bearer(Viewer), routes!(readiness::readiness)),
        (Bearer(Viewer), routes!(readiness::cases)),
        // Lets pipeguard act on a repository (or stops it): audited.
        (Bearer(Admin), routes!(readiness::set_mode)),
    ]
}

/// The table split: the open routes, the routes behind the bearer check, and their roles.
fn split() -> (OpenApiRouter<Shared>, OpenApiRouter<Shared>, Roles) {
    let mut open = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    let mut api = OpenApiRouter::new();
    let mut roles = Roles::default();
    for (access, row) in table() {
        match access {
            Access::Open => open = open.routes(row),
            Access::Bearer(role) => {
                for (path, item) in row.1.paths.iter() {
                    for method in methods(item) {
                        roles.add(method, path, role);
                    }
                }
                api = api.routes(row);
            }
        }
    }
    (open, api, roles)
}

/// The methods a path item describes.
pub fn methods(item: &PathItem) -> impl Iterator<Item = Method> {
    [
        (Method::GET, item.get.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::PATCH, item.patch.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, described)| described.then_some(m))
}

/// `/openapi.json`: the table's routes with the document's own parts.
pub fn document() -> utoipa::openapi::OpenApi {
    let (open, api, _) = split();
    openapi::finish(open.merge(api).into_openapi())
}

/// The service's routes, and `/mcp` whose tools call them in process.
pub fn router(st: Shared) -> Router {
    let app = api_router(st.clone());
    app.clone().merge(crate::mcp::http::routes(&st, app))
}

fn api_router(st: Shared) -> Router {
    let timeout = Duration::from_secs(st.config.api.request_timeout_seconds.max(1));
    let (open, api, roles) = split();
    let guard = Guard {
        st: st.clone(),
        roles: Arc::new(roles),
    };
    let api = api
        .route_layer(from_fn_with_state(guard, auth::authorize))
        .layer(DefaultBodyLimit::max(st.config.api.max_body_bytes));
    let (routes, doc) = open.merge(api).split_for_parts();
    let doc = openapi::Served::of(openapi::finish(doc));
    routes
        .fallback(status::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(doc))
        .layer(from_fn_with_state(st.clone(), metrics::count_webhooks))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(from_fn(json_errors))
        .layer(from_fn_with_state(st.clone(), security_headers))
        .with_state(st)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Every error is `{"error", "message"}` JSON, whatever answered it (the router's 405, the
/// body limit's 413, an extractor's 415 or 422, the timeout's 408).
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (
        status,
        axum::Json(crate::error::ErrorBody {
            error: code,
            message,
        }),
    )
        .into_response();
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Answers are not cached or sniffed; with TLS, browsers are told to stay on HTTPS.
async fn security_headers(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if st.config.tls.cert.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    resp
}

pub use crate::error::{check_page, read_body, unsupported_media_type};

#[cfg(test)]
mod tests {
    use super::{document, methods, table, Access};

    /// The routes anyone may call; every other route of the table names a role, and the
    /// type of a row makes one of the two impossible to leave out.
    const OPEN: [(&str, &str); 9] = [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
        ("POST", "/webhooks/slack/interactions"),
        ("POST", "/webhooks/{platform}"),
        ("POST", "/pipeline/webhook"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/assets/{name}"),
    ];

    fn rows() -> Vec<(Access, String, String)> {
        let mut out = Vec::new();
        for (access, row) in table() {
            for (path, item) in row.1.paths.iter() {
                for m in methods(item) {
                    out.push((access, m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    /// Exactly the open routes are open, each route is declared once, and the document
    /// describes every route of the table and nothing else.
    #[test]
    fn every_api_route_has_a_role() {
        let rows = rows();
        assert!(rows.len() >= 40, "the table was not read: {rows:?}");
        for (access, m, p) in &rows {
            let open = OPEN.contains(&(m.as_str(), p.as_str()));
            assert_eq!(*access == Access::Open, open, "{m} {p}: {access:?}");
            let twice = rows.iter().filter(|(_, m2, p2)| m2 == m && p2 == p).count();
            assert_eq!(twice, 1, "{m} {p} is declared {twice} times");
        }
        let doc = document();
        let described: usize = doc.paths.paths.values().map(|i| methods(i).count()).sum();
        assert_eq!(described, rows.len(), "the document and the table differ");
    }
}
