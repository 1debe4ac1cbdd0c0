//! Key rotation: re-encrypts every encrypted column with a new key, in small batches.
//!
//! Each row is rewritten only if it still holds the value that was read (compare and set), so
//! a row a server changes meanwhile is never overwritten; it is taken again in another pass.
//! Rows already sealed with the new key are skipped, so an interrupted rotation is resumed by
//! running it again. Plaintext rows (written before encryption was on) are encrypted too.

use crate::audit::{audit_in, AuditEntry};
use crate::crypto::{open, seal, sealed_with, Field, Keyring};
use crate::{Result, Store, StoreError};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

const BATCH: i64 = 100;
/// Passes over rows that changed under a pass, before giving up on them.
const MAX_PASSES: u32 = 3;

/// An encrypted column and the key its rows are walked by.
struct Column {
    table: &'static str,
    key: &'static str,
    text_key: bool,
    col: &'static str,
    field: Field,
}

const COLUMNS: [Column; 5] = [
    Column {
        table: "sessions",
        key: "id",
        text_key: true,
        col: "event",
        field: Field::SessionEvent,
    },
    Column {
        table: "sessions",
        key: "id",
        text_key: true,
        col: "diagnosis",
        field: Field::SessionDiagnosis,
    },
    Column {
        table: "verdicts",
        key: "id",
        text_key: false,
        col: "evidence",
        field: Field::VerdictEvidence,
    },
    Column {
        table: "jobs",
        key: "id",
        text_key: false,
        col: "payload",
        field: Field::JobPayload,
    },
    Column {
        table: "baselines",
        key: "id",
        text_key: true,
        col: "model",
        field: Field::BaselineModel,
    },
];

#[derive(Debug, Clone, PartialEq)]
enum RowKey {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowKey::Int(i) => write!(f, "{i}"),
            RowKey::Text(s) => f.write_str(s),
        }
    }
}

fn bind_key<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    k: &RowKey,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match k {
        RowKey::Int(i) => q.bind(*i),
        RowKey::Text(s) => q.bind(s.clone()),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RotateReport {
    /// The key everything is sealed with now.
    pub key_id: String,
    /// Values re-encrypted (or encrypted for the first time), per `table.column`.
    pub rewritten: Vec<(String, u64)>,
    /// Values already sealed with the new key (an earlier, interrupted run).
    pub already_current: u64,
    /// Values a server kept changing during every pass: run the rotation again.
    pub left_behind: u64,
}

#[derive(Default)]
struct Pass {
    rewritten: u64,
    already_current: u64,
    changed: u64,
}

impl Store {
    /// Re-encrypts every encrypted value with `new`'s current key, reading with this store's
    /// keys and `new`'s. Run the servers with `new` first in their keyring (older keys after
    /// it) while it runs, so they write nothing with the old key meanwhile.
    pub async fn rotate_key(&self, new: &Keyring, actor: &str) -> Result<RotateReport> {
        let reader = match self.keys() {
            Some(old) => new.with_older(old),
            None => new.clone(),
        };
        let mut report = RotateReport {
            key_id: new.current_id().to_string(),
            ..Default::default()
        };
        for c in &COLUMNS {
            let (mut done, mut left) = (0, 0);
            for _ in 0..MAX_PASSES {
                let pass = self.rotate_column(c, &reader, new).await?;
                done += pass.rewritten;
                report.already_current += pass.already_current;
                left = pass.changed;
                if left == 0 {
                    break;
                }
            }
            report.left_behind += left;
            report
                .rewritten
                .push((format!("{}.{}", c.table, c.col), done));
        }
        self.audit_rotation(&reader, &report, actor).await?;
        Ok(report)
    }

    async fn audit_rotation(&self, reader: &Keyring, r: &RotateReport, actor: &str) -> Result<()> {
        let from: Vec<&str> = reader.ids().into_iter().skip(1).collect();
        let rewritten: serde_json::Map<String, serde_json::Value> = r
            .rewritten
            .iter()
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        let detail = json!({"from": from, "to": r.key_id, "rewritten": rewritten,
            "left_behind": r.left_behind});
        let mut conn = self.pool.acquire().await?;
        audit_in(
            &mut conn,
            &AuditEntry::new(actor, "key.rotated", &r.key_id, detail),
        )
        .await
    }

    /// One pass over a column, in key order.
    async fn rotate_column(&self, c: &Column, reader: &Keyring, new: &Keyring) -> Result<Pass> {
        let mut pass = Pass::default();
        let mut after: Option<RowKey> = None;
        loop {
            let rows = self.rotation_batch(c, after.as_ref()).await?;
            let Some((last, _)) = rows.last() else {
                return Ok(pass);
            };
            after = Some(last.clone());
            let mut tx = self.begin_write().await?;
            for (key, stored) in rows {
                if sealed_with(&stored) == Some(new.current_id()) {
                    pass.already_current += 1;
                    continue;
                }
                let plain = open(Some(reader), c.field, stored.clone())
                    .map_err(|e| unreadable(c, &key, e))?;
                let sealed = seal(Some(new), c.field, plain)?;
                let sql = format!(
                    "UPDATE {} SET {} = $1 WHERE {} = $2 AND {} = $3",
                    c.table, c.col, c.key, c.col
                );
                let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sealed);
                let n = bind_key(q, &key)
                    .bind(stored)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    pass.rewritten += 1;
                } else {
                    pass.changed += 1;
                }
            }
            tx.commit().await?;
        }
    }

    async fn rotation_batch(
        &self,
        c: &Column,
        after: Option<&RowKey>,
    ) -> Result<Vec<(RowKey, String)>> {
        let from = if after.is_some() {
            format!("AND {} > $2", c.key)
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {key} AS k, {col} AS v FROM {t} WHERE {col} IS NOT NULL {from} \
             ORDER BY {key} LIMIT $1",
            key = c.key,
            col = c.col,
            t = c.table
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(BATCH);
        if let Some(k) = after {
            q = bind_key(q, k);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| row_key(c, r)).collect()
    }
}

fn unreadable(c: &Column, key: &RowKey, e: StoreError) -> StoreError {
    StoreError::Crypto(format!(
        "{} row {key}: {e}; the keys that sealed existing data must be configured \
         (PIPEGUARD_ENCRYPTION_KEY or [encryption] key_file)",
        c.table
    ))
}

fn row_key(c: &Column, r: &AnyRow) -> Result<(RowKey, String)> {
    let key = if c.text_key {
        RowKey::Text(r.try_get("k")?)
    } else {
        RowKey::Int(r.try_get("k")?)
    };
    Ok((key, r.try_get("v")?))
}
