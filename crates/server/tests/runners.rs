//! Bad runners against the GitLab stand-in: a runner failing unrelated jobs (other projects)
//! is flagged and, with `quarantine = "auto"`, paused through `PUT /runners/:id` once; a
//! runner with as many failures of one project and cause is not; an operator releases it
//! and a viewer cannot; with `approve` it waits for an operator's quarantine. The dashboard's
//! Runners page in headless Chromium lists the suspect runner first, takes it out and
//! releases it.

mod common;
#[path = "../../../tests/support/require.rs"]
mod require;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_server::config::Quarantine;
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::Value;
use std::time::Duration;

const POOL: u64 = 1;
const STEADY: u64 = 2;
const BAD: u64 = 7;
const BAD_PROJECTS: [&str; 6] = ["bad/r1", "bad/r2", "bad/r3", "bad/r4", "bad/r5", "bad/r6"];

fn log(category: &str) -> String {
    sample(category).unwrap().log.to_string()
}

async fn start(quarantine: Quarantine) -> (GitlabSim, TestApp) {
    let sim = GitlabSim::start(GitlabConfig::default().token("glpat-sim"))
        .await
        .unwrap();
    sim.add_runner(POOL, "gl-pool-1", &[]).await;
    sim.add_runner(STEADY, "gl-steady", &["team/steady"]).await;
    sim.add_runner(BAD, "gl-bad", &BAD_PROJECTS).await;
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        let g = c.platform_mut(Platform::Gitlab);
        g.api_url = url;
        g.token = Some("glpat-sim".into());
        g.webhook_secret = Some("gl-secret".into());
        c.worker.verify_poll_seconds = 1;
        c.runners.quarantine = quarantine;
    })
    .await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/gitlab", app.base),
        "gl-secret",
    )))
    .await;
    (sim, app)
}

async fn runner(app: &TestApp, name: &str) -> Value {
    let list = app.get("/api/v1/runners").await;
    list["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_runner(app: &TestApp, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = runner(app, name).await;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("runner {name} never got there: {last:#}");
}

/// 20 green jobs on the shared runner (the pool), 6 failures of one project and cause on
/// gl-steady, then one transient failure in each of 6 projects on gl-bad.
async fn traffic(sim: &GitlabSim, app: &TestApp) {
    for i in 0..20 {
        let spec = RunSpec::new(format!("pool/p{}", i % 4), ".gitlab-ci.yml")
            .job(JobSpec::new("build").passes());
        sim.start_run(spec).await.unwrap();
    }
    wait_runner(app, "gl-pool-1", |r| r["jobs"] == 20).await;
    for _ in 0..6 {
        let spec = RunSpec::new("team/steady", ".gitlab-ci.yml")
            .job(JobSpec::new("build").fails(log("compilation_error")));
        sim.start_run(spec).await.unwrap();
    }
    wait_runner(app, "gl-steady", |r| r["failures"] == 6).await;
    for p in BAD_PROJECTS {
        let spec = RunSpec::new(p, ".gitlab-ci.yml")
            .job(JobSpec::new("fetch").fails(log("network")).passes());
        sim.start_run(spec).await.unwrap();
    }
}

async fn pauses(sim: &GitlabSim, id: u64) -> usize {
    let path = format!("/api/v4/runners/{id}");
    sim.requests()
        .await
        .iter()
        .filter(|r| r.method == "PUT" && r.path() == path)
        .count()
}

#[tokio::test]
async fn a_runner_failing_unrelated_jobs_is_paused_once_and_released_by_an_operator() {
    let (sim, app) = start(Quarantine::Auto).await;
    traffic(&sim, &app).await;
    let bad = wait_runner(&app, "gl-bad", |r| r["quarantined"] == true).await;
    assert_eq!(bad["platform"], "gitlab");
    assert_eq!(bad["suspect"], true);
    assert!(bad["unrelated_failures"].as_u64().unwrap() >= 5, "{bad:#}");
    assert!(sim.runner(BAD).await.unwrap().paused, "paused on GitLab");
    // Every failure on it is in: no second pause, whatever sessions came after.
    wait_runner(&app, "gl-bad", |r| r["failures"] == 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pauses(&sim, BAD).await, 1, "the PUT arrived once");

    let steady = runner(&app, "gl-steady").await;
    assert_eq!(
        (
            &steady["failures"],
            &steady["unrelated_failures"],
            &steady["suspect"],
            &steady["quarantined"]
        ),
        (
            &Value::from(6),
            &Value::from(1),
            &Value::from(false),
            &Value::from(false)
        ),
        "related failures (one project, one cause) are not the runner's: {steady:#}"
    );
    assert_eq!(pauses(&sim, STEADY).await, 0);
    let pool = runner(&app, "gl-pool-1").await;
    assert!(
        pool["jobs"].as_u64().unwrap() >= 20,
        "and the re-runs it took: {pool:#}"
    );
    assert_eq!(pool["failures"], 0);

    // Re-runs after the pause went to the shared runner: the runner GitLab picks next.
    let (moved, on_bad_after_pause) = sim
        .inspect(|st| {
            let bad_project = |j: &pipeguard_sim::gitlab::Job| {
                BAD_PROJECTS.contains(&st.pipelines[&j.pipeline_id].project.as_str())
            };
            let reruns: Vec<_> = st
                .jobs
                .values()
                .filter(|j| bad_project(j) && !j.retried)
                .collect();
            let moved = reruns.iter().filter(|j| j.runner == Some(POOL)).count();
            let first_moved = reruns
                .iter()
                .filter(|j| j.runner == Some(POOL))
                .map(|j| j.id)
                .min();
            let later_on_bad = reruns
                .iter()
                .filter(|j| j.runner == Some(BAD) && first_moved.is_some_and(|m| j.id > m))
                .count();
            (moved, later_on_bad)
        })
        .await;
    assert!(
        moved >= 1,
        "at least the failure that tipped it was re-run elsewhere"
    );
    assert_eq!(
        on_bad_after_pause, 0,
        "nothing started on the paused runner"
    );

    let metrics = metrics_text(&app).await;
    assert!(metrics.contains("pipeguard_runners_suspect 1"), "{metrics}");

    // A viewer reads the list but cannot release.
    let viewer = authenticated(&app.token("reader", "viewer").await);
    let url = format!("{}/api/v1/runners/gitlab/gl-bad/release", app.base);
    let r = viewer
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let listed = viewer
        .get(format!("{}/api/v1/runners", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(runner(&app, "gl-bad").await["quarantined"], true);

    // An operator does; the counts start afresh.
    let operator = authenticated(&app.token("oncall", "operator").await);
    let r = operator
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (&body["suspect"], &body["quarantined"]),
        (&Value::from(false), &Value::from(false))
    );
    let released = runner(&app, "gl-bad").await;
    assert_eq!(
        (
            &released["suspect"],
            &released["quarantined"],
            &released["jobs"]
        ),
        (&Value::from(false), &Value::from(false), &Value::from(0)),
        "{released:#}"
    );
    let audit = app.get("/api/v1/audit?limit=1000").await.to_string();
    assert!(
        audit.contains("runner.quarantined") && audit.contains("runner.released"),
        "{audit}"
    );
    assert!(audit.contains("oncall"), "the release names who did it");

    // Bad requests: JSON errors, nothing stored.
    let r = operator
        .post(format!("{}/api/v1/runners/gitlab/nobody/release", app.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    let r = operator
        .post(format!(
            "{}/api/v1/runners/nowhere/gl-bad/release",
            app.base
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn with_approve_a_suspect_runner_waits_for_an_operator_to_take_it_out() {
    let (sim, app) = start(Quarantine::Approve).await;
    traffic(&sim, &app).await;
    let bad = wait_runner(&app, "gl-bad", |r| {
        r["suspect"] == true && r["failures"] == 6
    })
    .await;
    assert_eq!(bad["quarantined"], false);
    assert_eq!(pauses(&sim, BAD).await, 0, "not paused without an operator");
    // A failure judged on the suspect runner waits for people rather than re-running on it.
    let mut waiting = Value::Null;
    for _ in 0..400 {
        let list = app.get("/api/v1/sessions?status=awaiting_approval").await;
        if let Some(first) = list["sessions"].as_array().and_then(|l| l.first()) {
            waiting = app
                .get(&format!(
                    "/api/v1/sessions/{}",
                    first["id"].as_str().unwrap()
                ))
                .await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = waiting["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("runner gl-bad") && reason.contains("/quarantine"),
        "{waiting:#}"
    );

    let viewer = authenticated(&app.token("reader", "viewer").await);
    let url = format!("{}/api/v1/runners/gitlab/gl-bad/quarantine", app.base);
    assert_eq!(
        viewer
            .post(&url)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let operator = authenticated(&app.token("oncall", "operator").await);
    let r = operator
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        operator
            .post(&url)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(pauses(&sim, BAD).await, 1, "taken out once, asked twice");
    assert!(sim.runner(BAD).await.unwrap().paused);
    assert_eq!(runner(&app, "gl-bad").await["quarantined"], true);
    app.stop().await;
}

/// The list once two reads half a second apart agree (re-runs of earlier failures may still
/// be counted).
async fn settled(app: &TestApp) -> Value {
    let mut last = app.get("/api/v1/runners").await;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = app.get("/api/v1/runners").await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the runners never settled: {last:#}")
}

#[tokio::test]
async fn the_runners_page_lists_the_suspect_first_and_takes_it_out_and_releases_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::path::PathBuf::from("/usr/bin/chromium");
    if !root.join("node_modules/playwright-core").exists() || !chromium.exists() {
        require::missing("the Runners page check: bash .ci/setup-browser.sh installs its tools");
        return;
    }
    let (sim, app) = start(Quarantine::Approve).await;
    traffic(&sim, &app).await;
    wait_runner(&app, "gl-bad", |r| {
        r["suspect"] == true && r["failures"] == 6
    })
    .await;
    // A GitHub runner, listed before gl-bad (the API's order) and which GitHub's API cannot
    // take out: one passed job.
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let spare = pipeguard_core::runners::RunnerJob {
        runner: pipeguard_core::event::Runner::new(Some("gh-spare"), Some("9".into())).unwrap(),
        job_id: "spare-1".into(),
        repository: REPO.into(),
        failed: false,
    };
    store.record_runner_jobs("github", &[spare]).await.unwrap();
    store.close().await;
    let before = settled(&app).await;
    let names: Vec<_> = before["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["gh-spare", "gl-bad", "gl-pool-1", "gl-steady"],
        "the page must reorder"
    );
    let can: Vec<_> = before["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["can_take_out"].as_bool().unwrap())
        .collect();
    assert_eq!(
        can,
        [false, true, true, true],
        "GitHub's cannot: {before:#}"
    );
    let out = tokio::process::Command::new("node")
        .arg("runners.mjs")
        .current_dir(&root)
        .env("BASE", &app.base)
        .env("OPERATOR_TOKEN", app.token("olivia", "operator").await)
        .env("VIEWER_TOKEN", app.token("victor", "viewer").await)
        .env("PLATFORM", "gitlab")
        .env("SUSPECT", "gl-bad")
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser check failed: {stdout}{stderr}"
    );
    // What the buttons did is what GitLab and the server hold.
    assert_eq!(pauses(&sim, BAD).await, 1, "Take out paused it once");
    assert!(sim.runner(BAD).await.unwrap().paused);
    let released = runner(&app, "gl-bad").await;
    assert_eq!(
        (&released["suspect"], &released["quarantined"]),
        (&Value::from(false), &Value::from(false)),
        "{released:#}"
    );
    assert_eq!(released["detail"], "released by olivia", "{released:#}");
    let audit = app.get("/api/v1/audit?limit=1000").await.to_string();
    assert!(
        audit.contains("runner.quarantined") && audit.contains("runner.released"),
        "{audit}"
    );
    app.stop().await;
}
