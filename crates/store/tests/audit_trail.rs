//! The audit trail on SQLite and on a fresh PostgreSQL database: entries written inside
//! business transactions, sealed into a hash chain, and edits or deletions named by verify.

#[macro_use]
mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{
    AuditEntry, AuditPin, AuditQuery, Intake, ProblemKind, SessionStatus, SessionUpdate, Store,
    Transition,
};
use serde_json::json;
use sqlx::Row;

fn failure(run: &str) -> Intake {
    Intake::Failure(FailureEvent {
        platform: Some(Platform::Github),
        repository: "o/r".into(),
        run_id: run.into(),
        attempt: 1,
        ..Default::default()
    })
}

use common::exec;

async fn id_at(store: &Store, seq: i64) -> i64 {
    sqlx::query("SELECT id FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("id")
        .unwrap()
}

/// Writes entries the ways the service does and seals them: five entries, seq 1 to 5.
async fn fill(store: &Store) -> String {
    let created = store
        .intake(Platform::Github, "d1", "1", failure("1"))
        .await
        .unwrap();
    let id = created.outcome.session_id().unwrap().to_string();
    // A replayed delivery is not accepted again.
    store
        .intake(Platform::Github, "d1", "1", failure("1"))
        .await
        .unwrap();
    store
        .record_ignored(Platform::Github, "d2", "ping")
        .await
        .unwrap();
    let t = |from, to| Transition::fixture(from, to, "t");
    let with_audit = |action: &str| SessionUpdate {
        audit: Some(AuditEntry::new("worker", action, &id, json!({}))),
        ..Default::default()
    };
    // Written with the transition; not when the transition does not apply.
    let moved = store
        .update_session(
            &id,
            t(&[SessionStatus::Received], SessionStatus::Analyzing),
            with_audit("session.diagnosed"),
        )
        .await
        .unwrap();
    assert!(moved);
    let moved = store
        .update_session(
            &id,
            t(&[SessionStatus::Received], SessionStatus::Planned),
            with_audit("session.planned"),
        )
        .await
        .unwrap();
    assert!(!moved);
    store
        .audit(AuditEntry::new(
            "user:alice",
            "approval.granted",
            &id,
            json!({"comment": "go", "header": "Authorization: Bearer abcdefghijklmnop123"}),
        ))
        .await
        .unwrap();
    store
        .audit(AuditEntry::new(
            "ip:10.0.0.9",
            "auth.failed",
            "/api/v1/audit",
            json!({}),
        ))
        .await
        .unwrap();
    id
}

async fn entries_are_written_sealed_and_listed(store: Store) {
    let store = &store;
    let session = fill(store).await;
    let before = store.verify_audit().await.unwrap();
    assert_eq!((before.sealed, before.unsealed), (0, 5));
    assert_eq!(store.seal_audit().await.unwrap(), 5);
    assert_eq!(store.seal_audit().await.unwrap(), 0);

    let all = store.audit_entries(&AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "webhook.accepted",
            "webhook.accepted",
            "session.diagnosed",
            "approval.granted",
            "auth.failed"
        ]
    );
    let created = all.last().unwrap();
    assert_eq!(created.actor, "webhook:github");
    assert_eq!(created.detail["delivery_id"], "d1");
    assert_eq!(created.detail["outcome"], "created");
    assert_eq!(created.target, session);
    assert_eq!(all[4].detail["outcome"], "created");
    assert_eq!(all[3].detail["outcome"], "ignored");
    assert!(
        !all[1].detail.to_string().contains("abcdefghijklmnop123"),
        "secrets are redacted: {}",
        all[1].detail
    );
    // The chain: seq in id order, each linked to the one before.
    let mut by_seq = all.clone();
    by_seq.sort_by_key(|e| e.seq);
    for (i, e) in by_seq.iter().enumerate() {
        assert_eq!(e.seq, Some(i as i64 + 1));
        if i > 0 {
            assert_eq!(e.prev_hash, by_seq[i - 1].hash);
        }
    }
    let q = |action: &str| AuditQuery {
        action: Some(action.into()),
        ..Default::default()
    };
    assert_eq!(store.audit_entries(&q("webhook.*")).await.unwrap().len(), 2);
    assert_eq!(
        store.audit_entries(&q("auth.failed")).await.unwrap().len(),
        1
    );
    let page = AuditQuery {
        limit: 2,
        offset: 1,
        ..Default::default()
    };
    let page = store.audit_entries(&page).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].id, all[1].id);

    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    let head = report.head.unwrap();
    assert_eq!(head.seq, 5);
    assert_eq!(Some(head.hash), by_seq[4].hash);
}

async fn an_edited_entry_is_named(store: Store) {
    let store = &store;
    fill(store).await;
    store.seal_audit().await.unwrap();
    let id = id_at(store, 3).await;
    exec(
        store,
        &format!("UPDATE audit_log SET actor = 'user:mallory' WHERE id = {id}"),
    )
    .await;
    let report = store.verify_audit().await.unwrap();
    let p = report.problem.expect("the edit is detected");
    assert_eq!((p.kind, p.seq, p.id), (ProblemKind::Edited, 3, Some(id)));
    assert!(p.message.contains("edited"), "{}", p.message);
    assert!(report.head.is_none());

    // Put back, the chain is whole again; an edited time is caught the same way.
    exec(
        store,
        &format!("UPDATE audit_log SET actor = 'worker' WHERE id = {id}"),
    )
    .await;
    assert!(store.verify_audit().await.unwrap().is_intact());
    exec(store, "UPDATE audit_log SET at = at + 1 WHERE seq = 5").await;
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Edited, 5));
    // A detail rewritten as something that is not JSON is still listed, and caught.
    exec(store, "UPDATE audit_log SET detail = 'oops' WHERE seq = 4").await;
    let listed = store.audit_entries(&AuditQuery::default()).await.unwrap();
    assert!(listed.iter().any(|e| e.detail == json!("oops")));
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Edited, 4));
}

async fn a_deleted_entry_is_named(store: Store) {
    let store = &store;
    fill(store).await;
    store.seal_audit().await.unwrap();
    exec(store, "DELETE FROM audit_log WHERE seq = 2").await;
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.seq, p.id), (ProblemKind::Deleted, 2, None));
    assert!(
        p.message.contains("entry seq 2 is missing"),
        "{}",
        p.message
    );

    // Renumbering the later entries to hide the gap breaks the link instead.
    exec(store, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2").await;
    let id = id_at(store, 2).await;
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!(
        (p.kind, p.seq, p.id),
        (ProblemKind::BrokenLink, 2, Some(id))
    );
}

async fn a_cut_tail_is_caught_by_the_pinned_head(store: Store) {
    let store = &store;
    fill(store).await;
    store.seal_audit().await.unwrap();
    let head = store.verify_audit().await.unwrap().head.unwrap();
    let pin = AuditPin {
        seq: head.seq,
        hash: head.hash.clone(),
    };
    assert!(store
        .verify_audit_pinned(Some(&pin))
        .await
        .unwrap()
        .is_intact());
    exec(store, "DELETE FROM audit_log WHERE seq >= 4").await;
    // The head the sealer recorded outside the table names the cut; so does the pin.
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, 5));
    let p = store
        .verify_audit_pinned(Some(&pin))
        .await
        .unwrap()
        .problem
        .unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::PinMismatch, 5));
    assert!(p.message.contains("chain ends at seq 3"), "{}", p.message);
}

async fn late_and_stale_entries(store: Store) {
    let store = &store;
    fill(store).await;
    store.seal_audit().await.unwrap();
    // An entry older than the head left unsealed: its seal was removed (the writers' lock
    // means no transaction commits one behind the head). It is not sealed again.
    exec(
        store,
        "INSERT INTO audit_log (id, at, actor, action, target, detail) \
         VALUES (-7, 1, 'worker', 'command.run', 's', '{}')",
    )
    .await;
    assert_eq!(store.seal_audit().await.unwrap(), 0);
    let p = store.verify_audit().await.unwrap().problem.unwrap();
    assert_eq!((p.kind, p.id), (ProblemKind::SealRemoved, Some(-7)));
    exec(store, "DELETE FROM audit_log WHERE id = -7").await;
    assert!(store.verify_audit().await.unwrap().is_intact());
    // An old unsealed entry is reported (the sealer is not running, or it was forged).
    exec(
        store,
        "INSERT INTO audit_log (at, actor, action, target, detail) \
         VALUES (1000, 'x', 'token.created', 't', '{}')",
    )
    .await;
    let r = store.verify_audit().await.unwrap();
    assert_eq!((r.unsealed, r.unsealed_stale, r.sealed), (1, 1, 5));
}

/// Writers and sealers at once (replicas): every entry is sealed exactly once, in one chain.
async fn concurrent_sealers_make_one_chain(store: Store) {
    let store = &store;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let e = AuditEntry::new("worker", "platform.call", &format!("{w}-{i}"), json!({}));
                s.audit(e).await.unwrap();
                if i % 5 == 0 {
                    s.seal_audit().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.seal_audit().await.unwrap();
    let r = store.verify_audit().await.unwrap();
    assert!(r.is_intact(), "{r:?}");
    assert_eq!((r.sealed, r.unsealed), (100, 0));
    assert_eq!(r.head.unwrap().seq, 100);
}

on_both_backends!(
    entries_are_written_sealed_and_listed,
    an_edited_entry_is_named,
    a_deleted_entry_is_named,
    a_cut_tail_is_caught_by_the_pinned_head,
    late_and_stale_entries,
    concurrent_sealers_make_one_chain,
);
