//! Jenkins' JSON and text: build and queue item APIs, `consoleText`, and the Notification
//! plugin's deliveries.

use super::state::{Build, JenkinsState, QueueItem};
use crate::core::graph::{End, Phase};
use crate::core::http::epoch_ms;
use crate::core::webhook::{Delivery, Signing};
use serde_json::{json, Value};
use tokio::time::Instant;

/// `folder/job` → `job/folder/job/job/`, the relative URL Jenkins writes.
pub(crate) fn job_rel(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("job/{s}/"))
        .collect()
}

fn parameters(b: &std::collections::BTreeMap<String, String>) -> Value {
    let list: Vec<Value> = b
        .iter()
        .map(|(k, v)| json!({"_class": "hudson.model.StringParameterValue", "name": k, "value": v}))
        .collect();
    json!({"_class": "hudson.model.ParametersAction", "parameters": list})
}

fn causes(cause: &str) -> Value {
    json!({"_class": "hudson.model.CauseAction", "causes": [{"shortDescription": cause}]})
}

pub(crate) fn build_json(st: &JenkinsState, b: &Build) -> Value {
    let url = format!("{}/{}{}/", st.base_url, job_rel(&b.job), b.number);
    json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
        "actions": [parameters(&b.parameters), causes(&b.cause)],
        "building": b.building,
        "displayName": format!("#{}", b.number),
        "duration": b.duration_ms,
        "fullDisplayName": format!("{} #{}", b.job.replace('/', " » "), b.number),
        "id": b.number.to_string(),
        "number": b.number,
        "queueId": b.queue_id,
        "result": b.result,
        "timestamp": epoch_ms(b.timestamp),
        "url": url,
    })
}

pub(crate) fn queue_item_json(st: &JenkinsState, q: &QueueItem, now: Instant) -> Value {
    let left = q.build.is_some();
    let executable = q.build.map(|n| {
        json!({"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": n,
               "url": format!("{}/{}{n}/", st.base_url, job_rel(&q.job))})
    });
    let params: String = q
        .parameters
        .iter()
        .map(|(k, v)| format!("\n{k}={v}"))
        .collect();
    json!({
        "_class": if left { "hudson.model.Queue$LeftItem" } else { "hudson.model.Queue$WaitingItem" },
        "actions": [parameters(&q.parameters), causes(&q.cause)],
        "blocked": !left && st.why(q, now).is_some_and(|w| w.contains("in progress")),
        "buildable": false,
        "id": q.id,
        "inQueueSince": epoch_ms(q.queued_at),
        "params": params,
        "stuck": false,
        "task": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                 "name": q.job.rsplit('/').next().unwrap_or(&q.job),
                 "url": format!("{}/{}", st.base_url, job_rel(&q.job))},
        "url": format!("queue/item/{}/", q.id),
        "why": st.why(q, now),
        "cancelled": left.then_some(false),
        "executable": executable,
    })
}

/// The build's console as a Pipeline job prints it.
pub(crate) fn console_text(b: &Build) -> String {
    let mut out = format!("{}\n[Pipeline] Start of Pipeline\n", b.cause);
    for s in &b.stages {
        out.push_str(&format!("[Pipeline] stage\n[Pipeline] {{ ({})\n", s.name));
        match s.phase {
            Phase::Done(End::Skipped) => out.push_str(&format!(
                "Stage \"{}\" skipped due to earlier failure(s)\n",
                s.name
            )),
            Phase::Waiting => {}
            _ => {
                for line in s.log.lines() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push_str("[Pipeline] }\n");
    }
    if let Some(r) = &b.result {
        out.push_str(&format!("[Pipeline] End of Pipeline\nFinished: {r}\n"));
    }
    out
}

/// One Notification plugin delivery for `phase` (`STARTED`, `COMPLETED`, `FINALIZED`).
pub(crate) fn notification(st: &JenkinsState, key: &(String, u64), phase: &str) -> Delivery {
    let b = &st.builds[key];
    let spec = &st.scripts[st.jobs[&b.job].script].spec;
    let rel = job_rel(&b.job);
    let body = json!({
        "name": b.job.rsplit('/').next().unwrap_or(&b.job),
        "display_name": b.job.rsplit('/').next().unwrap_or(&b.job),
        "url": rel,
        "build": {
            "full_url": format!("{}/{rel}{}/", st.base_url, b.number),
            "number": b.number,
            "queue_id": b.queue_id,
            "timestamp": epoch_ms(b.timestamp),
            "duration": b.duration_ms,
            "phase": phase,
            "status": if phase == "STARTED" { None } else { b.result.clone() },
            "url": format!("{rel}{}/", b.number),
            "scm": {"url": format!("https://git.example.com/{}.git", b.job),
                    "branch": spec.branch, "commit": spec.sha},
            "parameters": b.parameters,
            "log": "",
            "notes": "",
            "artifacts": {},
        },
    });
    let signing = if st.config.token_in_query {
        Signing::Query { param: "token" }
    } else {
        Signing::Token {
            header: "X-Pipeguard-Token",
        }
    };
    Delivery {
        event: phase.to_string(),
        headers: vec![("Content-Type".to_string(), "application/json".to_string())],
        body: body.to_string().into_bytes(),
        signing,
    }
}
