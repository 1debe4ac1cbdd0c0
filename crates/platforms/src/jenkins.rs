//! Jenkins: the Notification plugin's JSON (and a generic `{job, build, url, status}` form),
//! `consoleText` logs and rebuilds through the remote access API with an API token.
//!
//! Jenkins has no run attempt: a rebuild is a new build of the same job. So a job's full name
//! is the `run_id` and its build number the `attempt`; the next build's completion is the
//! outcome of the heal.

use crate::gitlab::encode_component;
use crate::http::{client, read_tail, send, LOG_TAIL_BYTES};
use crate::{Ci, JobLog, ParseError, Parsed, PlatformError, Rerun, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct JenkinsConfig {
    /// The Jenkins root URL, e.g. `https://ci.example.com/` or `https://host/jenkins/`.
    pub api_url: String,
    pub user: Option<String>,
    pub token: Option<String>,
    pub http_tries: u32,
    pub http_backoff: Duration,
}

/// A parsed delivery and the key that makes a redelivery a replay (job + build + phase).
#[derive(Debug)]
pub struct Delivery {
    pub parsed: Parsed,
    pub key: String,
}

/// `job/a/job/b/`, `http://host/jenkins/job/a/job/b/18/` or `a/b` → `a/b`.
pub fn job_path(url_or_name: &str) -> Option<String> {
    let s = url_or_name.trim();
    let s = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let segs: Vec<&str> = s.split('/').filter(|x| !x.is_empty()).collect();
    let names: Vec<&str> = if let Some(first) = segs.iter().position(|x| *x == "job") {
        // After the root: `job/<name>` pairs, then maybe a build number.
        segs[first..]
            .chunks(2)
            .take_while(|c| c.len() == 2 && c[0] == "job")
            .map(|c| c[1])
            .collect()
    } else if url_or_name.contains("://") {
        return None;
    } else {
        segs
    };
    if names.is_empty() {
        return None;
    }
    Some(names.join("/"))
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    name: Option<String>,
    url: String,
    build: NotifiedBuild,
}

#[derive(Deserialize)]
struct NotifiedBuild {
    number: u64,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    full_url: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    scm: Option<Scm>,
}

#[derive(Deserialize)]
struct Scm {
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    branch: Option<String>,
}

#[derive(Deserialize)]
struct Simple {
    job: String,
    build: Value,
    #[serde(default)]
    url: Option<String>,
    status: String,
}

fn outcome(
    repo: String,
    number: u32,
    status: &str,
    url: Option<String>,
    head_sha: Option<String>,
    branch: Option<String>,
    times: (Option<i64>, Option<i64>),
) -> Parsed {
    match status.to_ascii_uppercase().as_str() {
        "SUCCESS" => Parsed::Success {
            repository: repo.clone(),
            run_id: repo,
            attempt: number,
            finished_at_ms: times.1,
        },
        // FAILED is what the plugin's own help page shows; Jenkins itself says FAILURE.
        "FAILURE" | "FAILED" => Parsed::Failure(Box::new(FailureEvent {
            platform: Some(Platform::Jenkins),
            repository: repo.clone(),
            run_id: repo.clone(),
            attempt: number,
            workflow: repo.clone(),
            head_sha,
            branch,
            url,
            jobs: vec![FailedJob {
                id: number.to_string(),
                name: repo,
                ..Default::default()
            }],
            started_at_ms: times.0,
            finished_at_ms: times.1,
            ..Default::default()
        })),
        // UNSTABLE (test failures), ABORTED, NOT_BUILT: nothing a rebuild should blindly heal.
        other => Parsed::Ignored(format!("build status {other:?}")),
    }
}

/// Build numbers are attempts; one that does not fit is not a real Jenkins build.
fn build_number(n: u64) -> Result<u32, ParseError> {
    u32::try_from(n).map_err(|_| ParseError::Shape(format!("build number {n} is out of range")))
}

/// Parses a delivery: the Notification plugin's JSON or the generic form.
pub fn parse_webhook(body: &[u8]) -> Result<Delivery, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(ParseError::Shape("expected a JSON object".into()));
    };
    if obj.get("build").is_some_and(Value::is_object) {
        let n: Notification = serde_json::from_value(value)
            .map_err(|e| ParseError::Shape(format!("notification: {e}")))?;
        let repo = job_path(&n.url)
            .or_else(|| n.build.full_url.as_deref().and_then(job_path))
            .or(n.name.clone())
            .ok_or_else(|| ParseError::Shape("notification: no job path in url".into()))?;
        let b = n.build;
        let number = build_number(b.number)?;
        let key = format!("{repo}#{}#{}", b.number, b.phase);
        let status = b.status.clone().unwrap_or_default();
        // QUEUED and STARTED say nothing about the result; COMPLETED and FINALIZED do.
        let parsed = if !matches!(b.phase.as_str(), "COMPLETED" | "FINALIZED") {
            Parsed::Ignored(format!("phase {:?}", b.phase))
        } else {
            let finished = match (b.timestamp, b.duration) {
                (Some(t), Some(d)) if d > 0 => Some(t + d),
                _ => None,
            };
            let (sha, branch) = b.scm.map(|s| (s.commit, s.branch)).unwrap_or_default();
            outcome(
                repo,
                number,
                &status,
                b.full_url,
                sha,
                branch,
                (b.timestamp, finished),
            )
        };
        return Ok(Delivery { parsed, key });
    }
    let s: Simple = serde_json::from_value(value).map_err(|e| {
        ParseError::Shape(format!(
            "expected the notification plugin's JSON or {{job, build, url, status}}: {e}"
        ))
    })?;
    let number = match &s.build {
        Value::Number(n) => n.as_u64(),
        Value::String(x) => x.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ParseError::Shape("build must be a build number".into()))?;
    let number = build_number(number)?;
    let repo = job_path(&s.job).ok_or_else(|| ParseError::Shape("job is empty".into()))?;
    let key = format!("{repo}#{number}#{}", s.status.to_ascii_uppercase());
    let parsed = outcome(repo, number, &s.status, s.url, None, None, (None, None));
    Ok(Delivery { parsed, key })
}

pub struct Jenkins {
    cfg: JenkinsConfig,
    http: reqwest::Client,
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
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Jenkins {
    pub fn new(cfg: JenkinsConfig) -> Jenkins {
        Jenkins {
            cfg,
            http: client(),
        }
    }

    fn root(&self) -> Result<String, PlatformError> {
        if self.cfg.api_url.trim().is_empty() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_JENKINS_API_URL (the Jenkins root URL) is not set".into(),
            ));
        }
        Ok(format!("{}/", self.cfg.api_url.trim_end_matches('/')))
    }

    /// `a/b` → `<root>job/a/job/b/`: folders and multibranch branches are nested jobs.
    fn job_url(&self, ev: &FailureEvent) -> Result<String, PlatformError> {
        let mut u = self.root()?;
        for name in ev.repository.split('/').filter(|s| !s.is_empty()) {
            u.push_str("job/");
            u.push_str(&encode_component(name));
            u.push('/');
        }
        Ok(u)
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, url);
        match (&self.cfg.user, &self.cfg.token) {
            (Some(u), Some(t)) => b.basic_auth(u, Some(t)),
            _ => b,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
    ) -> Result<T, PlatformError> {
        send(what, self.cfg.http_tries, self.cfg.http_backoff, || {
            self.req(reqwest::Method::GET, url)
        })
        .await?
        .json()
        .await
        .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))
    }

    /// The CSRF crumb header, when Jenkins issues one (404 = CSRF protection off).
    async fn crumb(&self) -> Result<Option<(String, String)>, PlatformError> {
        let url = format!("{}crumbIssuer/api/json", self.root()?);
        match self.get_json::<Crumb>("crumb issuer", &url).await {
            Ok(c) => Ok(Some((c.crumb_request_field, c.crumb))),
            Err(PlatformError::Permanent(e)) => {
                tracing::debug!("no CSRF crumb: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The parameters the failed build ran with, to rebuild it the same way.
    async fn parameters(&self, ev: &FailureEvent) -> Result<Vec<(String, String)>, PlatformError> {
        let url = format!(
            "{}{}/api/json?tree=actions[parameters[name,value]]",
            self.job_url(ev)?,
            ev.attempt
        );
        let v: Value = self.get_json("build parameters", &url).await?;
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
}

#[async_trait]
impl Ci for Jenkins {
    fn platform(&self) -> Platform {
        Platform::Jenkins
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        Capabilities {
            retry: !self.cfg.api_url.is_empty()
                && self.cfg.user.is_some()
                && self.cfg.token.is_some(),
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        let url = format!(
            "{}lastBuild/api/json?tree=number,building,result,timestamp,duration",
            self.job_url(ev)?
        );
        let b: ApiBuild = self.get_json("last build", &url).await?;
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
        let url = format!("{}{}/consoleText", self.job_url(ev)?, ev.attempt);
        let log = match send(
            "console text",
            self.cfg.http_tries,
            self.cfg.http_backoff,
            || self.req(reqwest::Method::GET, &url),
        )
        .await
        {
            Ok(r) => read_tail(r, LOG_TAIL_BYTES, "console text").await?,
            // Builds get discarded by log rotation: diagnose without the log.
            Err(PlatformError::Permanent(e)) => {
                tracing::warn!(build = ev.attempt, "console unavailable: {e}");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(vec![JobLog {
            job: FailedJob {
                id: ev.attempt.to_string(),
                name: ev.repository.clone(),
                ..Default::default()
            },
            log,
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
        self.cfg.user.is_some() && self.cfg.token.is_some()
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

impl Jenkins {
    /// Rebuilds the event's job with the failed build's parameters, `overrides` replacing or
    /// adding some (a bigger agent label, a workspace-wipe flag…): the building block of
    /// scaling and environment-reset strategies.
    pub async fn rebuild_with(
        &self,
        ev: &FailureEvent,
        overrides: &[(String, String)],
    ) -> Result<String, PlatformError> {
        if self.cfg.user.is_none() || self.cfg.token.is_none() {
            return Err(PlatformError::NotConfigured(
                "PIPEGUARD_JENKINS_USER and PIPEGUARD_JENKINS_TOKEN are needed to rebuild".into(),
            ));
        }
        let job = self.job_url(ev)?;
        let mut params = self.parameters(ev).await?;
        for (k, v) in overrides {
            match params.iter_mut().find(|(name, _)| name == k) {
                Some(p) => p.1 = v.clone(),
                None => params.push((k.clone(), v.clone())),
            }
        }
        let crumb = self.crumb().await?;
        let (url, body) = if params.is_empty() {
            (format!("{job}build"), String::new())
        } else {
            (format!("{job}buildWithParameters"), form(&params))
        };
        send(
            "rebuild",
            self.cfg.http_tries,
            self.cfg.http_backoff,
            || {
                let mut b = self
                    .req(reqwest::Method::POST, &url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.clone());
                if let Some((field, value)) = &crumb {
                    b = b.header(field.as_str(), value.as_str());
                }
                b
            },
        )
        .await?;
        Ok(format!("POST {url} ({} parameter(s))", params.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(phase: &str, status: &str) -> Vec<u8> {
        json!({"name": "api", "url": "job/team/job/api/job/main/",
               "build": {"full_url": "https://ci.example.com/job/team/job/api/job/main/18/",
                         "number": 18, "phase": phase, "status": status,
                         "url": "job/team/job/api/job/main/18/",
                         "timestamp": 1_700_000_000_000i64, "duration": 60_000,
                         "scm": {"commit": "abc", "branch": "main"}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn job_paths_from_urls_and_names() {
        assert_eq!(job_path("job/a/job/b/").as_deref(), Some("a/b"));
        assert_eq!(
            job_path("https://h/jenkins/job/a/job/b/18/").as_deref(),
            Some("a/b")
        );
        assert_eq!(job_path("folder/app").as_deref(), Some("folder/app"));
        assert_eq!(job_path("https://h/"), None);
        assert_eq!(job_path(""), None);
    }

    #[test]
    fn completed_failure_is_a_failure_with_build_number_as_attempt() {
        let d = parse_webhook(&note("COMPLETED", "FAILURE")).unwrap();
        let Parsed::Failure(ev) = d.parsed else {
            panic!()
        };
        assert_eq!(ev.repository, "team/api/main");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("team/api/main", 18));
        assert_eq!(ev.head_sha.as_deref(), Some("abc"));
        assert_eq!(d.key, "team/api/main#18#COMPLETED");
        let fin = parse_webhook(&note("FINALIZED", "FAILURE")).unwrap();
        assert_ne!(fin.key, d.key, "each phase is its own delivery");
    }

    #[test]
    fn other_phases_and_statuses() {
        assert!(matches!(
            parse_webhook(&note("STARTED", "")).unwrap().parsed,
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_webhook(&note("COMPLETED", "SUCCESS")).unwrap().parsed,
            Parsed::Success { attempt: 18, .. }
        ));
        assert!(matches!(
            parse_webhook(&note("COMPLETED", "ABORTED")).unwrap().parsed,
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn generic_form() {
        let d = parse_webhook(br#"{"job":"folder/app","build":"7","url":"https://ci/job/folder/job/app/7/","status":"FAILURE"}"#).unwrap();
        let Parsed::Failure(ev) = d.parsed else {
            panic!()
        };
        assert_eq!((ev.repository.as_str(), ev.attempt), ("folder/app", 7));
        assert!(parse_webhook(br#"{"job":"x","build":[1],"status":"FAILURE"}"#).is_err());
        assert!(parse_webhook(br#"{"job":"x","build":99999999999,"status":"FAILURE"}"#).is_err());
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_webhook(b"{x"), Err(ParseError::Json(_))));
        assert!(matches!(parse_webhook(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_webhook(br#"{"build":{"number":1}}"#),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn plugin_help_example_parses_when_present() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/fixtures/jenkins/notification-plugin/help-projectConfig.html__example.json",
        );
        if !f.exists() {
            eprintln!("skipping: {} not present", f.display());
            return;
        }
        let d = parse_webhook(&std::fs::read(f).unwrap()).unwrap();
        assert!(matches!(d.parsed, Parsed::Ignored(_)), "phase STARTED");
    }

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
        let j = Jenkins::new(JenkinsConfig {
            api_url: mock.uri(),
            user: Some("u".into()),
            token: Some("t".into()),
            http_tries: 1,
            http_backoff: Duration::from_millis(1),
        });
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
