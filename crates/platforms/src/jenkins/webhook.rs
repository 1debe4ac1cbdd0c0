//! Jenkins deliveries: the Notification plugin's JSON, or a generic `{job, build, url, status}`.

use crate::webhook::Delivery;
use crate::{ParseError, Parsed};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

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
            workflow: None,
            run_id: repo,
            attempt: number,
            finished_at_ms: times.1,
            commit: None,
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

/// Parses a delivery: the Notification plugin's JSON or the generic form. Its id is the job,
/// build and phase (the plugin sends one delivery per phase).
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, ParseError> {
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
        return Ok(Delivery::new(key, parsed));
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
    Ok(Delivery::new(key, parsed))
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
        let d = parse_delivery(&note("COMPLETED", "FAILURE")).unwrap();
        let Parsed::Failure(ev) = d.parsed else {
            panic!()
        };
        assert_eq!(ev.repository, "team/api/main");
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("team/api/main", 18));
        assert_eq!(ev.head_sha.as_deref(), Some("abc"));
        assert_eq!(d.id, "team/api/main#18#COMPLETED");
        let fin = parse_delivery(&note("FINALIZED", "FAILURE")).unwrap();
        assert_ne!(fin.id, d.id, "each phase is its own delivery");
    }

    #[test]
    fn other_phases_and_statuses() {
        assert!(matches!(
            parse_delivery(&note("STARTED", "")).unwrap().parsed,
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse_delivery(&note("COMPLETED", "SUCCESS"))
                .unwrap()
                .parsed,
            Parsed::Success { attempt: 18, .. }
        ));
        assert!(matches!(
            parse_delivery(&note("COMPLETED", "ABORTED"))
                .unwrap()
                .parsed,
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn generic_form() {
        let d = parse_delivery(br#"{"job":"folder/app","build":"7","url":"https://ci/job/folder/job/app/7/","status":"FAILURE"}"#).unwrap();
        let Parsed::Failure(ev) = d.parsed else {
            panic!()
        };
        assert_eq!((ev.repository.as_str(), ev.attempt), ("folder/app", 7));
        assert!(parse_delivery(br#"{"job":"x","build":[1],"status":"FAILURE"}"#).is_err());
        assert!(parse_delivery(br#"{"job":"x","build":99999999999,"status":"FAILURE"}"#).is_err());
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_delivery(b"{x"), Err(ParseError::Json(_))));
        assert!(matches!(parse_delivery(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_delivery(br#"{"build":{"number":1}}"#),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn plugin_help_example_parses_when_present() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/fixtures/jenkins/notification-plugin/help-projectConfig.html__example.json",
        );
        let Some(f) = crate::require::require_path("the notification plugin's example", f) else {
            return;
        };
        let d = parse_delivery(&std::fs::read(f).unwrap()).unwrap();
        assert!(matches!(d.parsed, Parsed::Ignored(_)), "phase STARTED");
    }
}
