//! The quarantine lifecycle against the GitHub stand-in (contents API for CODEOWNERS, issues):
//! an owner from CODEOWNERS or the repository's default, a ticket filed and closed, release
//! after N first-attempt green runs in a row (a failure starts the count over), and release at
//! expiry with the owner told through the notification channel.

mod common;

use common::*;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const OTHER: &str = "octo-org/other";

async fn start() -> (TestApp, GithubSim) {
    let sim = GithubSim::start(GithubConfig::default().token("ghs_testtoken"))
        .await
        .unwrap();
    let base = sim.base_url();
    let app = TestApp::start_with(|c| {
        c.platform_mut(pipeguard_core::event::Platform::Github)
            .api_url = base;
        c.flaky.tickets = pipeguard_server::config::Tickets::Github;
        c.flaky.release_after_passes = 2;
        c.repos.push(pipeguard_server::tenants::RepoConfig {
            platform: "github".into(),
            name: OTHER.into(),
            default_owner: Some("@octo-org/qa".into()),
            ..Default::default()
        });
    })
    .await;
    // The mock GitHub API of the harness serves as the notification channel.
    (app, sim)
}

async fn quarantine(app: &TestApp, body: Value) -> Value {
    let (code, v) = api_call(
        app,
        Method::POST,
        "/api/v1/quarantine",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    v
}

async fn listed(app: &TestApp, repo: &str) -> Vec<Value> {
    let v = app
        .get(&format!("/api/v1/quarantine?repository={repo}"))
        .await;
    v["quarantine"].as_array().cloned().unwrap_or_default()
}

async fn green_run(app: &TestApp, run: u64) {
    let r = app
        .post_github(
            "workflow_run",
            &format!("green-{run}"),
            &workflow_run(run, 1, "success", "CI"),
        )
        .await;
    assert_eq!(r.status(), 200, "a green run no session follows is ignored");
}

async fn wait_released(app: &TestApp, repo: &str, test: &str) {
    for _ in 0..200 {
        if !listed(app, repo).await.iter().any(|q| q["test"] == test) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{test} was never released: {:?}", listed(app, repo).await);
}

#[tokio::test]
async fn an_owner_from_codeowners_a_ticket_and_release_after_n_green_runs() {
    let (app, sim) = start().await;
    sim.put_file(
        REPO,
        ".github/CODEOWNERS",
        "*  @octo-org/maintainers\n/tests/api/ @alice\n",
    )
    .await;
    let before = pipeguard_store::now_ms();
    let q = quarantine(
        &app,
        json!({"repository": REPO, "test": "api::upload_resumes",
        "reason": "races the upload server", "file": "tests/api/upload.rs"}),
    )
    .await;
    assert_eq!(q["owner"], "@alice", "{q}");
    let days14 = 14 * 86_400_000;
    let exp = q["expires_at"].as_i64().unwrap();
    assert!(
        exp >= before + days14 && exp < before + days14 + 60_000,
        "{q}"
    );
    assert_eq!(q["passes_since"], 0);
    let url = q["ticket_url"].as_str().expect("a ticket").to_string();

    let issues = sim.issues().await;
    assert_eq!(issues.len(), 1);
    let i = &issues[0];
    assert!(
        url.ends_with(&format!("/{REPO}/issues/{}", i.number)),
        "{url}"
    );
    assert_eq!(
        (i.labels.clone(), i.assignees.clone(), i.state.as_str()),
        (
            vec!["flaky-test".to_string()],
            vec!["alice".to_string()],
            "open"
        )
    );
    assert!(
        i.title.contains("api::upload_resumes") && i.body.contains("@alice"),
        "{i:?}"
    );
    assert!(i.body.contains("races the upload server"), "{i:?}");

    // The repository's default owner when CODEOWNERS has none; days as asked.
    let other = quarantine(
        &app,
        json!({"repository": OTHER, "test": "db::migrates",
        "reason": "slow disk", "expires_in_days": 3}),
    )
    .await;
    assert_eq!(other["owner"], "@octo-org/qa", "{other}");
    assert!(other["expires_at"].as_i64().unwrap() < before + 4 * 86_400_000);
    // A team is mentioned, not assigned.
    assert!(sim.issues().await[1].assignees.is_empty());
    let (code, bad) = api_call(
        &app,
        Method::POST,
        "/api/v1/quarantine",
        Some(&json!({"repository": REPO, "test": "t", "expires_in_days": 0}).to_string()),
    )
    .await;
    assert_eq!((code, bad["error"].as_str()), (400, Some("bad_request")));

    // One green run, then a failure of the test: the count starts over.
    green_run(&app, 500).await;
    for _ in 0..100 {
        if listed(&app, REPO).await[0]["passes_since"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed(&app, REPO).await[0]["passes_since"], 1);
    // Two in a row release it, and close its ticket with a word to the owner.
    green_run(&app, 501).await;
    wait_released(&app, REPO, "api::upload_resumes").await;
    for _ in 0..100 {
        if sim.issues().await[0].state == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let i = &sim.issues().await[0];
    assert_eq!(i.state, "closed");
    assert!(
        i.comments
            .iter()
            .any(|c| c.contains("@alice") && c.contains("2 green runs")),
        "{i:?}"
    );
    // The other repository's quarantine counts only its own green runs.
    assert_eq!(listed(&app, OTHER).await.len(), 1);
    let audit = app.get("/api/v1/audit?limit=200").await.to_string();
    assert!(audit.contains("quarantine.released") && audit.contains("quarantine.ticket_filed"));
    app.stop().await;
}

#[tokio::test]
async fn a_failure_starts_the_count_over_and_expiry_releases_and_tells_the_owner() {
    let github = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/quarantine"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&github)
        .await;
    let hook = format!("{}/hooks/quarantine", github.uri());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pipeguard.db").display());
    let app = TestApp::start_at(dir, db, github, "test-admin", |c| {
        c.flaky.release_after_passes = 2;
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            url: hook,
            on: vec!["quarantine_expired".into()],
            ..Default::default()
        });
    })
    .await;
    let flaky = "api::upload_resumes";
    quarantine(
        &app,
        json!({"repository": REPO, "test": flaky, "reason": "r", "owner": "@bob"}),
    )
    .await;
    green_run(&app, 600).await;
    for _ in 0..100 {
        if listed(&app, REPO).await[0]["passes_since"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed(&app, REPO).await[0]["passes_since"], 1);
    // The quarantined test fails again (retried at once, green on the re-run): its passes
    // start over, and a heal's green re-run is no pass.
    let log = failing_test_log(flaky);
    mount_run(&app.github, 601, 1, &[(6010, "test", "failure", &log)]).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/601/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "f-601",
            &workflow_run(601, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "verifying").await;
    let r = app
        .post_github(
            "workflow_run",
            "f-601-2",
            &workflow_run(601, 2, "success", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    app.wait_status(&id, "healed").await;
    for _ in 0..100 {
        if listed(&app, REPO).await[0]["passes_since"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed(&app, REPO).await[0]["passes_since"], 0);
    // Retries do not hide it: 1 run, 2 attempts, 1 of them failed.
    let f = app
        .get(&format!("/api/v1/flaky-tests?repository={REPO}"))
        .await;
    let t = &f["flaky_tests"][0];
    assert_eq!(
        (
            t["runs"].as_i64(),
            t["runs_including_retries"].as_i64(),
            t["failed_attempts"].as_i64()
        ),
        (Some(1), Some(2), Some(1)),
        "{t}"
    );
    assert_eq!(t["trend"]["failures_this_week"], 1);
    assert_eq!(t["trend"]["worse_this_week"], true);

    // Its end date passes: released, and the channel hears who owns it.
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE quarantine SET expires_at = 1")
        .execute(store.pool())
        .await
        .unwrap();
    wait_released(&app, REPO, flaky).await;
    let mut told = None;
    for _ in 0..100 {
        let reqs = app.github.received_requests().await.unwrap_or_default();
        told = reqs
            .into_iter()
            .filter(|r| r.url.path() == "/hooks/quarantine")
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find(|b| b["event"] == "quarantine_expired");
        if told.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = told.expect("the owner is told");
    assert_eq!(
        (body["owner"].as_str(), body["test"].as_str()),
        (Some("@bob"), Some(flaky))
    );
    store.close().await;
    app.stop().await;
}
