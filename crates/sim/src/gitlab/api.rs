//! The API v4 endpoints pipeguard calls, answering as GitLab does.

use super::payload::{job_json, pipeline_json, project_json, runner, trace};
use super::state::{GitlabState, Refusal};
use crate::core::http::{
    header, json, page, page_params, pairs, param, parse_rfc3339, text, with_header,
};
use crate::core::ratelimit::{self, epoch_secs};
use crate::core::sim::Shared;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = Arc<Shared<GitlabState>>;
type St = State<Sh>;

pub(crate) fn routes(shared: Sh) -> Router<Sh> {
    let p = "/api/v4/projects/{project}";
    Router::new()
        .route(p, get(get_project))
        .route(&format!("{p}/pipeline"), post(create_pipeline))
        .route(&format!("{p}/pipelines"), get(list_pipelines))
        .route(&format!("{p}/pipelines/{{id}}"), get(get_pipeline))
        .route(&format!("{p}/pipelines/{{id}}/jobs"), get(pipeline_jobs))
        .route(&format!("{p}/pipelines/{{id}}/retry"), post(retry_pipeline))
        .route(
            &format!("{p}/pipelines/{{id}}/cancel"),
            post(cancel_pipeline),
        )
        .route(&format!("{p}/jobs/{{id}}"), get(get_job))
        .route(&format!("{p}/jobs/{{id}}/trace"), get(job_trace))
        .route(&format!("{p}/jobs/{{id}}/retry"), post(retry_job))
        .merge(super::notes::routes())
        .merge(super::repo::routes())
        .route("/api/v4/runners/{id}", get(get_runner).put(update_runner))
        .route_layer(middleware::from_fn_with_state(shared.clone(), rate_limit))
        .route_layer(middleware::from_fn_with_state(shared, auth))
}

fn message(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, json!({"message": message}))
}

fn refused(r: Refusal) -> Response {
    message(r.status, &r.message)
}

/// `PRIVATE-TOKEN` (or `Authorization: Bearer`), as API v4 checks it.
async fn auth(State(sh): St, req: Request, next: Next) -> Response {
    let expected = sh.state.lock().await.config.token.clone();
    let h = req.headers();
    let given = header(h, "private-token").or_else(|| crate::core::http::bearer(h));
    if given != Some(expected.as_str()) {
        return message(401, "401 Unauthorized");
    }
    next.run(req).await
}

/// GitLab's rate limit: each answer tells the window's `RateLimit-*`; once it is used up, 429
/// with `Retry-After` until `RateLimit-Reset`, then a new window.
async fn rate_limit(State(sh): St, req: Request, next: Next) -> Response {
    let verdict = {
        let mut st = sh.state.lock().await;
        let limit = st.config.rate_limit;
        limit.map(|l| st.rate.take(l, epoch_secs()))
    };
    let refusal = |v: &ratelimit::Verdict| {
        let wait = v.reset.saturating_sub(epoch_secs()).max(1);
        let r = text(StatusCode::TOO_MANY_REQUESTS, "Retry later\n");
        with_header(r, "retry-after", &wait.to_string())
    };
    let names = [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-observed",
        "ratelimit-reset",
    ];
    ratelimit::through(verdict, req, next, refusal, names).await
}

/// The project path the URL names (`group%2Fproject`, decoded by the router) or its id.
fn project_path(st: &GitlabState, project: &str) -> Result<String, Refusal> {
    st.project(project)
        .map(|p| p.path.clone())
        .ok_or_else(|| not_found("404 Project Not Found"))
}

fn not_found(message: &str) -> Refusal {
    Refusal {
        status: 404,
        message: message.to_string(),
    }
}

async fn get_pipeline(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    let st = sh.state.lock().await;
    let path = match project_path(&st, &project) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    match st.pipelines.get(&id).filter(|p| p.project == path) {
        Some(p) => json(StatusCode::OK, pipeline_json(&st, p)),
        None => message(404, "404 Not found"),
    }
}

async fn get_project(State(sh): St, Path(project): Path<String>) -> Response {
    let st = sh.state.lock().await;
    match project_path(&st, &project) {
        Ok(path) => json(StatusCode::OK, project_json(&st, &path)),
        Err(r) => refused(r),
    }
}

/// The project's pipelines, newest first: `updated_after`/`updated_before` (ISO 8601),
/// `scope=finished`, `status`, `ref`; offset pagination with GitLab's `X-*` headers.
async fn list_pipelines(
    State(sh): St,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let path = match project_path(&st, &project) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let q = pairs(q.as_deref());
    let time = |k: &str| param(&q, k).map(parse_rfc3339);
    let (after, before) = (time("updated_after"), time("updated_before"));
    if matches!(after, Some(None)) || matches!(before, Some(None)) {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "updated_after, updated_before are invalid"}),
        );
    }
    let finished = param(&q, "scope") == Some("finished");
    let mut pipelines: Vec<_> = st
        .pipelines
        .values()
        .rev()
        .filter(|p| p.project == path)
        .filter(|p| after.flatten().is_none_or(|t| p.updated_at > t))
        .filter(|p| before.flatten().is_none_or(|t| p.updated_at < t))
        .filter(|p| {
            !finished
                || matches!(
                    p.status.as_str(),
                    "success" | "failed" | "canceled" | "skipped"
                )
        })
        .filter(|p| param(&q, "status").is_none_or(|s| p.status == s))
        .filter(|p| param(&q, "ref").is_none_or(|r| p.git_ref == r))
        .collect();
    pipelines.sort_by_key(|p| std::cmp::Reverse(p.id));
    let items = pipelines.iter().map(|p| pipeline_json(&st, p)).collect();
    paginated(items, &q)
}

/// Newest first; retried jobs only with `include_retried=true`; `scope`/`scope[]` filters by
/// status; offset pagination with GitLab's `X-*` headers.
async fn pipeline_jobs(
    State(sh): St,
    Path((project, id)): Path<(String, u64)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let path = match project_path(&st, &project) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let Some(p) = st.pipelines.get(&id).filter(|p| p.project == path) else {
        return message(404, "404 Not found");
    };
    let q = pairs(q.as_deref());
    let retried = param(&q, "include_retried") == Some("true");
    let scopes: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "scope" || k == "scope[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut jobs: Vec<_> = p
        .jobs
        .iter()
        .map(|id| &st.jobs[id])
        .filter(|j| retried || !j.retried)
        .filter(|j| scopes.is_empty() || scopes.contains(&j.status.as_str()))
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    let items: Vec<Value> = jobs.iter().map(|j| job_json(&st, j)).collect();
    paginated(items, &q)
}

fn paginated(items: Vec<Value>, q: &[(String, String)]) -> Response {
    let (n, per_page) = page_params(q, 20, 100);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let next = if n < pages {
        (n + 1).to_string()
    } else {
        String::new()
    };
    let prev = if n > 1 {
        (n - 1).to_string()
    } else {
        String::new()
    };
    let mut r = json(StatusCode::OK, Value::Array(page(&items, n, per_page)));
    for (k, v) in [
        ("x-page", n.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
    ] {
        r = with_header(r, k, &v);
    }
    r
}

async fn get_runner(State(sh): St, Path(id): Path<u64>) -> Response {
    let st = sh.state.lock().await;
    match st.runners.iter().find(|r| r.id == id) {
        Some(r) => json(StatusCode::OK, runner(r)),
        None => message(404, "404 Runner Not Found"),
    }
}

/// `PUT /runners/:id`: `paused` (or the older `active`), as JSON or a form.
async fn update_runner(
    State(sh): St,
    Path(id): Path<u64>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let form = header(&headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let fields: Vec<(String, String)> = if form {
        pairs(std::str::from_utf8(&body).ok())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
            _ if body.is_empty() => vec![],
            _ => return message(400, "400 Bad request - body is not a JSON object"),
        }
    };
    let flag = |name: &str| param(&fields, name).map(|v| v.trim_matches('"') == "true");
    let paused = flag("paused").or_else(|| flag("active").map(|a| !a));
    let mut st = sh.state.lock().await;
    let Some(r) = st.runners.iter_mut().find(|r| r.id == id) else {
        return message(404, "404 Runner Not Found");
    };
    if let Some(p) = paused {
        r.paused = p;
    }
    let body = runner(r);
    drop(st);
    sh.poke();
    json(StatusCode::OK, body)
}

async fn get_job(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    let st = sh.state.lock().await;
    match job_of(&st, &project, id) {
        Ok(j) => json(StatusCode::OK, job_json(&st, &st.jobs[&j])),
        Err(r) => refused(r),
    }
}

fn job_of(st: &GitlabState, project: &str, id: u64) -> Result<u64, Refusal> {
    let path = project_path(st, project)?;
    st.jobs
        .get(&id)
        .filter(|j| st.pipelines[&j.pipeline_id].project == path)
        .map(|j| j.id)
        .ok_or_else(|| not_found("404 Job Not Found"))
}

async fn job_trace(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    let st = sh.state.lock().await;
    match job_of(&st, &project, id) {
        Ok(j) => text(StatusCode::OK, trace(&st.jobs[&j])),
        Err(r) => refused(r),
    }
}

async fn retry_job(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    let mut st = sh.state.lock().await;
    if let Err(r) = job_of(&st, &project, id) {
        return refused(r);
    }
    match st.retry_job(id) {
        Ok(new_id) => {
            let body = job_json(&st, &st.jobs[&new_id]);
            drop(st);
            sh.poke();
            json(StatusCode::CREATED, body)
        }
        Err(e) => refused(e),
    }
}

async fn retry_pipeline(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    pipeline_action(
        sh,
        &project,
        id,
        |st, id| st.retry_pipeline(id),
        StatusCode::CREATED,
    )
    .await
}

async fn cancel_pipeline(State(sh): St, Path((project, id)): Path<(String, u64)>) -> Response {
    let cancel = |st: &mut GitlabState, id| {
        st.cancel(id);
        Ok(())
    };
    pipeline_action(sh, &project, id, cancel, StatusCode::OK).await
}

async fn pipeline_action(
    sh: Sh,
    project: &str,
    id: u64,
    act: impl FnOnce(&mut GitlabState, u64) -> Result<(), Refusal>,
    ok: StatusCode,
) -> Response {
    let mut st = sh.state.lock().await;
    let path = match project_path(&st, project) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    if st.pipelines.get(&id).is_none_or(|p| p.project != path) {
        return message(404, "404 Not found");
    }
    if let Err(e) = act(&mut st, id) {
        return refused(e);
    }
    let body = pipeline_json(&st, &st.pipelines[&id]);
    drop(st);
    sh.poke();
    json(ok, body)
}

/// `POST /projects/:id/pipeline` with `ref` and `variables: [{key, value}]`.
async fn create_pipeline(
    State(sh): St,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return message(400, "400 Bad request - body is not valid JSON"),
        }
    };
    let q = pairs(q.as_deref());
    let git_ref = body["ref"]
        .as_str()
        .or(param(&q, "ref"))
        .map(str::to_string);
    let Some(git_ref) = git_ref else {
        return json(StatusCode::BAD_REQUEST, json!({"error": "ref is missing"}));
    };
    let variables: Vec<(String, String)> = body["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((
                v["key"].as_str()?.to_string(),
                v["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut st = sh.state.lock().await;
    let Some(script) = st.project(&project).map(|p| p.script) else {
        return message(404, "404 Project Not Found");
    };
    let id = st.new_pipeline(script, &git_ref, "api", variables);
    let body = pipeline_json(&st, &st.pipelines[&id]);
    drop(st);
    sh.poke();
    json(StatusCode::CREATED, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_carry_gitlab_headers() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let r = paginated(items.clone(), &pairs(Some("per_page=2&page=3")));
        assert_eq!(r.headers()["x-next-page"], "");
        assert_eq!(r.headers()["x-total-pages"], "3");
        let r = paginated(items, &pairs(Some("per_page=2")));
        assert_eq!(r.headers()["x-next-page"], "2");
        assert_eq!(r.headers()["x-prev-page"], "");
    }
}
