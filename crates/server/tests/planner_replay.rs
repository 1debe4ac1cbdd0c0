//! The backtest's path (`planner::replay` on what each session recorded) decides what the
//! worker decided: the same sessions, stored by the worker, replayed with the same policy,
//! give the same decision, strategy and reason — a mixed run, a deploy, a call the healing
//! budget stopped, and a plain heal.

mod common;

use common::*;
use pipeguard_core::planner;
use pipeguard_store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn rerun_ok(p: String) -> Mock {
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(201))
}

async fn failed_run(app: &TestApp, run: u64, workflow: &str) -> String {
    let r = app
        .post_github(
            "workflow_run",
            &format!("r-{run}"),
            &workflow_run(run, 1, "failure", workflow),
        )
        .await;
    session_id(r).await
}

#[tokio::test]
async fn the_backtest_replays_the_decisions_the_worker_made() {
    let app = TestApp::start_with(|c| c.healing.budget_per_hour = 2).await;
    let gh = &app.github;
    // A mixed run: the transient job is re-run alone, the genuine one handed to people.
    let jobs = [
        (21, "integration", "failure", TRANSIENT_LOG),
        (22, "build", "failure", COMPILE_LOG),
    ];
    mount_run(gh, 46, 1, &jobs).await;
    rerun_ok(format!("/repos/{REPO}/actions/jobs/21/rerun"))
        .expect(1)
        .mount(gh)
        .await;
    let mixed = failed_run(&app, 46, "CI").await;
    app.wait_status(&mixed, "escalated").await;
    // A deploy waits for people.
    mount_run(gh, 47, 1, &[(31, "deploy", "failure", TRANSIENT_LOG)]).await;
    let deploy = failed_run(&app, 47, "deploy production").await;
    app.wait_status(&deploy, "awaiting_approval").await;
    // A plain heal uses the second re-run of the hour…
    mount_run(gh, 48, 1, &[(41, "test", "failure", TRANSIENT_LOG)]).await;
    rerun_ok(format!("/repos/{REPO}/actions/runs/48/rerun-failed-jobs"))
        .expect(1)
        .mount(gh)
        .await;
    let healing = failed_run(&app, 48, "CI").await;
    app.wait_status(&healing, "verifying").await;
    // …so the next one meets the spent budget.
    mount_run(gh, 49, 1, &[(51, "test", "failure", TRANSIENT_LOG)]).await;
    let stopped = failed_run(&app, 49, "CI").await;
    let s = app.wait_status(&stopped, "escalated").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("healing budget reached"),
        "{s}"
    );

    let policy = pipeguard_server::config::Config::default().healing.policy();
    let (gh, _dir, db_url) = app.stop().await;
    gh.verify().await;
    let store = Store::connect(&db_url).await.unwrap();
    for id in [&mixed, &deploy, &healing, &stopped] {
        let s = store.get_session(id).await.unwrap().unwrap();
        let stored = s.plan.clone().expect("a plan");
        let known = stored
            .facts
            .clone()
            .expect("the facts the plan was made from");
        let replayed = planner::replay(&s.diagnosed_jobs(), &s.event, &known, &policy)
            .expect("a replayed plan");
        let (a, b) = (&stored.plan, &replayed.plan);
        assert_eq!(
            (a.decision, a.strategy, &a.reason),
            (b.decision, b.strategy, &b.reason),
            "session {id} ({})",
            s.status
        );
    }
    // And a stricter policy changes them, through the same path.
    let strict = pipeguard_core::Policy {
        max_attempts: 0,
        ..policy
    };
    let s = store.get_session(&healing).await.unwrap().unwrap();
    let known = s.plan.as_ref().unwrap().facts.clone().unwrap();
    let replayed = planner::replay(&s.diagnosed_jobs(), &s.event, &known, &strict).unwrap();
    assert!(
        replayed.plan.reason.contains("the limit is 0"),
        "{}",
        replayed.plan.reason
    );
    store.close().await;
}
