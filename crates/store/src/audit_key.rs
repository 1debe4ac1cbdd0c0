//! What the audit chain is keyed with and where its head is anchored, both outside the
//! database: someone who can write the database but lacks the key cannot recompute a seal,
//! and a cut-off tail no longer matches the head recorded beside the key.
//!
//! The key is derived from the encryption key when one is configured (so it lives where that
//! key lives), otherwise it is a file of 32 random bytes made at first start with mode 0600.
//! Each sealed entry names the key id it was sealed with, so entries sealed before a key
//! rotation still verify while the old key is in the keyring.

use crate::{Keyring, Result, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// One key the chain is sealed with, by id.
#[derive(Clone)]
pub(crate) struct ChainKey {
    pub(crate) id: String,
    bytes: [u8; 32],
}

impl ChainKey {
    pub(crate) fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes any key length")
    }

    /// A key file's key: its id says where it came from.
    fn from_file_bytes(bytes: [u8; 32]) -> ChainKey {
        ChainKey {
            id: format!("file-{}", hex::encode(&Sha256::digest(bytes)[..4])),
            bytes,
        }
    }
}

/// The last sealed entry as the sealer recorded it outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRecord {
    pub seq: i64,
    pub id: i64,
    pub hash: String,
    /// The key that sealed it, which also signs this record.
    pub key: String,
    pub mac: String,
}

enum HeadStore {
    /// Kept by this process only (in-memory databases, and stores nobody configured).
    Memory(Mutex<Option<HeadRecord>>),
    File(PathBuf),
}

/// The chain's keys (the first seals, all verify) and its head's anchor.
pub struct AuditAnchor {
    keys: Vec<ChainKey>,
    head: HeadStore,
}

impl std::fmt::Debug for AuditAnchor {
    // Key ids only: key material never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        let head = match &self.head {
            HeadStore::Memory(_) => None,
            HeadStore::File(p) => Some(p),
        };
        f.debug_struct("AuditAnchor")
            .field("keys", &ids)
            .field("head_file", &head)
            .finish()
    }
}

impl Default for AuditAnchor {
    /// A random key and a head kept in memory: chains sealed with it verify only in this
    /// process. The service configures [`AuditAnchor::files`] instead.
    fn default() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        AuditAnchor {
            keys: vec![ChainKey::from_file_bytes(bytes)],
            head: HeadStore::Memory(Mutex::new(None)),
        }
    }
}

/// Where a database's audit key file and head file live: `<base>.audit-key` and
/// `<base>.audit-head`. SQLite: beside the database file. PostgreSQL: `dir` (default the
/// working directory) and the database's name. `None` for an in-memory database.
pub fn audit_files_base(database_url: &str, dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(rest) = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
            return None;
        }
        let file = Path::new(path);
        return Some(match dir {
            Some(d) => d.join(file.file_name()?),
            None => file.to_path_buf(),
        });
    }
    let db = database_url
        .split('?')
        .next()
        .and_then(|u| u.rsplit_once('/'))
        .map(|(_, name)| name)
        .filter(|n| !n.is_empty() && !n.contains('@'))
        .unwrap_or("postgres");
    Some(
        dir.unwrap_or(Path::new("."))
            .join(format!("pipeguard-{db}")),
    )
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `text` to a fresh file beside `path`, readable by the owner only.
fn write_tmp(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let tmp = with_suffix(
        path,
        &format!(".{}-{:x}.tmp", std::process::id(), rand::random::<u32>()),
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(tmp)
}

/// Replaces `path` with `text` atomically.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = write_tmp(path, text)?;
    std::fs::rename(&tmp, path)
}

/// Creates `path` holding `text` unless it exists: replicas starting at once agree on one.
fn create_private(path: &Path, text: &str) -> std::io::Result<bool> {
    let tmp = write_tmp(path, text)?;
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Crypto(format!("{what} {}: {e}", path.display()))
}

/// The key file's key; made (0600) when missing and `create` says so.
fn file_key(path: &Path, create: bool) -> Result<Option<ChainKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    StoreError::Crypto(format!(
                        "audit key file {}: not 32 bytes of base64",
                        path.display()
                    ))
                })?;
            Ok(Some(ChainKey::from_file_bytes(bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let made = create_private(path, &format!("{}\n", STANDARD.encode(bytes)))
                .map_err(|e| io_err("cannot write the audit key file", path, e))?;
            if !made {
                // Another process made it first: use its key.
                return file_key(path, false);
            }
            tracing::info!(path = %path.display(), "audit key file created");
            Ok(Some(ChainKey::from_file_bytes(bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read the audit key file", path, e)),
    }
}

impl AuditAnchor {
    /// The anchor of the database whose files are at `base` (see [`audit_files_base`]): keys
    /// derived from `encryption` first, then the key file's (made when missing, `create`,
    /// and no encryption key is configured).
    pub fn files(base: &Path, encryption: Option<&Keyring>, create: bool) -> Result<AuditAnchor> {
        let mut keys: Vec<ChainKey> = encryption
            .map(|k| {
                k.chain_keys()
                    .into_iter()
                    .map(|(id, bytes)| ChainKey { id, bytes })
                    .collect()
            })
            .unwrap_or_default();
        let key_path = with_suffix(base, ".audit-key");
        if let Some(k) = file_key(&key_path, create && keys.is_empty())? {
            keys.push(k);
        }
        Ok(AuditAnchor {
            keys,
            head: HeadStore::File(with_suffix(base, ".audit-head")),
        })
    }

    /// The key new entries are sealed with.
    pub(crate) fn sealing_key(&self) -> Result<&ChainKey> {
        self.keys.first().ok_or_else(|| {
            StoreError::Crypto(
                "no audit key: configure the encryption key or keep the audit key file".into(),
            )
        })
    }

    pub(crate) fn key(&self, id: &str) -> Option<&ChainKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub(crate) fn key_ids(&self) -> String {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    }

    pub(crate) fn head_file(&self) -> Option<&Path> {
        match &self.head {
            HeadStore::File(p) => Some(p),
            HeadStore::Memory(_) => None,
        }
    }

    /// The recorded head, if any; an unreadable or unsigned one is an error.
    pub(crate) fn head(&self) -> Result<Option<HeadRecord>> {
        let rec = match &self.head {
            HeadStore::Memory(m) => return Ok(m.lock().expect("head lock").clone()),
            HeadStore::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => serde_json::from_str::<HeadRecord>(&t).map_err(|e| {
                    StoreError::Crypto(format!("audit head file {}: {e}", p.display()))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err("cannot read the audit head file", p, e)),
            },
        };
        if let Some(k) = self.key(&rec.key) {
            if head_mac(k, rec.seq, rec.id, &rec.hash) != rec.mac {
                return Err(StoreError::Crypto(
                    "the audit head file's signature does not match: it was edited".into(),
                ));
            }
        }
        Ok(Some(rec))
    }

    /// Records a new head, signed with the sealing key.
    pub(crate) fn set_head(&self, seq: i64, id: i64, hash: &str) -> Result<()> {
        let k = self.sealing_key()?;
        let rec = HeadRecord {
            seq,
            id,
            hash: hash.to_string(),
            key: k.id.clone(),
            mac: head_mac(k, seq, id, hash),
        };
        match &self.head {
            HeadStore::Memory(m) => *m.lock().expect("head lock") = Some(rec),
            HeadStore::File(p) => {
                let text = serde_json::to_string(&rec).expect("a head serialises");
                write_private(p, &text)
                    .map_err(|e| io_err("cannot write the audit head file", p, e))?;
            }
        }
        Ok(())
    }
}

fn head_mac(k: &ChainKey, seq: i64, id: i64, hash: &str) -> String {
    let mut m = k.mac();
    m.update(format!("pipeguard-audit-head\n{seq}\n{id}\n{hash}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_sit_beside_sqlite_or_in_the_directory_for_postgres() {
        let b = |u: &str, d: Option<&str>| audit_files_base(u, d.map(Path::new));
        assert_eq!(
            b("sqlite:///var/lib/p/pipeguard.db?mode=rwc", None),
            Some(PathBuf::from("/var/lib/p/pipeguard.db"))
        );
        assert_eq!(
            b("sqlite://x/p.db", Some("/d")),
            Some(PathBuf::from("/d/p.db"))
        );
        assert_eq!(b("sqlite::memory:", None), None);
        assert_eq!(
            b("postgres://u:pw@h:5432/ci?sslmode=require", Some("/d")),
            Some(PathBuf::from("/d/pipeguard-ci"))
        );
        assert_eq!(
            b("postgres://u:pw@h:5432", None),
            Some(PathBuf::from("./pipeguard-postgres"))
        );
    }

    #[test]
    fn the_key_file_is_made_once_private_and_the_head_is_signed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p.db");
        let none = AuditAnchor::files(&base, None, false).unwrap();
        assert!(none.sealing_key().is_err(), "verify never makes a key");
        let a = AuditAnchor::files(&base, None, true).unwrap();
        let key_file = with_suffix(&base, ".audit-key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = AuditAnchor::files(&base, None, true).unwrap();
        assert_eq!(a.sealing_key().unwrap().id, again.sealing_key().unwrap().id);
        assert!(a.head().unwrap().is_none());
        a.set_head(7, 9, "abc").unwrap();
        assert_eq!(again.head().unwrap().unwrap().seq, 7);
        let head_file = with_suffix(&base, ".audit-head");
        let forged = std::fs::read_to_string(&head_file)
            .unwrap()
            .replace("\"seq\":7", "\"seq\":3");
        std::fs::write(&head_file, forged).unwrap();
        assert!(a.head().is_err(), "a lowered head is refused");
    }

    #[test]
    fn an_encryption_key_is_used_before_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p.db");
        let (ring, _) = Keyring::generate();
        let a = AuditAnchor::files(&base, Some(&ring), true).unwrap();
        assert_eq!(a.sealing_key().unwrap().id, ring.current_id());
        assert!(
            !with_suffix(&base, ".audit-key").exists(),
            "no key file is made when the encryption key keys the chain"
        );
    }
}
