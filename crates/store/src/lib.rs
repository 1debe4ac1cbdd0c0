//! Durable state of pipeguard: healing sessions, accepted deliveries and the job queue.
//!
//! One code path serves both backends through sqlx's `Any` driver: SQLite (embedded default,
//! one process) and PostgreSQL (many replicas; the queue is claimed with `SKIP LOCKED`).
//! Only integer, real and text columns are used so both behave the same; JSON is stored as text
//! and times as epoch milliseconds.

mod audit;
mod audit_key;
mod auth;
mod batch;
mod crypto;
mod daily;
mod flaky;
pub mod hosts;
mod intake;
mod learning;
mod queue;
mod retention;
mod rotation;
mod rows;
mod sessions;
mod stats;
mod verdicts;

pub use audit::{
    AuditEntry, AuditHead, AuditPin, AuditProblem, AuditQuery, AuditRecord, AuditReport,
    ProblemKind,
};
pub use audit_key::{audit_files_base, AuditAnchor, HeadRecord};
pub use auth::{ApprovalRecord, TokenRecord};
pub use batch::IntakeStats;
pub use crypto::Keyring;
pub use daily::{DayOutcome, DAY_MS};
pub use flaky::{Observation, QuarantineEntry, TestStats};
pub use intake::{Intake, IntakeOutcome, IntakeResult};
pub use queue::{DeadLetter, Job, RetryDead, Task};
pub use retention::{PurgeFilter, PurgeReport};
pub use rotation::RotateReport;
pub use sessions::{
    ActionRecord, SessionFilter, SessionRecord, SessionStatus, SessionUpdate, Transition,
};
pub use stats::{FingerprintCount, OutcomeCount, SessionFacts};
pub use verdicts::{ConfusionCell, VerdictRecord};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite: the one connection write transactions take. SQLite writes one at a time
    /// anyway; in one connection they queue without the busy handler's sleeps, and its page
    /// cache stays warm (a connection drops its cache when another one wrote).
    writer: Option<AnyPool>,
    backend: Backend,
    /// Set when payloads, logs and evidence are encrypted at rest.
    keys: Option<Arc<Keyring>>,
    /// The queue to intake's group-commit writers.
    intake: Arc<batch::Batcher>,
    /// The audit chain's key and head, kept outside the database.
    audit: Arc<AuditAnchor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects, creating the SQLite file when missing, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let mut u = format!("sqlite://{rest}");
            if !rest.contains("mode=") && rest != ":memory:" {
                u.push_str(if rest.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
            (Backend::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let pool = sqlite_pool(4).connect(&url).await?;
                SQLITE_MIGRATIONS.run(&pool).await?;
                // An in-memory database is one per connection: it keeps the one pool.
                let writer = if url.contains(":memory:") {
                    None
                } else {
                    tokio::spawn(checkpoints(pool.clone()));
                    let writer = sqlite_pool(1).after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlite_setup(conn).await?;
                            // `checkpoints` does it beside the writer, not in its commits.
                            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    });
                    Some(writer.connect_lazy(&url)?)
                };
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&url)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                (pool, None)
            }
        };
        Ok(Store {
            pool,
            writer,
            backend,
            keys: None,
            intake: Default::default(),
            audit: Default::default(),
        })
    }

    /// The same store, encrypting payloads, logs and evidence with `keys`' current key and
    /// reading what any of its keys sealed.
    pub fn with_encryption(mut self, keys: Keyring) -> Store {
        self.keys = Some(Arc::new(keys));
        // Writers started before hold the store without the keys.
        self.intake = Default::default();
        self
    }

    /// The same store, sealing and verifying the audit trail with `anchor`'s key and head.
    pub fn with_audit_anchor(mut self, anchor: AuditAnchor) -> Store {
        self.audit = Arc::new(anchor);
        self
    }

    pub(crate) fn keys(&self) -> Option<&Keyring> {
        self.keys.as_deref()
    }

    /// The keyring's current key id, when encryption is on.
    pub fn encryption_key_id(&self) -> Option<&str> {
        self.keys().map(Keyring::current_id)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once, so two writers
    /// queue on the busy timeout instead of failing on a lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let pool = self.writer.as_ref().unwrap_or(&self.pool);
                pool.begin_with("BEGIN IMMEDIATE").await?
            }
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close().await;
        }
        self.pool.close().await;
    }
}

pub(crate) fn opt_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn parse_col<T: FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{col}={s:?}")))
}

/// SQLite connections of `max` at most, set up for one writer beside readers.
fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| Box::pin(async move { sqlite_setup(conn).await }))
}

async fn sqlite_setup(conn: &mut sqlx::AnyConnection) -> sqlx::Result<()> {
    // WAL lets readers run beside the writer; the busy timeout queues writers of other
    // processes.
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA busy_timeout = 10000",
        "PRAGMA synchronous = NORMAL",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Copies the WAL into the database file each second, on a reader connection: a checkpoint
/// syncs the file, and inside the writer's commit that wait would hold every delivery back.
/// Ends when the store is closed.
async fn checkpoints(pool: AnyPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if !pool.is_closed() {
                tracing::warn!("WAL checkpoint failed: {e}");
            }
        }
    }
}
