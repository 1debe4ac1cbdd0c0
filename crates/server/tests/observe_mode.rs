//! Observe mode against the stateful GitHub stand-in: pipeguard plans and makes no write call,
//! a person's later attempts are measured against what it would have done, and switching the
//! repository to act makes the next failure re-run.

mod common;

#[path = "../../../tests/support/require.rs"]
mod require;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_core::planner::Mode;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn log(category: &str) -> String {
    sample(category).unwrap().log.to_string()
}

async fn observing() -> (GithubSim, TestApp) {
    let sim = GithubSim::start(GithubConfig::default().token("ghs_testtoken"))
        .await
        .unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Github).api_url = url;
        c.healing.mode = Mode::Observe;
    })
    .await;
    let hook = WebhookTarget::new(format!("{}/webhooks/github", app.base), SECRET);
    sim.set_webhook(Some(hook)).await;
    (sim, app)
}

/// The session of `run` once `pred` holds for it.
async fn session_of(app: &TestApp, run: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let list = app.get("/api/v1/sessions").await;
        let found = list["sessions"].as_array().and_then(|l| {
            l.iter()
                .find(|s| s["run"].as_str() == Some(&run.to_string()))
                .cloned()
        });
        if let Some(id) = found.as_ref().and_then(|s| s["id"].as_str()) {
            last = app.get(&format!("/api/v1/sessions/{id}")).await;
            if pred(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the session of run {run} never got there: {last:#}");
}

/// The repository's readiness row once `pred` holds for it.
async fn readiness(app: &TestApp, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = app
            .get(&format!("/api/v1/readiness?repository={REPO}"))
            .await;
        if last["repositories"].get(0).is_some_and(&pred) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("readiness never got there: {last:#}");
}

/// Everything pipeguard asked the stand-in besides reading.
async fn writes(sim: &GithubSim) -> Vec<String> {
    sim.requests()
        .await
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect()
}

/// What a person does on GitHub: "Re-run failed jobs".
async fn person_reruns(sim: &GithubSim, run: u64) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs",
            sim.base_url()
        ))
        .bearer_auth("ghs_testtoken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn failed_at(app: &TestApp) -> i64 {
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let first = sqlx::query_scalar("SELECT MIN(failed_at) FROM sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    first
}

#[tokio::test]
async fn observe_records_what_it_would_do_people_confirm_it_and_act_takes_over() {
    let (sim, app) = observing().await;

    // A transient failure: planned, not acted on.
    let flaky =
        RunSpec::new(REPO, "ci.yml").job(JobSpec::new("test-a").fails(log("network")).passes());
    let run_a = sim.start_run(flaky.clone()).await.unwrap();
    let a = session_of(&app, run_a, |s| s["status"] == "observed").await;
    assert_eq!(a["reason"], "would re-run job test-a");
    assert_eq!(a["category"], "network");
    assert_eq!(writes(&sim).await, Vec::<String>::new(), "no write call");
    assert_eq!(sim.run(run_a).await.unwrap().attempts.len(), 1);

    // A person re-runs it and it passes: pipeguard would have been right.
    person_reruns(&sim, run_a).await;
    readiness(&app, |r| r["confirmed"] == 1).await;
    let a = session_of(&app, run_a, |s| s["status"] == "observed").await;
    assert!(
        a["timeline"]
            .to_string()
            .contains("re-run by a person, passed: confirmed"),
        "{}",
        a["timeline"]
    );

    // A genuine failure: it would have been left to people; their re-run fails again.
    let broken =
        RunSpec::new(REPO, "ci.yml").job(JobSpec::new("build").fails(log("compilation_error")));
    let run_b = sim.start_run(broken).await.unwrap();
    let b = session_of(&app, run_b, |s| s["status"] == "observed").await;
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .starts_with("would escalate: "),
        "{}",
        b["reason"]
    );
    person_reruns(&sim, run_b).await;
    session_of(&app, run_b, |s| {
        s["timeline"]
            .to_string()
            .contains("attempt 2, re-run by a person, failed")
    })
    .await;
    let since = failed_at(&app).await;
    assert_eq!(
        readiness(&app, |r| r["withheld"] == 1).await,
        json!({"repositories": [{
            "repository": REPO, "platform": "github", "mode": "observe",
            "would_retry": 1, "confirmed": 1, "contradicted": 0,
            "withheld": 1, "missed": 0, "precision": 1.0,
            "median_minutes_to_rerun": 0.0, "since": since,
        }]})
    );
    let sessions = app.get("/api/v1/sessions").await["sessions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        sessions, 2,
        "a person's re-run is evidence, not a new failure to heal"
    );

    // Switching the repository to act: the next failure is re-run by pipeguard.
    let operator = authenticated(&app.token("ops", "operator").await);
    let url = format!("{}/api/v1/mode", app.base);
    let body = json!({"repository": REPO, "mode": "act"});
    let r = operator.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403, "admins only");
    let r = app
        .http
        .post(&url)
        .json(&json!({"repository": REPO, "mode": "on"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    let r = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"repository": REPO, "mode": "act", "before": null})
    );
    let audit = app.get("/api/v1/audit?action=mode.set").await;
    assert_eq!(audit["entries"][0]["actor"], "test-admin", "{audit}");
    assert_eq!(audit["entries"][0]["target"], REPO);

    let run_c = sim.start_run(flaky).await.unwrap();
    let c = session_of(&app, run_c, |s| s["status"] == "healed").await;
    assert_eq!(c["heal_attempts"], 1);
    assert_eq!(
        writes(&sim)
            .await
            .iter()
            .filter(|w| !w.contains(&format!("/runs/{run_a}/"))
                && !w.contains(&format!("/runs/{run_b}/")))
            .count(),
        1,
        "one re-run of the new failure: {:?}",
        writes(&sim).await
    );
    // Pipeguard's own re-run counts as evidence too, without a person's time to re-run.
    let r = readiness(&app, |r| r["confirmed"] == 2).await;
    let row = &r["repositories"][0];
    assert_eq!(
        (
            &row["mode"],
            &row["would_retry"],
            &row["precision"],
            &row["median_minutes_to_rerun"]
        ),
        (&json!("act"), &json!(2), &json!(1.0), &json!(0.0))
    );
    let cases = app
        .get(&format!("/api/v1/readiness/cases?repository={REPO}"))
        .await;
    let outcomes: Vec<(&Value, &Value)> = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["mode"], &c["outcome"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("observe"), &json!("confirmed")),
            (&json!("observe"), &Value::Null),
            (&json!("act"), &json!("confirmed")),
        ]
    );
    assert!(
        cases["recommendation"]
            .as_str()
            .unwrap()
            .starts_with("observe (too few re-runs yet): 2 would-be re-runs"),
        "{}",
        cases["recommendation"]
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "pipeguard_decisions_total{repository_mode=\"observe\",outcome=\"confirmed\"} 1",
        "pipeguard_decisions_total{repository_mode=\"act\",outcome=\"confirmed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    if readiness_page(&app).await {
        let now = app.get("/api/v1/readiness").await;
        assert_eq!(
            now["repositories"][0]["mode"], "observe",
            "switched from the page"
        );
    }
    app.stop().await;
}

/// The Readiness page in headless Chromium (skipped without the browser): the figures, the
/// recommendation, the cases and the switch back to observe. False when skipped.
async fn readiness_page(app: &TestApp) -> bool {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::path::PathBuf::from("/usr/bin/chromium");
    if !root.join("node_modules/playwright-core").exists() || !chromium.exists() {
        require::missing("the Readiness page check: bash .ci/setup-browser.sh installs its tools");
        return false;
    }
    let out = tokio::process::Command::new("node")
        .arg("readiness.mjs")
        .current_dir(&root)
        .env("BASE", &app.base)
        .env("TOKEN", &app.token)
        .env("REPOSITORY", REPO)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the browser check failed: {stdout}{stderr}"
    );
    true
}

/// A genuine failure pipeguard withheld, then a green run of the same workflow on the same
/// branch for a new commit: people fixed it by a push, recorded even though a green run before
/// the failure had found nothing to fix. The case says so; the counters keep
/// their meanings (withheld, not missed, nothing confirmed).
#[tokio::test]
async fn a_new_commit_going_green_records_a_push_fix() {
    let (sim, app) = observing().await;
    // A green run before any failure: intake learns the branch has nothing a push could fix,
    // and skips that UPDATE until a decision says otherwise.
    let earlier = RunSpec::new(REPO, "ci.yml")
        .sha("cccccccccccccccccccccccccccccccccccccccc")
        .job(JobSpec::new("build"));
    let earlier = sim.start_run(earlier).await.unwrap();
    sim.wait_run(earlier, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let broken = RunSpec::new(REPO, "ci.yml")
        .sha("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .job(JobSpec::new("build").fails(log("compilation_error")));
    let run = sim.start_run(broken).await.unwrap();
    let s = session_of(&app, run, |s| s["status"] == "observed").await;
    let fixed = RunSpec::new(REPO, "ci.yml")
        .sha("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
        .job(JobSpec::new("build"));
    // The same commit passing again is no push: only the new commit's run counts.
    let again = RunSpec::new(REPO, "ci.yml")
        .sha("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .job(JobSpec::new("build"));
    let same = sim.start_run(again).await.unwrap();
    sim.wait_run(same, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cases = app
        .get(&format!("/api/v1/readiness/cases?repository={REPO}"))
        .await;
    assert_eq!(cases["cases"][0]["outcome"], Value::Null, "{cases:#}");

    sim.start_run(fixed).await.unwrap();
    let mut last = Value::Null;
    for _ in 0..400 {
        last = app
            .get(&format!("/api/v1/readiness/cases?repository={REPO}"))
            .await;
        if last["cases"][0]["outcome"] == "fixed_by_push" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let case = &last["cases"][0];
    assert_eq!(case["outcome"], "fixed_by_push", "{last:#}");
    assert_eq!(case["session_id"], s["id"], "{last:#}");
    assert_eq!(case["would_retry"], false, "{last:#}");
    assert_eq!(case["branch"], "main", "{last:#}");
    assert_eq!(case["head_sha"], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert!(
        last["recommendation"]
            .as_str()
            .is_some_and(|r| r.contains("1 fixed by a push instead")),
        "{last:#}"
    );
    let r = readiness(&app, |r| r["withheld"] == 1).await;
    let row = &r["repositories"][0];
    assert_eq!(
        (&row["missed"], &row["confirmed"], &row["precision"]),
        (&json!(0), &json!(0), &Value::Null),
        "{r:#}"
    );
    assert!(row.get("fixed_by_push").is_none(), "{r:#}");
}
