//! The audit trail: who did what to which target, as an append-only keyed hash chain.
//!
//! Entries are inserted without a seal inside the business transaction that does the audited
//! work, so the hot path takes no global lock and several replicas can write at once. A sealer
//! ([`Store::seal_audit`], about every second) then chains the unsealed entries newer than the
//! head in id order under one lock: each gets the next `seq`, the previous entry's hash and
//! its own HMAC, keyed with a key the database does not hold (see [`crate::AuditAnchor`]).
//! The sealer records the head it reached in a signed head file beside the key, so a cut-off
//! tail is found, and it never seals an entry older than the head: one whose seal was removed
//! stays reported. Entries sealed before chains were keyed (`chain_key` NULL) keep their
//! sha256 seals; the first keyed entry's HMAC covers their last hash.
//!
//! `detail` is metadata (ids, names, counts), never payloads: it is stored in the clear, with
//! secrets redacted, so the chain can be verified without decrypting and does not change when
//! the key is rotated.

use crate::audit_key::{AuditAnchor, ChainKey};
use crate::{now_ms, opt_str, Backend, Result, Store, StoreError};
use hmac::Mac;
use pipeguard_core::analysis::redact::redact;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The hash the first entry links to.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Key of the PostgreSQL advisory lock that serialises sealers across replicas.
const SEAL_LOCK: i64 = 0x7069_7065_6175_6474; // "pipeaudt"
const SEAL_BATCH: i64 = 500;
const VERIFY_PAGE: i64 = 1000;
/// Unsealed entries older than this mean the sealer is not running (or rows were forged).
const STALE_MS: i64 = 60_000;

/// One audited event, as callers describe it; the store adds the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who: `webhook:github`, `user:alice`, `token:ci-bot`, `worker`, `cli:root`…
    pub actor: String,
    /// What: `webhook.accepted`, `session.diagnosed`, `approval.granted`, `command.run`,
    /// `platform.call`, `token.created`, `auth.failed`, `data.purged`, `key.rotated`…
    pub action: String,
    /// On what: a session id, a token name, a repository.
    pub target: String,
    /// Metadata only (ids, counts, names); strings are redacted before they are stored.
    pub detail: Value,
}

impl AuditEntry {
    pub fn new(actor: &str, action: &str, target: &str, detail: Value) -> AuditEntry {
        AuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        }
    }
}

/// A stored entry. `seq`, `prev_hash` and `hash` are `None` until it is sealed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub seq: Option<i64>,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// Which entries `audit_entries` lists, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// At most this many (1 to 1000; 0 means 100).
    pub limit: i64,
    pub offset: i64,
    /// An action (`approval.granted`) or a family of them (`approval.*`).
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
}

/// The last sealed entry: record `seq` and `hash` elsewhere to detect a rewritten tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: i64,
    pub id: i64,
    pub hash: String,
}

/// A head recorded earlier: the entry at `seq` must still have this hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPin {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The entry's content does not match its hash.
    Edited,
    /// Sealed entries are missing before this one (a gap in `seq`).
    Deleted,
    /// Its `prev_hash` is not the previous entry's hash: an entry was removed or replaced
    /// and the chain renumbered or rehashed from there.
    BrokenLink,
    /// The entry at a pinned `seq` is gone or has another hash: the tail was rewritten.
    PinMismatch,
    /// The table ends before the head the sealer recorded outside it (or that record is
    /// missing or edited): entries at the end were deleted.
    Truncated,
    /// Unsealed entries older than sealed ones: their seals were removed.
    SealRemoved,
    /// Sealed with a key this verifier does not hold: it could not be checked.
    UnknownKey,
}

/// The first entry that fails verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditProblem {
    pub seq: i64,
    /// The stored entry at fault, when there is one (a deleted entry has none).
    pub id: Option<i64>,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// Sealed entries checked.
    pub sealed: i64,
    /// Entries not sealed yet (normal for about a second after they are written).
    pub unsealed: i64,
    /// Unsealed entries older than a minute: the sealer is not running, or rows were forged.
    pub unsealed_stale: i64,
    /// The last sealed entry, when the chain is intact up to it.
    pub head: Option<AuditHead>,
    pub problem: Option<AuditProblem>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// The trail could not be checked (a key is missing), rather than found broken.
    pub fn is_unchecked(&self) -> bool {
        self.problem
            .as_ref()
            .is_some_and(|p| p.kind == ProblemKind::UnknownKey)
    }
}

/// Masks secrets in every string of a detail value.
fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => *s = redact(s),
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        Value::Object(o) => o.values_mut().for_each(redact_value),
        _ => {}
    }
}

/// Appends an unsealed entry on `conn`, inside the caller's transaction.
pub(crate) async fn audit_in(conn: &mut sqlx::AnyConnection, e: &AuditEntry) -> Result<()> {
    audit_all_in(conn, std::slice::from_ref(e)).await
}

/// Appends unsealed entries in one statement, in order, inside the caller's transaction.
pub(crate) async fn audit_all_in(conn: &mut sqlx::AnyConnection, es: &[AuditEntry]) -> Result<()> {
    if es.is_empty() {
        return Ok(());
    }
    let values = crate::rows::values(conn, "($, $, $, $, $)", es.len());
    let sql = if conn.backend_name() == "SQLite" {
        format!("INSERT INTO audit_log (at, actor, action, target, detail) {values}")
    } else {
        // Held until commit, so the sealer (exclusive on the same key) waits for every entry
        // that already has an id: none can commit behind the head it seals.
        format!(
            "INSERT INTO audit_log (at, actor, action, target, detail) \
             SELECT v.* FROM ({values}) AS v (at, actor, action, target, detail) \
             CROSS JOIN (SELECT pg_advisory_xact_lock_shared({SEAL_LOCK})) AS l"
        )
    };
    let now = now_ms();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in es {
        let mut detail = e.detail.clone();
        redact_value(&mut detail);
        q = q
            .bind(now)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(detail.to_string());
    }
    q.execute(conn).await?;
    Ok(())
}

/// The fields an entry's hash covers, as stored.
struct Sealable {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    /// The stored text, hashed as it is so no re-serialisation can change it.
    detail: String,
}

impl Sealable {
    fn from_row(r: &AnyRow) -> Result<Sealable> {
        Ok(Sealable {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            target: r.try_get("target")?,
            detail: r.try_get("detail")?,
        })
    }

    /// The length-prefixed fields, so no two field lists hash alike.
    fn parts(&self, seq: i64, prev_hash: &str) -> Vec<u8> {
        let numbers = [seq.to_string(), self.id.to_string(), self.at.to_string()];
        let texts = [
            self.actor.as_str(),
            &self.action,
            &self.target,
            &self.detail,
            prev_hash,
        ];
        let mut out = Vec::new();
        for part in numbers.iter().map(String::as_str).chain(texts) {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// The seal: an HMAC with the chain key, or (entries sealed before chains were keyed,
    /// `key` None) a plain sha256 anyone could recompute.
    fn hash(&self, seq: i64, prev_hash: &str, key: Option<&ChainKey>) -> String {
        let parts = self.parts(seq, prev_hash);
        match key {
            Some(k) => {
                let mut m = k.mac();
                m.update(b"pipeguard-audit-v2");
                m.update(&parts);
                hex::encode(m.finalize().into_bytes())
            }
            None => {
                let mut h = Sha256::new();
                h.update(b"pipeguard-audit-v1");
                h.update(&parts);
                hex::encode(h.finalize())
            }
        }
    }
}

/// The last sealed entry in the table.
struct TableHead {
    seq: i64,
    id: i64,
    hash: String,
}

async fn table_head(conn: &mut sqlx::AnyConnection) -> Result<Option<TableHead>> {
    let r = sqlx::query(
        "SELECT seq, id, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    r.map(|r| {
        Ok(TableHead {
            seq: r.try_get("seq")?,
            id: r.try_get("id")?,
            hash: opt_str(&r, "hash")?.unwrap_or_default(),
        })
    })
    .transpose()
}

impl Store {
    /// Appends an entry in its own transaction (for work done outside the store's
    /// transactions: platform calls, commands, logins).
    pub async fn audit(&self, e: AuditEntry) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        audit_in(&mut conn, &e).await
    }

    /// Chains every unsealed entry newer than the head, in id order, with the chain key.
    /// Safe to run from every replica at once: sealers take turns on one lock. Refuses to
    /// seal when the table no longer holds the head recorded outside it. Returns the entries
    /// sealed.
    pub async fn seal_audit(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.seal_batch().await?;
            total += n;
            if (n as i64) < SEAL_BATCH {
                return Ok(total);
            }
        }
    }

    async fn seal_batch(&self) -> Result<usize> {
        let key = self.audit.sealing_key()?.clone();
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Exclusive against the writers' shared hold: once it is granted, every entry
            // with a lower id has committed, so none can appear behind the head later. The
            // lock function returns `void`, which the Any driver cannot decode.
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(SEAL_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let head = table_head(&mut tx).await?;
        if let Some(why) = self.anchor_mismatch(&mut tx, head.as_ref()).await? {
            return Err(StoreError::Invalid(format!(
                "audit trail tampered, not sealing: {why}"
            )));
        }
        let (mut seq, mut prev, after) = match head {
            Some(h) => (h.seq, h.hash, h.id),
            None => (0, GENESIS.to_string(), i64::MIN),
        };
        // Only entries newer than the head: one whose seal was removed stays unsealed, and
        // verify names it.
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log \
             WHERE seq IS NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(SEAL_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let mut last_id = None;
        for r in &rows {
            let e = Sealable::from_row(r)?;
            seq += 1;
            let hash = e.hash(seq, &prev, Some(&key));
            sqlx::query(
                "UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3, chain_key = $4 \
                 WHERE id = $5",
            )
            .bind(seq)
            .bind(&prev)
            .bind(&hash)
            .bind(&key.id)
            .bind(e.id)
            .execute(&mut *tx)
            .await?;
            prev = hash;
            last_id = Some(e.id);
        }
        tx.commit().await?;
        if let Some(id) = last_id {
            self.audit.set_head(seq, id, &prev)?;
        }
        Ok(rows.len())
    }

    /// Why the table does not hold the head recorded outside it, if it does not.
    async fn anchor_mismatch(
        &self,
        conn: &mut sqlx::AnyConnection,
        head: Option<&TableHead>,
    ) -> Result<Option<String>> {
        let Some(rec) = self.audit.head()? else {
            return Ok(None);
        };
        let at = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(rec.seq)
            .fetch_optional(conn)
            .await?;
        let ends = head.map_or(0, |h| h.seq);
        Ok(match at {
            None => Some(format!(
                "truncated: the head file says seq {}, the table ends at seq {ends}",
                rec.seq
            )),
            Some(r) if opt_str(&r, "hash")?.as_deref() != Some(rec.hash.as_str()) => Some(format!(
                "the entry at seq {} is not the one the head file recorded: the chain \
                     was rewritten from there",
                rec.seq
            )),
            Some(_) => None,
        })
    }

    /// Walks the sealed entries by `seq`, recomputing every seal, and names the first entry
    /// that was edited or deleted, a tail cut off behind the recorded head, or an entry
    /// whose seal was removed.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        self.verify_audit_pinned(None).await
    }

    /// [`Store::verify_audit`], also checking that the entry at a head recorded elsewhere
    /// still has the recorded hash.
    pub async fn verify_audit_pinned(&self, pin: Option<&AuditPin>) -> Result<AuditReport> {
        let mut pins: Vec<(AuditPin, PinSource)> = pin
            .map(|p| (p.clone(), PinSource::Given))
            .into_iter()
            .collect();
        match self.audit.head() {
            Ok(Some(h)) => pins.push((
                AuditPin {
                    seq: h.seq,
                    hash: h.hash,
                },
                PinSource::HeadFile,
            )),
            Ok(None) => {}
            Err(e) => return self.audit_report(Walk::failed(e.to_string())).await,
        }
        let mut walk = Walk::new(&self.audit, pins);
        'pages: loop {
            let rows = sqlx::query(
                "SELECT id, seq, at, actor, action, target, detail, prev_hash, hash, chain_key \
                 FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(walk.seq)
            .bind(VERIFY_PAGE)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                if walk.step(r)? {
                    break 'pages;
                }
            }
            if (rows.len() as i64) < VERIFY_PAGE {
                break;
            }
        }
        walk.finish();
        if walk.problem.is_none() {
            walk.problem = self.seal_removed(walk.max_id).await?;
        }
        self.audit_report(walk).await
    }

    /// Unsealed entries older than a sealed one: the sealer never leaves those behind, so
    /// their seal was removed.
    async fn seal_removed(&self, max_sealed_id: Option<i64>) -> Result<Option<AuditProblem>> {
        let Some(max) = max_sealed_id else {
            return Ok(None);
        };
        let r = sqlx::query(
            "SELECT MIN(id) AS id, COUNT(*) AS n FROM audit_log WHERE seq IS NULL AND id < $1",
        )
        .bind(max)
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = r.try_get("n")?;
        let first: Option<i64> = r.try_get("id")?;
        Ok(first.filter(|_| n > 0).map(|id| AuditProblem {
            seq: 0,
            id: Some(id),
            kind: ProblemKind::SealRemoved,
            message: format!(
                "{n} unsealed entries (from id {id}) are older than sealed entry id {max}: \
                 their seals were removed"
            ),
        }))
    }

    async fn audit_report(&self, walk: Walk<'_>) -> Result<AuditReport> {
        let r = sqlx::query(
            "SELECT SUM(CASE WHEN seq IS NOT NULL THEN 1 ELSE 0 END) AS sealed, \
             SUM(CASE WHEN seq IS NULL THEN 1 ELSE 0 END) AS unsealed, \
             SUM(CASE WHEN seq IS NULL AND at < $1 THEN 1 ELSE 0 END) AS stale \
             FROM audit_log",
        )
        .bind(now_ms() - STALE_MS)
        .fetch_one(&self.pool)
        .await?;
        let n = |c: &str| -> Result<i64> { Ok(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0)) };
        Ok(AuditReport {
            sealed: n("sealed")?,
            unsealed: n("unsealed")?,
            unsealed_stale: n("stale")?,
            head: walk.problem.is_none().then_some(walk.head).flatten(),
            problem: walk.problem,
        })
    }

    /// Entries newest first, for the API.
    pub async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut filters = Vec::new();
        let mut binds = Vec::new();
        if let Some(a) = &q.action {
            match a.strip_suffix(".*") {
                Some(family) => {
                    filters.push(format!("action LIKE ${}", binds.len() + 1));
                    binds.push(format!("{family}.%"));
                }
                None => {
                    filters.push(format!("action = ${}", binds.len() + 1));
                    binds.push(a.clone());
                }
            }
        }
        for (col, v) in [("actor", &q.actor), ("target", &q.target)] {
            if let Some(v) = v {
                filters.push(format!("{col} = ${}", binds.len() + 1));
                binds.push(v.clone());
            }
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let n = binds.len();
        let sql = format!(
            "SELECT * FROM audit_log {filter} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let limit = match q.limit {
            l if l <= 0 => 100,
            l => l.min(1000),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query
            .bind(limit)
            .bind(q.offset.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }
}

fn record(r: &AnyRow) -> Result<AuditRecord> {
    let detail: String = r.try_get("detail")?;
    Ok(AuditRecord {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        // A detail that is not JSON (written by hand) is shown as it is; verify flags it.
        detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
        prev_hash: opt_str(r, "prev_hash")?,
        hash: opt_str(r, "hash")?,
    })
}

/// Where a pinned head came from, for the message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PinSource {
    Given,
    HeadFile,
}

/// Verification state: the last entry checked, the pins still to meet.
struct Walk<'a> {
    anchor: Option<&'a AuditAnchor>,
    seq: i64,
    max_id: Option<i64>,
    head: Option<AuditHead>,
    /// A keyed entry was seen: every later one must be keyed too.
    keyed: bool,
    pins: Vec<(AuditPin, PinSource, bool)>,
    problem: Option<AuditProblem>,
}

impl<'a> Walk<'a> {
    fn new(anchor: &'a AuditAnchor, pins: Vec<(AuditPin, PinSource)>) -> Walk<'a> {
        Walk {
            anchor: Some(anchor),
            seq: 0,
            max_id: None,
            head: None,
            keyed: false,
            pins: pins.into_iter().map(|(p, s)| (p, s, false)).collect(),
            problem: None,
        }
    }

    /// A walk that could not start: the head file is unreadable or was edited.
    fn failed(why: String) -> Walk<'a> {
        let mut w = Walk {
            anchor: None,
            seq: 0,
            max_id: None,
            head: None,
            keyed: false,
            pins: vec![],
            problem: None,
        };
        w.problem = Some(AuditProblem {
            seq: 0,
            id: None,
            kind: ProblemKind::Truncated,
            message: why,
        });
        w
    }

    /// Checks the next entry by seq; true when it is bad (the walk stops there).
    fn step(&mut self, r: &AnyRow) -> Result<bool> {
        let seq: i64 = r.try_get("seq")?;
        let e = Sealable::from_row(r)?;
        let prev_hash = opt_str(r, "prev_hash")?.unwrap_or_default();
        let hash = opt_str(r, "hash")?.unwrap_or_default();
        let key_id = opt_str(r, "chain_key")?;
        let expected_prev = self.head.as_ref().map_or(GENESIS, |h| h.hash.as_str());
        self.problem = link_problem(self.seq, seq, e.id, expected_prev, &prev_hash)
            .or_else(|| self.seal_problem(&e, seq, &prev_hash, &hash, key_id.as_deref()))
            .or_else(|| self.pin_problem(seq, e.id, &hash));
        self.seq = seq;
        self.max_id = self.max_id.max(Some(e.id));
        self.head = Some(AuditHead {
            seq,
            id: e.id,
            hash,
        });
        Ok(self.problem.is_some())
    }

    /// Whether the entry's seal holds, with the key it names.
    fn seal_problem(
        &mut self,
        e: &Sealable,
        seq: i64,
        prev_hash: &str,
        hash: &str,
        key_id: Option<&str>,
    ) -> Option<AuditProblem> {
        let anchor = self.anchor?;
        let key = match key_id {
            None if self.keyed => {
                return Some(AuditProblem {
                    seq,
                    id: Some(e.id),
                    kind: ProblemKind::Edited,
                    message: format!(
                        "entry seq {seq} (id {}) carries an unkeyed seal after keyed                          entries: it was re-sealed by hand",
                        e.id
                    ),
                })
            }
            None => None,
            Some(id) => match anchor.key(id) {
                Some(k) => Some(k),
                None => {
                    return Some(AuditProblem {
                        seq,
                        id: Some(e.id),
                        kind: ProblemKind::UnknownKey,
                        message: format!(
                            "entry seq {seq} (id {}) was sealed with audit key {id}, which is                              not configured here (configured: {}): give this command the                              encryption key or the audit key file the server uses",
                            e.id,
                            anchor.key_ids()
                        ),
                    })
                }
            },
        };
        self.keyed |= key.is_some();
        (e.hash(seq, prev_hash, key) != hash).then(|| edited(seq, e.id))
    }

    /// Every pin at this seq is met; the first whose hash differs is the problem.
    fn pin_problem(&mut self, seq: i64, id: i64, hash: &str) -> Option<AuditProblem> {
        let mut problem = None;
        for (pin, source, met) in self.pins.iter_mut().filter(|(p, _, _)| p.seq == seq) {
            *met = true;
            let recorded = match source {
                PinSource::Given => "was recorded",
                PinSource::HeadFile => "is in the head file",
            };
            if hash != pin.hash && problem.is_none() {
                problem = Some(AuditProblem {
                    seq,
                    id: Some(id),
                    kind: ProblemKind::PinMismatch,
                    message: format!(
                        "entry seq {seq} (id {id}) has hash {hash}, but {} {recorded}: the \
                         chain was rewritten from there",
                        pin.hash
                    ),
                });
            }
        }
        problem
    }

    /// After the last entry: a pinned seq never reached means the tail was cut off; keyed
    /// entries without a head file mean it was removed.
    fn finish(&mut self) {
        if self.problem.is_some() {
            return;
        }
        let ends = self.seq;
        self.problem = self
            .pins
            .iter()
            .find(|(_, _, met)| !met)
            .map(|(pin, source, _)| AuditProblem {
                seq: pin.seq,
                id: None,
                kind: match source {
                    PinSource::Given => ProblemKind::PinMismatch,
                    PinSource::HeadFile => ProblemKind::Truncated,
                },
                message: match source {
                    PinSource::Given => format!(
                        "entry seq {} was recorded but the chain ends at seq {ends}: later \
                         entries were deleted",
                        pin.seq
                    ),
                    PinSource::HeadFile => format!(
                        "truncated: the head file says seq {}, the table ends at seq {ends}: \
                         later entries were deleted or their seals removed",
                        pin.seq
                    ),
                },
            });
        let head_file_pinned = self.pins.iter().any(|p| p.1 == PinSource::HeadFile);
        if self.problem.is_none() && self.keyed && !head_file_pinned {
            let place = self
                .anchor
                .and_then(AuditAnchor::head_file)
                .map_or("kept in memory".to_string(), |p| p.display().to_string());
            self.problem = Some(AuditProblem {
                seq: ends,
                id: None,
                kind: ProblemKind::Truncated,
                message: format!(
                    "the trail has keyed entries but no head file ({place}): it was removed, \
                     or this is not where the server keeps it"
                ),
            });
        }
    }
}

fn edited(seq: i64, id: i64) -> AuditProblem {
    AuditProblem {
        seq,
        id: Some(id),
        kind: ProblemKind::Edited,
        message: format!("entry seq {seq} (id {id}) does not match its hash: it was edited"),
    }
}

/// What is wrong with how an entry follows the previous one, if anything.
fn link_problem(
    last_seq: i64,
    seq: i64,
    id: i64,
    expected_prev: &str,
    prev_hash: &str,
) -> Option<AuditProblem> {
    if seq != last_seq + 1 {
        let missing = if seq == last_seq + 2 {
            format!("entry seq {} is", last_seq + 1)
        } else {
            format!("entries seq {} to {} are", last_seq + 1, seq - 1)
        };
        return Some(AuditProblem {
            seq: last_seq + 1,
            id: None,
            kind: ProblemKind::Deleted,
            message: format!("{missing} missing before seq {seq} (id {id}): deleted"),
        });
    }
    (prev_hash != expected_prev).then(|| AuditProblem {
        seq,
        id: Some(id),
        kind: ProblemKind::BrokenLink,
        message: format!(
            "entry seq {seq} (id {id}) does not link to the entry before it: an entry was \
             deleted or replaced and the chain renumbered"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, detail: &str) -> Sealable {
        Sealable {
            id,
            at: 1_700_000_000_000,
            actor: "user:alice".into(),
            action: "approval.granted".into(),
            target: "s1".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_seal_covers_every_field_the_link_and_the_key() {
        let anchor = AuditAnchor::default();
        let k = Some(anchor.sealing_key().unwrap());
        let base = entry(1, "{}").hash(1, GENESIS, k);
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry(1, "{}").hash(1, GENESIS, k), "deterministic");
        assert_ne!(base, entry(1, "{}").hash(2, GENESIS, k));
        assert_ne!(base, entry(2, "{}").hash(1, GENESIS, k));
        assert_ne!(base, entry(1, "{ }").hash(1, GENESIS, k));
        assert_ne!(base, entry(1, "{}").hash(1, &"1".repeat(64), k));
        let mut moved = entry(1, "{}");
        moved.actor = "user:alic".into();
        moved.action = "eapproval.granted".into();
        assert_ne!(
            base,
            moved.hash(1, GENESIS, k),
            "fields are length-prefixed"
        );
        // Without the key the seal cannot be recomputed: neither unkeyed nor another key.
        assert_ne!(base, entry(1, "{}").hash(1, GENESIS, None));
        let other = AuditAnchor::default();
        assert_ne!(
            base,
            entry(1, "{}").hash(1, GENESIS, Some(other.sealing_key().unwrap()))
        );
    }

    #[test]
    fn gaps_and_broken_links_are_named() {
        assert!(link_problem(0, 1, 10, GENESIS, GENESIS).is_none());
        let gap = link_problem(3, 5, 12, "h3", "h4").unwrap();
        assert_eq!((gap.kind, gap.seq, gap.id), (ProblemKind::Deleted, 4, None));
        assert!(
            gap.message.contains("entry seq 4 is missing"),
            "{}",
            gap.message
        );
        let gap = link_problem(3, 7, 12, "h3", "h6").unwrap();
        assert!(gap.message.contains("seq 4 to 6"), "{}", gap.message);
        let broken = link_problem(3, 4, 12, "h3", "hX").unwrap();
        assert_eq!(
            (broken.kind, broken.seq, broken.id),
            (ProblemKind::BrokenLink, 4, Some(12))
        );
    }

    #[test]
    fn secrets_in_details_are_redacted() {
        let mut v = serde_json::json!({"argv": ["curl", "-H", "Authorization: Bearer abcdefghijkl123"], "n": 1});
        redact_value(&mut v);
        assert!(!v.to_string().contains("abcdefghijkl123"), "{v}");
        assert_eq!(v["n"], 1);
    }
}
