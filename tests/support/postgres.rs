//! A fresh PostgreSQL database per test, dropped afterwards. PostgreSQL that cannot be reached
//! is a skip on a developer's machine and a failure under `CI` (the sibling module `require`).
//!
//! Included by path beside `require.rs`; the admin URL is `PIPEGUARD_TEST_POSTGRES_URL` or
//! `postgres://postgres@127.0.0.1:5432/postgres`.
#![allow(dead_code)]

use sqlx::Connection;

pub struct FreshDatabase {
    /// The new database's URL.
    pub url: String,
    admin: sqlx::AnyConnection,
    name: String,
}

impl FreshDatabase {
    pub async fn create() -> Option<FreshDatabase> {
        let admin_url = std::env::var("PIPEGUARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        let mut admin = match sqlx::AnyConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                super::require::missing(&format!("PostgreSQL at {admin_url} ({e})"));
                return None;
            }
        };
        let name = format!("pipeguard_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("the admin URL names a database");
        Some(FreshDatabase {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// Drops the database, closing what connections to it are left.
    pub async fn drop_database(mut self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .unwrap();
    }
}
