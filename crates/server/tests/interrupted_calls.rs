//! A worker that stopped during a heal's platform call, on SQLite and on PostgreSQL: its job
//! is taken again when the lease expired (PostgreSQL) or at start (SQLite), and the call is
//! never made twice. A call that was only started is handed to a person; one that was done
//! moves the session on to verifying.

mod common;
#[path = "../../../tests/support/postgres.rs"]
mod postgres;
#[path = "../../../tests/support/require.rs"]
mod require;

use common::*;
use pipeguard_store::{SessionStatus, Store, Task, Transition};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A deploy run `run` that waits for approval, in the database at `db_url`; the app stops.
async fn awaiting_deploy(
    dir: tempfile::TempDir,
    db_url: &str,
    run: u64,
) -> (String, MockServer, tempfile::TempDir) {
    let github = MockServer::start().await;
    let app = TestApp::start_at(dir, db_url.to_string(), github, "admin-before", |_| {}).await;
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "deploy", "failure", TRANSIENT_LOG)],
    )
    .await;
    let r = app
        .post_github(
            "workflow_run",
            &format!("d-{run}"),
            &workflow_run(run, 1, "failure", "Deploy"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "awaiting_approval").await;
    let (github, dir, _) = app.stop().await;
    (id, github, dir)
}

/// What a worker leaves when it stops during the approved re-run's call: the session
/// executing, the call recorded as `call_status`, and its job claimed with a lease that has
/// run out.
async fn stop_during_the_call(db_url: &str, id: &str, call_status: &str) {
    let store = Store::connect(db_url).await.unwrap();
    assert!(store
        .transition(
            id,
            Transition::fixture(
                &[SessionStatus::AwaitingApproval],
                SessionStatus::Executing,
                "approved; re-running"
            ),
        )
        .await
        .unwrap());
    assert!(store.claim_action(id, 1, "run", "retry").await.unwrap());
    if call_status != "started" {
        store
            .finish_action(id, 1, "run", call_status, "POST rerun-failed-jobs")
            .await
            .unwrap();
    }
    store
        .enqueue(id, &Task::Execute { approved: true }, 0)
        .await
        .unwrap();
    let job = store.claim(-1, &[]).await.unwrap().unwrap();
    assert_eq!(job.task, Task::Execute { approved: true });
    store.close().await;
}

/// Runs the scenario on the database at `db_url`; returns the session as the next worker
/// left it.
async fn resumed(
    dir: tempfile::TempDir,
    db_url: &str,
    run: u64,
    call_status: &str,
) -> serde_json::Value {
    let (id, github, dir) = awaiting_deploy(dir, db_url, run).await;
    stop_during_the_call(db_url, &id, call_status).await;
    // Whatever happens next, the platform is not called again.
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&github)
        .await;
    let app = TestApp::start_at(dir, db_url.to_string(), github, "admin-after", |_| {}).await;
    let want = if call_status == "done" {
        "verifying"
    } else {
        "escalated"
    };
    let s = app.wait_status(&id, want).await;
    let (github, _dir, _) = app.stop().await;
    github.verify().await;
    s
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("pipeguard.db").display())
}

fn assert_handed_to_a_person(s: &serde_json::Value) {
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("a platform call was interrupted"), "{s:#}");
}

#[tokio::test]
async fn sqlite_an_interrupted_call_is_handed_to_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    assert_handed_to_a_person(&resumed(dir, &url, 801, "started").await);
}

#[tokio::test]
async fn sqlite_a_finished_call_is_verified_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    resumed(dir, &url, 802, "done").await;
}

#[tokio::test]
async fn postgres_an_interrupted_call_is_handed_to_a_person_after_the_lease() {
    let Some(db) = postgres::FreshDatabase::create().await else {
        return;
    };
    let s = resumed(tempfile::tempdir().unwrap(), &db.url, 803, "started").await;
    assert_handed_to_a_person(&s);
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_a_finished_call_is_verified_not_repeated_after_the_lease() {
    let Some(db) = postgres::FreshDatabase::create().await else {
        return;
    };
    resumed(tempfile::tempdir().unwrap(), &db.url, 804, "done").await;
    db.drop_database().await;
}
