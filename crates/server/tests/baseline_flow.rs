//! Failures read against the job's green runs, end to end against a mock of the Actions API:
//! a green run of the job is learned, then a failure's evidence says which lines are new;
//! without green runs the diagnosis is the analyzer's as before.

mod common;

#[path = "../../../tests/support/require.rs"]
mod require;

use common::*;
use pipeguard_core::analysis::{Analyzer, Hints};
use pipeguard_server::worker::baseline::{learn, Learned};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::{JobSpec, Outcome, RunSpec, WebhookTarget};
use pipeguard_store::{BaselineKey, Store};
use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

/// A green run of `build`: its download is reset and retried, and a telemetry `##[error]`
/// is printed, every time.
const GREEN_LOG: &str = "2026-11-23T10:01:00.0000000Z ##[group]Run ./scripts/check.sh\n\
2026-11-23T10:01:01.0000000Z Downloading toolchain 1.2.3\n\
2026-11-23T10:01:02.0000000Z curl: (56) Recv failure: Connection reset by peer\n\
2026-11-23T10:01:03.0000000Z retrying download (attempt 2 of 3)\n\
2026-11-23T10:01:04.0000000Z ##[error]Unable to reach the telemetry endpoint\n\
2026-11-23T10:01:05.0000000Z All checks passed\n";

/// A failure of the same job: the same noise, and one line the green runs never print.
const FAILED_LOG: &str = "2026-11-24T08:11:00.0000000Z ##[group]Run ./scripts/check.sh\n\
2026-11-24T08:11:01.0000000Z Downloading toolchain 1.2.3\n\
2026-11-24T08:11:02.0000000Z curl: (56) Recv failure: Connection reset by peer\n\
2026-11-24T08:11:03.0000000Z retrying download (attempt 2 of 3)\n\
2026-11-24T08:11:04.0000000Z ##[error]Unable to reach the telemetry endpoint\n\
2026-11-24T08:11:05.0000000Z Error: Input required and not supplied: token\n\
2026-11-24T08:11:06.0000000Z ##[error]Process completed with exit code 1.\n";

/// A failure whose added line names nothing the knowledge base knows; alone, the log reads as
/// a network failure because of the reset every green run prints too.
const NOISY_FAILURE: &str = "2026-11-24T09:00:00.0000000Z ##[group]Run ./scripts/check.sh\n\
2026-11-24T09:00:01.0000000Z Downloading toolchain 1.2.3\n\
2026-11-24T09:00:02.0000000Z curl: (56) Recv failure: Connection reset by peer\n\
2026-11-24T09:00:03.0000000Z retrying download (attempt 2 of 3)\n\
2026-11-24T09:00:04.0000000Z ##[error]Unable to reach the telemetry endpoint\n\
2026-11-24T09:00:05.0000000Z check-changelog: no entry for this change in CHANGES.md\n\
2026-11-24T09:00:06.0000000Z ##[error]Process completed with exit code 1.\n";

fn build_key() -> BaselineKey {
    BaselineKey {
        platform: "github".into(),
        repository: REPO.into(),
        workflow: "CI".into(),
        job: "build".into(),
    }
}

/// Delivers a failure of run `run` (job `build` printing `log`) and waits for its analysis.
async fn fail(app: &TestApp, run: u64, log: &str) -> Value {
    mount_run(&app.github, run, 1, &[(run * 10, "build", "failure", log)]).await;
    let body = workflow_run(run, 1, "failure", "CI");
    let r = app
        .post_github("workflow_run", &format!("d-{run}"), &body)
        .await;
    assert_eq!(r.status(), 202);
    let id = session_id(r).await;
    app.wait_session(&id, |s| {
        !matches!(s["status"].as_str(), Some("received" | "analyzing"))
    })
    .await
}

/// Heals and verifications are answered, whatever the plan: this test is about the diagnosis.
async fn accept_actions(app: &TestApp) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({})))
        .mount(&app.github)
        .await;
}

/// The session page in headless Chromium marks the new line (skipped without the browser).
async fn dashboard_marks(app: &TestApp, id: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let driver = root.join("node_modules/playwright-core");
    let chromium = std::path::PathBuf::from("/usr/bin/chromium");
    if !driver.exists() || !chromium.exists() {
        require::missing("the dashboard check: bash .ci/setup-browser.sh installs its tools");
        return;
    }
    let out = tokio::process::Command::new("node")
        .arg("baseline.mjs")
        .current_dir(&root)
        .env("BASE", &app.base)
        .env("TOKEN", app.token("vera", "viewer").await)
        .env("SESSION_ID", id)
        .env("NEW_TEXT", "Input required and not supplied")
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser check failed: {stdout}{stderr}"
    );
}

fn line<'a>(s: &'a Value, needle: &str) -> Option<&'a Value> {
    s["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"].as_str().unwrap().contains(needle))
}

#[tokio::test]
async fn evidence_says_which_lines_the_green_runs_never_printed() {
    let app = TestApp::start().await;
    accept_actions(&app).await;
    let store = Store::connect(&app.db_url).await.unwrap();
    // A workflow that never failed is not learned: nothing would be compared with it.
    assert_eq!(
        learn(&store, &build_key(), "61", GREEN_LOG.into())
            .await
            .unwrap(),
        Learned::NeverFails
    );
    fail(&app, 60, FAILED_LOG).await;
    assert_eq!(
        learn(&store, &build_key(), "61", GREEN_LOG.into())
            .await
            .unwrap(),
        Learned::Folded
    );
    // One green log per job per period.
    assert_eq!(
        learn(&store, &build_key(), "62", GREEN_LOG.into())
            .await
            .unwrap(),
        Learned::TooSoon
    );

    let s = fail(&app, 63, FAILED_LOG).await;
    let session = app
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(session["baseline"]["green_runs"], serde_json::json!(["61"]));
    assert!(session["baseline"]["new_lines"].as_u64().unwrap() >= 1);
    let cause =
        line(&session, "Input required and not supplied").expect("the new line is evidence");
    assert_eq!(cause["new"], true, "{cause}");
    for e in session["evidence"].as_array().unwrap() {
        let text = e["text"].as_str().unwrap();
        let always = [
            "Connection reset",
            "telemetry endpoint",
            "retrying download",
        ];
        if always.iter().any(|a| text.contains(a)) {
            assert_eq!(e["new"], false, "printed by the green run too: {e}");
        }
        assert!(e["new"].is_boolean(), "every evidence line is marked: {e}");
    }
    // The job's own diagnosis carries the marks too.
    let job = &session["diagnosis"]["jobs"][0]["diagnosis"]["evidence"];
    assert!(job
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["new"].is_boolean()));
    dashboard_marks(&app, s["id"].as_str().unwrap()).await;

    let s = fail(&app, 64, NOISY_FAILURE).await;
    let session = app
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    let alone = Analyzer::builtin().analyze_with(NOISY_FAILURE.as_bytes(), &Hints::default());
    // Alone, the reset every green run prints decides: a network failure, retried.
    assert_eq!(alone.category.to_string(), "network");
    assert!(alone.transient);
    // Against the green run it is noise: what the failure added is the evidence, and it says
    // nothing classifiable, so a person reads it instead of a retry.
    assert_eq!(session["category"], "unknown", "{:#}", session["diagnosis"]);
    assert_eq!(session["diagnosis"]["transient"], false);
    let added = line(&session, "check-changelog").expect("the added line is evidence");
    assert_eq!(added["new"], true);
    assert!(line(&session, "Connection reset").is_none_or(|e| e["new"] == false));
    app.stop().await;
}

#[tokio::test]
async fn without_green_runs_the_diagnosis_is_the_analyzers() {
    let app = TestApp::start().await;
    accept_actions(&app).await;
    let s = fail(&app, 70, NOISY_FAILURE).await;
    let session = app
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    let alone = Analyzer::builtin().analyze_with(NOISY_FAILURE.as_bytes(), &Hints::default());
    assert_eq!(session["category"], alone.category.to_string());
    let lines: Vec<u64> = session["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = alone.evidence.iter().map(|e| e.line as u64).collect();
    assert_eq!(lines, expected);
    assert!(session["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e.get("new").is_none()));
    assert!(session["baseline"].is_null());
    app.stop().await;
}

/// The model of `build`, once the worker has stored one.
async fn wait_model(store: &Store) -> pipeguard_store::BaselineRecord {
    for _ in 0..200 {
        if let Some(b) = store.baseline(&build_key()).await.unwrap() {
            return b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no model was learned from the green run");
}

#[tokio::test]
async fn a_success_webhook_teaches_the_jobs_of_a_workflow_that_failed_lately() {
    let app = TestApp::start().await;
    accept_actions(&app).await;
    let store = Store::connect(&app.db_url).await.unwrap();
    // A green run of a workflow that never failed: stored, and not a single API call.
    let body = workflow_run(80, 1, "success", "Nightly");
    let r = app.post_github("workflow_run", "d-80", &body).await;
    assert!(r.status().is_success());

    fail(&app, 81, FAILED_LOG).await;
    mount_run(&app.github, 82, 1, &[(820, "build", "success", GREEN_LOG)]).await;
    let body = workflow_run(82, 1, "success", "CI");
    let r = app.post_github("workflow_run", "d-82", &body).await;
    assert!(r.status().is_success());
    let model = wait_model(&store).await;
    assert_eq!(model.green_runs, ["82"]);
    let requests = app.github.received_requests().await.unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert!(
        !paths.iter().any(|p| p.contains("/runs/80")),
        "the never-failing workflow cost an API call: {paths:?}"
    );
    // The green attempt: one listing of its jobs, one log download.
    let green: Vec<&&str> = paths
        .iter()
        .filter(|p| p.contains("/runs/82/") || p.ends_with("/jobs/820/logs"))
        .collect();
    assert_eq!(green.len(), 2, "{green:?}");

    let s = fail(&app, 83, FAILED_LOG).await;
    let session = app
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(session["baseline"]["green_runs"], serde_json::json!(["82"]));
    let cause =
        line(&session, "Input required and not supplied").expect("the new line is evidence");
    assert_eq!(cause["new"], true, "{cause}");
    let reset = line(&session, "Connection reset");
    assert!(reset.is_none_or(|e| e["new"] == false), "{reset:?}");
    app.stop().await;
}

/// A failure of a job without a model reads the last green run of its workflow on its branch
/// once (one listing of the branch's green runs, one of that run's jobs, one log for the
/// failing job only) and is read against it.
#[tokio::test]
async fn a_failure_without_a_model_learns_the_last_green_run_of_its_branch() {
    let app = TestApp::start().await;
    accept_actions(&app).await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/runs")))
        .and(query_param("branch", "main"))
        .and(query_param("status", "success"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "total_count": 2,
            "workflow_runs": [
                {"id": 95, "name": "Nightly", "run_attempt": 1, "conclusion": "success"},
                {"id": 91, "name": "CI", "run_attempt": 1, "conclusion": "success"},
            ]
        })))
        .mount(&app.github)
        .await;
    mount_run(
        &app.github,
        91,
        1,
        &[
            (910, "build", "success", GREEN_LOG),
            (911, "docs", "success", "built the docs"),
        ],
    )
    .await;
    let s = fail(&app, 92, FAILED_LOG).await;
    let session = app
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(session["baseline"]["green_runs"], serde_json::json!(["91"]));
    let cause =
        line(&session, "Input required and not supplied").expect("the new line is evidence");
    assert_eq!(cause["new"], true, "{cause}");
    let reset = line(&session, "Connection reset");
    assert!(reset.is_none_or(|e| e["new"] == false), "{reset:?}");
    let store = Store::connect(&app.db_url).await.unwrap();
    assert_eq!(wait_model(&store).await.green_runs, ["91"]);

    let requests = app.github.received_requests().await.unwrap();
    let count = |f: &dyn Fn(&str) -> bool| requests.iter().filter(|r| f(r.url.path())).count();
    let listing = format!("/repos/{REPO}/actions/runs");
    assert_eq!(count(&|p| p == listing), 1, "one listing of green runs");
    assert_eq!(count(&|p| p.contains("/runs/91/")), 1, "one jobs call");
    assert_eq!(count(&|p| p.ends_with("/jobs/910/logs")), 1, "one log");
    assert_eq!(
        count(&|p| p.contains("/jobs/911/")),
        0,
        "no other job's log"
    );
    assert_eq!(
        count(&|p| p.contains("/runs/95")),
        0,
        "not another workflow's run"
    );
    app.stop().await;
}

/// A GitLab job's green trace: the download is reset and retried every time.
const GITLAB_GREEN: &str = "Downloading toolchain 1.2.3\n\
curl: (56) Recv failure: Connection reset by peer\n\
retrying download (attempt 2 of 3)\n\
All checks passed\n";

/// The same job failing on another branch: the same noise, and one line no green run prints.
const GITLAB_FAILED: &str = "Downloading toolchain 1.2.3\n\
curl: (56) Recv failure: Connection reset by peer\n\
retrying download (attempt 2 of 3)\n\
check-changelog: no entry for this change in CHANGES.md\n";

/// A GitLab failure of a job without a model, on a branch that never went green: the last
/// green pipeline of the default branch is read once (its `build` trace only) and the failure
/// is read against it; the next failure of the job uses the model without a call.
#[tokio::test]
async fn a_gitlab_failure_without_a_model_learns_the_default_branchs_last_green_pipeline() {
    let sim = GitlabSim::start(GitlabConfig::default().token("glpat-sim"))
        .await
        .unwrap();
    let app = TestApp::start_gitlab(sim.base_url(), |_| {}).await;
    let wait = std::time::Duration::from_secs(20);
    // The default branch's green pipeline, before pipeguard hears from the project.
    let green = sim
        .start_run(
            RunSpec::new("grp/app", ".gitlab-ci.yml")
                .job(JobSpec::new("build").then(Outcome::pass().with_log(GITLAB_GREEN)))
                .job(JobSpec::new("docs").then(Outcome::pass().with_log("built the docs"))),
        )
        .await
        .unwrap();
    assert_eq!(
        sim.wait_pipeline(green, wait).await.unwrap().status,
        "success"
    );
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/gitlab", app.base),
        "gl-secret",
    )))
    .await;
    let failing = |branch: &str| {
        RunSpec::new("grp/app", ".gitlab-ci.yml")
            .branch(branch)
            .job(JobSpec::new("build").fails(GITLAB_FAILED))
    };
    let first = sim.start_run(failing("feature")).await.unwrap();
    let session = gitlab_session(&app, &first.to_string()).await;
    assert_eq!(
        session["baseline"]["green_runs"],
        serde_json::json!([green.to_string()]),
        "{session:#}"
    );
    let cause = line(&session, "check-changelog").expect("the new line is evidence");
    assert_eq!(cause["new"], true, "{cause}");
    let reset = line(&session, "Connection reset");
    assert!(reset.is_none_or(|e| e["new"] == false), "{reset:?}");

    let requests = sim.requests().await;
    let gets = |f: &dyn Fn(&str) -> bool| {
        requests
            .iter()
            .filter(|r| r.method == "GET" && f(&r.uri))
            .count()
    };
    let project = "/api/v4/projects/grp%2Fapp";
    let listing = format!("{project}/pipelines?");
    let on = |r: &str| format!("ref={r}&");
    assert_eq!(
        gets(&|u| u.starts_with(&listing) && u.contains(&on("feature"))),
        1
    );
    assert_eq!(
        gets(&|u| u == project),
        1,
        "one look-up of the default branch"
    );
    assert_eq!(
        gets(&|u| u.starts_with(&listing) && u.contains(&on("main"))),
        1
    );
    let jobs = sim.jobs(green).await;
    let id = |name: &str| jobs.iter().find(|j| j.name == name).unwrap().id;
    assert_eq!(
        gets(&|u| u.contains(&format!("/pipelines/{green}/jobs"))),
        1
    );
    let trace = |name: &str| format!("{project}/jobs/{}/trace", id(name));
    assert_eq!(
        gets(&|u| u == trace("build")),
        1,
        "the failing job's green trace"
    );
    assert_eq!(gets(&|u| u == trace("docs")), 0, "no other job's trace");

    // The job has a model now: the next failure costs no look-up.
    let second = sim.start_run(failing("feature")).await.unwrap();
    let session = gitlab_session(&app, &second.to_string()).await;
    assert_eq!(
        session["baseline"]["green_runs"],
        serde_json::json!([green.to_string()])
    );
    let listings = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.uri.starts_with(&listing))
        .count();
    assert_eq!(listings, 2, "no new listing of green pipelines");
    app.stop().await;
}

/// The analysed session of GitLab pipeline `run`.
async fn gitlab_session(app: &TestApp, run: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        let list = app.get("/api/v1/sessions").await;
        let found = list["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["run"] == run);
        if let Some(id) = found.and_then(|s| s["id"].as_str()) {
            last = app.get(&format!("/api/v1/sessions/{id}")).await;
            if !matches!(last["status"].as_str(), Some("received" | "analyzing")) {
                return last;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("pipeline {run} was never analysed: {last:#}");
}
