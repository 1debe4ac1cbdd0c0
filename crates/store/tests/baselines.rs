//! Models of jobs' green runs on SQLite and on a fresh PostgreSQL database: stored per job,
//! replaced, sealed when encryption is on, rotated with the other columns, and removed by
//! retention.

#[macro_use]
mod common;

use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_store::{BaselineKey, Intake, Keyring, PurgeFilter, Store};
use sqlx::Row;

const DAY: i64 = 86_400_000;
const MODEL: &str = r#"{"version":1,"runs":[],"templates":"secret-template-bytes"}"#;

fn key(repo: &str, job: &str) -> BaselineKey {
    BaselineKey {
        platform: "github".into(),
        repository: repo.into(),
        workflow: "CI".into(),
        job: job.into(),
    }
}

async fn raw_model(store: &Store, url: &str) -> Vec<String> {
    let _ = store;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT model FROM baselines")
        .fetch_all(&pool)
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get("model").unwrap()).collect()
}

async fn stored_per_job_and_replaced(store: Store) {
    let (a, b) = (key("o/r", "test"), key("o/r", "lint"));
    assert_eq!(store.baseline(&a).await.unwrap(), None);
    store
        .put_baseline(&a, MODEL, &["1".to_string()])
        .await
        .unwrap();
    store
        .put_baseline(&b, "other", &["9".to_string()])
        .await
        .unwrap();
    store
        .put_baseline(&a, "newer", &["2".to_string(), "1".to_string()])
        .await
        .unwrap();
    let got = store.baseline(&a).await.unwrap().unwrap();
    assert_eq!(
        (got.model.as_str(), got.green_runs),
        ("newer", vec!["2".into(), "1".into()])
    );
    assert!(got.updated_at > pipeguard_store::now_ms() - 60_000);
    assert_eq!(store.baseline(&b).await.unwrap().unwrap().model, "other");
    // Another workflow of the same job name is another model.
    let mut c = a.clone();
    c.workflow = "Release".into();
    assert_eq!(store.baseline(&c).await.unwrap(), None);
}

async fn retention_deletes_old_and_repository_models(store: Store) {
    store
        .put_baseline(&key("o/r", "test"), MODEL, &[])
        .await
        .unwrap();
    store
        .put_baseline(&key("o/x", "test"), MODEL, &[])
        .await
        .unwrap();
    // Nothing is older than a day ago.
    let r = store
        .purge(
            &PurgeFilter {
                finished_before_ms: Some(pipeguard_store::now_ms() - DAY),
                repository: None,
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(r.baselines, 0);
    let r = store
        .purge(
            &PurgeFilter {
                finished_before_ms: None,
                repository: Some("o/x".into()),
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(r.baselines, 1);
    assert!(store.baseline(&key("o/x", "test")).await.unwrap().is_none());
    assert!(store.baseline(&key("o/r", "test")).await.unwrap().is_some());
    let r = store
        .purge(
            &PurgeFilter {
                finished_before_ms: Some(pipeguard_store::now_ms() + 1),
                repository: None,
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(r.baselines, 1);
    assert!(store.baseline(&key("o/r", "test")).await.unwrap().is_none());
}

async fn recent_failures_are_found_per_workflow(store: Store) {
    let since = pipeguard_store::now_ms() - 30 * DAY;
    assert!(!store
        .failed_since("github", "o/r", "CI", since)
        .await
        .unwrap());
    let ev = FailureEvent {
        platform: Some(Platform::Github),
        repository: "o/r".into(),
        run_id: "5".into(),
        attempt: 1,
        workflow: "CI".into(),
        ..Default::default()
    };
    store
        .intake(Platform::Github, "d1", "5", Intake::Failure(ev))
        .await
        .unwrap();
    assert!(store
        .failed_since("github", "o/r", "CI", since)
        .await
        .unwrap());
    assert!(!store
        .failed_since("github", "o/r", "Docs", since)
        .await
        .unwrap());
    assert!(!store
        .failed_since("gitlab", "o/r", "CI", since)
        .await
        .unwrap());
    let later = pipeguard_store::now_ms() + 1000;
    assert!(!store
        .failed_since("github", "o/r", "CI", later)
        .await
        .unwrap());
}

on_both_backends!(
    stored_per_job_and_replaced,
    retention_deletes_old_and_repository_models,
    recent_failures_are_found_per_workflow,
);

#[tokio::test]
async fn models_are_sealed_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let plain = Store::connect(&url).await.unwrap();
    let (k1, _) = Keyring::generate();
    let store = plain.clone().with_encryption(k1.clone());
    store
        .put_baseline(&key("o/r", "test"), MODEL, &["1".to_string()])
        .await
        .unwrap();
    let raw = raw_model(&store, &url).await;
    assert!(raw[0].starts_with("enc:v1:"), "{raw:?}");
    assert!(!raw[0].contains("secret-template-bytes"));
    assert!(plain.baseline(&key("o/r", "test")).await.is_err());
    assert_eq!(
        store
            .baseline(&key("o/r", "test"))
            .await
            .unwrap()
            .unwrap()
            .model,
        MODEL
    );
    let (k2, _) = Keyring::generate();
    let report = store.rotate_key(&k2, "test").await.unwrap();
    assert!(report
        .rewritten
        .iter()
        .any(|(c, n)| c == "baselines.model" && *n == 1));
    let rotated = plain.clone().with_encryption(k2);
    assert_eq!(
        rotated
            .baseline(&key("o/r", "test"))
            .await
            .unwrap()
            .unwrap()
            .model,
        MODEL
    );
}
