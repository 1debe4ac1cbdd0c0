//! Approving where people already look: the session's GitHub check run (its buttons), a
//! `/pipeguard` note on a GitLab merge request, a Slack message's buttons. Each is the API's
//! decision: one re-run however many presses, refused for non-approvers, audited with its
//! source, and the place it was given answers.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_server::tenants::NotifyConfig;
use pipeguard_sim::github::{CheckRun, GithubConfig, GithubSim};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim, Noteable, User};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const DASHBOARD: &str = "https://pipeguard.example.com";

fn network_log() -> String {
    sample("network").unwrap().log.to_string()
}

/// A deploy whose job fails for a network reason, then passes: pipeguard holds its re-run
/// for approval.
fn deploy(repo: &str) -> RunSpec {
    RunSpec::new(repo, "deploy.yml").job(
        JobSpec::new("deploy-production")
            .duration_ms(50)
            .fails(network_log())
            .passes(),
    )
}

async fn github_sim(
    tweak: impl FnOnce(&mut pipeguard_server::config::Config),
) -> (GithubSim, TestApp) {
    let config = GithubConfig::default()
        .token("ghs_testtoken")
        .team("acme/release-managers", &["hubot"]);
    let sim = GithubSim::start(config).await.unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        let g = c.platform_mut(Platform::Github);
        g.api_url = url;
        g.approvers = vec!["octocat".into(), "acme/release-managers".into()];
        c.worker.verify_poll_seconds = 1;
        c.notify.push(NotifyConfig {
            kind: "github_check".into(),
            url: DASHBOARD.into(),
            ..Default::default()
        });
        tweak(c);
    })
    .await;
    let hook = format!("{}/webhooks/github", app.base);
    sim.set_webhook(Some(WebhookTarget::new(hook, SECRET)))
        .await;
    (sim, app)
}

/// The only session, once it has `status`.
async fn only_session(app: &TestApp, status: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let list = app.get("/api/v1/sessions").await;
        if let Some(id) = list["sessions"][0]["id"].as_str() {
            app.wait_status(id, status).await;
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no session");
}

/// The session's check run once `pred` holds for it.
async fn check_run(sim: &GithubSim, session: &str, pred: impl Fn(&Value) -> bool) -> CheckRun {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        let runs = sim.check_runs(REPO).await;
        last = runs.into_iter().find(|c| c.body["external_id"] == session);
        if last.as_ref().is_some_and(|c| pred(&c.body)) {
            return last.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the check run never got there: {last:#?}");
}

async fn github_reruns(sim: &GithubSim) -> usize {
    let requests = sim.requests().await;
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path().contains("/rerun"))
        .count()
}

fn title(c: &CheckRun) -> String {
    c.body["output"]["title"].as_str().unwrap_or("").to_string()
}

async fn audit_of(app: &TestApp, actor: &str) -> Vec<Value> {
    let v = app.get(&format!("/api/v1/audit?actor={actor}")).await;
    v["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_approver_s_press_on_the_check_run_reruns_the_deploy_once_and_it_ends_green() {
    let (sim, app) = github_sim(|_| {}).await;
    let run = sim.start_run(deploy(REPO)).await.unwrap();
    let id = only_session(&app, "awaiting_approval").await;
    let cr = check_run(&sim, &id, |b| {
        b["actions"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(cr.body["conclusion"], "action_required");
    let buttons: Vec<(&str, &str)> = cr.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["label"].as_str().unwrap(),
                a["identifier"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [("Approve re-run", "approve"), ("Reject", "reject")]
    );
    let cr_id = cr.body["id"].as_u64().unwrap();

    // Someone who is no approver: the check run says so, nothing runs.
    assert!(sim.press(cr_id, "approve", "mallory").await);
    let refused = check_run(&sim, &id, |b| {
        b["output"]["title"] == "mallory may not approve"
    })
    .await;
    assert_eq!(
        refused.body["actions"].as_array().unwrap().len(),
        2,
        "the buttons stay"
    );
    assert_eq!(github_reruns(&sim).await, 0);
    assert_eq!(
        app.get(&format!("/api/v1/sessions/{id}")).await["status"],
        "awaiting_approval"
    );

    // An approver presses twice: one decision, one re-run.
    let (a, b) = tokio::join!(
        sim.press(cr_id, "approve", "octocat"),
        sim.press(cr_id, "approve", "octocat")
    );
    assert!(a && b);
    let s = app.wait_status(&id, "healed").await;
    let done = sim.wait_run(run, WAIT).await.unwrap();
    assert_eq!(done.attempts.len(), 2, "one re-run attempt");
    assert_eq!(github_reruns(&sim).await, 1, "two presses, one re-run");
    let green = check_run(&sim, &id, |b| b["conclusion"] == "success").await;
    assert!(title(&green).contains("healed by"), "{}", title(&green));
    assert_eq!(green.body["actions"], json!([]), "no buttons once decided");
    assert!(
        green.history.iter().any(|v| v["status"] == "in_progress"),
        "the check run showed the heal in progress: {:#?}",
        green.history
    );
    assert_eq!(
        green.history[0]["id"], green.body["id"],
        "one check run, updated in place"
    );
    assert_eq!(sim.check_runs(REPO).await.len(), 1);

    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("approved by github:octocat (1 of 1)"),
        "{timeline}"
    );
    let audit = audit_of(&app, "github:octocat").await;
    let granted: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "approval.granted")
        .collect();
    assert_eq!(granted.len(), 1, "{audit:#?}");
    assert_eq!(granted[0]["detail"]["via"], "github_check_run");
    assert!(
        audit_of(&app, "github:mallory").await.is_empty(),
        "a refusal decides nothing"
    );
    let answered = sim.deliveries().await;
    let presses: Vec<_> = answered
        .iter()
        .filter(|d| d.delivery.event == "check_run")
        .collect();
    assert_eq!(presses.len(), 3);
    assert!(
        presses.iter().all(|d| d.status == Some(200)),
        "{presses:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn team_members_approve_through_their_team_and_four_eyes_still_hold() {
    let (sim, app) = github_sim(|c| c.approvals.required = 2).await;
    sim.start_run(deploy(REPO)).await.unwrap();
    let id = only_session(&app, "awaiting_approval").await;
    let cr = check_run(&sim, &id, |b| b["conclusion"] == "action_required").await;
    let cr_id = cr.body["id"].as_u64().unwrap();

    assert!(sim.press(cr_id, "approve", "hubot").await);
    let one = check_run(&sim, &id, |b| {
        b["output"]["title"] != cr.body["output"]["title"]
    })
    .await;
    assert_eq!(
        title(&one),
        "approved by github:hubot (1 of 2); 1 more needed"
    );
    assert!(sim.press(cr_id, "approve", "hubot").await);
    let again = check_run(&sim, &id, |b| {
        b["output"]["title"] != one.body["output"]["title"]
    })
    .await;
    assert_eq!(title(&again), "github:hubot already decided on this plan");
    let lookups = sim.inspect(|st| st.membership_lookups.clone()).await;
    assert_eq!(
        lookups,
        [("acme/release-managers".to_string(), "hubot".to_string())],
        "the team membership is read once and kept"
    );
    assert_eq!(
        github_reruns(&sim).await,
        0,
        "one of two approvals runs nothing"
    );

    assert!(sim.press(cr_id, "approve", "octocat").await);
    app.wait_status(&id, "healed").await;
    assert_eq!(github_reruns(&sim).await, 1);
    check_run(&sim, &id, |b| b["conclusion"] == "success").await;
    app.stop().await;
}

#[tokio::test]
async fn a_rejection_on_the_check_run_escalates_and_says_who() {
    let (sim, app) = github_sim(|_| {}).await;
    sim.start_run(deploy(REPO)).await.unwrap();
    let id = only_session(&app, "awaiting_approval").await;
    let cr = check_run(&sim, &id, |b| b["conclusion"] == "action_required").await;
    assert!(
        sim.press(cr.body["id"].as_u64().unwrap(), "reject", "octocat")
            .await
    );
    let s = app.wait_status(&id, "escalated").await;
    assert_eq!(s["reason"], "rejected by github:octocat");
    let closed = check_run(&sim, &id, |b| b["conclusion"] == "failure").await;
    assert_eq!(
        title(&closed),
        "rejected by github:octocat: the session is escalated"
    );
    assert_eq!(closed.body["actions"], json!([]));
    assert_eq!(github_reruns(&sim).await, 0);
    app.stop().await;
}

const GL_SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";

#[tokio::test]
async fn a_gitlab_approve_note_from_a_group_member_reruns_once_and_is_answered() {
    let alice = User::new(7, "alice");
    let mallory = User::new(9, "mallory");
    let config = GitlabConfig::default()
        .token("glpat-sim")
        .group("acme/release", std::slice::from_ref(&alice));
    let sim = GitlabSim::start(config).await.unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        let g = c.platform_mut(Platform::Gitlab);
        g.api_url = url;
        g.token = Some("glpat-sim".into());
        g.webhook_secret = Some("gl-secret".into());
        g.approvers = vec!["acme/release".into()];
        c.worker.verify_poll_seconds = 1;
    })
    .await;
    let hook = format!("{}/webhooks/gitlab", app.base);
    sim.set_webhook(Some(WebhookTarget::new(hook, "gl-secret")))
        .await;
    let spec = RunSpec::new("grp/app", ".gitlab-ci.yml").sha(GL_SHA).job(
        JobSpec::new("deploy-production")
            .duration_ms(50)
            .fails(network_log())
            .passes(),
    );
    sim.start_run(spec).await.unwrap();
    let id = only_session(&app, "awaiting_approval").await;
    sim.open_merge_request("grp/app", 5, GL_SHA).await;
    let mr = Noteable::MergeRequest(5);
    let retries = || async {
        let r = sim.requests().await;
        r.iter()
            .filter(|r| r.method == "POST" && r.path().ends_with("/retry"))
            .count()
    };

    sim.write_note("grp/app", mr.clone(), &mallory, "LGTM")
        .await;
    sim.write_note("grp/app", mr.clone(), &mallory, "/pipeguard approve")
        .await;
    sim.write_note("grp/app", mr.clone(), &alice, "/pipeguard approve")
        .await;
    sim.write_note("grp/app", mr.clone(), &alice, "/pipeguard approve")
        .await;
    app.wait_status(&id, "healed").await;
    assert_eq!(retries().await, 1, "two approve notes, one retry");

    let answers: Vec<String> = sim
        .answers()
        .await
        .into_iter()
        .map(|n| {
            assert_eq!(n.on, mr, "answered on the merge request");
            n.body
        })
        .collect();
    assert_eq!(answers.len(), 3, "{answers:#?}");
    assert!(
        answers[0].contains("mallory may not approve"),
        "{}",
        answers[0]
    );
    assert!(
        answers[1].contains("approved by gitlab:alice: the plan runs"),
        "{}",
        answers[1]
    );
    assert!(
        answers[2].contains("not awaiting_approval"),
        "{}",
        answers[2]
    );
    let lookups = sim.inspect(|st| st.membership_lookups.clone()).await;
    assert_eq!(
        lookups.iter().filter(|(_, u)| *u == 7).count(),
        1,
        "alice's membership is kept"
    );
    let audit = audit_of(&app, "gitlab:alice").await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "approval.granted" && e["detail"]["via"] == "gitlab_note"),
        "{audit:#?}"
    );
    app.stop().await;
}

mod slack {
    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn now_s() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn form(payload: &Value) -> String {
        format!(
            "payload={}",
            pipeguard_platforms::api::encode(&payload.to_string())
        )
    }

    fn signature(secret: &str, ts: i64, body: &str) -> String {
        let base = format!("v0:{ts}:{body}");
        let hex = pipeguard_platforms::webhook::hmac_sha256_hex(secret.as_bytes(), base.as_bytes());
        format!("v0={hex}")
    }

    async fn interact(app: &TestApp, body: &str, ts: i64, sig: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/webhooks/slack/interactions", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    fn press(user: &str, action: &str, session: &str, slack: &MockServer) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0"},
            "team": {"id": "T0", "domain": "acme"},
            "container": {"type": "message", "message_ts": "1700000000.000100"},
            "trigger_id": "1.2.3",
            "response_url": format!("{}/actions/T0/1/xyz", slack.uri()),
            "actions": [{"type": "button", "action_id": action, "block_id": "pipeguard",
                         "value": session, "action_ts": "1700000001.000200"}],
        })
    }

    /// The JSON bodies Slack received at `p`.
    async fn received(slack: &MockServer, p: &str) -> Vec<Value> {
        let all = slack.received_requests().await.unwrap_or_default();
        all.iter()
            .filter(|r| r.url.path() == p)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn slack_buttons_decide_once_and_forged_or_stale_presses_are_refused() {
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&slack)
            .await;
        let hook = format!("{}/services/T0/B0/X", slack.uri());
        let (sim, app) = github_sim(|c| {
            c.notify.push(NotifyConfig {
                kind: "slack".into(),
                url: hook,
                ..Default::default()
            });
            c.slack.signing_secret = Some(SIGNING_SECRET.into());
            c.slack.approvers = vec!["U0APPROVER".into()];
        })
        .await;
        sim.start_run(deploy(REPO)).await.unwrap();
        let id = only_session(&app, "awaiting_approval").await;
        let mut messages = vec![];
        for _ in 0..200 {
            messages = received(&slack, "/services/T0/B0/X").await;
            if !messages.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let blocks = messages[0]["blocks"]
            .as_array()
            .expect("a Block Kit message");
        let actions = blocks
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("buttons");
        let buttons: Vec<(&str, &str)> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action_id"].as_str().unwrap(),
                    e["value"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(buttons, [("approve", id.as_str()), ("reject", id.as_str())]);

        let body = form(&press("U0APPROVER", "approve", &id, &slack));
        let now = now_s();
        // Forged (another secret), stale (6 minutes old) and unsigned: 401 with JSON.
        let forged = interact(&app, &body, now, &signature("not-the-secret", now, &body)).await;
        let stale = interact(
            &app,
            &body,
            now - 360,
            &signature(SIGNING_SECRET, now - 360, &body),
        )
        .await;
        let unsigned = interact(&app, &body, now, "").await;
        for (status, v) in [&forged, &stale, &unsigned] {
            assert_eq!(*status, 401, "{v}");
            assert_eq!(v["error"], "unauthorized", "{v}");
        }
        assert!(
            stale.1["message"].as_str().unwrap().contains("stale"),
            "{}",
            stale.1
        );
        assert_eq!(github_reruns(&sim).await, 0);

        // Someone not in [slack] approvers: told alone, nothing runs.
        let other = form(&press("U0OTHER", "approve", &id, &slack));
        let (status, v) =
            interact(&app, &other, now, &signature(SIGNING_SECRET, now, &other)).await;
        assert_eq!(
            (status, v["status"].as_str()),
            (200, Some("ignored")),
            "{v}"
        );
        assert_eq!(v["message"], "<@U0OTHER> may not approve");

        // The approver presses twice: one decision, one re-run.
        let first = interact(&app, &body, now, &signature(SIGNING_SECRET, now, &body)).await;
        let second = interact(&app, &body, now, &signature(SIGNING_SECRET, now, &body)).await;
        assert_eq!(first.1["status"], "decided", "{}", first.1);
        assert_eq!(second.1["status"], "ignored", "{}", second.1);
        app.wait_status(&id, "healed").await;
        assert_eq!(github_reruns(&sim).await, 1, "two presses, one re-run");

        let updates = received(&slack, "/actions/T0/1/xyz").await;
        assert_eq!(updates.len(), 3, "{updates:#?}");
        assert_eq!(updates[0]["response_type"], "ephemeral");
        assert_eq!(updates[0]["replace_original"], false);
        assert_eq!(updates[1]["replace_original"], true);
        let decided = updates[1]["text"].as_str().unwrap();
        assert!(
            decided.contains("approved by slack:U0APPROVER") && decided.contains("<@U0APPROVER>"),
            "{decided}"
        );
        let audit = audit_of(&app, "slack:U0APPROVER").await;
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == "approval.granted" && e["detail"]["via"] == "slack"),
            "{audit:#?}"
        );
        app.stop().await;
    }
}
