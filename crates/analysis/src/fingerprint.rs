//! Failure fingerprints: a Drain-style template of the decisive lines (variable tokens masked),
//! hashed, so the same failure on another run, machine or day groups with its earlier runs.

use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn masks() -> &'static [(Regex, &'static str)] {
    static M: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    M.get_or_init(|| {
        let r = |p: &str, t: &'static str| (Regex::new(p).expect("mask compiles"), t);
        // Order matters: the most specific shapes first, bare numbers last.
        vec![
            r(
                r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                "<uuid>",
            ),
            r(
                r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d)?(\.\d+)?(Z|[+-]\d\d:?\d\d)?)?",
                "<ts>",
            ),
            r(
                r"(?i)\b(mon|tue|wed|thu|fri|sat|sun)?,? ?\d{1,2} (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w* \d{4}",
                "<ts>",
            ),
            r(r"\b\d\d:\d\d:\d\d(\.\d+)?\b", "<ts>"),
            r(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b", "<ip>"),
            // Hex ids (commit and image digests, addresses) are handled by `mask_hex`.
            // Paths: keep the file name, drop the directories (workspaces differ per runner).
            r(
                r"(?:[A-Za-z]:)?(?:[\\/]?[\w.@+~-]+)*[\\/](?P<f>[\w.@+-]+)",
                "<path>/$f",
            ),
            r(r"\b\d+(\.\d+)?\s?(ms|s|sec|secs|seconds|m|min|minutes|h|µs|us|ns)\b", "<dur>"),
            r(r"\b\d+m\d+(\.\d+)?s\b", "<dur>"),
            // Random ids (pod names, temp dirs) are handled by `mask_ids`.
            r(r"\d+", "<n>"),
        ]
    })
}

/// Hex runs of 7+ characters that contain a digit: commit ids, digests, addresses. Shorter
/// runs stay (error codes such as `E0425` are part of the message).
fn mask_hex(s: &str) -> String {
    static HEX: OnceLock<Regex> = OnceLock::new();
    let re = HEX.get_or_init(|| Regex::new(r"\b(0x)?[0-9a-fA-F]{7,}\b").expect("hex compiles"));
    re.replace_all(s, |c: &regex::Captures| {
        let m = &c[0];
        if m.bytes().any(|b| b.is_ascii_digit()) && m.bytes().any(|b| b.is_ascii_alphabetic()) {
            "<hex>".to_string()
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

/// Tokens of 6+ letters and digits mixed: pod names, temp dirs, build ids.
fn mask_ids(s: &str) -> String {
    static ID: OnceLock<Regex> = OnceLock::new();
    let re = ID.get_or_init(|| Regex::new(r"\b[A-Za-z0-9]{6,}\b").expect("id compiles"));
    re.replace_all(s, |c: &regex::Captures| {
        let m = &c[0];
        if m.bytes().any(|b| b.is_ascii_digit()) && m.bytes().any(|b| b.is_ascii_alphabetic()) {
            "<id>".to_string()
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

/// The template of one line: variable parts masked, whitespace collapsed.
pub fn template(line: &str) -> String {
    let mut s = line.trim().to_string();
    for (i, (re, with)) in masks().iter().enumerate() {
        if i == 5 {
            s = mask_hex(&s);
        }
        if i == masks().len() - 1 {
            s = mask_ids(&s);
        }
        if re.is_match(&s) {
            s = re.replace_all(&s, *with).into_owned();
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hash a failure's identity (category, signature, templates of the key lines): 16 hex chars.
pub fn fingerprint(category: &str, signature: &str, lines: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(category.as_bytes());
    h.update([0]);
    h.update(signature.as_bytes());
    for l in lines {
        h.update([0]);
        h.update(template(l).as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_are_masked() {
        assert_eq!(
            template("2024-03-01T10:00:00Z build 1234 took 12.5s on 10.0.0.7:8080"),
            "<ts> build <n> took <dur> on <ip>"
        );
        assert_eq!(
            template("error: couldn't create a temp dir at /builds/x/target/rmetaAbc12Q"),
            "error: couldn't create a temp dir at <path>/<id>"
        );
        assert_eq!(
            template("object 53fe3247f760d25347886d8ccab7e7c09cb114e1 missing, run 6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"),
            "object <hex> missing, run <uuid>"
        );
    }

    #[test]
    fn same_failure_on_other_runs_has_the_same_fingerprint() {
        let a = fingerprint(
            "disk_full",
            "disk-full",
            &["error: failed to write /builds/a/target/release/deps/gfx-3abe319642e2d738.rcgu.bc: No space left on device (os error 28)"],
        );
        let b = fingerprint(
            "disk_full",
            "disk-full",
            &["error: failed to write /home/runner/work/target/release/deps/gfx-99be0196a2ed7f11.rcgu.bc: No space left on device (os error 28)"],
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        let c = fingerprint(
            "test_failure",
            "cargo-test-failed",
            &["thread 'tests::a' panicked at 'assertion failed', src/lib.rs:10:5 at 12:01:02"],
        );
        let d = fingerprint(
            "test_failure",
            "cargo-test-failed",
            &["thread 'tests::a' panicked at 'assertion failed', src/lib.rs:11:5 at 18:22:40"],
        );
        assert_eq!(c, d);
    }

    #[test]
    fn different_failures_differ() {
        let a = fingerprint(
            "test_failure",
            "rust-panic",
            &["thread 'tests::parse' panicked at 'bad input'"],
        );
        let b = fingerprint(
            "test_failure",
            "rust-panic",
            &["thread 'tests::render' panicked at 'bad input'"],
        );
        let c = fingerprint(
            "compilation_error",
            "rust-error-code",
            &["error[E0425]: cannot find value `x` in this scope"],
        );
        let d = fingerprint(
            "compilation_error",
            "rust-error-code",
            &["error[E0308]: mismatched types"],
        );
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_ne!(a, c);
    }
}
