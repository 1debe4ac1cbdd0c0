//! The analyzer reads a CI log's shape: the step that failed in each runner's format, the
//! command that step ran (and what its tool's failure means), evidence weighed by where it sits.

use pipeguard_analysis::{Analyzer, Diagnosis};
use pipeguard_taxonomy::Category;

fn analyze(log: &str) -> Diagnosis {
    Analyzer::builtin().analyze(log.as_bytes())
}

fn evidence_has(d: &Diagnosis, text: &str) -> bool {
    d.evidence.iter().any(|e| e.text.contains(text))
}

#[test]
fn a_network_word_in_an_earlier_step_never_makes_a_genuine_failure_transient() {
    // Travis: the install step hiccuped (and went on), the test step failed on its own.
    let log = "$ npm install\nnpm WARN deprecated x@1\nnpm ERR! network read ECONNRESET\nadded 200 packages\nThe command \"npm install\" exited with 0.\n$ ./scripts/run-checks.sh\nchecking module a\nchecking module b\nTests Passed: 10, Failed: 2, Skipped: 0\nThe command \"./scripts/run-checks.sh\" exited with 1.\n\nDone. Your build exited with 1.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::TestFailure, "{d:#?}");
    assert!(!d.transient);
    assert!(evidence_has(&d, "Failed: 2"), "{d:#?}");
    assert!(!evidence_has(&d, "ECONNRESET"), "{d:#?}");
}

#[test]
fn the_same_network_error_inside_the_failing_step_is_transient() {
    let log = "$ npm test\nall good\nThe command \"npm test\" exited with 0.\n$ npm install\nnpm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET\nThe command \"npm install\" failed and exited with 1 during .\n";
    let d = analyze(log);
    assert!(d.category.is_transient(), "{d:#?}");
    assert!(d.transient, "{d:#?}");
}

#[test]
fn the_failing_command_decides_when_its_output_is_new() {
    // No signature knows these messages; the tool that failed does.
    for (cmd, cat) in [
        ("stylelint 'css/**/*.css'", Category::LintError),
        ("swiftlint lint --strict", Category::LintError),
        ("mix format --check-formatted", Category::LintError),
        ("./sbt ++2.12.8 test", Category::TestFailure),
        ("cabal test", Category::TestFailure),
        ("karma start --single-run", Category::TestFailure),
    ] {
        let log = format!(
            "$ {cmd}\nprocessing 41 inputs\nsomething is not right in widget.q at 3:4\nThe command \"{cmd}\" exited with 1.\n\nDone. Your build exited with 1.\n"
        );
        let d = analyze(&log);
        assert_eq!(d.category, cat, "{cmd}: {d:#?}");
        assert!(!d.transient, "{cmd}");
        assert!(evidence_has(&d, "widget.q"), "{cmd}: {d:#?}");
    }
}

#[test]
fn a_link_checker_reporting_dead_urls_is_lint_not_network() {
    let log = "$ awesome_bot README.md --allow-dupe\nChecking URLs: ✓✓✓✗✓\nIssues :-(\n> Links\n  1. 404 https://example.org/gone\n  2. https://down.example.com Failed to open TCP connection to down.example.com:443 (getaddrinfo: Name or service not known)\n  3. https://slow.example.com Connection timed out - connect(2)\nThe command \"awesome_bot README.md --allow-dupe\" exited with 1.\n\nDone. Your build exited with 1.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(!d.transient);
    assert!(evidence_has(&d, "404 https://example.org/gone"), "{d:#?}");
}

#[test]
fn a_test_that_prints_a_missing_command_is_a_test_failure() {
    let log = "$ bundle exec rspec\n..F.\nFailures:\n\n  1) Installer reports a missing tool\n     Failure/Error: expect(out).to include(\"ok\")\n       got: \"sh: 1: frobnicate: not found\"\n\n4 examples, 1 failure\nThe command \"bundle exec rspec\" exited with 1.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::TestFailure, "{d:#?}");
    assert!(!d.transient);
    // The first failure's description, as a person would paste it.
    assert!(
        evidence_has(&d, "1) Installer reports a missing tool"),
        "{d:#?}"
    );
    assert!(evidence_has(&d, "Failure/Error"), "{d:#?}");
}

#[test]
fn gitlab_after_script_is_not_the_failing_step() {
    let log = "Running with gitlab-runner 16.0\nsection_start:1:step_script\r\x1b[0KExecuting \"step_script\" stage of the job script\n$ cargo fmt --check\nDiff in /builds/a/src/lib.rs at line 3:\n-fn a(){}\n+fn a() {}\nsection_end:2:step_script\r\x1b[0K\nsection_start:2:after_script\r\x1b[0KRunning after_script\n$ curl -s https://metrics.example.com/push\ncurl: (6) Could not resolve host: metrics.example.com\nsection_end:3:after_script\r\x1b[0K\nCleaning up project directory and file based variables\nERROR: Job failed: exit code 1\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(!d.transient, "{d:#?}");
    assert!(evidence_has(&d, "Diff in"), "{d:#?}");
}

#[test]
fn github_actions_step_and_its_command() {
    let log = "2024-05-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4\n2024-05-01T10:00:01.0000000Z ##[endgroup]\n2024-05-01T10:00:02.0000000Z ##[group]Run npx eslint .\n2024-05-01T10:00:03.0000000Z ##[endgroup]\n2024-05-01T10:00:04.0000000Z /home/runner/work/a/src/x.js\n2024-05-01T10:00:04.0000000Z   3:1  warning  something odd here  foo/bar\n2024-05-01T10:00:05.0000000Z ##[error]Process completed with exit code 1.\n2024-05-01T10:00:06.0000000Z Post job cleanup.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(
        d.signature.as_deref().is_some_and(|s| s.contains("eslint")),
        "{d:#?}"
    );
}

#[test]
fn jenkins_traced_command_names_the_tool() {
    let log = "[Pipeline] stage\n[Pipeline] { (Check)\n[Pipeline] sh\n+ ./gradlew --no-daemon ktlintCheck\n> Task :app:ktlintMainSourceSetCheck\nsrc/Main.kt:3:1 Unexpected blank line(s) before \"}\"\n[Pipeline] }\n[Pipeline] // stage\n[Pipeline] End of Pipeline\nERROR: script returned exit code 1\nFinished: FAILURE\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(evidence_has(&d, "Unexpected blank line"), "{d:#?}");
}

#[test]
fn consecutive_step_markers_are_all_seen() {
    // Each `$ cmd` starts a step, even right after another.
    let log = "$ export CI=true\n$ echo start\n$ stylelint src\nsrc/a.css: odd thing\nThe command \"stylelint src\" exited with 2.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
}

#[test]
fn a_chain_stops_at_the_tool_that_names_itself() {
    // yarn echoes the script it runs; its failure line points at it; the last tool of the chain
    // that ran is the one whose report ends the output.
    let log = "$ yarn test\nyarn run v1.22\n$ jest && size-limit\nPASS a.test.js\n  Package size limit has exceeded by 4 KB\n  Try to reduce size or increase limit in \"size-limit\" section of package.json\nerror Command failed with exit code 3.\nThe command \"yarn test\" exited with 1.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(evidence_has(&d, "size limit has exceeded"), "{d:#?}");
}

#[test]
fn evidence_is_a_few_lines_in_log_order() {
    let log = "$ make test\nrunning 300 tests\n".to_string()
        + &"test x ... ok\n".repeat(300)
        + "test y ... FAILED\n\nfailures:\n\n---- y stdout ----\nthread 'y' panicked at 'boom', src/lib.rs:3:5\n\ntest result: FAILED. 300 passed; 1 failed\n"
        + "The command \"make test\" exited with 2.\n";
    let d = analyze(&log);
    assert_eq!(d.category, Category::TestFailure);
    assert!((3..=12).contains(&d.evidence.len()), "{d:#?}");
    assert!(d.evidence.windows(2).all(|w| w[0].line < w[1].line));
    assert!(evidence_has(&d, "panicked at 'boom'"), "{d:#?}");
}
