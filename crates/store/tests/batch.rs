//! Group commit on both backends: deliveries that arrive together share one transaction, and
//! dedupe, twins and failures are answered exactly as if each had been stored alone.

mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{Intake, IntakeOutcome, IntakeResult, Result, Store};
use sqlx::Row;

fn failure(repository: &str, run: &str) -> Intake {
    Intake::Failure(FailureEvent {
        platform: Some(Platform::Github),
        repository: repository.into(),
        run_id: run.into(),
        attempt: 1,
        ..Default::default()
    })
}

/// Submits all deliveries before the writer runs (the test runtime has one thread), so they
/// reach it together; answers in submission order.
async fn together(store: &Store, deliveries: &[(&str, Intake)]) -> Vec<Result<IntakeResult>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (id, intake)) in deliveries.iter().enumerate() {
        let (store, id, intake) = (store.clone(), id.to_string(), intake.clone());
        set.spawn(async move {
            let run = match &intake {
                Intake::Failure(ev) => ev.run_id.clone(),
                Intake::Success { run_id, .. } => run_id.clone(),
            };
            (i, store.intake(Platform::Github, &id, &run, intake).await)
        });
    }
    let mut answers: Vec<_> = set.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, r)| r).collect()
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

fn session_of(r: &Result<IntakeResult>) -> String {
    r.as_ref()
        .unwrap()
        .outcome
        .session_id()
        .unwrap()
        .to_string()
}

/// The same delivery id four times and a twin (same run, another id) in one batch: one
/// session, one "received", the replays answered with that same outcome, the twin as a
/// duplicate of it.
async fn same_delivery_in_one_batch(store: &Store) {
    let before = store.intake_stats();
    let d = failure("o/r", "1");
    let answers = together(
        store,
        &[
            ("d1", d.clone()),
            ("d1", d.clone()),
            ("d1", d.clone()),
            ("d2", d.clone()),
            ("d1", d),
        ],
    )
    .await;
    let after = store.intake_stats();
    assert_eq!(
        (
            after.batches - before.batches,
            after.deliveries - before.deliveries
        ),
        (1, 5)
    );
    let first = answers[0].as_ref().unwrap();
    let id = session_of(&answers[0]);
    assert_eq!(
        first.outcome,
        IntakeOutcome::Created {
            session_id: id.clone()
        }
    );
    assert!(!first.replay);
    for r in [&answers[1], &answers[2], &answers[4]] {
        let r = r.as_ref().unwrap();
        assert!(r.replay, "{r:?}");
        assert_eq!(r.outcome, first.outcome);
    }
    assert!(matches!(
        &answers[3].as_ref().unwrap().outcome,
        IntakeOutcome::Duplicate { session_id, .. } if *session_id == id
    ));
    assert_eq!(count(store, "SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(count(store, "SELECT COUNT(*) FROM deliveries").await, 2);
    assert_eq!(count(store, "SELECT COUNT(*) FROM jobs").await, 1);
    // A later batch replays it too.
    let again = store
        .intake(Platform::Github, "d1", "1", failure("o/r", "1"))
        .await
        .unwrap();
    assert!(again.replay);
    assert_eq!(again.outcome, first.outcome);
}

/// A delivery whose insert fails (a trigger refuses its repository) fails alone: the batch
/// is rolled back and its other deliveries are stored one by one; the failed one left no
/// row, so once the cause is gone it is stored like new.
async fn a_failing_delivery_fails_alone(store: &Store, poison: &[&str], cure: &str) {
    for sql in poison {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(store.pool())
            .await
            .unwrap();
    }
    let before = store.intake_stats();
    let answers = together(
        store,
        &[
            ("p1", failure("o/a", "10")),
            ("p2", failure("o/b", "11")),
            ("p3", failure("o/poison", "12")),
            ("p4", failure("o/c", "13")),
        ],
    )
    .await;
    let after = store.intake_stats();
    assert_eq!(after.split - before.split, 1);
    assert!(answers[2].is_err(), "{:?}", answers[2]);
    for i in [0, 1, 3] {
        assert!(
            matches!(
                answers[i].as_ref().unwrap().outcome,
                IntakeOutcome::Created { .. }
            ),
            "{:?}",
            answers[i]
        );
    }
    let poisoned = "FROM sessions WHERE repository = 'o/poison'";
    assert_eq!(
        count(store, &format!("SELECT COUNT(*) {poisoned}")).await,
        0
    );
    let gone = "SELECT COUNT(*) FROM deliveries WHERE delivery_id = 'p3'";
    assert_eq!(count(store, gone).await, 0);
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM deliveries WHERE delivery_id LIKE 'p%'"
        )
        .await,
        3
    );
    sqlx::query(sqlx::AssertSqlSafe(cure.to_string()))
        .execute(store.pool())
        .await
        .unwrap();
    let retried = store
        .intake(Platform::Github, "p3", "12", failure("o/poison", "12"))
        .await
        .unwrap();
    assert!(matches!(retried.outcome, IntakeOutcome::Created { .. }));
}

const SQLITE_POISON: &str = "CREATE TRIGGER poison BEFORE INSERT ON sessions \
     WHEN NEW.repository = 'o/poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END";
const PG_POISON: [&str; 2] = [
    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
     IF NEW.repository = 'o/poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER poison BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION poison()",
];

#[tokio::test]
async fn sqlite_batches_dedupe_and_isolate_failures() {
    let (store, _dir) = common::sqlite().await;
    same_delivery_in_one_batch(&store).await;
    a_failing_delivery_fails_alone(&store, &[SQLITE_POISON], "DROP TRIGGER poison").await;
}

#[tokio::test]
async fn postgres_batches_dedupe_and_isolate_failures() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    same_delivery_in_one_batch(&pg.store).await;
    a_failing_delivery_fails_alone(&pg.store, &PG_POISON, "DROP TRIGGER poison ON sessions").await;
    pg.drop_database().await;
}

/// Two replicas take the same deliveries at the same time, each in its own batches: each
/// delivery is stored once and both answer it with the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_racing_on_the_same_deliveries_agree() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    let other = Store::connect(&pg.url).await.unwrap();
    let deliveries: Vec<(String, Intake)> = (0..60)
        .map(|i| {
            (
                format!("r{}", i % 40),
                failure("o/r", &(i % 40 / 2).to_string()),
            )
        })
        .collect();
    let send = |store: Store| {
        let deliveries = deliveries.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for (id, intake) in deliveries {
                let store = store.clone();
                set.spawn(async move {
                    let run = match &intake {
                        Intake::Failure(ev) => ev.run_id.clone(),
                        Intake::Success { run_id, .. } => run_id.clone(),
                    };
                    let r = store.intake(Platform::Github, &id, &run, intake).await;
                    (
                        id,
                        run,
                        r.unwrap().outcome.session_id().unwrap().to_string(),
                    )
                });
            }
            set.join_all().await
        })
    };
    let (a, b) = (send(pg.store.clone()), send(other.clone()));
    let mut session_of_run = std::collections::HashMap::new();
    for (_, run, session) in a.await.unwrap().into_iter().chain(b.await.unwrap()) {
        let first = session_of_run.entry(run.clone()).or_insert(session.clone());
        assert_eq!(*first, session, "run {run} answered with two sessions");
    }
    assert_eq!(session_of_run.len(), 20);
    assert_eq!(count(&pg.store, "SELECT COUNT(*) FROM sessions").await, 20);
    assert_eq!(
        count(&pg.store, "SELECT COUNT(*) FROM deliveries").await,
        40
    );
    assert_eq!(count(&pg.store, "SELECT COUNT(*) FROM jobs").await, 20);
    other.close().await;
    pg.drop_database().await;
}
