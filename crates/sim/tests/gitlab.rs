//! GitLab CI semantics, checked through API v4 with reqwest.

mod common;

use common::{Receiver, WAIT};
use pipeguard_platforms::{gitlab as gl_parser, Parsed};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim, JobStatus};
use pipeguard_sim::{JobSpec, Outcome, RunSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "glpat-test";
const P: &str = "/api/v4/projects/grp%2Fapp";

async fn sim(config: GitlabConfig) -> GitlabSim {
    GitlabSim::start(config.token(TOKEN)).await.unwrap()
}

async fn call(
    sim: &GitlabSim,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .header("PRIVATE-TOKEN", TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    (
        s,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// build → test (fails once with a runner failure) → deploy to production; lint alongside test.
fn pipeline() -> RunSpec {
    RunSpec::new("grp/app", "main")
        .job(JobSpec::new("build").stage("build"))
        .job(
            JobSpec::new("test")
                .stage("test")
                .then(
                    Outcome::fail("ERROR: Job failed (system failure): pod terminated")
                        .with_reason("runner_system_failure"),
                )
                .passes(),
        )
        .job(JobSpec::new("lint").stage("test"))
        .job(
            JobSpec::new("production")
                .stage("deploy")
                .environment("production"),
        )
}

fn named(jobs: &Value, name: &str) -> Vec<Value> {
    jobs.as_array()
        .unwrap()
        .iter()
        .filter(|j| j["name"] == name)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_retried_job_is_a_new_job_and_the_old_one_cannot_be_retried_again() {
    let sim = sim(GitlabConfig::default()).await;
    let id = sim.start_run(pipeline()).await.unwrap();
    let p = sim.wait_pipeline(id, WAIT).await.unwrap();
    assert_eq!(p.status, "failed");
    let (_, _, jobs) = call(
        &sim,
        reqwest::Method::GET,
        &format!("{P}/pipelines/{id}/jobs"),
        None,
    )
    .await;
    let test = &named(&jobs, "test")[0];
    assert_eq!(test["failure_reason"], "runner_system_failure");
    assert_eq!(
        named(&jobs, "production")[0]["status"],
        "skipped",
        "a later stage is skipped after a failure"
    );
    let old = test["id"].as_u64().unwrap();

    let (s, _, new) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/jobs/{old}/retry"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let new_id = new["id"].as_u64().unwrap();
    assert_ne!(new_id, old, "a retry is a new job");
    assert_eq!(
        new["pipeline"]["id"].as_u64(),
        Some(id),
        "in the same pipeline"
    );
    let (s, _, body) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/jobs/{old}/retry"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "403 Forbidden - Job is not retryable");

    let p = sim.wait_pipeline(id, WAIT).await.unwrap();
    assert_eq!(
        p.status, "success",
        "the skipped deploy ran after the retried job passed"
    );
    let (_, _, latest) = call(
        &sim,
        reqwest::Method::GET,
        &format!("{P}/pipelines/{id}/jobs"),
        None,
    )
    .await;
    assert_eq!(
        named(&latest, "test").len(),
        1,
        "retried jobs are hidden by default"
    );
    assert_eq!(named(&latest, "production")[0]["status"], "success");
    let (_, _, all) = call(
        &sim,
        reqwest::Method::GET,
        &format!("{P}/pipelines/{id}/jobs?include_retried=true"),
        None,
    )
    .await;
    let ids: Vec<u64> = named(&all, "test")
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [new_id, old], "newest first, the retried one included");
}

#[tokio::test]
async fn a_running_job_is_not_retryable() {
    let sim = sim(GitlabConfig::default()).await;
    let spec = RunSpec::new("grp/app", "main").job(JobSpec::new("slow").duration_ms(500));
    let id = sim.start_run(spec).await.unwrap();
    sim.wait_until(WAIT, |st| {
        st.jobs.values().any(|j| j.status == JobStatus::Running)
    })
    .await
    .unwrap();
    let job = sim.jobs(id).await[0].id;
    let (s, _, _) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/jobs/{job}/retry"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_pipeline_retry_keeps_the_pipeline_id_and_retries_only_failed_jobs() {
    let sim = sim(GitlabConfig::default()).await;
    let id = sim.start_run(pipeline()).await.unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    let (s, _, body) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/pipelines/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (body["id"].as_u64(), body["status"].as_str()),
        (Some(id), Some("running"))
    );
    let p = sim.wait_pipeline(id, WAIT).await.unwrap();
    assert_eq!(p.status, "success");
    let jobs = sim.jobs(id).await;
    let runs = |n: &str| jobs.iter().filter(|j| j.name == n).count();
    assert_eq!(
        (
            runs("build"),
            runs("lint"),
            runs("test"),
            runs("production")
        ),
        (1, 1, 2, 1)
    );
    let (s, _, _) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/pipelines/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "nothing failed, nothing to retry");
}

#[tokio::test]
async fn a_new_pipeline_takes_variables_and_continues_the_script() {
    let sim = sim(GitlabConfig::default()).await;
    let first = sim.start_run(pipeline()).await.unwrap();
    sim.wait_pipeline(first, WAIT).await.unwrap();
    let body = json!({"ref": "main", "variables": [{"key": "RUNNER_TAG", "value": "xlarge"}]});
    let (s, _, p) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/pipeline"),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = p["id"].as_u64().unwrap();
    assert_ne!(id, first);
    let p = sim.wait_pipeline(id, WAIT).await.unwrap();
    assert_eq!(p.source, "api");
    assert_eq!(
        p.variables,
        [("RUNNER_TAG".to_string(), "xlarge".to_string())]
    );
    assert_eq!(
        p.status, "success",
        "the test job's second execution passes"
    );
    let (s, _, _) = call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/pipeline"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failed_jobs_page_with_x_next_page_and_traces_are_text() {
    let sim = sim(GitlabConfig::default()).await;
    let mut spec = RunSpec::new("grp/app", "main");
    for i in 0..3 {
        spec =
            spec.job(JobSpec::new(format!("j{i}")).fails(format!("npm ERR! code ECONNRESET {i}")));
    }
    let id = sim.start_run(spec.job(JobSpec::new("ok"))).await.unwrap();
    sim.wait_pipeline(id, WAIT).await.unwrap();
    let path = format!("{P}/pipelines/{id}/jobs?scope[]=failed&per_page=2");
    let (_, h, page1) = call(&sim, reqwest::Method::GET, &format!("{path}&page=1"), None).await;
    assert_eq!(h["x-next-page"], "2");
    assert_eq!(h["x-total"], "3");
    let (_, h, page2) = call(&sim, reqwest::Method::GET, &format!("{path}&page=2"), None).await;
    assert_eq!(h["x-next-page"], "");
    assert_eq!(
        page1.as_array().unwrap().len() + page2.as_array().unwrap().len(),
        3
    );
    let job = page2[0]["id"].as_u64().unwrap();
    let (s, _, trace) = call(
        &sim,
        reqwest::Method::GET,
        &format!("{P}/jobs/{job}/trace"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        trace
            .as_str()
            .unwrap()
            .contains("npm ERR! code ECONNRESET 0"),
        "{trace}"
    );
}

/// What pipeguard reads to find a job's last green run: the project's default branch and its
/// pipelines filtered by ref and status, newest first.
#[tokio::test]
async fn pipelines_are_listed_by_ref_and_status_newest_first() {
    let sim = sim(GitlabConfig::default()).await;
    let on = |branch: &str, fails: bool| {
        let job = JobSpec::new("build");
        let job = if fails { job.fails("error: boom") } else { job };
        RunSpec::new("grp/app", "ci").branch(branch).job(job)
    };
    let mut ids = Vec::new();
    for (branch, fails) in [
        ("main", false),
        ("main", true),
        ("dev", false),
        ("main", false),
    ] {
        let id = sim.start_run(on(branch, fails)).await.unwrap();
        sim.wait_pipeline(id, WAIT).await.unwrap();
        ids.push(id);
    }
    let listed = |q: &'static str| {
        let sim = &sim;
        async move {
            let (s, _, body) = call(
                sim,
                reqwest::Method::GET,
                &format!("{P}/pipelines?{q}"),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK);
            let ids: Vec<u64> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap())
                .collect();
            ids
        }
    };
    assert_eq!(listed("ref=main&status=success").await, [ids[3], ids[0]]);
    assert_eq!(listed("ref=main").await, [ids[3], ids[1], ids[0]]);
    assert_eq!(listed("status=success&per_page=1").await, [ids[3]]);
    let (s, _, project) = call(&sim, reqwest::Method::GET, P, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(project["default_branch"], "main");
    assert_eq!(project["path_with_namespace"], "grp/app");
}

#[tokio::test]
async fn tokens_and_projects_are_checked() {
    let sim = sim(GitlabConfig::default()).await;
    sim.start_run(pipeline()).await.unwrap();
    let url = format!("{}{P}/pipelines/1", sim.base_url());
    let r = reqwest::Client::new()
        .get(&url)
        .header("PRIVATE-TOKEN", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "401 Unauthorized"
    );
    let (s, _, body) = call(
        &sim,
        reqwest::Method::GET,
        "/api/v4/projects/grp%2Fother/pipelines/1",
        None,
    )
    .await;
    assert_eq!(
        (s, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("404 Project Not Found"))
    );
}

#[tokio::test]
async fn hooks_carry_the_token_and_parse_as_pipeguard_expects() {
    let rx = Receiver::start().await;
    let sim = sim(GitlabConfig::default().webhook(&rx.url, "hook-secret")).await;
    let id = sim.start_run(pipeline()).await.unwrap();
    let failed = |d: &common::Received| {
        d.header("x-gitlab-event") == "Pipeline Hook"
            && d.json()["object_attributes"]["status"] == "failed"
    };
    let got = rx.wait(|g| g.iter().any(failed)).await;
    assert!(got
        .iter()
        .all(|d| d.header("x-gitlab-token") == "hook-secret"
            && !d.header("x-gitlab-event-uuid").is_empty()));
    let hook = got.iter().find(|d| failed(d)).unwrap();
    let Parsed::Failure(ev) = gl_parser::parse_event("Pipeline Hook", &hook.body).unwrap() else {
        panic!("a failed pipeline is a failure for pipeguard")
    };
    assert_eq!(
        (ev.repository.as_str(), ev.run_id.clone()),
        ("grp/app", id.to_string())
    );
    assert_eq!(ev.jobs.len(), 1);
    assert_eq!(
        ev.jobs[0].platform_reason.as_deref(),
        Some("runner_system_failure")
    );

    let old = sim
        .jobs(id)
        .await
        .into_iter()
        .find(|j| j.name == "test")
        .unwrap()
        .id;
    call(
        &sim,
        reqwest::Method::POST,
        &format!("{P}/jobs/{old}/retry"),
        None,
    )
    .await;
    let success = |d: &common::Received| {
        d.header("x-gitlab-event") == "Pipeline Hook"
            && d.json()["object_attributes"]["status"] == "success"
    };
    let got = rx.wait(|g| g.iter().any(success)).await;
    let done = got.iter().find(|d| success(d)).unwrap();
    assert!(matches!(
        gl_parser::parse_event("Pipeline Hook", &done.body).unwrap(),
        Parsed::Success { .. }
    ));
    let env = got
        .iter()
        .filter(|d| d.header("x-gitlab-event") == "Job Hook")
        .find(|d| d.json()["build_name"] == "production" && d.json()["build_status"] == "success")
        .expect("the deploy job's hook");
    assert_eq!(env.json()["environment"]["name"], "production");
    let retried = got
        .iter()
        .filter(|d| d.header("x-gitlab-event") == "Job Hook")
        .find(|d| d.json()["build_name"] == "test" && d.json()["build_status"] == "success")
        .unwrap();
    assert_eq!(retried.json()["retries_count"], 1);
}

/// Runners: a job is picked up by the runner assigned to its project, else a shared one, and
/// the job, its hooks and the jobs API name it; `PUT /runners/:id` `paused=true` (JSON or
/// form) keeps it from new jobs, which then go to a shared runner.
#[tokio::test]
async fn a_paused_runner_takes_no_new_job() {
    let s = sim(GitlabConfig::default()).await;
    s.add_runner(1, "shared-1", &[]).await;
    s.add_runner(7, "gl-7", &["grp/app"]).await;
    let spec = || RunSpec::new("grp/app", "main").job(JobSpec::new("build").stage("build"));
    let first = s.start_run(spec()).await.unwrap();
    s.wait_pipeline(first, WAIT).await.unwrap();
    let (_, _, jobs) = call(
        &s,
        reqwest::Method::GET,
        &format!("{P}/pipelines/{first}/jobs"),
        None,
    )
    .await;
    assert_eq!(jobs[0]["runner"]["id"], 7);
    assert_eq!(jobs[0]["runner"]["description"], "gl-7");

    let (status, _, r) = call(
        &s,
        reqwest::Method::PUT,
        "/api/v4/runners/7",
        Some(json!({"paused": true})),
    )
    .await;
    assert_eq!(
        (status, &r["paused"], &r["active"]),
        (StatusCode::OK, &json!(true), &json!(false))
    );
    assert!(s.runner(7).await.unwrap().paused);
    let second = s.start_run(spec()).await.unwrap();
    s.wait_pipeline(second, WAIT).await.unwrap();
    let (_, _, jobs) = call(
        &s,
        reqwest::Method::GET,
        &format!("{P}/pipelines/{second}/jobs"),
        None,
    )
    .await;
    assert_eq!(jobs[0]["runner"]["id"], 1, "the shared runner took it");

    let form = reqwest::Client::new()
        .put(format!("{}/api/v4/runners/7", s.base_url()))
        .header("PRIVATE-TOKEN", TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("paused=false")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert!(!s.runner(7).await.unwrap().paused);
    let (status, _, _) = call(
        &s,
        reqwest::Method::PUT,
        "/api/v4/runners/99",
        Some(json!({"paused": true})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unauthorized = reqwest::Client::new()
        .put(format!("{}/api/v4/runners/7", s.base_url()))
        .json(&json!({"paused": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}
