//! The same store behaviour on SQLite and on PostgreSQL (a fresh database per run).

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{Intake, SessionStatus, Store, Transition};
use sqlx::Connection;

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
        .intake(Platform::Github, "d1", failure("1", 1))
        .await
        .unwrap();
    assert_eq!(a.status, 202);
    let id = a.session_id.clone().unwrap();
    let replay = store
        .intake(Platform::Github, "d1", failure("1", 1))
        .await
        .unwrap();
    assert!(replay.replay);
    assert_eq!(replay.body, a.body);
    let twin = store
        .intake(Platform::Github, "d2", failure("1", 1))
        .await
        .unwrap();
    assert_eq!(twin.session_id.as_deref(), Some(id.as_str()));
    assert_eq!(store.queue_depth().await.unwrap(), 1);

    // The queue hands a job to one claimer only.
    let job = store.claim(60_000).await.unwrap().expect("a due job");
    assert_eq!(
        (job.kind.as_str(), job.session_id.as_str()),
        ("analyze", id.as_str())
    );
    assert!(store.claim(60_000).await.unwrap().is_none());
    store.finish_job(job.id).await.unwrap();

    // Conditional transitions: only from the expected state.
    let t = |from, to| Transition {
        from,
        to,
        message: "t",
    };
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
        .intake(Platform::Github, "d3", failure("1", 2))
        .await
        .unwrap();
    assert_eq!(next.session_id.as_deref(), Some(id.as_str()));
    assert_eq!(next.body["status"], "outcome");
    let job = store.claim(60_000).await.unwrap().unwrap();
    assert_eq!(job.kind, "outcome");
    assert_eq!(job.payload["attempt"], 2);
    // A lease that expired is taken again (a crashed worker).
    let again = store.claim(-1).await.unwrap();
    assert!(again.is_none(), "lease still valid");
    let s = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Verifying);
    assert_eq!(store.list_sessions(10, 0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_store_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn expired_leases_are_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    store
        .intake(Platform::Github, "d1", failure("9", 1))
        .await
        .unwrap();
    let first = store.claim(-1).await.unwrap().unwrap();
    let second = store
        .claim(60_000)
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
    let admin = std::env::var("PIPEGUARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::any::install_default_drivers();
    let mut conn = match sqlx::AnyConnection::connect(&admin).await {
        Ok(c) => c,
        // CI has PostgreSQL running, so there its absence is a failure, not a skip.
        Err(e) if std::env::var("CI").is_err() => {
            eprintln!("skipping: PostgreSQL not reachable at {admin}: {e}");
            return;
        }
        Err(e) => panic!("PostgreSQL not reachable at {admin}: {e}"),
    };
    let name = format!("pipeguard_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!(),
    };
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
}
