//! What the fuzz targets run on arbitrary bytes, here so the tests replay their corpus and
//! their findings through the very same code on the stable toolchain. Each panics when an
//! invariant breaks, as well as on any panic inside.

use crate::analysis::Analyzer;
use crate::safety::{assess, assess_script, shell, Assessment};
use std::sync::OnceLock;

/// The log analyzer with the built-in knowledge base, on a log of any bytes.
pub fn analyze_bytes(data: &[u8]) {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    let d = ANALYZER.get_or_init(Analyzer::builtin).analyze(data);
    assert!(
        (0.0..=1.0).contains(&d.confidence),
        "confidence out of range: {}",
        d.confidence
    );
}

/// The shell parser and the safety assessment: the text as a script, and split at NUL bytes
/// as an argv.
pub fn assess_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = shell::parse(&text);
    check(&assess_script(&text));
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    check(&assess(&argv));
}

fn check(a: &Assessment) {
    let worst = a.findings.iter().map(|f| f.level).max();
    assert_eq!(
        Some(a.level),
        worst,
        "the verdict is not the worst finding: {a:?}"
    );
}
