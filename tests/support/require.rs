//! The one rule for tests that need something from outside the repository (a tool such as
//! ansible-core, Buildbot, Chromium or PostgreSQL, or the fixtures in `../shared`): without it
//! they are skipped with a message on a developer's machine, and they FAIL when the variable
//! `CI` is set, because there a missing tool means a broken setup script, not a reason to pass.
//!
//! Included by path (`#[path = ".../tests/support/require.rs"] mod require;`) so that every
//! crate's tests share it without a crate of their own.
#![allow(dead_code)]

/// Whether the tests run under CI, where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `found`, or `None` after [`missing`] when it is absent.
pub fn require<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        missing(what);
    }
    found
}

/// A path that exists, or `None` after [`missing`].
pub fn require_path(what: &str, p: std::path::PathBuf) -> Option<std::path::PathBuf> {
    let found = p.exists().then_some(p.clone());
    require(&format!("{what} ({} not found)", p.display()), found)
}

/// Reports that `what` is absent: a panic under CI, a skip line elsewhere.
///
/// The harness counts a skipped test as passed and shows `eprintln!` output only with
/// `--nocapture`, so the line goes straight to the process's stderr, which libtest does not
/// capture (it captures only the print macros): `cargo test` shows it among the results.
pub fn missing(what: &str) {
    use std::io::Write;
    if under_ci() {
        panic!("{what}: required under CI, where a test may not be skipped");
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test} (reported as passed): {what}"
    );
}
