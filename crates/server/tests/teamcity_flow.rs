//! End-to-end healing of TeamCity builds against a mock of the TeamCity REST API. Payloads
//! follow TeamCity's own webhook envelope (`crates/platforms/tests/fixtures/teamcity`).

mod common;

use common::*;
use pipeguard_core::event::Platform;
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TC_SECRET: &str = "teamcity-webhook-password";
const TC_TOKEN: &str = "tc-access-token";
const REV: &str = "6feff116ab9ad0d3af686526a6ff96272620e70f";

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.platform_mut(Platform::Teamcity).webhook_secret = Some(TC_SECRET.into());
        c.platform_mut(Platform::Teamcity).token = Some(TC_TOKEN.into());
        c.platform_mut(Platform::Teamcity).api_url = c.platform(Platform::Github).api_url.clone();
    })
    .await
}

/// Posts a delivery as TeamCity does: Basic auth from `teamcity.internal.webhooks.username`
/// and `.password` (`None`: no auth).
async fn post(app: &TestApp, password: Option<&str>, body: &str) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/webhooks/teamcity", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(p) = password {
        r = r.basic_auth("teamcity", Some(p));
    }
    r.send().await.unwrap()
}

fn build(id: u64, build_type: &str, name: &str, status: &str) -> Value {
    json!({
        "id": id, "buildTypeId": build_type, "number": (id - 8000).to_string(),
        "status": status, "state": "finished", "branchName": "main", "defaultBranch": true,
        "href": format!("/app/rest/builds/id:{id}"),
        "webUrl": format!("https://teamcity.example.com/buildConfiguration/{build_type}/{id}"),
        "statusText": if status == "FAILURE" { "Exit code 1 (Step: Gradle)" } else { "Success" },
        "buildType": {"id": build_type, "name": name, "projectName": "Shop", "projectId": "Shop"},
        "queuedDate": "20261123T100000+0000", "startDate": "20261123T100005+0000",
        "finishDate": "20261123T100400+0000",
        "revisions": {"count": 1, "revision": [{"version": REV, "vcsBranchName": "refs/heads/main",
            "vcs-root-instance": {"id": "261", "vcs-root-id": "Shop_Git", "name": "Shop Git"}}]},
        "personal": false
    })
}

/// A `BUILD_FINISHED` delivery in TeamCity's webhook envelope.
fn finished(id: u64, build_type: &str, name: &str, status: &str) -> String {
    json!({"eventType": "BUILD_FINISHED", "payload": build(id, build_type, name, status)})
        .to_string()
}

/// Mounts the failed build, its log and the newest-build lookup on its revision.
async fn mount_failed(mock: &MockServer, id: u64, build_type: &str, name: &str, log: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/app/rest/builds/id:{id}")))
        .and(header(
            "authorization",
            format!("Bearer {TC_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(build(id, build_type, name, "FAILURE")),
        )
        .mount(mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/downloadBuildLog.html"))
        .and(query_param("buildId", id.to_string().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string(log))
        .mount(mock)
        .await;
    let locator = format!(
        "buildType:(id:{build_type}),revision:({REV}),branch:default:any,running:any,count:1"
    );
    Mock::given(method("GET"))
        .and(path("/app/rest/builds"))
        .and(query_param("locator", locator.as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"count": 1, "build": [build(id, build_type, name, "FAILURE")]}),
            ),
        )
        .mount(mock)
        .await;
}

fn queue(build_type: &str) -> Mock {
    Mock::given(method("POST"))
        .and(path("/app/rest/buildQueue"))
        .and(header("authorization", format!("Bearer {TC_TOKEN}").as_str()))
        .and(body_partial_json(json!({
            "buildType": {"id": build_type},
            "branchName": "main",
            "lastChanges": {"change": [{"locator": format!("version:{REV},buildType:(id:{build_type})")}]}
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 9999, "state": "queued"})),
        )
}

#[tokio::test]
async fn a_transient_failure_is_queued_again_once_despite_duplicates_and_the_next_build_heals() {
    let app = start().await;
    mount_failed(&app.github, 8134, "Shop_Test", "Test", TRANSIENT_LOG).await;
    queue("Shop_Test").expect(1).mount(&app.github).await;
    let failed = finished(8134, "Shop_Test", "Test", "FAILURE");
    let r = post(&app, Some(TC_SECRET), &failed).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    let id = session_id_in(&first);
    // TeamCity's own retries send the same event for the same build.
    let again: Value = post(&app, Some(TC_SECRET), &failed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery gets the same answer");

    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["platform"], "teamcity");
    assert_eq!(s["repository"], "Shop_Test");
    assert_eq!(s["category"], "dependency_download");
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("Connection reset")));

    // The queued build is a later build of the same configuration and revision.
    let ok = finished(8140, "Shop_Test", "Test", "SUCCESS");
    let r = post(&app, Some(TC_SECRET), &ok).await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    assert!(s["reason"].as_str().unwrap().contains("8140"), "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_genuine_failure_is_escalated_with_evidence_and_never_queued() {
    let app = start().await;
    mount_failed(&app.github, 8200, "Shop_Compile", "Compile", COMPILE_LOG).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(TC_SECRET),
        &finished(8200, "Shop_Compile", "Compile", "FAILURE"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["category"], "compilation_error");
    assert!(s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"].as_str().unwrap().contains("error[E0308]")));
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn in_a_chain_only_the_transient_configuration_is_queued_again() {
    // A build is one job: a chain's configurations fail and heal separately.
    let app = start().await;
    mount_failed(&app.github, 8300, "Shop_Fetch", "Fetch", TRANSIENT_LOG).await;
    mount_failed(&app.github, 8301, "Shop_Compile", "Compile", COMPILE_LOG).await;
    queue("Shop_Fetch").expect(1).mount(&app.github).await;
    queue("Shop_Compile").expect(0).mount(&app.github).await;
    let a = post(
        &app,
        Some(TC_SECRET),
        &finished(8300, "Shop_Fetch", "Fetch", "FAILURE"),
    )
    .await;
    let b = post(
        &app,
        Some(TC_SECRET),
        &finished(8301, "Shop_Compile", "Compile", "FAILURE"),
    )
    .await;
    let (a, b) = (
        session_id_in(&a.json().await.unwrap()),
        session_id_in(&b.json().await.unwrap()),
    );
    assert_ne!(a, b);
    app.wait_status(&a, "verifying").await;
    app.wait_status(&b, "escalated").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_deploy_configuration_waits_for_approval() {
    let app = start().await;
    mount_failed(
        &app.github,
        8400,
        "Shop_Ship",
        "Deploy to production",
        TRANSIENT_LOG,
    )
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.github)
        .await;
    let r = post(
        &app,
        Some(TC_SECRET),
        &finished(8400, "Shop_Ship", "Deploy to production", "FAILURE"),
    )
    .await;
    let id = session_id_in(&r.json().await.unwrap());
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert_eq!(s["category"], "dependency_download");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_wrong_password_or_none_is_401_and_nothing_is_stored() {
    let app = start().await;
    let body = finished(8500, "Shop_Test", "Test", "FAILURE");
    for (what, password) in [("no credential", None), ("wrong password", Some("nope"))] {
        let r = post(&app, password, &body).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn traversal_and_malformed_deliveries_are_400() {
    let app = start().await;
    let r = post(
        &app,
        Some(TC_SECRET),
        &finished(8600, "../Shop", "Test", "FAILURE"),
    )
    .await;
    assert_eq!(r.status(), 400);
    for bad in [
        "{nope",
        "[]",
        r#"{"eventType": "BUILD_FINISHED", "payload": {"id": 1}}"#,
    ] {
        let r = post(&app, Some(TC_SECRET), bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Interrupted (canceled) builds are valid and ignored.
    let interrupted = json!({"eventType": "BUILD_INTERRUPTED",
        "payload": build(8601, "Shop_Test", "Test", "UNKNOWN")})
    .to_string();
    let r = post(&app, Some(TC_SECRET), &interrupted).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/pipeline/healing/history").await["total_sessions"],
        0
    );
    app.stop().await;
}
