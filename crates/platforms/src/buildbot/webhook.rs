//! Buildbot's `HttpStatusPush` reports: the build dicts its default formatter posts.

use super::{CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS};
use crate::webhook::Delivery;
use crate::{ParseError, Parsed};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

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
pub(super) fn secs_to_ms(s: Option<f64>) -> Option<i64> {
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
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, ParseError> {
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
        return Ok(Delivery::new(
            key,
            Parsed::Ignored("build not complete yet".into()),
        ));
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
            workflow: None,
            run_id,
            attempt,
            finished_at_ms,
            commit: None,
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
    Ok(Delivery::new(key, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let d = parse_delivery(&build(1, 1, FAILURE, None)).unwrap();
        assert_eq!(d.id, "build-1-complete");
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
        let d = parse_delivery(&build(7, 4, SUCCESS, Some(1))).unwrap();
        assert_eq!(
            d.parsed,
            Parsed::Success {
                repository: "flaky".into(),
                workflow: None,
                run_id: "1".into(),
                attempt: 4,
                finished_at_ms: Some(1_795_435_092_000),
                commit: None,
            }
        );
        let Parsed::Failure(ev) = parse_delivery(&build(8, 5, EXCEPTION, Some(1)))
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
        let d = parse_delivery(v.to_string().as_bytes()).unwrap();
        assert_eq!(d.id, "build-3-new");
        assert!(matches!(d.parsed, Parsed::Ignored(_)));
        for r in [SKIPPED, RETRY, CANCELLED] {
            assert!(matches!(
                parse_delivery(&build(3, 3, r, None)).unwrap().parsed,
                Parsed::Ignored(_)
            ));
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse_delivery(b"{nope"), Err(ParseError::Json(_))));
        assert!(matches!(parse_delivery(b"[1]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_delivery(b"{\"complete\": true, \"buildid\": 1}"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_delivery(b"{\"complete\": \"yes\"}"),
            Err(ParseError::Shape(_))
        ));
    }
}
