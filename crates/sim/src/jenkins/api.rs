//! The remote access API pipeguard calls: crumb issuer, build and queue item JSON,
//! `consoleText`, `lastBuild`, `build` / `buildWithParameters`.

use super::payload::{build_json, console_text, job_rel, queue_item_json};
use super::state::JenkinsState;
use crate::core::http::{basic, header, json, pairs, text, with_header};
use crate::core::sim::Shared;
use crate::core::webhook::hmac_hex;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use serde_json::json;
use std::sync::Arc;
use tokio::time::Instant;

type Sh = Arc<Shared<JenkinsState>>;
type St = State<Sh>;

const SESSION_COOKIE: &str = "JSESSIONID.sim";

pub(crate) fn routes(shared: Sh) -> Router<Sh> {
    Router::new()
        .route("/crumbIssuer/api/json", get(crumb))
        .route("/queue/item/{id}/api/json", get(queue_item))
        .route("/job/{*rest}", any(job))
        .route_layer(middleware::from_fn_with_state(shared, auth))
}

/// How the caller proved who they are.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    ApiToken,
    Password,
}

/// Basic auth with the user's API token or password; anonymous callers get 403, wrong
/// credentials 401, as a secured Jenkins answers.
async fn auth(State(sh): St, mut req: Request, next: Next) -> Response {
    let cfg = sh.state.lock().await.config.clone();
    let how = match basic(req.headers()) {
        None => {
            let r = text(StatusCode::FORBIDDEN, "Authentication required");
            return with_header(r, "x-you-are-authenticated-as", "anonymous");
        }
        Some((u, p)) if u == cfg.user && p == cfg.api_token => Auth::ApiToken,
        Some((u, p)) if u == cfg.user && cfg.password.as_deref() == Some(p.as_str()) => {
            Auth::Password
        }
        Some((u, _)) => {
            return text(
                StatusCode::UNAUTHORIZED,
                format!("Invalid password/token for user: {u}"),
            )
        }
    };
    req.extensions_mut().insert(how);
    next.run(req).await
}

fn session(h: &HeaderMap) -> Option<String> {
    header(h, "cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_string())
    })
}

/// The crumb of a user in a web session (no session: the crumb of none).
fn crumb_for(st: &JenkinsState, session: Option<&str>) -> String {
    hmac_hex(
        "sim-instance-salt",
        format!("{}:{}", st.config.user, session.unwrap_or("")).as_bytes(),
    )
}

/// 404 when CSRF protection is off; otherwise the crumb, bound to the caller's web session
/// (a new session is opened when the request had none).
async fn crumb(State(sh): St, headers: HeaderMap) -> Response {
    let st = sh.state.lock().await;
    if !st.config.csrf {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    let (sid, new) = match session(&headers) {
        Some(s) => (s, false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let body = json!({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                      "crumb": crumb_for(&st, Some(&sid)), "crumbRequestField": "Jenkins-Crumb"});
    let r = json(StatusCode::OK, body);
    if new {
        with_header(
            r,
            "set-cookie",
            &format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly"),
        )
    } else {
        r
    }
}

/// POSTs need a crumb valid for the caller's session, unless CSRF protection is off or the
/// caller authenticated with an API token (exempt since Jenkins 2.96, when configured so).
fn crumb_ok(st: &JenkinsState, headers: &HeaderMap, how: Auth) -> bool {
    let c = &st.config;
    if !c.csrf || (how == Auth::ApiToken && c.crumb_exempts_api_tokens) {
        return true;
    }
    header(headers, "jenkins-crumb") == Some(crumb_for(st, session(headers).as_deref()).as_str())
}

async fn queue_item(State(sh): St, Path(id): Path<u64>) -> Response {
    let st = sh.state.lock().await;
    match st.queue.get(&id) {
        Some(q) => json(StatusCode::OK, queue_item_json(&st, q, Instant::now())),
        None => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `a/job/b/<rest…>` → (`a/b`, rest).
fn split_job(rest: &str) -> (String, Vec<String>) {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut names = Vec::new();
    let mut i = 0;
    if let Some(first) = segs.first() {
        names.push(first.to_string());
        i = 1;
    }
    while i + 1 < segs.len() && segs[i] == "job" {
        names.push(segs[i + 1].to_string());
        i += 2;
    }
    (
        names.join("/"),
        segs[i..].iter().map(|s| s.to_string()).collect(),
    )
}

async fn job(
    State(sh): St,
    Path(rest): Path<String>,
    method: Method,
    RawQuery(q): RawQuery,
    req_headers: HeaderMap,
    axum::Extension(how): axum::Extension<Auth>,
    body: Bytes,
) -> Response {
    let (path, action) = split_job(&rest);
    let action: Vec<&str> = action.iter().map(String::as_str).collect();
    let mut st = sh.state.lock().await;
    if !st.jobs.contains_key(&path) {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    match (method, action.as_slice()) {
        (Method::GET, ["lastBuild", "api", "json"]) => match st.last_build(&path) {
            Some(b) => json(StatusCode::OK, build_json(&st, b)),
            None => text(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::GET, [n, "api", "json"]) => match build(&st, &path, n) {
            Some(b) => json(StatusCode::OK, build_json(&st, b)),
            None => text(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::GET, [n, "consoleText"]) => match build(&st, &path, n) {
            Some(b) => text(StatusCode::OK, console_text(b)),
            None => text(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::POST, [kind @ ("build" | "buildWithParameters")]) => {
            if !crumb_ok(&st, &req_headers, how) {
                return text(
                    StatusCode::FORBIDDEN,
                    "No valid crumb was included in the request",
                );
            }
            if *kind == "buildWithParameters" && st.jobs[&path].parameters.is_empty() {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "java.lang.IllegalStateException: This build is not parameterized!",
                );
            }
            let mut given = pairs(q.as_deref());
            given.extend(pairs(std::str::from_utf8(&body).ok()));
            given.retain(|(k, _)| k != "token" && k != "delay");
            let cause = format!("Started by user {}", st.config.user);
            let id = st
                .enqueue(&path, given, &cause, Instant::now())
                .expect("job exists");
            let location = format!("{}/queue/item/{id}/", st.base_url);
            drop(st);
            sh.poke();
            with_header(text(StatusCode::CREATED, ""), "location", &location)
        }
        (Method::GET, [] | ["api", "json"]) => json(StatusCode::OK, job_json(&st, &path)),
        _ => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn build<'a>(st: &'a JenkinsState, job: &str, n: &str) -> Option<&'a super::state::Build> {
    let n: u64 = n.parse().ok()?;
    st.builds.get(&(job.to_string(), n))
}

fn job_json(st: &JenkinsState, path: &str) -> serde_json::Value {
    let url = format!("{}/{}", st.base_url, job_rel(path));
    let builds: Vec<_> = st
        .builds
        .values()
        .filter(|b| b.job == path)
        .rev()
        .map(|b| json!({"number": b.number, "url": format!("{url}{}/", b.number)}))
        .collect();
    // Parameterized jobs list their declared parameters under `property`.
    let definitions: Vec<_> = st.jobs[path]
        .parameters
        .iter()
        .map(|(name, default)| {
            json!({"_class": "hudson.model.StringParameterDefinition", "name": name,
                   "defaultParameterValue": {"name": name, "value": default}})
        })
        .collect();
    let property = if definitions.is_empty() {
        json!([])
    } else {
        json!([{"_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": definitions}])
    };
    json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "property": property,
        "name": path.rsplit('/').next().unwrap_or(path),
        "fullName": path,
        "url": url,
        "builds": builds,
        "lastBuild": builds.first(),
        "nextBuildNumber": st.jobs[path].next_build,
        "inQueue": st.queue.values().any(|q| q.job == path && q.build.is_none()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_job_paths() {
        assert_eq!(
            split_job("team/job/api/job/main/18/api/json"),
            (
                "team/api/main".to_string(),
                vec!["18".into(), "api".into(), "json".into()]
            )
        );
        assert_eq!(
            split_job("app/buildWithParameters").1,
            ["buildWithParameters"]
        );
        assert_eq!(job_rel("team/api"), "job/team/job/api/");
    }
}
