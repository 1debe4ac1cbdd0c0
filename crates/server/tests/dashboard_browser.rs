//! The dashboard in a real browser: Debian's headless Chromium driven by
//! `tests/browser/dashboard.mjs` (playwright-core) against the server, with GitHub played by
//! the stateful simulator. A deploy run fails on a network error, so its session waits for
//! approval; the script logs in, sees a new session arrive live, reads its evidence, checks a
//! viewer has no approve button, approves the deploy and sees it heal. It also checks the
//! layout (a long summary and evidence line stay in their cards; at phone width nothing
//! overflows the page) and what escalated and purged sessions say.
//!
//! Skips with a message when node, Chromium or `npm ci` in tests/browser are missing; fails
//! instead under `CI` (`.ci/setup-browser.sh` installs them there; see `tests/support/require.rs`).

mod common;
#[path = "../../../tests/support/require.rs"]
mod require;

use common::{TestApp, REPO, SECRET};
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const SIM_TOKEN: &str = "ghs_dashboard_sim";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        return Some("node is not installed".into());
    }
    if !chromium().exists() {
        return Some(format!("{} is missing", chromium().display()));
    }
    let driver = repo_root().join("tests/browser/node_modules/playwright-core");
    if !driver.exists() {
        return Some("tests/browser has no node_modules: run `npm ci` there".into());
    }
    None
}

/// A deploy whose first run fails on a network error and whose re-run passes.
fn deploy_run() -> RunSpec {
    RunSpec::new(REPO, "release.yml")
        .job(JobSpec::new("build"))
        .job(
            JobSpec::new("deploy-production")
                .needs(&["build"])
                .fails(
                    "Run ./scripts/deploy.sh\n\
                     + curl -fsSL https://artifacts.example.com/app.tar.gz -o app.tar.gz\n\
                     curl: (56) Recv failure: Connection reset by peer\n\
                     Error: Process completed with exit code 56.",
                )
                .passes(),
        )
}

/// A test run whose quarantined test fails once: retried at once, it passes, so the test is
/// counted flaky.
fn flaky_run() -> RunSpec {
    RunSpec::new(REPO, "ci.yml")
        .sha("9fceb02d0ae598e95dc970b74767f19372d61af8")
        .job(JobSpec::new("test").fails(FAILING_TEST_LOG).passes())
}

const FAILING_TEST_LOG: &str = "Run cargo test --locked
running 2 tests
test api::creates_user ... ok
test api::lists_users ... FAILED

failures:

---- api::lists_users stdout ----
thread 'api::lists_users' panicked at src/api.rs:41:9:
assertion `left == right` failed

failures:
    api::lists_users

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
error: test failed, to rerun pass `--lib`";

/// Other teams' failures reported through the generic webhook, for a fuller list and charts.
async fn report_others(app: &TestApp, ingest: &str) {
    let others = [
        ("payments/ledger", "build", "compilation_error"),
        ("web/storefront", "bundle", "out_of_memory"),
        ("infra/images", "docker-build", "disk_full"),
    ];
    for (repository, job, category) in others {
        let log = pipeguard_sim::logs::sample(category).unwrap().log;
        let r = app
            .http
            .post(format!("{}/pipeline/webhook", app.base))
            .bearer_auth(ingest)
            .json(
                &serde_json::json!({"source": "buildfarm", "repository": repository,
                "job_name": job, "build_number": 1, "log": log}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// Retention purges `repository`'s closed sessions, as the worker's hourly pass does.
async fn purge(app: &TestApp, repository: &str) {
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let filter = pipeguard_store::PurgeFilter {
        repository: Some(repository.into()),
        ..Default::default()
    };
    let report = store.purge(&filter, "retention").await.unwrap();
    assert_eq!(report.sessions, 1, "{report:?}");
    store.close().await;
}

/// Polls the session list until `pred` holds for it.
async fn wait_list(app: &TestApp, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..300 {
        last = app.get("/api/v1/sessions").await["sessions"]
            .as_array()
            .unwrap()
            .clone();
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened: {last:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    if let Some(why) = missing_tools() {
        require::missing(&format!(
            "the browser test: {why} (bash .ci/setup-browser.sh installs it)"
        ));
        return;
    }
    let sim = GithubSim::start(GithubConfig::default().token(SIM_TOKEN))
        .await
        .unwrap();
    let sim_url = sim.base_url();
    let app = TestApp::start_with(|c| {
        let gh = c.platform_mut(pipeguard_core::event::Platform::Github);
        gh.api_url = sim_url;
        gh.token = Some(SIM_TOKEN.into());
    })
    .await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/github", app.base),
        SECRET,
    )))
    .await;
    let ingest = app.token("nightly", "ingest").await;
    let (status, _) = common::api_call(
        &app,
        reqwest::Method::POST,
        "/api/v1/quarantine",
        Some(r#"{"repository": "octo-org/octo-repo", "test": "api::lists_users", "reason": "flaky since the cache change"}"#),
    )
    .await;
    assert_eq!(status, 201);
    sim.start_run(flaky_run()).await.unwrap();
    sim.start_run(deploy_run()).await.unwrap();
    report_others(&app, &ingest).await;
    let status_of = |list: &[Value], workflow: &str| {
        list.iter()
            .find(|s| s["workflow"] == workflow)
            .map(|s| s["status"].as_str().unwrap().to_string())
    };
    let list = wait_list(&app, "the seeded sessions settling", |l| {
        l.len() == 5
            && status_of(l, "release").as_deref() == Some("awaiting_approval")
            && status_of(l, "ci").as_deref() == Some("healed")
            && l.iter().filter(|s| s["status"] == "escalated").count() == 3
    })
    .await;
    let waiting = list
        .iter()
        .find(|s| s["status"] == "awaiting_approval")
        .unwrap()
        .clone();
    assert_eq!(waiting["category"], "network", "{waiting:#}");
    let id_of = |repository: &str| {
        list.iter()
            .find(|s| s["repository"] == repository)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let escalated = id_of("payments/ledger");
    let purged = id_of("infra/images");
    purge(&app, "infra/images").await;
    let gone = app.get(&format!("/api/v1/sessions/{purged}")).await;
    assert!(gone["purged_at"].as_i64().is_some(), "{gone:#}");
    assert_eq!(gone["run_label"], "docker-build #1", "{gone:#}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-shots");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("dashboard.mjs")
        .current_dir(repo_root().join("tests/browser"))
        .env("BASE", &app.base)
        .env("OPERATOR_TOKEN", app.token("olivia", "operator").await)
        .env("VIEWER_TOKEN", app.token("victor", "viewer").await)
        .env("INGEST_TOKEN", &ingest)
        .env("SHOT_DIR", &shots)
        .env("ESCALATED_ID", &escalated)
        .env("PURGED_ID", &purged)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the browser script finished within 3 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser script failed: {stdout}");
    for name in [
        "login",
        "sessions",
        "session",
        "session-escalated",
        "session-purged",
        "sessions-phone",
        "session-phone",
        "approvals",
        "flaky",
        "insights",
    ] {
        assert!(
            shots.join(format!("{name}.png")).exists(),
            "no {name} screenshot"
        );
    }
    println!("screenshots in {}", shots.display());
    // What the browser did is what the server holds.
    let healed = app
        .get(&format!(
            "/api/v1/sessions/{}",
            waiting["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(healed["status"], "healed", "{healed:#}");
    let approvals: Vec<_> = healed["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("approved by olivia")
        })
        .collect();
    assert_eq!(approvals.len(), 1, "{healed:#}");
    app.stop().await;
}
