//! The remote access API: build state, console text, rebuilds with parameters.

use crate::api::{encode, read_json, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::webhook::{label_char, valid_path};
use crate::{require, Ci, JobLog, PlatformError, Rerun, Retried, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
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

/// The crumb to send with a POST, and the session cookie it belongs to.
struct CrumbHeader {
    field: String,
    value: String,
    cookie: Option<String>,
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

/// A label expression asking for what `original` asked for (any node when empty) on none of
/// `nodes`. Names are quoted: a quoted string is always one label, whatever it holds.
fn avoid_label(original: Option<&str>, nodes: &[String]) -> String {
    let quote = |n: &str| format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\""));
    let original = original.map(str::trim).filter(|o| !o.is_empty());
    // A rebuild of a build already steered keeps its exclusions once.
    let excluded: Vec<String> = nodes
        .iter()
        .map(|n| format!("!{}", quote(n)))
        .filter(|x| !original.is_some_and(|o| o.contains(x.as_str())))
        .collect();
    match (original, excluded.is_empty()) {
        (Some(o), true) => o.to_string(),
        (Some(o), false) => format!("({o}) && {}", excluded.join(" && ")),
        (None, _) => excluded.join(" && "),
    }
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

    /// The CSRF crumb header, when Jenkins issues one (404 = CSRF protection off), with the
    /// web session cookie it is bound to: with a password (rather than an API token) the
    /// crumb is only valid in that session.
    async fn crumb(&self) -> Result<Option<CrumbHeader>, PlatformError> {
        let r = match self
            .api
            .call("crumb issuer", Method::GET, "/crumbIssuer/api/json", None)
            .await
        {
            Ok(r) => r,
            Err(PlatformError::Refused { message, .. }) => {
                tracing::debug!("no CSRF crumb: {message}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let cookie: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next().map(str::to_string))
            .collect();
        let c: Crumb = read_json("crumb issuer", r).await?;
        Ok(Some(CrumbHeader {
            field: c.crumb_request_field,
            value: c.crumb,
            cookie: (!cookie.is_empty()).then(|| cookie.join("; ")),
        }))
    }

    /// The parameters the job declares: Jenkins silently drops any other (SECURITY-170), so
    /// an input it would drop is refused here instead of reported as sent.
    async fn declared(&self, ev: &FailureEvent) -> Result<Vec<String>, PlatformError> {
        let path = format!(
            "{}api/json?tree=property[parameterDefinitions[name]]",
            self.job(ev)?
        );
        let v: Value = self.api.get_json("job parameters", &path).await?;
        Ok(v["property"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["parameterDefinitions"].as_array().into_iter().flatten())
            .filter_map(|d| d["name"].as_str().map(String::from))
            .collect())
    }

    /// The build a queue item became (`executable.number`), waiting out the quiet period and
    /// a build already running; `None` when it did not start in time.
    async fn build_of(&self, location: &str) -> Result<Option<u32>, PlatformError> {
        let url = format!("{}/api/json", location.trim_end_matches('/'));
        for wait in [0u64, 250, 500, 1000, 1000, 2000, 2000, 4000, 4000, 4000] {
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            let item: Value = self.api.get_json("queue item", &url).await?;
            if item["cancelled"].as_bool() == Some(true) {
                return Err(PlatformError::Permanent(format!(
                    "the queued build was cancelled ({url})"
                )));
            }
            if let Some(n) = item["executable"]["number"].as_u64() {
                return Ok(u32::try_from(n).ok());
            }
        }
        Ok(None)
    }

    /// A form POST with the CSRF crumb and the session cookie it belongs to, when Jenkins
    /// issued one.
    fn form_post(
        &self,
        url: &str,
        body: &str,
        crumb: Option<&CrumbHeader>,
    ) -> reqwest::RequestBuilder {
        let mut b = self
            .api
            .request(Method::POST, url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(c) = crumb {
            b = b.header(c.field.as_str(), c.value.as_str());
            if let Some(cookie) = &c.cookie {
                b = b.header("Cookie", cookie);
            }
        }
        b
    }

    /// The node the build ran on (`builtOn`; empty for the built-in node, which is never
    /// taken out). Only counted: an error leaves the build without a node.
    async fn built_on(&self, ev: &FailureEvent) -> Option<Runner> {
        let path = format!("{}{}/api/json?tree=builtOn", self.job(ev).ok()?, ev.attempt);
        let b: Value = self.api.get_json("build node", &path).await.ok()?;
        Runner::new(b["builtOn"].as_str(), None)
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
    ) -> Result<(String, Option<u32>), PlatformError> {
        require(
            self.api.has_credentials(),
            "PIPEGUARD_JENKINS_USER and PIPEGUARD_JENKINS_TOKEN are needed to rebuild",
        )?;
        let job = self.job(ev)?;
        if !overrides.is_empty() {
            let declared = self.declared(ev).await?;
            if let Some((k, _)) = overrides.iter().find(|(k, _)| !declared.contains(k)) {
                return Err(PlatformError::NotConfigured(format!(
                    "the job does not declare the parameter {k}; Jenkins would drop it"
                )));
            }
        }
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
        let r = self
            .api
            .send_with("rebuild", 1, || self.form_post(&url, &body, crumb.as_ref()))
            .await?;
        let queued = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The build is queued whatever happens now: failing to read the queue item only
        // means any next build will count as the outcome.
        let build = match &queued {
            Some(location) => self.build_of(location).await.unwrap_or_else(|e| {
                tracing::warn!("cannot follow the queued build: {e}");
                None
            }),
            None => None,
        };
        let detail = match build {
            Some(n) => format!("POST {url} ({} parameter(s)) -> build #{n}", params.len()),
            None => format!(
                "POST {url} ({} parameter(s)) -> queued {}",
                params.len(),
                queued.as_deref().unwrap_or("(no queue item)")
            ),
        };
        Ok((detail, build))
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
                runner: self.built_on(ev).await,
                ..Default::default()
            },
            log: log.unwrap_or_default(),
        }])
    }

    fn can_take_out_runners(&self) -> bool {
        self.api.has_credentials()
    }

    /// Marks the node temporarily offline (`toggleOffline`, which flips the state: a node
    /// already offline is left as it is). Its running build goes on; no new one starts.
    async fn take_out_runner(&self, runner: &Runner) -> Result<String, PlatformError> {
        require(
            self.api.has_credentials(),
            "Jenkins credentials are not set",
        )?;
        let node = format!("/computer/{}/", encode(&runner.name));
        let state: Value = self
            .api
            .get_json("node", &format!("{node}api/json?tree=offline"))
            .await?;
        if state["offline"].as_bool() == Some(true) {
            return Ok(format!("node {} is already offline", runner.name));
        }
        let crumb = self.crumb().await?;
        let message = "pipeguard: fails unrelated jobs far more often than its pool";
        let url = self.api.url(&format!("{node}toggleOffline"));
        let body = form(&[("offlineMessage".to_string(), message.to_string())]);
        self.api
            .send_with("take node offline", 1, || {
                self.form_post(&url, &body, crumb.as_ref())
            })
            .await?;
        Ok(format!("POST {node}toggleOffline"))
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        jobs: &[FailedJob],
        all_failed: bool,
    ) -> Result<String, PlatformError> {
        Ok(self.retry_tracked(ev, jobs, all_failed).await?.detail)
    }

    /// Jenkins rebuilds a whole build (there is no per-stage re-run in the remote API); the
    /// queue item tells which build is ours, so someone else's build finishing first is not
    /// taken for the heal's outcome.
    async fn retry_tracked(
        &self,
        ev: &FailureEvent,
        _jobs: &[FailedJob],
        _all_failed: bool,
    ) -> Result<Retried, PlatformError> {
        let (detail, attempt) = self.rebuild_with(ev, &[]).await?;
        Ok(Retried { detail, attempt })
    }

    async fn attempt_state(
        &self,
        ev: &FailureEvent,
        attempt: u32,
    ) -> Result<RunState, PlatformError> {
        let path = format!(
            "{}{attempt}/api/json?tree=number,building,result,timestamp,duration",
            self.job(ev)?
        );
        let b: ApiBuild = match self.api.get_json("build", &path).await {
            Ok(b) => b,
            // Not started yet: still queued.
            Err(PlatformError::Refused { status: 404, .. }) => {
                return Ok(RunState::InProgress { attempt })
            }
            Err(e) => return Err(e),
        };
        if b.building || b.result.is_none() {
            return Ok(RunState::InProgress { attempt });
        }
        Ok(RunState::Completed {
            attempt,
            success: b.result.as_deref() == Some("SUCCESS"),
            finished_at_ms: b.timestamp.zip(b.duration).map(|(t, d)| t + d),
        })
    }

    fn can_rerun_with(&self) -> bool {
        self.api.has_credentials()
    }

    fn can_steer_runners(&self) -> bool {
        self.configured && self.api.has_credentials()
    }

    /// Rebuilds with the label parameter narrowed to exclude the nodes (a node's name is a
    /// label of its own): what the failed build asked for, and none of them.
    async fn rerun_avoiding(
        &self,
        ev: &FailureEvent,
        parameter: &str,
        runners: &[String],
    ) -> Result<Rerun, PlatformError> {
        let params = self.parameters(ev).await?;
        let original = params
            .iter()
            .find(|(k, _)| k == parameter)
            .map(|(_, v)| v.as_str());
        let label = avoid_label(original, runners);
        let overrides = [(parameter.to_string(), label.clone())];
        let (detail, new_attempt) = self.rebuild_with(ev, &overrides).await?;
        Ok(Rerun {
            detail: format!("{detail}; {parameter}={label}"),
            new_run_id: None,
            new_attempt,
        })
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
        let (detail, new_attempt) = self.rebuild_with(ev, inputs).await?;
        Ok(Rerun {
            detail,
            new_run_id: None,
            new_attempt,
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

    #[test]
    fn a_steered_label_keeps_what_the_build_asked_for_and_excludes_the_nodes() {
        let nodes = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(avoid_label(None, &nodes(&["agent-3"])), r#"!"agent-3""#);
        assert_eq!(
            avoid_label(Some("  "), &nodes(&["agent-3"])),
            r#"!"agent-3""#
        );
        assert_eq!(
            avoid_label(Some("linux || mac"), &nodes(&["agent-3", "agent-9"])),
            r#"(linux || mac) && !"agent-3" && !"agent-9""#
        );
        // Quotes and backslashes in a node name stay inside its string.
        assert_eq!(
            avoid_label(None, &nodes(&[r#"odd "name"\x"#])),
            r#"!"odd \"name\"\\x""#
        );
        // A build steered before keeps its exclusions once; a new one is added.
        let once = avoid_label(Some("linux"), &nodes(&["agent-3"]));
        assert_eq!(avoid_label(Some(&once), &nodes(&["agent-3"])), once);
        assert_eq!(
            avoid_label(Some(&once), &nodes(&["agent-30"])),
            format!(r#"({once}) && !"agent-30""#)
        );
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
        Mock::given(method("GET"))
            .and(path("/job/f/job/app/api/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"property": [
                {"parameterDefinitions": [{"name": "LABEL"}, {"name": "DEBUG"}, {"name": "WIPE"}]}
            ]})))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/job/f/job/app/buildWithParameters"))
            .and(body_string("LABEL=large&DEBUG=false&WIPE=true"))
            .respond_with(
                ResponseTemplate::new(201)
                    .insert_header("location", format!("{}/queue/item/77/", mock.uri())),
            )
            .expect(1)
            .mount(&mock)
            .await;
        // The queue item becomes build #4 after the quiet period.
        Mock::given(method("GET"))
            .and(path("/queue/item/77/api/json"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"executable": null,
                "why": "In the quiet period"})),
            )
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(method("GET"))
            .and(path("/queue/item/77/api/json"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"executable":
                {"number": 4, "url": "x"}})),
            )
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
        assert!(done.0.contains("3 parameter(s)"), "{}", done.0);
        assert_eq!(done.1, Some(4), "the queue item's build is the heal's");
        // An input the job does not declare would be dropped silently: refused before any POST.
        let err = j
            .rebuild_with(&ev, &[("RUNNER".into(), "xl".into())])
            .await
            .unwrap_err();
        assert!(
            matches!(err, PlatformError::NotConfigured(ref m) if m.contains("RUNNER")),
            "{err}"
        );
        mock.verify().await;
    }
}
