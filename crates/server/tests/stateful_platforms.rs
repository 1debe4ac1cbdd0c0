//! Heals against stand-ins that keep each platform's state between calls (crates/sim), so
//! what the real services refuse between calls is refused here too: GitHub's one re-run per
//! attempt, Jenkins queue items that become builds, dispatches without run details, GitLab job
//! retries while the pipeline still runs.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_sim::github::{DispatchMode, GithubConfig, GithubSim};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn log(category: &str) -> String {
    sample(category).unwrap().log.to_string()
}

/// A GitHub stand-in wired to a pipeguard server both ways.
async fn github(
    mode: DispatchMode,
    tweak: impl FnOnce(&mut pipeguard_server::config::Config),
) -> (GithubSim, TestApp) {
    let sim = GithubSim::start(
        GithubConfig::default()
            .token("ghs_testtoken")
            .dispatch(mode),
    )
    .await
    .unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Github).api_url = url;
        tweak(c);
    })
    .await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/github", app.base),
        SECRET,
    )))
    .await;
    (sim, app)
}

/// The first session, once `pred` holds for it.
async fn the_session(app: &TestApp, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let list = app.get("/api/v1/sessions").await;
        let oldest = list["sessions"].as_array().and_then(|l| l.last().cloned());
        if let Some(id) = oldest.as_ref().and_then(|s| s["id"].as_str()) {
            last = app.get(&format!("/api/v1/sessions/{id}")).await;
            if pred(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the session never got there: {last:#}");
}

fn mixed_run(transient: &[&str]) -> RunSpec {
    let mut spec = RunSpec::new(REPO, "ci.yml");
    for name in transient {
        spec = spec.job(JobSpec::new(*name).fails(log("network")).passes());
    }
    spec.job(JobSpec::new("unit").fails(log("compilation_error")))
}

#[tokio::test]
async fn github_transient_jobs_beside_a_genuine_one_are_rerun_one_attempt_after_another() {
    for (jobs, max) in [(vec!["it-a", "it-b"], 2), (vec!["it-a", "it-b", "it-c"], 3)] {
        let (sim, app) = github(DispatchMode::RunDetails, |c| c.healing.max_attempts = max).await;
        let run = sim.start_run(mixed_run(&jobs)).await.unwrap();
        let s = the_session(&app, |s| s["status"] == "escalated").await;
        let r = sim.wait_run(run, WAIT).await.unwrap();
        assert_eq!(
            r.attempts.len(),
            jobs.len() + 1,
            "one attempt per transient job"
        );
        for (i, name) in jobs.iter().enumerate() {
            let a = &r.attempts[i + 1];
            assert_eq!(a.runs, [*name], "attempt {} re-ran {name} alone", i + 2);
        }
        assert!(
            r.attempts
                .iter()
                .skip(1)
                .all(|a| !a.runs.contains(&"unit".to_string())),
            "the genuine job is never re-run"
        );
        let reruns = sim
            .requests()
            .await
            .iter()
            .filter(|r| r.path().ends_with("/rerun"))
            .count();
        assert_eq!(
            reruns,
            jobs.len(),
            "one call per job, none refused and repeated"
        );
        let timeline = s["timeline"].to_string();
        for (i, name) in jobs.iter().enumerate() {
            let note = format!("attempt {} re-runs job {name}", i + 2);
            assert!(
                timeline.contains(&note) || (i + 1 == jobs.len() && s["heal_attempts"] == max),
                "{note} missing: {timeline}"
            );
        }
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .contains("unit (compilation_error)"),
            "{}",
            s["reason"]
        );
        assert_eq!(s["heal_attempts"], jobs.len());
        app.stop().await;
    }
}

#[tokio::test]
async fn github_attempt_limit_reached_midway_leaves_the_rest_to_people() {
    let (sim, app) = github(DispatchMode::RunDetails, |c| c.healing.max_attempts = 2).await;
    let run = sim
        .start_run(mixed_run(&["it-a", "it-b", "it-c"]))
        .await
        .unwrap();
    let s = the_session(&app, |s| s["status"] == "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("limit of 2 heal attempt(s) with transient job(s) it-c not re-run"),
        "{}",
        s["reason"]
    );
    let r = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(r.attempts.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn github_refusing_a_rerun_during_another_attempt_means_wait() {
    let (sim, app) = github(DispatchMode::RunDetails, |c| c.healing.backoff_seconds = 1).await;
    let spec = RunSpec::new(REPO, "ci.yml").job(
        JobSpec::new("it")
            .fails(log("network"))
            .then(pipeguard_sim::Outcome::fail(log("network")))
            .duration_ms(2500),
    );
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    the_session(&app, |s| s["status"] == "planned").await;
    // A person re-runs the job meanwhile; theirs takes a while.
    let person = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs",
            sim.base_url()
        ))
        .bearer_auth("ghs_testtoken")
        .send()
        .await
        .unwrap();
    assert_eq!(person.status(), 201);
    let s = the_session(&app, |s| {
        s["timeline"]
            .to_string()
            .contains("the platform cannot re-run it yet")
    })
    .await;
    assert_ne!(
        s["status"], "escalated",
        "a 403 during an attempt is not a refusal"
    );
    let ours = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.path().ends_with("/rerun-failed-jobs"))
        .count();
    assert!(ours >= 2, "the person's call and pipeguard's refused one");
    app.stop().await;
}

#[tokio::test]
async fn a_dispatched_run_is_found_without_run_details() {
    let (sim, app) = github(DispatchMode::NoContent, |c| {
        // With a two-minute poll, only the early look finds the new run's outcome in WAIT.
        c.worker.verify_poll_seconds = 120;
        c.repos.push(pipeguard_server::tenants::RepoConfig {
            platform: "github".into(),
            name: REPO.into(),
            scale: Some(pipeguard_server::tenants::Trigger {
                workflow: Some("scale.yml".into()),
                inputs: [("runner".to_string(), "large".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    })
    .await;
    sim.define_workflow(
        RunSpec::new(REPO, "scale.yml")
            .parameter("runner", "small")
            .job(JobSpec::new("test").duration_ms(800).passes()),
    )
    .await
    .unwrap();
    let spec = RunSpec::new(REPO, "ci.yml").job(JobSpec::new("test").fails(log("out_of_memory")));
    sim.start_run(spec).await.unwrap();
    // The dispatched run's delivery is lost (as when it came before the session followed the
    // run): only the session's early look at the new run can see it passed.
    the_session(&app, |s| s["status"].is_string()).await;
    sim.set_webhook(None).await;
    let s = the_session(&app, |s| s["status"] == "healed").await;
    let dispatched = sim
        .inspect(|st| st.runs.keys().max().copied().unwrap())
        .await;
    assert_eq!(s["current_run"], dispatched.to_string());
    assert_eq!(s["strategy"], "scale_resources");
    app.stop().await;
}

#[tokio::test]
async fn jenkins_counts_only_the_build_it_started() {
    let sim = JenkinsSim::start(JenkinsConfig::default().credentials("pg", "jt-token"))
        .await
        .unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        let j = c.platform_mut(Platform::Jenkins);
        j.api_url = url;
        j.user = Some("pg".into());
        j.token = Some("jt-token".into());
        j.webhook_secret = Some("jenkins-secret".into());
    })
    .await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/jenkins", app.base),
        "jenkins-secret",
    )))
    .await;
    // Build #1 fails for a network reason; alice's build (#2) and pipeguard's (#3) pass.
    let spec = RunSpec::new("team/api", "Jenkinsfile").job(
        JobSpec::new("Test")
            .duration_ms(400)
            .fails(log("network"))
            .passes(),
    );
    let first = sim.start_run(spec).await.unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    sim.trigger_build("team/api", &[], "Started by user alice")
        .await
        .unwrap();
    let s = the_session(&app, |s| s["status"] == "healed").await;
    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("attempt 2 finished, but the heal started attempt 3"),
        "{timeline}"
    );
    assert!(
        s["reason"].as_str().unwrap().ends_with("on attempt 3"),
        "{}",
        s["reason"]
    );
    app.stop().await;
}

/// A GitLab stand-in wired to a pipeguard server both ways.
async fn gitlab() -> (GitlabSim, TestApp) {
    let sim = GitlabSim::start(GitlabConfig::default().token("glpat-sim"))
        .await
        .unwrap();
    let app = TestApp::start_gitlab(sim.base_url(), |c| c.worker.verify_poll_seconds = 1).await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/gitlab", app.base),
        "gl-secret",
    )))
    .await;
    (sim, app)
}

/// The calls that started work again: job retries and pipeline retries.
async fn gitlab_retries(sim: &GitlabSim) -> (Vec<String>, usize) {
    let requests = sim.requests().await;
    let jobs = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path().contains("/jobs/") && r.path().ends_with("/retry")
        })
        .map(|r| r.path().to_string())
        .collect();
    let pipelines = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path().contains("/pipelines/") && r.path().ends_with("/retry")
        })
        .count();
    (jobs, pipelines)
}

fn job_named(jobs: &[pipeguard_sim::gitlab::Job], name: &str) -> Vec<pipeguard_sim::gitlab::Job> {
    jobs.iter().filter(|j| j.name == name).cloned().collect()
}

#[tokio::test]
async fn gitlab_retries_a_transient_job_while_its_pipeline_still_runs_and_only_once() {
    let (sim, app) = gitlab().await;
    // `fetch` fails at once for a network reason; `unit` fails for a bug after 2.5 s.
    let spec = RunSpec::new("grp/app", ".gitlab-ci.yml")
        .job(
            JobSpec::new("fetch")
                .duration_ms(50)
                .fails(log("network"))
                .passes(),
        )
        .job(
            JobSpec::new("unit")
                .duration_ms(2500)
                .fails(log("compilation_error")),
        );
    let pipeline = sim.start_run(spec).await.unwrap();
    let s = the_session(&app, |s| s["status"] == "escalated").await;
    let done = sim.wait_pipeline(pipeline, WAIT).await.unwrap();
    assert_eq!(done.status, "failed", "unit needs a human");
    let jobs = sim.jobs(pipeline).await;
    let fetch = job_named(&jobs, "fetch");
    let unit = job_named(&jobs, "unit");
    assert_eq!(fetch.len(), 2, "fetch ran twice: {fetch:?}");
    assert_eq!(unit.len(), 1, "the genuine job is never retried");
    assert!(
        fetch[1].created_at < unit[0].finished_at.unwrap(),
        "the retry came while unit still ran: retried at {}, unit finished at {:?}",
        fetch[1].created_at,
        unit[0].finished_at
    );
    assert_eq!(fetch[1].status, pipeguard_sim::gitlab::JobStatus::Success);
    // The failed Pipeline Hook came after the retry: the job is not retried again.
    let (job_retries, pipeline_retries) = gitlab_retries(&sim).await;
    assert_eq!(
        job_retries,
        [format!(
            "/api/v4/projects/grp%2Fapp/jobs/{}/retry",
            fetch[0].id
        )]
    );
    assert_eq!(pipeline_retries, 0);
    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("job fetch failed while the run goes on: retrying it alone now"),
        "{timeline}"
    );
    assert!(
        s["reason"].as_str().unwrap().contains("compilation_error"),
        "{}",
        s["reason"]
    );
    app.stop().await;
}

#[tokio::test]
async fn gitlab_early_retry_heals_before_the_pipeline_would_have_finished() {
    let (sim, app) = gitlab().await;
    let spec = RunSpec::new("grp/app", ".gitlab-ci.yml")
        .job(
            JobSpec::new("fetch")
                .duration_ms(50)
                .fails(log("network"))
                .passes(),
        )
        .job(JobSpec::new("integration").duration_ms(2500).passes());
    let pipeline = sim.start_run(spec).await.unwrap();
    let s = the_session(&app, |s| s["status"] == "healed").await;
    let jobs = sim.jobs(pipeline).await;
    let fetch = job_named(&jobs, "fetch");
    let integration = job_named(&jobs, "integration");
    assert!(fetch[1].created_at < integration[0].finished_at.unwrap());
    let (job_retries, pipeline_retries) = gitlab_retries(&sim).await;
    assert_eq!((job_retries.len(), pipeline_retries), (1, 0));
    assert_eq!(s["heal_attempts"], 1);
    // Time to green counts from the job's failure to the pipeline's success: the 2.5 s of the
    // other job, not that plus a retry after it.
    let ttg = s["time_to_green_ms"].as_i64().unwrap();
    assert!(ttg < 4000, "time to green {ttg} ms");
    app.stop().await;
}

#[tokio::test]
async fn gitlab_genuine_or_deploy_failures_wait_for_the_pipeline() {
    for (name, category, status) in [
        ("unit", "compilation_error", "escalated"),
        ("deploy-production", "network", "awaiting_approval"),
    ] {
        let (sim, app) = gitlab().await;
        let spec = RunSpec::new("grp/app", ".gitlab-ci.yml")
            .job(
                JobSpec::new(name)
                    .duration_ms(50)
                    .fails(log(category))
                    .passes(),
            )
            .job(JobSpec::new("slow").duration_ms(1500).passes());
        let pipeline = sim.start_run(spec).await.unwrap();
        let s = the_session(&app, |s| s["status"] == status).await;
        let done = sim.pipeline(pipeline).await.unwrap();
        assert_eq!(
            done.status, "failed",
            "{name}: decided once the pipeline completed"
        );
        let (job_retries, pipeline_retries) = gitlab_retries(&sim).await;
        assert_eq!((job_retries.len(), pipeline_retries), (0, 0), "{name}");
        let timeline = s["timeline"].to_string();
        assert!(
            timeline.contains(&format!("job {name} is not retried while the run goes on")),
            "{timeline}"
        );
        app.stop().await;
    }
}
