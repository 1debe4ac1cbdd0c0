//! The dashboard in a real browser: Debian's headless Chromium driven by
//! `tests/browser/dashboard.mjs` (playwright-core) against the server, with GitHub played by
//! the stateful simulator. A deploy run fails on a network error, so its session waits for
//! approval; the script logs in, sees a new session arrive live, reads its evidence, checks a
//! viewer has no approve button, approves the deploy and sees it heal.
//!
//! Skips with a message when node, Chromium or `npm ci` in tests/browser are missing; fails
//! instead under `CI` (`.ci/setup-browser.sh` installs them there).

mod common;

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

async fn awaiting_session(app: &TestApp) -> Value {
    for _ in 0..300 {
        let list = app.get("/api/v1/sessions?status=awaiting_approval").await;
        if let Some(s) = list["sessions"].as_array().and_then(|a| a.first()) {
            return s.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no session reached awaiting_approval: {:#}",
        app.get("/api/v1/sessions").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    if let Some(why) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run in CI: {why} (see .ci/setup-browser.sh)");
        }
        eprintln!("skipping the browser test: {why} (bash .ci/setup-browser.sh installs it)");
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
    sim.start_run(deploy_run()).await.unwrap();
    let waiting = awaiting_session(&app).await;
    assert_eq!(waiting["category"], "network", "{waiting:#}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-shots");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("dashboard.mjs")
        .current_dir(repo_root().join("tests/browser"))
        .env("BASE", &app.base)
        .env("OPERATOR_TOKEN", app.token("olivia", "operator").await)
        .env("VIEWER_TOKEN", app.token("victor", "viewer").await)
        .env("INGEST_TOKEN", app.token("nightly", "ingest").await)
        .env("SHOT_DIR", &shots)
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
    for name in ["sessions", "session", "approvals", "insights"] {
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
