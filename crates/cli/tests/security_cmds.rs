//! `pipeguard audit verify`, `rotate-key` and `purge` on SQLite databases filled through the
//! store, as the server fills them.

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{
    AuditAnchor, AuditEntry, Intake, Keyring, SessionStatus, SessionUpdate, Store,
};
use pipeguard_store::{AuditQuery, Transition};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const DAY: i64 = 86_400_000;

fn url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("p.db").display())
}

/// Runs the binary in `dir` (so no ./pipeguard.toml is read) with a clean environment.
fn pipeguard(dir: &Path, args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("PIPEGUARD_DATABASE_URL")
        .env_remove("PIPEGUARD_ENCRYPTION_KEY");
    if let Some(k) = key {
        cmd.env("PIPEGUARD_ENCRYPTION_KEY", k);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A closed session of `repo` that finished `age_days` ago, with a log.
async fn session(store: &Store, repo: &str, run: &str, age_days: i64) -> String {
    let ev = FailureEvent {
        platform: Some(Platform::Github),
        repository: repo.into(),
        run_id: run.into(),
        attempt: 1,
        log: Some("error: connection reset by peer".into()),
        ..Default::default()
    };
    let r = store
        .intake(
            Platform::Github,
            &format!("{repo}{run}"),
            run,
            Intake::Failure(ev),
        )
        .await
        .unwrap();
    let id = r.outcome.session_id().unwrap().to_string();
    let t = Transition::fixture(&[SessionStatus::Received], SessionStatus::Escalated, "t");
    let u = SessionUpdate {
        finished_at: Some(pipeguard_store::now_ms() - age_days * DAY),
        ..Default::default()
    };
    assert!(store.update_session(&id, t, u).await.unwrap());
    id
}

/// The store as the server opens it: the audit key file and head file beside the database.
async fn server_store(dir: &Path) -> Store {
    let anchor = AuditAnchor::files(&dir.join("p.db"), None, true).unwrap();
    Store::connect(&url(dir))
        .await
        .unwrap()
        .with_audit_anchor(anchor)
}

async fn filled(dir: &Path) -> Store {
    filled_with(dir, 3).await
}

async fn filled_with(dir: &Path, n: usize) -> Store {
    let store = server_store(dir).await;
    for i in 0..n {
        let e = AuditEntry::new(
            "user:alice",
            "approval.granted",
            &format!("s{i}"),
            json!({}),
        );
        store.audit(e).await.unwrap();
    }
    store
}

#[tokio::test]
async fn audit_verify_passes_names_the_bad_entry_and_pins_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path()).await;
    store.seal_audit().await.unwrap();
    let db = url(dir.path());
    let args = ["audit", "verify", "--database-url", &db];
    let ok = pipeguard(dir.path(), &args, None);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("intact: 3 sealed entries"), "{out}");
    let pin = out
        .split("--expect-head ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(pin.starts_with("3:"), "{pin}");

    // JSON for machines.
    let json_out = pipeguard(
        dir.path(),
        &[&args[..], &["--format", "json"]].concat(),
        None,
    );
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["head"]["seq"], 3);

    // An edit: exit 1, the entry named.
    sqlx::query("UPDATE audit_log SET target = 'other' WHERE seq = 2")
        .execute(store.pool())
        .await
        .unwrap();
    let bad = pipeguard(dir.path(), &args, None);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("BROKEN at seq 2"), "{}", text(&bad));
    assert!(text(&bad).contains("edited"), "{}", text(&bad));

    // A cut tail: the head file beside the key names it; so does a recorded head.
    sqlx::query("UPDATE audit_log SET target = 's1' WHERE seq = 2")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(store.pool())
        .await
        .unwrap();
    let cut = pipeguard(dir.path(), &args, None);
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut));
    assert!(
        text(&cut).contains("head file says seq 3, the table ends at seq 2"),
        "{}",
        text(&cut)
    );
    let pinned = [&args[..], &["--expect-head", &pin]].concat();
    let cut = pipeguard(dir.path(), &pinned, None);
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut));
    assert!(text(&cut).contains("chain ends at seq 2"), "{}", text(&cut));

    let malformed = pipeguard(
        dir.path(),
        &[&args[..], &["--expect-head", "3"]].concat(),
        None,
    );
    assert_eq!(malformed.status.code(), Some(2));
    assert!(
        text(&malformed).contains("SEQ:HASH"),
        "{}",
        text(&malformed)
    );
}

/// The attacks of issue 23 on a trail the server sealed: delete the last entry, the last 50,
/// all; edit entry 30 and remove the seals from there so the sealer would re-chain them.
#[tokio::test]
async fn audit_verify_finds_a_cut_tail_and_removed_seals() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled_with(dir.path(), 60).await;
    assert_eq!(store.seal_audit().await.unwrap(), 60);
    let db = url(dir.path());
    let args = ["audit", "verify", "--database-url", &db];
    assert!(pipeguard(dir.path(), &args, None).status.success());
    for (from, ends) in [(60, 59), (10, 9), (1, 0)] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM audit_log WHERE seq >= {from}"
        )))
        .execute(store.pool())
        .await
        .unwrap();
        let out = pipeguard(dir.path(), &args, None);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let want = format!("head file says seq 60, the table ends at seq {ends}");
        assert!(text(&out).contains(&want), "{}", text(&out));
    }

    let dir = tempfile::tempdir().unwrap();
    let store = filled_with(dir.path(), 60).await;
    store.seal_audit().await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'nobody' WHERE seq = 30",
        "UPDATE audit_log SET seq = NULL, hash = NULL, prev_hash = NULL WHERE seq >= 30",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    // The server's sealer, restarted, refuses to chain them again.
    let restarted = server_store(dir.path()).await;
    assert!(restarted.seal_audit().await.is_err());
    let out = pipeguard(
        dir.path(),
        &["audit", "verify", "--database-url", &url(dir.path())],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("head file says seq 60"),
        "{}",
        text(&out)
    );
}

#[test]
fn audit_verify_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = url(dir.path());
    let out = pipeguard(
        dir.path(),
        &["audit", "verify", "--database-url", &db],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert!(!dir.path().join("p.db").exists());
    // Nor does the default database, when nothing is configured.
    let out = pipeguard(dir.path(), &["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("pipeguard.db").exists());
}

#[tokio::test]
async fn purge_by_age_and_by_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path()).await;
    let old = session(&store, "o/a", "1", 40).await;
    let recent = session(&store, "o/a", "2", 2).await;
    let other = session(&store, "o/b", "1", 1).await;
    let db = url(dir.path());
    let run = |extra: &[&str]| {
        let args = [&["purge", "--database-url", db.as_str()][..], extra].concat();
        pipeguard(dir.path(), &args, None)
    };
    let out = run(&["--older-than", "30d"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("purged 1 sessions"), "{}", text(&out));
    let log = |id: String| {
        let store = store.clone();
        async move { store.get_session(&id).await.unwrap().unwrap().event.log }
    };
    assert_eq!(log(old.clone()).await, None);
    assert!(log(recent.clone()).await.is_some());

    let out = run(&["--repository", "o/b", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"], 1);
    assert_eq!(log(other).await, None);
    assert!(log(recent).await.is_some());
    let purges = store
        .audit_entries(&AuditQuery {
            action: Some("data.purged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(purges.len(), 2);
    assert!(purges[0].actor.starts_with("cli"), "{}", purges[0].actor);

    for bad in [&["--older-than", "30x"][..], &["--older-than", "0d"], &[]] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }
    let out = run(&["--older-than", "thirty"]);
    assert!(text(&out).contains("unit"), "{}", text(&out));
}

#[tokio::test]
async fn rotate_key_re_encrypts_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_text) = Keyring::generate();
    let (b, b_text) = Keyring::generate();
    let plain = filled(dir.path()).await;
    let store = plain.clone().with_encryption(a.clone());
    let id = session(&store, "o/a", "1", 1).await;
    let key_file = dir.path().join("new.key");
    std::fs::write(&key_file, format!("{b_text}\n")).unwrap();
    let db = url(dir.path());
    let key_path = key_file.display().to_string();
    let args = [
        "rotate-key",
        "--new-key-file",
        &key_path,
        "--database-url",
        &db,
    ];

    // Without the current key the old values cannot be read: a clear error, nothing changed.
    let out = pipeguard(dir.path(), &args, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("PIPEGUARD_ENCRYPTION_KEY"),
        "{}",
        text(&out)
    );

    let out = pipeguard(dir.path(), &args, Some(&a_text));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(b.current_id()), "{}", text(&out));
    let with_b = plain.clone().with_encryption(b);
    let s = with_b.get_session(&id).await.unwrap().unwrap();
    assert!(s.event.log.unwrap().contains("connection reset"));
    assert!(
        store.get_session(&id).await.is_err(),
        "key A no longer opens it"
    );

    let out = pipeguard(
        dir.path(),
        &["rotate-key", "--database-url", &db],
        Some(&a_text),
    );
    assert_eq!(out.status.code(), Some(2), "a new key is required");
}
