//! Backends for store tests: a temporary SQLite file, or a fresh PostgreSQL database that is
//! dropped afterwards.
#![allow(dead_code)]

#[path = "../../../../tests/support/require.rs"]
mod require;

#[path = "../../../../tests/support/postgres.rs"]
mod postgres;

use pipeguard_store::Store;

/// Runs `sql` as someone with direct access to the database would; returns the rows changed.
pub async fn exec(store: &Store, sql: &str) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(store.pool())
        .await
        .unwrap()
        .rows_affected()
}

pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    (store, dir)
}

pub struct FreshPostgres {
    pub store: Store,
    /// The fresh database's URL, for a second connection of a test's own.
    pub url: String,
    db: postgres::FreshDatabase,
}

impl FreshPostgres {
    /// `None` (with a message) when PostgreSQL is not reachable outside CI; CI has it running,
    /// so there its absence is a failure, not a skip.
    pub async fn create() -> Option<FreshPostgres> {
        let db = postgres::FreshDatabase::create().await?;
        let store = Store::connect(&db.url).await.unwrap();
        Some(FreshPostgres {
            store,
            url: db.url.clone(),
            db,
        })
    }

    pub async fn drop_database(self) {
        self.store.close().await;
        self.db.drop_database().await;
    }
}

/// One `#[tokio::test]` per scenario and backend (`mod sqlite`, `mod postgres`), each calling the
/// including file's `async fn NAME(store: Store)`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let (store, _dir) = super::common::sqlite().await;
                super::$name(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(pg) = super::common::FreshPostgres::create().await else {
                    return;
                };
                super::$name(pg.store.clone()).await;
                pg.drop_database().await;
            })*
        }
    };
}
