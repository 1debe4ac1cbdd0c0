//! Buildbot: the build dicts its `HttpStatusPush` reporter posts, and its REST/data API (v2).
//!
//! Buildbot has no "run attempt": rebuilding a build (the data API's `rebuild` control action)
//! makes a new buildset whose `rebuilt_buildid` names the *first* build of the chain, however
//! often it was rebuilt. So a run is that first build (`run_id` = its `buildid`, or the
//! build's own id when it is not a rebuild) and the attempt is the build `number`, which rises
//! with every build of the builder: a rebuild always reports a higher attempt than the build it
//! re-runs, so its result arrives as the outcome of the heal. The repository is the builder.

use crate::http::{client, send};
use crate::{Ci, JobLog, ParseError, Parsed, PlatformError, RunState};
use async_trait::async_trait;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::policy::Capabilities;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Buildbot's result codes (`buildbot.process.results`).
pub const SUCCESS: i64 = 0;
pub const WARNINGS: i64 = 1;
pub const FAILURE: i64 = 2;
pub const SKIPPED: i64 = 3;
pub const EXCEPTION: i64 = 4;
pub const RETRY: i64 = 5;
pub const CANCELLED: i64 = 6;

#[derive(Debug, Clone)]
pub struct BuildbotConfig {
    /// Root of the master's web server (the API lives under `/api/v2`).
    pub api_url: String,
    /// A user of the master's `www` auth, when the API is not open to anonymous users.
    pub user: Option<String>,
    pub password: Option<String>,
    pub http_tries: u32,
    pub http_backoff: Duration,
}

impl Default for BuildbotConfig {
    fn default() -> Self {
        BuildbotConfig {
            api_url: "http://127.0.0.1:8010".into(),
            user: None,
            password: None,
            http_tries: 3,
            http_backoff: Duration::from_millis(500),
        }
    }
}

/// A parsed delivery with the key that deduplicates it: one per build and phase, since the
/// reporter posts the same build when it starts and when it completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub key: String,
    pub parsed: Parsed,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Buildset {
    #[serde(default)]
    rebuilt_buildid: Option<u64>,
}

#[derive(Deserialize)]
struct BuildDict {
    #[serde(default)]
    buildid: Option<u64>,
    #[serde(default)]
    number: Option<u64>,
    #[serde(default)]
    builderid: Option<u64>,
    #[serde(default)]
    buildrequestid: Option<u64>,
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    results: Option<i64>,
    #[serde(default)]
    started_at: Option<f64>,
    #[serde(default)]
    complete_at: Option<f64>,
    #[serde(default)]
    state_string: Option<String>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    builder: Option<Named>,
    #[serde(default)]
    buildset: Option<Buildset>,
    #[serde(default)]
    url: Option<String>,
}

/// Buildbot timestamps are epoch seconds (integers in the data API).
fn secs_to_ms(s: Option<f64>) -> Option<i64> {
    s.filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| (s * 1000.0).round() as i64)
}

/// A property's value: properties are `{name: [value, source]}`; empty strings mean unset.
fn prop(props: Option<&Value>, name: &str) -> Option<String> {
    match props?.get(name)?.get(0)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses one `HttpStatusPush` body (its default formatter posts the build dict as JSON).
pub fn parse_webhook(body: &[u8]) -> Result<Delivery, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object (a build)".into()));
    }
    let b: BuildDict =
        serde_json::from_value(value).map_err(|e| ParseError::Shape(format!("build: {e}")))?;
    if !b.complete {
        // A new build (or a build request not yet started): only results are healed.
        let key = match (b.buildid, b.buildrequestid) {
            (Some(id), _) => format!("build-{id}-new"),
            (None, Some(br)) => format!("buildrequest-{br}-new"),
            (None, None) => {
                return Err(ParseError::Shape(
                    "build: neither buildid nor buildrequestid".into(),
                ))
            }
        };
        return Ok(Delivery {
            key,
            parsed: Parsed::Ignored("build not complete yet".into()),
        });
    }
    let (Some(buildid), Some(number)) = (b.buildid, b.number) else {
        return Err(ParseError::Shape(
            "complete build without buildid or number".into(),
        ));
    };
    let results = b
        .results
        .ok_or_else(|| ParseError::Shape("complete build without results".into()))?;
    let key = format!("build-{buildid}-complete");
    let props = b.properties.as_ref();
    let builder = b
        .builder
        .and_then(|n| n.name)
        .or_else(|| prop(props, "buildername"))
        .or_else(|| b.builderid.map(|id| format!("builder-{id}")))
        .ok_or_else(|| ParseError::Shape("build without builder".into()))?;
    let run_id = b
        .buildset
        .and_then(|s| s.rebuilt_buildid)
        .unwrap_or(buildid)
        .to_string();
    let attempt = u32::try_from(number)
        .map_err(|_| ParseError::Shape(format!("build number {number} out of range")))?;
    let finished_at_ms = secs_to_ms(b.complete_at);
    let parsed = match results {
        SUCCESS | WARNINGS => Parsed::Success {
            repository: builder,
            run_id,
            attempt,
            finished_at_ms,
        },
        FAILURE | EXCEPTION => Parsed::Failure(Box::new(FailureEvent {
            platform: Some(Platform::Buildbot),
            repository: builder.clone(),
            run_id,
            attempt,
            workflow: builder.clone(),
            head_sha: prop(props, "got_revision").or_else(|| prop(props, "revision")),
            branch: prop(props, "branch"),
            url: b.url,
            jobs: vec![FailedJob {
                id: buildid.to_string(),
                name: builder,
                // An exception is Buildbot's own failure (lost worker, …), not the build's.
                platform_reason: (results == EXCEPTION)
                    .then(|| "exception".to_string())
                    .or(b.state_string),
                ..Default::default()
            }],
            started_at_ms: secs_to_ms(b.started_at),
            finished_at_ms,
            ..Default::default()
        })),
        // Skipped and cancelled builds were decided by people or config; RETRY is a build that
        // Buildbot itself already re-queues.
        SKIPPED => Parsed::Ignored("build skipped".into()),
        RETRY => Parsed::Ignored("build will be retried by Buildbot".into()),
        CANCELLED => Parsed::Ignored("build cancelled".into()),
        other => Parsed::Ignored(format!("unknown build result {other}")),
    };
    Ok(Delivery { key, parsed })
}

/// Decodes `Authorization: Basic …` into (user, password); `None` when it is not one.
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    let (scheme, data) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(data.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Standard base64 with padding (RFC 4648 §4): all Basic auth needs, without a dependency.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[derive(Deserialize)]
struct ApiBuild {
    buildid: u64,
    number: u64,
    builderid: u64,
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    results: Option<i64>,
    #[serde(default)]
    complete_at: Option<f64>,
}

#[derive(Deserialize)]
struct ApiStep {
    stepid: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    results: Option<i64>,
}

#[derive(Deserialize)]
struct ApiLog {
    logid: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    r#type: String,
}

#[derive(Deserialize)]
struct ApiBuildset {
    bsid: u64,
}

#[derive(Deserialize)]
struct ApiBuildRequest {
    buildrequestid: u64,
}

pub struct Buildbot {
    cfg: BuildbotConfig,
    http: reqwest::Client,
}

impl Buildbot {
    pub fn new(cfg: BuildbotConfig) -> Buildbot {
        Buildbot {
            cfg,
            http: client(),
        }
    }

    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, PlatformError> {
        let url = format!("{}/api/v2{}", self.cfg.api_url.trim_end_matches('/'), path);
        send(what, self.cfg.http_tries, self.cfg.http_backoff, || {
            let mut b = self.http.request(method.clone(), &url);
            if let Some(user) = &self.cfg.user {
                b = b.basic_auth(user, self.cfg.password.as_ref());
            }
            if let Some(body) = body {
                b = b.json(body);
            }
            b
        })
        .await
    }

    /// GETs a collection and returns its list (the API wraps lists as `{"<kind>": [...]}`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        kind: &str,
    ) -> Result<Vec<T>, PlatformError> {
        let mut v: Value = self
            .call(what, reqwest::Method::GET, path, None)
            .await?
            .json()
            .await
            .map_err(|e| PlatformError::Transient(format!("{what}: unreadable answer: {e}")))?;
        serde_json::from_value(v[kind].take())
            .map_err(|e| PlatformError::Permanent(format!("{what}: unexpected answer: {e}")))
    }

    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        kind: &str,
    ) -> Result<T, PlatformError> {
        self.list(what, path, kind)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| PlatformError::Permanent(format!("{what}: not found")))
    }

    /// The build that failed in the event's attempt: the delivery names it; after an outcome
    /// the worker keeps only run and attempt, so it is found by builder and number then.
    async fn failed_build(&self, ev: &FailureEvent) -> Result<ApiBuild, PlatformError> {
        if let Some(id) = ev.jobs.first().and_then(|j| j.id.parse::<u64>().ok()) {
            return self
                .one("get build", &format!("/builds/{id}"), "builds")
                .await;
        }
        let root: ApiBuild = self
            .one(
                "get first build",
                &format!("/builds/{}", ev.run_id),
                "builds",
            )
            .await?;
        self.one(
            "get build by number",
            &format!("/builders/{}/builds/{}", root.builderid, ev.attempt),
            "builds",
        )
        .await
    }

    /// The newest build of the run: the root, or the build of its latest rebuild.
    async fn newest_build(&self, ev: &FailureEvent) -> Result<Option<ApiBuild>, PlatformError> {
        let sets: Vec<ApiBuildset> = self
            .list(
                "list rebuilds",
                &format!(
                    "/buildsets?rebuilt_buildid={}&order=-bsid&limit=1",
                    ev.run_id
                ),
                "buildsets",
            )
            .await?;
        let Some(set) = sets.first() else {
            return self
                .one("get build", &format!("/builds/{}", ev.run_id), "builds")
                .await
                .map(Some);
        };
        let reqs: Vec<ApiBuildRequest> = self
            .list(
                "list build requests",
                &format!("/buildrequests?buildsetid={}", set.bsid),
                "buildrequests",
            )
            .await?;
        let Some(req) = reqs.first() else {
            return Ok(None);
        };
        let builds: Vec<ApiBuild> = self
            .list(
                "list builds of request",
                &format!("/buildrequests/{}/builds", req.buildrequestid),
                "builds",
            )
            .await?;
        Ok(builds.into_iter().max_by_key(|b| b.number))
    }
}

#[async_trait]
impl Ci for Buildbot {
    fn platform(&self) -> Platform {
        Platform::Buildbot
    }

    fn capabilities(&self, _event: &FailureEvent) -> Capabilities {
        // Rebuilds go through the data API, open to whoever the master's authz lets in.
        Capabilities {
            retry: true,
            ..Default::default()
        }
    }

    async fn run_state(&self, ev: &FailureEvent) -> Result<RunState, PlatformError> {
        match self.newest_build(ev).await? {
            // A rebuild was requested but no build started yet.
            None => Ok(RunState::InProgress {
                attempt: ev.attempt + 1,
            }),
            Some(b) if !b.complete => Ok(RunState::InProgress {
                attempt: b.number as u32,
            }),
            Some(b) => Ok(RunState::Completed {
                attempt: b.number as u32,
                success: matches!(b.results, Some(SUCCESS | WARNINGS)),
                finished_at_ms: secs_to_ms(b.complete_at),
            }),
        }
    }

    async fn failed_logs(&self, ev: &FailureEvent) -> Result<Vec<JobLog>, PlatformError> {
        let build = self.failed_build(ev).await?;
        let steps: Vec<ApiStep> = self
            .list(
                "list steps",
                &format!("/builds/{}/steps", build.buildid),
                "steps",
            )
            .await?;
        let mut out = Vec::new();
        for step in steps
            .into_iter()
            .filter(|s| matches!(s.results, Some(FAILURE | EXCEPTION)))
        {
            let logs: Vec<ApiLog> = self
                .list(
                    "list step logs",
                    &format!("/steps/{}/logs", step.stepid),
                    "logs",
                )
                .await?;
            let mut text = Vec::new();
            // Stdio and text logs; HTML logs are summaries meant for the UI.
            for log in logs.iter().filter(|l| l.r#type != "h") {
                let raw = self
                    .call(
                        "get raw log",
                        reqwest::Method::GET,
                        &format!("/logs/{}/raw", log.logid),
                        None,
                    )
                    .await?
                    .bytes()
                    .await
                    .map_err(|e| PlatformError::Transient(format!("raw log {}: {e}", log.name)))?;
                text.extend_from_slice(&raw);
                if !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
            }
            out.push(JobLog {
                job: FailedJob {
                    id: build.buildid.to_string(),
                    name: format!("{} / {}", ev.repository, step.name),
                    stage: Some(step.name),
                    platform_reason: ev.jobs.first().and_then(|j| j.platform_reason.clone()),
                    ..Default::default()
                },
                log: text,
            });
        }
        Ok(out)
    }

    async fn retry(
        &self,
        ev: &FailureEvent,
        _jobs: &[FailedJob],
        _all_failed: bool,
    ) -> Result<String, PlatformError> {
        // A build is one unit: rebuilding it re-runs every step with the same properties.
        let build = self.failed_build(ev).await?;
        let path = format!("/builds/{}", build.buildid);
        let rpc = json!({"id": 1, "jsonrpc": "2.0", "method": "rebuild", "params": {}});
        let answer: Value = self
            .call("rebuild", reqwest::Method::POST, &path, Some(&rpc))
            .await?
            .json()
            .await
            .map_err(|e| PlatformError::Transient(format!("rebuild: unreadable answer: {e}")))?;
        // JSON-RPC errors come with HTTP 200 (or 4xx/5xx, already handled by `send`).
        if let Some(err) = answer.get("error") {
            return Err(PlatformError::Permanent(format!("rebuild refused: {err}")));
        }
        let bsid = answer["result"][0].clone();
        Ok(format!("POST /api/v2{path} rebuild → buildset {bsid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body Buildbot 4.3's HttpStatusPush posted for a failed build (trimmed).
    fn build(buildid: u64, number: u64, results: i64, rebuilt: Option<u64>) -> Vec<u8> {
        json!({
            "buildid": buildid, "number": number, "builderid": 1, "buildrequestid": buildid,
            "workerid": 1, "masterid": 1, "started_at": 1795435090, "complete_at": 1795435092,
            "complete": true, "state_string": "failed 'sh -c ...' (failure)", "results": results,
            "properties": {"buildername": ["flaky", "Builder"], "branch": ["", "Build"],
                "revision": ["abc123", "Build"]},
            "buildset": {"bsid": buildid, "rebuilt_buildid": rebuilt, "sourcestamps": []},
            "builder": {"builderid": 1, "name": "flaky"},
            "url": "http://127.0.0.1:8010/#/builders/1/builds/1"
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn failed_build_is_a_failure_of_its_own_run() {
        let d = parse_webhook(&build(1, 1, FAILURE, None)).unwrap();
        assert_eq!(d.key, "build-1-complete");
        let Parsed::Failure(ev) = d.parsed else {
            panic!("expected a failure")
        };
        assert_eq!(
            (ev.repository.as_str(), ev.run_id.as_str(), ev.attempt),
            ("flaky", "1", 1)
        );
        assert_eq!(ev.head_sha.as_deref(), Some("abc123"));
        assert_eq!(ev.branch, None, "empty properties are unset");
        assert_eq!(ev.jobs[0].id, "1");
        assert_eq!(ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(), 2000);
    }

    #[test]
    fn rebuild_result_is_a_later_attempt_of_the_first_build() {
        let d = parse_webhook(&build(7, 4, SUCCESS, Some(1))).unwrap();
        assert_eq!(
            d.parsed,
            Parsed::Success {
                repository: "flaky".into(),
                run_id: "1".into(),
                attempt: 4,
                finished_at_ms: Some(1_795_435_092_000)
            }
        );
        let Parsed::Failure(ev) = parse_webhook(&build(8, 5, EXCEPTION, Some(1)))
            .unwrap()
            .parsed
        else {
            panic!()
        };
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("1", 5));
        assert_eq!(ev.jobs[0].platform_reason.as_deref(), Some("exception"));
    }

    #[test]
    fn unfinished_skipped_and_cancelled_builds_are_ignored() {
        let mut v: Value = serde_json::from_slice(&build(3, 3, FAILURE, None)).unwrap();
        v["complete"] = json!(false);
        v["results"] = Value::Null;
        let d = parse_webhook(v.to_string().as_bytes()).unwrap();
        assert_eq!(d.key, "build-3-new");
        assert!(matches!(d.parsed, Parsed::Ignored(_)));
        for r in [SKIPPED, RETRY, CANCELLED] {
            assert!(matches!(
                parse_webhook(&build(3, 3, r, None)).unwrap().parsed,
                Parsed::Ignored(_)
            ));
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse_webhook(b"{nope"), Err(ParseError::Json(_))));
        assert!(matches!(parse_webhook(b"[1]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_webhook(b"{\"complete\": true, \"buildid\": 1}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_webhook(b"{\"complete\": \"yes\"}"),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn basic_auth_is_decoded() {
        // What Buildbot sent for auth=('pg', 'sec').
        assert_eq!(
            parse_basic_auth("Basic cGc6c2Vj"),
            Some(("pg".into(), "sec".into()))
        );
        assert_eq!(
            parse_basic_auth("basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic_auth("Bearer cGc6c2Vj"), None);
        assert_eq!(parse_basic_auth("Basic !!!"), None);
    }
}
