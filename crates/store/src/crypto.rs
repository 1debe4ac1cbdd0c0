//! Encryption at rest of the columns that hold payloads, logs and evidence (AES-256-GCM).
//!
//! A sealed value stays text, `enc:v1:<key id>:<base64(nonce || ciphertext)>`, so it fits the
//! existing TEXT columns of both backends. A value without the prefix is plaintext written
//! before encryption was turned on and is read as it is. The column's name is the associated
//! data, so a sealed value moved to another column does not decrypt.

use crate::{Result, StoreError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// The columns that are encrypted; each name is bound to its values as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    SessionEvent,
    SessionDiagnosis,
    VerdictEvidence,
    JobPayload,
    BaselineModel,
}

impl Field {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Field::SessionEvent => "sessions.event",
            Field::SessionDiagnosis => "sessions.diagnosis",
            Field::VerdictEvidence => "verdicts.evidence",
            Field::JobPayload => "jobs.payload",
            Field::BaselineModel => "baselines.model",
        }
    }
}

#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
    /// The audit chain's HMAC key, derived from this key (never the key itself).
    chain: [u8; 32],
}

/// The key new values are sealed with, and older keys still accepted for reading (while a
/// rotation re-encrypts what they sealed).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    // Key ids only: key material never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ids())
            .finish()
    }
}

fn decode_key(text: &str) -> std::result::Result<Vec<u8>, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).map_err(|e| e.to_string());
    }
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| "neither 64 hex characters nor base64".to_string())?;
    if bytes.len() != 32 {
        return Err(format!("{} bytes, 32 needed", bytes.len()));
    }
    Ok(bytes)
}

impl Keyring {
    /// Keys as text: 32 bytes each, as base64 or 64 hex characters, separated by whitespace,
    /// commas or lines (`#` starts a comment line). The first is the current key; the others
    /// are older keys kept for reading.
    pub fn parse(text: &str) -> Result<Keyring> {
        let tokens = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|t| !t.is_empty());
        let mut keys: Vec<Key> = Vec::new();
        for (i, token) in tokens.enumerate() {
            let bytes = decode_key(token)
                .map_err(|e| StoreError::Crypto(format!("encryption key {}: {e}", i + 1)))?;
            let key = Key::from_bytes(&bytes);
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(StoreError::Crypto("no encryption key given".into()));
        }
        Ok(Keyring { keys })
    }

    /// A keyring of one fresh random key (tests, and printing a key to use).
    pub fn generate() -> (Keyring, String) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let text = STANDARD.encode(bytes);
        (
            Keyring {
                keys: vec![Key::from_bytes(&bytes)],
            },
            text,
        )
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// This keyring's keys, then `older`'s keys it does not already hold.
    pub fn with_older(&self, older: &Keyring) -> Keyring {
        let mut keys = self.keys.clone();
        for k in &older.keys {
            if !keys.iter().any(|x| x.id == k.id) {
                keys.push(k.clone());
            }
        }
        Keyring { keys }
    }

    /// The audit chain keys derived from these keys, by key id, the current one first.
    pub(crate) fn chain_keys(&self) -> Vec<(String, [u8; 32])> {
        self.keys.iter().map(|k| (k.id.clone(), k.chain)).collect()
    }

    fn seal(&self, field: Field, plain: &str) -> Result<String> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: field.as_str().as_bytes(),
        };
        let ct = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| StoreError::Crypto(format!("cannot encrypt {}", field.as_str())))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}:{}", key.id, STANDARD.encode(blob)))
    }

    fn open(&self, field: Field, key_id: &str, body: &str) -> Result<String> {
        let err = |why: &str| StoreError::Crypto(format!("{}: {why}", field.as_str()));
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| {
            err(&format!(
                "sealed with key {key_id}, which is not among the configured keys ({})",
                self.ids().join(", ")
            ))
        })?;
        let blob = STANDARD
            .decode(body)
            .map_err(|_| err("sealed value is not valid base64"))?;
        if blob.len() < NONCE_LEN {
            return Err(err("sealed value is too short"));
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ct,
            aad: field.as_str().as_bytes(),
        };
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| {
                err(&format!(
                    "does not decrypt with key {key_id}: wrong key or altered value"
                ))
            })?;
        String::from_utf8(plain).map_err(|_| err("decrypted value is not UTF-8"))
    }
}

impl Key {
    fn from_bytes(bytes: &[u8]) -> Key {
        let digest = Sha256::digest(bytes);
        let mut mac =
            crate::audit_key::HmacSha256::new_from_slice(bytes).expect("HMAC takes any key");
        hmac::Mac::update(&mut mac, b"pipeguard audit chain key");
        Key {
            id: hex::encode(&digest[..4]),
            cipher: Aes256Gcm::new_from_slice(bytes).expect("a 32-byte key"),
            chain: hmac::Mac::finalize(mac).into_bytes().into(),
        }
    }
}

/// The key id a stored value was sealed with; `None` for plaintext.
pub(crate) fn sealed_with(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// Seals `plain` when encryption is on; otherwise stores it as it is.
pub(crate) fn seal(keys: Option<&Keyring>, field: Field, plain: String) -> Result<String> {
    match keys {
        Some(k) => k.seal(field, &plain),
        None => Ok(plain),
    }
}

/// Reads a stored value: plaintext as it is, sealed values with the key that sealed them.
pub(crate) fn open(keys: Option<&Keyring>, field: Field, stored: String) -> Result<String> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(stored);
    };
    let Some((key_id, body)) = rest.split_once(':') else {
        return Err(StoreError::Crypto(format!(
            "{}: malformed sealed value",
            field.as_str()
        )));
    };
    match keys {
        Some(k) => k.open(field, key_id, body),
        None => Err(StoreError::Crypto(format!(
            "{} is encrypted (key {key_id}) but no encryption key is configured: \
             set PIPEGUARD_ENCRYPTION_KEY or [encryption] key_file",
            field.as_str()
        ))),
    }
}

pub(crate) fn open_opt(
    keys: Option<&Keyring>,
    field: Field,
    stored: Option<String>,
) -> Result<Option<String>> {
    stored.map(|s| open(keys, field, s)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn keys_parse_from_hex_and_base64_and_keep_their_order() {
        let b64 = STANDARD.encode([7u8; 32]);
        let ring = Keyring::parse(&format!("# rotated 2024\n{b64}\n{HEX}, {HEX}\n")).unwrap();
        assert_eq!(ring.ids().len(), 2, "the duplicate is dropped");
        assert_eq!(
            ring.current_id(),
            Keyring::parse(&b64).unwrap().current_id()
        );
        assert_eq!(ring.current_id().len(), 8);
        assert_ne!(ring.ids()[0], ring.ids()[1]);
    }

    #[test]
    fn bad_keys_are_clear_errors_that_do_not_echo_the_key() {
        for bad in [
            "",
            "# only a comment",
            "c2hvcnQ=",
            "zz-not-a-key",
            &HEX[..62],
        ] {
            let e = Keyring::parse(bad).unwrap_err().to_string();
            assert!(e.contains("key"), "{bad:?}: {e}");
            if !bad.is_empty() && !bad.starts_with('#') {
                assert!(!e.contains(bad), "{e} echoes the key");
            }
        }
    }

    #[test]
    fn sealed_text_round_trips_and_hides_the_plaintext() {
        let ring = Keyring::parse(HEX).unwrap();
        let plain = "token=ghp_secret line".to_string();
        let sealed = seal(Some(&ring), Field::SessionEvent, plain.clone()).unwrap();
        assert!(sealed.starts_with(&format!("enc:v1:{}:", ring.current_id())));
        assert!(!sealed.contains("ghp_secret"));
        assert_eq!(sealed_with(&sealed), Some(ring.current_id()));
        let again = seal(Some(&ring), Field::SessionEvent, plain.clone()).unwrap();
        assert_ne!(sealed, again, "fresh nonce per value");
        assert_eq!(
            open(Some(&ring), Field::SessionEvent, sealed.clone()).unwrap(),
            plain
        );
        // Another column's value does not decrypt here (associated data).
        assert!(open(Some(&ring), Field::JobPayload, sealed).is_err());
    }

    #[test]
    fn wrong_missing_or_altered_keys_are_errors_not_garbage() {
        let ring = Keyring::parse(HEX).unwrap();
        let (other, _) = Keyring::generate();
        let sealed = seal(Some(&ring), Field::VerdictEvidence, "x".into()).unwrap();
        let e = open(Some(&other), Field::VerdictEvidence, sealed.clone()).unwrap_err();
        assert!(
            e.to_string().contains("not among the configured keys"),
            "{e}"
        );
        let e = open(None, Field::VerdictEvidence, sealed.clone()).unwrap_err();
        assert!(e.to_string().contains("PIPEGUARD_ENCRYPTION_KEY"), "{e}");
        // Same id, different bytes: the tag check fails.
        let forged = format!(
            "enc:v1:{}:{}",
            ring.current_id(),
            STANDARD.encode([1u8; 40])
        );
        let e = open(Some(&ring), Field::VerdictEvidence, forged).unwrap_err();
        assert!(e.to_string().contains("wrong key or altered"), "{e}");
        assert!(matches!(e, StoreError::Crypto(_)));
    }

    #[test]
    fn plaintext_is_read_as_it_is_and_older_keys_still_open() {
        let old = Keyring::parse(HEX).unwrap();
        let (new, _) = Keyring::generate();
        assert_eq!(
            open(Some(&old), Field::SessionEvent, "{\"a\":1}".into()).unwrap(),
            "{\"a\":1}"
        );
        let by_old = seal(Some(&old), Field::SessionEvent, "v".into()).unwrap();
        let both = new.with_older(&old);
        assert_eq!(both.current_id(), new.current_id());
        assert_eq!(open(Some(&both), Field::SessionEvent, by_old).unwrap(), "v");
        assert_eq!(seal(None, Field::SessionEvent, "p".into()).unwrap(), "p");
    }
}
