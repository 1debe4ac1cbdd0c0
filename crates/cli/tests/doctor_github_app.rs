//! `doctor` with a GitHub App: the app's JWT is accepted by the GitHub stand-in and the
//! app's permissions are compared with what pipeguard needs.

mod common;

use common::*;
use pipeguard_sim::github::{AppConfig, GithubConfig, GithubSim};
use serde_json::json;
use std::path::Path;

async fn doctor_with_app(
    dir: &Path,
    permissions: serde_json::Value,
    signing_key: &str,
) -> (i32, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut app =
        AppConfig::new("77", key.public_key_raw().to_vec()).installation(1, &["octo/app"]);
    app.permissions = permissions;
    let sim = GithubSim::start(GithubConfig::default().app(app))
        .await
        .unwrap();
    let pem = if signing_key.is_empty() {
        key.serialize_pem()
    } else {
        signing_key.to_string()
    };
    let key_file = dir.join("app.pem");
    std::fs::write(&key_file, pem).unwrap();
    let cfg = dir.join("pipeguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = \"sqlite://{}\"\n[github]\napi_url = \"{}\"\napp_id = 77\n\
             private_key_file = {:?}\nwebhook_secret = \"s\"\n",
            dir.join("pipeguard.db").display(),
            sim.base_url(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    let mut c = bin(dir);
    c.args(["doctor", "--config"]).arg(&cfg);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

#[tokio::test]
async fn doctor_checks_the_app_s_permissions_and_names_the_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let all = json!({"actions": "write", "checks": "write", "contents": "read",
                     "pull_requests": "write", "metadata": "read"});
    let (_, t) = doctor_with_app(dir.path(), all, "").await;
    assert!(t.contains("github: GitHub App pipeguard"), "{t}");
    assert!(t.contains("github: app permissions: actions write"), "{t}");
    assert!(!t.contains("MISSING  github"), "{t}");
    assert!(!t.contains("no token"), "an app needs no token: {t}");

    let partial = json!({"actions": "read", "contents": "read", "pull_requests": "read"});
    let (code, t) = doctor_with_app(dir.path(), partial, "").await;
    assert_eq!(code, 1, "{t}");
    assert!(
        t.contains("MISSING  github: the app lacks permission(s) actions: write, checks: write"),
        "{t}"
    );
}

#[tokio::test]
async fn doctor_says_when_github_refuses_the_app_s_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .unwrap()
        .serialize_pem();
    let (code, t) = doctor_with_app(dir.path(), json!({}), &other).await;
    assert_eq!(code, 1, "{t}");
    assert!(
        t.contains("MISSING  github: GET /app with the app's JWT"),
        "{t}"
    );
    assert!(t.contains("401"), "{t}");
}
