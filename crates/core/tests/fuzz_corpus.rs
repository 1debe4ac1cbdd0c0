//! The seed corpus of the `analyzer` and `safety` fuzz targets (fuzz/corpus), replayed through
//! the targets' own entry points on the stable toolchain, so what the fuzzers start from keeps
//! passing without a nightly build.

use pipeguard_core::fuzzing::{analyze_bytes, assess_bytes};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "{} holds {} seeds",
        dir.display(),
        out.len()
    );
    out
}

#[test]
fn analyzer_corpus_replays() {
    for (path, data) in corpus("analyzer") {
        let r = std::panic::catch_unwind(|| analyze_bytes(&data));
        assert!(r.is_ok(), "{} panics the analyzer", path.display());
    }
}

#[test]
fn safety_corpus_replays() {
    for (path, data) in corpus("safety") {
        let r = std::panic::catch_unwind(|| assess_bytes(&data));
        assert!(r.is_ok(), "{} panics the assessment", path.display());
    }
}
