//! Jobs per runner on SQLite and on a fresh PostgreSQL database: counted once per job,
//! failures counted once per (repository, category), the quarantine claimed once, and a
//! release that restarts the counts and is audited with its record.

#[macro_use]
mod common;

use pipeguard_core::event::Runner;
use pipeguard_core::runners::RunnerJob;
use pipeguard_store::{AuditEntry, AuditQuery, RunnerState, Store};
use serde_json::json;

fn job(runner: &str, id: &str, repo: &str, failed: bool) -> RunnerJob {
    RunnerJob {
        runner: Runner {
            name: runner.into(),
            id: Some(format!("{runner}-id")),
        },
        job_id: id.into(),
        repository: repo.into(),
        failed,
    }
}

async fn counted_once_per_job_and_per_cause(store: Store) {
    let seen = [
        job("r1", "1", "a/x", false),
        job("r1", "2", "a/y", true),
        job("r2", "3", "a/x", false),
    ];
    store.record_runner_jobs("gitlab", &seen).await.unwrap();
    // A redelivery, then the worker's diagnoses: the same jobs, not new ones.
    store.record_runner_jobs("gitlab", &seen).await.unwrap();
    let failures = [
        (job("r1", "2", "a/y", true), "network".to_string()),
        (job("r1", "4", "a/y", true), "network".to_string()),
        (job("r1", "5", "a/y", true), "timeout".to_string()),
        (job("r1", "6", "a/z", true), "network".to_string()),
    ];
    store
        .record_runner_failures("gitlab", &failures)
        .await
        .unwrap();
    // A later success delivery never turns a failure back.
    store
        .record_runner_jobs("gitlab", &[job("r1", "6", "a/z", false)])
        .await
        .unwrap();
    store
        .record_runner_jobs("github", &[job("r1", "1", "o/r", false)])
        .await
        .unwrap();
    let all = store.runners(Some("gitlab"), 0).await.unwrap();
    let r1 = all.iter().find(|r| r.count.name == "r1").unwrap();
    assert_eq!(
        (
            r1.count.jobs,
            r1.count.failures,
            r1.count.unrelated_failures
        ),
        (5, 4, 3),
        "a/y network twice is one cause; a/y timeout and a/z network are others"
    );
    assert_eq!(r1.runner_id.as_deref(), Some("r1-id"));
    let r2 = all.iter().find(|r| r.count.name == "r2").unwrap();
    assert_eq!((r2.count.jobs, r2.count.failures), (1, 0));
    assert_eq!(all.len(), 2, "the other platform's r1 is another runner");
    assert_eq!(store.runners(None, 0).await.unwrap().len(), 3);
    // Outside the window nothing counts.
    let later = pipeguard_store::now_ms() + 60_000;
    assert!(store
        .runners(Some("gitlab"), later)
        .await
        .unwrap()
        .is_empty());
}

async fn quarantined_once_and_released_afresh(store: Store) {
    store
        .record_runner_jobs("gitlab", &[job("bad", "1", "a/x", true)])
        .await
        .unwrap();
    assert!(store
        .claim_runner_quarantine("gitlab", "bad")
        .await
        .unwrap());
    assert!(
        !store
            .claim_runner_quarantine("gitlab", "bad")
            .await
            .unwrap(),
        "claimed once"
    );
    store
        .set_runner(RunnerState {
            platform: "gitlab",
            name: "bad",
            suspect: true,
            quarantined: Some(true),
            detail: "taken out",
            audit: AuditEntry::new("pipeguard", "runner.quarantined", "gitlab/bad", json!({})),
        })
        .await
        .unwrap();
    let r = &store.runners(Some("gitlab"), 0).await.unwrap()[0];
    assert!(r.suspect && r.quarantined && r.count.jobs == 1);
    let audit = AuditEntry::new("oncall", "runner.released", "gitlab/bad", json!({}));
    assert!(store.release_runner("gitlab", "bad", audit).await.unwrap());
    let r = &store.runners(Some("gitlab"), 0).await.unwrap()[0];
    assert!(!r.suspect && !r.quarantined);
    assert_eq!(
        (r.count.jobs, r.count.failures),
        (0, 0),
        "counts start at the release"
    );
    let unknown = AuditEntry::new("oncall", "runner.released", "gitlab/none", json!({}));
    assert!(!store
        .release_runner("gitlab", "none", unknown)
        .await
        .unwrap());
    let q = AuditQuery {
        action: Some("runner.*".into()),
        limit: 10,
        ..Default::default()
    };
    let actions: Vec<String> = store
        .audit_entries(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.actor, e.action))
        .collect();
    assert_eq!(
        actions,
        ["oncall runner.released", "pipeguard runner.quarantined"]
    );
    // After the release, a claim works again.
    assert!(store
        .claim_runner_quarantine("gitlab", "bad")
        .await
        .unwrap());
}

on_both_backends!(
    counted_once_per_job_and_per_cause,
    quarantined_once_and_released_afresh
);
