//! The Actions REST endpoints pipeguard calls, answering as api.github.com does.

use super::payload::{job_json, log_text, repo_json, run_json};
use super::state::{not_found, Dispatch, GithubState, Job, Refusal, Rerun};
use super::DispatchMode;
use crate::core::http::{
    bearer, json, page, page_params, pairs, param, parse_rfc3339, rfc3339_s, text, with_header,
};
use crate::core::ratelimit::{self, epoch_secs};
use crate::core::sim::Shared;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

type Sh = Arc<Shared<GithubState>>;
type St = State<Sh>;

pub(crate) fn routes(shared: Sh) -> Router<Sh> {
    let actions = "/repos/{owner}/{repo}/actions";
    let api = Router::new()
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route(&format!("{actions}/runs"), get(list_repo_runs))
        .route(&format!("{actions}/runs/{{run}}"), get(get_run))
        .route(
            &format!("{actions}/runs/{{run}}/attempts/{{n}}"),
            get(get_attempt),
        )
        .route(
            &format!("{actions}/runs/{{run}}/attempts/{{n}}/jobs"),
            get(attempt_jobs),
        )
        .route(&format!("{actions}/runs/{{run}}/jobs"), get(run_jobs))
        .route(&format!("{actions}/runs/{{run}}/rerun"), post(rerun_all))
        .route(
            &format!("{actions}/runs/{{run}}/rerun-failed-jobs"),
            post(rerun_failed),
        )
        .route(&format!("{actions}/jobs/{{job}}"), get(get_job))
        .route(&format!("{actions}/jobs/{{job}}/logs"), get(job_logs))
        .route(&format!("{actions}/jobs/{{job}}/rerun"), post(rerun_job))
        .route(
            &format!("{actions}/workflows/{{wf}}/dispatches"),
            post(dispatch),
        )
        .route(
            &format!("{actions}/workflows/{{wf}}/runs"),
            get(list_workflow_runs),
        )
        .route(&format!("{actions}/caches"), get(list_caches))
        .route(&format!("{actions}/caches/{{id}}"), delete(delete_cache))
        .merge(super::repo::routes())
        .route_layer(middleware::from_fn_with_state(shared.clone(), rate_limit))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth));
    // Blob storage: pre-signed links, no token (the client must not send it there anyway).
    api.route("/_blobs/github/jobs/{job}/log", get(blob_log))
        .merge(super::app::routes())
        .merge(super::checks::routes().route_layer(middleware::from_fn_with_state(shared, auth)))
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        code,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest",
               "status": status.to_string()}),
    )
}

fn refused(r: Refusal) -> Response {
    error(r.status, &r.message)
}

/// `Authorization: Bearer <token>` (or `token <token>`), as the REST API checks it: the
/// configured token, or an app installation token on its installation's repositories.
async fn auth(State(sh): St, req: Request, next: Next) -> Response {
    let verdict = {
        let mut st = sh.state.lock().await;
        match bearer(req.headers()) {
            None => Err((401, "Requires authentication".to_string())),
            Some(t) if t == st.config.token => Ok(()),
            Some(t) => super::app::check_installation_token(&mut st, t, req.uri().path())
                .unwrap_or_else(|| Err((401, "Bad credentials".into()))),
        }
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err((status, message)) => error(status, &message),
    }
}

/// GitHub's primary rate limit: each answer tells the window's `x-ratelimit-*`; once it is
/// used up, 403 until `x-ratelimit-reset`, then a new window.
async fn rate_limit(State(sh): St, req: Request, next: Next) -> Response {
    let verdict = {
        let mut st = sh.state.lock().await;
        let limit = st.config.rate_limit;
        limit.map(|l| st.rate.take(l, epoch_secs()))
    };
    let refusal = |_: &ratelimit::Verdict| error(403, "API rate limit exceeded for user ID 1.");
    let names = [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-used",
        "x-ratelimit-reset",
    ];
    ratelimit::through(verdict, req, next, refusal, names).await
}

/// A `{total_count, <key>: [...]}` page, with GitHub's `Link` header.
fn listing(key: &str, items: Vec<Value>, query: &[(String, String)], path: &str) -> Response {
    let total = items.len();
    counted_listing(key, items, total, query, path)
}

/// A page of `items` whose `total_count` says `total` (more than the items past a cap).
fn counted_listing(
    key: &str,
    items: Vec<Value>,
    total: usize,
    query: &[(String, String)],
    path: &str,
) -> Response {
    let (p, per_page) = page_params(query, 30, 100);
    let body = json!({"total_count": total, key: page(&items, p, per_page)});
    let last = items.len().div_ceil(per_page).max(1);
    let link =
        |n: usize, rel: &str| format!("<{path}?per_page={per_page}&page={n}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if p < last {
        links.push(link(p + 1, "next"));
        links.push(link(last, "last"));
    }
    let r = json(StatusCode::OK, body);
    if links.is_empty() {
        r
    } else {
        with_header(r, "link", &links.join(", "))
    }
}

/// A repository the simulator ran a workflow of.
async fn get_repo(State(sh): St, Path((o, r)): Path<(String, String)>) -> Response {
    let st = sh.state.lock().await;
    let repo = format!("{o}/{r}");
    if st.runs.values().any(|x| x.repo == repo) {
        json(StatusCode::OK, repo_json(&st, &repo))
    } else {
        refused(not_found())
    }
}

async fn get_run(State(sh): St, Path((o, r, run)): Path<(String, String, u64)>) -> Response {
    let st = sh.state.lock().await;
    match st.runs.get(&run).filter(|x| x.repo == format!("{o}/{r}")) {
        Some(x) => json(StatusCode::OK, run_json(&st, x, x.latest())),
        None => refused(not_found()),
    }
}

async fn get_attempt(
    State(sh): St,
    Path((o, r, run, n)): Path<(String, String, u64, u32)>,
) -> Response {
    let st = sh.state.lock().await;
    let found = st.runs.get(&run).filter(|x| x.repo == format!("{o}/{r}"));
    match found.and_then(|x| x.attempt(n).map(|a| (x, a))) {
        Some((x, a)) => json(StatusCode::OK, run_json(&st, x, a)),
        None => refused(not_found()),
    }
}

async fn attempt_jobs(
    State(sh): St,
    Path((o, r, run, n)): Path<(String, String, u64, u32)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let found = st.runs.get(&run).filter(|x| x.repo == format!("{o}/{r}"));
    let Some(a) = found.and_then(|x| x.attempt(n)) else {
        return refused(not_found());
    };
    let jobs = a
        .jobs
        .iter()
        .map(|id| job_json(&st, &st.jobs[id]))
        .collect();
    let path = format!("/repos/{o}/{r}/actions/runs/{run}/attempts/{n}/jobs");
    listing("jobs", jobs, &pairs(q.as_deref()), &path)
}

/// `filter=latest` (the default): the latest attempt's jobs; `filter=all`: every execution.
async fn run_jobs(
    State(sh): St,
    Path((o, r, run)): Path<(String, String, u64)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let Some(x) = st.runs.get(&run).filter(|x| x.repo == format!("{o}/{r}")) else {
        return refused(not_found());
    };
    let query = pairs(q.as_deref());
    let ids: Vec<u64> = match param(&query, "filter") {
        Some("all") => st
            .jobs
            .values()
            .filter(|j| j.run_id == run)
            .map(|j| j.id)
            .collect(),
        _ => x.latest().jobs.clone(),
    };
    let jobs = ids.iter().map(|id| job_json(&st, &st.jobs[id])).collect();
    listing(
        "jobs",
        jobs,
        &query,
        &format!("/repos/{o}/{r}/actions/runs/{run}/jobs"),
    )
}

/// The job `id` if it belongs to a run of `repo`.
fn job_in<'a>(st: &'a GithubState, repo: &str, id: u64) -> Option<&'a Job> {
    st.jobs.get(&id).filter(|j| st.runs[&j.run_id].repo == repo)
}

async fn get_job(State(sh): St, Path((o, r, job)): Path<(String, String, u64)>) -> Response {
    let st = sh.state.lock().await;
    match job_in(&st, &format!("{o}/{r}"), job) {
        Some(j) => json(StatusCode::OK, job_json(&st, j)),
        None => refused(not_found()),
    }
}

/// 302 to a short-lived blob URL on the storage origin, as the documented endpoint does.
async fn job_logs(State(sh): St, Path((o, r, job)): Path<(String, String, u64)>) -> Response {
    let st = sh.state.lock().await;
    if job_in(&st, &format!("{o}/{r}"), job).is_none() {
        return refused(not_found());
    }
    let location = format!(
        "{}/_blobs/github/jobs/{job}/log?sig={}",
        sh.storage_url,
        uuid::Uuid::new_v4().simple()
    );
    with_header(text(StatusCode::FOUND, ""), "location", &location)
}

async fn blob_log(State(sh): St, Path(job): Path<u64>) -> Response {
    let st = sh.state.lock().await;
    match st.jobs.get(&job) {
        Some(j) => text(StatusCode::OK, log_text(j)),
        None => text(StatusCode::NOT_FOUND, "BlobNotFound"),
    }
}

async fn rerun(sh: Sh, repo: String, run: Option<u64>, which: Rerun) -> Response {
    let mut st = sh.state.lock().await;
    let run = match (run, &which) {
        (Some(r), _) => r,
        (None, Rerun::Job(id)) => match st.jobs.get(id) {
            Some(j) => j.run_id,
            None => return refused(not_found()),
        },
        (None, _) => return refused(not_found()),
    };
    if st.runs.get(&run).is_none_or(|x| x.repo != repo) {
        return refused(not_found());
    }
    match st.rerun(run, which) {
        Ok(_) => {
            drop(st);
            sh.poke();
            json(StatusCode::CREATED, json!({}))
        }
        Err(e) => refused(e),
    }
}

async fn rerun_all(State(sh): St, Path((o, r, run)): Path<(String, String, u64)>) -> Response {
    rerun(sh, format!("{o}/{r}"), Some(run), Rerun::All).await
}

async fn rerun_failed(State(sh): St, Path((o, r, run)): Path<(String, String, u64)>) -> Response {
    rerun(sh, format!("{o}/{r}"), Some(run), Rerun::Failed).await
}

async fn rerun_job(State(sh): St, Path((o, r, job)): Path<(String, String, u64)>) -> Response {
    rerun(sh, format!("{o}/{r}"), None, Rerun::Job(job)).await
}

/// Inputs arrive as JSON strings, booleans or numbers; the run sees them as strings.
fn input_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn dispatch(
    State(sh): St,
    Path((o, r, wf)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Problems parsing JSON");
    };
    let repo = format!("{o}/{r}");
    let mut st = sh.state.lock().await;
    let Some(w) = st.workflow(&repo, &wf).cloned() else {
        return refused(not_found());
    };
    let asks_details = body.get("return_run_details").is_some();
    if st.config.dispatch == DispatchMode::RejectsRunDetails && asks_details {
        return error(
            422,
            "Invalid request.\n\n\"return_run_details\" is not a permitted key.",
        );
    }
    let Some(git_ref) = body["ref"].as_str() else {
        return error(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    let declared = st.scripts[w.script].spec.parameters.clone();
    let given: BTreeMap<String, String> = body["inputs"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), input_value(v))).collect())
        .unwrap_or_default();
    let unexpected: Vec<&String> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .collect();
    if !unexpected.is_empty() {
        return error(422, &format!("Unexpected inputs provided: {unexpected:?}"));
    }
    let mut inputs = declared;
    inputs.extend(given);
    let branch = git_ref.trim_start_matches("refs/heads/").to_string();
    let run_id = st.start_run(w.script, "workflow_dispatch", &branch, inputs.clone());
    st.dispatches.push(Dispatch {
        repo: repo.clone(),
        workflow: w.file.clone(),
        git_ref: git_ref.to_string(),
        inputs,
        run_id,
    });
    let details = st.config.dispatch == DispatchMode::RunDetails
        && body["return_run_details"].as_bool() == Some(true);
    let base = st.base_url.clone();
    drop(st);
    sh.poke();
    if !details {
        return text(StatusCode::NO_CONTENT, "");
    }
    json(
        StatusCode::OK,
        json!({"workflow_run_id": run_id,
               "run_url": format!("{base}/repos/{repo}/actions/runs/{run_id}"),
               "html_url": format!("{base}/{repo}/actions/runs/{run_id}")}),
    )
}

/// `created` as the search syntax writes it: `>=T`, `>T`, `<=T`, `<T`, `A..B` or a date.
fn created_matches(filter: &str, t: OffsetDateTime) -> bool {
    let at =
        |s: &str| parse_rfc3339(s).or_else(|| parse_rfc3339(&format!("{}T00:00:00Z", s.trim())));
    let f = filter.trim();
    let check = |s: &str, ok: &dyn Fn(OffsetDateTime) -> bool| at(s).is_some_and(ok);
    if let Some(s) = f.strip_prefix(">=") {
        check(s, &|x| t >= x)
    } else if let Some(s) = f.strip_prefix("<=") {
        check(s, &|x| t <= x)
    } else if let Some(s) = f.strip_prefix('>') {
        check(s, &|x| t > x)
    } else if let Some(s) = f.strip_prefix('<') {
        check(s, &|x| t < x)
    } else if let Some((a, b)) = f.split_once("..") {
        check(a, &|x| t >= x) && check(b, &|x| t <= x)
    } else {
        check(f, &|x| t >= x && t < x + time::Duration::days(1))
    }
}

fn runs_listing(
    st: &GithubState,
    repo: &str,
    wf: Option<u64>,
    q: &[(String, String)],
    path: &str,
) -> Response {
    let mut runs: Vec<_> = st
        .runs
        .values()
        .filter(|x| x.repo == repo && wf.is_none_or(|w| x.workflow_id == w))
        .filter(|x| param(q, "branch").is_none_or(|b| x.branch == b))
        .filter(|x| param(q, "event").is_none_or(|e| x.event == e))
        .filter(|x| param(q, "head_sha").is_none_or(|s| x.sha == s))
        .filter(|x| param(q, "created").is_none_or(|c| created_matches(c, x.created_at)))
        .filter(|x| {
            param(q, "status").is_none_or(|s| {
                let a = x.latest();
                a.status.as_str() == s || a.conclusion.as_deref() == Some(s)
            })
        })
        .collect();
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let matched = runs.len();
    // Past the cap a `created` search lists nothing more, though it counts every match.
    if param(q, "created").is_some() {
        runs.truncate(st.config.search_cap);
    }
    let items = runs.iter().map(|x| run_json(st, x, x.latest())).collect();
    counted_listing("workflow_runs", items, matched, q, path)
}

async fn list_repo_runs(
    State(sh): St,
    Path((o, r)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let path = format!("/repos/{o}/{r}/actions/runs");
    runs_listing(&st, &format!("{o}/{r}"), None, &pairs(q.as_deref()), &path)
}

async fn list_workflow_runs(
    State(sh): St,
    Path((o, r, wf)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let repo = format!("{o}/{r}");
    let Some(id) = st.workflow(&repo, &wf).map(|w| w.id) else {
        return refused(not_found());
    };
    let path = format!("/repos/{repo}/actions/workflows/{wf}/runs");
    runs_listing(&st, &repo, Some(id), &pairs(q.as_deref()), &path)
}

/// `ref` matches exactly, `key` as a prefix; most recently created first.
async fn list_caches(
    State(sh): St,
    Path((o, r)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let st = sh.state.lock().await;
    let q = pairs(q.as_deref());
    let repo = format!("{o}/{r}");
    let mut caches: Vec<_> = st
        .caches
        .values()
        .filter(|c| c.repo == repo)
        .filter(|c| param(&q, "ref").is_none_or(|x| c.git_ref == x))
        .filter(|c| param(&q, "key").is_none_or(|k| c.key.starts_with(k)))
        .collect();
    caches.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items = caches
        .iter()
        .map(|c| {
            json!({"id": c.id, "ref": c.git_ref, "key": c.key, "version": format!("{:x}", c.id),
                   "last_accessed_at": rfc3339_s(c.created_at), "created_at": rfc3339_s(c.created_at),
                   "size_in_bytes": c.size_in_bytes})
        })
        .collect();
    listing(
        "actions_caches",
        items,
        &q,
        &format!("/repos/{repo}/actions/caches"),
    )
}

async fn delete_cache(State(sh): St, Path((o, r, id)): Path<(String, String, u64)>) -> Response {
    let mut st = sh.state.lock().await;
    let repo = format!("{o}/{r}");
    match st.caches.get(&id) {
        Some(c) if c.repo == repo => {
            st.caches.remove(&id);
            text(StatusCode::NO_CONTENT, "")
        }
        _ => refused(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_filters() {
        let t = parse_rfc3339("2026-03-04T10:00:00Z").unwrap();
        assert!(created_matches(">=2026-03-04T10:00:00Z", t));
        assert!(!created_matches(">2026-03-04T10:00:00Z", t));
        assert!(created_matches("<2026-03-05", t));
        assert!(created_matches("2026-03-04", t));
        assert!(!created_matches("2026-03-03", t));
        assert!(created_matches(
            "2026-03-01T00:00:00Z..2026-03-05T00:00:00Z",
            t
        ));
        assert!(!created_matches(">=not-a-time", t));
    }
}
