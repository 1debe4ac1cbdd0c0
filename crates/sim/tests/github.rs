//! GitHub Actions semantics, checked through the REST API with reqwest.

mod common;

use common::{Receiver, WAIT};
use pipeguard_platforms::{github as gh_parser, Parsed};
use pipeguard_sim::github::{DispatchMode, GithubConfig, GithubSim, Status};
use pipeguard_sim::{hmac_hex, JobSpec, Outcome, RunSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "gh-test-token";

async fn sim(config: GithubConfig) -> GithubSim {
    GithubSim::start(config.token(TOKEN)).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(sim: &GithubSim, path: &str, body: Value) -> (StatusCode, String) {
    let r = http()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn get(sim: &GithubSim, path: &str) -> Value {
    let r = http()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.json().await.unwrap()
}

/// build → test → deploy, and lint on its own; test fails once (a network flake).
fn pipeline() -> RunSpec {
    RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("build"))
        .job(
            JobSpec::new("test")
                .needs(&["build"])
                .fails("curl: (56) Recv failure: Connection reset by peer")
                .passes()
                // Long enough for the next calls to meet the attempt still running.
                .duration_ms(300),
        )
        .job(JobSpec::new("deploy").needs(&["test"]))
        .job(JobSpec::new("lint").duration_ms(30))
}

fn job_id(jobs: &Value, name: &str) -> u64 {
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap()["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn per_job_rerun_runs_the_job_and_its_dependents_and_refuses_a_second_while_in_progress() {
    let sim = sim(GithubConfig::default()).await;
    let run = sim.start_run(pipeline()).await.unwrap();
    let first = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(first.latest().conclusion.as_deref(), Some("failure"));
    let jobs1 = get(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/attempts/1/jobs"),
    )
    .await;
    let deploy1 = jobs1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "deploy")
        .unwrap()
        .clone();
    assert_eq!(
        deploy1["conclusion"], "skipped",
        "a failed need skips its dependents"
    );

    let (s, _) = post(
        &sim,
        &format!(
            "/repos/octo/app/actions/jobs/{}/rerun",
            job_id(&jobs1, "test")
        ),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    // While attempt 2 runs, GitHub refuses any further re-run of the run.
    let (s, body) = post(
        &sim,
        &format!(
            "/repos/octo/app/actions/jobs/{}/rerun",
            job_id(&jobs1, "lint")
        ),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("This workflow is already running"), "{body}");
    let (s, _) = post(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let second = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(second.attempts.len(), 2);
    assert_eq!(second.latest().conclusion.as_deref(), Some("success"));
    assert_eq!(
        second.latest().runs,
        ["test", "deploy"],
        "the job and what needs it run again"
    );
    let jobs2 = sim.attempt_jobs(run, 2).await;
    let by = |n: &str| jobs2.iter().find(|j| j.name == n).unwrap().clone();
    assert_eq!(
        by("build").run_attempt,
        1,
        "jobs not re-run keep their earlier result"
    );
    assert_eq!(by("lint").id, job_id(&jobs1, "lint"));
    assert_eq!(by("test").run_attempt, 2);
    assert_ne!(
        by("test").id,
        job_id(&jobs1, "test"),
        "a re-run job is a new job id"
    );
    let state = get(&sim, &format!("/repos/octo/app/actions/runs/{run}")).await;
    assert_eq!(
        (state["run_attempt"].as_u64(), state["status"].as_str()),
        (Some(2), Some("completed"))
    );

    // Once the attempt completed, the next re-run is accepted and makes attempt 3.
    let (s, _) = post(
        &sim,
        &format!(
            "/repos/octo/app/actions/jobs/{}/rerun",
            job_id(&jobs1, "lint")
        ),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let third = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(third.latest().number, 3);
    assert_eq!(third.latest().runs, ["lint"]);
}

#[tokio::test]
async fn a_job_left_failed_keeps_the_next_attempt_failed() {
    let sim = sim(GithubConfig::default()).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("flaky").fails("ETIMEDOUT").passes())
        .job(JobSpec::new("unit").fails("assertion failed: left == right"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let jobs = get(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/attempts/1/jobs"),
    )
    .await;
    post(
        &sim,
        &format!(
            "/repos/octo/app/actions/jobs/{}/rerun",
            job_id(&jobs, "flaky")
        ),
        json!({}),
    )
    .await;
    let after = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(after.latest().conclusion.as_deref(), Some("failure"));
    let failed: Vec<String> = sim
        .attempt_jobs(run, 2)
        .await
        .into_iter()
        .filter(|j| j.conclusion.as_deref() == Some("failure"))
        .map(|j| j.name)
        .collect();
    assert_eq!(
        failed,
        ["unit"],
        "attempt 2 lists the genuine failure of attempt 1"
    );
}

#[tokio::test]
async fn a_run_has_at_most_fifty_attempts() {
    let sim = sim(GithubConfig::default()).await;
    let spec =
        RunSpec::new("octo/app", "ci.yml").job(JobSpec::new("t").duration_ms(1).fails("flake"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    for _ in 2..=50 {
        let (s, body) = post(
            &sim,
            &format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs"),
            json!({}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        sim.wait_run(run, WAIT).await.unwrap();
    }
    let (s, body) = post(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(sim.run(run).await.unwrap().attempts.len(), 50);
}

#[tokio::test]
async fn runs_older_than_thirty_days_are_not_re_run() {
    let sim = sim(GithubConfig::default()).await;
    let spec = RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("t").fails("flake"))
        .started_ago(std::time::Duration::from_secs(31 * 24 * 3600));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let (s, body) = post(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("created over a month ago"), "{body}");
}

fn scale_workflow() -> RunSpec {
    RunSpec::new("octo/app", "scale.yml")
        .parameter("runner", "ubuntu-latest")
        .job(JobSpec::new("test"))
}

#[tokio::test]
async fn dispatch_returns_the_run_id_when_asked_and_refuses_undeclared_inputs() {
    let sim = sim(GithubConfig::default()).await;
    sim.define_workflow(scale_workflow()).await.unwrap();
    let path = "/repos/octo/app/actions/workflows/scale.yml/dispatches";
    let (s, body) = post(
        &sim,
        path,
        json!({"ref": "main", "inputs": {"runner": "xl"}, "return_run_details": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let id = serde_json::from_str::<Value>(&body).unwrap()["workflow_run_id"]
        .as_u64()
        .unwrap();
    let run = sim.wait_run(id, WAIT).await.unwrap();
    assert_eq!(
        (run.event.as_str(), run.inputs["runner"].as_str()),
        ("workflow_dispatch", "xl")
    );
    let (s, _) = post(&sim, path, json!({"ref": "main"})).await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "without the parameter the answer stays 204"
    );
    let (s, body) = post(&sim, path, json!({"ref": "main", "inputs": {"size": "xl"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Unexpected inputs"), "{body}");
}

#[tokio::test]
async fn an_old_server_answers_204_and_the_run_is_found_by_listing_the_workflow_runs() {
    let sim = sim(GithubConfig::default().dispatch(DispatchMode::NoContent)).await;
    sim.define_workflow(scale_workflow()).await.unwrap();
    sim.start_run(scale_workflow().branch("other"))
        .await
        .unwrap();
    let before = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let path = "/repos/octo/app/actions/workflows/scale.yml/dispatches";
    let (s, body) = post(
        &sim,
        path,
        json!({"ref": "main", "return_run_details": true}),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::NO_CONTENT, ""));
    let since = before
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let listed = get(
        &sim,
        &format!("/repos/octo/app/actions/workflows/scale.yml/runs?branch=main&event=workflow_dispatch&created=%3E%3D{since}"),
    )
    .await;
    assert_eq!(listed["total_count"], 1);
    let id = listed["workflow_runs"][0]["id"].as_u64().unwrap();
    assert_eq!(sim.inspect(|st| st.dispatches[0].run_id).await, id);

    let strict = GithubSim::start(
        GithubConfig::default()
            .token(TOKEN)
            .dispatch(DispatchMode::RejectsRunDetails),
    )
    .await
    .unwrap();
    strict.define_workflow(scale_workflow()).await.unwrap();
    let (s, body) = post(
        &strict,
        path,
        json!({"ref": "main", "return_run_details": true}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(strict.inspect(|st| st.runs.is_empty()).await);
}

#[tokio::test]
async fn logs_redirect_to_a_blob_and_listings_paginate() {
    let sim = sim(GithubConfig::default()).await;
    let mut spec = RunSpec::new("octo/app", "ci.yml");
    for i in 0..5 {
        spec =
            spec.job(JobSpec::new(format!("job{i}")).then(Outcome::fail(format!("error in {i}"))));
    }
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let p1 = get(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/attempts/1/jobs?per_page=2&page=1"),
    )
    .await;
    let p3 = get(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/attempts/1/jobs?per_page=2&page=3"),
    )
    .await;
    assert_eq!(
        (
            p1["total_count"].as_u64(),
            p1["jobs"].as_array().unwrap().len()
        ),
        (Some(5), 2)
    );
    assert_eq!(p3["jobs"].as_array().unwrap().len(), 1);
    let id = p1["jobs"][0]["id"].as_u64().unwrap();

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!(
            "{}/repos/octo/app/actions/jobs/{id}/logs",
            sim.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let log = http()
        .get(location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("error in 0"), "{log}");
    assert!(log.contains("##[error]Process completed with exit code 1."));
}

#[tokio::test]
async fn tokens_are_checked_like_the_rest_api() {
    let sim = sim(GithubConfig::default()).await;
    let url = format!("{}/repos/octo/app/actions/runs", sim.base_url());
    let none = http().get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none
        .text()
        .await
        .unwrap()
        .contains("Requires authentication"));
    let bad = http().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.text().await.unwrap().contains("Bad credentials"));
    let ok = http()
        .get(&url)
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(sim.requests().await.len(), 3);
    assert_eq!(
        sim.requests().await[1].header("authorization"),
        Some("Bearer nope")
    );
}

#[tokio::test]
async fn caches_are_listed_by_ref_and_key_prefix_and_deleted_by_id() {
    let sim = sim(GithubConfig::default()).await;
    let a = sim
        .add_cache("octo/app", "refs/heads/main", "npm-abc", 10)
        .await;
    sim.add_cache("octo/app", "refs/heads/main", "cargo-abc", 10)
        .await;
    sim.add_cache("octo/app", "refs/heads/dev", "npm-def", 10)
        .await;
    let listed = get(
        &sim,
        "/repos/octo/app/actions/caches?ref=refs%2Fheads%2Fmain&key=npm-",
    )
    .await;
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["actions_caches"][0]["id"].as_u64(), Some(a));
    let del = |id: u64| {
        http()
            .delete(format!(
                "{}/repos/octo/app/actions/caches/{id}",
                sim.base_url()
            ))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(del(a).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(del(a).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.inspect(|st| st.caches.len()).await, 2);
}

#[tokio::test]
async fn deliveries_are_signed_and_parse_as_pipeguard_expects() {
    let rx = Receiver::start().await;
    let sim = sim(GithubConfig::default().webhook(&rx.url, "s3cret")).await;
    let spec =
        RunSpec::new("octo/app", "ci.yml").job(JobSpec::new("test").fails("ECONNRESET").passes());
    let run = sim.start_run(spec).await.unwrap();
    let got = rx
        .wait(|g| {
            g.iter().any(|d| {
                d.header("x-github-event") == "workflow_run" && d.json()["action"] == "completed"
            })
        })
        .await;
    for d in &got {
        let sig = format!("sha256={}", hmac_hex("s3cret", &d.body));
        assert_eq!(d.header("x-hub-signature-256"), sig);
        assert!(!d.header("x-github-delivery").is_empty());
    }
    let events: Vec<String> = got
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d.header("x-github-event"),
                d.json()["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "workflow_run:requested",
            "workflow_run:in_progress",
            "workflow_job:in_progress",
            "workflow_job:completed",
            "workflow_run:completed"
        ]
    );
    let done = got.last().unwrap();
    let Parsed::Failure(ev) = gh_parser::parse_event("workflow_run", &done.body).unwrap() else {
        panic!("a failed run is a failure for pipeguard")
    };
    assert_eq!(
        (ev.run_id.clone(), ev.attempt, ev.repository.as_str()),
        (run.to_string(), 1, "octo/app")
    );
    assert_eq!(got[0].json()["workflow_run"]["status"], "queued");
    let job = &got[3];
    let Parsed::Failure(jev) = gh_parser::parse_event("workflow_job", &job.body).unwrap() else {
        panic!("a failed job is a failure for pipeguard")
    };
    assert_eq!(jev.jobs[0].name, "test");

    post(
        &sim,
        &format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs"),
        json!({}),
    )
    .await;
    let got = rx.wait(|g| g.len() == 10).await;
    assert!(matches!(
        gh_parser::parse_event("workflow_run", &got[9].body).unwrap(),
        Parsed::Success { attempt: 2, .. }
    ));
    assert!(sim.deliveries().await.iter().all(|d| d.status == Some(202)));
    assert_eq!(
        sim.run(run).await.unwrap().latest().status,
        Status::Completed
    );
}

#[tokio::test]
async fn injected_faults_refuse_a_call_or_lose_its_answer() {
    let sim = sim(GithubConfig::default()).await;
    let spec = RunSpec::new("octo/app", "ci.yml").job(JobSpec::new("t").fails("flake").passes());
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    let path = format!("/repos/octo/app/actions/runs/{run}/rerun-failed-jobs");
    sim.inject(pipeguard_sim::Fault::refuse("rerun-failed-jobs", 503))
        .await;
    let (s, _) = post(&sim, &path, json!({})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        sim.run(run).await.unwrap().attempts.len(),
        1,
        "refused: nothing started"
    );
    sim.inject(pipeguard_sim::Fault::lose_answer("rerun-failed-jobs", 502).method("POST"))
        .await;
    let (s, _) = post(&sim, &path, json!({})).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(
        sim.run(run).await.unwrap().attempts.len(),
        2,
        "the answer was lost, the re-run started"
    );
    let (s, _) = post(&sim, &path, json!({})).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "faults are used up; the attempt is running"
    );
}
