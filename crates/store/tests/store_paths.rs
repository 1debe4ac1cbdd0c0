//! The store's queue, records and statistics on both backends: every scenario runs on a
//! temporary SQLite file (`sqlite::…`) and on a fresh PostgreSQL database (`postgres::…`).

mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::hosts::HostRecord;
use pipeguard_store::{
    now_ms, ApprovalRecord, Intake, IntakeOutcome, SessionFilter, SessionStatus, SessionUpdate,
    Store, Task, Transition,
};
use std::collections::BTreeSet;

fn event(run: &str, sha: &str) -> FailureEvent {
    FailureEvent {
        platform: Some(Platform::Github),
        repository: "o/r".into(),
        run_id: run.into(),
        attempt: 1,
        head_sha: Some(sha.into()),
        ..Default::default()
    }
}

/// A new session for run `run` (its analyze job queued); its id.
async fn session(store: &Store, run: &str) -> String {
    let r = store
        .intake(
            Platform::Github,
            &format!("d-{run}"),
            run,
            Intake::Failure(event(run, "abc")),
        )
        .await
        .unwrap();
    match r.outcome {
        IntakeOutcome::Created { session_id } => session_id,
        o => panic!("no session for run {run}: {o:?}"),
    }
}

/// Ends a received session as `to` with a category, fingerprint and strategy.
async fn finish(store: &Store, id: &str, to: SessionStatus, fp: &str, ttg: Option<i64>) {
    let t = Transition::fixture(&[SessionStatus::Received], to, "finished");
    let u = SessionUpdate {
        category: Some("network".into()),
        fingerprint: Some(fp.into()),
        strategy: Some("retry".into()),
        finished_at: Some(now_ms()),
        time_to_green_ms: ttg,
        ..Default::default()
    };
    assert!(store.update_session(id, t, u).await.unwrap());
}

async fn expired_leases_are_claimed_again(store: &Store) {
    session(store, "9").await;
    let first = store.claim(-1, &[]).await.unwrap().unwrap();
    assert_eq!(first.tries, 1);
    let second = store
        .claim(60_000, &[])
        .await
        .unwrap()
        .expect("an expired lease is claimed again");
    assert_eq!((second.id, second.tries), (first.id, 2));
    // A live lease is not.
    assert!(store.claim(60_000, &[]).await.unwrap().is_none());
    // Shutdown hands the job back without counting the try.
    store.release_job(second.id).await.unwrap();
    let third = store.claim(60_000, &[]).await.unwrap().unwrap();
    assert_eq!((third.id, third.tries), (first.id, 2));
    // A restart of a single-worker backend puts running jobs back at once.
    assert_eq!(store.requeue_running().await.unwrap(), 1);
    assert_eq!(
        store.claim(60_000, &[]).await.unwrap().unwrap().id,
        first.id
    );
}

async fn concurrent_claims_take_each_job_once(store: &Store) {
    const JOBS: usize = 24;
    for i in 0..JOBS {
        session(store, &format!("c{i}")).await;
    }
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = vec![];
                while let Some(job) = store.claim(60_000, &[]).await.unwrap() {
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = vec![];
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a job was claimed twice: {all:?}"
    );
    assert_eq!(all.len(), JOBS, "every job is claimed");
}

async fn queue_timing_and_failures(store: &Store) {
    let id = session(store, "q").await;
    let analyze = store.claim(60_000, &[]).await.unwrap().unwrap();
    // A transient error puts the job back for later: not due before then.
    let later = now_ms() + 3_600_000;
    store
        .retry_job(analyze.id, "HTTP 502", later)
        .await
        .unwrap();
    assert!(store.claim(60_000, &[]).await.unwrap().is_none());
    assert_eq!(store.next_due().await.unwrap(), Some(later));
    // A job due now comes first; a job of a busy platform waits.
    store
        .enqueue(&id, &Task::Execute { approved: true }, now_ms() - 1)
        .await
        .unwrap();
    assert!(store
        .claim(60_000, &["github".to_string()])
        .await
        .unwrap()
        .is_none());
    let exec = store.claim(60_000, &[]).await.unwrap().unwrap();
    assert_eq!(exec.task, Task::Execute { approved: true });
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    store.fail_job(exec.id, "no executor").await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    store.finish_job(analyze.id).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 0);
    assert_eq!(store.next_due().await.unwrap(), None);
}

async fn tokens_and_decisions(store: &Store) {
    assert!(store.create_token("ci", "ingest", "h1").await.unwrap());
    assert!(!store.create_token("ci", "admin", "h2").await.unwrap());
    let used = store.use_token("h1").await.unwrap().unwrap();
    assert_eq!((used.name.as_str(), used.role.as_str()), ("ci", "ingest"));
    assert!(store.use_token("h2").await.unwrap().is_none());
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "use is recorded");
    assert!(store.revoke_token("ci").await.unwrap());
    assert!(!store.revoke_token("ci").await.unwrap());
    assert!(store.use_token("h1").await.unwrap().is_none());
    // A revoked name may be given again.
    assert!(store.create_token("ci", "viewer", "h3").await.unwrap());
    assert_eq!(store.use_token("h3").await.unwrap().unwrap().role, "viewer");

    let id = session(store, "a").await;
    let decision = |who: &str, what: &str, at: i64| ApprovalRecord {
        session_id: id.clone(),
        attempt: 1,
        approver: who.into(),
        decision: what.into(),
        comment: Some(format!("{what} by {who}")),
        at,
    };
    assert!(store
        .record_decision(&decision("ana", "approved", 2))
        .await
        .unwrap());
    assert!(!store
        .record_decision(&decision("ana", "rejected", 3))
        .await
        .unwrap());
    assert!(store
        .record_decision(&decision("bo", "rejected", 1))
        .await
        .unwrap());
    let all = store.decisions(&id).await.unwrap();
    assert_eq!(
        all,
        vec![
            decision("bo", "rejected", 1),
            decision("ana", "approved", 2)
        ]
    );
}

async fn deliveries_and_hosts(store: &Store) {
    assert!(store
        .find_delivery(Platform::Github, "d-x")
        .await
        .unwrap()
        .is_none());
    let id = session(store, "x").await;
    let found = store
        .find_delivery(Platform::Github, "d-x")
        .await
        .unwrap()
        .unwrap();
    assert!(found.replay);
    assert_eq!(found.outcome.session_id(), Some(id.as_str()));
    assert!(store
        .find_delivery(Platform::Gitlab, "d-x")
        .await
        .unwrap()
        .is_none());
    store
        .record_ignored(Platform::Github, "d-ping", "ping")
        .await
        .unwrap();
    assert_eq!(store.count_deliveries().await.unwrap(), 2);

    let mut h = HostRecord {
        name: "web1".into(),
        pkg_mgr: Some("apt".into()),
        facts: serde_json::json!({"os_family": "Debian"}),
        ..HostRecord::default()
    };
    store.upsert_host(&h).await.unwrap();
    h.disk_free_mb = Some(512);
    store.upsert_host(&h).await.unwrap();
    let hosts = store.list_hosts().await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].disk_free_mb, Some(512));
    assert_eq!(hosts[0].facts["os_family"], "Debian");
}

async fn sessions_found_counted_and_logged(store: &Store) {
    let before = now_ms() - 1;
    let a = session(store, "s1").await;
    let b = session(store, "s2").await;
    finish(store, &b, SessionStatus::Healed, "fp", Some(90_000)).await;
    store
        .note(&a, SessionStatus::Received, "waiting for logs")
        .await
        .unwrap();
    let healed = SessionFilter {
        status: Some(SessionStatus::Healed),
        ..Default::default()
    };
    let found = store.find_sessions(&healed, 10, 0).await.unwrap();
    assert_eq!(found.iter().map(|s| &s.id).collect::<Vec<_>>(), [&b]);
    let elsewhere = SessionFilter {
        repository: Some("o/other".into()),
        ..Default::default()
    };
    assert!(store
        .find_sessions(&elsewhere, 10, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_sessions(&Default::default(), 1, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let mut counts = store.status_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(SessionStatus::Healed, 1), (SessionStatus::Received, 1)]
    );
    let changed = store.sessions_changed_since(before, 10).await.unwrap();
    assert_eq!(changed.len(), 2);
    let last = changed.last().unwrap().updated_at;
    assert!(store
        .sessions_changed_since(last, 10)
        .await
        .unwrap()
        .is_empty());
    let log = store.session_log(&a).await.unwrap();
    assert_eq!(log.last().unwrap()["message"], "waiting for logs");
    let log = store.session_log(&b).await.unwrap();
    assert_eq!(log.last().unwrap()["status"], "healed");
}

async fn actions_and_what_learning_reads(store: &Store) {
    let id = session(store, "l1").await;
    let other = session(store, "l2").await;
    finish(store, &id, SessionStatus::Healed, "fp-net", Some(60_000)).await;
    finish(store, &other, SessionStatus::Failed, "fp-net", None).await;
    // A call the platform refused with a transient error is forgotten and may be made again.
    assert!(store.claim_action(&id, 1, "run", "retry").await.unwrap());
    store.release_action(&id, 1, "run").await.unwrap();
    assert!(store.actions(&id).await.unwrap().is_empty());
    assert!(store.claim_action(&id, 1, "run", "scale").await.unwrap());
    store
        .finish_action(&id, 1, "run", "done", "re-run 2")
        .await
        .unwrap();
    assert!(store.claim_action(&other, 1, "run", "retry").await.unwrap());
    let acts = store.actions(&id).await.unwrap();
    assert_eq!(acts.len(), 1);
    assert_eq!(
        (acts[0].kind.as_str(), acts[0].status.as_str()),
        ("scale", "done")
    );
    // Only carried-out calls of this commit count as used.
    assert_eq!(
        store
            .strategies_used_on_commit("github", "o/r", "abc")
            .await
            .unwrap(),
        vec!["scale".to_string()]
    );
    assert!(store
        .strategies_used_on_commit("github", "o/r", "def")
        .await
        .unwrap()
        .is_empty());
    let since = now_ms() - 60_000;
    assert_eq!(store.reruns_since(since, None).await.unwrap(), 2);
    assert_eq!(
        store
            .reruns_since(since, Some(("github", "o/r")))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .reruns_since(since, Some(("github", "o/other")))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.reruns_since(now_ms() + 1, None).await.unwrap(), 0);
    let learned = store
        .learned("fp-net", "github", "o/r", "network")
        .await
        .unwrap();
    assert_eq!(learned.len(), 1);
    let (strategy, l) = &learned[0];
    assert_eq!(strategy, "retry");
    assert_eq!((l.fingerprint.healed, l.fingerprint.failed), (1, 1));
    assert_eq!((l.category.healed, l.category.failed), (1, 1));
    assert!(store
        .learned("fp-other", "github", "o/elsewhere", "network")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.times_to_green(10).await.unwrap(), vec![60_000]);
    let top = store.top_fingerprints(5).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(
        (top[0].fingerprint.as_str(), top[0].sessions, top[0].healed),
        ("fp-net", 2, 1)
    );
    let today = now_ms() / pipeguard_store::DAY_MS * pipeguard_store::DAY_MS;
    let days = store.daily_outcomes(today, today).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].healed, days[0].failed), (1, 1));
    assert_eq!(days[0].time_to_green_median_ms, Some(60_000));
}

/// A job another claimer holds locked is skipped, not waited for (PostgreSQL's SKIP LOCKED).
async fn locked_jobs_are_skipped(pg: &common::FreshPostgres) {
    use sqlx::{Connection, Row};
    let store = &pg.store;
    session(store, "k1").await;
    session(store, "k2").await;
    let mut other = sqlx::AnyConnection::connect(&pg.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    let held: i64 = sqlx::query("SELECT id FROM jobs ORDER BY run_at, id LIMIT 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get("id");
    let claim = tokio::time::timeout(std::time::Duration::from_secs(5), store.claim(60_000, &[]))
        .await
        .expect("a claim waited for a row another claimer holds");
    let job = claim.unwrap().expect("the job nobody holds");
    assert_ne!(job.id, held);
    tx.rollback().await.unwrap();
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (store, _dir) = crate::common::sqlite().await;
                    crate::$scenario(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(pg) = crate::common::FreshPostgres::create().await else {
                        return;
                    };
                    crate::$scenario(&pg.store).await;
                    pg.drop_database().await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn locked_jobs_are_skipped() {
                let Some(pg) = crate::common::FreshPostgres::create().await else {
                    return;
                };
                crate::locked_jobs_are_skipped(&pg).await;
                pg.drop_database().await;
            }
        }
    };
}

on_both_backends!(
    expired_leases_are_claimed_again,
    concurrent_claims_take_each_job_once,
    queue_timing_and_failures,
    tokens_and_decisions,
    deliveries_and_hosts,
    sessions_found_counted_and_logged,
    actions_and_what_learning_reads,
);
