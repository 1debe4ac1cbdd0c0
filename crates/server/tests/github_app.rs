//! GitHub App authentication against the GitHub stand-in: the app's JWT, installation
//! tokens fetched once per installation and renewed before they expire, one installation's
//! token never used on another's repository, a personal token unchanged, a bad key refused
//! at start.

use pipeguard_core::event::FailureEvent;
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::github::GithubClient;
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::{Ci, PlatformError};
use pipeguard_sim::github::{AppConfig, GithubConfig, GithubSim};
use pipeguard_sim::{JobSpec, RunSpec};
use std::time::Duration;

const APP_ID: &str = "424242";
const WAIT: Duration = Duration::from_secs(20);

/// A fresh RSA key pair: (private key PEM, public key DER).
fn rsa_key() -> (String, Vec<u8>) {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key generation");
    (k.serialize_pem(), k.public_key_raw().to_vec())
}

struct App {
    sim: GithubSim,
    _dir: tempfile::TempDir,
    key_file: String,
}

async fn app_sim(ttl: Duration, installations: &[(u64, &[&str])]) -> App {
    let (private_pem, public_der) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("app.pem");
    std::fs::write(&key_file, private_pem).unwrap();
    let mut app = AppConfig::new(APP_ID, public_der);
    app.token_ttl = ttl;
    for (id, repos) in installations {
        app = app.installation(*id, repos);
    }
    let sim = GithubSim::start(GithubConfig::default().app(app))
        .await
        .unwrap();
    App {
        sim,
        _dir: dir,
        key_file: key_file.display().to_string(),
    }
}

fn app_client(a: &App) -> GithubClient {
    GithubClient::new(
        &Section {
            api_url: a.sim.base_url(),
            app_id: Some(APP_ID.into()),
            private_key_file: Some(a.key_file.clone()),
            ..Default::default()
        },
        &HttpOptions::default(),
    )
}

/// A finished failed run of `repo` and the event naming it.
async fn failed_run(sim: &GithubSim, repo: &str) -> FailureEvent {
    let spec = RunSpec::new(repo, "ci.yml").job(JobSpec::new("test").fails("npm ERR! ECONNRESET"));
    let run = sim.start_run(spec).await.unwrap();
    sim.wait_run(run, WAIT).await.unwrap();
    FailureEvent {
        repository: repo.into(),
        run_id: run.to_string(),
        attempt: 1,
        branch: Some("main".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn installation_token_is_fetched_once_and_renewed_before_it_expires() {
    // Renewal is due 5 minutes before expiry: a token living 5 min + 2 s is renewed after 2 s.
    let a = app_sim(Duration::from_secs(302), &[(1, &["acme/api"])]).await;
    let ev = failed_run(&a.sim, "acme/api").await;
    let gh = app_client(&a);
    let (r1, r2, r3) = tokio::join!(gh.run_state(&ev), gh.run_state(&ev), gh.failed_logs(&ev));
    r1.unwrap();
    r2.unwrap();
    assert!(!r3.unwrap().is_empty(), "the failed job's log is read");
    gh.run_state(&ev).await.unwrap();
    assert_eq!(
        a.sim.app_log().await.issued.get(&1),
        Some(&1),
        "concurrent first calls and later ones share one token"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gh.run_state(&ev).await.unwrap();
    gh.run_state(&ev).await.unwrap();
    assert_eq!(
        a.sim.app_log().await.issued.get(&1),
        Some(&2),
        "renewed once inside the last 5 minutes"
    );
}

#[tokio::test]
async fn calls_for_one_installation_never_carry_another_s_token() {
    let a = app_sim(
        Duration::from_secs(3600),
        &[(1, &["acme/api"]), (2, &["other/web"])],
    )
    .await;
    let ev_a = failed_run(&a.sim, "acme/api").await;
    let ev_b = failed_run(&a.sim, "other/web").await;
    let gh = app_client(&a);
    for ev in [&ev_a, &ev_b, &ev_a, &ev_b] {
        gh.run_state(ev).await.unwrap();
        gh.failed_logs(ev).await.unwrap();
    }
    gh.retry(&ev_b, &[], true).await.unwrap();
    let log = a.sim.app_log().await;
    assert_eq!(log.issued.get(&1), Some(&1));
    assert_eq!(log.issued.get(&2), Some(&1));
    assert!(log.calls.len() >= 9, "{:?}", log.calls);
    for (repo, installation) in &log.calls {
        let expected = if repo == "acme/api" { 1 } else { 2 };
        assert_eq!(
            *installation, expected,
            "{repo} called with another's token"
        );
    }
    // The stand-in itself refuses a token on a repository of another installation.
    let a_token = "ghs_sim_1_1";
    let r = reqwest::Client::new()
        .get(format!(
            "{}/repos/other/web/actions/runs/{}",
            a.sim.base_url(),
            ev_b.run_id
        ))
        .bearer_auth(a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A repository the app is not installed on is named as such.
    let ev_c = FailureEvent {
        repository: "acme/elsewhere".into(),
        run_id: "1".into(),
        attempt: 1,
        ..Default::default()
    };
    let e = gh.run_state(&ev_c).await.unwrap_err();
    assert!(
        matches!(&e, PlatformError::NotConfigured(m) if m.contains("not installed on acme/elsewhere")),
        "{e}"
    );
}

#[tokio::test]
async fn the_app_jwt_is_rs256_from_the_app_with_a_backdated_iat_and_a_short_life() {
    let a = app_sim(Duration::from_secs(3600), &[(7, &["acme/api"])]).await;
    let ev = failed_run(&a.sim, "acme/api").await;
    let gh = app_client(&a);
    gh.run_state(&ev).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let log = a.sim.app_log().await;
    assert_eq!(
        log.jwt_claims.len(),
        2,
        "installation lookup and token exchange"
    );
    for c in &log.jwt_claims {
        assert_eq!(c["iss"], APP_ID);
        let iat = c["iat"].as_i64().unwrap();
        let exp = c["exp"].as_i64().unwrap();
        assert!((55..=65).contains(&(now - iat)), "iat {iat}, now {now}");
        assert!(exp > now && exp - now <= 600, "exp {exp}, now {now}");
    }
    let app = gh.app().unwrap().unwrap();
    assert_eq!(
        app.describe().await.unwrap()["permissions"]["checks"],
        "write"
    );

    // A JWT signed with another key is refused by the stand-in, so the call fails.
    let (other_pem, _) = rsa_key();
    std::fs::write(&a.key_file, other_pem).unwrap();
    let e = app_client(&a).run_state(&ev).await.unwrap_err();
    assert!(
        matches!(&e, PlatformError::Refused { status: 401, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_personal_access_token_works_as_before_without_an_app() {
    let a = app_sim(Duration::from_secs(3600), &[(1, &["acme/api"])]).await;
    let ev = failed_run(&a.sim, "acme/api").await;
    let gh = GithubClient::new(
        &Section {
            api_url: a.sim.base_url(),
            token: Some(GithubConfig::default().token),
            ..Default::default()
        },
        &HttpOptions::default(),
    );
    assert!(gh.app().is_none());
    gh.run_state(&ev).await.unwrap();
    assert!(!gh.failed_logs(&ev).await.unwrap().is_empty());
    gh.retry(&ev, &[], true).await.unwrap();
    let log = a.sim.app_log().await;
    assert!(log.issued.is_empty() && log.jwt_claims.is_empty() && log.calls.is_empty());
}

#[test]
fn a_bad_app_key_is_a_clear_configuration_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("notes.pem");
    std::fs::write(&not_a_key, "not a key").unwrap();
    let missing = dir.path().join("missing.pem");
    let load = |github: &str| {
        let file = dir.path().join("pipeguard.toml");
        std::fs::write(&file, format!("[github]\n{github}\n")).unwrap();
        pipeguard_server::config::Config::load(Some(&file))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let e = load(&format!(
        "app_id = 1\nprivate_key_file = {:?}",
        not_a_key.display().to_string()
    ))
    .unwrap_err();
    assert!(
        e.contains("private_key_file") && e.contains("notes.pem") && e.contains("not a PEM"),
        "{e}"
    );
    let e = load(&format!(
        "app_id = 1\nprivate_key_file = {:?}",
        missing.display().to_string()
    ))
    .unwrap_err();
    assert!(
        e.contains("missing.pem") && e.contains("cannot read"),
        "{e}"
    );
    let e = load("app_id = \"Iv1.abc\"").unwrap_err();
    assert!(e.contains("needs private_key_file"), "{e}");

    let (pem, _) = rsa_key();
    let good = dir.path().join("app.pem");
    std::fs::write(&good, pem).unwrap();
    load(&format!(
        "app_id = 1\nprivate_key_file = {:?}",
        good.display().to_string()
    ))
    .unwrap();
}

fn session(id: &str) -> pipeguard_store::SessionRecord {
    pipeguard_store::SessionRecord {
        id: id.into(),
        platform: "github".into(),
        repository: "octo/app".into(),
        run_id: "42".into(),
        first_attempt: 1,
        current_attempt: 1,
        heal_attempts: 1,
        status: pipeguard_store::SessionStatus::Healed,
        category: Some("network_timeout".into()),
        confidence: Some(0.9),
        fingerprint: None,
        strategy: Some("retry".into()),
        diagnosis: None,
        plan: None,
        reason: None,
        event: FailureEvent::default(),
        workflow: "CI".into(),
        head_sha: Some("abc123".into()),
        failed_at: 0,
        finished_at: None,
        time_to_green_ms: Some(130_000),
        created_at: 0,
        updated_at: 0,
        purged_at: None,
        target: None,
        incident_id: None,
    }
}

/// The session's check run is created once with the app's installation token, then updated
/// in place when the session heals.
#[tokio::test]
async fn a_session_s_check_run_is_created_with_the_app_then_updated_when_it_heals() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let gh = MockServer::start().await;
    let (pem, _) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("app.pem");
    std::fs::write(&key_file, pem).unwrap();
    let mut config = pipeguard_server::config::Config::default();
    let section = config.platform_mut(pipeguard_core::Platform::Github);
    section.api_url = gh.uri();
    section.app_id = Some(APP_ID.into());
    section.private_key_file = Some(key_file.display().to_string());
    let ch = pipeguard_server::tenants::NotifyConfig {
        kind: "github_check".into(),
        url: "https://pipeguard.example".into(),
        ..Default::default()
    };
    let mount = |m: Mock| m.mount(&gh);
    mount(
        Mock::given(method("GET"))
            .and(path("/repos/octo/app/installation"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 5}))),
    )
    .await;
    mount(
        Mock::given(method("POST"))
            .and(path("/app/installations/5/access_tokens"))
            .respond_with(ResponseTemplate::new(201).set_body_json(
                serde_json::json!({"token": "ghs_five", "expires_at": "2099-01-01T00:00:00Z"}),
            )),
    )
    .await;
    let list = |runs: serde_json::Value| {
        Mock::given(method("GET"))
            .and(path("/repos/octo/app/commits/abc123/check-runs"))
            .and(header("authorization", "Bearer ghs_five"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"total_count": 0, "check_runs": runs})),
            )
    };
    mount(list(serde_json::json!([])).up_to_n_times(1)).await;
    mount(list(serde_json::json!([{"id": 9, "external_id": "s1"}]))).await;
    for (m, p, status) in [
        ("POST", "/repos/octo/app/check-runs", 201),
        ("PATCH", "/repos/octo/app/check-runs/9", 200),
    ] {
        mount(
            Mock::given(method(m))
                .and(path(p))
                .and(header("authorization", "Bearer ghs_five"))
                .respond_with(
                    ResponseTemplate::new(status).set_body_json(serde_json::json!({"id": 9})),
                ),
        )
        .await;
    }
    let http = HttpOptions::default();
    let mut s = session("s1");
    s.status = pipeguard_store::SessionStatus::Escalated;
    s.reason = Some("the deploy job waits".into());
    pipeguard_server::notify::platform::send(&config, &http, &ch, &s, "escalated")
        .await
        .unwrap();
    let s = session("s1");
    pipeguard_server::notify::platform::send(&config, &http, &ch, &s, "healed")
        .await
        .unwrap();
    let calls = gh.received_requests().await.unwrap();
    let writes: Vec<_> = calls
        .iter()
        .filter(|r| r.url.path().contains("check-runs") && r.method.as_str() != "GET")
        .collect();
    assert_eq!(writes.len(), 2, "one create, one update");
    let created: serde_json::Value = serde_json::from_slice(&writes[0].body).unwrap();
    assert_eq!(writes[0].method.as_str(), "POST");
    assert_eq!(created["conclusion"], "failure");
    assert_eq!(created["head_sha"], "abc123");
    assert_eq!(created["external_id"], "s1");
    let updated: serde_json::Value = serde_json::from_slice(&writes[1].body).unwrap();
    assert_eq!(writes[1].method.as_str(), "PATCH");
    assert_eq!(updated["conclusion"], "success");
    assert_eq!(
        updated["output"]["title"],
        "network_timeout: healed by retry after 2 m 10 s"
    );
    let exchanges = calls
        .iter()
        .filter(|r| r.url.path() == "/app/installations/5/access_tokens")
        .count();
    assert_eq!(exchanges, 1, "the installation token is reused");
}
