//! The analyzer on small logs in the shape each ecosystem's tools print: category, whether it
//! would retry, the evidence, failing test names, redaction and fingerprints.

use pipeguard_analysis::{Analyzer, Diagnosis, Hints, UserSignature};
use pipeguard_taxonomy::{Category, Strategy};
use std::io::Read;

fn analyze(log: &str) -> Diagnosis {
    Analyzer::builtin().analyze(log.as_bytes())
}

#[track_caller]
fn expect(log: &str, category: Category, transient: bool, evidence_contains: &str) -> Diagnosis {
    let d = analyze(log);
    assert_eq!(d.category, category, "{d:#?}");
    assert_eq!(d.transient, transient, "{d:#?}");
    assert!(
        d.evidence
            .iter()
            .any(|e| e.text.contains(evidence_contains)),
        "evidence lacks {evidence_contains:?}: {d:#?}"
    );
    d
}

#[test]
fn rust_cargo() {
    expect(
        "   Compiling app v0.1.0\nerror[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\n  |\n2 |     x\n  |     ^ not found in this scope\n\nerror: could not compile `app` due to previous error\n",
        Category::CompilationError,
        false,
        "error[E0425]",
    );
    let d = expect(
        "running 2 tests\ntest tests::a ... ok\ntest tests::b ... FAILED\n\nfailures:\n\n---- tests::b stdout ----\nthread 'tests::b' panicked at 'assertion failed: 1 == 2', src/lib.rs:9:9\n\nfailures:\n    tests::b\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored\nerror: test failed, to rerun pass `--lib`\n",
        Category::TestFailure,
        false,
        "panicked",
    );
    assert_eq!(d.failing_tests, vec!["tests::b"]);
    // A network failure while fetching from the registry is a dependency download.
    expect(
        "    Updating crates.io index\nerror: failed to get `serde` as a dependency of package `app`\n\nCaused by:\n  failed to fetch `https://github.com/rust-lang/crates.io-index`\n\nCaused by:\n  network failure seems to have happened\n",
        Category::DependencyDownload,
        true,
        "network failure",
    );
    let d = expect(
        "        PASS [   0.01s] app tests::a\n        FAIL [   0.02s] app tests::b\n     Summary [   0.03s] 2 tests run: 1 passed, 1 failed, 0 skipped\n",
        Category::TestFailure,
        false,
        "FAIL",
    );
    assert_eq!(d.failing_tests, vec!["app tests::b"]);
}

#[test]
fn python() {
    let d = expect(
        "============================= test session starts ==============================\ntests/test_api.py::test_get FAILED                                       [ 50%]\n=================================== FAILURES ===================================\n___________________________________ test_get ___________________________________\n\n    def test_get():\n>       assert 1 == 2\nE       assert 1 == 2\n\ntests/test_api.py:3: AssertionError\n=========================== short test summary info ============================\nFAILED tests/test_api.py::test_get - assert 1 == 2\n========================= 1 failed, 1 passed in 0.12s ==========================\n",
        Category::TestFailure,
        false,
        "test_get",
    );
    assert!(d
        .failing_tests
        .contains(&"tests/test_api.py::test_get".to_string()));
    expect(
        "Collecting requests\nERROR: Could not install packages due to an OSError: HTTPSConnectionPool(host='files.pythonhosted.org', port=443): Read timed out.\n",
        Category::DependencyDownload,
        true,
        "Could not install packages",
    );
    expect(
        "ERROR: Cannot install a==1.0 and b==2.0 because these package versions have conflicting dependencies.\nERROR: ResolutionImpossible: for help visit https://pip.pypa.io\n",
        Category::DependencyConflict,
        false,
        "ResolutionImpossible",
    );
    expect(
        "$ poetry install\n  SolverProblemError\n\n  Because app depends on b (^9.0) which doesn't match any versions, version solving failed.\n",
        Category::DependencyConflict,
        false,
        "version solving failed",
    );
    expect(
        "would reformat app/main.py\nOh no! 💥 💔 💥\n1 file would be reformatted, 3 files would be left unchanged.\n",
        Category::LintError,
        false,
        "would reformat",
    );
}

#[test]
fn javascript() {
    let d = expect(
        "FAIL src/app.test.js\n  ● Calculator › adds numbers\n\n    expect(received).toBe(expected)\n\nTests:       1 failed, 4 passed, 5 total\n",
        Category::TestFailure,
        false,
        "Calculator",
    );
    assert_eq!(d.failing_tests, vec!["Calculator › adds numbers"]);
    expect(
        "npm ERR! code ETIMEDOUT\nnpm ERR! errno ETIMEDOUT\nnpm ERR! network request to https://registry.npmjs.org/left-pad failed, reason: connect ETIMEDOUT 104.16.0.35:443\n",
        Category::DependencyDownload,
        true,
        "ETIMEDOUT",
    );
    expect(
        "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\n",
        Category::DependencyConflict,
        false,
        "ERESOLVE",
    );
    expect(
        "<--- Last few GCs --->\nFATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed - JavaScript heap out of memory\n",
        Category::OutOfMemory,
        true,
        "heap out of memory",
    );
    expect(
        "npm ERR! code EINTEGRITY\nnpm ERR! sha512-abc integrity checksum failed when using sha512\n",
        Category::CacheCorruption,
        true,
        "EINTEGRITY",
    );
}

#[test]
fn java() {
    let d = expect(
        "[INFO] Running com.example.FooTest\n[ERROR] Tests run: 2, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.1 s <<< FAILURE! - in com.example.FooTest\n[ERROR] testFoo(com.example.FooTest)  Time elapsed: 0.01 s  <<< FAILURE!\njava.lang.AssertionError: expected:<1> but was:<2>\n\tat org.junit.Assert.fail(Assert.java:88)\n[ERROR] There are test failures.\n",
        Category::TestFailure,
        false,
        "testFoo",
    );
    assert_eq!(d.failing_tests, vec!["testFoo(com.example.FooTest)"]);
    expect(
        "[ERROR] Failed to execute goal on project app: Could not resolve dependencies for project a:b:jar:1: Could not transfer artifact c:d:pom:1 from/to central (https://repo.maven.apache.org/maven2): Connection reset\n",
        Category::DependencyDownload,
        true,
        "Could not transfer artifact",
    );
    let d = expect(
        "io.reactivex.FlowableTest > publishNoLeak FAILED\n    java.lang.AssertionError at FlowableTest.java:761\n\n12 tests completed, 1 failed\n> Task :test FAILED\n",
        Category::TestFailure,
        false,
        "publishNoLeak",
    );
    assert_eq!(
        d.failing_tests,
        vec!["io.reactivex.FlowableTest > publishNoLeak"]
    );
    expect(
        "[ERROR] COMPILATION ERROR : \n[ERROR] /src/main/java/a/B.java:[12,8] cannot find symbol\n",
        Category::CompilationError,
        false,
        "cannot find symbol",
    );
}

#[test]
fn go_dotnet_c() {
    let d = expect(
        "=== RUN   TestSeparator\n--- FAIL: TestSeparator (0.04s)\n    sep_test.go:12: got 1 want 2\nFAIL\nFAIL\tgithub.com/a/b\t0.123s\n",
        Category::TestFailure,
        false,
        "--- FAIL: TestSeparator",
    );
    assert_eq!(d.failing_tests, vec!["TestSeparator"]);
    expect(
        "go: github.com/a/b@v1.2.3: reading https://proxy.golang.org/github.com/a/b/@v/v1.2.3.zip: 502 Bad Gateway\n",
        Category::DependencyDownload,
        true,
        "502 Bad Gateway",
    );
    expect(
        "Program.cs(20,40): error CS0103: The name 'key' does not exist in the current context [/src/App.csproj]\n\nBuild FAILED.\n",
        Category::CompilationError,
        false,
        "CS0103",
    );
    expect(
        "/src/App.csproj : error NU1301: Unable to load the service index for source https://api.nuget.org/v3/index.json.\n",
        Category::DependencyDownload,
        true,
        "NU1301",
    );
    expect(
        "gcc -c main.c\nmain.c:12:5: error: implicit declaration of function 'foo'\nmake: *** [Makefile:4: main.o] Error 1\n",
        Category::CompilationError,
        false,
        "implicit declaration",
    );
    expect(
        "c++: fatal error: Killed signal terminated program cc1plus\ncompilation terminated.\nmake[2]: *** [big.o] Error 1\n",
        Category::OutOfMemory,
        true,
        "Killed signal",
    );
}

#[test]
fn containers_packages_infra() {
    expect(
        "#5 [2/4] RUN apt-get update\nE: Failed to fetch http://deb.debian.org/debian/pool/main/c/curl/curl_7.88_amd64.deb  Unable to connect to deb.debian.org:80:\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\nERROR: failed to solve: process \"/bin/sh -c apt-get install -y curl\" did not complete successfully: exit code: 100\n",
        Category::DependencyDownload,
        true,
        "Failed to fetch",
    );
    expect(
        "Error response from daemon: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading\n",
        Category::RateLimited,
        true,
        "pull rate limit",
    );
    expect(
        "Error: Failed to download metadata for repo 'appstream': Cannot download repomd.xml: All mirrors were tried\n",
        Category::DependencyDownload,
        true,
        "metadata for repo",
    );
    expect(
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)\n",
        Category::Infrastructure,
        true,
        "Could not get lock",
    );
    expect(
        "Error: Unsupported argument\n\n  on main.tf line 12, in resource \"aws_instance\" \"web\":\n  12:   colour = \"red\"\n",
        Category::ConfigurationError,
        false,
        "Unsupported argument",
    );
    expect(
        "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n",
        Category::Infrastructure,
        true,
        "another operation",
    );
    expect(
        "TASK [install nginx] ***\nfatal: [web1]: UNREACHABLE! => {\"changed\": false, \"msg\": \"Failed to connect to the host via ssh: ssh: connect to host 10.0.0.5 port 22: Connection timed out\", \"unreachable\": true}\n",
        Category::Network,
        true,
        "UNREACHABLE",
    );
    expect(
        "Waiting for pod gitlab-runner/runner-abc to be running, status is Pending\n\tUnschedulable: \"0/1 nodes are available: 1 Insufficient cpu.\"\nERROR: Job failed (system failure): prepare environment: waiting for pod running: timed out waiting for pod to start\n",
        Category::Infrastructure,
        true,
        "system failure",
    );
    expect(
        "Running tests\n##[error]The runner has received a shutdown signal. This can happen when the runner service is stopped.\n",
        Category::Infrastructure,
        true,
        "shutdown signal",
    );
    expect(
        "[Pipeline] sh\nCancelling nested steps due to timeout\nBuild timed out (after 60 minutes). Marking the build as failed.\nFinished: FAILURE\n",
        Category::Timeout,
        true,
        "timed out",
    );
    expect(
        "Too long with no output (exceeded 10m0s): context deadline exceeded\n",
        Category::Timeout,
        true,
        "Too long with no output",
    );
    let d = expect(
        "Run tests\n##[error]The operation was canceled.\n",
        Category::Cancelled,
        false,
        "canceled",
    );
    assert_eq!(d.strategy, Strategy::None);
    expect(
        "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://gitlab.com/a/b.git/'\n",
        Category::Authentication,
        false,
        "Authentication failed",
    );
    expect(
        "bash: line 1: cmake: command not found\n",
        Category::MissingPackage,
        true,
        "command not found",
    );
    expect(
        "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock\n",
        Category::PermissionDenied,
        true,
        "permission denied",
    );
    expect(
        "error: couldn't create a temp dir: No space left on device (os error 28)\nerror: could not compile `x` due to previous error\n",
        Category::DiskFull,
        true,
        "No space left",
    );
}

#[test]
fn a_retried_network_blip_does_not_excuse_a_later_compile_error() {
    let mut log = String::from(
        "warning: spurious network error (2 tries remaining): [7] Couldn't connect to server\n",
    );
    log.push_str("npm ERR! network request failed, reason: socket hang up\n");
    for i in 0..400 {
        log.push_str(&format!("   Compiling crate{i} v1.0.0\n"));
    }
    log.push_str("error[E0308]: mismatched types\nerror: could not compile `app`\nERROR: Job failed: exit code 1\n");
    let d = analyze(&log);
    assert_eq!(d.category, Category::CompilationError);
    assert!(!d.transient);
}

#[test]
fn nothing_convincing_is_unknown_with_low_confidence_and_still_shows_evidence() {
    let d = analyze("step 1 ok\nstep 2 ok\nsomething odd happened: status 3\nThe command \"./run.sh\" exited with 3.\n");
    assert_eq!(d.category, Category::Unknown);
    assert!(!d.transient);
    assert!(d.confidence < 0.3);
    assert_eq!(d.strategy, Strategy::Escalate);
    assert!(
        d.evidence.iter().any(|e| e.text.contains("something odd")),
        "{d:#?}"
    );
    let empty = analyze("");
    assert_eq!(empty.category, Category::Unknown);
}

#[test]
fn evidence_is_clean_numbered_and_redacted() {
    let log = "2024-01-01T00:00:00.0000000Z line one\r\n\
section_start:1700000000:step_script\r\x1b[0K\x1b[32;1m$ make\x1b[0m\r\n\
2024-01-01T00:00:01.0000000Z \x1b[31mfatal: Authentication failed for 'https://ci:ghp_abcdefghijklmnopqrstuvwxyz012345@github.com/a/b.git/'\x1b[0m\r\n\
2024-01-01T00:00:02.0000000Z ##[error]Process completed with exit code 128.\r\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::Authentication);
    let e = d
        .evidence
        .iter()
        .find(|e| e.text.contains("Authentication failed"))
        .expect("evidence");
    assert_eq!(e.line, 3);
    assert!(!e.text.contains('\x1b') && !e.text.contains('\r'));
    assert!(!e.text.starts_with("2024-"));
    assert!(
        !e.text.contains("ghp_abc") && e.text.contains("[REDACTED]"),
        "{}",
        e.text
    );
    assert!(d.evidence.len() <= 20);
}

#[test]
fn fingerprints_group_reruns_and_separate_different_failures() {
    let run = |ts: &str, dir: &str, name: &str| {
        analyze(&format!(
            "{ts} start\nerror[E0425]: cannot find value `{name}` in this scope\n --> {dir}/src/main.rs:12:5\nerror: could not compile `app` due to previous error\n"
        ))
        .fingerprint
    };
    let a = run("2024-01-01T10:00:00Z", "/builds/a/app", "config");
    let b = run("2024-03-09T22:41:07Z", "/home/runner/work/app", "config");
    let c = run("2024-01-01T10:00:00Z", "/builds/a/app", "settings");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 16);
}

/// Feeds a log a few bytes at a time, so chunk boundaries fall everywhere.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn streaming_and_in_memory_analysis_agree() {
    let mut log = String::new();
    for i in 0..50_000 {
        log.push_str(&format!("line {i} compiling module_{i}\n"));
    }
    log.push_str("test tests::flaky ... FAILED\ntest result: FAILED. 1 passed; 1 failed\n");
    let a = Analyzer::builtin();
    let whole = a.analyze(log.as_bytes());
    let streamed = a.analyze_reader(Trickle(log.as_bytes(), 7919)).unwrap();
    assert_eq!(whole, streamed);
    assert_eq!(whole.category, Category::TestFailure);
    assert!(
        whole.evidence.iter().any(|e| e.line == 50_001),
        "{whole:#?}"
    );
}

#[test]
fn user_signatures_take_precedence() {
    let user: Vec<UserSignature> = toml::from_str::<toml::Table>(
        "[[signatures]]\nid = \"our-flaky-db\"\npattern = 'FlakyDatabaseError'\ncategory = \"flaky_test\"\nstrategy = \"retry\"\ndescription = \"Our test database drops connections\"\n",
    )
    .unwrap()["signatures"]
        .clone()
        .try_into()
        .unwrap();
    let a = Analyzer::with_user_signatures(user).unwrap();
    let d = a.analyze(b"E   FlakyDatabaseError: connection dropped\nFAILED tests/test_db.py::test_q - FlakyDatabaseError\n=== 1 failed in 2.0s ===\n");
    assert_eq!(d.category, Category::FlakyTest);
    assert_eq!(d.signature.as_deref(), Some("our-flaky-db"));
    assert!(d.transient);
    assert_eq!(d.strategy, Strategy::Retry);
}

#[test]
fn hints_beside_the_log_are_used() {
    let a = Analyzer::builtin();
    let d = a.analyze_with(
        b"Running job\n",
        &Hints {
            exit_code: None,
            platform_reason: Some("runner_system_failure".into()),
        },
    );
    assert_eq!(d.category, Category::Infrastructure);
    assert!(d.transient);
}

/// TeX does not stop on a warning: a step that built its document and failed with only TeX's
/// warnings in its log failed a check of those warnings (lint). One of TeX's `! …` errors, or
/// latexmk saying it did not finish, is a document that does not compile.
#[test]
fn tex_warnings_are_a_check_tex_errors_a_build() {
    let run = |output: &str| {
        let cmd = "latexmk -pdf thesis && ! grep -q Warning thesis.log";
        format!(
            "$ {cmd}\nLatexmk: Run number 1 of rule 'pdflatex'\nThis is pdfTeX, Version 3.14159265-2.6-1.40.21 (TeX Live 2020)\nentering extended mode\n{output}The command \"{cmd}\" exited with 1.\n\nDone. Your build exited with 1.\n"
        )
    };
    let d = expect(
        &run("Underfull \\vbox (badness 10000) has occurred while \\output is active\nOverfull \\hbox (4.1pt too wide) in paragraph at lines 210--214\n"),
        Category::LintError,
        false,
        "Overfull \\hbox",
    );
    assert_eq!(d.signature.as_deref(), Some("tex-warning"));
    expect(
        &run("Latexmk: Summary of warnings:\n  Latex failed to resolve 2 citation(s)\nLaTeX Warning: There were undefined references.\n"),
        Category::LintError,
        false,
        "undefined references",
    );
    // The same warnings beside an error: the document did not build.
    let d = expect(
        &run("Overfull \\hbox (4.1pt too wide) in paragraph at lines 210--214\n! Undefined control sequence.\nl.215 \\foo\n\nLatexmk: Errors, so I did not complete making targets\n"),
        Category::CompilationError,
        false,
        "Undefined control sequence",
    );
    assert_eq!(d.signature.as_deref(), Some("tex-error"));
    expect(
        &run("! LaTeX Error: File `tikz-cd.sty' not found.\n\nType X to quit or <RETURN> to proceed,\n"),
        Category::CompilationError,
        false,
        "LaTeX Error",
    );
}
