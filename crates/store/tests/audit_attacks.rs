//! Someone with write access to the database (not to the audit key and head files) tries to
//! hide entries: each attempt must make a fresh verifier, as `pipeguard audit verify` is,
//! report tampering. On SQLite and on a fresh PostgreSQL database.

#[macro_use]
mod common;

use pipeguard_store::{AuditAnchor, AuditEntry, AuditReport, ProblemKind, Store};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::path::{Path, PathBuf};

const ENTRIES: i64 = 60;

use common::exec;

/// Rewrites who did entry `seq`.
async fn forge_actor(store: &Store, seq: i64) {
    let sql = format!("UPDATE audit_log SET actor = 'nobody' WHERE seq = {seq}");
    exec(store, &sql).await;
}

/// Removes the seals of the entries `cond` selects, as someone with the database could.
async fn unseal(store: &Store, cond: &str) {
    let sql =
        format!("UPDATE audit_log SET seq = NULL, hash = NULL, prev_hash = NULL WHERE {cond}");
    exec(store, &sql).await;
}

/// The store the server runs (key file made, head file written), with `ENTRIES` sealed.
async fn sealed_trail(store: Store, base: &Path) -> Store {
    let store = store.with_audit_anchor(AuditAnchor::files(base, None, true).unwrap());
    for i in 0..ENTRIES {
        let e = AuditEntry::new(
            "user:alice",
            "approval.granted",
            &format!("s{i}"),
            json!({}),
        );
        store.audit(e).await.unwrap();
    }
    assert_eq!(store.seal_audit().await.unwrap(), ENTRIES as usize);
    store
}

/// What `pipeguard audit verify` sees: the same files, read afresh, no key made.
async fn verify(store: &Store, base: &Path) -> AuditReport {
    let anchor = AuditAnchor::files(base, None, false).unwrap();
    store
        .clone()
        .with_audit_anchor(anchor)
        .verify_audit()
        .await
        .unwrap()
}

fn files() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("pipeguard.db");
    (dir, base)
}

async fn untouched_trail_verifies(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    let r = verify(&store, &base).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.head.unwrap().seq, ENTRIES);
}

/// Deleting the newest entries: the last, the last 50, all of them.
async fn deleting_the_tail_is_found(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    for (cut_from, ends) in [(ENTRIES, ENTRIES - 1), (ENTRIES - 50, ENTRIES - 51), (1, 0)] {
        exec(
            &store,
            &format!("DELETE FROM audit_log WHERE seq >= {cut_from}"),
        )
        .await;
        let r = verify(&store, &base).await;
        let p = r.problem.expect("a cut tail is tampering");
        assert_eq!(p.kind, ProblemKind::Truncated, "{p:?}");
        assert!(
            p.message.contains(&format!(
                "head file says seq {ENTRIES}, the table ends at seq {ends}"
            )),
            "{}",
            p.message
        );
    }
}

/// Edit entry 30, remove the seals from 30 on, let the sealer run: it refuses, nothing is
/// re-sealed, and verify names the cut.
async fn removed_seals_are_not_resealed(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    forge_actor(&store, 30).await;
    unseal(&store, "seq >= 30").await;
    let e = store.seal_audit().await.unwrap_err().to_string();
    assert!(e.contains("tampered"), "{e}");
    // A restarted server (the anchor read afresh) refuses too.
    let restarted = store
        .clone()
        .with_audit_anchor(AuditAnchor::files(&base, None, true).unwrap());
    assert!(restarted.seal_audit().await.is_err());
    let r = verify(&store, &base).await;
    assert_eq!((r.sealed, r.unsealed), (29, ENTRIES - 29));
    assert_eq!(r.problem.unwrap().kind, ProblemKind::Truncated);
    let nobody = sqlx::query("SELECT seq FROM audit_log WHERE actor = 'nobody'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(nobody.try_get::<Option<i64>, _>("seq").unwrap(), None);
}

/// A seal removed in the middle (the gap renumbered away): the sealer never takes an entry
/// older than its head, and verify names it.
async fn a_seal_removed_in_the_middle_stays_reported(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    unseal(&store, "seq = 59").await;
    exec(&store, "UPDATE audit_log SET seq = 59 WHERE seq = 60").await;
    assert!(store.seal_audit().await.is_err(), "the head moved");
    let r = verify(&store, &base).await;
    assert!(!r.is_intact());
    assert_eq!(r.unsealed, 1);
    // The original head again, and only the seal of 59 removed: still named.
    exec(&store, "UPDATE audit_log SET seq = 60 WHERE seq = 59").await;
    let r = verify(&store, &base).await;
    let p = r.problem.unwrap();
    assert!(
        matches!(p.kind, ProblemKind::Deleted | ProblemKind::SealRemoved),
        "{p:?}"
    );
    assert_eq!(
        store.seal_audit().await.unwrap(),
        0,
        "59 is not sealed again"
    );
}

/// The old unkeyed algorithm is public: an edit re-hashed with it is still found.
async fn an_edit_rehashed_without_the_key_is_found(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    forge_actor(&store, 30).await;
    let p = verify(&store, &base).await.problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Edited, 30));
    // Re-chained from 1 to the end with sha256 and no key, as the sealer used to.
    rechain_unkeyed(&store, 1).await;
    let p = verify(&store, &base).await.problem.unwrap();
    assert_eq!(
        (p.kind, p.seq),
        (ProblemKind::PinMismatch, ENTRIES),
        "{p:?}"
    );
}

/// A database sealed before chains were keyed: its entries still verify, new ones are
/// keyed on top, and an old entry rewritten with the old algorithm breaks the first keyed
/// link.
async fn an_upgraded_trail_verifies_and_protects_old_entries(store: Store) {
    let (_dir, base) = files();
    for i in 0..10 {
        let e = AuditEntry::new("worker", "platform.call", &format!("old{i}"), json!({}));
        store.audit(e).await.unwrap();
    }
    rechain_unkeyed(&store, 1).await;
    let store = store.with_audit_anchor(AuditAnchor::files(&base, None, true).unwrap());
    let r = verify(&store, &base).await;
    assert!(r.is_intact(), "old entries, no head file yet: {r:?}");
    store
        .audit(AuditEntry::new("worker", "platform.call", "new", json!({})))
        .await
        .unwrap();
    assert_eq!(store.seal_audit().await.unwrap(), 1);
    let r = verify(&store, &base).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.head.unwrap().seq, 11);
    exec(
        &store,
        "UPDATE audit_log SET actor = 'nobody' WHERE seq = 4",
    )
    .await;
    rechain_unkeyed_until(&store, 4, 10).await;
    let p = verify(&store, &base).await.problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::BrokenLink, 11), "{p:?}");
}

/// Without the key, verify says it could not check rather than that all is well.
async fn a_verifier_without_the_key_cannot_vouch(store: Store) {
    let (_dir, base) = files();
    let store = sealed_trail(store, &base).await;
    std::fs::remove_file(format!("{}.audit-key", base.display())).unwrap();
    let r = verify(&store, &base).await;
    assert!(r.is_unchecked(), "{r:?}");
}

async fn rechain_unkeyed(store: &Store, from: i64) {
    rechain_unkeyed_until(store, from, i64::MAX).await
}

/// Recomputes seals `from..=until` with the pre-keyed algorithm (sha256 over the
/// length-prefixed fields), as someone with database access could.
async fn rechain_unkeyed_until(store: &Store, from: i64, until: i64) {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target, detail FROM audit_log \
         WHERE seq IS NULL OR seq >= $1 ORDER BY id",
    )
    .bind(from)
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut prev: String = if from == 1 {
        "0".repeat(64)
    } else {
        sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(from - 1)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("hash")
            .unwrap()
    };
    for (i, r) in rows.iter().enumerate() {
        let seq = from + i as i64;
        if seq > until {
            break;
        }
        let id: i64 = r.try_get("id").unwrap();
        let at: i64 = r.try_get("at").unwrap();
        let texts: Vec<String> = ["actor", "action", "target", "detail"]
            .iter()
            .map(|c| r.try_get(*c).unwrap())
            .collect();
        let mut h = Sha256::new();
        h.update(b"pipeguard-audit-v1");
        let numbers = [seq.to_string(), id.to_string(), at.to_string()];
        for part in numbers.iter().chain(&texts).chain([&prev]) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let hash = hex::encode(h.finalize());
        sqlx::query(
            "UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3, chain_key = NULL \
             WHERE id = $4",
        )
        .bind(seq)
        .bind(&prev)
        .bind(&hash)
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
        prev = hash;
    }
}

on_both_backends!(
    untouched_trail_verifies,
    deleting_the_tail_is_found,
    removed_seals_are_not_resealed,
    a_seal_removed_in_the_middle_stays_reported,
    an_edit_rehashed_without_the_key_is_found,
    an_upgraded_trail_verifies_and_protects_old_entries,
    a_verifier_without_the_key_cannot_vouch,
);
