//! The same store behaviour on SQLite and on PostgreSQL (a fresh database per run).

mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{Intake, IntakeOutcome, RetryDead, SessionStatus, Store, Task, Transition};

fn failure(run: &str, attempt: u32) -> Intake {
    Intake::Failure(FailureEvent {
        platform: Some(Platform::Github),
        repository: "o/r".into(),
        run_id: run.into(),
        attempt,
        ..Default::default()
    })
}

async fn exercise(store: &Store) {
    // A failure creates one session and one job; its twins do not.
    let a = store
        .intake(Platform::Github, "d1", "1", failure("1", 1))
        .await
        .unwrap();
    let IntakeOutcome::Created { session_id: id } = a.outcome.clone() else {
        panic!("expected a new session, got {a:?}")
    };
    let replay = store
        .intake(Platform::Github, "d1", "1", failure("1", 1))
        .await
        .unwrap();
    assert!(replay.replay);
    assert_eq!(replay.outcome, a.outcome);
    let twin = store
        .intake(Platform::Github, "d2", "1", failure("1", 1))
        .await
        .unwrap();
    assert_eq!(
        twin.outcome,
        IntakeOutcome::Duplicate {
            session_id: id.clone(),
            status: Some(SessionStatus::Received)
        }
    );
    assert_eq!(store.queue_depth().await.unwrap(), 1);

    // The queue hands a job to one claimer only.
    let job = store.claim(60_000, &[]).await.unwrap().expect("a due job");
    assert_eq!(
        (&job.task, job.session_id.as_str()),
        (&Task::Analyze, id.as_str())
    );
    assert!(store.claim(60_000, &[]).await.unwrap().is_none());
    store.finish_job(job.id).await.unwrap();

    // Conditional transitions: only from the expected state.
    let t = |from, to| Transition::fixture(from, to, "t");
    assert!(store
        .transition(&id, t(&[SessionStatus::Received], SessionStatus::Analyzing))
        .await
        .unwrap());
    assert!(!store
        .transition(&id, t(&[SessionStatus::Received], SessionStatus::Planned))
        .await
        .unwrap());
    assert!(store
        .transition(
            &id,
            t(&[SessionStatus::Analyzing], SessionStatus::Verifying)
        )
        .await
        .unwrap());

    // At most one platform call per heal attempt.
    assert!(store.claim_action(&id, 1, "run", "retry").await.unwrap());
    assert!(!store.claim_action(&id, 1, "run", "retry").await.unwrap());

    // The next attempt's result is an outcome of this session, not a new one.
    let next = store
        .intake(Platform::Github, "d3", "1", failure("1", 2))
        .await
        .unwrap();
    assert_eq!(
        next.outcome,
        IntakeOutcome::Outcome {
            session_id: id.clone()
        }
    );
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    assert!(
        matches!(
            job.task,
            Task::Outcome {
                attempt: 2,
                success: false,
                ..
            }
        ),
        "{:?}",
        job.task
    );
    // A lease that expired is taken again (a crashed worker).
    let again = store.claim(-1, &[]).await.unwrap();
    assert!(again.is_none(), "lease still valid");
    let s = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Verifying);
    assert_eq!(store.list_sessions(10, 0).await.unwrap().len(), 1);
    store.finish_job(job.id).await.unwrap();

    // A run the heal started reports to this session: its failure is an outcome, not a heal
    // of its own, and the session follows that run from now on.
    let mut next = s.event.clone();
    next.run_id = "2".into();
    next.attempt = 0;
    store
        .follow_run(&id, Platform::Github, "2", &next)
        .await
        .unwrap();
    let linked = store
        .intake(Platform::Github, "d4", "2", failure("2", 1))
        .await
        .unwrap();
    assert_eq!(
        linked.outcome,
        IntakeOutcome::Outcome {
            session_id: id.clone()
        }
    );
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    assert!(matches!(job.task, Task::Outcome { .. }));
    assert_eq!(job.session_id, id);
    store.finish_job(job.id).await.unwrap();
    assert_eq!(
        store.get_session(&id).await.unwrap().unwrap().event.run_id,
        "2"
    );
    assert_eq!(store.list_sessions(10, 0).await.unwrap().len(), 1);

    // Outcome records: by fingerprint, and by category within a repository.
    store
        .update_session(
            &id,
            t(&[SessionStatus::Verifying], SessionStatus::Failed),
            pipeguard_store::SessionUpdate {
                category: Some("network".into()),
                fingerprint: Some("fp1".into()),
                strategy: Some("retry".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fp = store.fingerprint_stats("fp1", "retry").await.unwrap();
    assert_eq!((fp.healed, fp.failed), (0, 1));
    let cat = store
        .category_stats("github", "o/r", "network", "retry")
        .await
        .unwrap();
    assert_eq!((cat.healed, cat.failed), (0, 1));
    let other = store
        .category_stats("github", "o/other", "network", "retry")
        .await
        .unwrap();
    assert_eq!(other.trials(), 0);
    // Once the session is closed, its linked run never starts a heal of its own.
    let late = store
        .intake(Platform::Github, "d5", "2", failure("2", 2))
        .await
        .unwrap();
    assert_eq!(late.outcome.session_id(), Some(id.as_str()));
    assert!(matches!(late.outcome, IntakeOutcome::Duplicate { .. }));
    assert_eq!(store.list_sessions(10, 0).await.unwrap().len(), 1);
}

/// Work that failed for good is listed and counted, and sending it again reopens the failed
/// session at that work's stage in the same transaction.
async fn dead_letters(store: &Store) {
    let a = store
        .intake(Platform::Github, "dead-1", "9", failure("9", 1))
        .await
        .unwrap();
    let IntakeOutcome::Created { session_id: id } = a.outcome else {
        panic!("expected a new session, got {a:?}")
    };
    let by = "operator-1";
    assert_eq!(
        store.retry_dead(&id, by).await.unwrap(),
        RetryDead::NothingDead
    );
    let job = store.claim(60_000, &[]).await.unwrap().unwrap();
    store.fail_job(job.id, "platform said 503").await.unwrap();
    let t = Transition::fixture(
        &[SessionStatus::Received],
        SessionStatus::Failed,
        "analyze: platform said 503",
    );
    assert!(store.transition(&id, t).await.unwrap());
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].session_id.as_str(), dead[0].kind.as_str()),
        (id.as_str(), "analyze")
    );
    assert_eq!(dead[0].error.as_deref(), Some("platform said 503"));
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    assert_eq!(
        store.retry_dead("no-such-session", by).await.unwrap(),
        RetryDead::NotFound
    );

    let r = store.retry_dead(&id, by).await.unwrap();
    assert_eq!(
        r,
        RetryDead::Requeued {
            kinds: vec!["analyze".into()],
            status: SessionStatus::Received
        }
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);
    let s = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Received);
    let again = store
        .claim(60_000, &[])
        .await
        .unwrap()
        .expect("the job is due again");
    assert_eq!((again.id, again.task), (job.id, Task::Analyze));
    // Once reopened, the session is not failed: nothing more to send.
    store.fail_job(again.id, "again").await.unwrap();
    assert_eq!(
        store.retry_dead(&id, by).await.unwrap(),
        RetryDead::NotFailed(SessionStatus::Received)
    );
}

#[tokio::test]
async fn sqlite_dead_letters() {
    let (store, _dir) = common::sqlite().await;
    dead_letters(&store).await;
}

#[tokio::test]
async fn postgres_dead_letters() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    dead_letters(&pg.store).await;
    pg.drop_database().await;
}

#[tokio::test]
async fn sqlite_store_behaves() {
    let (store, _dir) = common::sqlite().await;
    exercise(&store).await;
}

#[tokio::test]
async fn expired_leases_are_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    store
        .intake(Platform::Github, "d1", "9", failure("9", 1))
        .await
        .unwrap();
    let first = store.claim(-1, &[]).await.unwrap().unwrap();
    let second = store
        .claim(60_000, &[])
        .await
        .unwrap()
        .expect("expired lease is reclaimed");
    assert_eq!(first.id, second.id);
    assert_eq!(second.tries, 2);
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let err = Store::connect("mysql://x").await.err().unwrap();
    assert!(err.to_string().contains("unsupported database URL"));
}

#[tokio::test]
async fn postgres_store_behaves() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    exercise(&pg.store).await;
    pg.drop_database().await;
}
