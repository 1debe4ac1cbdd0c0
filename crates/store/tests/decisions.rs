//! Decisions and their outcomes on SQLite and on a fresh PostgreSQL database: the first
//! decision and the first deciding re-run stand, rows group per repository, and the mode set
//! through the API is kept per repository.

#[macro_use]
mod common;

use pipeguard_core::planner::Mode;
use pipeguard_core::readiness::{readiness, Outcome};
use pipeguard_store::{AuditQuery, DecisionRecord, Revision, Store};

fn decision(id: &str, repo: &str, would_retry: bool, failed_at: i64) -> DecisionRecord {
    DecisionRecord {
        session_id: id.into(),
        repository: repo.into(),
        platform: "github".into(),
        mode: Mode::Observe,
        would_retry,
        failed_at,
        on: Default::default(),
    }
}

async fn outcomes_are_recorded_once_and_grouped_per_repository(store: Store) {
    store
        .put_decision(&decision("s1", "o/a", true, 1_000))
        .await
        .unwrap();
    // A later decision on the same session does not replace the first.
    store
        .put_decision(&decision("s1", "o/a", false, 9_000))
        .await
        .unwrap();
    store
        .put_decision(&decision("s2", "o/a", false, 2_000))
        .await
        .unwrap();
    store
        .put_decision(&decision("s3", "o/a", false, 3_000))
        .await
        .unwrap();
    store
        .put_decision(&decision("s4", "o/b", true, 4_000))
        .await
        .unwrap();

    let confirmed = store
        .record_outcome("s1", true, Some(601_000))
        .await
        .unwrap();
    assert_eq!(confirmed.unwrap().outcome, Some(Outcome::Confirmed));
    // The first deciding re-run stands.
    assert_eq!(
        store
            .record_outcome("s1", false, Some(900_000))
            .await
            .unwrap(),
        None
    );
    // A withheld failure that fails again proves nothing, but a later green re-run does.
    assert_eq!(
        store
            .record_outcome("s2", false, Some(62_000))
            .await
            .unwrap(),
        None
    );
    let missed = store
        .record_outcome("s2", true, Some(99_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (missed.outcome, missed.rerun_at),
        (Some(Outcome::Missed), Some(62_000))
    );
    // Pipeguard's own re-run (act mode) carries no person's re-run time.
    let own = store
        .record_outcome("s4", false, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (own.outcome, own.rerun_at),
        (Some(Outcome::Contradicted), None)
    );
    assert_eq!(
        store.record_outcome("nope", true, None).await.unwrap(),
        None
    );

    let all = store.readiness_rows(None).await.unwrap();
    let names: Vec<(&str, usize)> = all
        .iter()
        .map(|g| (g.repository.as_str(), g.rows.len()))
        .collect();
    assert_eq!(names, [("o/a", 3), ("o/b", 1)]);
    let a = &store.readiness_rows(Some("o/a")).await.unwrap()[0];
    assert_eq!(a.rows[0].record, decision("s1", "o/a", true, 1_000));
    let decided: Vec<_> = a.rows.iter().map(|r| r.decided()).collect();
    let r = readiness(&decided);
    assert_eq!(
        (
            r.would_retry,
            r.confirmed,
            r.withheld,
            r.missed,
            r.precision,
            r.median_minutes_to_rerun
        ),
        (1, 1, 2, 1, Some(1.0), Some(10.0))
    );
    assert!(store
        .readiness_rows(Some("o/none"))
        .await
        .unwrap()
        .is_empty());
}

async fn the_mode_set_last_stands_per_repository(store: Store) {
    assert_eq!(store.mode("o/a").await.unwrap(), None);
    assert_eq!(
        store.set_mode("o/a", Mode::Observe, "alice").await.unwrap(),
        None
    );
    store.set_mode("o/b", Mode::Observe, "alice").await.unwrap();
    assert_eq!(
        store.set_mode("o/a", Mode::Act, "bob").await.unwrap(),
        Some(Mode::Observe)
    );
    let q = AuditQuery {
        action: Some("mode.set".into()),
        target: Some("o/a".into()),
        ..Default::default()
    };
    let trail = store.audit_entries(&q).await.unwrap();
    let seen: Vec<(&str, serde_json::Value)> = trail
        .iter()
        .map(|e| (e.actor.as_str(), e.detail.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "bob",
                serde_json::json!({"mode": "act", "before": "observe"})
            ),
            (
                "alice",
                serde_json::json!({"mode": "observe", "before": null})
            ),
        ]
    );
    assert_eq!(store.mode("o/a").await.unwrap(), Some(Mode::Act));
    assert_eq!(
        store.modes().await.unwrap(),
        [
            ("o/a".to_string(), Mode::Act),
            ("o/b".to_string(), Mode::Observe)
        ]
    );
}

fn on(sha: &str) -> Revision {
    Revision {
        workflow: "ci".into(),
        branch: Some("main".into()),
        head_sha: Some(sha.into()),
    }
}

/// A green run on a new commit closes the unmeasured failures of its workflow and branch
/// before it, once; a re-run's outcome, another commit's green run or branch do not count.
async fn a_push_fix_closes_the_unmeasured_failures_before_it(store: Store) {
    let at = |id: &str, would: bool, failed_at: i64, sha: &str| DecisionRecord {
        on: on(sha),
        ..decision(id, "o/a", would, failed_at)
    };
    store
        .put_decision(&at("w1", false, 1_000, "a1"))
        .await
        .unwrap();
    store
        .put_decision(&at("r1", true, 2_000, "a2"))
        .await
        .unwrap();
    store
        .put_decision(&at("m1", false, 3_000, "a3"))
        .await
        .unwrap();
    store
        .put_decision(&at("late", false, 9_000, "a4"))
        .await
        .unwrap();
    store
        .put_decision(&at("same", false, 4_000, "b1"))
        .await
        .unwrap();
    store.record_outcome("m1", true, Some(3_500)).await.unwrap();
    // The same commit's green run is a re-run's, not a push; another branch is not this one.
    assert_eq!(
        store
            .record_push_fix("github", "o/a", &on("b1"), 5_000)
            .await
            .unwrap(),
        2
    );
    let other = Revision {
        branch: Some("dev".into()),
        ..on("c1")
    };
    assert_eq!(
        store
            .record_push_fix("github", "o/a", &other, 5_000)
            .await
            .unwrap(),
        0
    );
    // Recorded once: a second listing of the same green run changes nothing.
    assert_eq!(
        store
            .record_push_fix("github", "o/a", &on("b1"), 5_000)
            .await
            .unwrap(),
        0
    );
    let outcome = |id: &'static str| {
        let store = store.clone();
        async move { store.decision(id).await.unwrap().unwrap().outcome }
    };
    assert_eq!(outcome("w1").await, Some(Outcome::FixedByPush));
    assert_eq!(outcome("r1").await, Some(Outcome::FixedByPush));
    assert_eq!(outcome("m1").await, Some(Outcome::Missed));
    assert_eq!(outcome("late").await, None);
    assert_eq!(outcome("same").await, None);
    let rows = &store.readiness_rows(Some("o/a")).await.unwrap()[0].rows;
    assert_eq!(rows[0].record.on, on("a1"));
    let decided: Vec<_> = rows.iter().map(|r| r.decided()).collect();
    let r = readiness(&decided);
    // Neither side's evidence: precision stays unmeasured, missed counts only the re-run.
    assert_eq!(
        (
            r.would_retry,
            r.confirmed,
            r.contradicted,
            r.withheld,
            r.missed
        ),
        (1, 0, 0, 4, 1)
    );
    assert_eq!((r.precision, r.fixed_by_push), (None, 2));
}

/// Green runs of a branch with no failure a push may fix cost no UPDATE: the gate knows it
/// from one read, and a new decision drops that read at once, so its push fix is recorded.
async fn push_fixes_write_only_where_a_failure_may_be_fixed(store: Store) {
    assert!(
        !store.surely_nothing_to_fix("o/a", "ci", "main"),
        "nothing read yet"
    );
    // 50 green deliveries, each naming a new commit, of a repository with no open failure.
    for i in 0..50 {
        let fixed = store
            .record_push_fix("github", "o/a", &on(&format!("g{i}")), 5_000)
            .await
            .unwrap();
        assert_eq!(fixed, 0);
    }
    assert_eq!(store.push_fix_updates(), 0, "no UPDATE for 50 green runs");
    assert!(store.surely_nothing_to_fix("o/a", "ci", "main"));

    store
        .put_decision(&DecisionRecord {
            on: on("a1"),
            ..decision("w1", "o/a", false, 1_000)
        })
        .await
        .unwrap();
    assert!(
        !store.surely_nothing_to_fix("o/a", "ci", "main"),
        "a new decision drops the read"
    );
    let fixed = store
        .record_push_fix("github", "o/a", &on("b1"), 5_000)
        .await
        .unwrap();
    assert_eq!((fixed, store.push_fix_updates()), (1, 1));
    let outcome = store.decision("w1").await.unwrap().unwrap().outcome;
    assert_eq!(outcome, Some(Outcome::FixedByPush));
    // Another branch and another workflow of the same repository have nothing to fix.
    assert!(store.surely_nothing_to_fix("o/a", "ci", "dev"));
    assert!(store.surely_nothing_to_fix("o/a", "deploy", "main"));
    let dev = Revision {
        branch: Some("dev".into()),
        ..on("c1")
    };
    assert_eq!(
        store
            .record_push_fix("github", "o/a", &dev, 5_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.push_fix_updates(), 1);
}

on_both_backends!(
    outcomes_are_recorded_once_and_grouped_per_repository,
    the_mode_set_last_stands_per_repository,
    a_push_fix_closes_the_unmeasured_failures_before_it,
    push_fixes_write_only_where_a_failure_may_be_fixed
);
