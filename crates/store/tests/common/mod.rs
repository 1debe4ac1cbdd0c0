//! Backends for store tests: a temporary SQLite file, or a fresh PostgreSQL database that is
//! dropped afterwards.
#![allow(dead_code)]

use pipeguard_store::Store;
use sqlx::Connection;

pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    (store, dir)
}

pub struct FreshPostgres {
    pub store: Store,
    /// The fresh database's URL, for a second store on it (another replica).
    pub url: String,
    conn: sqlx::AnyConnection,
    name: String,
}

impl FreshPostgres {
    /// `None` (with a message) when PostgreSQL is not reachable outside CI; CI has it running,
    /// so there its absence is a failure, not a skip.
    pub async fn create() -> Option<FreshPostgres> {
        let admin = std::env::var("PIPEGUARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        let mut conn = match sqlx::AnyConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_err() => {
                eprintln!("skipping: PostgreSQL not reachable at {admin}: {e}");
                return None;
            }
            Err(e) => panic!("PostgreSQL not reachable at {admin}: {e}"),
        };
        let name = format!("pipeguard_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the admin URL names a database");
        let url = format!("{base}/{name}");
        let store = Store::connect(&url).await.unwrap();
        Some(FreshPostgres {
            store,
            url,
            conn,
            name,
        })
    }

    pub async fn drop_database(mut self) {
        self.store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {}", self.name)))
            .execute(&mut self.conn)
            .await
            .unwrap();
    }
}
