//! GitLab's Pipeline Hook and Job Hook deliveries.

use crate::{parse_time_ms, Command, CommandPlace, ParseError, Parsed, Verb, OUTCOME_ATTEMPT};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::runners::RunnerJob;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Project {
    #[serde(default)]
    path_with_namespace: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Env {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct PipelineAttrs {
    id: u64,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    status: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// The `runner` object of Job Hooks, Pipeline Hook builds and the jobs API: `id` is what
/// `PUT /runners/:id` pauses; `description` is the name people gave it.
#[derive(Deserialize, Clone)]
pub(super) struct GlRunner {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    description: Option<String>,
}

impl GlRunner {
    pub(super) fn runner(r: Option<&GlRunner>) -> Option<Runner> {
        let r = r?;
        Runner::new(r.description.as_deref(), r.id.map(|i| i.to_string()))
    }
}

#[derive(Deserialize)]
struct Build {
    id: u64,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    allow_failure: bool,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    environment: Option<Env>,
    #[serde(default)]
    runner: Option<GlRunner>,
}

#[derive(Deserialize)]
struct PipelinePayload {
    object_attributes: PipelineAttrs,
    project: Project,
    #[serde(default)]
    builds: Vec<Build>,
}

#[derive(Deserialize)]
struct JobRepo {
    #[serde(default)]
    homepage: Option<String>,
}

#[derive(Deserialize)]
struct LegacyCommit {
    #[serde(default)]
    id: Option<u64>,
}

#[derive(Deserialize)]
struct JobPayload {
    build_id: u64,
    #[serde(default)]
    build_name: String,
    #[serde(default)]
    build_stage: Option<String>,
    build_status: String,
    #[serde(default)]
    build_allow_failure: bool,
    #[serde(default)]
    build_failure_reason: Option<String>,
    #[serde(default)]
    build_started_at: Option<String>,
    #[serde(default)]
    build_finished_at: Option<String>,
    #[serde(default)]
    retries_count: Option<u32>,
    /// Absent from the legacy Build Hook of older GitLab, which names the pipeline in
    /// `commit.id`.
    #[serde(default)]
    pipeline_id: Option<u64>,
    #[serde(default)]
    commit: Option<LegacyCommit>,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    project: Option<Project>,
    #[serde(default)]
    repository: Option<JobRepo>,
    #[serde(default)]
    environment: Option<Env>,
    #[serde(default)]
    runner: Option<GlRunner>,
}

/// `https://gitlab.example.com/group/sub/project` → `group/sub/project`.
fn path_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (_, path) = rest.split_once('/')?;
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

fn project_path(p: Option<&Project>, homepage: Option<&str>) -> Option<String> {
    p.and_then(|p| {
        p.path_with_namespace
            .clone()
            .or_else(|| p.web_url.as_deref().and_then(path_from_url))
    })
    .or_else(|| homepage.and_then(path_from_url))
}

/// Parses one delivery given its `X-Gitlab-Event` name.
pub fn parse_event(event: &str, body: &[u8]) -> Result<Parsed, ParseError> {
    parse_with_runners(event, body).map(|(parsed, _)| parsed)
}

/// A delivery's meaning and, from the same parse, the finished jobs it names with their
/// runners (a Job Hook's job, a Pipeline Hook's builds).
pub(super) fn parse_with_runners(
    event: &str,
    body: &[u8],
) -> Result<(Parsed, Vec<RunnerJob>), ParseError> {
    let mut seen = vec![];
    let parsed = parse_counting(event, body, &mut seen)?;
    Ok((parsed, seen))
}

fn parse_counting(
    event: &str,
    body: &[u8],
    seen: &mut Vec<RunnerJob>,
) -> Result<Parsed, ParseError> {
    let shape = |e: serde_json::Error| ParseError::Shape(format!("{event}: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    match event {
        "Pipeline Hook" => {
            let p: PipelinePayload = serde_json::from_value(value).map_err(shape)?;
            *seen = pipeline_runners(&p);
            let a = p.object_attributes;
            let repository = project_path(Some(&p.project), None).ok_or_else(|| {
                ParseError::Shape("Pipeline Hook: project.path_with_namespace is missing".into())
            })?;
            match a.status.as_str() {
                "success" => Ok(Parsed::Success {
                    repository,
                    // A failure's workflow is its ref: the green run learned is the same job's.
                    workflow: a.r#ref.clone(),
                    run_id: a.id.to_string(),
                    attempt: OUTCOME_ATTEMPT,
                    finished_at_ms: parse_time_ms(a.finished_at.as_deref()),
                    commit: crate::OnCommit::of(a.r#ref.as_ref(), a.sha.as_ref()),
                }),
                "failed" => {
                    // Jobs allowed to fail did not fail the pipeline: not ours to heal.
                    let jobs = p
                        .builds
                        .into_iter()
                        .filter(|b| b.status == "failed" && !b.allow_failure)
                        .map(|b| FailedJob {
                            id: b.id.to_string(),
                            name: b.name,
                            stage: b.stage,
                            environment: b.environment.and_then(|e| e.name),
                            platform_reason: b.failure_reason,
                            runner: GlRunner::runner(b.runner.as_ref()),
                        })
                        .collect();
                    Ok(Parsed::Failure(Box::new(FailureEvent {
                        platform: Some(Platform::Gitlab),
                        repository,
                        run_id: a.id.to_string(),
                        attempt: 1,
                        workflow: a.r#ref.clone().unwrap_or_default(),
                        head_sha: a.sha,
                        branch: a.r#ref,
                        url: a.url,
                        jobs,
                        started_at_ms: parse_time_ms(a.created_at.as_deref()),
                        finished_at_ms: parse_time_ms(a.finished_at.as_deref()),
                        ..Default::default()
                    })))
                }
                other => Ok(Parsed::Ignored(format!("pipeline status {other:?}"))),
            }
        }
        "Job Hook" | "Build Hook" => {
            let j: JobPayload = serde_json::from_value(value).map_err(shape)?;
            *seen = job_runner(&j).into_iter().collect();
            if j.build_status != "failed" || j.build_allow_failure {
                return Ok(Parsed::Ignored(format!(
                    "job status {:?}{}; the Pipeline Hook tells outcomes",
                    j.build_status,
                    if j.build_allow_failure {
                        " (allowed to fail)"
                    } else {
                        ""
                    }
                )));
            }
            let repository = project_path(
                j.project.as_ref(),
                j.repository.as_ref().and_then(|r| r.homepage.as_deref()),
            )
            .ok_or_else(|| {
                ParseError::Shape("Job Hook: no project path (project or repository)".into())
            })?;
            let pipeline = j
                .pipeline_id
                .or_else(|| j.commit.as_ref().and_then(|c| c.id))
                .ok_or_else(|| {
                    ParseError::Shape("Job Hook: no pipeline_id (nor commit.id)".into())
                })?;
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Gitlab),
                repository,
                run_id: pipeline.to_string(),
                // Stays below OUTCOME_ATTEMPT whatever a sender claims.
                attempt: j
                    .retries_count
                    .unwrap_or(0)
                    .saturating_add(1)
                    .min(OUTCOME_ATTEMPT - 1),
                workflow: j.r#ref.clone().unwrap_or_default(),
                head_sha: j.sha,
                branch: j.r#ref,
                jobs: vec![FailedJob {
                    id: j.build_id.to_string(),
                    name: j.build_name,
                    stage: j.build_stage,
                    environment: j.environment.and_then(|e| e.name),
                    platform_reason: j.build_failure_reason,
                    runner: GlRunner::runner(j.runner.as_ref()),
                }],
                started_at_ms: parse_time_ms(j.build_started_at.as_deref()),
                finished_at_ms: parse_time_ms(j.build_finished_at.as_deref()),
                job_event: true,
                ..Default::default()
            })))
        }
        "Note Hook" => {
            let n: NotePayload = serde_json::from_value(value).map_err(shape)?;
            Ok(note_command(n))
        }
        other => Ok(Parsed::Ignored(format!("event {other:?} is not handled"))),
    }
}

#[derive(Deserialize)]
struct NotePayload {
    user: NoteUser,
    project: Project,
    object_attributes: NoteAttributes,
    #[serde(default)]
    merge_request: Option<NoteMergeRequest>,
    #[serde(default)]
    commit: Option<NoteCommit>,
}

#[derive(Deserialize)]
struct NoteUser {
    id: u64,
    username: String,
}

#[derive(Deserialize)]
struct NoteAttributes {
    note: String,
    noteable_type: String,
    #[serde(default)]
    commit_id: Option<String>,
}

#[derive(Deserialize)]
struct NoteMergeRequest {
    iid: u64,
    #[serde(default)]
    last_commit: Option<NoteCommit>,
}

#[derive(Deserialize)]
struct NoteCommit {
    id: String,
}

/// The command of a note whose first line is `/pipeguard approve|reject|retry`, on a merge
/// request (its head commit names the session) or on a commit.
fn note_command(n: NotePayload) -> Parsed {
    let first = n.object_attributes.note.lines().next().unwrap_or("").trim();
    let mut words = first.split_whitespace();
    let verb = match (words.next(), words.next().and_then(Verb::parse)) {
        (Some("/pipeguard"), Some(v)) => v,
        _ => return Parsed::Ignored("a note with no /pipeguard command".into()),
    };
    let place = match n.object_attributes.noteable_type.as_str() {
        "MergeRequest" => n.merge_request.and_then(|mr| {
            let sha = mr.last_commit?.id;
            Some(CommandPlace::MergeRequest { iid: mr.iid, sha })
        }),
        "Commit" => n
            .commit
            .map(|c| c.id)
            .or(n.object_attributes.commit_id)
            .map(|sha| CommandPlace::Commit { sha }),
        _ => None,
    };
    let (Some(place), Some(repository)) = (place, project_path(Some(&n.project), None)) else {
        return Parsed::Ignored("a /pipeguard note not on a merge request or commit".into());
    };
    Parsed::Command(Box::new(Command {
        verb,
        user: n.user.username,
        user_id: Some(n.user.id),
        repository,
        place,
    }))
}

/// A finished job with its runner; `None` for jobs not finished or without a runner
/// (skipped, never picked up).
fn finished_job(
    runner: Option<&GlRunner>,
    id: u64,
    repository: &str,
    status: &str,
) -> Option<RunnerJob> {
    let runner = GlRunner::runner(runner).filter(|_| matches!(status, "success" | "failed"))?;
    Some(RunnerJob {
        runner,
        job_id: id.to_string(),
        repository: repository.to_string(),
        failed: status == "failed",
    })
}

/// A Pipeline Hook's finished builds with their runners; jobs allowed to fail are not counted.
fn pipeline_runners(p: &PipelinePayload) -> Vec<RunnerJob> {
    let Some(repo) = project_path(Some(&p.project), None) else {
        return vec![];
    };
    p.builds
        .iter()
        .filter(|b| !b.allow_failure)
        .filter_map(|b| finished_job(b.runner.as_ref(), b.id, &repo, &b.status))
        .collect()
}

/// A Job Hook's job with its runner, once finished.
fn job_runner(j: &JobPayload) -> Option<RunnerJob> {
    let homepage = j.repository.as_ref().and_then(|r| r.homepage.as_deref());
    let repo = project_path(j.project.as_ref(), homepage)?;
    let status = if j.build_allow_failure {
        ""
    } else {
        &j.build_status
    };
    finished_job(j.runner.as_ref(), j.build_id, &repo, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(status: &str) -> Vec<u8> {
        json!({
            "object_kind": "pipeline",
            "object_attributes": {"id": 31, "ref": "main", "sha": "bcbb5ec", "status": status,
                "created_at": "2016-08-12 15:23:28 UTC", "finished_at": "2016-08-12 15:26:29 UTC"},
            "project": {"id": 1, "path_with_namespace": "gitlab-org/gitlab-test"},
            "builds": [
                {"id": 380, "stage": "deploy", "name": "production", "status": "failed",
                 "allow_failure": false, "failure_reason": "script_failure",
                 "environment": {"name": "production", "action": "start"}},
                {"id": 377, "stage": "test", "name": "lint", "status": "failed",
                 "allow_failure": true, "failure_reason": "script_failure"},
                {"id": 376, "stage": "build", "name": "build", "status": "success"}
            ]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_pipeline_keeps_reason_stage_and_environment() {
        let Parsed::Failure(ev) = parse_event("Pipeline Hook", &pipeline("failed")).unwrap() else {
            panic!("expected a failure")
        };
        assert_eq!(ev.repository, "gitlab-org/gitlab-test");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("31", 1));
        assert_eq!(ev.jobs.len(), 1, "allow_failure jobs are not failures");
        assert!(!ev.job_event);
        let j = &ev.jobs[0];
        assert_eq!(j.platform_reason.as_deref(), Some("script_failure"));
        assert_eq!(j.stage.as_deref(), Some("deploy"));
        assert_eq!(j.environment.as_deref(), Some("production"));
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            181_000
        );
    }

    #[test]
    fn success_is_an_outcome_and_running_is_ignored() {
        assert!(matches!(
            parse_event("Pipeline Hook", &pipeline("success")).unwrap(),
            Parsed::Success { attempt: OUTCOME_ATTEMPT, ref run_id, ref workflow, .. }
                if run_id == "31" && workflow.as_deref() == Some("main")
        ));
        assert!(matches!(
            parse_event("Pipeline Hook", &pipeline("running")).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_event("Push Hook", b"{}").unwrap(),
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn failed_job_hook_counts_retries_as_attempts() {
        let body = json!({
            "object_kind": "build", "build_id": 9, "build_name": "test", "build_stage": "test",
            "build_status": "failed", "build_failure_reason": "runner_system_failure",
            "retries_count": 1, "pipeline_id": 31, "ref": "main",
            "repository": {"homepage": "https://gitlab.example.com/grp/sub/proj"}
        });
        let Parsed::Failure(ev) = parse_event("Job Hook", body.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(ev.repository, "grp/sub/proj");
        assert_eq!(ev.attempt, 2);
        assert!(
            ev.job_event,
            "one job's failure, the pipeline may still run"
        );
        assert_eq!(
            ev.jobs[0].platform_reason.as_deref(),
            Some("runner_system_failure")
        );
    }

    /// The `runner` object (documented Job Hook and Pipeline Hook examples: `id`,
    /// `description`) names the job's runner; builds without one are not counted.
    #[test]
    fn runners_are_read_from_job_and_pipeline_hooks() {
        let mut body: Value = serde_json::from_slice(&pipeline("failed")).unwrap();
        body["builds"][0]["runner"] = json!({"id": 380987, "description": "shared-runners-manager-6.gitlab.com",
            "active": true, "is_shared": true, "runner_type": "instance_type", "tags": ["linux"]});
        body["builds"][2]["runner"] = json!({"id": 42, "description": ""});
        let bytes = body.to_string().into_bytes();
        let Parsed::Failure(ev) = parse_event("Pipeline Hook", &bytes).unwrap() else {
            panic!("expected a failure")
        };
        let r = ev.jobs[0].runner.clone().unwrap();
        assert_eq!(
            (r.name.as_str(), r.id.as_deref()),
            ("shared-runners-manager-6.gitlab.com", Some("380987"))
        );
        let (_, seen) = parse_with_runners("Pipeline Hook", &bytes).unwrap();
        let seen: Vec<(&str, &str, bool)> = seen
            .iter()
            .map(|j| (j.runner.name.as_str(), j.job_id.as_str(), j.failed))
            .collect();
        assert_eq!(
            seen,
            [("shared-runners-manager-6.gitlab.com", "380", true), ("runner-42", "376", false)],
            "the allowed-to-fail job is not counted; a runner without a description is named by its id"
        );
        let job = json!({"object_kind": "build", "build_id": 9, "build_status": "success",
            "pipeline_id": 31, "project": {"path_with_namespace": "grp/proj"},
            "runner": {"id": 7, "description": "gl-7"}});
        let (_, seen) = parse_with_runners("Job Hook", job.to_string().as_bytes()).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].repository.as_str(), seen[0].failed),
            ("grp/proj", false)
        );
        let running = json!({"build_id": 9, "build_status": "running", "pipeline_id": 31,
            "project": {"path_with_namespace": "grp/proj"}, "runner": {"id": 7}});
        let (_, seen) = parse_with_runners("Job Hook", running.to_string().as_bytes()).unwrap();
        assert!(seen.is_empty());
    }

    /// Older GitLab's Build Hook (`object_kind: build`, the go-gitlab `build.json` shape):
    /// no `pipeline_id`, the pipeline in `commit.id`.
    #[test]
    fn legacy_build_hook_names_its_pipeline_in_commit_id() {
        let body = json!({
            "object_kind": "build", "ref": "gitlab-script-trigger", "tag": false,
            "before_sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
            "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
            "build_id": 1977, "build_name": "test", "build_stage": "test",
            "build_status": "failed", "build_created_at": "2021-02-23T02:41:37.886Z",
            "build_started_at": "2021-02-23T02:41:40.000Z",
            "build_finished_at": "2021-02-23T02:43:01.000Z", "build_duration": 81.0,
            "build_allow_failure": false, "build_failure_reason": "script_failure",
            "project_id": 380, "project_name": "gitlab-org/gitlab-test",
            "user": {"id": 42, "name": "User1", "username": "user1", "email": "user1@example.com"},
            "commit": {"id": 2366, "sha": "2293ada6b400935a1378653304eaf6221e0fdb8f",
                       "message": "test\n", "author_name": "User", "author_email": "user@gitlab.com",
                       "status": "failed", "duration": null, "started_at": null, "finished_at": null},
            "repository": {"name": "gitlab_test",
                           "homepage": "http://192.168.64.1:3005/gitlab-org/gitlab-test",
                           "git_http_url": "http://192.168.64.1:3005/gitlab-org/gitlab-test.git",
                           "visibility_level": 20},
            "runner": {"active": true, "is_shared": false, "id": 380987,
                       "description": "shared-runners-manager-6.gitlab.com"},
            "environment": null
        });
        let Parsed::Failure(ev) = parse_event("Build Hook", body.to_string().as_bytes()).unwrap()
        else {
            panic!("expected a failure")
        };
        assert_eq!(ev.repository, "gitlab-org/gitlab-test");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("2366", 1));
        assert_eq!(ev.jobs[0].id, "1977");
        assert_eq!(
            ev.head_sha.as_deref(),
            Some("2293ada6b400935a1378653304eaf6221e0fdb8f")
        );
        let mut none = body.clone();
        none["commit"] = json!(null);
        assert!(matches!(
            parse_event("Build Hook", none.to_string().as_bytes()),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_event("Pipeline Hook", b"{nope"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_event("Pipeline Hook", b"{\"object_attributes\":{}}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_event("Job Hook", b"[1]"),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn shared_fixtures_parse_when_present() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/gitlab/go-gitlab");
        let Some(dir) = crate::require::require_path("GitLab's documented webhooks", dir) else {
            return;
        };
        let p = std::fs::read(dir.join("pipeline.json")).unwrap();
        assert!(matches!(
            parse_event("Pipeline Hook", &p).unwrap(),
            Parsed::Success { ref repository, .. } if repository == "gitlab-org/gitlab-test"
        ));
        // A successful job is not an outcome of the pipeline.
        let j = std::fs::read(dir.join("job.json")).unwrap();
        assert!(matches!(
            parse_event("Job Hook", &j).unwrap(),
            Parsed::Ignored(_)
        ));
        // Flip the documented job to a failure: the project path comes from the homepage.
        let mut v: Value = serde_json::from_slice(&j).unwrap();
        v["build_status"] = json!("failed");
        let Parsed::Failure(ev) = parse_event("Job Hook", v.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(ev.repository, "jsmithy2/release-tools-fake");
        assert_eq!(ev.attempt, 2);
        assert_eq!(ev.jobs[0].environment.as_deref(), Some("production"));
    }
}
