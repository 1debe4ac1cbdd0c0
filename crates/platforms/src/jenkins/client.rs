//! The remote access API: build state, console text, rebuilds with parameters.

use crate::api::{encode, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::webhook::{label_char, valid_path};
use crate::{require, Ci, JobLog, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

pub struct JenkinsClient {
    api: ApiClient,
    configured: bool,
}

#[derive(Deserialize)]
struct ApiBuild {
    number: u64,
    #[serde(default)]
    building: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    duration: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Crumb {
    crumb_request_field: String,
    crumb: String,
}

/// `application/x-www-form-urlencoded` pairs.
fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `a/b` → `/job/a/job/b/`: folders and multibranch branches are nested jobs.
fn job_path(ev: &FailureEvent) -> Result<String, PlatformError> {
    if !valid_path(&ev.repository, 1..=20, label_char) {
        return Err(PlatformError::Permanent(format!(
            "{:?} is not a Jenkins job path",
            ev.repository
        )));
    }
    Ok(ev
        .repository
        .split('/')
        .map(|name| format!("/job/{}", encode(name)))
        .collect::<String>()
        + "/")
}

impl JenkinsClient {
    pub fn new(s: &Section, http: &HttpOptions) -> JenkinsClient {
        let auth = match (&s.user, &s.token) {
            (Some(u), Some(t)) => Auth::Basic(u.clone(), Some(t.clone())),
            _ => Auth::None,
        };
        JenkinsClient {
            api: ApiClient::new(&s.api_url, auth, http.clone()),
            configured: !s.api_url.trim().is_empty(),
        }
    }

    fn job(&self, ev: &FailureEvent) -> Result<String, PlatformError> {
        require(
            self.configured,
            "PIPEGUARD_JENKINS_API_URL (the Jenkins root URL) is not set",
        )?;
        job_path(ev)
    }

    /// The CSRF crumb header, when Jenkins issues one (404 = CSRF protection off).
    async fn crumb(&self) -> Result<Option<(String, String)>, PlatformError> {
        match self
            .api
            .get_json::<Crumb>("crumb issuer", "/crumbIssuer/api/json")
            .await
        {
            Ok(c) => Ok(Some((c.crumb_request_field, c.crumb))),
            Err(PlatformError::Refused { message, .. }) => {
                tracing::debug!("no CSRF crumb: {message}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The parameters the failed build ran with, to rebuild it the same way.
    async fn parameters(&self, ev: &FailureEvent) -> Result<Vec<(String, String)>, PlatformError> {
        let path = format!(
            "{}{}/api/json?tree=actions[parameters[name,value]]",
            self.job(ev)?,
            ev.attempt
        );
        let v: Value = self.api.get_json("build parameters", &path).await?;
        let mut out = Vec::new();
        for a in v["actions"].as_array().into_iter().flatten() {
            for p in a["parameters"].as_array().into_iter().flatten() {
                let Some(name) = p["name"].as_str() else {
                    continue;
                };
                let value = match &p["value"] {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                out.push((name.to_string(), value));
            }
        }
        Ok(out)
    }

    /// Rebuilds the event's job with the failed build's parameters, `overrides` replacing or
    /// adding some (a bigger agent label, a workspace-wipe flag…): the building block of
    /// scaling and environment-reset strategies.
    pub async fn rebuild_with(
        &self,
        ev: &FailureEvent,
        overrides: &[(String, String)],
    ) -> Result<String, PlatformError> {
        require(
            self.api.has_credentials(),
            "PIPEGUARD_JENKINS_USER and PIPEGUARD_JENKINS_TOKEN are needed to rebuild",
        )?;
        let job = self.job(ev)?;
        let mut params = self.parameters(ev).await?;
        for (k, v) in overrides {
            match params.iter_mut().find(|(name, _)| name == k) {
                Some(p) => p.1 = v.clone(),
                None => params.push((k.clone(), v.clone())),
            }
        }
        let crumb = self.crumb().await?;
        let (path, body) = if params.is_empty() {
            (format!("{job}build"), String::new())
        } else {
            (format!("{job}buildWithParameters"), form(&params))
        };
        let url = self.api.url(&path);
        self.api
            .send_with("rebuild", 1, || {
                let mut b = self
                    .api
                    .request(Method::POST, &url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.clone());
                if let Some((field, value)) = &crumb {
                    b = b.header(field.as_str(), value.as_str());
                }
                b
            })
            .await?;
        Ok(format!("POST {url} ({} parameter(s))", params.len()))
    }
}

#[async_trait]
impl Ci for JenkinsClient {
    fn platform(&self) -> Platform {
        Platform::Jenkins
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: self.configured && self.api.has_credentials(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let path = format!(
            "{}lastBuild/api/json?tree=number,building,result,timestamp,duration",
            self.job(ev)?
        );
        let b: ApiBuild = self.api.get_json("last build", &path).await?;
        let attempt = u32::try_from(b.number).unwrap_or(u32::MAX);
        if b.building || b.result.is_none() {
            return Ok(RunState::InProgress { attempt });
        }
        Ok(RunState::Completed {
            attempt,
            success: b.result.as_deref() == Some("SUCCESS"),
            finished_at_ms: b.timestamp.zip(b.duration).map(|(t, d)| t + d),
        })
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        // Builds get discarded by log rotation: diagnose without the log then.
        let path = format!("{}{}/consoleText", self.job(ev)?, ev.attempt);
        let log = self.api.log_tail("console text", &path).await?;
        Ok(vec![JobLog {
            job: FailedJob {
                id: ev.attempt.to_string(),
                name: ev.repository.clone(),
                ..Default::default()
            },
            log: log.unwrap_or_default(),
        }])
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        _jobs: &[FailedJob],
        _all_failed: bool,
    ) -> Result<String, PlatformError> {
        // Jenkins rebuilds a whole build: there is no per-stage re-run in the remote API.
        self.rebuild_with(ev, &[]).await
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    fn rerun_starts_new_run(&self) -> bool {
        false
    }

    /// The rebuild is the job's next build, which the run's next attempt already stands for.
    async fn rerun_with(
        &self,
        ev: &FailureEvent,
        _workflow: Option<&str>,
        inputs: &[(String, String)],
    ) -> Result<Rerun, PlatformError> {
        Ok(Rerun {
            detail: self.rebuild_with(ev, inputs).await?,
            new_run_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn form_encoding() {
        assert_eq!(form(&[("A B".into(), "x&y=z".into())]), "A%20B=x%26y%3Dz");
    }

    #[tokio::test]
    async fn rebuild_with_overrides_merges_parameters() {
        use wiremock::matchers::{body_string, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mock = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/job/f/job/app/3/api/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"actions": [
                {"parameters": [{"name": "LABEL", "value": "small"}, {"name": "DEBUG", "value": false}]}
            ]})))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/job/f/job/app/buildWithParameters"))
            .and(body_string("LABEL=large&DEBUG=false&WIPE=true"))
            .respond_with(ResponseTemplate::new(201))
            .expect(1)
            .mount(&mock)
            .await;
        let j = JenkinsClient::new(
            &Section {
                api_url: mock.uri(),
                user: Some("u".into()),
                token: Some("t".into()),
                ..Default::default()
            },
            &HttpOptions {
                tries: 1,
                backoff: Duration::from_millis(1),
                ..Default::default()
            },
        );
        let ev = FailureEvent {
            repository: "f/app".into(),
            attempt: 3,
            ..Default::default()
        };
        let done = j
            .rebuild_with(
                &ev,
                &[
                    ("LABEL".into(), "large".into()),
                    ("WIPE".into(), "true".into()),
                ],
            )
            .await
            .unwrap();
        assert!(done.contains("3 parameter(s)"), "{done}");
        mock.verify().await;
    }
}
