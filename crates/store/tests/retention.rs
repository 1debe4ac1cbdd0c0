//! Retention on SQLite and on a fresh PostgreSQL database: old or chosen sessions lose their
//! payloads, logs and evidence, keep their statistics, and open sessions are left alone.

#[macro_use]
mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{
    AuditQuery, Intake, IntakeOutcome, Keyring, PurgeFilter, SessionStatus, SessionUpdate, Store,
    StoreError, Transition, VerdictRecord,
};
use serde_json::json;
use sqlx::Row;

const DAY: i64 = 86_400_000;

fn failure(repo: &str, run: &str) -> Intake {
    Intake::Failure(FailureEvent {
        platform: Some(Platform::Github),
        repository: repo.into(),
        run_id: run.into(),
        attempt: 1,
        log: Some("npm ERR! network timeout".into()),
        error_message: Some("exit 1".into()),
        target_hosts: vec!["web1".into()],
        ..Default::default()
    })
}

/// A session of `repo`, closed `age_days` ago (or left open), with a diagnosis, a verdict and
/// its finished first job.
async fn session(store: &Store, repo: &str, run: &str, age_days: Option<i64>) -> String {
    let delivery = format!("{repo}-{run}");
    let r = store
        .intake(Platform::Github, &delivery, run, failure(repo, run))
        .await
        .unwrap();
    let id = r.outcome.session_id().unwrap().to_string();
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    store.finish_job(job.id).await.unwrap();
    let to = if age_days.is_some() {
        SessionStatus::Escalated
    } else {
        SessionStatus::AwaitingApproval
    };
    let u = SessionUpdate {
        category: Some("network".into()),
        fingerprint: Some("fp-net".into()),
        strategy: Some("retry".into()),
        diagnosis: Some(json!({"evidence": ["npm ERR! network timeout"]})),
        finished_at: age_days.map(|d| pipeguard_store::now_ms() - d * DAY),
        ..Default::default()
    };
    let t = Transition::fixture(&[SessionStatus::Received], to, "t");
    assert!(store.update_session(&id, t, u).await.unwrap());
    store
        .put_verdict(&VerdictRecord {
            session_id: id.clone(),
            category: "network".into(),
            diagnosed_category: Some("network".into()),
            diagnosed_by: Some("rules".into()),
            note: String::new(),
            evidence: "npm ERR! network timeout".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    id
}

async fn count(store: &Store, sql: &str, id: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn assert_purged(store: &Store, id: &str) {
    let s = store.get_session(id).await.unwrap().unwrap();
    assert!(s.purged_at.is_some(), "{id} not purged");
    assert_eq!((s.event.log, s.event.error_message), (None, None));
    assert_eq!(s.diagnosis, None);
    // What statistics and learning need stays.
    assert_eq!(s.status, SessionStatus::Escalated);
    assert_eq!(s.category.as_deref(), Some("network"));
    assert_eq!(s.fingerprint.as_deref(), Some("fp-net"));
    assert_eq!(s.strategy.as_deref(), Some("retry"));
    assert_eq!(s.event.target_hosts, ["web1"]);
    assert!(s.finished_at.is_some());
    let v = store.verdict(id).await.unwrap().unwrap();
    assert_eq!((v.category.as_str(), v.evidence.as_str()), ("network", ""));
    let jobs = count(
        store,
        "SELECT COUNT(*) AS n FROM jobs WHERE session_id = $1",
        id,
    )
    .await;
    let deliveries = count(
        store,
        "SELECT COUNT(*) AS n FROM deliveries WHERE session_id = $1",
        id,
    )
    .await;
    assert_eq!((jobs, deliveries), (0, 0));
}

async fn assert_kept(store: &Store, id: &str) {
    let s = store.get_session(id).await.unwrap().unwrap();
    assert_eq!(s.purged_at, None);
    assert!(
        s.event.log.is_some() && s.diagnosis.is_some(),
        "{id} lost data"
    );
    let v = store.verdict(id).await.unwrap().unwrap();
    assert!(!v.evidence.is_empty());
}

async fn old_sessions_are_purged_by_age(store: Store) {
    let old = session(&store, "o/a", "1", Some(40)).await;
    let recent = session(&store, "o/a", "2", Some(5)).await;
    let open = session(&store, "o/a", "3", None).await;
    let counts_before = store.outcome_counts().await.unwrap();
    let f = PurgeFilter {
        finished_before_ms: Some(pipeguard_store::now_ms() - 30 * DAY),
        repository: None,
    };
    let report = store.purge(&f, "retention").await.unwrap();
    assert_eq!((report.sessions, report.verdicts), (1, 1));
    assert!(report.jobs >= 1 && report.deliveries >= 1, "{report:?}");
    assert_purged(&store, &old).await;
    assert_kept(&store, &recent).await;
    assert_kept(&store, &open).await;
    assert_eq!(store.outcome_counts().await.unwrap(), counts_before);

    // Idempotent: nothing more to purge; the purges are in the audit trail.
    let again = store.purge(&f, "retention").await.unwrap();
    assert_eq!(again.sessions, 0);
    let audit = store
        .audit_entries(&AuditQuery {
            action: Some("data.purged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].actor, "retention");
    assert_eq!(audit[1].detail["report"]["sessions"], 1);

    // A late redelivery of the purged session's failure starts nothing new.
    let late = store
        .intake(Platform::Github, "redelivered", "1", failure("o/a", "1"))
        .await
        .unwrap();
    assert!(
        matches!(late.outcome, IntakeOutcome::Duplicate { ref session_id, .. } if *session_id == old),
        "{late:?}"
    );
}

async fn a_repository_is_purged_but_not_its_open_sessions(store: Store) {
    let closed = session(&store, "o/b", "1", Some(1)).await;
    let open = session(&store, "o/b", "2", None).await;
    let other = session(&store, "o/c", "1", Some(90)).await;
    let f = PurgeFilter {
        finished_before_ms: None,
        repository: Some("o/b".into()),
    };
    let report = store.purge(&f, "cli:ops").await.unwrap();
    assert_eq!((report.sessions, report.open_skipped), (1, 1));
    assert_purged(&store, &closed).await;
    assert_kept(&store, &open).await;
    assert_kept(&store, &other).await;
}

async fn a_filter_is_required(store: Store) {
    let e = store
        .purge(&PurgeFilter::default(), "cli")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
}

async fn encrypted_sessions_are_purged_and_stay_sealed(store: Store) {
    let (key, _) = Keyring::generate();
    let store = store.with_encryption(key.clone());
    let old = session(&store, "o/a", "1", Some(40)).await;
    let f = PurgeFilter {
        finished_before_ms: Some(pipeguard_store::now_ms() - 30 * DAY),
        repository: None,
    };
    assert_eq!(store.purge(&f, "retention").await.unwrap().sessions, 1);
    assert_purged(&store, &old).await;
    let raw: String = sqlx::query("SELECT event FROM sessions WHERE id = $1")
        .bind(&old)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("event")
        .unwrap();
    assert!(raw.starts_with(&format!("enc:v1:{}:", key.current_id())));
}

on_both_backends!(
    old_sessions_are_purged_by_age,
    a_repository_is_purged_but_not_its_open_sessions,
    a_filter_is_required,
    encrypted_sessions_are_purged_and_stay_sealed,
);
