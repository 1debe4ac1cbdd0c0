//! CircleCI's `workflow-completed` and `job-completed` deliveries.

use crate::webhook::Delivery;
use crate::{parse_time_ms, ParseError, Parsed, OUTCOME_ATTEMPT};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    stopped_at: Option<String>,
}

#[derive(Deserialize)]
struct Project {
    slug: String,
}

#[derive(Deserialize)]
struct Vcs {
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

/// `pipeline.trigger_parameters.git`: what GitHub App, GitLab and Bitbucket Data Center
/// projects send instead of `pipeline.vcs`.
#[derive(Deserialize)]
struct Git {
    #[serde(default)]
    checkout_sha: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

#[derive(Deserialize, Default)]
struct TriggerParameters {
    #[serde(default)]
    git: Option<Git>,
}

#[derive(Deserialize)]
struct Pipeline {
    id: String,
    #[serde(default)]
    vcs: Option<Vcs>,
    #[serde(default)]
    trigger_parameters: Option<TriggerParameters>,
}

impl Pipeline {
    /// The commit and branch, from `vcs` (GitHub OAuth, Bitbucket Cloud) or else from
    /// `trigger_parameters.git`.
    fn commit(&self) -> (Option<String>, Option<String>) {
        let git = self
            .trigger_parameters
            .as_ref()
            .and_then(|t| t.git.as_ref());
        let nonempty = |v: Option<&String>| v.filter(|s| !s.is_empty()).cloned();
        let vcs = self.vcs.as_ref();
        (
            nonempty(vcs.and_then(|v| v.revision.as_ref()))
                .or_else(|| nonempty(git.and_then(|g| g.checkout_sha.as_ref()))),
            nonempty(vcs.and_then(|v| v.branch.as_ref()))
                .or_else(|| nonempty(git.and_then(|g| g.branch.as_ref()))),
        )
    }
}

#[derive(Deserialize)]
struct Payload {
    id: String,
    r#type: String,
    project: Project,
    pipeline: Pipeline,
    workflow: Named,
    #[serde(default)]
    job: Option<Named>,
}

pub(super) fn failed_status(s: &str) -> bool {
    matches!(s, "failed" | "error" | "infrastructure_fail" | "timedout")
}

/// Parses one delivery; the event type is the payload's `type`.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    let p: Payload = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("CircleCI webhook: {e}")))?;
    if p.id.trim().is_empty() || p.workflow.name.is_empty() {
        return Err(ParseError::Shape(
            "id and workflow.name must not be empty".into(),
        ));
    }
    let run_id = format!("{}/{}", p.pipeline.id, p.workflow.name);
    let (sha, branch) = p.pipeline.commit();
    let event = |jobs: Vec<FailedJob>, started: Option<&str>, stopped: Option<&str>| {
        Parsed::Failure(Box::new(FailureEvent {
            platform: Some(Platform::Circleci),
            repository: p.project.slug.clone(),
            run_id: run_id.clone(),
            attempt: 1,
            workflow: p.workflow.name.clone(),
            head_sha: sha.clone(),
            branch: branch.clone(),
            url: p.workflow.url.clone(),
            jobs,
            started_at_ms: parse_time_ms(started),
            finished_at_ms: parse_time_ms(stopped),
            ..Default::default()
        }))
    };
    let parsed = match p.r#type.as_str() {
        "workflow-completed" => match p.workflow.status.as_deref().unwrap_or("") {
            "success" => Parsed::Success {
                repository: p.project.slug.clone(),
                workflow: None,
                run_id: run_id.clone(),
                attempt: OUTCOME_ATTEMPT,
                finished_at_ms: parse_time_ms(p.workflow.stopped_at.as_deref()),
                commit: None,
            },
            s if failed_status(s) => event(
                vec![],
                p.workflow.created_at.as_deref(),
                p.workflow.stopped_at.as_deref(),
            ),
            s => Parsed::Ignored(format!("workflow status {s:?}")),
        },
        "job-completed" => {
            let j = p
                .job
                .as_ref()
                .ok_or_else(|| ParseError::Shape("job-completed without job".into()))?;
            match j.status.as_deref().unwrap_or("") {
                s if failed_status(s) => event(
                    vec![FailedJob {
                        id: j.id.clone().unwrap_or_default(),
                        name: j.name.clone(),
                        ..Default::default()
                    }],
                    j.started_at.as_deref(),
                    j.stopped_at.as_deref(),
                ),
                s => Parsed::Ignored(format!(
                    "job status {s:?}; workflow-completed tells outcomes"
                )),
            }
        }
        other => Parsed::Ignored(format!("event type {other:?} is not handled")),
    };
    Ok(Delivery::new(p.id, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(kind: &str, status: &str) -> Vec<u8> {
        json!({
            "id": "3888f21b-eaa7-38e3-8f3d-75a63bba8895", "type": kind,
            "happened_at": "2026-11-23T10:04:00.000Z",
            "webhook": {"id": "cf8c4fdd-0587-4da1-b4ca-4846e9640af9", "name": "pipeguard"},
            "project": {"id": "84996744-a854-4f5e-aea3-04e2851dc1d2", "name": "api", "slug": "gh/acme/api"},
            "organization": {"id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c", "name": "acme"},
            "workflow": {"id": "fda08377-fe7e-46b1-8992-3a7aaecac9c3", "name": "build-test",
                         "created_at": "2026-11-23T10:00:00.000Z", "stopped_at": "2026-11-23T10:04:00.000Z",
                         "url": "https://app.circleci.com/pipelines/github/acme/api/130/workflows/fda08377",
                         "status": status},
            "pipeline": {"id": "1285fe1d-d3a6-44fc-8886-8979558254c4", "number": 130,
                         "created_at": "2026-11-23T09:59:59.000Z",
                         "trigger": {"type": "webhook"},
                         "vcs": {"provider_name": "github", "revision": "1dc6aa69", "branch": "main",
                                 "origin_repository_url": "https://github.com/acme/api"}},
            "job": {"id": "8bd26f7b-ea4b-4ed8-b3ad-7e0ef1b9c8e4", "name": "test", "number": 136,
                    "started_at": "2026-11-23T10:00:05.000Z", "stopped_at": "2026-11-23T10:03:50.000Z",
                    "status": status}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_workflow_and_job_are_one_run() {
        let w = parse_delivery(&payload("workflow-completed", "failed")).unwrap();
        let j = parse_delivery(&payload("job-completed", "failed")).unwrap();
        let (Parsed::Failure(w), Parsed::Failure(j)) = (w.parsed, j.parsed) else {
            panic!()
        };
        assert_eq!(w.run_id, "1285fe1d-d3a6-44fc-8886-8979558254c4/build-test");
        assert_eq!(
            (w.run_id.as_str(), w.attempt),
            (j.run_id.as_str(), j.attempt)
        );
        assert_eq!(w.repository, "gh/acme/api");
        assert_eq!(j.jobs[0].name, "test");
        assert_eq!(w.head_sha.as_deref(), Some("1dc6aa69"));
    }

    #[test]
    fn success_and_other_statuses() {
        let d = parse_delivery(&payload("workflow-completed", "success")).unwrap();
        assert!(matches!(
            d.parsed,
            Parsed::Success {
                attempt: OUTCOME_ATTEMPT,
                ..
            }
        ));
        assert_eq!(d.id, "3888f21b-eaa7-38e3-8f3d-75a63bba8895");
        assert!(matches!(
            parse_delivery(&payload("workflow-completed", "canceled"))
                .unwrap()
                .parsed,
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_delivery(&payload("job-completed", "success"))
                .unwrap()
                .parsed,
            Parsed::Ignored(_)
        ));
    }

    /// A GitLab project's delivery, shaped as CircleCI's webhook reference shows it for GitLab,
    /// GitHub App and Bitbucket Data Center: no `vcs`, the commit in
    /// `trigger_parameters.git`.
    #[test]
    fn gitlab_and_github_app_projects_name_their_commit_in_trigger_parameters() {
        let mut v: Value = serde_json::from_slice(&payload("job-completed", "failed")).unwrap();
        v["project"]["slug"] = json!("circleci/4e7nKd6JXmMVGoDsHf1jqm/XL5BXkMYLSVp2dFphbE4f8");
        v["pipeline"] = json!({
            "id": "41b2d9e3-7ac2-4f3a-a7d4-b2f8e9a0c1d5", "number": 12,
            "created_at": "2026-11-23T09:59:59.000Z",
            "trigger": {"type": "gitlab"},
            "trigger_parameters": {
                "gitlab": {"type": "push", "ref": "refs/heads/feature/login", "branch": "feature/login",
                           "checkout_sha": "8f4c1e2a9b7d", "project_id": "48109207",
                           "repo_name": "api", "web_url": "https://gitlab.com/acme/api",
                           "commit_title": "Fix login", "is_fork_merge_request": false},
                "git": {"tag": "", "checkout_sha": "8f4c1e2a9b7d", "ref": "refs/heads/feature/login",
                        "branch": "feature/login", "checkout_url": "https://gitlab.com/acme/api.git",
                        "commit_sha": "8f4c1e2a9b7d"},
                "circleci": {"event_time": "2026-11-23T09:59:58.000Z", "event_type": "push",
                             "trigger_type": "gitlab", "actor_id": "a0b3b6d9-5e7d-4a63-8f8a-3b2a1e4d5c6f"}
            }
        });
        let d = parse_delivery(v.to_string().as_bytes()).unwrap();
        let Parsed::Failure(ev) = d.parsed else {
            panic!("{:?}", d.parsed)
        };
        assert_eq!(ev.head_sha.as_deref(), Some("8f4c1e2a9b7d"));
        assert_eq!(ev.branch.as_deref(), Some("feature/login"));
        assert_eq!(
            ev.repository,
            "circleci/4e7nKd6JXmMVGoDsHf1jqm/XL5BXkMYLSVp2dFphbE4f8"
        );
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_delivery(b"{"), Err(ParseError::Json(_))));
        assert!(matches!(parse_delivery(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_delivery(br#"{"id":"x","type":"workflow-completed"}"#),
            Err(ParseError::Shape(_))
        ));
    }
}
