//! Strategies beyond a plain retry against a mock of the GitHub Actions API: a bigger
//! runner once then escalation, cache deletion then re-run, per-repository credentials,
//! user-defined fixes, and notifications of escalations.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use pipeguard_core::event::Platform;
use pipeguard_server::tenants::{CustomStrategy, HttpCall, NotifyConfig, RepoConfig, Trigger};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const OOM_LOG: &str = "2026-11-23T10:01:00.0000000Z ##[group]Run cargo build --release\n\
2026-11-23T10:01:20.0000000Z    Compiling app v0.1.0\n\
2026-11-23T10:05:20.0000000Z error: could not compile `app` (lib)\n\
2026-11-23T10:05:20.0000000Z Caused by:\n\
2026-11-23T10:05:20.0000000Z   process didn't exit successfully: `rustc --crate-name app` (signal: 9, SIGKILL: kill)\n\
2026-11-23T10:05:21.0000000Z ##[error]Process completed with exit code 137.\n";

const CACHE_LOG: &str = "2026-11-23T10:01:00.0000000Z ##[group]Run npm ci\n\
2026-11-23T10:01:05.0000000Z npm ERR! code EINTEGRITY\n\
2026-11-23T10:01:05.0000000Z npm ERR! sha512-abc integrity checksum failed when using sha512: wanted sha512-abc but got sha512-def. (1234 bytes)\n\
2026-11-23T10:01:06.0000000Z ##[error]Process completed with exit code 1.\n";

fn repo(scale: Option<Trigger>) -> RepoConfig {
    RepoConfig {
        platform: "github".into(),
        name: REPO.into(),
        scale,
        ..Default::default()
    }
}

fn rerun_failed(run: u64) -> Mock {
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/{run}/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201))
}

/// An app whose repository scales by dispatching `ci.yml` with a `runner` input, and a run
/// `run` that ran out of memory.
async fn scaling_app(runner: &str, run: u64) -> TestApp {
    let runner = runner.to_string();
    let app = TestApp::start_with(|c| {
        c.repos.push(repo(Some(Trigger {
            workflow: Some("ci.yml".into()),
            inputs: [("runner".to_string(), runner)].into(),
            command: None,
        })))
    })
    .await;
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10 + 1, "build", "failure", OOM_LOG)],
    )
    .await;
    app
}

#[tokio::test]
async fn out_of_memory_dispatches_a_bigger_runner_once_then_escalates() {
    let app = scaling_app("ubuntu-latest-16-cores", 500).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/workflows/ci.yml/dispatches"
        )))
        .and(body_partial_json(json!({
            "ref": "main",
            "inputs": {"runner": "ubuntu-latest-16-cores"},
            "return_run_details": true
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "workflow_run_id": 777,
            "run_url": format!("https://api.github.com/repos/{REPO}/actions/runs/777"),
            "html_url": format!("https://github.com/{REPO}/actions/runs/777")
        })))
        .expect(1)
        .mount(&app.github)
        .await;
    // Neither run is re-run as it was: scaling replaces the retry, and is not repeated.
    rerun_failed(500).expect(0).mount(&app.github).await;
    rerun_failed(777).expect(0).mount(&app.github).await;

    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-oom-1",
            &workflow_run(500, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["strategy"], "scale_resources", "{s:#}");
    assert_eq!(
        s["current_run"], "777",
        "the session follows the new run: {s:#}"
    );

    // The bigger runner ran out of memory too.
    mount_run(&app.github, 777, 1, &[(7771, "build", "failure", OOM_LOG)]).await;
    let r = app
        .post_github(
            "workflow_run",
            "d-oom-2",
            &workflow_run(777, 1, "failure", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["session_id"], id.as_str(), "no new session: {body}");
    let s = app.wait_status(&id, "escalated").await;
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("scale_resources (done once for this run)"),
        "{reason}"
    );
    // The record keeps the strategy that was tried, so learning counts this against it.
    assert_eq!(s["strategy"], "scale_resources", "{s:#}");
    let sessions = app.get("/api/v1/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "{sessions:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn the_run_a_scale_started_closes_the_session_when_it_passes() {
    let app = scaling_app("large", 510).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/workflows/ci.yml/dispatches"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"workflow_run_id": 778})))
        .expect(1)
        .mount(&app.github)
        .await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-sc-1",
            &workflow_run(510, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    app.wait_status(&id, "verifying").await;
    let r = app
        .post_github(
            "workflow_run",
            "d-sc-2",
            &workflow_run(778, 1, "success", "CI"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "healed").await;
    assert!(
        s["reason"].as_str().unwrap().contains("scale_resources"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn without_a_scale_mapping_out_of_memory_is_retried_as_it_was() {
    let app = TestApp::start().await;
    mount_run(&app.github, 520, 1, &[(5201, "build", "failure", OOM_LOG)]).await;
    rerun_failed(520).expect(1).mount(&app.github).await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-ns-1",
            &workflow_run(520, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["strategy"], "retry");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("scale_resources is not available"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn corrupted_cache_is_deleted_then_the_failed_jobs_rerun() {
    let app = TestApp::start_with(|c| {
        let mut r = repo(None);
        r.cache.key_prefix = Some("npm-".into());
        c.repos.push(r);
    })
    .await;
    mount_run(&app.github, 530, 1, &[(5301, "test", "failure", CACHE_LOG)]).await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/actions/caches")))
        .and(query_param("ref", "refs/heads/main"))
        .and(query_param("key", "npm-"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total_count": 2,
            "actions_caches": [
                {"id": 11, "ref": "refs/heads/main", "key": "npm-linux-abc", "version": "v1",
                 "last_accessed_at": "2026-11-23T09:00:00Z", "created_at": "2026-11-20T09:00:00Z", "size_in_bytes": 1024},
                {"id": 12, "ref": "refs/heads/main", "key": "npm-linux-def", "version": "v1",
                 "last_accessed_at": "2026-11-23T09:00:00Z", "created_at": "2026-11-21T09:00:00Z", "size_in_bytes": 2048}
            ]
        })))
        .expect(1)
        .mount(&app.github)
        .await;
    for cache in [11, 12] {
        Mock::given(method("DELETE"))
            .and(path(format!("/repos/{REPO}/actions/caches/{cache}")))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&app.github)
            .await;
    }
    rerun_failed(530).expect(1).mount(&app.github).await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-cc-1",
            &workflow_run(530, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "verifying").await;
    assert_eq!(s["strategy"], "clear_cache", "{s:#}");
    let detail = s["actions"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("deleted 2 cache(s)") && detail.contains("rerun-failed-jobs"),
        "{s:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_repository_acts_with_its_own_token_and_runs_its_custom_fix_first() {
    let app = TestApp::start_with(|c| {
        let mut r = repo(None);
        r.token = Some("repo-own-token".into());
        c.repos.push(r);
        c.strategies.push(CustomStrategy {
            name: "restart-mirror".into(),
            categories: vec!["network".into(), "dependency_download".into()],
            http: Some(HttpCall {
                url: format!(
                    "{}/ops/restart-mirror",
                    c.platform(Platform::Github).api_url
                ),
                body: Some(r#"{"repository":"{{repository}}","branch":"{{branch}}"}"#.into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    })
    .await;
    mount_run(
        &app.github,
        540,
        1,
        &[(5401, "build", "failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/ops/restart-mirror"))
        .and(body_partial_json(
            json!({"repository": REPO, "branch": "main"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/540/rerun-failed-jobs"
        )))
        .and(header("authorization", "Bearer repo-own-token"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&app.github)
        .await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-ct-1",
            &workflow_run(540, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "verifying").await;
    let targets: Vec<&str> = s["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&"fix:restart-mirror") && targets.contains(&"run"),
        "{s:#}"
    );
    let fix = s["plan"]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["kind"] == "fix" && p["reason"].as_str().unwrap().contains("restart-mirror"));
    assert!(fix, "the plan shows the fix: {s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn escalations_reach_slack_and_a_signed_generic_webhook_once() {
    let app = TestApp::start_with(|c| {
        c.notify.push(NotifyConfig {
            kind: "slack".into(),
            url: format!(
                "{}/slack/T000/B000/XXX",
                c.platform(Platform::Github).api_url
            ),
            ..Default::default()
        });
        c.notify.push(NotifyConfig {
            kind: "webhook".into(),
            url: format!("{}/hooks/pipeguard", c.platform(Platform::Github).api_url),
            secret: Some("notify-secret".into()),
            ..Default::default()
        });
        // A channel for another repository hears nothing.
        c.notify.push(NotifyConfig {
            url: format!("{}/hooks/other", c.platform(Platform::Github).api_url),
            repos: vec!["someone/else".into()],
            ..Default::default()
        });
    })
    .await;
    mount_run(
        &app.github,
        550,
        1,
        &[(5501, "build", "failure", COMPILE_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/slack/T000/B000/XXX"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/pipeguard"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&app.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/other"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&app.github)
        .await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-nt-1",
            &workflow_run(550, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    app.wait_status(&id, "escalated").await;
    // Both deliveries arrive (they are queued jobs).
    let mut got = Vec::new();
    for _ in 0..100 {
        got = app.github.received_requests().await.unwrap_or_default();
        let n = got
            .iter()
            .filter(|r| r.url.path().starts_with("/slack") || r.url.path().starts_with("/hooks"))
            .count();
        if n >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let slack = got
        .iter()
        .find(|r| r.url.path().starts_with("/slack"))
        .unwrap();
    let slack: Value = serde_json::from_slice(&slack.body).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains(REPO) && text.contains("needs a human"),
        "{text}"
    );
    assert!(slack["blocks"].to_string().contains("E0308"), "{slack:#}");
    let hook = got
        .iter()
        .find(|r| r.url.path() == "/hooks/pipeguard")
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"notify-secret").unwrap();
    mac.update(&hook.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        hook.headers
            .get("x-pipeguard-signature-256")
            .unwrap()
            .to_str()
            .unwrap(),
        expected
    );
    let body: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(body["event"], "session.escalated");
    assert_eq!(body["session"]["id"], id.as_str());
    assert_eq!(body["session"]["category"], "compilation_error");
    assert!(
        body["session"]["evidence"].to_string().contains("E0308"),
        "{body:#}"
    );
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

#[tokio::test]
async fn a_command_fix_runs_without_a_shell_before_the_rerun() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("mirror-restarted-560");
    let target = format!("{}/mirror-restarted-{{{{run_id}}}}", work.path().display());
    let app = TestApp::start_with(|c| {
        c.strategies.push(CustomStrategy {
            name: "touch-marker".into(),
            categories: vec!["dependency_download".into(), "network".into()],
            command: Some(vec!["touch".into(), target]),
            ..Default::default()
        });
    })
    .await;
    mount_run(
        &app.github,
        560,
        1,
        &[(5601, "build", "failure", TRANSIENT_LOG)],
    )
    .await;
    rerun_failed(560).expect(1).mount(&app.github).await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            "d-cmd-1",
            &workflow_run(560, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        marker.exists(),
        "the fix ran with the run id templated: {s:#}"
    );
    let fix = s["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["target"] == "fix:touch-marker")
        .unwrap();
    assert_eq!(fix["status"], "done", "{s:#}");
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
}

/// Scales run `run` against a dispatch endpoint answering `status` (sent exactly once) and
/// returns the reason the session was escalated with.
async fn escalated_after_dispatch_answers(status: u16, run: u64) -> String {
    let app = scaling_app("large", run).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/workflows/ci.yml/dispatches"
        )))
        .respond_with(ResponseTemplate::new(status))
        .expect(1)
        .mount(&app.github)
        .await;
    let id = session_id(
        app.post_github(
            "workflow_run",
            &format!("d-{run}"),
            &workflow_run(run, 1, "failure", "CI"),
        )
        .await,
    )
    .await;
    let s = app.wait_status(&id, "escalated").await;
    let (mock, _dir, _) = app.stop().await;
    mock.verify().await;
    s["reason"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_dispatch_without_a_run_id_to_follow_is_escalated_not_repeated() {
    // GitHub Enterprise Server versions without `return_run_details` answer 204.
    let reason = escalated_after_dispatch_answers(204, 570).await;
    assert!(reason.contains("no id to follow"), "{reason}");
}

#[tokio::test]
async fn a_dispatch_the_platform_did_not_confirm_is_not_sent_twice() {
    let reason = escalated_after_dispatch_answers(502, 580).await;
    assert!(reason.contains("did not confirm"), "{reason}");
}

/// An app with one command fix for transient download failures, and run `run` failing so.
async fn command_fix_app(name: &str, command: Vec<String>, run: u64) -> TestApp {
    let app = TestApp::start_with(|c| {
        c.strategies.push(CustomStrategy {
            name: name.into(),
            categories: vec!["dependency_download".into()],
            command: Some(command),
            ..Default::default()
        });
    })
    .await;
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "build", "failure", TRANSIENT_LOG)],
    )
    .await;
    app
}

#[tokio::test]
async fn a_high_risk_command_fix_runs_only_after_an_operator_approves() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("approved-fix-ran");
    let script = format!("open({:?}, 'w').write('ran')", marker.display().to_string());
    let app = command_fix_app(
        "python-fix",
        vec!["python3".into(), "-c".into(), script],
        570,
    )
    .await;
    let rerun = rerun_failed(570)
        .expect(1)
        .mount_as_scoped(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-fix-1",
            &workflow_run(570, 1, "failure", "CI"),
        )
        .await;
    let id = session_id(r).await;
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("python-fix is high-risk"),
        "{s:#}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the fix ran before anyone approved");
    assert_eq!(rerun.received_requests().await.len(), 0);
    let approve = format!("/api/v1/sessions/{id}/approve");
    let viewer = authenticated(&app.token("vera", "viewer").await);
    let r = viewer
        .post(format!("{}{approve}", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a viewer cannot approve a fix");
    assert!(!marker.exists());
    let (status, v) = api_call(&app, reqwest::Method::POST, &approve, Some("{}")).await;
    assert_eq!(status, 202, "{v}");
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        marker.exists(),
        "the approved fix ran before the re-run: {s:#}"
    );
    let fix = s["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["target"] == "fix:python-fix")
        .cloned()
        .unwrap_or_default();
    assert_eq!(fix["status"], "done", "{s:#}");
    drop(rerun);
    app.stop().await;
}

#[tokio::test]
async fn a_command_fix_a_branch_name_would_turn_into_an_option_is_refused_and_never_run() {
    let work = tempfile::tempdir().unwrap();
    let app = command_fix_app(
        "checkout",
        vec![
            "git".into(),
            "-C".into(),
            work.path().display().to_string(),
            "checkout".into(),
            "{{branch}}".into(),
        ],
        571,
    )
    .await;
    let rerun = rerun_failed(571)
        .expect(0)
        .mount_as_scoped(&app.github)
        .await;
    let mut run = workflow_run(571, 1, "failure", "CI");
    run["workflow_run"]["head_branch"] = json!("--orphan=evil");
    let id = session_id(app.post_github("workflow_run", "d-fix-2", &run).await).await;
    let s = app.wait_status(&id, "escalated").await;
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("fix checkout refused by the safety assessment"),
        "{reason}"
    );
    assert!(
        s["actions"].as_array().is_none_or(|a| a.is_empty()),
        "nothing was called: {s:#}"
    );
    drop(rerun);
    app.stop().await;
}
