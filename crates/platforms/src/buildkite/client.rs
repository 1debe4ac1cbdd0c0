//! The REST API v2: a build with its jobs, job logs, job retries and new builds.

use super::webhook::Job;
use crate::api::{encode, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::webhook::{slug_char, valid_path};
use crate::{parse_time_ms, require, Ci, JobLog, PlatformError, Rerun, RunState, OUTCOME_ATTEMPT};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

const NO_TOKEN: &str = "PIPEGUARD_BUILDKITE_TOKEN is not set; retries and new builds need an API access token with write_builds";

/// The input that asks for a fresh checkout: the agent's own environment variable, also sent
/// as the create-build call's `clean_checkout`.
pub const CLEAN_CHECKOUT: &str = "BUILDKITE_CLEAN_CHECKOUT";

pub struct BuildkiteClient {
    api: ApiClient,
}

#[derive(Deserialize)]
struct ApiBuild {
    #[serde(default)]
    state: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    jobs: Vec<Job>,
}

/// `/v2/organizations/{org}/pipelines/{pipeline}`, each part checked and encoded.
fn pipeline_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    if !valid_path(&ev.repository, 2..=2, slug_char) {
        return Err(PlatformError::Permanent(format!(
            "{:?} is not a Buildkite organization/pipeline",
            ev.repository
        )));
    }
    let (org, pipeline) = ev.repository.split_once('/').unwrap_or_default();
    Ok(format!(
        "/v2/organizations/{}/pipelines/{}",
        encode(org),
        encode(pipeline)
    ))
}

fn build_api(ev: &FailureEvent) -> Result<String, PlatformError> {
    if ev.run_id.is_empty() || !ev.run_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PlatformError::Permanent(format!(
            "run id {:?} is not a Buildkite build number",
            ev.run_id
        )));
    }
    Ok(format!("{}/builds/{}", pipeline_api(ev)?, ev.run_id))
}

impl BuildkiteClient {
    pub fn new(s: &Section, http: &HttpOptions) -> BuildkiteClient {
        let auth = s.token.clone().map(Auth::Bearer).unwrap_or(Auth::None);
        BuildkiteClient {
            api: ApiClient::new(&s.api_url, auth, http.clone()),
        }
    }

    async fn build(&self, ev: &FailureEvent, query: &str) -> Result<ApiBuild, PlatformError> {
        let path = format!("{}{query}", build_api(ev)?);
        self.api.get_json("get build", &path).await
    }

    /// The build's failed jobs, latest execution of each step (retried ones are hidden).
    async fn failed_jobs(&self, ev: &FailureEvent) -> Result<Vec<Job>, PlatformError> {
        let b = self.build(ev, "").await?;
        Ok(b.jobs.into_iter().filter(Job::failed).collect())
    }

    /// Starts a new build of the event's commit with `env` (an agent queue the pipeline
    /// interpolates, a cache-key version) and a fresh checkout when [`CLEAN_CHECKOUT`] is set.
    pub async fn new_build(
        &self,
        ev: &FailureEvent,
        env: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let branch = ev.branch.as_deref().ok_or_else(|| {
            PlatformError::Permanent("the failure names no branch to build".into())
        })?;
        let clean = env
            .iter()
            .any(|(k, v)| k == CLEAN_CHECKOUT && v.eq_ignore_ascii_case("true"));
        let env: Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let body = json!({
            "commit": ev.head_sha.as_deref().unwrap_or("HEAD"),
            "branch": branch,
            "message": format!("pipeguard: heal of build {}", ev.run_id),
            "env": env,
            "clean_checkout": clean,
        });
        let path = format!("{}/builds", pipeline_api(ev)?);
        let r: Value = self
            .api
            .call_once("create build", Method::POST, &path, Some(&body))
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let number = r["number"].as_u64().map(|n| n.to_string());
        Ok(Rerun {
            detail: format!(
                "POST {} -> build {}",
                self.api.url(&path),
                number.as_deref().unwrap_or("(no number)")
            ),
            new_run_id: number,
            ..Default::default()
        })
    }
}

#[async_trait]
impl Ci for BuildkiteClient {
    fn platform(&self) -> Platform {
        Platform::Buildkite
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.api.has_credentials(),
            ..Default::default()
        }
    }

    /// The build's state; its attempt counts the retries of its most retried job.
    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let b = self.build(ev, "?include_retried_jobs=true").await?;
        let attempt = b.jobs.iter().map(Job::attempt).max().unwrap_or(1);
        let finished = parse_time_ms(b.finished_at.as_deref());
        Ok(match b.state.as_str() {
            "passed" => RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                finished_at_ms: finished,
            },
            "failed" | "canceled" | "skipped" | "not_run" => RunState::Completed {
                attempt,
                success: false,
                finished_at_ms: finished,
            },
            // scheduled, running, failing, canceling, creating, waiting…
            _ => RunState::InProgress { attempt },
        })
    }

    /// A failed job is retried while the build still runs; each job id once, the retry being
    /// a new job (<https://buildkite.com/docs/apis/rest-api/jobs#retry-a-job>).
    fn retries_jobs_while_running(&self) -> bool {
        self.api.has_credentials()
    }

    async fn job_log(&self, ev: &FailureEvent, job: &FailedJob) -> Result<JobLog, PlatformError> {
        let path = format!("{}/jobs/{}/log.txt", build_api(ev)?, encode(&job.id));
        crate::job_log_at(&self.api, "job log", &path, job).await
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let mut out = Vec::new();
        for j in self.failed_jobs(ev).await? {
            let path = format!("{}/jobs/{}/log.txt", build_api(ev)?, encode(&j.id));
            let log = self.api.log_tail("job log", &path).await?;
            out.push(JobLog {
                job: j.to_failed(),
                log: log.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Retries each job by its id; with no ids known, every failed job of the build when the
    /// plan covers them all.
    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let mut ids: Vec<String> = jobs
            .iter()
            .map(|j| j.id.clone())
            .filter(|i| !i.is_empty())
            .collect();
        if ids.is_empty() && all_failed {
            ids = self
                .failed_jobs(ev)
                .await?
                .into_iter()
                .map(|j| j.id)
                .collect();
        }
        if ids.is_empty() {
            return Err(PlatformError::Permanent(
                "no failed job to retry in this build".into(),
            ));
        }
        let mut done = Vec::new();
        for id in ids {
            let path = format!("{}/jobs/{}/retry", build_api(ev)?, encode(&id));
            // Each job id can be retried once: a repeated call would be refused.
            self.api
                .call_once("retry job", Method::PUT, &path, None)
                .await?;
            done.push(format!("PUT {}", self.api.url(&path)));
        }
        Ok(done.join("; "))
    }

    fn can_take_out_runners(&self) -> bool {
        self.api.has_credentials()
    }

    /// Stops the agent (`PUT /v2/organizations/{org}/agents/{id}/stop`) without `force`: it
    /// finishes its current job and takes no other.
    async fn take_out_runner(
        &self,
        runner: &pipeguard_core::event::Runner,
    ) -> Result<String, PlatformError> {
        require(self.api.has_credentials(), NO_TOKEN)?;
        let (org, id) = runner
            .id
            .as_deref()
            .and_then(|i| i.split_once('/'))
            .filter(|(o, i)| valid_path(&format!("{o}/{i}"), 2..=2, slug_char))
            .ok_or_else(|| {
                PlatformError::Permanent(format!(
                    "agent {} has no organization and id to stop it by",
                    runner.name
                ))
            })?;
        let path = format!(
            "/v2/organizations/{}/agents/{}/stop",
            encode(org),
            encode(id)
        );
        let body = serde_json::json!({"force": false});
        self.api
            .call("stop agent", Method::PUT, &path, Some(&body))
            .await?;
        Ok(format!("PUT {path}"))
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    /// A job retry cannot change the environment, so a new build of the commit carries it.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        self.new_build(ev, inputs).await
    }

    fn clean_workspace_inputs(&self) -> Vec<(String, String)> {
        vec![(CLEAN_CHECKOUT.into(), "true".into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const BUILD: &str = "/v2/organizations/acme/pipelines/app/builds/42";

    fn client(uri: &str, token: Option<&str>) -> BuildkiteClient {
        BuildkiteClient::new(
            &Section {
                api_url: uri.to_string(),
                token: token.map(str::to_string),
                ..Default::default()
            },
            &HttpOptions {
                tries: 1,
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        )
    }

    fn event() -> FailureEvent {
        FailureEvent {
            repository: "acme/app".into(),
            run_id: "42".into(),
            attempt: 1,
            branch: Some("main".into()),
            head_sha: Some("abc123".into()),
            ..Default::default()
        }
    }

    fn job(id: &str, name: &str, state: &str, retries: Option<u32>, retried: bool) -> Value {
        json!({"id": id, "type": "script", "name": name, "step_key": name, "state": state,
               "soft_failed": false, "retried": retried, "retries_count": retries})
    }

    #[tokio::test]
    async fn failed_jobs_logs_and_their_labels() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .and(header("authorization", "Bearer bk"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "number": 42, "state": "failed",
                "jobs": [
                    job("j1", "test", "failed", None, false),
                    job("j2", "lint", "passed", None, false),
                    {"id": "j3", "type": "script", "name": "flaky", "state": "failed", "soft_failed": true},
                    {"id": "w", "type": "waiter", "state": "failed"},
                    {"id": "j4", "type": "script", "name": "deploy", "step_key": "deploy-prod",
                     "state": "timed_out"}
                ]
            })))
            .mount(&mock)
            .await;
        for id in ["j1", "j4"] {
            Mock::given(method("GET"))
                .and(path(format!("{BUILD}/jobs/{id}/log.txt")))
                .respond_with(ResponseTemplate::new(200).set_body_string(format!("log of {id}")))
                .expect(1)
                .mount(&mock)
                .await;
        }
        let logs = client(&mock.uri(), Some("bk"))
            .failed_logs(&event())
            .await
            .unwrap();
        let got: Vec<(&str, &str, Option<&str>)> = logs
            .iter()
            .map(|l| {
                (
                    l.job.id.as_str(),
                    std::str::from_utf8(&l.log).unwrap(),
                    l.job.stage.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("j1", "log of j1", Some("test")),
                ("j4", "log of j4", Some("deploy-prod"))
            ]
        );
        assert_eq!(logs[1].job.platform_reason.as_deref(), Some("timed_out"));
        mock.verify().await;
    }

    #[tokio::test]
    async fn run_state_counts_retries_as_attempts() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .and(query_param("include_retried_jobs", "true"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "number": 42, "state": "running",
                "jobs": [job("old", "test", "failed", None, true), job("new", "test", "running", Some(1), false)]
            })))
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "number": 42, "state": "failed", "finished_at": "2015-05-09T21:09:05.000Z",
                "jobs": [job("old", "test", "failed", None, true), job("new", "test", "failed", Some(1), false)]
            })))
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"number": 42, "state": "passed", "jobs": []})),
            )
            .mount(&mock)
            .await;
        let c = client(&mock.uri(), Some("bk"));
        assert_eq!(
            c.run_state(&event()).await.unwrap(),
            RunState::InProgress { attempt: 2 }
        );
        assert!(matches!(
            c.run_state(&event()).await.unwrap(),
            RunState::Completed {
                attempt: 2,
                success: false,
                finished_at_ms: Some(_)
            }
        ));
        assert!(matches!(
            c.run_state(&event()).await.unwrap(),
            RunState::Completed {
                attempt: OUTCOME_ATTEMPT,
                success: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn retries_only_the_given_jobs_once_each() {
        let mock = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path(format!("{BUILD}/jobs/j1/retry")))
            .and(header("authorization", "Bearer bk"))
            .respond_with(ResponseTemplate::new(200).set_body_json(job(
                "j9",
                "test",
                "scheduled",
                Some(1),
                false,
            )))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("PUT"))
            .and(path(format!("{BUILD}/jobs/j2/retry")))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&mock)
            .await;
        let c = client(&mock.uri(), Some("bk"));
        let jobs = [FailedJob {
            id: "j1".into(),
            name: "test".into(),
            ..Default::default()
        }];
        let done = c.retry(&event(), &jobs, false).await.unwrap();
        assert!(done.ends_with("/jobs/j1/retry"), "{done}");
        mock.verify().await;
    }

    #[tokio::test]
    async fn a_refused_retry_is_not_repeated_and_no_token_is_a_configuration_error() {
        let mock = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path(format!("{BUILD}/jobs/j1/retry")))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"message": "Only failed, timed out or canceled jobs can be retried"}),
            ))
            .expect(1)
            .mount(&mock)
            .await;
        let jobs = [FailedJob {
            id: "j1".into(),
            ..Default::default()
        }];
        let err = client(&mock.uri(), Some("bk"))
            .retry(&event(), &jobs, true)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PlatformError::Refused { status: 400, .. }),
            "{err}"
        );
        assert!(matches!(
            client(&mock.uri(), None).retry(&event(), &jobs, true).await,
            Err(PlatformError::NotConfigured(_))
        ));
        mock.verify().await;
    }

    #[tokio::test]
    async fn without_job_ids_every_failed_job_is_retried() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(BUILD))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "number": 42, "state": "failed",
                "jobs": [job("a", "x", "failed", None, false), job("b", "y", "timed_out", None, false),
                         job("c", "z", "passed", None, false)]
            })))
            .mount(&mock)
            .await;
        for (id, n) in [("a", 1), ("b", 1), ("c", 0)] {
            Mock::given(method("PUT"))
                .and(path(format!("{BUILD}/jobs/{id}/retry")))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
                .expect(n)
                .mount(&mock)
                .await;
        }
        let c = client(&mock.uri(), Some("bk"));
        c.retry(&event(), &[], true).await.unwrap();
        assert!(matches!(
            c.retry(&event(), &[], false).await,
            Err(PlatformError::Permanent(_))
        ));
        mock.verify().await;
    }

    #[tokio::test]
    async fn a_new_build_of_the_commit_with_env_and_a_fresh_checkout() {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/organizations/acme/pipelines/app/builds"))
            .and(body_json(json!({
                "commit": "abc123", "branch": "main",
                "message": "pipeguard: heal of build 42",
                "env": {"AGENT_QUEUE": "large", "BUILDKITE_CLEAN_CHECKOUT": "true"},
                "clean_checkout": true
            })))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"number": 43, "state": "scheduled"})),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri(), Some("bk"));
        let mut inputs = vec![("AGENT_QUEUE".to_string(), "large".to_string())];
        inputs.extend(c.clean_workspace_inputs());
        let r = c.rerun_with(&event(), None, &inputs).await.unwrap();
        assert_eq!(r.new_run_id.as_deref(), Some("43"));
        assert!(r.detail.ends_with("build 43"), "{}", r.detail);
        let no_branch = FailureEvent {
            branch: None,
            ..event()
        };
        assert!(matches!(
            c.rerun_with(&no_branch, None, &[]).await,
            Err(PlatformError::Permanent(_))
        ));
        mock.verify().await;
    }

    #[test]
    fn names_that_could_steer_urls_are_refused() {
        let bad = FailureEvent {
            repository: "acme/../x".into(),
            ..event()
        };
        assert!(build_api(&bad).is_err());
        let bad_run = FailureEvent {
            run_id: "42/../../x".into(),
            ..event()
        };
        assert!(build_api(&bad_run).is_err());
        assert_eq!(build_api(&event()).unwrap(), BUILD);
    }
}
