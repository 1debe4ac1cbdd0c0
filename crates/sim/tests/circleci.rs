//! CircleCI semantics, checked through API v2 / v1.1 with reqwest.

mod common;

use common::{Receiver, WAIT};
use pipeguard_platforms::{circleci as cc_parser, Parsed};
use pipeguard_sim::circleci::{CircleciConfig, CircleciSim};
use pipeguard_sim::{JobSpec, RunSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "CCIPAT_test";

async fn sim(config: CircleciConfig) -> CircleciSim {
    CircleciSim::start(config.token(TOKEN)).await.unwrap()
}

async fn call(
    sim: &CircleciSim,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .header("Circle-Token", TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn workflow() -> RunSpec {
    RunSpec::new("gh/acme/api", "build-test")
        .job(JobSpec::new("build"))
        .job(
            JobSpec::new("test")
                .needs(&["build"])
                .fails("Error: getaddrinfo EAI_AGAIN registry.npmjs.org")
                .passes()
                // Long enough for the next call to meet the rerun still running.
                .duration_ms(300),
        )
        .job(JobSpec::new("deploy").needs(&["test"]))
        .job(JobSpec::new("lint"))
}

fn by_name(jobs: &Value, name: &str) -> Value {
    jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn rerun_from_failed_is_a_new_workflow_that_runs_the_failed_job_and_what_requires_it() {
    let sim = sim(CircleciConfig::default()).await;
    let pipeline = sim.start_run(workflow()).await.unwrap();
    let wfs = sim.wait_pipeline(&pipeline, WAIT).await.unwrap();
    let first = wfs[0].id.clone();
    assert_eq!(wfs[0].status, "failed");
    let (_, jobs1) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{first}/job"),
        None,
    )
    .await;
    assert_eq!(by_name(&jobs1, "deploy")["status"], "blocked");

    let (s, body) = call(
        &sim,
        reqwest::Method::POST,
        &format!("/api/v2/workflow/{first}/rerun"),
        Some(json!({"from_failed": true})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let second = body["workflow_id"].as_str().unwrap().to_string();
    assert_ne!(second, first, "a rerun is a new workflow");
    let (s, body) = call(
        &sim,
        reqwest::Method::POST,
        &format!("/api/v2/workflow/{second}/rerun"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Workflow must be in a terminal state to be rerun"
    );

    let wfs = sim.wait_pipeline(&pipeline, WAIT).await.unwrap();
    assert_eq!(wfs.len(), 2);
    assert_eq!(
        (wfs[1].name.as_str(), wfs[1].status.as_str()),
        ("build-test", "success")
    );
    assert_eq!(wfs[1].rerun_of.as_deref(), Some(first.as_str()));
    let (_, listed) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/pipeline/{pipeline}/workflow"),
        None,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let (_, jobs2) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{second}/job"),
        None,
    )
    .await;
    assert_eq!(
        by_name(&jobs2, "build")["id"],
        by_name(&jobs1, "build")["id"],
        "jobs that passed are carried over"
    );
    assert_eq!(by_name(&jobs2, "lint")["id"], by_name(&jobs1, "lint")["id"]);
    assert_ne!(by_name(&jobs2, "test")["id"], by_name(&jobs1, "test")["id"]);
    assert_eq!(
        by_name(&jobs2, "deploy")["status"],
        "success",
        "what requires the failed job runs too"
    );
}

#[tokio::test]
async fn rerun_of_chosen_jobs_and_refused_bodies() {
    let sim = sim(CircleciConfig::default()).await;
    let pipeline = sim.start_run(workflow()).await.unwrap();
    let first = sim.wait_pipeline(&pipeline, WAIT).await.unwrap()[0]
        .id
        .clone();
    let (_, jobs) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{first}/job"),
        None,
    )
    .await;
    let lint = by_name(&jobs, "lint")["id"].clone();
    let path = format!("/api/v2/workflow/{first}/rerun");
    let (s, _) = call(
        &sim,
        reqwest::Method::POST,
        &path,
        Some(json!({"from_failed": true, "jobs": [lint]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body) = call(
        &sim,
        reqwest::Method::POST,
        &path,
        Some(json!({"jobs": [lint]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let w = body["workflow_id"].as_str().unwrap().to_string();
    sim.wait_pipeline(&pipeline, WAIT).await.unwrap();
    let (_, jobs2) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{w}/job"),
        None,
    )
    .await;
    assert_ne!(by_name(&jobs2, "lint")["id"], lint);
    assert_eq!(
        by_name(&jobs2, "test")["status"],
        "failed",
        "the failed job was not chosen"
    );
    assert_eq!(sim.workflow(&w).await.unwrap().status, "failed");
}

#[tokio::test]
async fn step_output_is_behind_output_url() {
    let sim = sim(CircleciConfig::default()).await;
    let pipeline = sim.start_run(workflow()).await.unwrap();
    let first = sim.wait_pipeline(&pipeline, WAIT).await.unwrap()[0]
        .id
        .clone();
    let (_, jobs) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{first}/job"),
        None,
    )
    .await;
    let n = by_name(&jobs, "test")["job_number"].as_u64().unwrap();
    let (s, details) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v1.1/project/github/acme/api/{n}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let action = &details["steps"][1]["actions"][0];
    assert_eq!(action["failed"], true);
    let url = action["output_url"].as_str().unwrap();
    let out: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert!(
        out[0]["message"].as_str().unwrap().contains("EAI_AGAIN"),
        "{out}"
    );
}

#[tokio::test]
async fn a_new_pipeline_runs_every_workflow_with_the_parameters() {
    let sim = sim(CircleciConfig {
        page_size: 2,
        ..Default::default()
    })
    .await;
    sim.define_workflow(RunSpec::new("gh/acme/api", "nightly").job(JobSpec::new("e2e")))
        .await
        .unwrap();
    let first = sim.start_run(workflow()).await.unwrap();
    sim.wait_pipeline(&first, WAIT).await.unwrap();
    let body = json!({"branch": "main", "parameters": {"resource_class": "large"}});
    let (s, p) = call(
        &sim,
        reqwest::Method::POST,
        "/api/v2/project/gh/acme/api/pipeline",
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(p["number"], 2);
    let id = p["id"].as_str().unwrap().to_string();
    let wfs = sim.wait_pipeline(&id, WAIT).await.unwrap();
    let names: Vec<&str> = wfs.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["build-test", "nightly"]);
    let pipeline = sim.pipeline(&id).await.unwrap();
    assert_eq!(pipeline.parameters["resource_class"], "large");
    let (_, page1) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{}/job", wfs[0].id),
        None,
    )
    .await;
    let token = page1["next_page_token"].as_str().unwrap().to_string();
    let (_, page2) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/api/v2/workflow/{}/job?page-token={token}", wfs[0].id),
        None,
    )
    .await;
    assert_eq!(
        page1["items"].as_array().unwrap().len() + page2["items"].as_array().unwrap().len(),
        4
    );
    assert!(page2["next_page_token"].is_null());
}

#[tokio::test]
async fn the_token_is_checked() {
    let sim = sim(CircleciConfig::default()).await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/v2/pipeline/x", sim.base_url()))
        .header("Circle-Token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "You must log in first."
    );
}

#[tokio::test]
async fn deliveries_are_signed_and_parse_as_pipeguard_expects() {
    let rx = Receiver::start().await;
    let sim = sim(CircleciConfig::default().webhook(&rx.url, "cc-secret")).await;
    let pipeline = sim.start_run(workflow()).await.unwrap();
    let done = |d: &common::Received| d.header("circleci-event-type") == "workflow-completed";
    let got = rx.wait(|g| g.iter().any(done)).await;
    assert!(got.iter().all(|d| cc_parser::verify_signature(
        b"cc-secret",
        &d.body,
        d.header("circleci-signature")
    )));
    let kinds: Vec<&str> = got
        .iter()
        .map(|d| d.header("circleci-event-type"))
        .collect();
    assert_eq!(
        kinds,
        [
            "job-completed",
            "job-completed",
            "job-completed",
            "workflow-completed"
        ],
        "blocked jobs send nothing"
    );
    let w = got.iter().find(|d| done(d)).unwrap();
    let Parsed::Failure(ev) = cc_parser::parse_delivery(&w.body).unwrap().parsed else {
        panic!("a failed workflow is a failure for pipeguard")
    };
    assert_eq!(ev.run_id, format!("{pipeline}/build-test"));
    let first = sim.wait_pipeline(&pipeline, WAIT).await.unwrap()[0]
        .id
        .clone();
    call(
        &sim,
        reqwest::Method::POST,
        &format!("/api/v2/workflow/{first}/rerun"),
        Some(json!({"from_failed": true})),
    )
    .await;
    let got = rx.wait(|g| g.iter().filter(|d| done(d)).count() == 2).await;
    let last = got.iter().rev().find(|d| done(d)).unwrap();
    let parsed = cc_parser::parse_delivery(&last.body).unwrap().parsed;
    assert!(
        matches!(parsed, Parsed::Success { ref run_id, .. } if *run_id == format!("{pipeline}/build-test"))
    );
}
