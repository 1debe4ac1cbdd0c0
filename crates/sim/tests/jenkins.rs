//! Jenkins semantics, checked through the remote access API with reqwest.

mod common;

use common::{Receiver, WAIT};
use pipeguard_platforms::{jenkins as jk_parser, Parsed};
use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
use pipeguard_sim::{JobSpec, RunSpec};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

const USER: &str = "pipeguard";
const API_TOKEN: &str = "11aa22bb";

async fn sim(config: JenkinsConfig) -> JenkinsSim {
    JenkinsSim::start(config.credentials(USER, API_TOKEN))
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_json(sim: &JenkinsSim, path: &str) -> Value {
    let r = client()
        .get(format!("{}{path}", sim.base_url()))
        .basic_auth(USER, Some(API_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.json().await.unwrap()
}

/// POSTs a build trigger with the API token; returns the status and the queue item id.
async fn trigger(sim: &JenkinsSim, path: &str, form: &str) -> (StatusCode, Option<u64>) {
    let r = client()
        .post(format!("{}{path}", sim.base_url()))
        .basic_auth(USER, Some(API_TOKEN))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let id = r.headers().get("location").map(|l| {
        let l = l.to_str().unwrap();
        l.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    });
    (r.status(), id)
}

fn job() -> RunSpec {
    RunSpec::new("team/api", "Jenkinsfile")
        .parameter("LABEL", "small")
        .job(JobSpec::new("Build"))
        .job(
            JobSpec::new("Test")
                .needs(&["Build"])
                .fails("java.net.SocketTimeoutException: Read timed out")
                .passes(),
        )
        .job(JobSpec::new("Deploy").needs(&["Test"]))
}

#[tokio::test]
async fn a_queue_item_shows_its_build_once_it_left_the_queue() {
    let sim = sim(JenkinsConfig {
        quiet_period: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let first = sim.start_run(job()).await.unwrap();
    let b1 = sim.wait_item(first, WAIT).await.unwrap();
    assert_eq!((b1.number, b1.result.as_deref()), (1, Some("FAILURE")));
    let console = client()
        .get(format!("{}/job/team/job/api/1/consoleText", sim.base_url()))
        .basic_auth(USER, Some(API_TOKEN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        console.contains("SocketTimeoutException") && console.contains("Stage \"Deploy\" skipped"),
        "{console}"
    );
    assert!(console.ends_with("Finished: FAILURE\n"));

    let (s, item) = trigger(&sim, "/job/team/job/api/buildWithParameters", "LABEL=large").await;
    assert_eq!(s, StatusCode::CREATED);
    let item = item.expect("a Location header naming the queue item");
    let waiting = get_json(&sim, &format!("/queue/item/{item}/api/json")).await;
    assert!(waiting["executable"].is_null());
    assert!(waiting["why"]
        .as_str()
        .unwrap()
        .starts_with("In the quiet period"));
    let b2 = sim.wait_item(item, WAIT).await.unwrap();
    let left = get_json(&sim, &format!("/queue/item/{item}/api/json")).await;
    assert_eq!(left["executable"]["number"].as_u64(), Some(2));
    assert_eq!(left["_class"], "hudson.model.Queue$LeftItem");
    assert_eq!(
        (b2.result.as_deref(), b2.parameters["LABEL"].as_str()),
        (Some("SUCCESS"), "large")
    );
    let api = get_json(&sim, "/job/team/job/api/2/api/json").await;
    assert_eq!(api["actions"][0]["parameters"][0]["value"], "large");
    assert_eq!(api["queueId"].as_u64(), Some(item));
}

#[tokio::test]
async fn another_users_build_can_come_first_and_last_build_is_not_ours() {
    let sim = sim(JenkinsConfig::default()).await;
    let slow = RunSpec::new("team/api", "Jenkinsfile").job(
        JobSpec::new("Build")
            .duration_ms(300)
            .fails("Connection reset")
            .passes(),
    );
    let first = sim.start_run(slow).await.unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    let theirs = sim
        .trigger_build("team/api", &[], "Started by user alice")
        .await
        .unwrap();
    sim.wait_until(WAIT, |st| st.queue[&theirs].build.is_some())
        .await
        .unwrap();
    let (_, ours) = trigger(&sim, "/job/team/job/api/build", "").await;
    let ours = ours.unwrap();
    let now = tokio::time::Instant::now;
    sim.wait_until(WAIT, |st| {
        st.why(&st.queue[&ours], now())
            .is_some_and(|w| w.contains("already in progress"))
    })
    .await
    .unwrap();
    let blocked = get_json(&sim, &format!("/queue/item/{ours}/api/json")).await;
    assert!(blocked["executable"].is_null());
    assert_eq!(blocked["why"], "Build #2 is already in progress");
    let last = get_json(&sim, "/job/team/job/api/lastBuild/api/json").await;
    assert_eq!(
        last["number"], 2,
        "lastBuild is alice's build while ours waits"
    );
    let mine = sim.wait_item(ours, WAIT).await.unwrap();
    let alices = sim.build("team/api", 2).await.unwrap();
    assert_eq!(
        (mine.number, alices.cause.as_str()),
        (3, "Started by user alice")
    );
    assert_eq!(
        alices.result.as_deref(),
        Some("SUCCESS"),
        "alice's build took the passing execution"
    );
    assert!(
        alices.timestamp < mine.timestamp,
        "builds of one job run one after the other"
    );
}

#[tokio::test]
async fn undeclared_parameters_are_dropped_and_unparameterized_jobs_refuse_parameters() {
    let sim = sim(JenkinsConfig::default()).await;
    let first = sim.start_run(job()).await.unwrap();
    sim.wait_item(first, WAIT).await.unwrap();
    let (s, item) = trigger(&sim, "/job/team/job/api/buildWithParameters", "WIPE=true").await;
    assert_eq!(s, StatusCode::CREATED);
    let q = sim.queue_item(item.unwrap()).await.unwrap();
    assert_eq!(q.dropped, ["WIPE"]);
    assert_eq!(
        q.parameters["LABEL"], "small",
        "declared parameters keep their default"
    );

    let plain = RunSpec::new("plain", "Jenkinsfile").job(JobSpec::new("Build"));
    let id = sim.start_run(plain).await.unwrap();
    sim.wait_item(id, WAIT).await.unwrap();
    let (s, _) = trigger(&sim, "/job/plain/buildWithParameters", "X=1").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    let (s, _) = trigger(&sim, "/job/plain/build", "").await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn credentials_and_crumbs_are_checked() {
    let config = JenkinsConfig {
        password: Some("hunter2".into()),
        crumb_exempts_api_tokens: false,
        ..Default::default()
    };
    let sim = sim(config).await;
    sim.start_run(job()).await.unwrap();
    let url = format!("{}/job/team/job/api/build", sim.base_url());
    let anon = client().post(&url).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::FORBIDDEN);
    assert_eq!(anon.headers()["x-you-are-authenticated-as"], "anonymous");
    let bad = client()
        .post(&url)
        .basic_auth(USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let no_crumb = client()
        .post(&url)
        .basic_auth(USER, Some("hunter2"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_crumb.status(), StatusCode::FORBIDDEN);

    // A crumb fetched without keeping the session cookie (as a client without a cookie store
    // does) is not valid for the next request.
    let issuer = format!("{}/crumbIssuer/api/json", sim.base_url());
    let r = client()
        .get(&issuer)
        .basic_auth(USER, Some("hunter2"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let crumb: Value = r.json().await.unwrap();
    let crumb = crumb["crumb"].as_str().unwrap().to_string();
    let post = |cookie: Option<&str>| {
        let mut b = client()
            .post(&url)
            .basic_auth(USER, Some("hunter2"))
            .header("Jenkins-Crumb", &crumb);
        if let Some(c) = cookie {
            b = b.header("Cookie", c);
        }
        b.send()
    };
    assert_eq!(post(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(Some(&cookie)).await.unwrap().status(),
        StatusCode::CREATED
    );

    let exempt = JenkinsSim::start(JenkinsConfig::default().credentials(USER, API_TOKEN))
        .await
        .unwrap();
    exempt.start_run(job()).await.unwrap();
    let (s, _) = trigger(&exempt, "/job/team/job/api/build", "").await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "API tokens need no crumb by default"
    );
}

#[tokio::test]
async fn notifications_carry_the_token_and_parse_as_pipeguard_expects() {
    let rx = Receiver::start().await;
    let sim = sim(JenkinsConfig::default().webhook(&rx.url, "jk-secret")).await;
    sim.start_run(job()).await.unwrap();
    let got = rx.wait(|g| g.len() == 3).await;
    let phases: Vec<String> = got
        .iter()
        .map(|d| d.json()["build"]["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(phases, ["STARTED", "COMPLETED", "FINALIZED"]);
    assert!(got
        .iter()
        .all(|d| d.header("x-pipeguard-token") == "jk-secret"));
    assert!(matches!(
        jk_parser::parse_delivery(&got[0].body).unwrap().parsed,
        Parsed::Ignored(_)
    ));
    let Parsed::Failure(ev) = jk_parser::parse_delivery(&got[1].body).unwrap().parsed else {
        panic!("a failed build is a failure for pipeguard")
    };
    assert_eq!((ev.repository.as_str(), ev.attempt), ("team/api", 1));

    // A simulator may start before its receiver: the target is set later, the token in the URL.
    let rx2 = Receiver::start().await;
    let in_query = JenkinsConfig {
        token_in_query: true,
        ..JenkinsConfig::default()
    };
    let sim2 = JenkinsSim::start(in_query.credentials(USER, API_TOKEN))
        .await
        .unwrap();
    sim2.set_webhook(Some(pipeguard_sim::WebhookTarget::new(&rx2.url, "a b")))
        .await;
    sim2.start_run(job()).await.unwrap();
    rx2.wait(|g| !g.is_empty()).await;
    let sent = sim2.deliveries().await;
    assert_eq!(sent[0].delivery.header("x-pipeguard-token"), None);
    assert_eq!(
        sent[0].url.as_deref(),
        Some(format!("{}?token=a+b", rx2.url).as_str())
    );
    assert_eq!(sent[0].status, Some(202));
}
