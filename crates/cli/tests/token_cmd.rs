//! `pipeguard token create|list|revoke` against a SQLite database: changes are audited like
//! the API's, and the listing shows whole timestamps.

use pipeguard_store::{AuditQuery, Store};
use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary in `dir` (no ./pipeguard.toml) as the user `tester`.
fn pipeguard(dir: &Path, args: &[&str]) -> Output {
    let db = format!("sqlite://{}", dir.join("p.db").display());
    Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .args(args)
        .current_dir(dir)
        .env("PIPEGUARD_DATABASE_URL", db)
        .env_remove("PIPEGUARD_ENCRYPTION_KEY")
        .env("USER", "tester")
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[tokio::test]
async fn created_and_revoked_tokens_are_audited_as_the_cli_user() {
    let dir = tempfile::tempdir().unwrap();
    ok(pipeguard(
        dir.path(),
        &["token", "create", "--role", "operator", "--name", "alice"],
    ));
    ok(pipeguard(dir.path(), &["token", "revoke", "alice"]));
    // A refused revocation changes nothing and records nothing.
    assert!(!pipeguard(dir.path(), &["token", "revoke", "alice"])
        .status
        .success());

    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url).await.unwrap();
    let q = |action: &str| AuditQuery {
        action: Some(action.into()),
        ..Default::default()
    };
    let created = store.audit_entries(&q("token.created")).await.unwrap();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        (created[0].actor.as_str(), created[0].target.as_str()),
        ("cli:tester", "alice")
    );
    assert_eq!(created[0].detail["role"], "operator");
    let revoked = store.audit_entries(&q("token.revoked")).await.unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].actor, "cli:tester");
    assert_eq!(revoked[0].target, "alice");
}

#[test]
fn the_listing_shows_whole_rfc3339_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    ok(pipeguard(
        dir.path(),
        &["token", "create", "--role", "viewer", "--name", "bob"],
    ));
    let listed = ok(pipeguard(dir.path(), &["token", "list"]));
    let row = listed.lines().find(|l| l.starts_with("bob ")).unwrap();
    let created = row.split_whitespace().nth(2).unwrap();
    let parsed =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339);
    assert!(parsed.is_ok(), "{created:?} in {row:?}");
    assert_eq!(created.len(), "2026-12-07T03:10:58Z".len(), "{row:?}");
    assert_eq!(row.split_whitespace().nth(3), Some("-"), "never used");
}
