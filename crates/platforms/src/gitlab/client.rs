//! The REST API v4: pipelines, their jobs and traces, retries and new pipelines.

use crate::api::{encode, ApiClient, Auth, HttpOptions, Paging};
use crate::settings::Section;
use crate::webhook::{slug_char, valid_path};
use crate::{
    parse_time_ms, require, Ci, GreenJob, JobLog, LastGreen, PlatformError, Rerun, RunState,
    GREEN_RUNS_LISTED, OUTCOME_ATTEMPT,
};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

const NO_TOKEN: &str =
    "PIPEGUARD_GITLAB_TOKEN is not set; retries and new pipelines need a token with the api scope";

pub struct GitlabClient {
    pub(super) api: ApiClient,
}

#[derive(Deserialize)]
pub(super) struct ApiJob {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) allow_failure: bool,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    runner: Option<super::webhook::GlRunner>,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) started_at: Option<String>,
    #[serde(default)]
    pub(super) finished_at: Option<String>,
}

impl ApiJob {
    /// The job as a failure names it; `environment` comes from a delivery (the API has none).
    pub(super) fn failed(&self, environment: Option<String>) -> FailedJob {
        FailedJob {
            id: self.id.to_string(),
            name: self.name.clone(),
            stage: self.stage.clone(),
            environment,
            platform_reason: self.failure_reason.clone(),
            runner: super::webhook::GlRunner::runner(self.runner.as_ref()),
        }
    }
}

#[derive(Deserialize)]
struct ApiPipeline {
    status: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// How long a pipeline retry waits for a running pipeline before looking again.
const RUNNING_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Pipeline statuses after which nothing runs any more.
fn finished(status: &str) -> bool {
    matches!(status, "success" | "failed" | "canceled" | "skipped")
}

/// `/api/v4/projects/group%2Fproject`, as the API takes project paths.
pub(super) fn project_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    if !valid_path(&ev.repository, 2..=20, slug_char) {
        return Err(PlatformError::Permanent(format!(
            "{:?} is not a GitLab project path",
            ev.repository
        )));
    }
    Ok(format!("/api/v4/projects/{}", encode(&ev.repository)))
}

fn pipeline_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    Ok(format!(
        "{}/pipelines/{}",
        project_api(ev)?,
        encode(&ev.run_id)
    ))
}

impl GitlabClient {
    pub fn new(s: &Section, http: &HttpOptions) -> GitlabClient {
        let auth = s
            .token
            .clone()
            .map(|t| Auth::Header("PRIVATE-TOKEN", t))
            .unwrap_or(Auth::None);
        GitlabClient {
            api: ApiClient::new(&s.api_url, auth, http.clone()),
        }
    }

    async fn pipeline(&self, ev: &FailureEvent) -> Result<ApiPipeline, PlatformError> {
        self.api.get_json("get pipeline", &pipeline_api(ev)?).await
    }

    pub(super) async fn jobs(
        &self,
        ev: &FailureEvent,
        query: &str,
    ) -> Result<Vec<ApiJob>, PlatformError> {
        let path = format!("{}/jobs?{query}", pipeline_api(ev)?);
        self.api
            .get_all("list pipeline jobs", &path, Paging::NextPageHeader)
            .await
    }

    /// Which attempt the pipeline is on: how often its most-run job ran (retried jobs are
    /// listed only with `include_retried`).
    async fn attempt(&self, ev: &FailureEvent) -> Result<u32, PlatformError> {
        let jobs = self.jobs(ev, "include_retried=true&per_page=100").await?;
        let mut runs: HashMap<&str, u32> = HashMap::new();
        for j in &jobs {
            *runs.entry(j.name.as_str()).or_default() += 1;
        }
        Ok(runs.values().copied().max().unwrap_or(1).max(1))
    }

    /// Starts a new pipeline on the event's ref with `variables` (a bigger runner tag,
    /// `GIT_STRATEGY=clone`, a bumped cache-key variable): scaling, reset and cache strategies.
    pub async fn new_pipeline(
        &self,
        ev: &FailureEvent,
        variables: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let git_ref = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failure names no ref to start a pipeline on".into())
        })?;
        let body = json!({
            "ref": git_ref,
            "variables": variables
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect::<Vec<_>>(),
        });
        let path = format!("{}/pipeline", project_api(ev)?);
        let r: Value = self
            .api
            .call_once("create pipeline", Method::POST, &path, Some(&body))
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let id = r["id"].as_u64().map(|id| id.to_string());
        Ok(Rerun {
            detail: format!(
                "POST {} -> pipeline {}",
                self.api.url(&path),
                id.as_deref().unwrap_or("(no id)")
            ),
            new_run_id: id,
            ..Default::default()
        })
    }

    /// The successful jobs of the event's pipeline (those named in `only`, when given) with
    /// their traces: one call for the jobs (100 a page), one per trace.
    async fn green_traces(
        &self,
        ev: &FailureEvent,
        workflow: &str,
        only: Option<&[String]>,
    ) -> Result<Vec<GreenJob>, PlatformError> {
        let mut out = Vec::new();
        for j in self.jobs(ev, "scope[]=success&per_page=100").await? {
            if only.is_some_and(|names| !names.contains(&j.name)) {
                continue;
            }
            let path = format!("{}/jobs/{}/trace", project_api(ev)?, j.id);
            let log = self.api.log_tail("job trace", &path).await?;
            out.push(GreenJob {
                name: j.name,
                workflow: workflow.to_string(),
                log: log.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Cancels the event's pipeline (jobs still running in it).
    pub async fn cancel(&self, ev: &FailureEvent) -> Result<String, PlatformError> {
        let path = format!("{}/cancel", pipeline_api(ev)?);
        self.api
            .call("cancel pipeline", Method::POST, &path, None)
            .await?;
        Ok(format!("POST {path}"))
    }
}

#[async_trait]
impl Ci for GitlabClient {
    fn platform(&self) -> Platform {
        Platform::Gitlab
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.api.has_credentials(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let p = self.pipeline(ev).await?;
        let finished_at = parse_time_ms(p.finished_at.as_deref().or(p.updated_at.as_deref()));
        match p.status.as_str() {
            "success" => Ok(RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished_at,
            }),
            s if finished(s) => Ok(RunState::Completed {
                attempt: self.attempt(ev).await?,
                success: false,
                finished_at_ms: finished_at,
            }),
            // created, pending, running, manual, scheduled…: the event's pipeline still runs,
            // whatever its jobs' run counts say (a Job Hook's `retries_count` need not match
            // them), so the failure waits for it or has its job retried alone.
            _ => Ok(RunState::InProgress {
                attempt: ev.attempt,
            }),
        }
    }

    /// A failed job is retried while the pipeline still runs: the retry makes a new job in
    /// the same pipeline (<https://docs.gitlab.com/api/jobs/#retry-a-job>).
    fn retries_jobs_while_running(&self) -> bool {
        self.api.has_credentials()
    }

    async fn job_log(&self, ev: &FailureEvent, job: &FailedJob) -> Result<JobLog, PlatformError> {
        let path = format!("{}/jobs/{}/trace", project_api(ev)?, encode(&job.id));
        crate::job_log_at(&self.api, "job trace", &path, job).await
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let jobs = self.jobs(ev, "scope[]=failed&per_page=100").await?;
        let mut out = Vec::new();
        for j in jobs
            .into_iter()
            .filter(|j| j.status == "failed" && !j.allow_failure)
        {
            // Traces can be erased or expired: diagnose on GitLab's failure_reason alone.
            let path = format!("{}/jobs/{}/trace", project_api(ev)?, j.id);
            let log = self.api.log_tail("job trace", &path).await?;
            // The webhook knows the environment (the jobs API does not): keep it.
            let environment = ev
                .jobs
                .iter()
                .find(|k| k.id == j.id.to_string() || k.name == j.name)
                .and_then(|k| k.environment.clone());
            out.push(JobLog {
                job: j.failed(environment),
                log: log.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn can_take_out_runners(&self) -> bool {
        self.api.has_credentials()
    }

    /// Pauses the runner (<https://docs.gitlab.com/api/runners/#update-runners-details>,
    /// `paused=true`): it keeps its running job and takes no new one.
    async fn take_out_runner(&self, runner: &Runner) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let id = runner
            .id
            .as_deref()
            .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                PlatformError::Permanent(format!("runner {} has no numeric GitLab id", runner.name))
            })?;
        let path = format!("/api/v4/runners/{id}");
        let body = json!({"paused": true});
        self.api
            .call("pause runner", Method::PUT, &path, Some(&body))
            .await?;
        Ok(format!("PUT {path} paused=true"))
    }

    /// One call for the pipeline's successful jobs (100 a page), then one per job's trace.
    async fn green_jobs(&self, ev: &FailureEvent) -> Result<Vec<GreenJob>, PlatformError> {
        self.green_traces(ev, &ev.workflow, None).await
    }

    /// One call for the ref's successful pipelines, one for the newest one's successful jobs
    /// (100 a page), one trace per job asked for. A failure's workflow is its ref, so the
    /// pipeline found is the same jobs' on `branch`.
    async fn last_green(
        &self,
        ev: &FailureEvent,
        branch: &str,
        jobs: &[String],
    ) -> Result<Option<LastGreen>, PlatformError> {
        let path = format!(
            "{}/pipelines?ref={}&status=success&per_page={GREEN_RUNS_LISTED}",
            project_api(ev)?,
            encode(branch)
        );
        let pipelines: Vec<Value> = self.api.get_json("list green pipelines", &path).await?;
        let id = pipelines
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .find(|id| id.to_string() != ev.run_id);
        let Some(id) = id else {
            return Ok(None);
        };
        let green = FailureEvent {
            repository: ev.repository.clone(),
            run_id: id.to_string(),
            ..Default::default()
        };
        let out = self.green_traces(&green, &ev.workflow, Some(jobs)).await?;
        Ok(Some(LastGreen {
            run_id: id.to_string(),
            jobs: out,
        }))
    }

    /// One call: the project.
    async fn default_branch(&self, ev: &FailureEvent) -> Result<Option<String>, PlatformError> {
        let project: Value = self.api.get_json("get project", &project_api(ev)?).await?;
        Ok(project["default_branch"].as_str().map(str::to_string))
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        if all_failed || jobs.is_empty() {
            // Whether the pipeline is finished is GitLab's status, never a count of job runs:
            // a running pipeline gets its failed jobs retried, a pipeline retry only after.
            let p = self.pipeline(ev).await?;
            if finished(&p.status) {
                let path = format!("{}/retry", pipeline_api(ev)?);
                self.api
                    .call_once("retry pipeline", Method::POST, &path, None)
                    .await?;
                return Ok(format!("POST {path}"));
            }
            if jobs.is_empty() {
                return Err(PlatformError::Busy {
                    message: format!(
                        "pipeline {} is {}: it is retried once it finished",
                        ev.run_id, p.status
                    ),
                    retry_after: RUNNING_RECHECK,
                });
            }
        }
        let mut done = Vec::new();
        for j in jobs {
            let path = format!("{}/jobs/{}/retry", project_api(ev)?, encode(&j.id));
            let r = self
                .api
                .call_once("retry job", Method::POST, &path, None)
                .await?;
            // The retry is a new job: its id is the one whose outcome tells the heal's.
            let new: Value = r.json().await.unwrap_or(Value::Null);
            match new["id"].as_u64() {
                Some(id) => done.push(format!("POST {path} -> job {id}")),
                None => done.push(format!("POST {path}")),
            }
        }
        Ok(done.join("; "))
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    /// A retry cannot change variables, so a new pipeline on the same ref carries them.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_pipeline(ev, inputs).await
    }

    fn clean_workspace_inputs(&self) -> Vec<(String, String)> {
        vec![("GIT_STRATEGY".into(), "clone".into())]
    }

    async fn codeowners(&self, ev: &FailureEvent) -> Result<Option<String>, PlatformError> {
        super::issues::codeowners(&self.api, ev).await
    }

    async fn open_issue(
        &self,
        ev: &FailureEvent,
        issue: &crate::Issue,
    ) -> Result<Option<crate::Ticket>, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        super::issues::open(&self.api, ev, issue).await
    }

    async fn close_issue(
        &self,
        ev: &FailureEvent,
        ticket: &crate::Ticket,
        comment: &str,
    ) -> Result<(), PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        super::issues::close(&self.api, ev, ticket, comment).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(uri: &str) -> GitlabClient {
        GitlabClient::new(
            &Section {
                api_url: uri.to_string(),
                token: Some("tok".into()),
                ..Default::default()
            },
            &HttpOptions {
                tries: 1,
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn failed_jobs_are_read_across_pages() {
        use wiremock::matchers::{method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        let job = |id: u64, name: &str| {
            json!({"id": id, "name": name, "stage": "test", "status": "failed",
                               "allow_failure": false, "failure_reason": "script_failure"})
        };
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/jobs"))
            .and(query_param("page", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "2")
                    .set_body_json(json!([job(1, "a")])),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/jobs"))
            .and(query_param("page", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-next-page", "")
                    .set_body_json(json!([job(2, "b")])),
            )
            .mount(&mock)
            .await;
        for id in [1, 2] {
            Mock::given(method("GET"))
                .and(path(format!("/api/v4/projects/g%2Fp/jobs/{id}/trace")))
                .respond_with(ResponseTemplate::new(200).set_body_string("log"))
                .mount(&mock)
                .await;
        }
        let g = client(&mock.uri());
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            ..Default::default()
        };
        let names: Vec<String> = g
            .failed_logs(&ev)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.job.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[tokio::test]
    async fn one_job_is_read_and_retried_by_its_id_and_the_new_job_is_named() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/jobs/9/trace"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ECONNRESET"))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/jobs/9/retry"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 12})))
            .expect(1)
            .mount(&mock)
            .await;
        let g = client(&mock.uri());
        assert!(g.retries_jobs_while_running());
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            ..Default::default()
        };
        let job = FailedJob {
            id: "9".into(),
            name: "fetch".into(),
            ..Default::default()
        };
        let log = g.job_log(&ev, &job).await.unwrap();
        assert_eq!(
            (log.job.name.as_str(), log.log.as_slice()),
            ("fetch", &b"ECONNRESET"[..])
        );
        let done = g.retry(&ev, &[job], false).await.unwrap();
        assert!(done.ends_with("/jobs/9/retry -> job 12"), "{done}");
        mock.verify().await;
    }

    #[tokio::test]
    async fn new_pipeline_on_the_ref_with_variables_and_cancel() {
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/pipeline"))
            .and(header("private-token", "tok"))
            .and(body_json(
                json!({"ref": "main", "variables": [{"key": "RUNNER_TAG", "value": "xlarge"}]}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 77})))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/cancel"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 5})))
            .expect(1)
            .mount(&mock)
            .await;
        let g = client(&mock.uri());
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            branch: Some("main".into()),
            ..Default::default()
        };
        let done = g
            .new_pipeline(&ev, &[("RUNNER_TAG".into(), "xlarge".into())])
            .await
            .unwrap();
        assert_eq!(done.new_run_id.as_deref(), Some("77"));
        assert!(done.detail.ends_with("pipeline 77"), "{}", done.detail);
        g.cancel(&ev).await.unwrap();
        let no_ref = FailureEvent { branch: None, ..ev };
        assert!(matches!(
            g.new_pipeline(&no_ref, &[]).await,
            Err(PlatformError::Permanent(_))
        ));
        mock.verify().await;
    }

    /// GitLab says `running`: the pipeline is not finished whatever the job counts are (a Job
    /// Hook's `retries_count` of 0 while another job ran twice). Its failed job is retried
    /// alone; a pipeline retry waits until GitLab says the pipeline finished.
    #[tokio::test]
    async fn a_running_pipeline_is_never_retried_whatever_the_counts() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        let job = |id: u64, name: &str| json!({"id": id, "name": name, "status": "failed"});
        let status = |s: &str| {
            ResponseTemplate::new(200).set_body_json(json!({"id": 5, "status": s,
                "updated_at": "2026-11-23T10:00:00.000Z"}))
        };
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5"))
            .respond_with(status("running"))
            .up_to_n_times(3)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5"))
            .respond_with(status("failed"))
            .mount(&mock)
            .await;
        // Another job ran twice: pipeguard's count (2) differs from the hook's attempt (1).
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/jobs"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                job(8, "lint"),
                job(7, "lint"),
                job(9, "test")
            ])))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/jobs/9/retry"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 10})))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/g%2Fp/pipelines/5/retry"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
            .expect(1)
            .named("pipeline retry, once finished")
            .mount(&mock)
            .await;
        let g = client(&mock.uri());
        let failed = FailedJob {
            id: "9".into(),
            name: "test".into(),
            ..Default::default()
        };
        let ev = FailureEvent {
            repository: "g/p".into(),
            run_id: "5".into(),
            attempt: 1,
            job_event: true,
            jobs: vec![failed.clone()],
            ..Default::default()
        };
        assert_eq!(
            g.run_state(&ev).await.unwrap(),
            RunState::InProgress { attempt: 1 }
        );
        let done = g.retry(&ev, &[failed], true).await.unwrap();
        assert!(done.contains("/jobs/9/retry -> job 10"), "{done}");
        let busy = g.retry(&ev, &[], true).await;
        assert!(matches!(busy, Err(PlatformError::Busy { .. })), "{busy:?}");
        // Finished now: the pipeline retry goes.
        let done = g.retry(&ev, &[], true).await.unwrap();
        assert!(done.ends_with("/pipelines/5/retry"), "{done}");
        mock.verify().await;
    }
}
