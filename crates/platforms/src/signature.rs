//! Webhook signature and token checks, constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Checks `header` = `<prefix><hex HMAC-SHA256 of body>` (GitHub: `sha256=`, CircleCI: `v1=`).
pub fn verify_hmac_sha256(secret: &[u8], body: &[u8], header: &str, prefix: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix(prefix) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Compares a shared token without leaking where it differs.
pub fn token_eq(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector from GitHub's "Validating webhook deliveries" documentation.
    const SECRET: &str = "It's a Secret to Everybody";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_documented_vector_verifies() {
        assert!(verify_hmac_sha256(
            SECRET.as_bytes(),
            b"Hello, World!",
            SIG,
            "sha256="
        ));
        assert_eq!(
            format!(
                "sha256={}",
                hmac_sha256_hex(SECRET.as_bytes(), b"Hello, World!")
            ),
            SIG
        );
    }

    #[test]
    fn tampered_body_wrong_secret_or_prefix_fail() {
        assert!(!verify_hmac_sha256(
            SECRET.as_bytes(),
            b"Hello, World?",
            SIG,
            "sha256="
        ));
        assert!(!verify_hmac_sha256(
            b"other",
            b"Hello, World!",
            SIG,
            "sha256="
        ));
        assert!(!verify_hmac_sha256(
            SECRET.as_bytes(),
            b"Hello, World!",
            &SIG[7..],
            "sha256="
        ));
        assert!(!verify_hmac_sha256(
            SECRET.as_bytes(),
            b"Hello, World!",
            "sha256=zz",
            "sha256="
        ));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_eq("s3cret", "s3cret"));
        assert!(!token_eq("s3cret", "s3cret "));
        assert!(!token_eq("s3cret", "S3cret"));
        assert!(!token_eq("s3cret", ""));
    }
}
