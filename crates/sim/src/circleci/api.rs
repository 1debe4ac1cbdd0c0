//! The API v2 and v1.1 endpoints pipeguard calls, answering as circleci.com does.

use super::payload::{job_json, pipeline_json, step_output, v1_job_json, workflow_json};
use super::state::{refusal, CircleciState, Refusal, Rerun};
use crate::core::http::{header, json, pairs, param};
use crate::core::sim::Shared;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type Sh = Arc<Shared<CircleciState>>;
type St = State<Sh>;

pub(crate) fn routes(shared: Sh) -> Router<Sh> {
    let project = "/api/v2/project/{vcs}/{org}/{repo}";
    let api = Router::new()
        .route("/api/v2/pipeline/{id}", get(get_pipeline))
        .route("/api/v2/pipeline/{id}/workflow", get(pipeline_workflows))
        .route("/api/v2/workflow/{id}", get(get_workflow))
        .route("/api/v2/workflow/{id}/job", get(workflow_jobs))
        .route("/api/v2/workflow/{id}/rerun", post(rerun))
        .route(&format!("{project}/pipeline"), post(trigger_pipeline))
        .route("/api/v1.1/project/{vcs}/{org}/{repo}/{num}", get(v1_job))
        .route_layer(middleware::from_fn_with_state(shared, auth));
    // Pre-signed output links: no token.
    api.route("/_blobs/circleci/output/{job}/{step}", get(output))
}

fn message(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, json!({"message": message}))
}

fn refused(r: Refusal) -> Response {
    message(r.status, &r.message)
}

/// `Circle-Token` (also accepted as basic auth user or `circle-token` query, as the API does).
async fn auth(State(sh): St, req: Request, next: Next) -> Response {
    let expected = sh.state.lock().await.config.token.clone();
    let q = pairs(req.uri().query());
    let from_basic = crate::core::http::basic(req.headers()).map(|(u, _)| u);
    let given = header(req.headers(), "circle-token")
        .map(str::to_string)
        .or(from_basic)
        .or_else(|| param(&q, "circle-token").map(str::to_string));
    if given.as_deref() != Some(expected.as_str()) {
        return message(401, "You must log in first.");
    }
    next.run(req).await
}

/// A v2 page: `{items, next_page_token}`; the token is the next offset.
fn paged(items: Vec<Value>, size: usize, q: Option<&str>) -> Response {
    let q = pairs(q);
    let from: usize = param(&q, "page-token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(from).take(size.max(1)).cloned().collect();
    let next = (from + size < items.len()).then(|| (from + size).to_string());
    json(
        StatusCode::OK,
        json!({"items": page, "next_page_token": next}),
    )
}

async fn get_pipeline(State(sh): St, Path(id): Path<String>) -> Response {
    let st = sh.state.lock().await;
    match st.pipelines.get(&id) {
        Some(p) => json(StatusCode::OK, pipeline_json(p)),
        None => message(404, "Pipeline not found"),
    }
}

async fn pipeline_workflows(
    State(sh): St,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let Some(p) = st.pipelines.get(&id) else {
        return message(404, "Pipeline not found");
    };
    let items = p
        .workflows
        .iter()
        .map(|w| workflow_json(&st, &st.workflows[w]))
        .collect();
    paged(items, st.config.page_size, q.as_deref())
}

async fn get_workflow(State(sh): St, Path(id): Path<String>) -> Response {
    let st = sh.state.lock().await;
    match st.workflows.get(&id) {
        Some(w) => json(StatusCode::OK, workflow_json(&st, w)),
        None => message(404, "Workflow not found"),
    }
}

async fn workflow_jobs(State(sh): St, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let st = sh.state.lock().await;
    let Some(w) = st.workflows.get(&id) else {
        return message(404, "Workflow not found");
    };
    let items = w
        .jobs
        .iter()
        .map(|j| job_json(&st, w, &st.jobs[j]))
        .collect();
    paged(items, st.config.page_size, q.as_deref())
}

/// `{"from_failed": true}`, `{"jobs": [ids]}` (mutually exclusive) or `{}` for all jobs;
/// answers 202 with the new workflow's id.
async fn rerun(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return message(400, "Invalid JSON body"),
        }
    };
    let which = match (body["from_failed"].as_bool(), body["jobs"].as_array()) {
        (Some(true), Some(_)) => {
            return message(400, "from_failed and jobs are mutually exclusive")
        }
        (Some(true), None) => Rerun::FromFailed,
        (_, Some(ids)) => Rerun::Jobs(
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        _ => Rerun::All,
    };
    let mut st = sh.state.lock().await;
    match st.rerun(&id, which) {
        Ok(new_id) => {
            drop(st);
            sh.poke();
            json(StatusCode::ACCEPTED, json!({"workflow_id": new_id}))
        }
        Err(e) => refused(e),
    }
}

/// A new pipeline on `branch` with `parameters`: every workflow of the project runs.
async fn trigger_pipeline(
    State(sh): St,
    Path((vcs, org, repo)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let slug = format!("{vcs}/{org}/{repo}");
    let mut st = sh.state.lock().await;
    let Some(project) = st.project(&slug).cloned() else {
        return refused(refusal(404, "Project not found"));
    };
    let branch = body["branch"].as_str().unwrap_or("main").to_string();
    let parameters: BTreeMap<String, Value> = body["parameters"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let scripts: Vec<usize> = project.workflows.values().copied().collect();
    let id = st.new_pipeline(&slug, &branch, "api", parameters, &scripts);
    let p = &st.pipelines[&id];
    let answer = json!({"id": p.id, "state": "created", "number": p.number,
                        "created_at": crate::core::http::rfc3339_ms(p.created_at)});
    drop(st);
    sh.poke();
    json(StatusCode::CREATED, answer)
}

async fn v1_job(
    State(sh): St,
    Path((vcs, org, repo, num)): Path<(String, String, String, u64)>,
) -> Response {
    let st = sh.state.lock().await;
    let slug = super::state::short_slug(&format!("{vcs}/{org}/{repo}"));
    let found = st.jobs.values().find(|j| {
        j.job_number == Some(num)
            && st.pipelines[&st.workflows[&j.workflow_id].pipeline_id].project == slug
    });
    match found {
        Some(j) => json(StatusCode::OK, v1_job_json(&st, j)),
        None => message(404, "Build not found"),
    }
}

async fn output(State(sh): St, Path((job, step)): Path<(String, u32)>) -> Response {
    let st = sh.state.lock().await;
    match st.jobs.get(&job) {
        Some(j) => json(StatusCode::OK, step_output(j, step)),
        None => message(404, "Not found"),
    }
}
