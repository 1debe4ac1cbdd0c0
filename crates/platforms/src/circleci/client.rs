//! API v2 (pipelines, workflows, jobs, reruns) and v1.1 (step output).

use super::webhook::failed_status;
use crate::api::{encode, ApiClient, Auth, HttpOptions, Paging};
use crate::settings::Section;
use crate::webhook::{slug_char, valid_path};
use crate::{parse_time_ms, require, Ci, JobLog, PlatformError, Rerun, RunState, OUTCOME_ATTEMPT};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

const NO_TOKEN: &str =
    "PIPEGUARD_CIRCLECI_TOKEN is not set; reruns and new pipelines need a personal API token";

const PAGES: Paging = Paging::BodyToken {
    items: "items",
    token: "next_page_token",
    param: "page-token",
};

pub struct CircleciClient {
    api: ApiClient,
}

#[derive(Deserialize)]
struct ApiWorkflow {
    id: String,
    name: String,
    status: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    stopped_at: Option<String>,
}

#[derive(Deserialize)]
struct ApiJob {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    job_number: Option<u64>,
    name: String,
    status: String,
}

#[derive(Deserialize)]
struct V1Build {
    #[serde(default)]
    steps: Vec<V1Step>,
}

#[derive(Deserialize)]
struct V1Step {
    #[serde(default)]
    actions: Vec<V1Action>,
}

#[derive(Deserialize)]
struct V1Action {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    failed: Option<bool>,
    #[serde(default)]
    output_url: Option<String>,
}

/// The project slug as path segments (`gh/acme/api`), each checked and encoded.
fn slug_path(slug: &str) -> Result<String, PlatformError> {
    if !valid_path(slug, 3..=3, slug_char) {
        return Err(PlatformError::Permanent(format!(
            "{slug:?} is not a CircleCI project slug"
        )));
    }
    Ok(slug.split('/').map(encode).collect::<Vec<_>>().join("/"))
}

/// `gh/org/repo` → `github/org/repo`, the form API v1.1 takes.
fn v1_project(slug: &str) -> Result<String, PlatformError> {
    let path = slug_path(slug)?;
    Ok(match path.split_once('/') {
        Some(("gh", rest)) => format!("github/{rest}"),
        Some(("bb", rest)) => format!("bitbucket/{rest}"),
        _ => path,
    })
}

/// Pipeline parameters are typed: `true`/`false` and integers are sent as such, so a
/// boolean or integer parameter accepts them.
pub fn typed_parameters(inputs: &[(String, String)]) -> serde_json::Map<String, Value> {
    inputs
        .iter()
        .map(|(k, v)| {
            let value = match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(v.clone())),
            };
            (k.clone(), value)
        })
        .collect()
}

/// Projects of GitHub App, GitLab and Bitbucket Data Center organizations have
/// `circleci/{org-id}/{project-id}` slugs. `POST /api/v2/project/{slug}/pipeline` is documented
/// for GitHub OAuth and Bitbucket Cloud projects only; its successor `…/pipeline/run` needs a
/// pipeline definition id that deliveries do not carry, and does not exist for GitLab.
fn triggers_pipelines(slug: &str) -> bool {
    !slug.starts_with("circleci/")
}

const NO_TRIGGER: &str = "CircleCI has no API to trigger a pipeline with parameters for this \
     project (GitHub App, GitLab or Bitbucket Data Center integration): only reruns of the \
     workflow are offered";

impl CircleciClient {
    pub fn new(s: &Section, http: &HttpOptions) -> CircleciClient {
        let auth = s
            .token
            .clone()
            .map(|t| Auth::Header("Circle-Token", t))
            .unwrap_or(Auth::None);
        CircleciClient {
            api: ApiClient::new(&s.api_url, auth, http.clone()),
        }
    }

    /// The workflows of the event's pipeline with the event's name, oldest first.
    async fn workflows(&self, ev: &FailureEvent) -> Result<Vec<ApiWorkflow>, PlatformError> {
        let (pipeline, name) = ev.run_id.split_once('/').ok_or_else(|| {
            PlatformError::Permanent(format!("run id {:?} is not pipeline/workflow", ev.run_id))
        })?;
        let path = format!("/api/v2/pipeline/{}/workflow", encode(pipeline));
        let all: Vec<ApiWorkflow> = self.api.get_all("list workflows", &path, PAGES).await?;
        let mut w: Vec<ApiWorkflow> = all.into_iter().filter(|w| w.name == name).collect();
        w.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(w)
    }

    async fn latest(&self, ev: &FailureEvent) -> Result<(ApiWorkflow, u32), PlatformError> {
        let mut w = self.workflows(ev).await?;
        let n = w.len() as u32;
        let last = w.pop().ok_or_else(|| {
            PlatformError::Permanent(format!("no workflow {:?} in the pipeline", ev.workflow))
        })?;
        Ok((last, n))
    }

    /// The output of a job's failed steps, as API v1.1 gives it (one JSON array per action).
    async fn job_output(&self, ev: &FailureEvent, number: u64) -> Result<Vec<u8>, PlatformError> {
        let path = format!("/api/v1.1/project/{}/{number}", v1_project(&ev.repository)?);
        // API v1.1 does not know the projects of GitHub App, GitLab and Bitbucket Data Center
        // organizations: their failures are diagnosed without a log, like an expired one.
        let b: V1Build = match self.api.get_json("job details", &path).await {
            Ok(b) => b,
            Err(PlatformError::Refused { message, .. }) => {
                tracing::warn!(job = number, "log unavailable: {message}");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut log = Vec::new();
        for a in b.steps.iter().flat_map(|s| &s.actions) {
            let failed = a.failed == Some(true) || a.status.as_deref().is_some_and(failed_status);
            let Some(url) = a.output_url.as_deref().filter(|_| failed) else {
                continue;
            };
            // Output URLs are pre-signed and elsewhere: the token is not sent there.
            let messages: Value = match self.api.get_elsewhere("step output", url).await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(PlatformError::Refused { message, .. }) => {
                    tracing::warn!(job = number, step = %a.name, "output unavailable: {message}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for m in messages.as_array().into_iter().flatten() {
                if let Some(text) = m["message"].as_str() {
                    log.extend_from_slice(text.as_bytes());
                    if !text.ends_with('\n') {
                        log.push(b'\n');
                    }
                }
            }
        }
        Ok(log)
    }

    /// Triggers a new pipeline on the event's branch with pipeline `parameters` (a resource
    /// class, a cache-key version): the scaling and cache strategies' building block.
    pub async fn new_pipeline(
        &self,
        ev: &FailureEvent,
        parameters: &serde_json::Map<String, Value>,
    ) -> Result<Rerun, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        require(triggers_pipelines(&ev.repository), NO_TRIGGER)?;
        let branch = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failure names no branch to trigger a pipeline on".into())
        })?;
        let body = json!({"branch": branch, "parameters": parameters});
        let path = format!("/api/v2/project/{}/pipeline", slug_path(&ev.repository)?);
        let r: Value = self
            .api
            .call_once("trigger pipeline", Method::POST, &path, Some(&body))
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        // Runs are keyed by pipeline and workflow name, as webhooks name them.
        let new_run_id = r["id"].as_str().map(|id| format!("{id}/{}", ev.workflow));
        Ok(Rerun {
            detail: format!("POST {} -> pipeline {}", self.api.url(&path), r["number"]),
            new_run_id,
            ..Default::default()
        })
    }
}

#[async_trait]
impl Ci for CircleciClient {
    fn platform(&self) -> Platform {
        Platform::Circleci
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.api.has_credentials(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let (w, attempt) = self.latest(ev).await?;
        let finished = parse_time_ms(w.stopped_at.as_deref());
        Ok(match w.status.as_str() {
            "success" => RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished,
            },
            "failed" | "error" | "canceled" | "unauthorized" | "not_run" => RunState::Completed {
                attempt,
                success: false,
                finished_at_ms: finished,
            },
            // running, failing, on_hold: not done.
            _ => RunState::InProgress { attempt },
        })
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let (w, _) = self.latest(ev).await?;
        let path = format!("/api/v2/workflow/{}/job", encode(&w.id));
        let jobs: Vec<ApiJob> = self.api.get_all("list workflow jobs", &path, PAGES).await?;
        let mut out = Vec::new();
        for j in jobs.into_iter().filter(|j| failed_status(&j.status)) {
            let log = match j.job_number {
                Some(n) => self.job_output(ev, n).await?,
                None => Vec::new(),
            };
            out.push(JobLog {
                job: FailedJob {
                    id: j.id.unwrap_or_default(),
                    name: j.name,
                    ..Default::default()
                },
                log,
            });
        }
        Ok(out)
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let (w, _) = self.latest(ev).await?;
        let ids: Vec<&str> = jobs
            .iter()
            .map(|j| j.id.as_str())
            .filter(|i| !i.is_empty())
            .collect();
        // Rerunning named jobs keeps the genuine failures out of the new workflow.
        let body = if all_failed || ids.is_empty() {
            json!({"from_failed": true})
        } else {
            json!({"jobs": ids})
        };
        let path = format!("/api/v2/workflow/{}/rerun", encode(&w.id));
        self.api
            .call_once("rerun workflow", Method::POST, &path, Some(&body))
            .await?;
        Ok(format!("POST {} {body}", self.api.url(&path)))
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    fn can_rerun_with_for(&self, ev: &FailureEvent) -> bool {
        self.can_rerun_with() && triggers_pipelines(&ev.repository)
    }

    /// A workflow rerun keeps its pipeline parameters, so a new pipeline carries them.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_pipeline(ev, &typed_parameters(inputs)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(uri: &str) -> CircleciClient {
        CircleciClient::new(
            &Section {
                api_url: uri.to_string(),
                token: Some("ct".into()),
                ..Default::default()
            },
            &HttpOptions {
                tries: 1,
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        )
    }

    #[test]
    fn v1_project_paths() {
        assert_eq!(v1_project("gh/acme/api").unwrap(), "github/acme/api");
        assert_eq!(v1_project("bb/acme/api").unwrap(), "bitbucket/acme/api");
        assert_eq!(v1_project("circleci/x/y").unwrap(), "circleci/x/y");
        assert!(v1_project("gh/../x").is_err());
    }

    #[tokio::test]
    async fn workflow_jobs_are_read_across_pages() {
        use wiremock::matchers::{method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/pipeline/p1/workflow"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "w1", "name": "build", "status": "failed"}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/workflow/w1/job"))
            .and(query_param("page-token", "next+1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "j2", "name": "late", "status": "failed"}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/workflow/w1/job"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "j1", "name": "early", "status": "success"}],
                "next_page_token": "next+1"
            })))
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let ev = FailureEvent {
            repository: "gh/acme/api".into(),
            run_id: "p1/build".into(),
            ..Default::default()
        };
        let logs = c.failed_logs(&ev).await.unwrap();
        let names: Vec<&str> = logs.iter().map(|l| l.job.name.as_str()).collect();
        assert_eq!(names, ["late"]);
    }

    #[tokio::test]
    async fn new_pipeline_with_parameters() {
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/project/gh/acme/api/pipeline"))
            .and(header("circle-token", "ct"))
            .and(body_json(
                json!({"branch": "main", "parameters": {"resource_class": "large"}}),
            ))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({"id": "p", "number": 131})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let ev = FailureEvent {
            repository: "gh/acme/api".into(),
            workflow: "build".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let mut params = serde_json::Map::new();
        params.insert("resource_class".into(), json!("large"));
        let done = c.new_pipeline(&ev, &params).await.unwrap();
        assert_eq!(done.new_run_id.as_deref(), Some("p/build"));
        assert!(done.detail.ends_with("pipeline 131"), "{}", done.detail);
        mock.verify().await;
    }

    /// A GitLab project (slug `circleci/…`): API v1.1 answers 404 for its job, so the failure
    /// goes on without a log instead of failing; and no new pipeline with parameters is
    /// offered, nor triggered through the GitHub-OAuth-only endpoint.
    #[tokio::test]
    async fn gitlab_projects_have_no_v1_log_and_no_parameterised_pipeline() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        const SLUG: &str = "circleci/4e7nKd6JXmMVGoDsHf1jqm/XL5BXkMYLSVp2dFphbE4f8";
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/pipeline/p1/workflow"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "w1", "name": "build", "status": "failed"}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/workflow/w1/job"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [{"id": "j1", "name": "test", "status": "failed", "job_number": 7}],
                "next_page_token": null
            })))
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v1.1/project/{SLUG}/7")))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"message": "Project not found"})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let ev = FailureEvent {
            repository: SLUG.into(),
            run_id: "p1/build".into(),
            workflow: "build".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let logs = c.failed_logs(&ev).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].job.name, "test");
        assert!(logs[0].log.is_empty());

        assert!(c.can_rerun_with());
        assert!(!c.can_rerun_with_for(&ev));
        let gh = FailureEvent {
            repository: "gh/acme/api".into(),
            ..ev.clone()
        };
        assert!(c.can_rerun_with_for(&gh));
        let r = c.rerun_with(&ev, None, &[("a".into(), "1".into())]).await;
        assert!(matches!(r, Err(PlatformError::NotConfigured(_))), "{r:?}");
        mock.verify().await;
        let triggered = mock.received_requests().await.unwrap();
        assert!(triggered.iter().all(|r| r.method.as_str() == "GET"));
    }
}
