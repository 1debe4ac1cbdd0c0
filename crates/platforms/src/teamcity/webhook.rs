//! TeamCity's webhook envelope `{eventType, payload}` around a REST `Build`.

use super::NO_REVISION;
use crate::webhook::{idempotency_key, Delivery, WebhookRequest};
use crate::{ParseError, Parsed};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform, Runner};
use pipeguard_core::runners::RunnerJob;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BuildType {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub project_name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Revision {
    pub version: String,
}

#[derive(Deserialize)]
pub(super) struct Revisions {
    #[serde(default)]
    pub revision: Vec<Revision>,
}

/// The agent a build ran on (the REST `agent` of a build: `id`, `name`, `typeId`, `href`).
#[derive(Deserialize)]
pub(super) struct Agent {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Agent {
    /// Named as TeamCity shows it; the id is what `/app/rest/agents/id:…` takes.
    fn runner(&self) -> Option<Runner> {
        Runner::new(self.name.as_deref(), self.id.map(|i| i.to_string()))
    }
}

/// The REST API's build, as webhooks and `/app/rest/builds/id:…` give it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Build {
    pub id: u64,
    pub build_type_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub branch_name: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub status_text: Option<String>,
    #[serde(default)]
    pub build_type: Option<BuildType>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub finish_date: Option<String>,
    #[serde(default)]
    pub revisions: Option<Revisions>,
    #[serde(default)]
    pub personal: bool,
    #[serde(default)]
    pub agent: Option<Agent>,
}

impl Build {
    /// The attempt is the build id: it rises with every build on the server.
    pub fn attempt(&self) -> Result<u32, String> {
        u32::try_from(self.id).map_err(|_| format!("build id {} is out of range", self.id))
    }

    pub fn run_id(&self) -> String {
        self.revisions
            .as_ref()
            .and_then(|r| r.revision.first())
            .map(|r| r.version.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| NO_REVISION.to_string())
    }

    /// The build as the one failed job of its run: the configuration's name and project are
    /// what says it deploys.
    pub fn to_failed(&self) -> FailedJob {
        let t = self.build_type.as_ref();
        FailedJob {
            id: self.id.to_string(),
            name: t
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| self.build_type_id.clone()),
            stage: t.and_then(|t| t.project_name.clone()),
            environment: None,
            platform_reason: self.status_text.clone(),
            runner: self.agent.as_ref().and_then(Agent::runner),
        }
    }

    /// The finished build as one job on its agent, passed or failed.
    fn runner_job(&self) -> Option<RunnerJob> {
        let failed = match self.status.as_deref() {
            Some("SUCCESS") => false,
            Some("FAILURE") => true,
            _ => return None,
        };
        Some(RunnerJob {
            runner: self.agent.as_ref().and_then(Agent::runner)?,
            job_id: self.id.to_string(),
            repository: self.build_type_id.clone(),
            failed,
        })
    }
}

/// Epoch milliseconds of TeamCity's REST dates, `20240408T162702+0200`.
pub fn parse_teamcity_time(s: Option<&str>) -> Option<i64> {
    use time::macros::format_description;
    let fmt = format_description!(
        "[year][month][day]T[hour][minute][second][offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(s?.trim(), fmt).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    event_type: String,
    #[serde(default)]
    payload: Value,
}

/// Parses one delivery. It has no id of its own: the event and the build's id name it, so a
/// retried send is a replay.
pub fn parse_delivery(req: &WebhookRequest) -> Result<Delivery, ParseError> {
    let value: Value =
        serde_json::from_slice(req.body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    let env: Envelope = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("TeamCity webhook: {e}")))?;
    let id = match env.payload["id"].as_u64() {
        Some(build) => format!("{}:{build}", env.event_type),
        None => idempotency_key(req),
    };
    let (parsed, runners) = match env.event_type.as_str() {
        "BUILD_FINISHED" => parse_finished(env.payload)?,
        other => (
            Parsed::Ignored(format!("event {other:?} is not handled")),
            vec![],
        ),
    };
    Ok(Delivery {
        id,
        parsed,
        runners,
    })
}

/// The build's meaning and, from the same parse, the build as a job on its agent.
fn parse_finished(payload: Value) -> Result<(Parsed, Vec<RunnerJob>), ParseError> {
    let b: Build = serde_json::from_value(payload)
        .map_err(|e| ParseError::Shape(format!("BUILD_FINISHED payload: {e}")))?;
    if b.personal {
        return Ok((Parsed::Ignored("personal build".into()), vec![]));
    }
    let seen = b.runner_job().into_iter().collect();
    Ok((build_parsed(b)?, seen))
}

fn build_parsed(b: Build) -> Result<Parsed, ParseError> {
    let attempt = b.attempt().map_err(ParseError::Shape)?;
    let finished = parse_teamcity_time(b.finish_date.as_deref());
    let run_id = b.run_id();
    match b.status.as_deref().unwrap_or("") {
        "SUCCESS" => Ok(Parsed::Success {
            repository: b.build_type_id,
            workflow: None,
            run_id,
            attempt,
            finished_at_ms: finished,
            commit: None,
        }),
        "FAILURE" => {
            let branch = b.branch_name.clone().filter(|n| n != "<default>");
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Teamcity),
                repository: b.build_type_id.clone(),
                head_sha: (run_id != NO_REVISION).then(|| run_id.clone()),
                run_id,
                attempt,
                workflow: b
                    .build_type
                    .as_ref()
                    .and_then(|t| t.name.clone())
                    .unwrap_or_default(),
                branch,
                url: b.web_url.clone(),
                jobs: vec![b.to_failed()],
                started_at_ms: parse_teamcity_time(b.start_date.as_deref()),
                finished_at_ms: finished,
                ..Default::default()
            })))
        }
        other => Ok(Parsed::Ignored(format!("build status {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/teamcity/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse(body: &[u8]) -> Result<Delivery, ParseError> {
        parse_delivery(&WebhookRequest {
            headers: &HeaderMap::new(),
            query: None,
            body,
        })
    }

    #[test]
    fn failed_build_is_its_configuration_s_run_on_the_revision() {
        let d = parse(&fixture("build_finished_failure.json")).unwrap();
        assert_eq!(d.id, "BUILD_FINISHED:8134");
        let Parsed::Failure(ev) = d.parsed else {
            panic!("expected a failure")
        };
        assert_eq!(ev.repository, "ProjectName_BuildConfName");
        assert_eq!(ev.run_id, "6feff116ab9ad0d3af686526a6ff96272620e70f");
        assert_eq!(ev.attempt, 8134);
        assert_eq!(ev.branch.as_deref(), Some("main"));
        assert_eq!(ev.workflow, "Build");
        let j = &ev.jobs[0];
        assert_eq!((j.id.as_str(), j.name.as_str()), ("8134", "Build"));
        assert_eq!(j.stage.as_deref(), Some("ProjectName"));
        assert_eq!(
            j.platform_reason.as_deref(),
            Some("Exit code 1 (Step: Gradle)")
        );
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            63_000
        );
    }

    #[test]
    fn a_later_success_on_the_revision_is_a_higher_attempt() {
        let d = parse(&fixture("build_finished_success.json")).unwrap();
        assert!(matches!(
            d.parsed,
            Parsed::Success { attempt: 8140, ref run_id, ref repository, .. }
                if run_id == "6feff116ab9ad0d3af686526a6ff96272620e70f"
                    && repository == "ProjectName_BuildConfName"
        ));
    }

    #[test]
    fn interrupted_personal_and_revisionless_builds() {
        assert!(matches!(
            parse(&fixture("build_interrupted.json")).unwrap().parsed,
            Parsed::Ignored(_)
        ));
        let mut v: Value = serde_json::from_slice(&fixture("build_finished_failure.json")).unwrap();
        v["payload"]["personal"] = Value::Bool(true);
        assert!(matches!(
            parse(v.to_string().as_bytes()).unwrap().parsed,
            Parsed::Ignored(_)
        ));
        v["payload"]["personal"] = Value::Bool(false);
        v["payload"]["revisions"] = serde_json::json!({"count": 0});
        let Parsed::Failure(ev) = parse(v.to_string().as_bytes()).unwrap().parsed else {
            panic!()
        };
        assert_eq!(ev.run_id, NO_REVISION);
        assert_eq!(ev.head_sha, None);
    }

    #[test]
    fn finished_builds_are_counted_on_their_agent() {
        let failed = parse(&fixture("build_finished_failure.json")).unwrap();
        let seen: Vec<_> = failed
            .runners
            .iter()
            .map(|j| {
                (
                    j.runner.name.as_str(),
                    j.runner.id.as_deref(),
                    j.job_id.as_str(),
                    j.repository.as_str(),
                    j.failed,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [(
                "agent-1",
                Some("3"),
                "8134",
                "ProjectName_BuildConfName",
                true
            )]
        );
        let Parsed::Failure(ev) = failed.parsed else {
            panic!("expected a failure")
        };
        let runner = ev.jobs[0].runner.as_ref().unwrap();
        assert_eq!(
            (runner.name.as_str(), runner.id.as_deref()),
            ("agent-1", Some("3"))
        );

        let passed = parse(&fixture("build_finished_success.json")).unwrap();
        assert_eq!(passed.runners.len(), 1);
        assert!(
            !passed.runners[0].failed,
            "a passed build counts as a job, not a failure"
        );
        // Interrupted and personal builds are not the agent's record; nor is a build with
        // no agent (fields configured without it).
        assert!(parse(&fixture("build_interrupted.json"))
            .unwrap()
            .runners
            .is_empty());
        let mut v: Value = serde_json::from_slice(&fixture("build_finished_failure.json")).unwrap();
        v["payload"]["personal"] = Value::Bool(true);
        assert!(parse(v.to_string().as_bytes()).unwrap().runners.is_empty());
        v["payload"]["personal"] = Value::Bool(false);
        v["payload"].as_object_mut().unwrap().remove("agent");
        let d = parse(v.to_string().as_bytes()).unwrap();
        assert!(d.runners.is_empty());
        assert!(matches!(d.parsed, Parsed::Failure(ev) if ev.jobs[0].runner.is_none()));
    }

    #[test]
    fn dates_in_teamcity_format() {
        assert_eq!(parse_teamcity_time(Some("19700101T010000+0100")), Some(0));
        assert_eq!(parse_teamcity_time(Some("2024-04-08T16:27:02Z")), None);
        assert_eq!(parse_teamcity_time(None), None);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse(b"{"), Err(ParseError::Json(_))));
        assert!(matches!(parse(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse(br#"{"payload": {}}"#),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"eventType": "BUILD_FINISHED", "payload": {"id": 1}}"#),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"eventType": "BUILD_FINISHED", "payload": {"id": 99999999999, "buildTypeId": "X", "status": "FAILURE"}}"#),
            Err(ParseError::Shape(_))
        ));
    }
}
