//! The seed corpus of the `webhook` fuzz target (fuzz/corpus/webhook), replayed through the
//! target's own entry point on the stable toolchain: every platform's verification and
//! parsing on the deliveries the fuzzer starts from.

use pipeguard_platforms::fuzzing::{decode, deliver};
use std::path::PathBuf;

#[test]
fn webhook_corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/webhook");
    let mut platforms = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let d = decode(&data).expect("a seed is not empty");
        platforms.insert(d.module.section().key);
        let r = std::panic::catch_unwind(|| deliver(&data));
        assert!(r.is_ok(), "{} panics intake", path.display());
    }
    for m in pipeguard_platforms::registry::MODULES {
        let key = m.section().key;
        assert!(platforms.contains(key), "no seed for {key}: {platforms:?}");
    }
}
