//! GitLab's JSON: jobs and pipelines as API v4 shows them, and the Pipeline Hook / Job Hook
//! deliveries.

use super::state::{GitlabState, Job, Pipeline};
use crate::core::http::{gitlab_hook_time, rfc3339_ms};
use crate::core::webhook::{Delivery, Signing};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn user() -> Value {
    json!({"id": 1, "name": "Sim User", "username": "sim", "state": "active",
           "avatar_url": null, "email": "sim@example.com"})
}

fn seconds(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<f64> {
    Some((b? - a?).as_seconds_f64())
}

pub(crate) fn project_json(st: &GitlabState, path: &str) -> Value {
    let id = st.project(path).map(|p| p.id).unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({"id": id, "name": name, "path_with_namespace": path, "default_branch": "main",
           "web_url": format!("{}/{path}", st.base_url),
           "git_http_url": format!("{}/{path}.git", st.base_url)})
}

pub(crate) fn pipeline_json(st: &GitlabState, p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "iid": p.iid,
        "project_id": st.project(&p.project).map(|x| x.id),
        "sha": p.sha,
        "ref": p.git_ref,
        "status": p.status,
        "source": p.source,
        "created_at": rfc3339_ms(p.created_at),
        "updated_at": rfc3339_ms(p.updated_at),
        "started_at": p.started_at.map(rfc3339_ms),
        "finished_at": p.finished_at.map(rfc3339_ms),
        "duration": seconds(p.started_at, p.finished_at).map(|s| s.round() as i64),
        "web_url": format!("{}/{}/-/pipelines/{}", st.base_url, p.project, p.id),
        "before_sha": "0000000000000000000000000000000000000000",
        "tag": false,
        "user": user(),
    })
}

pub(crate) fn job_json(st: &GitlabState, j: &Job) -> Value {
    let p = &st.pipelines[&j.pipeline_id];
    json!({
        "id": j.id,
        "status": j.status.as_str(),
        "stage": j.stage,
        "name": j.name,
        "ref": p.git_ref,
        "tag": false,
        "coverage": null,
        "allow_failure": false,
        "created_at": rfc3339_ms(j.created_at),
        "started_at": j.started_at.map(rfc3339_ms),
        "finished_at": j.finished_at.map(rfc3339_ms),
        "erased_at": null,
        "duration": seconds(j.started_at, j.finished_at),
        "failure_reason": j.failure_reason,
        "user": user(),
        "commit": {"id": p.sha, "short_id": &p.sha[..8.min(p.sha.len())], "title": "Change"},
        "pipeline": {"id": p.id, "iid": p.iid, "sha": p.sha, "ref": p.git_ref,
                     "status": p.status, "source": p.source},
        "web_url": format!("{}/{}/-/jobs/{}", st.base_url, p.project, j.id),
        "artifacts": [],
        "runner": runner_json(st, j),
        "archived": false,
    })
}

/// The job's `runner` object as Job Hooks, Pipeline Hook builds and the jobs API show it.
fn runner_json(st: &GitlabState, j: &Job) -> Value {
    match j
        .runner
        .and_then(|id| st.runners.iter().find(|r| r.id == id))
    {
        Some(r) => runner(r),
        None => Value::Null,
    }
}

/// A runner as `GET /runners/:id` and the `runner` objects show it.
pub(crate) fn runner(r: &super::state::SimRunner) -> Value {
    json!({"id": r.id, "description": r.description, "active": !r.paused, "paused": r.paused,
           "is_shared": r.projects.is_empty(),
           "runner_type": if r.projects.is_empty() { "instance_type" } else { "project_type" },
           "name": "gitlab-runner", "online": true, "status": if r.paused { "paused" } else { "online" },
           "tags": []})
}

fn environment(j: &Job) -> Value {
    match &j.environment {
        Some(name) => json!({"name": name, "action": "start", "deployment_tier": "other"}),
        None => Value::Null,
    }
}

pub(crate) fn delivery(st: &GitlabState, event: &str, body: Value) -> Delivery {
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("User-Agent".to_string(), "GitLab/17.5.0".to_string()),
        ("X-Gitlab-Event".to_string(), event.to_string()),
        (
            "X-Gitlab-Event-UUID".to_string(),
            uuid::Uuid::new_v4().to_string(),
        ),
        (
            "X-Gitlab-Webhook-UUID".to_string(),
            "6a4b2c3d-0000-4000-8000-000000000001".to_string(),
        ),
        ("X-Gitlab-Instance".to_string(), st.base_url.clone()),
        (
            "Idempotency-Key".to_string(),
            uuid::Uuid::new_v4().to_string(),
        ),
    ];
    Delivery {
        event: event.to_string(),
        headers,
        body: body.to_string().into_bytes(),
        signing: Signing::Token {
            header: "X-Gitlab-Token",
        },
    }
}

/// `Job Hook`: one job's status changed.
pub(crate) fn job_hook(st: &GitlabState, job_id: u64) -> Delivery {
    let j = &st.jobs[&job_id];
    let p = &st.pipelines[&j.pipeline_id];
    let project = project_json(st, &p.project);
    let body = json!({
        "object_kind": "build",
        "ref": p.git_ref,
        "tag": false,
        "before_sha": "0000000000000000000000000000000000000000",
        "sha": p.sha,
        "build_id": j.id,
        "build_name": j.name,
        "build_stage": j.stage,
        "build_status": j.status.as_str(),
        "build_created_at": gitlab_hook_time(j.created_at),
        "build_started_at": j.started_at.map(gitlab_hook_time),
        "build_finished_at": j.finished_at.map(gitlab_hook_time),
        "build_duration": seconds(j.started_at, j.finished_at),
        "build_allow_failure": false,
        "build_failure_reason": j.failure_reason.clone().unwrap_or_else(|| "unknown_failure".into()),
        "retries_count": st.retries_count(j),
        "pipeline_id": p.id,
        "project_id": project["id"],
        "project_name": p.project.replace('/', " / "),
        "user": user(),
        "commit": {"id": p.id, "sha": p.sha, "status": p.status},
        "repository": {"name": project["name"], "homepage": project["web_url"],
                       "url": project["git_http_url"], "git_http_url": project["git_http_url"],
                       "visibility_level": 0},
        "project": project,
        "environment": environment(j),
        "runner": runner_json(st, j),
    });
    delivery(st, "Job Hook", body)
}

/// `Pipeline Hook`: the pipeline's status changed; `builds` are its current jobs.
pub(crate) fn pipeline_hook(st: &GitlabState, pipeline_id: u64) -> Delivery {
    let p = &st.pipelines[&pipeline_id];
    let builds: Vec<Value> = st
        .latest_jobs(pipeline_id)
        .iter()
        .map(|id| {
            let j = &st.jobs[id];
            json!({"id": j.id, "stage": j.stage, "name": j.name, "status": j.status.as_str(),
                   "created_at": gitlab_hook_time(j.created_at),
                   "started_at": j.started_at.map(gitlab_hook_time),
                   "finished_at": j.finished_at.map(gitlab_hook_time),
                   "duration": seconds(j.started_at, j.finished_at),
                   "when": "on_success", "manual": false, "allow_failure": false,
                   "failure_reason": j.failure_reason, "user": user(), "runner": runner_json(st, j),
                   "environment": environment(j)})
        })
        .collect();
    let mut stages: Vec<String> = Vec::new();
    for b in &builds {
        let s = b["stage"].as_str().unwrap_or_default().to_string();
        if !stages.contains(&s) {
            stages.push(s);
        }
    }
    let body = json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": p.id, "iid": p.iid, "ref": p.git_ref, "tag": false, "sha": p.sha,
            "before_sha": "0000000000000000000000000000000000000000", "source": p.source,
            "status": p.status, "detailed_status": p.status, "stages": stages,
            "created_at": gitlab_hook_time(p.created_at),
            "finished_at": p.finished_at.map(gitlab_hook_time),
            "duration": seconds(p.started_at, p.finished_at).map(|s| s.round() as i64),
            "variables": p.variables.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
            "url": format!("{}/{}/-/pipelines/{}", st.base_url, p.project, p.id),
        },
        "user": user(),
        "project": project_json(st, &p.project),
        "commit": {"id": p.sha, "message": "Change\n", "title": "Change"},
        "builds": builds,
    });
    delivery(st, "Pipeline Hook", body)
}

/// The job's trace as the runner writes it.
pub(crate) fn trace(j: &Job) -> String {
    let mut out = format!(
        "Running with gitlab-runner 17.5.0 (sim)\n  on sim-runner\nPreparing the \"docker\" executor\n$ ./run {}\n",
        j.name
    );
    for line in j.log.lines() {
        out.push_str(line);
        out.push('\n');
    }
    if j.status.as_str() == "failed" {
        out.push_str("Cleaning up project directory and file based variables\nERROR: Job failed: exit code 1\n");
    } else if j.status.as_str() == "success" {
        out.push_str("Job succeeded\n");
    }
    out
}
