//! The quarantine lifecycle against the GitHub and GitLab stand-ins (CODEOWNERS through their
//! file APIs, issues): an owner from CODEOWNERS or the repository's default, a ticket filed
//! (again, when the platform failed) and closed, release after N first-attempt green runs in a
//! row of the workflow the test failed in (a failure starts the count over), and release at
//! expiry with the owner told through the durable queue, across a restart and a channel that
//! was down.

mod common;
#[allow(dead_code)]
mod stand_ins;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::gitlab::User;
use pipeguard_sim::{Fault, JobSpec};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;
use stand_ins::{AnySim, Stand, ROWS};
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
    green_run_of(app, run, "CI").await
}

async fn green_run_of(app: &TestApp, run: u64, workflow: &str) {
    let r = app
        .post_github(
            "workflow_run",
            &format!("green-{run}"),
            &workflow_run(run, 1, "success", workflow),
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

/// A notification channel listing `quarantine_expired`.
fn with_channel(hook: String) -> impl FnOnce(&mut pipeguard_server::config::Config) {
    move |c| {
        c.flaky.release_after_passes = 2;
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            url: hook,
            on: vec!["quarantine_expired".into()],
            ..Default::default()
        });
    }
}

async fn hook_answers(channel: &wiremock::MockServer, status: u16) {
    channel.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks/quarantine"))
        .respond_with(ResponseTemplate::new(status))
        .mount(channel)
        .await;
}

#[tokio::test]
async fn a_failure_starts_the_count_over_and_expiry_releases_and_tells_the_owner() {
    // The channel is down until pipeguard restarts.
    let channel = wiremock::MockServer::start().await;
    hook_answers(&channel, 503).await;
    let hook = format!("{}/hooks/quarantine", channel.uri());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pipeguard.db").display());
    let github = wiremock::MockServer::start().await;
    let app = TestApp::start_at(dir, db, github, "test-admin", with_channel(hook.clone())).await;
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
    // That failure tells its workflow: a green run of another workflow is no pass (two passes
    // would release it), one of CI is.
    assert_eq!(listed(&app, REPO).await[0]["workflow"], "CI");
    green_run_of(&app, 602, "Docs").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    green_run(&app, 603).await;
    for _ in 0..100 {
        if listed(&app, REPO).await[0]["passes_since"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let q = listed(&app, REPO).await;
    assert_eq!((q.len(), &q[0]["passes_since"]), (1, &json!(1)), "{q:?}");
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

    // Its end date passes: released; the notice to its owner waits in the queue while the
    // channel is down, and survives a restart.
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE quarantine SET expires_at = 1")
        .execute(store.pool())
        .await
        .unwrap();
    wait_released(&app, REPO, flaky).await;
    let tried = until("the notice was tried and kept", async || {
        let r = sqlx::query("SELECT status, tries FROM jobs WHERE kind = 'notify_quarantine'")
            .fetch_optional(store.pool())
            .await
            .unwrap()?;
        let (status, tries): (String, i64) = (r.get("status"), r.get("tries"));
        (status == "queued" && tries >= 1).then_some(tries)
    })
    .await;
    assert_eq!(tried, 1);
    assert!(!channel.received_requests().await.unwrap().is_empty());
    store.close().await;
    let (github, dir, db) = app.stop().await;
    hook_answers(&channel, 200).await;
    let app = TestApp::start_at(dir, db, github, "admin-again", with_channel(hook)).await;
    sql(
        &app,
        "UPDATE jobs SET run_at = 0 WHERE kind = 'notify_quarantine'",
    )
    .await;
    let body = until("the owner is told", async || {
        let reqs = channel.received_requests().await.unwrap_or_default();
        reqs.into_iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find(|b| b["event"] == "quarantine_expired")
    })
    .await;
    assert_eq!(
        (body["owner"].as_str(), body["test"].as_str()),
        (Some("@bob"), Some(flaky))
    );
    app.stop().await;
}

/// Runs the SQL on the app's database (to make a queued retry due now, or a quarantine end).
async fn sql(app: &TestApp, q: &str) {
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(q.to_string()))
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn gitlab_owner_from_a_sectioned_codeowners_tickets_filed_again_and_closed() {
    let row = ROWS
        .iter()
        .find(|r| r.platform == Platform::Gitlab)
        .unwrap();
    let stand = Stand::start_with(row, |c| {
        c.flaky.tickets = pipeguard_server::config::Tickets::Gitlab;
        c.flaky.release_after_passes = 2;
    })
    .await;
    let AnySim::Gitlab(sim) = &stand.sim else {
        unreachable!()
    };
    let (app, repo) = (&stand.app, row.repo);
    sim.add_user(User::new(42, "alice")).await;
    sim.put_file(
        repo,
        ".gitlab/CODEOWNERS",
        "* @grp/maintainers\n[API][2] @grp/api-team\ntests/\ntests/api/ @alice\n^[Docs] @writer\ndocs/\n",
    )
    .await;
    let q = quarantine(
        app,
        json!({"repository": repo, "test": "api::upload_resumes",
        "reason": "races the upload server", "file": "tests/api/upload.rs"}),
    )
    .await;
    // The API section's last match, over the catch-all above it.
    assert_eq!(q["owner"], "@alice", "{q}");
    let issues = sim.issues().await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    let i = &issues[0];
    assert_eq!(
        q["ticket_url"].as_str(),
        Some(format!("{}/{repo}/-/issues/1", sim.base_url()).as_str())
    );
    assert_eq!(
        (i.labels.clone(), i.assignee_ids.clone(), i.state.as_str()),
        (vec!["flaky-test".to_string()], vec![42], "opened")
    );
    assert!(i.title.contains("api::upload_resumes"), "{i:?}");
    assert!(
        i.description.contains("@alice") && i.description.contains("races the upload server"),
        "{i:?}"
    );

    // GitLab fails the next issue: the quarantine stands, says why, and is filed later.
    sim.inject(Fault::refuse("/issues", 503).method("POST"))
        .await;
    let q = quarantine(
        app,
        json!({"repository": repo, "test": "db::migrates", "reason": "slow disk",
               "file": "tests/db/migrate.rs"}),
    )
    .await;
    assert_eq!(
        q["owner"], "@grp/api-team",
        "a section's default owner: {q}"
    );
    assert!(q["ticket_url"].is_null(), "{q}");
    assert!(
        q["ticket_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{q}"
    );
    sql(app, "UPDATE jobs SET run_at = 0 WHERE kind = 'file_ticket'").await;
    let filed = until("the ticket is filed again", async || {
        let l = listed(app, repo).await;
        let t = l.iter().find(|q| q["test"] == "db::migrates")?;
        t["ticket_url"].as_str().map(|_| t.clone())
    })
    .await;
    assert!(filed["ticket_error"].is_null(), "{filed}");
    let issues = sim.issues().await;
    assert_eq!(issues.len(), 2, "filed once: {issues:?}");
    // A group is mentioned, never assigned.
    assert!(issues[1].assignee_ids.is_empty(), "{:?}", issues[1]);
    assert!(issues[1].description.contains("@grp/api-team"));

    // Two green pipelines release both and close their tickets with a word to the owner.
    for _ in 0..2 {
        stand.run(vec![JobSpec::new("test")]).await;
    }
    wait_released(app, repo, "api::upload_resumes").await;
    wait_released(app, repo, "db::migrates").await;
    let closed = until("both tickets are closed", async || {
        let all = sim.issues().await;
        all.iter().all(|i| i.state == "closed").then_some(all)
    })
    .await;
    assert!(
        closed[0]
            .notes
            .iter()
            .any(|n| n.contains("@alice") && n.contains("2 green runs")),
        "{closed:?}"
    );
    stand.stop().await;
}
