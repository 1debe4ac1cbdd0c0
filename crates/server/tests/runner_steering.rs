//! A re-run steered away from a suspect Jenkins node, against a wiremock of Jenkins' remote
//! access API: with `[runners] steer_parameter = "NODE_LABEL"` a transient failure on a
//! suspect node not taken out is rebuilt at once with `NODE_LABEL` narrowed to exclude the
//! node (`buildWithParameters`, the crumb, the other parameters as they were); without the
//! setting it waits for approval and nothing is rebuilt; a job that does not declare the
//! parameter is escalated rather than rebuilt onto the node.

mod common;

use common::*;
use pipeguard_core::event::{Platform, Runner};
use pipeguard_core::runners::RunnerJob;
use serde_json::{json, Value};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const J_SECRET: &str = "jenkins-shared-secret";
/// `pg:jt-token`, as HTTP basic auth sends a user and its API token.
const BASIC: &str = "Basic cGc6anQtdG9rZW4=";
const JOB: &str = "/job/team/job/api/";
const NODE: &str = "agent-3";

async fn start(steer: Option<&str>) -> (MockServer, TestApp) {
    let jenkins = MockServer::start().await;
    let url = jenkins.uri();
    let steer = steer.map(String::from);
    let app = TestApp::start_with(|c| {
        let j = c.platform_mut(Platform::Jenkins);
        j.api_url = url;
        j.user = Some("pg".into());
        j.token = Some("jt-token".into());
        j.webhook_secret = Some(J_SECRET.into());
        c.runners.steer_parameter = steer;
    })
    .await;
    (jenkins, app)
}

/// The node's history over the window: 5 unrelated failures (one per repository) in 10
/// jobs, against 40 green jobs on two other nodes. One more failure makes it suspect.
async fn history(app: &TestApp) {
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let job = |node: &str, i: usize, repo: &str, failed| RunnerJob {
        runner: Runner::new(Some(node), None).unwrap(),
        job_id: format!("{node}-{i}"),
        repository: repo.into(),
        failed,
    };
    let green: Vec<RunnerJob> = (0..40)
        .map(|i| job(["agent-1", "agent-2"][i % 2], i, "team/web", false))
        .chain((0..5).map(|i| job(NODE, i, "team/web", false)))
        .collect();
    store.record_runner_jobs("jenkins", &green).await.unwrap();
    let failed: Vec<(RunnerJob, String)> = (0..5)
        .map(|i| {
            (
                job(NODE, 10 + i, &format!("other/r{i}"), true),
                "network".into(),
            )
        })
        .collect();
    store
        .record_runner_failures("jenkins", &failed)
        .await
        .unwrap();
}

/// Build 18 of `team/api` failed on `agent-3` with a network error; it ran with
/// `TARGET=staging` and `NODE_LABEL=linux`; the job declares `declared`.
async fn failed_build(jenkins: &MockServer, declared: &[&str]) {
    let get = |p: String| Mock::given(method("GET")).and(path(p));
    get(format!("{JOB}lastBuild/api/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "number": 18, "building": false, "result": "FAILURE",
            "timestamp": 1_763_892_000_000i64, "duration": 95_000
        })))
        .mount(jenkins)
        .await;
    get(format!("{JOB}18/consoleText"))
        .respond_with(ResponseTemplate::new(200).set_body_string(TRANSIENT_LOG))
        .mount(jenkins)
        .await;
    get(format!("{JOB}18/api/json"))
        .and(query_param("tree", "builtOn"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"builtOn": NODE})))
        .mount(jenkins)
        .await;
    get(format!("{JOB}18/api/json"))
        .and(query_param("tree", "actions[parameters[name,value]]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"actions": [
            {"_class": "hudson.model.CauseAction"},
            {"_class": "hudson.model.ParametersAction", "parameters": [
                {"_class": "hudson.model.StringParameterValue", "name": "TARGET", "value": "staging"},
                {"_class": "org.jvnet.jenkins.plugins.nodelabelparameter.LabelParameterValue",
                 "name": "NODE_LABEL", "value": "linux"}
            ]}
        ]})))
        .mount(jenkins)
        .await;
    let declared: Vec<Value> = declared.iter().map(|n| json!({"name": n})).collect();
    get(format!("{JOB}api/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "property": [{"parameterDefinitions": declared}]
        })))
        .mount(jenkins)
        .await;
    get("/crumbIssuer/api/json".into())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"crumbRequestField": "Jenkins-Crumb", "crumb": "c0ffee"})),
        )
        .mount(jenkins)
        .await;
    get("/queue/item/9/api/json".into())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"executable": {"number": 19}})),
        )
        .mount(jenkins)
        .await;
}

/// The Notification plugin's delivery of build 18's failure; the session's id.
async fn deliver(app: &TestApp) -> String {
    let body = json!({
        "name": "api", "display_name": "team/api", "url": "job/team/job/api/",
        "build": {
            "full_url": "https://ci.example.com/job/team/job/api/18/", "number": 18,
            "queue_id": 4711, "timestamp": 1_763_892_000_000i64, "duration": 95_000,
            "phase": "COMPLETED", "status": "FAILURE", "url": "job/team/job/api/18/",
            "parameters": {"TARGET": "staging", "NODE_LABEL": "linux"}
        }
    });
    let r = app
        .http
        .post(format!("{}/webhooks/jenkins", app.base))
        .header("content-type", "application/json")
        .header("x-pipeguard-token", J_SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    session_id_in(&r.json().await.unwrap())
}

fn rebuilds(body: &'static str) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!("{JOB}buildWithParameters")))
        .and(header("authorization", BASIC))
        .and(header("jenkins-crumb", "c0ffee"))
        .and(body_string(body))
        .respond_with(
            ResponseTemplate::new(201).insert_header("Location", "https://ci/queue/item/9/"),
        )
}

/// What the session's timeline and plan say, as one text to search.
async fn told(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/v1/sessions/{id}")).await.to_string()
}

/// The suspect node's failure with a job declaring `declared`, where no rebuild may come:
/// what the session says once it reached `status`.
async fn not_rebuilt(
    jenkins: &MockServer,
    app: &TestApp,
    declared: &[&str],
    status: &str,
) -> String {
    history(app).await;
    failed_build(jenkins, declared).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(jenkins)
        .await;
    let id = deliver(app).await;
    app.wait_status(&id, status).await;
    told(app, &id).await
}

#[tokio::test]
async fn a_failure_on_a_suspect_node_is_rebuilt_at_once_on_any_other_node() {
    let (jenkins, app) = start(Some("NODE_LABEL")).await;
    history(&app).await;
    failed_build(&jenkins, &["TARGET", "NODE_LABEL"]).await;
    // NODE_LABEL = `(linux) && !"agent-3"`: what the build asked for, and not that node.
    rebuilds("TARGET=staging&NODE_LABEL=%28linux%29%20%26%26%20%21%22agent-3%22")
        .expect(1)
        .mount(&jenkins)
        .await;
    let id = deliver(&app).await;
    app.wait_status(&id, "verifying").await;
    let said = told(&app, &id).await;
    assert!(
        said.contains("runner agent-3 fails unrelated jobs") && said.contains("steered away"),
        "{said}"
    );
    // Reported and left in: taking it out is still an operator's call.
    let runners = app.get("/api/v1/runners").await;
    let node = runners["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == NODE)
        .unwrap()
        .clone();
    assert_eq!(
        (&node["suspect"], &node["quarantined"]),
        (&json!(true), &json!(false))
    );
    assert!(!jenkins
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path().contains("toggleOffline")));
    drop(app);
    jenkins.verify().await;
}

#[tokio::test]
async fn without_the_setting_it_waits_for_approval_and_nothing_is_rebuilt() {
    let (jenkins, app) = start(None).await;
    let said = not_rebuilt(
        &jenkins,
        &app,
        &["TARGET", "NODE_LABEL"],
        "awaiting_approval",
    )
    .await;
    assert!(
        said.contains("/api/v1/runners/jenkins/agent-3/quarantine") && !said.contains("steered"),
        "{said}"
    );
    drop(app);
    jenkins.verify().await;
}

#[tokio::test]
async fn a_healthy_node_with_the_setting_is_rebuilt_as_it_was() {
    let (jenkins, app) = start(Some("NODE_LABEL")).await;
    // No history: the node is not suspect.
    failed_build(&jenkins, &["TARGET", "NODE_LABEL"]).await;
    rebuilds("TARGET=staging&NODE_LABEL=linux")
        .expect(1)
        .mount(&jenkins)
        .await;
    let id = deliver(&app).await;
    app.wait_status(&id, "verifying").await;
    drop(app);
    jenkins.verify().await;
}

#[tokio::test]
async fn a_job_without_the_parameter_is_escalated_not_rebuilt_onto_the_node() {
    let (jenkins, app) = start(Some("NODE_LABEL")).await;
    let said = not_rebuilt(&jenkins, &app, &["TARGET"], "escalated").await;
    assert!(
        said.contains("does not declare the parameter NODE_LABEL"),
        "{said}"
    );
    drop(app);
    jenkins.verify().await;
}
