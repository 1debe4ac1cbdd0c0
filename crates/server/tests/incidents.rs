//! A registry outage against the GitHub stand-in: 30 failures from 10 repositories with the
//! same registry error become one incident; its sessions are held while one canary at a time
//! probes the registry; when the canary is green the held sessions are re-run in a paced
//! wave, each once. Unrelated failures in the same minute are treated as usual.

mod common;

use common::*;
use pipeguard_core::event::Platform;
use pipeguard_sim::github::{DispatchMode, GithubConfig, GithubSim};
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn log(category: &str) -> String {
    sample(category).unwrap().log.to_string()
}

async fn github(tweak: impl FnOnce(&mut pipeguard_server::config::Config)) -> (GithubSim, TestApp) {
    let sim = GithubSim::start(
        GithubConfig::default()
            .token("ghs_testtoken")
            .dispatch(DispatchMode::RunDetails),
    )
    .await
    .unwrap();
    let url = sim.base_url();
    let app = TestApp::start_with(|c| {
        c.platform_mut(Platform::Github).api_url = url;
        c.worker.verify_poll_seconds = 1;
        tweak(c);
    })
    .await;
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/github", app.base),
        SECRET,
    )))
    .await;
    (sim, app)
}

async fn sessions(app: &TestApp) -> Vec<Value> {
    app.get("/api/v1/sessions?limit=200").await["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn of_repo<'a>(all: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|s| s["repository"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// Polls until `pred` holds over the sessions and the newest incident, checking on every
/// poll that while the incident is open at most one of its sessions is being re-run.
async fn until(app: &TestApp, what: &str, pred: impl Fn(&[Value], &Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = sessions(app).await;
        let incident = app.get("/api/v1/incidents").await["incidents"][0].clone();
        if incident["closed_at"].is_null() {
            let in_flight = of_repo(&all, "outage/")
                .iter()
                .filter(|s| matches!(s["status"].as_str(), Some("executing" | "verifying")))
                .count();
            assert!(
                in_flight <= 1,
                "{in_flight} re-runs into the outage at once: {all:#?}"
            );
        }
        if pred(&all, &incident) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {incident:#} {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn status_of(all: &[Value], repo: &str) -> String {
    of_repo(all, repo)
        .first()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_registry_outage_is_held_probed_by_one_canary_and_released_in_one_paced_wave() {
    let (sim, app) = github(|c| {
        c.healing.backoff_seconds = 2;
        c.healing.budget_per_hour = 60;
        c.incidents.canary_seconds = 1;
        c.incidents.canary_max_seconds = 2;
        c.incidents.release_per_minute = 300;
    })
    .await;
    let registry = log("dependency_download");
    sim.set_outage(Some(registry.clone())).await;
    let mut runs = vec![];
    for w in 0..3 {
        for r in 0..10 {
            let spec = RunSpec::new(format!("outage/repo-{r}"), format!("ci-{w}.yml"))
                .job(JobSpec::new("build").fails(registry.clone()).passes());
            runs.push(sim.start_run(spec).await.unwrap());
        }
    }
    // In the same minute: a genuine failure, and a transient one on another host.
    let compile = RunSpec::new("other/compiles", "ci.yml")
        .job(JobSpec::new("build").fails(log("compilation_error")));
    sim.start_run(compile).await.unwrap();
    let smoke = RunSpec::new("other/smoke", "ci.yml")
        .job(JobSpec::new("smoke").fails(log("network")).passes());
    sim.start_run(smoke).await.unwrap();

    let held = until(&app, "the incident holding its sessions", |all, _| {
        let outage = of_repo(all, "outage/");
        outage.len() == 30
            && outage.iter().filter(|s| s["status"] == "held").count() >= 29
            && status_of(all, "other/compiles") == "escalated"
            && status_of(all, "other/smoke") == "healed"
    })
    .await;
    let incidents = app.get("/api/v1/incidents").await;
    let list = incidents["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "one incident: {incidents:#}");
    let inc = &list[0];
    let mut keys: Vec<&str> = inc
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    let mut expected = [
        "id",
        "cause",
        "target",
        "opened_at",
        "closed_at",
        "repositories",
        "sessions_held",
        "sessions_released",
        "canaries",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(inc["cause"], "dependency_download");
    assert_eq!(inc["target"], "registry.npmjs.org");
    assert_eq!(inc["repositories"], 10);
    assert!(inc["closed_at"].is_null());
    let one = of_repo(&held, "outage/")
        .into_iter()
        .find(|s| s["status"] == "held")
        .unwrap();
    assert_eq!(one["incident_id"], inc["id"]);
    let named = format!("held by incident {}", inc["id"]);
    assert!(one["reason"].as_str().unwrap().contains(&named), "{one:#}");
    let metrics = metrics_text(&app).await;
    assert!(metrics.contains("pipeguard_incidents_open 1"), "{metrics}");
    assert!(!metrics.contains("pipeguard_sessions_held 0"), "{metrics}");

    // The registry stays down for the first canaries: each fails and is held again, and the
    // next one waits longer.
    until(&app, "a second canary", |_, i| {
        i["canaries"].as_i64() >= Some(2)
    })
    .await;
    sim.set_outage(None).await;
    let done = until(&app, "every registry session healed", |all, _| {
        of_repo(all, "outage/")
            .iter()
            .all(|s| s["status"] == "healed")
    })
    .await;
    assert_eq!(done.len(), 32);
    let inc = &app.get("/api/v1/incidents").await["incidents"][0];
    assert!(inc["closed_at"].is_i64(), "{inc:#}");
    let canaries = inc["canaries"].as_i64().unwrap();
    assert!((2..=4).contains(&canaries), "{inc:#}");
    assert_eq!(inc["sessions_held"], 30);
    assert_eq!(
        inc["sessions_released"], 29,
        "all but the green canary: {inc:#}"
    );
    // Each run re-run once after the outage; the failed canaries' probes are the only
    // other re-runs into the registry.
    let reruns = sim
        .requests()
        .await
        .iter()
        .filter(|r| r.method == "POST" && r.path().contains("/outage/"))
        .filter(|r| r.path().contains("/rerun"))
        .count();
    assert_eq!(reruns as i64, 30 + canaries - 1);
    for run in &runs {
        let r = sim.run(*run).await.unwrap();
        assert!(
            r.attempts.len() <= 3,
            "run {run}: {} attempts",
            r.attempts.len()
        );
        assert_eq!(r.latest().conclusion.as_deref(), Some("success"));
    }
    // Paced and oldest first: 300 a minute is one every 200 ms, so 29 take over 4 s.
    let times = release_times(&app, &done).await;
    assert_eq!(times.len(), 29);
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    assert!(times[28] - times[0] >= 4000, "paced: {times:?}");
    let metrics = metrics_text(&app).await;
    assert!(metrics.contains("pipeguard_incidents_open 0"), "{metrics}");
    assert!(metrics.contains("pipeguard_sessions_held 0"), "{metrics}");
    app.stop().await;
}

/// The release times of the wave, in the order the sessions failed.
async fn release_times(app: &TestApp, all: &[Value]) -> Vec<i64> {
    let mut outage: Vec<&Value> = of_repo(all, "outage/");
    outage.sort_by_key(|s| (s["created_at"].as_i64(), s["id"].as_str().map(String::from)));
    let mut at = vec![];
    for s in outage {
        let d = app
            .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
            .await;
        let line = d["timeline"].as_array().unwrap().iter().find(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .contains("released in its wave")
        });
        if let Some(l) = line {
            at.push(l["at"].as_i64().unwrap());
        }
    }
    at
}

#[tokio::test]
async fn an_incident_given_up_escalates_its_sessions_together_with_one_message_each_way() {
    let hook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let url = hook.uri();
    let (sim, app) = github(move |c| {
        c.healing.backoff_seconds = 2;
        // Open longer than zero hours: given up at the first look.
        c.incidents.give_up_hours = 0;
        c.incidents.canary_seconds = 60;
        c.notify.push(pipeguard_server::tenants::NotifyConfig {
            url,
            on: vec!["incident".into(), "escalated".into()],
            ..Default::default()
        });
    })
    .await;
    let registry = log("dependency_download");
    sim.set_outage(Some(registry.clone())).await;
    for r in 0..4 {
        let spec = RunSpec::new(format!("outage/repo-{r}"), "ci.yml")
            .job(JobSpec::new("build").fails(registry.clone()).passes());
        sim.start_run(spec).await.unwrap();
    }
    let all = until(&app, "the held sessions escalated", |all, i| {
        i["closed_at"].is_i64()
            && of_repo(all, "outage/").len() == 4
            && of_repo(all, "outage/")
                .iter()
                .all(|s| s["status"] == "escalated")
    })
    .await;
    let given_up: Vec<&Value> = of_repo(&all, "outage/")
        .into_iter()
        .filter(|s| {
            s["reason"]
                .as_str()
                .unwrap()
                .contains("still open after 0 hour(s)")
        })
        .collect();
    assert!(given_up.len() >= 2, "{all:#?}");
    // Held sessions never re-ran into the outage.
    assert!(given_up.iter().all(|s| s["heal_attempts"] == 0), "{all:#?}");
    let given_up = given_up.len();
    // One message when it opened, one when it was given up; none per escalated session.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies: Vec<Value> = hook
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    let per_session = events.iter().filter(|e| e.starts_with("session.")).count();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("incident.")).count(),
        2,
        "{events:?}"
    );
    assert!(events.contains(&"incident.opened") && events.contains(&"incident.closed"));
    assert_eq!(per_session, 4 - given_up, "{events:?}");
    app.stop().await;
}

#[tokio::test]
async fn operators_close_an_incident_by_hand_and_its_sessions_go_in_the_wave() {
    let (sim, app) = github(|c| {
        c.healing.backoff_seconds = 2;
        c.incidents.canary_seconds = 3600;
        c.incidents.release_per_minute = 600;
    })
    .await;
    let registry = log("dependency_download");
    sim.set_outage(Some(registry.clone())).await;
    for r in 0..3 {
        let spec = RunSpec::new(format!("outage/repo-{r}"), "ci.yml")
            .job(JobSpec::new("build").fails(registry.clone()).passes());
        sim.start_run(spec).await.unwrap();
    }
    let all = until(&app, "three held", |all, _| {
        of_repo(all, "outage/")
            .iter()
            .filter(|s| s["status"] == "held")
            .count()
            == 3
    })
    .await;
    assert_eq!(all.len(), 3);
    let id = app.get("/api/v1/incidents").await["incidents"][0]["id"]
        .as_i64()
        .unwrap();
    let post = |token: String, path: String| {
        let http = reqwest::Client::new();
        let base = app.base.clone();
        async move {
            http.post(format!("{base}{path}"))
                .bearer_auth(token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap()
        }
    };
    let viewer = app.token("viewer", "viewer").await;
    let operator = app.token("operator", "operator").await;
    let path = format!("/api/v1/incidents/{id}/close");
    assert_eq!(post(viewer.clone(), path.clone()).await.status(), 403);
    let listed = reqwest::Client::new()
        .get(format!("{}/api/v1/incidents", app.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "viewers read incidents");
    for (bad, status) in [
        ("/api/v1/incidents/x/close", 400),
        ("/api/v1/incidents/999/close", 404),
    ] {
        let r = post(operator.clone(), bad.into()).await;
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].is_string(), "{body}");
    }
    sim.set_outage(None).await;
    let closed = post(operator.clone(), path.clone()).await;
    assert_eq!(closed.status(), 200);
    let body: Value = closed.json().await.unwrap();
    assert!(body["closed_at"].is_i64() && body["id"] == id, "{body}");
    assert_eq!(post(operator, path).await.status(), 409);
    let all = until(&app, "the wave healed them", |all, _| {
        of_repo(all, "outage/")
            .iter()
            .all(|s| s["status"] == "healed")
    })
    .await;
    let times = release_times(&app, &all).await;
    assert_eq!(times.len(), 3, "each released once");
    let audit = app.get("/api/v1/audit?action=incident.closed").await;
    assert!(
        audit.to_string().contains("\"operator\""),
        "closing is audited with who did it: {audit:#}"
    );
    let inc = &app.get("/api/v1/incidents").await["incidents"][0];
    assert_eq!(
        (inc["canaries"].as_i64(), inc["sessions_released"].as_i64()),
        (Some(0), Some(3))
    );
}

/// A wave's re-run is one held failure that a green canary showed healable, not a
/// repository's runaway retries: 40 held failures of one repository are each re-run once
/// with a per-repository budget of 5, none handed to people; a later failure of the same
/// repository outside the incident is still stopped by that budget.
#[tokio::test]
async fn the_wave_re_runs_every_held_failure_of_a_repository_past_its_hourly_budget() {
    let (sim, app) = github(|c| {
        c.healing.backoff_seconds = 3;
        c.healing.budget_per_repository_per_hour = 5;
        c.incidents.canary_seconds = 1;
        c.incidents.release_per_minute = 1200;
    })
    .await;
    let registry = log("dependency_download");
    sim.set_outage(Some(registry.clone())).await;
    let failing = |repo: &str, w: usize| {
        RunSpec::new(repo, format!("ci-{w}.yml"))
            .job(JobSpec::new("build").fails(registry.clone()).passes())
    };
    // Two other repositories first, so the incident opens at the big one's first failure.
    for repo in ["outage/a", "outage/b"] {
        sim.start_run(failing(repo, 0)).await.unwrap();
    }
    let mut big = vec![];
    for w in 0..40 {
        big.push(sim.start_run(failing("outage/big", w)).await.unwrap());
    }
    until(&app, "the big repository's failures held", |all, _| {
        let held = of_repo(all, "outage/big")
            .iter()
            .filter(|s| s["status"] == "held")
            .count();
        held == 40 && of_repo(all, "outage/").len() == 42
    })
    .await;
    sim.set_outage(None).await;
    let done = until(&app, "every held failure healed", |all, _| {
        of_repo(all, "outage/")
            .iter()
            .all(|s| s["status"] == "healed")
    })
    .await;
    let inc = &app.get("/api/v1/incidents").await["incidents"][0];
    let canaries = inc["canaries"].as_i64().unwrap();
    // Every held run of the big repository re-run once by the wave (a failed canary's probe
    // besides), eight times its budget, and green; none handed to people.
    let mut reruns = 0;
    for run in &big {
        let r = sim.run(*run).await.unwrap();
        assert!(r.attempts.len() <= 3, "run {run}: {:?}", r.attempts);
        assert_eq!(r.latest().conclusion.as_deref(), Some("success"));
        reruns += r.attempts.len() as i64 - 1;
    }
    assert!(
        (40..=40 + canaries - 1).contains(&reruns),
        "{reruns} {inc:#}"
    );
    let big_done: Vec<Value> = of_repo(&done, "outage/big").into_iter().cloned().collect();
    let released = release_times(&app, &big_done).await.len();
    assert!(released >= 39, "{released} released in the wave: {inc:#}");

    // The same repository fails again, for a cause no incident holds: its budget applies.
    let other = RunSpec::new("outage/big", "nightly.yml")
        .job(JobSpec::new("smoke").fails(log("network")).passes());
    sim.start_run(other).await.unwrap();
    let fresh = |all: &[Value]| -> Option<Value> {
        of_repo(all, "outage/big")
            .into_iter()
            .find(|s| !done.iter().any(|d| d["id"] == s["id"]))
            .cloned()
    };
    let all = until(
        &app,
        "the unrelated failure stopped by the budget",
        |all, _| fresh(all).is_some_and(|s| s["status"] == "escalated"),
    )
    .await;
    let stopped = fresh(&all).unwrap();
    let reason = stopped["reason"].as_str().unwrap();
    assert!(
        reason.contains("re-runs of outage/big in the last hour (limit 5)"),
        "{stopped:#}"
    );
    app.stop().await;
}
