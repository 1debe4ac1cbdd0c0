//! The first hour: `init` writes a configuration the server reads, `completions` prints a
//! script, `doctor` checks credentials against (mocked) platform APIs.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Output;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn init_writes_a_configuration_the_server_reads_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(["init", "--platform", "github,gitlab,jenkins"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(dir.path().join("pipeguard.toml")).unwrap();
    let cfg = pipeguard_server::config::Config::from_toml(&written).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:8080");
    for section in ["[github]", "[gitlab]", "[jenkins]"] {
        assert!(written.contains(section), "{section} missing");
    }
    assert!(
        !written.contains("[circleci]"),
        "only the platforms asked for"
    );
    assert!(written.contains("PIPEGUARD_GITHUB_TOKEN"), "{written}");
    assert!(written.contains("/webhooks/gitlab"), "{written}");

    std::fs::write(dir.path().join("pipeguard.toml"), "# mine\n").unwrap();
    let again = bin(dir.path())
        .args(["init", "--platform", "circleci"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pipeguard.toml")).unwrap(),
        "# mine\n"
    );
    let forced = bin(dir.path())
        .args(["init", "--platform", "circleci", "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    let replaced = std::fs::read_to_string(dir.path().join("pipeguard.toml")).unwrap();
    assert!(replaced.contains("[circleci]"));

    let bad = bin(dir.path())
        .args(["init", "--platform", "travis", "-o", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("not a platform"), "{}", text(&bad));
    assert!(!dir.path().join("x.toml").exists());
}

#[test]
fn the_example_configuration_is_inits_output_for_every_platform_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let all = "github,gitlab,jenkins,circleci,buildbot,buildkite,azure,teamcity,ansible,generic";
    let out = bin(dir.path())
        .args(["init", "--platform", all, "--output", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let generated = String::from_utf8(out.stdout).unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/pipeguard.example.toml");
    let committed = std::fs::read_to_string(&example).unwrap();
    assert_eq!(
        committed, generated,
        "regenerate with: pipeguard init --platform {all} -o contrib/pipeguard.example.toml --force"
    );
    let cfg = pipeguard_server::config::Config::from_toml(&committed).unwrap();
    assert_eq!(cfg.healing.max_attempts, 2);
    assert_eq!(cfg.approvals.required, 1);
    // A new installation observes first; `pipeguard mode set` switches repositories to act.
    assert_eq!(cfg.healing.mode, pipeguard_core::planner::Mode::Observe);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pipeguard"),
        ("fish", "complete -c pipeguard"),
    ] {
        let out = bin(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("doctor") && script.contains("demo"),
            "{shell}"
        );
    }
}

/// A GitHub and a GitLab that accept the tokens; `gitlab_scopes` are the GitLab token's.
async fn platforms(gitlab_scopes: &[&str]) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .and(header("authorization", "Bearer ghp_good"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-OAuth-Scopes", "repo, workflow")
                .set_body_json(json!({"login": "octocat"})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"full_name": "octo/app", "permissions": {"admin": false, "push": false, "pull": true}}),
        ))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("private-token", "glpat-good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"username": "bot"})))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/personal_access_tokens/self"))
        .and(header("private-token", "glpat-good"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "pipeguard", "scopes": gitlab_scopes})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/me"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid token provided."})),
        )
        .mount(&mock)
        .await;
    mock
}

fn config(dir: &Path, mock: &MockServer, repos: &str) -> std::path::PathBuf {
    let db = dir.join("pipeguard.db");
    let p = dir.join("pipeguard.toml");
    std::fs::write(
        &p,
        format!(
            "database_url = \"sqlite://{}\"\n\
             [github]\napi_url = \"{uri}\"\ntoken = \"ghp_good\"\nwebhook_secret = \"s\"\n\
             [gitlab]\napi_url = \"{uri}\"\ntoken = \"glpat-good\"\nwebhook_secret = \"s\"\n{repos}",
            db.display(),
            uri = mock.uri()
        ),
    )
    .unwrap();
    p
}

async fn doctor(dir: &Path, cfg: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut c = bin(dir);
    c.args(["doctor", "--config"]).arg(cfg);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn doctor_passes_with_good_tokens_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mock = platforms(&["api", "read_user"]).await;
    let cfg = config(dir.path(), &mock, "");
    let out = doctor(dir.path(), &cfg, &[]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("github: token of octocat"), "{t}");
    assert!(t.contains("classic token scopes: repo, workflow"), "{t}");
    assert!(t.contains("gitlab: token of bot"), "{t}");
    assert!(t.contains("token scopes: api, read_user"), "{t}");
    assert!(t.contains("does not exist yet"), "the database: {t}");
    assert!(
        !dir.path().join("pipeguard.db").exists(),
        "doctor creates no database"
    );
    let calls = mock.received_requests().await.unwrap();
    assert!(calls
        .iter()
        .any(|r| r.url.path() == "/api/v4/personal_access_tokens/self"));

    // A read-only GitLab token, a repository it may not re-run in, a refused CircleCI token.
    let mock = platforms(&["read_api"]).await;
    let cfg = config(
        dir.path(),
        &mock,
        "[[repos]]\nplatform = \"github\"\nname = \"octo/app\"\n",
    );
    let out = doctor(
        dir.path(),
        &cfg,
        &[
            ("PIPEGUARD_CIRCLECI_TOKEN", "bad"),
            ("PIPEGUARD_CIRCLECI_API_URL", &mock.uri()),
        ],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("MISSING  gitlab: token lacks the api scope(s) (has: read_api)"),
        "{t}"
    );
    assert!(
        t.contains("MISSING  github: octo/app: read-only access"),
        "{t}"
    );
    assert!(t.contains("MISSING  circleci: GET /api/v2/me: 401"), "{t}");
    assert!(t.contains("circleci: no webhook secret"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[tokio::test]
async fn doctor_with_nothing_configured_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let out = doctor(dir.path(), &cfg, &[]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("pipeguard init"), "{t}");
}
