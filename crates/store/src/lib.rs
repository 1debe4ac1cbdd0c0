//! Durable state of pipeguard: healing sessions, accepted deliveries and the job queue.
//!
//! One code path serves both backends through sqlx's `Any` driver: SQLite (embedded default,
//! one process) and PostgreSQL (many replicas; the queue is claimed with `SKIP LOCKED`).
//! Only integer, real and text columns are used so both behave the same; JSON is stored as text
//! and times as epoch milliseconds.

mod audit;
mod audit_key;
mod auth;
mod baselines;
mod batch;
mod crypto;
mod daily;
mod decisions;
mod flaky;
mod fresh_set;
pub mod hosts;
mod imported;
mod incidents;
mod intake;
mod learning;
mod queue;
mod retention;
mod rotation;
mod rows;
mod runners;
mod sessions;
mod stats;
mod verdicts;

pub use audit::{
    AuditEntry, AuditHead, AuditPin, AuditProblem, AuditQuery, AuditRecord, AuditReport,
    ProblemKind,
};
pub use audit_key::{audit_files_base, AuditAnchor, HeadRecord};
pub use auth::{ApprovalRecord, TokenRecord};
pub use baselines::{BaselineKey, BaselineRecord};
pub use batch::IntakeStats;
pub use crypto::Keyring;
pub use daily::{DayOutcome, DAY_MS};
pub use decisions::{DecisionRecord, DecisionRow, RepositoryDecisions, Revision};
pub use flaky::{NewQuarantine, Observation, QuarantineEntry, TestStats, QUARANTINE_DAYS};
pub use imported::ImportedSession;
pub use incidents::{IncidentRecord, IncidentSummary};
pub use intake::{Intake, IntakeOutcome, IntakeResult};
pub use queue::{quarantine_key, DeadLetter, Job, RetryDead, Task};
pub use retention::{PurgeFilter, PurgeReport};
pub use rotation::RotateReport;
pub use runners::{RunnerRecord, RunnerState};
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
    /// Which repositories have quarantined tests, as last read.
    quarantined_repos: Arc<fresh_set::FreshSet>,
    /// Which (repository, workflow, branch) have failures a push may still fix, as last read.
    unfixed_branches: Arc<fresh_set::FreshSet>,
    /// UPDATEs run to record push fixes.
    push_fix_updates: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened; `url` is shown without its password.
    #[error("cannot open database {url}: {cause}")]
    Open { url: String, cause: String },
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

/// A new session's id: time-ordered, so ids sort as sessions were created.
pub fn new_session_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects, creating the SQLite file when missing, and applies pending migrations.
    /// Every failure is one [`StoreError::Open`] line naming the URL without its password.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::open(url).await.map_err(|e| match e {
            StoreError::Open { .. } | StoreError::UnsupportedUrl(_) => e,
            other => StoreError::Open {
                url: redact_url(url),
                cause: other.to_string(),
            },
        })
    }

    async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let given = url;
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
        probe(backend, &url, given).await?;
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
            quarantined_repos: Default::default(),
            unfixed_branches: Default::default(),
            push_fix_updates: Default::default(),
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

    /// Where a single write statement goes. On SQLite the writer connection: there it queues
    /// behind intake's batches in the process instead of meeting them at SQLite's lock, whose
    /// busy handler sleeps 1 to 100 ms between tries — the worker's writes made intake wait so.
    pub(crate) fn writes(&self) -> &AnyPool {
        self.writer.as_ref().unwrap_or(&self.pool)
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

/// How long the first connection may take before start-up gives up: a pool would retry a
/// refused or broken connection until its acquire timeout, logging each try.
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// Opens one connection (and, on SQLite, reads the file) so that a wrong URL fails at once
/// with one line naming the cause, instead of the pool's retries.
async fn probe(backend: Backend, url: &str, given: &str) -> Result<()> {
    use sqlx::Connection;
    let open = async {
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        if backend == Backend::Sqlite {
            sqlite_setup(&mut conn).await?;
        }
        conn.close().await
    };
    let cause = match tokio::time::timeout(PROBE_TIMEOUT, open).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => open_cause(&e),
        Err(_) => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
    };
    Err(StoreError::Open {
        url: redact_url(given),
        cause,
    })
}

/// What went wrong opening a database, in the words a person setting the URL needs.
fn open_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL SQLSTATEs: wrong password, unknown or refused role (its message
            // says which), no such database; SQLite result codes SQLITE_NOTADB, SQLITE_CANTOPEN.
            Some("28P01") | Some("28000") => format!("authentication failed ({})", db.message()),
            Some("3D000") => "database does not exist".into(),
            Some("26") => "not a database file".into(),
            Some("14") => "cannot open or create the file".into(),
            _ => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// `url` with its password (in the user part or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let in_query = u.query_pairs().any(|(k, _)| k == "password");
    if u.password().is_none() && !in_query {
        return url.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if in_query {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/pipeguard"),
            "postgres://app:***@db.internal:5432/pipeguard"
        );
        let q = redact_url("postgres://db/pipeguard?user=app&password=s3cret&sslmode=require");
        assert!(
            !q.contains("s3cret") && q.contains("sslmode=require"),
            "{q}"
        );
        assert_eq!(redact_url("sqlite://pipeguard.db"), "sqlite://pipeguard.db");
    }

    /// What the README's upgrade notes promise: an older binary does not start on a database a
    /// newer one migrated (sqlx refuses an applied migration it does not know), and it leaves
    /// the database as it was.
    #[tokio::test]
    async fn an_older_binary_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = super::Store::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from a newer pipeguard', 1, x'00', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.close().await;
        let e = super::Store::connect(&url).await.err().unwrap().to_string();
        assert!(
            e.contains("migration 9999 was previously applied but is missing"),
            "{e}"
        );
        assert!(
            e.starts_with(&format!("cannot open database {url}: ")),
            "{e}"
        );
        // Untouched: the newer migration's record is still there, next to this binary's.
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(versions.contains(&9999), "{versions:?}");
        assert_eq!(versions.len(), super::SQLITE_MIGRATIONS.iter().count() + 1);
    }
}
