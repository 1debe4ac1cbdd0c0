//! CircleCI's JSON: API v2 pipelines, workflows and jobs, API v1.1 job details with
//! `output_url`s, and the `workflow-completed` / `job-completed` deliveries.

use super::state::{CircleciState, Job, Pipeline, Workflow};
use crate::core::http::rfc3339_ms;
use crate::core::webhook::{Delivery, Signing};
use serde_json::{json, Value};
use time::OffsetDateTime;

pub(crate) fn pipeline_json(p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "number": p.number,
        "project_slug": p.project,
        "state": "created",
        "created_at": rfc3339_ms(p.created_at),
        "updated_at": rfc3339_ms(p.created_at),
        "trigger": {"type": p.trigger, "received_at": rfc3339_ms(p.created_at),
                    "actor": {"login": "sim", "avatar_url": null}},
        "vcs": {"provider_name": "GitHub", "branch": p.branch, "revision": p.revision,
                "origin_repository_url": format!("https://github.com/{}", repo_of(&p.project)),
                "target_repository_url": format!("https://github.com/{}", repo_of(&p.project))},
        "errors": [],
    })
}

/// `gh/org/repo` → `org/repo`.
fn repo_of(slug: &str) -> &str {
    slug.split_once('/').map(|(_, r)| r).unwrap_or(slug)
}

pub(crate) fn workflow_json(st: &CircleciState, w: &Workflow) -> Value {
    let p = &st.pipelines[&w.pipeline_id];
    json!({
        "id": w.id,
        "name": w.name,
        "pipeline_id": w.pipeline_id,
        "pipeline_number": p.number,
        "project_slug": p.project,
        "status": w.status,
        "created_at": rfc3339_ms(w.created_at),
        "stopped_at": w.stopped_at.map(rfc3339_ms),
        "started_by": "sim",
        "tag": w.rerun_of.as_ref().map(|_| "rerun"),
        "canceled_by": null,
        "errored_by": null,
    })
}

pub(crate) fn job_json(st: &CircleciState, w: &Workflow, j: &Job) -> Value {
    let spec = &st.scripts[w.script].spec;
    let deps: Vec<&str> = spec
        .job_spec(&j.name)
        .map(|s| s.needs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let dependencies: Vec<&str> = w
        .jobs
        .iter()
        .filter(|id| deps.contains(&st.jobs[*id].name.as_str()))
        .map(String::as_str)
        .collect();
    json!({
        "id": j.id,
        "name": j.name,
        "type": "build",
        "status": j.status(),
        "job_number": j.job_number,
        "project_slug": st.pipelines[&w.pipeline_id].project,
        "dependencies": dependencies,
        "started_at": j.started_at.map(rfc3339_ms),
        "stopped_at": j.stopped_at.map(rfc3339_ms),
    })
}

/// API v1.1 `project/:vcs/:org/:repo/:build_num`: the job's steps, each action with a
/// pre-signed `output_url`.
pub(crate) fn v1_job_json(st: &CircleciState, j: &Job) -> Value {
    let n = j.job_number.unwrap_or_default();
    let out = |step: u32| {
        format!(
            "{}/_blobs/circleci/output/{}/{step}?sig=sim",
            st.base_url, j.id
        )
    };
    let failed = j.status() == "failed";
    let action = |step: u32, name: &str, status: &str, failed: bool| {
        json!({"name": name, "index": 0, "step": step, "status": status,
               "failed": failed.then_some(true), "output_url": out(step), "has_output": true})
    };
    let run_status = if j.status() == "running" {
        "running"
    } else if failed {
        "failed"
    } else {
        "success"
    };
    json!({
        "build_num": n,
        "status": if failed { "failed" } else { j.status() },
        "workflows": {"workflow_id": j.workflow_id, "job_name": j.name, "job_id": j.id},
        "steps": [
            {"name": "Spin up environment", "actions": [action(0, "Spin up environment", "success", false)]},
            {"name": format!("Run {}", j.name), "actions": [action(1, &format!("Run {}", j.name), run_status, failed)]},
        ],
    })
}

/// What an `output_url` serves: the step's output as messages.
pub(crate) fn step_output(j: &Job, step: u32) -> Value {
    let time = j.started_at.map(rfc3339_ms);
    let message = if step == 0 {
        "Starting container cimg/base:current\n".to_string()
    } else {
        let mut m = j.log.clone();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        if j.status() == "failed" {
            m.push_str("\nExited with code exit status 1\n");
        }
        m
    };
    json!([{"message": message, "time": time, "type": "out", "truncated": false}])
}

fn common(st: &CircleciState, w: &Workflow, kind: &str) -> Value {
    let p = &st.pipelines[&w.pipeline_id];
    let project = st.project(&p.project);
    let org = repo_of(&p.project).split('/').next().unwrap_or_default();
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": kind,
        "happened_at": rfc3339_ms(OffsetDateTime::now_utc()),
        "webhook": {"id": "5bd6b2d5-0000-4000-8000-000000000001", "name": "pipeguard"},
        "project": {"id": project.map(|x| x.id.clone()), "name": repo_of(&p.project).rsplit('/').next(),
                    "slug": p.project},
        "organization": {"id": "0e2b6d1a-0000-4000-8000-000000000002", "name": org},
        "workflow": {"id": w.id, "name": w.name, "created_at": rfc3339_ms(w.created_at),
                     "stopped_at": w.stopped_at.map(rfc3339_ms), "status": w.status,
                     "url": format!("{}/pipelines/{}/{}/workflows/{}", st.base_url, p.project, p.number, w.id)},
        "pipeline": {"id": p.id, "number": p.number, "created_at": rfc3339_ms(p.created_at),
                     "trigger": {"type": p.trigger},
                     "vcs": {"provider_name": "github", "revision": p.revision, "branch": p.branch,
                             "origin_repository_url": format!("https://github.com/{}", repo_of(&p.project)),
                             "target_repository_url": format!("https://github.com/{}", repo_of(&p.project)),
                             "commit": {"subject": "Change", "body": ""}}},
    })
}

fn delivery(kind: &str, body: Value) -> Delivery {
    Delivery {
        event: kind.to_string(),
        headers: vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), "CircleCI-Webhook/1.0".to_string()),
            ("circleci-event-type".to_string(), kind.to_string()),
        ],
        body: body.to_string().into_bytes(),
        signing: Signing::Hmac {
            header: "circleci-signature",
            prefix: "v1=",
        },
    }
}

pub(crate) fn workflow_completed(st: &CircleciState, wf: &str) -> Delivery {
    let body = common(st, &st.workflows[wf], "workflow-completed");
    delivery("workflow-completed", body)
}

pub(crate) fn job_completed(st: &CircleciState, wf: &str, job: &str) -> Delivery {
    let mut body = common(st, &st.workflows[wf], "job-completed");
    let j = &st.jobs[job];
    body["job"] = json!({"id": j.id, "name": j.name, "number": j.job_number,
                         "started_at": j.started_at.map(rfc3339_ms),
                         "stopped_at": j.stopped_at.map(rfc3339_ms), "status": j.status()});
    delivery("job-completed", body)
}
