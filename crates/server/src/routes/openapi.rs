//! `GET /openapi.json`: the OpenAPI 3.1 description of every route the server mounts, built
//! from the route table (`routes::table`): the `#[utoipa::path]` annotations beside the
//! handlers and the shapes they answer.
//! Served without a credential, like `/healthz`: it tells no secret, and clients and API
//! testers need it before they hold a token.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use pipeguard_platforms::registry;
use std::sync::Arc;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pipeguard",
        description = "Self-healing CI/CD: webhook intake, healing sessions, approvals, what \
            pipeguard learned, tokens and the audit trail. Every error is JSON \
            `{\"error\", \"message\"}`."
    ),
    components(schemas(crate::error::ErrorBody)),
    security(("bearer" = [])),
    tags(
        (name = "service", description = "Health, metrics, this document and the dashboard"),
        (name = "intake", description = "Webhook deliveries from CI platforms and failure reports"),
        (name = "pipeline", description = "The original `/pipeline/*` endpoints"),
        (name = "sessions", description = "Healing sessions and decisions on their plans"),
        (name = "learning", description = "Flaky tests, quarantine, human verdicts"),
        (name = "runners", description = "Runners, agents and nodes that fail unrelated jobs"),
        (name = "admin", description = "Tokens, identity and the audit trail"),
    )
)]
pub struct ApiDoc;

/// The document with what the annotations cannot say.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    Finish.modify(&mut doc);
    doc
}

/// What the annotations cannot say: the bearer scheme, the platform keys, and the error body
/// for every client error a route does not describe itself (the router answers
/// 404/405/408/413/415/429 as `{"error","message"}` everywhere).
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        platform_keys(doc);
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`pipeguard token create`) or a JWT from the configured \
                         OIDC provider",
                    ))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("A client error: `{\"error\", \"message\"}`")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.responses
                    .responses
                    .entry("4XX".into())
                    .or_insert_with(|| error.clone().into());
            }
        }
    }
}

/// `/webhooks/{platform}` takes the keys of the registered platforms.
fn platform_keys(doc: &mut utoipa::openapi::OpenApi) {
    let keys: Vec<&str> = registry::MODULES.iter().map(|m| m.section().key).collect();
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(keys))
        .build();
    let op = doc
        .paths
        .paths
        .get_mut("/webhooks/{platform}")
        .and_then(|p| p.post.as_mut());
    for p in op
        .into_iter()
        .flat_map(|o| o.parameters.iter_mut().flatten())
    {
        if p.name == "platform" {
            p.schema = Some(schema.clone().into());
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document as served, serialized once when the router is built.
#[derive(Clone)]
pub struct Served(Arc<str>);

impl Served {
    pub fn of(doc: utoipa::openapi::OpenApi) -> Served {
        Served(
            doc.to_pretty_json()
                .expect("the document serializes")
                .into(),
        )
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub async fn document(Extension(doc): Extension<Served>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0.to_string(),
    )
        .into_response()
}

/// Response shapes, in their own file (handlers name them, the document lists the handlers).
#[allow(dead_code)]
pub mod schema;

#[cfg(test)]
mod tests {
    use crate::routes::{document, methods, table, Access};
    use utoipa::openapi::{OpenApi as Doc, PathItem};

    fn operation<'a>(
        doc: &'a Doc,
        method: &str,
        path: &str,
    ) -> Option<&'a utoipa::openapi::path::Operation> {
        let item: &PathItem = doc.paths.paths.get(path)?;
        match method {
            "GET" => item.get.as_ref(),
            "POST" => item.post.as_ref(),
            "PUT" => item.put.as_ref(),
            "DELETE" => item.delete.as_ref(),
            "PATCH" => item.patch.as_ref(),
            _ => None,
        }
    }

    #[test]
    fn every_route_of_the_role_table_is_described_with_the_bearer_scheme() {
        let doc = document();
        let guarded = table()
            .into_iter()
            .filter(|(access, _)| *access != Access::Open)
            .flat_map(|(_, row)| row.1.paths.into_iter());
        for (p, item) in guarded {
            let m = methods(&item).next().expect("a method").to_string();
            let op = operation(&doc, &m, &p).unwrap_or_else(|| panic!("{m} {p} is not described"));
            // No `security` of its own: the document's global bearer requirement applies.
            let own = op
                .security
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap());
            assert!(
                own.is_none() || own.as_ref().unwrap().to_string().contains("bearer"),
                "{m} {p} is described as open: {own:?}"
            );
        }
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            v["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(v["security"][0]["bearer"], serde_json::json!([]));
    }

    #[test]
    fn client_errors_are_described_as_the_json_error_body() {
        let v = serde_json::to_value(document()).unwrap();
        let error = &v["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]));
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let r = &op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(r, "#/components/schemas/ErrorBody", "{method} {path}");
            }
        }
    }

    #[test]
    fn the_platform_parameter_lists_every_platform() {
        let v = serde_json::to_value(document()).unwrap();
        let keys = &v["paths"]["/webhooks/{platform}"]["post"]["parameters"][0]["schema"]["enum"];
        let want: Vec<&str> = pipeguard_platforms::registry::MODULES
            .iter()
            .map(|m| m.section().key)
            .collect();
        assert_eq!(keys, &serde_json::json!(want));
    }
}
