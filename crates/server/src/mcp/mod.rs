//! A Model Context Protocol server for coding agents: they read why CI failed and ask for
//! re-runs without ever holding a CI token. pipeguard is the broker: every tool is a call of
//! pipeguard's own API with the agent's pipeguard token, so the token's role, the planner's
//! decision and the audit trail (as `mcp:TOKEN-NAME`) apply.
//!
//! Two transports, one handler: `pipeguard mcp` speaks stdio and calls a pipeguard server
//! over HTTP ([`Api::Remote`]); `POST /mcp` speaks streamable HTTP on the server and calls its
//! routes in process ([`Api::Local`]) with the credential of the MCP request.

pub mod http;
pub mod tools;

use crate::auth::Role;
use axum::http::Method;
use pipeguard_platforms::api::encode as enc;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tools::{Kind, Tool};

/// Marks an API call as made through MCP: the server names its principal `mcp:NAME`.
pub const VIA_HEADER: &str = "x-pipeguard-via";

/// Where the tools' API calls go.
#[derive(Clone)]
pub enum Api {
    /// A pipeguard server at `base`, with the agent's token (`pipeguard mcp`).
    Remote {
        http: reqwest::Client,
        base: String,
        token: String,
    },
    /// This server's routes, called in process with the MCP request's credential.
    Local(axum::Router),
}

/// An API answer: the status and the JSON body (`Null` when none).
struct Answer {
    status: u16,
    body: Value,
}

/// Who calls, as far as the tools need: the role and the credential to pass on.
struct Caller {
    role: Role,
    bearer: String,
    parts: Option<axum::http::request::Parts>,
}

impl Api {
    async fn send(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        match self {
            Api::Remote { http, base, .. } => {
                let mut req = http
                    .request(method, format!("{}{path}", base.trim_end_matches('/')))
                    .bearer_auth(&caller.bearer)
                    .header(VIA_HEADER, "mcp");
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let r = req
                    .send()
                    .await
                    .map_err(|e| format!("pipeguard unreachable: {e}"))?;
                let status = r.status().as_u16();
                let body = r.json().await.unwrap_or(Value::Null);
                Ok(Answer { status, body })
            }
            Api::Local(router) => local(router, caller, method, path, body).await,
        }
    }
}

async fn local(
    router: &axum::Router,
    caller: &Caller,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Answer, String> {
    use axum::http::header;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", caller.bearer))
        .header(VIA_HEADER, "mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .map_err(|e| e.to_string())?;
    // The agent's address, for the API's rate limit.
    if let Some(ci) = caller.parts.as_ref().and_then(|p| {
        p.extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    }) {
        req.extensions_mut().insert(*ci);
    }
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// The MCP handler.
#[derive(Clone)]
pub struct Mcp {
    api: Api,
    /// The remote token's role, asked once at start (`GET /api/v1/whoami`).
    role: Option<Role>,
}

impl Mcp {
    /// For `pipeguard mcp`: checks the token against the server first, so a wrong token or
    /// address is said at start rather than at the first tool call.
    pub async fn remote(base: &str, token: &str) -> anyhow::Result<Mcp> {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/whoami", base.trim_end_matches('/'));
        let r = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!(
                "{url} answered {status}: {}",
                v["message"].as_str().unwrap_or("no message")
            );
        }
        let role: Role = v["role"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        if role == Role::Ingest {
            anyhow::bail!("an ingest token reads nothing: use a viewer or operator token");
        }
        Ok(Mcp {
            api: Api::Remote {
                http,
                base: base.to_string(),
                token: token.to_string(),
            },
            role: Some(role),
        })
    }

    /// For `POST /mcp`: the caller is the MCP request's credential (see [`http`]).
    pub fn local(router: axum::Router) -> Mcp {
        Mcp {
            api: Api::Local(router),
            role: None,
        }
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let (Api::Remote { token, .. }, Some(role)) = (&self.api, self.role) {
            return Ok(Caller {
                role,
                bearer: token.clone(),
                parts: None,
            });
        }
        let parts = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("no HTTP request", None))?;
        let who = parts
            .extensions
            .get::<crate::auth::Principal>()
            .ok_or_else(|| ErrorData::invalid_request("no credential", None))?;
        let bearer = pipeguard_platforms::webhook::bearer(&parts.headers)
            .unwrap_or_default()
            .to_string();
        Ok(Caller {
            role: who.role,
            bearer,
            parts: Some(parts),
        })
    }
}

fn describe(t: &Tool) -> rmcp::model::Tool {
    let mut a = ToolAnnotations::new();
    a.read_only_hint = Some(t.read_only);
    rmcp::model::Tool::new(t.name, t.description, Arc::new(t.input_schema())).with_annotations(a)
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pipeguard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "pipeguard diagnoses failed CI runs and decides what may be re-run. Use \
                 list_failures and get_diagnosis to see why a run failed; request_retry asks \
                 for a re-run, which pipeguard's policy grants, refuses or holds for approval.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let visible = tools::TOOLS.iter().filter(|t| caller.role.grants(t.role));
        Ok(ListToolsResult::with_all_items(
            visible.map(describe).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let tool = tools::find(&request.name).ok_or_else(|| {
            ErrorData::invalid_params(format!("no tool {:?}", request.name), None)
        })?;
        if !caller.role.grants(tool.role) {
            let msg = format!(
                "{} needs an {} token; this token is a {}",
                tool.name,
                tool.role.as_str(),
                caller.role.as_str()
            );
            return Ok(refused("forbidden", &msg, 403).into());
        }
        let args = request.arguments.unwrap_or_default();
        if let Err(msg) = tool.check(&args) {
            return Ok(refused("bad_request", &msg, 400).into());
        }
        Ok(self.run(tool.kind, &args, &caller).await.into())
    }
}

fn refused(error: &str, message: &str, status: u16) -> CallToolResult {
    CallToolResult::structured_error(
        json!({"error": error, "message": message, "http_status": status}),
    )
}

/// An API answer as the tool's result: 2xx is the structured content, anything else an error
/// result with the API's own `error` and `message` (a refusal's reason).
fn result(a: Answer, shape: impl FnOnce(Value) -> Value) -> CallToolResult {
    if (200..300).contains(&a.status) {
        return CallToolResult::structured(shape(a.body));
    }
    let mut body = match a.body {
        Value::Object(m) => Value::Object(m),
        _ => json!({"error": "error", "message": "the API gave no reason"}),
    };
    body["http_status"] = json!(a.status);
    CallToolResult::structured_error(body)
}

fn arg<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn session_path(args: &Map<String, Value>, tail: &str) -> String {
    format!(
        "/api/v1/sessions/{}{tail}",
        enc(arg(args, "session").unwrap_or_default())
    )
}

impl Mcp {
    async fn run(&self, kind: Kind, args: &Map<String, Value>, c: &Caller) -> CallToolResult {
        match self.call(kind, args, c).await {
            Ok(r) => r,
            Err(e) => refused("unavailable", &e, 503),
        }
    }

    async fn call(
        &self,
        kind: Kind,
        args: &Map<String, Value>,
        c: &Caller,
    ) -> Result<CallToolResult, String> {
        Ok(match kind {
            Kind::ListFailures => {
                let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(20);
                if !(1..=100).contains(&limit) {
                    return Ok(refused("bad_request", "limit must be 1..=100", 400));
                }
                let mut q = format!("?limit={limit}");
                for k in ["repository", "status"] {
                    if let Some(v) = arg(args, k) {
                        q.push_str(&format!("&{k}={}", enc(v)));
                    }
                }
                let a = self
                    .api
                    .send(c, Method::GET, &format!("/api/v1/sessions{q}"), None)
                    .await?;
                result(a, failures)
            }
            Kind::GetDiagnosis => {
                let a = self
                    .api
                    .send(c, Method::GET, &session_path(args, ""), None)
                    .await?;
                result(a, diagnosis)
            }
            Kind::ExplainFailure => {
                let a = self
                    .api
                    .send(c, Method::GET, &session_path(args, ""), None)
                    .await?;
                let stored = a.body["diagnosis"]["explanation"].clone();
                if a.status != 200 || stored.is_object() {
                    let id = a.body["id"].clone();
                    return Ok(result(
                        a,
                        |_| json!({"session": id, "explanation": stored, "fresh": false}),
                    ));
                }
                let path = session_path(args, "/explain");
                let a = self
                    .api
                    .send(c, Method::POST, &path, Some(json!({})))
                    .await?;
                let id = arg(args, "session").unwrap_or_default().to_string();
                result(
                    a,
                    |e| json!({"session": id, "explanation": e, "fresh": true}),
                )
            }
            Kind::RequestRetry => {
                let body = json!({"reason": arg(args, "reason")});
                let a = self
                    .api
                    .send(c, Method::POST, &session_path(args, "/rerun"), Some(body))
                    .await?;
                result(a, |v| v)
            }
            Kind::ListFlakyTests => {
                let repo = enc(arg(args, "repository").unwrap_or_default());
                let a = self
                    .api
                    .send(
                        c,
                        Method::GET,
                        &format!("/api/v1/flaky-tests?repository={repo}"),
                        None,
                    )
                    .await?;
                result(a, |v| v)
            }
            Kind::QuarantineTest => {
                let body = Value::Object(args.clone());
                let a = self
                    .api
                    .send(c, Method::POST, "/api/v1/quarantine", Some(body))
                    .await?;
                result(a, |v| v)
            }
        })
    }
}

/// The session list cut to what an agent needs to pick one.
fn failures(v: Value) -> Value {
    let list: Vec<Value> = v["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            json!({"session": s["id"], "repository": s["repository"], "platform": s["platform"],
                   "run": s["run_label"], "workflow": s["workflow"], "url": s["url"],
                   "status": s["status"], "category": s["category"], "reason": s["reason"],
                   "created_at": s["created_at"]})
        })
        .collect();
    json!({"failures": list})
}

/// A session's diagnosis, plan and timeline, with the evidence lines redacted once more
/// (what was stored may predate a pattern, and an agent's context goes further than ours).
fn diagnosis(s: Value) -> Value {
    let d = &s["diagnosis"];
    let evidence: Vec<Value> = d["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if let Some(t) = e["text"].as_str() {
                e["text"] = json!(pipeguard_core::secrets::redact_log(t));
            }
            e
        })
        .collect();
    json!({
        "session": s["id"], "repository": s["repository"], "run": s["run_label"],
        "url": s["url"], "status": s["status"], "reason": s["reason"],
        "diagnosis": {
            "category": d["category"], "confidence": d["confidence"], "transient": d["transient"],
            "summary": d["summary"], "failing_tests": d["failing_tests"],
            "analyzer": d["analyzer"], "evidence": evidence,
        },
        "plan": s["plan"]["plan"],
        "timeline": s["timeline"],
    })
}
