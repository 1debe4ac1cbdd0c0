//! Credentials stay on their origin, for every platform client: two stand-ins on two
//! 127.0.0.1 ports are two origins. The configured API redirects its first call to the other
//! one, which must see the call without any credential; a redirect to a URL with user info
//! (`http://api@evil/…`) is not followed at all. Jenkins' queue item `Location` is a
//! platform-supplied URL and is only called on the configured origin.

use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::jenkins::JenkinsClient;
use pipeguard_platforms::registry;
use pipeguard_platforms::settings::Section;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "s3cret-token";
const USER: &str = "pg-user";
/// Every header that carries a platform credential (or a session bound to one).
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "private-token", "circle-token", "cookie"];

/// Answers every request with a redirect to `to` + the request's path and query.
struct RedirectTo(String);

impl Respond for RedirectTo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let tail = match req.url.query() {
            Some(q) => format!("{}?{q}", req.url.path()),
            None => req.url.path().to_string(),
        };
        ResponseTemplate::new(302).insert_header("location", format!("{}{tail}", self.0))
    }
}

fn quick() -> HttpOptions {
    HttpOptions {
        tries: 1,
        ..Default::default()
    }
}

fn section(api: &MockServer) -> Section {
    Section {
        api_url: api.uri(),
        token: Some(TOKEN.into()),
        user: Some(USER.into()),
        ..Default::default()
    }
}

/// An event each client can act on (a name and run id its API paths accept).
fn event(p: Platform) -> FailureEvent {
    let (repository, run_id, attempt) = match p {
        Platform::Github => ("o/r", "7", 1),
        Platform::Gitlab => ("g/p", "5", 1),
        Platform::Jenkins => ("f/app", "f/app", 3),
        Platform::Circleci => ("gh/acme/api", "p1/build", 1),
        Platform::Buildkite => ("acme/app", "42", 1),
        Platform::Azure => ("org/proj", "42", 1),
        Platform::Teamcity => ("Proj_Build", "4f1a2b3c", 1),
        Platform::Buildbot => ("runtests", "12", 1),
        other => panic!("{other:?} has no client"),
    };
    FailureEvent {
        platform: Some(p),
        repository: repository.into(),
        run_id: run_id.into(),
        attempt,
        workflow: "build".into(),
        head_sha: Some("4f1a2b3c".into()),
        branch: Some("main".into()),
        jobs: vec![FailedJob {
            id: "101".into(),
            name: "test".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn credentials(r: &Request) -> Vec<String> {
    CREDENTIAL_HEADERS
        .iter()
        .filter(|h| r.headers.contains_key(**h))
        .map(|h| h.to_string())
        .collect()
}

/// The client's first calls (run state, then failed logs) against an API that redirects all
/// of them to `location` + path; returns what the API itself received.
async fn call_through_redirect(p: Platform, api: &MockServer, location: String) -> Vec<Request> {
    Mock::given(any())
        .respond_with(RedirectTo(location))
        .mount(api)
        .await;
    let module = registry::module(p).expect("module");
    let client = module.client(&section(api), &quick()).expect("client");
    let ev = event(p);
    // The answers do not matter (the other origin knows nothing); where calls went does.
    let _ = client.run_state(&ev).await;
    let _ = client.failed_logs(&ev).await;
    let got = api.received_requests().await.unwrap_or_default();
    assert!(!got.is_empty(), "{p:?}: the client made no call");
    assert!(
        got.iter().all(|r| !credentials(r).is_empty()),
        "{p:?}: the configured API gets the credential"
    );
    got
}

async fn credentials_stay_on_their_origin(p: Platform) {
    // A redirect to another origin is followed, without the credential.
    let (api, elsewhere) = (MockServer::start().await, MockServer::start().await);
    call_through_redirect(p, &api, elsewhere.uri()).await;
    let there = elsewhere.received_requests().await.unwrap_or_default();
    assert!(!there.is_empty(), "{p:?}: the redirect was followed");
    for r in &there {
        assert_eq!(
            credentials(r),
            Vec::<String>::new(),
            "{p:?}: {} {} reached the other origin with a credential",
            r.method,
            r.url
        );
        assert!(!r.url.as_str().contains(TOKEN), "{p:?}: token in {}", r.url);
    }

    // A redirect to a URL with user info (it reads as the API's host) is not followed.
    let (api, elsewhere) = (MockServer::start().await, MockServer::start().await);
    let host = api.address().to_string();
    let sneaky = format!("http://{host}@{}", elsewhere.address());
    call_through_redirect(p, &api, sneaky).await;
    let there = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        there.is_empty(),
        "{p:?}: a redirect to a URL with user info was followed: {:?}",
        there.iter().map(|r| r.url.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn github_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Github).await;
}

#[tokio::test]
async fn gitlab_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Gitlab).await;
}

#[tokio::test]
async fn jenkins_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Jenkins).await;
}

#[tokio::test]
async fn circleci_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Circleci).await;
}

#[tokio::test]
async fn buildkite_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Buildkite).await;
}

#[tokio::test]
async fn azure_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Azure).await;
}

#[tokio::test]
async fn teamcity_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Teamcity).await;
}

#[tokio::test]
async fn buildbot_credentials_stay_on_their_origin() {
    credentials_stay_on_their_origin(Platform::Buildbot).await;
}

/// Jenkins names the queued build's queue item in `Location`: one with user info or on
/// another origin is never called (the rebuild itself stands, without a build number).
#[tokio::test]
async fn jenkins_queue_item_on_another_origin_is_not_called() {
    let elsewhere = MockServer::start().await;
    let evil = elsewhere.address().to_string();
    for location in [
        |api: &str, evil: &str| format!("http://{api}@{evil}/queue/item/1/"),
        |_: &str, evil: &str| format!("http://{evil}/queue/item/1/"),
    ] {
        let api = MockServer::start().await;
        let host = api.address().to_string();
        Mock::given(method("GET"))
            .and(path("/crumbIssuer/api/json"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&api)
            .await;
        Mock::given(method("GET"))
            .and(path("/job/f/job/app/3/api/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .mount(&api)
            .await;
        Mock::given(method("POST"))
            .and(path("/job/f/job/app/build"))
            .respond_with(
                ResponseTemplate::new(201).insert_header("location", location(&host, &evil)),
            )
            .expect(1)
            .mount(&api)
            .await;
        let client = JenkinsClient::new(&section(&api), &quick());
        let (detail, build) = client
            .rebuild_with(&event(Platform::Jenkins), &[])
            .await
            .expect("the rebuild was queued");
        assert_eq!(build, None, "{detail}");
        api.verify().await;
    }
    let there = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        there.is_empty(),
        "the queue item elsewhere was called: {:?}",
        there.iter().map(|r| r.url.to_string()).collect::<Vec<_>>()
    );
}
