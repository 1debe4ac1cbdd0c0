//! API tokens: 32 random bytes behind a recognisable prefix (so secret scanners and people can
//! tell what leaked), stored only as their SHA-256 hash. A token this long needs no slow hash:
//! guessing one is as hard as guessing the key.

use base64::Engine;
use sha2::{Digest, Sha256};

const PREFIX: &str = "pgt_";

/// A new token, shown once.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn looks_like_api_token(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// A token name people can read in lists and audit entries.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(looks_like_api_token(&a));
        assert_eq!(a.len(), 4 + 43);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(valid_name("ci-bot_1") && !valid_name("") && !valid_name("a b"));
    }
}
