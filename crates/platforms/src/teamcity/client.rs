//! The REST API: builds by locator, the build log download and the build queue.

use super::webhook::{parse_teamcity_time, Build};
use super::NO_REVISION;
use crate::api::{encode, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::webhook::{slug_char, valid_path};
use crate::{require, Ci, JobLog, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

const NO_TOKEN: &str =
    "PIPEGUARD_TEAMCITY_TOKEN is not set; re-runs need an access token allowed to run builds";

/// Why the agent was disabled, as TeamCity shows it.
const TAKEN_OUT: &str = "pipeguard: fails unrelated builds far more often than its pool";

/// The input that asks for a clean checkout: sent as `triggeringOptions.cleanSources`, never
/// as a build parameter.
pub const CLEAN_SOURCES: &str = "pipeguard.cleanSources";

pub struct TeamcityClient {
    api: ApiClient,
    configured: bool,
}

#[derive(Deserialize)]
struct Builds {
    #[serde(default)]
    build: Vec<Build>,
}

/// A revision as TeamCity prints it (a commit hash, a changelist number): nothing that could
/// add a locator dimension.
fn revision_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

impl TeamcityClient {
    pub fn new(s: &Section, http: &HttpOptions) -> TeamcityClient {
        let auth = s.token.clone().map(Auth::Bearer).unwrap_or(Auth::None);
        TeamcityClient {
            // The REST API answers XML unless asked for JSON.
            api: ApiClient::new(&s.api_url, auth, http.clone())
                .with_header("Accept", "application/json"),
            configured: !s.api_url.trim().is_empty(),
        }
    }

    /// The event's build configuration id, checked.
    fn build_type<'a>(&self, ev: &'a FailureEvent) -> Result<&'a str, PlatformError> {
        require(
            self.configured,
            "PIPEGUARD_TEAMCITY_API_URL (the TeamCity server URL) is not set",
        )?;
        if !valid_path(&ev.repository, 1..=1, slug_char) {
            return Err(PlatformError::Permanent(format!(
                "{:?} is not a TeamCity build configuration id",
                ev.repository
            )));
        }
        Ok(&ev.repository)
    }

    /// The run's revision, `None` for builds without VCS roots.
    fn revision(ev: &FailureEvent) -> Result<Option<&str>, PlatformError> {
        match ev.run_id.as_str() {
            NO_REVISION => Ok(None),
            r if !r.is_empty() && r.len() <= 200 && r.chars().all(revision_char) => Ok(Some(r)),
            r => Err(PlatformError::Permanent(format!(
                "run id {r:?} is not a VCS revision"
            ))),
        }
    }

    /// The newest build of the configuration on the run's revision, on any branch, running or
    /// finished.
    async fn newest(&self, ev: &FailureEvent) -> Result<Option<Build>, PlatformError> {
        let mut locator = format!("buildType:(id:{})", self.build_type(ev)?);
        if let Some(r) = Self::revision(ev)? {
            locator.push_str(&format!(",revision:({r})"));
        }
        locator.push_str(",branch:default:any,running:any,count:1");
        let path = format!(
            "/app/rest/builds?locator={}&fields=build(id,buildTypeId,state,status,finishDate)",
            encode(&locator)
        );
        let b: Builds = self.api.get_json("list builds", &path).await?;
        Ok(b.build.into_iter().next())
    }

    /// Queues the configuration again on the run's revision and branch, with `inputs` as
    /// custom parameters ([`CLEAN_SOURCES`] asks for a clean checkout instead).
    pub async fn queue(
        &self,
        ev: &FailureEvent,
        inputs: &[(String, String)],
    ) -> Result<String, PlatformError> {
        let build_type = self.build_type(ev)?;
        require(self.api.has_credentials(), NO_TOKEN)?;
        let mut body = json!({
            "buildType": {"id": build_type},
            "comment": {"text": format!("pipeguard: re-run of build {}", ev.attempt)},
        });
        if let Some(b) = ev.branch.as_deref() {
            body["branchName"] = Value::from(b);
        }
        if let Some(r) = Self::revision(ev)? {
            body["lastChanges"] = json!({"change": [
                {"locator": format!("version:{r},buildType:(id:{build_type})")}
            ]});
        }
        let clean = inputs
            .iter()
            .any(|(k, v)| k == CLEAN_SOURCES && v.eq_ignore_ascii_case("true"));
        if clean {
            body["triggeringOptions"] = json!({"cleanSources": true});
        }
        let properties: Vec<Value> = inputs
            .iter()
            .filter(|(k, _)| k != CLEAN_SOURCES)
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        if !properties.is_empty() {
            body["properties"] = json!({ "property": properties });
        }
        // Queuing again after a lost answer would queue a second build.
        let r: Value = self
            .api
            .call_once(
                "queue build",
                Method::POST,
                "/app/rest/buildQueue",
                Some(&body),
            )
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        Ok(format!(
            "POST {} -> queued build {}",
            self.api.url("/app/rest/buildQueue"),
            r["id"]
        ))
    }
}

#[async_trait]
impl Ci for TeamcityClient {
    fn platform(&self) -> Platform {
        Platform::Teamcity
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.configured && self.api.has_credentials(),
            ..Default::default()
        }
    }

    /// The newest build on the revision: its id is the attempt.
    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let b = self.newest(ev).await?.ok_or_else(|| {
            PlatformError::Permanent(format!(
                "no build of {} on revision {}",
                ev.repository, ev.run_id
            ))
        })?;
        let attempt = b.attempt().map_err(PlatformError::Permanent)?;
        Ok(match b.state.as_deref() {
            Some("finished") => RunState::Completed {
                attempt,
                success: b.status.as_deref() == Some("SUCCESS"),
                finished_at_ms: parse_teamcity_time(b.finish_date.as_deref()),
            },
            _ => RunState::InProgress { attempt },
        })
    }

    /// The failed build is the attempt's id; its log is the whole build log.
    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        self.build_type(ev)?;
        let path = format!("/app/rest/builds/id:{}", ev.attempt);
        let b: Build = self.api.get_json("get build", &path).await?;
        if b.status.as_deref() != Some("FAILURE") {
            return Ok(vec![]);
        }
        let log_path = format!("/downloadBuildLog.html?buildId={}&plain=true", b.id);
        let log = self.api.log_tail("build log", &log_path).await?;
        Ok(vec![JobLog {
            job: b.to_failed(),
            log: log.unwrap_or_default(),
        }])
    }

    /// A build is one job: re-running it queues the whole configuration again.
    async fn retry(
        &self,
        ev: &FailureEvent,
        _jobs: &[FailedJob],
        _all_failed: bool,
    ) -> Result<String, PlatformError> {
        self.queue(ev, &[]).await
    }

    fn can_rerun_with(&self) -> bool {
        self.configured && self.api.has_credentials()
    }

    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        Ok(Rerun {
            detail: self.queue(ev, inputs).await?,
            new_run_id: None,
            ..Default::default()
        })
    }

    fn can_take_out_runners(&self) -> bool {
        self.configured && self.api.has_credentials()
    }

    /// Disables the agent (`PUT /app/rest/agents/id:{id}/enabledInfo`, status `false` with a
    /// comment TeamCity shows beside it): its running build goes on, no new one starts.
    /// <https://www.jetbrains.com/help/teamcity/rest/manage-agents.html>
    async fn take_out_runner(&self, runner: &Runner) -> Result<String, PlatformError> {
        require(self.configured && self.api.has_credentials(), NO_TOKEN)?;
        let id = runner
            .id
            .as_deref()
            .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                PlatformError::Permanent(format!(
                    "agent {} has no numeric TeamCity id",
                    runner.name
                ))
            })?;
        let path = format!("/app/rest/agents/id:{id}/enabledInfo");
        let body = json!({"status": false, "comment": {"text": TAKEN_OUT}});
        self.api
            .call("disable agent", Method::PUT, &path, Some(&body))
            .await?;
        Ok(format!("PUT {path} status=false"))
    }

    /// The queued build is the next attempt of the same configuration and revision.
    fn rerun_starts_new_run(&self) -> bool {
        false
    }

    fn clean_workspace_inputs(&self) -> Vec<(String, String)> {
        vec![(CLEAN_SOURCES.into(), "true".into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const REV: &str = "6feff116ab9ad0d3af686526a6ff96272620e70f";

    fn client(uri: &str) -> TeamcityClient {
        TeamcityClient::new(
            &Section {
                api_url: uri.to_string(),
                token: Some("tc".into()),
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
            repository: "Proj_Build".into(),
            run_id: REV.into(),
            attempt: 8134,
            branch: Some("main".into()),
            ..Default::default()
        }
    }

    fn build(id: u64, state: &str, status: &str) -> Value {
        json!({"id": id, "buildTypeId": "Proj_Build", "state": state, "status": status,
               "finishDate": "20240408T162702+0200", "statusText": "Exit code 1",
               "buildType": {"id": "Proj_Build", "name": "Deploy to staging", "projectName": "Proj"}})
    }

    #[tokio::test]
    async fn run_state_is_the_newest_build_on_the_revision() {
        let mock = MockServer::start().await;
        let locator = format!(
            "buildType:(id:Proj_Build),revision:({REV}),branch:default:any,running:any,count:1"
        );
        Mock::given(method("GET"))
            .and(path("/app/rest/builds"))
            .and(query_param("locator", locator.as_str()))
            .and(header("authorization", "Bearer tc"))
            .and(header("accept", "application/json"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"count": 1, "build": [build(8140, "running", "SUCCESS")]}),
                ),
            )
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/app/rest/builds"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"count": 1, "build": [build(8140, "finished", "SUCCESS")]}),
                ),
            )
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/app/rest/builds"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 0})))
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        assert_eq!(
            c.run_state(&event()).await.unwrap(),
            RunState::InProgress { attempt: 8140 }
        );
        assert!(matches!(
            c.run_state(&event()).await.unwrap(),
            RunState::Completed {
                attempt: 8140,
                success: true,
                finished_at_ms: Some(_)
            }
        ));
        assert!(matches!(
            c.run_state(&event()).await,
            Err(PlatformError::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn the_failed_build_s_log_with_its_configuration_name() {
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/app/rest/builds/id:8134"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(build(8134, "finished", "FAILURE")),
            )
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/downloadBuildLog.html"))
            .and(query_param("buildId", "8134"))
            .and(query_param("plain", "true"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string("[16:26:59] Step 1/1: Gradle\nBUILD FAILED\n"),
            )
            .expect(1)
            .mount(&mock)
            .await;
        let logs = client(&mock.uri()).failed_logs(&event()).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].job.name, "Deploy to staging");
        assert_eq!(logs[0].job.stage.as_deref(), Some("Proj"));
        assert!(String::from_utf8_lossy(&logs[0].log).contains("BUILD FAILED"));
        mock.verify().await;
    }

    #[tokio::test]
    async fn a_re_run_queues_the_revision_once_with_parameters_and_clean_sources() {
        let mock = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/app/rest/buildQueue"))
            .and(body_json(json!({
                "buildType": {"id": "Proj_Build"},
                "comment": {"text": "pipeguard: re-run of build 8134"},
                "branchName": "main",
                "lastChanges": {"change": [{"locator": format!("version:{REV},buildType:(id:Proj_Build)")}]},
                "triggeringOptions": {"cleanSources": true},
                "properties": {"property": [{"name": "env.AGENT_SIZE", "value": "large"}]}
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 8141, "state": "queued"})))
            .expect(1)
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/app/rest/buildQueue"))
            .and(body_json(json!({
                "buildType": {"id": "Proj_Build"},
                "comment": {"text": "pipeguard: re-run of build 8134"},
                "branchName": "main",
                "lastChanges": {"change": [{"locator": format!("version:{REV},buildType:(id:Proj_Build)")}]}
            })))
            .respond_with(ResponseTemplate::new(502))
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        let mut inputs = vec![("env.AGENT_SIZE".to_string(), "large".to_string())];
        inputs.extend(c.clean_workspace_inputs());
        let r = c.rerun_with(&event(), None, &inputs).await.unwrap();
        assert!(r.detail.ends_with("queued build 8141"), "{}", r.detail);
        assert_eq!(r.new_run_id, None, "the same run's next attempt");
        // A lost answer is not queued again.
        assert!(c
            .retry(&event(), &[], true)
            .await
            .unwrap_err()
            .is_transient());
        mock.verify().await;
    }

    #[tokio::test]
    async fn an_agent_is_disabled_by_its_id_with_a_comment() {
        let mock = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/app/rest/agents/id:3/enabledInfo"))
            .and(header("authorization", "Bearer tc"))
            .and(body_json(
                json!({"status": false, "comment": {"text": TAKEN_OUT}}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": false})))
            .expect(1)
            .mount(&mock)
            .await;
        let c = client(&mock.uri());
        assert!(c.can_take_out_runners());
        let agent = |id: Option<&str>| Runner {
            name: "agent-1".into(),
            id: id.map(str::to_string),
        };
        let call = c.take_out_runner(&agent(Some("3"))).await.unwrap();
        assert_eq!(call, "PUT /app/rest/agents/id:3/enabledInfo status=false");
        for id in [None, Some("name:agent-1"), Some("3),(x")] {
            assert!(
                matches!(
                    c.take_out_runner(&agent(id)).await,
                    Err(PlatformError::Permanent(_))
                ),
                "{id:?}"
            );
        }
        let none = TeamcityClient::new(&Section::default(), &HttpOptions::default());
        assert!(!none.can_take_out_runners());
        mock.verify().await;
    }

    #[tokio::test]
    async fn unconfigured_and_unsafe_names_are_refused_before_any_call() {
        let none = TeamcityClient::new(&Section::default(), &HttpOptions::default());
        assert!(matches!(
            none.retry(&event(), &[], true).await,
            Err(PlatformError::NotConfigured(_))
        ));
        assert!(!none.capabilities(&event()).retry);
        let c = client("http://127.0.0.1:9");
        let bad_rev = FailureEvent {
            run_id: "x),buildType:(id:Other".into(),
            ..event()
        };
        assert!(matches!(
            c.run_state(&bad_rev).await,
            Err(PlatformError::Permanent(_))
        ));
        let bad_type = FailureEvent {
            repository: "a/b".into(),
            ..event()
        };
        assert!(matches!(
            c.retry(&bad_type, &[], true).await,
            Err(PlatformError::Permanent(_))
        ));
    }
}
