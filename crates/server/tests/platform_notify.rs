//! Notifications on the commit: a GitHub check run (on the GitHub stand-in) or commit status
//! when a session is escalated or waits for approval, nothing when it heals.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const DASHBOARD: &str = "https://pipeguard.example.com";
/// The commit of `workflow_run`'s deliveries.
const SHA: &str = "3484a3fb816e0859fd6e1cea078d76385ff50625";

async fn start(kind: &str) -> TestApp {
    let app = TestApp::start_with(|c| {
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            kind: kind.into(),
            url: DASHBOARD.into(),
            ..Default::default()
        });
    })
    .await;
    for p in [
        format!("/repos/{REPO}/check-runs"),
        format!("/repos/{REPO}/statuses/{SHA}"),
    ] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
            .mount(&app.github)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/44/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&app.github)
        .await;
    app
}

/// Three sessions: escalated (a compile error), awaiting approval (a deploy), healed.
async fn three_sessions(app: &TestApp) -> (String, String, String) {
    mount_run(&app.github, 43, 1, &[(9, "build", "failure", COMPILE_LOG)]).await;
    mount_run(
        &app.github,
        47,
        1,
        &[(31, "deploy-production", "failure", TRANSIENT_LOG)],
    )
    .await;
    mount_run(
        &app.github,
        44,
        1,
        &[(11, "test", "failure", TRANSIENT_LOG)],
    )
    .await;
    let run = |id: u64, attempt: u32, conclusion: &str, delivery: &str| {
        let body = workflow_run(id, attempt, conclusion, "CI");
        let d = delivery.to_string();
        async move { session_id(app.post_github("workflow_run", &d, &body).await).await }
    };
    let healed = run(44, 1, "failure", "h-1").await;
    app.wait_status(&healed, "verifying").await;
    app.post_github("workflow_run", "h-2", &workflow_run(44, 2, "success", "CI"))
        .await;
    app.wait_status(&healed, "healed").await;
    let escalated = run(43, 1, "failure", "e-1").await;
    app.wait_status(&escalated, "escalated").await;
    let waiting = run(47, 1, "failure", "a-1").await;
    app.wait_status(&waiting, "awaiting_approval").await;
    (escalated, waiting, healed)
}

/// The bodies POSTed to `p` once `n` arrived.
async fn posted(app: &TestApp, p: &str, n: usize) -> Vec<(Value, wiremock::Request)> {
    for _ in 0..200 {
        if posted_now(app, p).await.len() >= n {
            // Anything more would come now.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return posted_now(app, p).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} requests to {p}");
}

async fn posted_now(app: &TestApp, p: &str) -> Vec<(Value, wiremock::Request)> {
    app.github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == p)
        .map(|r| (serde_json::from_slice(&r.body).unwrap(), r))
        .collect()
}

/// Three runs of one commit on the GitHub stand-in: a compile error (escalated), a deploy
/// (awaiting approval), a flaky test (healed without people).
async fn three_runs_on_the_stand_in() -> (GithubSim, TestApp, [String; 3]) {
    let sim = GithubSim::start(GithubConfig::default().token("ghs_testtoken"))
        .await
        .unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Github).api_url = url;
        c.worker.verify_poll_seconds = 1;
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            kind: "github_check".into(),
            url: DASHBOARD.into(),
            ..Default::default()
        });
    })
    .await;
    let hook = format!("{}/webhooks/github", app.base);
    sim.set_webhook(Some(WebhookTarget::new(hook, SECRET)))
        .await;
    let log = |c: &str| sample(c).unwrap().log.to_string();
    let mut ids = vec![];
    for (workflow, job, category, status) in [
        ("build.yml", "build", "compilation_error", "escalated"),
        (
            "deploy.yml",
            "deploy-production",
            "network",
            "awaiting_approval",
        ),
        ("test.yml", "test", "network", "healed"),
    ] {
        let spec = RunSpec::new(REPO, workflow)
            .sha(SHA)
            .job(JobSpec::new(job).fails(log(category)).passes());
        sim.start_run(spec).await.unwrap();
        let id = loop {
            let list = app.get("/api/v1/sessions").await;
            let found = list["sessions"].as_array().unwrap().iter().find_map(|s| {
                let known = ids.contains(&s["id"].as_str().unwrap().to_string());
                (!known).then(|| s["id"].as_str().unwrap().to_string())
            });
            if let Some(id) = found {
                break id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        app.wait_status(&id, status).await;
        ids.push(id);
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    (sim, app, ids)
}

#[tokio::test]
async fn a_check_run_carries_the_diagnosis_for_escalations_and_approvals_only() {
    let (sim, app, [escalated, waiting, healed]) = three_runs_on_the_stand_in().await;
    // Anything more would come now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = sim.check_runs(REPO).await;
    assert_eq!(runs.len(), 2, "one check run per session that needs people");
    let by_session = |id: &str| {
        runs.iter()
            .find(|c| c.body["external_id"] == id)
            .unwrap_or_else(|| panic!("no check run for {id}"))
    };
    let writes: Vec<_> = sim
        .requests()
        .await
        .into_iter()
        .filter(|r| r.path().ends_with("/check-runs"))
        .collect();
    assert!(!writes.is_empty());
    for r in &writes {
        assert_eq!(r.header("authorization"), Some("Bearer ghs_testtoken"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    }
    let body = &by_session(&escalated).body;
    assert_eq!(body["name"], "pipeguard");
    assert_eq!(body["head_sha"], SHA);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["conclusion"], "failure");
    assert_eq!(
        body["actions"],
        json!([]),
        "nothing to decide on an escalation"
    );
    let link = format!("{DASHBOARD}/#/sessions/{escalated}");
    assert_eq!(body["details_url"], link);
    assert_eq!(body["output"]["title"], "compilation_error: needs a human");
    let summary = body["output"]["summary"].as_str().unwrap();
    let s = app.get(&format!("/api/v1/sessions/{escalated}")).await;
    let evidence = s["diagnosis"]["evidence"][0]["text"].as_str().unwrap();
    assert!(summary.contains(evidence), "{evidence} missing: {summary}");
    assert!(summary.contains(&link), "{summary}");

    let body = &by_session(&waiting).body;
    assert_eq!(body["conclusion"], "action_required");
    assert!(body["output"]["title"]
        .as_str()
        .unwrap()
        .ends_with("waits for an operator's approval"));
    assert_eq!(body["actions"].as_array().unwrap().len(), 2);
    assert!(
        !runs
            .iter()
            .any(|c| c.body["external_id"] == healed.as_str()),
        "nothing for the healed session"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_commit_status_links_the_session_for_tokens_that_cannot_create_checks() {
    let app = start("github_status").await;
    let (escalated, waiting, healed) = three_sessions(&app).await;
    let statuses = posted(&app, &format!("/repos/{REPO}/statuses/{SHA}"), 2).await;
    assert_eq!(statuses.len(), 2);
    let state_of = |id: &str| {
        statuses
            .iter()
            .find(|(b, _)| b["target_url"] == format!("{DASHBOARD}/#/sessions/{id}"))
            .map(|(b, r)| {
                assert_eq!(r.headers["authorization"], "Bearer ghs_testtoken");
                assert_eq!(b["context"], "pipeguard");
                assert!(b["description"].as_str().unwrap().len() <= 140);
                b["state"].as_str().unwrap().to_string()
            })
    };
    assert_eq!(state_of(&escalated).as_deref(), Some("failure"));
    assert_eq!(state_of(&waiting).as_deref(), Some("pending"));
    assert_eq!(state_of(&healed), None, "nothing for the healed session");
    assert!(posted_now(&app, &format!("/repos/{REPO}/check-runs"))
        .await
        .is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_notify_kind_is_a_configuration_error() {
    let bad = pipeguard_server::tenants::NotifyConfig {
        kind: "github_checks".into(),
        url: DASHBOARD.into(),
        ..Default::default()
    };
    let e = pipeguard_server::tenants::validate(&[], &[], &[bad])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("github_check, github_status, gitlab_status"),
        "{e}"
    );
}
