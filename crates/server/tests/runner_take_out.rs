//! Taking a runner out where the platform allows it, against wiremock: a Buildkite agent is
//! stopped (`PUT /v2/organizations/{org}/agents/{id}/stop`, not forced), a Jenkins node is
//! marked offline (`POST /computer/{name}/toggleOffline` with the CSRF crumb), a TeamCity
//! agent is disabled (`PUT /app/rest/agents/id:{id}/enabledInfo`), an Azure Pipelines agent is
//! disabled in the pool of the queue its job ran from (`PATCH …/pools/{pool}/agents/{id}`).
//! Asked twice at once, the platform is called once; a refusal is a 409 and the runner stays
//! in. TeamCity's and Azure's agents are learned from the fixtures' payloads: the
//! `BUILD_FINISHED` build's `agent`, and the timeline's `workerName` when a failure is
//! diagnosed.

mod common;

use common::*;
use pipeguard_core::event::{Platform, Runner};
use pipeguard_core::runners::RunnerJob;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BK_TOKEN: &str = "bk-api-token";
const BK_SECRET: &str = "bk-webhook-token";
const ORG: &str = "my-great-org";
const AGENT_ID: &str = "0b461f65-e7be-4c80-888a-ef11d81fd971";

/// A `job.finished` delivery of a passed job that ran on agent `name`.
fn job_finished(name: &str, agent_id: &str, job_id: &str) -> Value {
    json!({
        "event": "job.finished",
        "job": {
            "id": job_id, "type": "script", "name": "test", "state": "passed",
            "exit_status": 0, "soft_failed": false,
            "agent": {"id": agent_id, "name": name,
                      "url": format!("https://api.buildkite.com/v2/organizations/{ORG}/agents/{agent_id}")},
        },
        "build": {"id": "f62a1b4d", "number": 42, "state": "running",
                  "url": format!("https://api.buildkite.com/v2/organizations/{ORG}/pipelines/my-pipeline/builds/42"),
                  "web_url": format!("https://buildkite.com/{ORG}/my-pipeline/builds/42")},
        "pipeline": {"slug": "my-pipeline", "name": "My pipeline",
                     "url": format!("https://api.buildkite.com/v2/organizations/{ORG}/pipelines/my-pipeline")},
    })
}

async fn buildkite() -> (MockServer, TestApp) {
    let api = MockServer::start().await;
    let url = api.uri();
    let app = TestApp::start_with(|c| {
        let b = c.platform_mut(Platform::Buildkite);
        b.api_url = url;
        b.token = Some(BK_TOKEN.into());
        b.webhook_secret = Some(BK_SECRET.into());
    })
    .await;
    (api, app)
}

async fn deliver(app: &TestApp, body: &Value) {
    let r = app
        .http
        .post(format!("{}/webhooks/buildkite", app.base))
        .header("content-type", "application/json")
        .header("x-buildkite-event", "job.finished")
        .header("x-buildkite-token", BK_SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn runner(app: &TestApp, name: &str) -> Value {
    // Counted after the delivery's answer, or after the diagnosis: wait for it.
    for _ in 0..400 {
        let list = app.get("/api/v1/runners").await;
        if let Some(r) = list["runners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
        {
            return r.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("runner {name} never listed")
}

/// The operator asks for `name` to be taken out `times` times at once; the answers.
async fn take_out(app: &TestApp, platform: &str, name: &str, times: usize) -> Vec<(u16, Value)> {
    let who = format!("oncall-{platform}-{name}");
    let operator = authenticated(&app.token(&who, "operator").await);
    let url = format!("{}/api/v1/runners/{platform}/{name}/quarantine", app.base);
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..times {
        let (operator, url) = (operator.clone(), url.clone());
        asks.spawn(async move {
            let r = operator.post(url).json(&json!({})).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    asks.join_all().await
}

#[tokio::test]
async fn a_buildkite_agent_is_stopped_once_through_the_agents_api() {
    let (api, app) = buildkite().await;
    Mock::given(method("PUT"))
        .and(path(format!(
            "/v2/organizations/{ORG}/agents/{AGENT_ID}/stop"
        )))
        .and(header(
            "authorization",
            format!("Bearer {BK_TOKEN}").as_str(),
        ))
        .and(body_json(json!({"force": false})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&api)
        .await;
    // The agent is known from the jobs deliveries name, read in intake's one parse.
    deliver(&app, &job_finished("bk-agent-3", AGENT_ID, "job-1")).await;
    deliver(&app, &job_finished("bk-agent-3", AGENT_ID, "job-2")).await;
    let seen = runner(&app, "bk-agent-3").await;
    assert_eq!(seen["platform"], "buildkite");
    assert_eq!(seen["quarantined"], false);

    let answers = take_out(&app, "buildkite", "bk-agent-3", 2).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["quarantined"], true, "{body}");
    }
    assert_eq!(runner(&app, "bk-agent-3").await["quarantined"], true);
    // `expect(1)`: checked when the mock server drops.
    drop(app);
    api.verify().await;
}

#[tokio::test]
async fn a_buildkite_refusal_is_a_conflict_and_the_agent_stays_in() {
    let (api, app) = buildkite().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})))
        .mount(&api)
        .await;
    deliver(&app, &job_finished("bk-agent-9", "agent-9", "job-9")).await;
    runner(&app, "bk-agent-9").await;
    let answers = take_out(&app, "buildkite", "bk-agent-9", 1).await;
    let (status, body) = &answers[0];
    assert_eq!(*status, 409, "{body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    assert_eq!(runner(&app, "bk-agent-9").await["quarantined"], false);
    // A runner never seen is a 404 with the same body shape.
    let (status, body) = &take_out(&app, "buildkite", "nobody", 1).await[0];
    assert_eq!(*status, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("nobody"),
        "{body}"
    );
}

/// A Jenkins server that issues a crumb and knows two nodes, one of them offline already.
async fn jenkins() -> (MockServer, TestApp) {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crumbIssuer/api/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"crumbRequestField": "Jenkins-Crumb", "crumb": "c0ffee"})),
        )
        .mount(&api)
        .await;
    for (node, offline) in [("agent-3", false), ("agent-off", true)] {
        Mock::given(method("GET"))
            .and(path(format!("/computer/{node}/api/json")))
            .and(query_param("tree", "offline"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"offline": offline})))
            .mount(&api)
            .await;
    }
    let url = api.uri();
    let app = TestApp::start_with(|c| {
        let j = c.platform_mut(Platform::Jenkins);
        j.api_url = url;
        j.user = Some("pg".into());
        j.token = Some("jt-token".into());
        j.webhook_secret = Some("jenkins-secret".into());
    })
    .await;
    // Jenkins deliveries do not name nodes: the diagnosis reads `builtOn`. Counted here as
    // the worker would.
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let jobs: Vec<RunnerJob> = ["agent-3", "agent-off"]
        .iter()
        .map(|n| RunnerJob {
            runner: Runner::new(Some(*n), None).unwrap(),
            job_id: format!("{n}-1"),
            repository: "team/api".into(),
            failed: true,
        })
        .collect();
    store.record_runner_jobs("jenkins", &jobs).await.unwrap();
    (api, app)
}

#[tokio::test]
async fn a_jenkins_node_is_marked_offline_once_with_the_crumb() {
    let (api, app) = jenkins().await;
    Mock::given(method("POST"))
        .and(path("/computer/agent-3/toggleOffline"))
        .and(header("jenkins-crumb", "c0ffee"))
        .and(body_string_contains("offlineMessage=pipeguard"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&api)
        .await;
    let answers = take_out(&app, "jenkins", "agent-3", 2).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(runner(&app, "agent-3").await["quarantined"], true);
    let posts = api.received_requests().await.unwrap();
    let post = posts.iter().find(|r| r.method.as_str() == "POST").unwrap();
    assert!(
        post.headers.get("authorization").is_some(),
        "the toggle is authenticated"
    );
    drop(app);
    api.verify().await;
}

#[tokio::test]
async fn a_jenkins_node_already_offline_is_not_toggled_back_on() {
    let (api, app) = jenkins().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&api)
        .await;
    let (status, body) = &take_out(&app, "jenkins", "agent-off", 1).await[0];
    assert_eq!(*status, 200, "{body}");
    assert_eq!(runner(&app, "agent-off").await["quarantined"], true);
    drop(app);
    api.verify().await;
}

fn fixture(platform: &str, name: &str) -> String {
    let path = format!(
        "{}/../platforms/tests/fixtures/{platform}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const TC_SECRET: &str = "tc-webhook-password";
const TC_TOKEN: &str = "tc-api-token";

#[tokio::test]
async fn a_teamcity_agent_named_by_the_build_is_disabled_once() {
    let api = MockServer::start().await;
    let url = api.uri();
    let app = TestApp::start_with(|c| {
        let t = c.platform_mut(Platform::Teamcity);
        t.api_url = url;
        t.token = Some(TC_TOKEN.into());
        t.webhook_secret = Some(TC_SECRET.into());
    })
    .await;
    Mock::given(method("PUT"))
        .and(path("/app/rest/agents/id:3/enabledInfo"))
        .and(header(
            "authorization",
            format!("Bearer {TC_TOKEN}").as_str(),
        ))
        .and(body_json(json!({"status": false, "comment": {
            "text": "pipeguard: fails unrelated builds far more often than its pool"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": false})))
        .expect(1)
        .mount(&api)
        .await;
    // The passed build of the fixture ran on agent-1 (id 3): one job, no failure.
    let r = app
        .http
        .post(format!("{}/webhooks/teamcity", app.base))
        .basic_auth("teamcity", Some(TC_SECRET))
        .header("content-type", "application/json")
        .body(fixture("teamcity", "build_finished_success.json"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let seen = runner(&app, "agent-1").await;
    assert_eq!(
        (&seen["platform"], &seen["jobs"], &seen["failures"]),
        (&json!("teamcity"), &json!(1), &json!(0)),
        "{seen}"
    );
    let answers = take_out(&app, "teamcity", "agent-1", 2).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let out = runner(&app, "agent-1").await;
    assert_eq!(out["quarantined"], true);
    assert_eq!(
        out["detail"],
        "taken out: PUT /app/rest/agents/id:3/enabledInfo status=false"
    );
    drop(app);
    api.verify().await;
}

const AZ_SECRET: &str = "az-hook-password";
/// `:az-pat` in Basic auth, as a personal access token is sent.
const AZ_AUTH: &str = "Basic OmF6LXBhdA==";
const AZ_PROJECT: &str = "/FabrikamFiber/16dcfeeb-d8fd-495c-917b-fec46cb44fbb";

/// The fixture's failed build 2727068: one failed job on self-hosted agent linux-07 from the
/// project's queue 7, whose pool 12 has it as agent 31.
async fn azure_build(api: &MockServer) {
    let build = format!("{AZ_PROJECT}/_apis/build/builds/2727068");
    Mock::given(method("GET"))
        .and(path(build.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 2727068, "status": "completed", "result": "failed",
            "finishTime": "2024-12-02T10:04:00Z", "definition": {"id": 5},
            "sourceBranch": "refs/heads/main"})))
        .mount(api)
        .await;
    let records = json!({"id": "tl", "records": [
        {"id": "s-1", "type": "Stage", "name": "Build", "identifier": "build",
         "state": "completed", "result": "failed", "attempt": 1},
        {"id": "p-1", "parentId": "s-1", "type": "Phase", "name": "compile",
         "state": "completed", "result": "failed", "attempt": 1},
        {"id": "j-1", "parentId": "p-1", "type": "Job", "name": "compile",
         "state": "completed", "result": "failed", "attempt": 1, "log": {"id": 5},
         "workerName": "linux-07", "queueId": 7},
        {"id": "t-1", "parentId": "j-1", "type": "Task", "name": "Build",
         "state": "completed", "result": "failed", "attempt": 1, "log": {"id": 6}}]});
    Mock::given(method("GET"))
        .and(path(format!("{build}/timeline")))
        .and(header("authorization", AZ_AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_json(records))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{build}/logs/6")))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "error[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\n",
        ))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{AZ_PROJECT}/_apis/distributedtask/queues/7")))
        .and(query_param("api-version", "7.1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 7, "name": "Linux builders",
            "pool": {"id": 12, "name": "Linux builders", "isHosted": false}})))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/FabrikamFiber/_apis/distributedtask/pools/12/agents"))
        .and(query_param("agentName", "linux-07"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 1,
            "value": [{"id": 31, "name": "linux-07", "enabled": true, "status": "online"}]})))
        .mount(api)
        .await;
}

#[tokio::test]
async fn an_azure_agent_diagnosed_from_the_timeline_is_disabled_in_its_pool_once() {
    let api = MockServer::start().await;
    azure_build(&api).await;
    Mock::given(method("PATCH"))
        .and(path(
            "/FabrikamFiber/_apis/distributedtask/pools/12/agents/31",
        ))
        .and(query_param("api-version", "7.1"))
        .and(header("authorization", AZ_AUTH))
        .and(body_json(json!({"id": 31, "enabled": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 31, "enabled": false})))
        .expect(1)
        .mount(&api)
        .await;
    let url = api.uri();
    let app = TestApp::start_with(|c| {
        let a = c.platform_mut(Platform::Azure);
        a.api_url = url;
        a.token = Some("az-pat".into());
        a.webhook_secret = Some(AZ_SECRET.into());
    })
    .await;
    let r = app
        .http
        .post(format!("{}/webhooks/azure", app.base))
        .basic_auth("pipeguard", Some(AZ_SECRET))
        .header("content-type", "application/json")
        .body(fixture("azure", "build_complete_failed.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // build.complete names no agent: it is counted when the failure is diagnosed.
    let seen = runner(&app, "linux-07").await;
    assert_eq!(
        (&seen["platform"], &seen["failures"]),
        (&json!("azure"), &json!(1)),
        "{seen}"
    );
    let answers = take_out(&app, "azure", "linux-07", 2).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(runner(&app, "linux-07").await["quarantined"], true);
    drop(app);
    api.verify().await;
}
