//! `POST /mcp` (and the streamable-HTTP `GET`/`DELETE` of a session) on the server: the MCP
//! handler behind the same bearer check as the API. Any role but `ingest` may connect; the
//! tools it sees and may call follow its role.

use super::Mcp;
use crate::auth::{self, Role};
use crate::error::ApiError;
use crate::Shared;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

/// The `/mcp` route; its tools call `api` (the server's own router) in process.
pub fn routes(st: &Shared, api: Router) -> Router {
    let mut config = StreamableHttpServerConfig::default();
    // Every request carries a bearer credential a browser cannot add cross-site, which is
    // what the Host allowlist protects against on a credential-less local server.
    config.allowed_hosts.clear();
    config.max_request_body_bytes = st.config.api.max_body_bytes;
    let service = StreamableHttpService::new(
        move || Ok(Mcp::local(api.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(from_fn_with_state(st.clone(), authorize))
}

/// The bearer check of the API, for the MCP endpoint: the principal goes with the request to
/// the handler, which passes the credential on to the API it calls.
async fn authorize(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let who = match auth::authenticate(&st, req.headers()).await {
        Ok(p) => p,
        Err(why) => {
            return ApiError::unauthorized(why)
                .with_challenge(crate::error::BEARER)
                .into_response()
        }
    };
    if who.role == Role::Ingest {
        let msg = format!(
            "{} is an ingest token: MCP needs a viewer or operator token",
            who.name
        );
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg).into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}
