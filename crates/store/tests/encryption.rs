//! Encryption at rest on SQLite and on a fresh PostgreSQL database: what is written is sealed
//! in the raw columns, reads back equal, fails clearly with a wrong key, survives rotation,
//! and plaintext rows from before encryption stay readable.

#[macro_use]
mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{
    Intake, Keyring, SessionStatus, SessionUpdate, Store, StoreError, Task, Transition,
    VerdictRecord,
};
use serde_json::json;
use sqlx::Row;

/// Text that must never appear in a raw column once encryption is on.
const MARKER: &str = "PLAINTEXT-MARKER-4417";
/// A secret a log carried: redacted before it is stored at all.
const SECRET: &str = "hunter2hunter2";

fn failure(run: &str) -> Intake {
    Intake::Failure(FailureEvent {
        platform: Some(Platform::Github),
        repository: "o/r".into(),
        run_id: run.into(),
        attempt: 1,
        log: Some(format!("step 1\n{MARKER} failed\npassword={SECRET}\n")),
        error_message: Some(format!("exit 1 {MARKER}")),
        ..Default::default()
    })
}

/// A session with an event, a diagnosis, a verdict and a queued job: every encrypted column.
async fn write_all(store: &Store, run: &str) -> String {
    let r = store
        .intake(Platform::Github, &format!("d{run}"), run, failure(run))
        .await
        .unwrap();
    let id = r.outcome.session_id().unwrap().to_string();
    let moved = store
        .update_session(
            &id,
            Transition::fixture(&[SessionStatus::Received], SessionStatus::Escalated, "t"),
            SessionUpdate {
                diagnosis: Some(json!({"evidence": [MARKER]})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(moved);
    store
        .put_verdict(&VerdictRecord {
            session_id: id.clone(),
            category: "network".into(),
            diagnosed_category: None,
            diagnosed_by: None,
            note: String::new(),
            evidence: format!("{MARKER} evidence"),
            created_at: 0,
        })
        .await
        .unwrap();
    id
}

/// Every non-null value of the encrypted columns, as stored.
async fn raw_values(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT event AS v FROM sessions",
        "SELECT diagnosis AS v FROM sessions WHERE diagnosis IS NOT NULL",
        "SELECT evidence AS v FROM verdicts",
        "SELECT payload AS v FROM jobs",
    ] {
        for r in sqlx::query(sql).fetch_all(store.pool()).await.unwrap() {
            out.push(r.try_get("v").unwrap());
        }
    }
    out
}

fn assert_sealed_with(values: &[String], key_id: &str) {
    assert!(values.len() >= 4, "{values:?}");
    for v in values {
        assert!(
            v.starts_with(&format!("enc:v1:{key_id}:")),
            "not sealed: {v:.80}"
        );
        assert!(!v.contains(MARKER) && !v.contains(SECRET), "{v:.80}");
    }
}

async fn reads_back(store: &Store, id: &str) {
    let s = store.get_session(id).await.unwrap().unwrap();
    let log = s.event.log.unwrap();
    assert!(log.contains(MARKER), "{log}");
    assert!(!log.contains(SECRET), "the secret was redacted: {log}");
    assert_eq!(s.diagnosis.unwrap()["evidence"][0], MARKER);
    let v = store.verdict(id).await.unwrap().unwrap();
    assert_eq!(v.evidence, format!("{MARKER} evidence"));
    assert!(!store.list_sessions(10, 0).await.unwrap().is_empty());
    assert!(!store.session_facts(10).await.unwrap().is_empty());
}

/// The next attempt's failure of a heal in progress is queued with its event (and log).
async fn outcome_events_are_sealed_and_redacted(store: &Store, key_id: &str) {
    let r = store
        .intake(Platform::Github, "o1", "9", failure("9"))
        .await
        .unwrap();
    let id = r.outcome.session_id().unwrap().to_string();
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    store.finish_job(job.id).await.unwrap();
    let t = Transition::fixture(&[SessionStatus::Received], SessionStatus::Verifying, "t");
    assert!(store.transition(&id, t).await.unwrap());
    let Intake::Failure(mut next) = failure("9") else {
        unreachable!()
    };
    next.attempt = 2;
    store
        .intake(Platform::Github, "o2", "9", Intake::Failure(next))
        .await
        .unwrap();
    assert_sealed_with(&raw_values(store).await, key_id);
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    let Task::Outcome {
        event: Some(ev), ..
    } = job.task
    else {
        panic!("expected an outcome with its event, got {:?}", job.task)
    };
    let log = ev.log.unwrap();
    assert!(log.contains(MARKER) && !log.contains(SECRET), "{log}");
}

fn key_error(e: StoreError, needle: &str) {
    assert!(matches!(e, StoreError::Crypto(_)), "{e:?}");
    assert!(e.to_string().contains(needle), "{e}");
}

async fn sealed_at_rest_and_read_back(plain: Store) {
    let (key, _) = Keyring::generate();
    let key_id = key.current_id().to_string();
    let store = plain.clone().with_encryption(key);
    let id = write_all(&store, "1").await;
    assert_sealed_with(&raw_values(&store).await, &key_id);
    reads_back(&store, &id).await;
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    assert_eq!(job.task, Task::Analyze);
    store.finish_job(job.id).await.unwrap();
    outcome_events_are_sealed_and_redacted(&store, &key_id).await;

    // A wrong key and no key are clear errors, not garbage.
    let (other, _) = Keyring::generate();
    let wrong = store.clone().with_encryption(other);
    key_error(
        wrong.get_session(&id).await.unwrap_err(),
        "not among the configured keys",
    );
    key_error(
        plain.get_session(&id).await.unwrap_err(),
        "PIPEGUARD_ENCRYPTION_KEY",
    );
    key_error(plain.verdict(&id).await.unwrap_err(), "verdicts.evidence");
}

async fn plaintext_rows_stay_readable_and_rotation_rewrites_everything(plain: Store) {
    // Rows from before encryption was turned on.
    let old_id = write_all(&plain, "1").await;
    let (a, a_text) = Keyring::generate();
    let with_a = plain.clone().with_encryption(a.clone());
    reads_back(&with_a, &old_id).await;
    let a_id = write_all(&with_a, "2").await;

    // During a rotation the servers run with B first and A after it: both kinds read.
    let (b, b_text) = Keyring::generate();
    let both = Keyring::parse(&format!("{b_text}\n{a_text}")).unwrap();
    let during = plain.clone().with_encryption(both);
    reads_back(&during, &old_id).await;
    reads_back(&during, &a_id).await;
    let b_id = write_all(&during, "3").await;

    let before = raw_values(&plain).await;
    let b_prefix = format!("enc:v1:{}:", b.current_id());
    let pending = before.iter().filter(|v| !v.starts_with(&b_prefix)).count() as u64;
    assert!(pending >= 8, "plaintext and A rows: {pending}");
    let report = with_a.rotate_key(&b, "cli:test").await.unwrap();
    assert_eq!(report.key_id, b.current_id());
    let rewritten: u64 = report.rewritten.iter().map(|(_, n)| n).sum();
    assert_eq!(rewritten, pending, "{report:?}");
    assert_eq!(report.already_current, before.len() as u64 - pending);
    assert_eq!(report.left_behind, 0);
    assert_sealed_with(&raw_values(&plain).await, b.current_id());

    let only_b = plain.clone().with_encryption(b.clone());
    for id in [&old_id, &a_id, &b_id] {
        reads_back(&only_b, id).await;
    }
    key_error(
        with_a.get_session(&a_id).await.unwrap_err(),
        "not among the configured keys",
    );
    // Run again (as after an interruption): nothing left to rewrite.
    let again = with_a.rotate_key(&b, "cli:test").await.unwrap();
    assert!(again.rewritten.iter().all(|(_, n)| *n == 0), "{again:?}");
    let audit = plain
        .audit_entries(&pipeguard_store::AuditQuery {
            action: Some("key.rotated".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].detail["to"], b.current_id());
    assert_eq!(audit[1].detail["from"][0], a.current_id());
}

/// Short texts (job errors, platform call details, timeline notes, reasons) are stored in the
/// clear, but never with a secret in them.
async fn secrets_in_errors_and_notes_are_redacted(store: Store) {
    let id = write_all(&store, "1").await;
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    let leak = format!("GET https://ci.example.com/api?token={SECRET} failed");
    store.fail_job(job.id, &leak).await.unwrap();
    assert!(store.claim_action(&id, 1, "run", "retry").await.unwrap());
    store
        .finish_action(&id, 1, "run", "done", &leak)
        .await
        .unwrap();
    store
        .note(&id, SessionStatus::Escalated, &leak)
        .await
        .unwrap();
    let t = Transition::fixture(&[SessionStatus::Escalated], SessionStatus::Escalated, "t");
    let u = SessionUpdate {
        reason: Some(leak.clone()),
        ..Default::default()
    };
    assert!(store.update_session(&id, t, u).await.unwrap());
    for sql in [
        "SELECT last_error AS v FROM jobs WHERE last_error IS NOT NULL",
        "SELECT detail AS v FROM actions",
        "SELECT message AS v FROM session_log",
        "SELECT reason AS v FROM sessions",
    ] {
        let rows = sqlx::query(sql).fetch_all(store.pool()).await.unwrap();
        assert!(!rows.is_empty(), "{sql}");
        for r in rows {
            let v: String = r.try_get("v").unwrap();
            assert!(!v.contains(SECRET), "{sql}: {v}");
        }
    }
}

on_both_backends!(
    sealed_at_rest_and_read_back,
    plaintext_rows_stay_readable_and_rotation_rewrites_everything,
    secrets_in_errors_and_notes_are_redacted,
);
