//! The `build.complete` service hook delivery.

use crate::webhook::{idempotency_key, Delivery, WebhookRequest};
use crate::{parse_time_ms, ParseError, Parsed, OUTCOME_ATTEMPT};
use percent_encoding::percent_decode_str;
use pipeguard_core::event::{FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Href {
    href: String,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    web: Option<Href>,
}

#[derive(Deserialize)]
struct Definition {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    id: u64,
    url: String,
    /// `completed` (with `result`) in resource version 2.0; the result itself in 1.0.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    finish_time: Option<String>,
    #[serde(default)]
    source_branch: Option<String>,
    #[serde(default)]
    source_version: Option<String>,
    /// 1.0: `LG:refs/heads/master:<sha>`.
    #[serde(default)]
    source_get_version: Option<String>,
    #[serde(default)]
    definition: Option<Definition>,
    #[serde(default, rename = "_links")]
    links: Option<Links>,
    #[serde(default)]
    project: Option<ProjectRef>,
}

#[derive(Deserialize)]
struct ProjectRef {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    id: Option<String>,
    event_type: String,
    #[serde(default)]
    resource: Value,
    #[serde(default)]
    resource_containers: Value,
}

/// The organization (or collection path) and project that an API URL names before `/_apis/`:
/// `https://dev.azure.com/{org}/{project}/_apis/…`, `https://{org}.visualstudio.com/{project}/…`
/// or `https://server/tfs/{collection}/{project}/…`; segments are percent-decoded.
pub fn repository_from_url(url: &str) -> Option<String> {
    let segments = segments_before(url, "/_apis/")?;
    (segments.len() >= 2).then(|| segments.join("/"))
}

/// The path segments of `url` before `marker` (all of them for `""`), the organization of a
/// `{org}.visualstudio.com` host first.
fn segments_before(url: &str, marker: &str) -> Option<Vec<String>> {
    let (_, rest) = url.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = format!("/{path}");
    let cut = match marker {
        "" => path.len(),
        m => path.to_ascii_lowercase().find(m)?,
    };
    let mut segments = Vec::new();
    let host = host.split(':').next()?.to_ascii_lowercase();
    if let Some(org) = host.strip_suffix(".visualstudio.com") {
        segments.push(org.to_string());
    }
    for s in path[..cut].split('/').filter(|s| !s.is_empty()) {
        segments.push(percent_decode_str(s).decode_utf8().ok()?.into_owned());
    }
    Some(segments)
}

/// With minimal resource details `resource.url` is the web page
/// (`https://dev.azure.com/{org}/web/build.aspx?…`): the organization is then the containers'
/// `baseUrl` (or that page's prefix), the project `resource.project` or the project container.
fn repository_from_containers(r: &Resource, containers: &Value) -> Option<String> {
    let base = ["collection", "account", "project"]
        .iter()
        .find_map(|c| containers[c]["baseUrl"].as_str());
    let org = match base {
        Some(b) => segments_before(b, ""),
        None => segments_before(&r.url, "/web/build.aspx")
            .or_else(|| segments_before(&r.url, "/_build")),
    }
    .filter(|s| !s.is_empty())?;
    let project = r
        .project
        .as_ref()
        .and_then(|p| p.id.clone().or_else(|| p.name.clone()))
        .or_else(|| containers["project"]["id"].as_str().map(String::from))
        .filter(|p| !p.is_empty() && !p.contains('/'))?;
    Some(format!("{}/{project}", org.join("/")))
}

/// `refs/heads/main` → `main`; other refs (pull requests, tags) stay whole.
fn branch_name(r: &str) -> String {
    r.strip_prefix("refs/heads/").unwrap_or(r).to_string()
}

/// Parses one delivery; its id is the event's `id`, which a redelivery keeps.
pub fn parse_delivery(req: &WebhookRequest) -> Result<Delivery, ParseError> {
    let value: Value =
        serde_json::from_slice(req.body).map_err(|e| ParseError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(ParseError::Shape("expected a JSON object".into()));
    }
    let p: Payload = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("service hook: {e}")))?;
    let id =
        p.id.filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| idempotency_key(req));
    let parsed = if p.event_type == "build.complete" {
        parse_build(p.resource, &p.resource_containers)?
    } else {
        Parsed::Ignored(format!("event {:?} is not handled", p.event_type))
    };
    Ok(Delivery::new(id, parsed))
}

fn parse_build(resource: Value, containers: &Value) -> Result<Parsed, ParseError> {
    let r: Resource = serde_json::from_value(resource)
        .map_err(|e| ParseError::Shape(format!("build.complete resource: {e}")))?;
    let repository = repository_from_url(&r.url)
        .or_else(|| repository_from_containers(&r, containers))
        .ok_or_else(|| {
            ParseError::Shape(format!(
                "resource.url {:?} names no organization/project",
                r.url
            ))
        })?;
    let result = r
        .result
        .as_deref()
        .or(r.status.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let finished = parse_time_ms(r.finish_time.as_deref());
    match result.as_str() {
        // Tasks allowed to fail (continueOnError) do not fail the build.
        "succeeded" | "partiallysucceeded" => Ok(Parsed::Success {
            repository,
            workflow: None,
            run_id: r.id.to_string(),
            attempt: OUTCOME_ATTEMPT,
            finished_at_ms: finished,
            commit: None,
        }),
        "failed" => {
            let legacy = r.source_get_version.as_deref().map(|v| {
                let mut parts = v.splitn(3, ':').skip(1);
                (
                    parts.next().map(str::to_string),
                    parts.next().map(str::to_string),
                )
            });
            let branch = r
                .source_branch
                .clone()
                .or_else(|| legacy.as_ref().and_then(|l| l.0.clone()));
            let sha = r
                .source_version
                .clone()
                .or_else(|| legacy.and_then(|l| l.1));
            Ok(Parsed::Failure(Box::new(FailureEvent {
                platform: Some(Platform::Azure),
                repository,
                run_id: r.id.to_string(),
                attempt: 1,
                workflow: r.definition.and_then(|d| d.name).unwrap_or_default(),
                head_sha: sha,
                branch: branch.as_deref().map(branch_name),
                url: r.links.and_then(|l| l.web).map(|w| w.href),
                jobs: vec![],
                started_at_ms: parse_time_ms(r.start_time.as_deref()),
                finished_at_ms: finished,
                ..Default::default()
            })))
        }
        other => Ok(Parsed::Ignored(format!("build result {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/azure/{name}", env!("CARGO_MANIFEST_DIR"));
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
    fn failed_build_names_org_project_and_build() {
        let d = parse(&fixture("build_complete_failed.json")).unwrap();
        assert_eq!(d.id, "a0a0a0a0-bbbb-cccc-dddd-e1e1e1e1e1e1");
        let Parsed::Failure(ev) = d.parsed else {
            panic!("expected a failure")
        };
        assert_eq!(
            ev.repository,
            "FabrikamFiber/16dcfeeb-d8fd-495c-917b-fec46cb44fbb"
        );
        assert_eq!((ev.run_id.as_str(), ev.attempt), ("2727068", 1));
        assert_eq!(ev.workflow, "FabrikamFiber-CI");
        assert_eq!(ev.branch.as_deref(), Some("main"));
        assert_eq!(
            ev.head_sha.as_deref(),
            Some("600c52d2d5b655caa111abfd863e5a9bd304bb0e")
        );
        assert!(ev.url.unwrap().ends_with("_build/results?buildId=2727068"));
        assert_eq!(
            ev.finished_at_ms.unwrap() - ev.started_at_ms.unwrap(),
            240_000
        );
    }

    #[test]
    fn success_is_the_outcome() {
        let d = parse(&fixture("build_complete_succeeded.json")).unwrap();
        assert!(matches!(
            d.parsed,
            Parsed::Success { attempt: OUTCOME_ATTEMPT, ref run_id, .. } if run_id == "2727068"
        ));
    }

    #[test]
    fn resource_version_one_keeps_the_result_in_status() {
        let Parsed::Failure(ev) = parse(&fixture("build_complete_legacy_failed.json"))
            .unwrap()
            .parsed
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            ev.repository,
            "fabrikam-fiber-inc/DefaultCollection/71777fbc-1cf2-4bd1-9540-128c1c71f766"
        );
        assert_eq!(ev.run_id, "2");
        assert_eq!(ev.branch.as_deref(), Some("master"));
        assert_eq!(
            ev.head_sha.as_deref(),
            Some("600c52d2d5b655caa111abfd863e5a9bd304bb0e")
        );
    }

    /// A subscription sending minimal resource details: `resource.url` is the web page
    /// (`…/web/build.aspx?pcguid=…&builduri=…`), the organization in `resourceContainers`.
    #[test]
    fn minimal_resource_details_name_org_and_project_in_the_containers() {
        let mut v: Value = serde_json::from_slice(&fixture("build_complete_failed.json")).unwrap();
        let page = "https://dev.azure.com/FabrikamFiber/web/build.aspx?pcguid=e4e4e4e4-ffff-aaaa-bbbb-c5c5c5c5c5c5&builduri=vstfs%3a%2f%2f%2fBuild%2fBuild%2f2727068";
        v["resourceDetailsToSend"] = Value::from("minimal");
        v["resource"] = serde_json::json!({
            "id": 2727068, "buildNumber": "20241202.1", "status": "completed",
            "result": "failed", "url": page
        });
        let Parsed::Failure(ev) = parse(v.to_string().as_bytes()).unwrap().parsed else {
            panic!("expected a failure")
        };
        assert_eq!(
            ev.repository,
            "FabrikamFiber/16dcfeeb-d8fd-495c-917b-fec46cb44fbb"
        );
        assert_eq!(ev.run_id, "2727068");

        // No baseUrl in the containers: the page's prefix, the project the resource names.
        for c in ["collection", "account", "project"] {
            v["resourceContainers"][c]
                .as_object_mut()
                .unwrap()
                .remove("baseUrl");
        }
        v["resource"]["project"] = serde_json::json!({"id": "be9b3917-87e6-42a4-a549-2bc06a7a878f",
            "name": "Fabrikam-Fiber-Git"});
        let Parsed::Failure(ev) = parse(v.to_string().as_bytes()).unwrap().parsed else {
            panic!("expected a failure")
        };
        assert_eq!(
            ev.repository,
            "FabrikamFiber/be9b3917-87e6-42a4-a549-2bc06a7a878f"
        );

        // Nothing names the project: still refused.
        v["resource"].as_object_mut().unwrap().remove("project");
        v["resourceContainers"] = serde_json::json!({});
        assert!(matches!(
            parse(v.to_string().as_bytes()),
            Err(ParseError::Shape(_))
        ));
    }

    #[test]
    fn canceled_builds_and_other_events_are_ignored() {
        let mut v: Value = serde_json::from_slice(&fixture("build_complete_failed.json")).unwrap();
        v["resource"]["result"] = Value::from("canceled");
        assert!(matches!(
            parse(v.to_string().as_bytes()).unwrap().parsed,
            Parsed::Ignored(_)
        ));
        v["eventType"] = Value::from("git.push");
        assert!(matches!(
            parse(v.to_string().as_bytes()).unwrap().parsed,
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn urls_of_each_hosting() {
        assert_eq!(
            repository_from_url("https://dev.azure.com/org/My%20Project/_apis/build/Builds/1")
                .as_deref(),
            Some("org/My Project")
        );
        assert_eq!(
            repository_from_url("https://fabrikam.visualstudio.com/Proj/_apis/build/Builds/1")
                .as_deref(),
            Some("fabrikam/Proj")
        );
        assert_eq!(
            repository_from_url(
                "https://tfs.corp:8080/tfs/DefaultCollection/Proj/_apis/build/Builds/1"
            )
            .as_deref(),
            Some("tfs/DefaultCollection/Proj")
        );
        assert_eq!(repository_from_url("https://dev.azure.com/_apis/x"), None);
        assert_eq!(
            repository_from_url("https://dev.azure.com/org/proj/x"),
            None
        );
        assert_eq!(repository_from_url("not a url"), None);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse(b"{"), Err(ParseError::Json(_))));
        assert!(matches!(parse(b"[]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse(br#"{"eventType": "build.complete", "resource": {"id": 1}}"#),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"eventType": "build.complete", "resource": {"id": 1, "url": "https://x/_apis/"}}"#),
            Err(ParseError::Shape(_))
        ));
    }
}
