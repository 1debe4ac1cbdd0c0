//! Who may call the API: bearer credentials (API tokens, or JWTs from an OIDC provider), roles,
//! and the check of the role each route requires (declared beside the route in
//! `routes::table`). Closed by default: a route missing from the table is for admins only.

pub mod oidc;
pub mod refusals;
pub mod tokens;

use crate::error::ApiError;
use crate::Shared;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use pipeguard_platforms::webhook::{bearer, header};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::str::FromStr;

/// What a credential may do. `viewer` reads; `operator` also decides (approve, reject, verdicts,
/// quarantine); `admin` also manages tokens and reads the audit trail; `ingest` only reports
/// failures through the generic webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Ingest,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Admin, Role::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }

    /// Whether this role may do what `needed` may. Admins may do everything; `ingest` only
    /// ingests, and no other role ingests (a leaked reporting token reads nothing).
    pub fn grants(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Ingest, n) => n == Role::Ingest,
            (_, Role::Ingest) => false,
            (Role::Operator, n) => n != Role::Admin,
            (Role::Viewer, n) => n == Role::Viewer,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role (viewer, operator, admin, ingest)"))
    }
}

/// The identity a request acts as (`GET /api/v1/whoami`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Whoami)]
pub struct Principal {
    /// The token's name or the JWT's subject.
    pub name: String,
    pub role: Role,
    /// `token` or `jwt`.
    pub via: &'static str,
}

/// The role each API route needs, by method and route template: built from the route table
/// (`routes::table`), the one place a route and its role are declared.
#[derive(Debug, Default)]
pub struct Roles(Vec<(Method, String, Role)>);

impl Roles {
    pub fn add(&mut self, method: Method, route: &str, role: Role) {
        self.0.push((method, route.to_string(), role));
    }

    /// The role a route needs; admin for anything the table does not name.
    pub fn required(&self, method: &Method, route: &str) -> Role {
        self.0
            .iter()
            .find(|(m, r, _)| m == method && r == route)
            .map(|(_, _, role)| *role)
            .unwrap_or(Role::Admin)
    }

    /// The routes the table names.
    pub fn iter(&self) -> impl Iterator<Item = &(Method, String, Role)> {
        self.0.iter()
    }
}

/// What the bearer check needs: the service and the roles of the routes it guards.
#[derive(Clone)]
pub struct Guard {
    pub st: Shared,
    pub roles: std::sync::Arc<Roles>,
}

/// The credential's principal, or why there is none.
pub async fn authenticate(
    st: &Shared,
    headers: &axum::http::HeaderMap,
) -> Result<Principal, String> {
    let token = bearer(headers).ok_or("missing Authorization: Bearer credential")?;
    if tokens::looks_like_api_token(token) {
        return match st.store.use_token(&tokens::hash(token)).await {
            Ok(Some(t)) => Ok(Principal {
                role: t
                    .role
                    .parse()
                    .map_err(|e| format!("token {}: {e}", t.name))?,
                name: t.name,
                via: "token",
            }),
            Ok(None) => Err("unknown or revoked token".into()),
            Err(e) => Err(format!("cannot check the token: {e}")),
        };
    }
    match &st.oidc {
        Some(v) => v.validate(token).await,
        None => Err("not an API token, and no OIDC provider is configured".into()),
    }
}

fn remote(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Checks the credential against the route's role, and that state-changing requests cannot
/// come from another site: a browser cannot add the bearer header cross-site, nor send JSON
/// without a preflight we never grant.
pub async fn authorize(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let st = &guard.st;
    let source = remote(&req);
    if !st.rate_limit.check(&source) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address; slow down",
        )
        .into_response_with_header("retry-after", "1");
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let needed = guard.roles.required(req.method(), &route);
    let mut principal = match authenticate(st, req.headers()).await {
        Ok(p) => p,
        Err(why) => {
            // The reason can quote the credential's contents: a field, escaped, never the message.
            tracing::warn!(source, route, why = ?why, "authentication failed");
            refusals::refused(st, &source, &route, &why).await;
            return ApiError::unauthorized(why)
                .with_challenge(crate::error::BEARER)
                .into_response();
        }
    };
    if !principal.role.grants(needed) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {route} needs the {} role; {} has {}",
                req.method(),
                needed.as_str(),
                principal.name,
                principal.role.as_str()
            ),
        )
        .into_response();
    }
    let changes_state = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if changes_state {
        let ct = header(req.headers(), "content-type").unwrap_or("");
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return crate::error::unsupported_media_type(ct).into_response();
        }
    }
    // Through MCP the agent acts as `mcp:NAME` on the timeline and in the audit trail; the
    // header only names the channel, the role stays the token's.
    if header(req.headers(), crate::mcp::VIA_HEADER) == Some("mcp") {
        principal.name = format!("mcp:{}", principal.name);
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

use axum::response::IntoResponse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_except_ingest() {
        use Role::*;
        assert!(Admin.grants(Admin) && Admin.grants(Operator) && Admin.grants(Ingest));
        assert!(Operator.grants(Viewer) && Operator.grants(Operator));
        assert!(!Operator.grants(Admin) && !Operator.grants(Ingest));
        assert!(Viewer.grants(Viewer) && !Viewer.grants(Operator));
        assert!(Ingest.grants(Ingest) && !Ingest.grants(Viewer));
    }

    #[test]
    fn unknown_routes_need_admin() {
        let mut roles = Roles::default();
        roles.add(Method::GET, "/api/v1/sessions", Role::Viewer);
        roles.add(
            Method::POST,
            "/api/v1/sessions/{id}/approve",
            Role::Operator,
        );
        assert_eq!(
            roles.required(&Method::GET, "/api/v1/sessions"),
            Role::Viewer
        );
        assert_eq!(
            roles.required(&Method::POST, "/api/v1/sessions/{id}/approve"),
            Role::Operator
        );
        assert_eq!(
            roles.required(&Method::GET, "/api/v1/new-thing"),
            Role::Admin
        );
        assert_eq!(
            roles.required(&Method::DELETE, "/api/v1/sessions"),
            Role::Admin
        );
    }
}
