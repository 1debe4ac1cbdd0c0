//! Failures of custom steps: a GitHub `run:` script of several commands, a meta check that
//! reports other checks, a Nix check, a script whose only words are its own `##[error]`
//! message. The step's commands and the lines it printed decide together; where they say
//! nothing classifiable the answer stays `unknown`.

use pipeguard_analysis::{Analyzer, Diagnosis};
use pipeguard_taxonomy::Category;

fn analyze(log: &str) -> Diagnosis {
    Analyzer::builtin().analyze(log.as_bytes())
}

/// A GitHub job log: one step running `script` (printed whole in its group, as GitHub does),
/// printing `output`, then the runner's exit line.
fn github_step(script: &[&str], output: &[&str]) -> String {
    let mut log = String::from("2026-12-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4\n2026-12-01T10:00:01.0000000Z ##[endgroup]\n");
    log += &format!("2026-12-01T10:00:02.0000000Z ##[group]Run {}\n", script[0]);
    for l in script {
        log += &format!("2026-12-01T10:00:02.0000000Z \u{1b}[36;1m{l}\u{1b}[0m\n");
    }
    log += "2026-12-01T10:00:02.0000000Z shell: /usr/bin/bash -e {0}\n2026-12-01T10:00:02.0000000Z ##[endgroup]\n";
    for l in output {
        log += &format!("2026-12-01T10:00:03.0000000Z {l}\n");
    }
    log += "2026-12-01T10:00:04.0000000Z ##[error]Process completed with exit code 1.\n2026-12-01T10:00:05.0000000Z Post job cleanup.\n";
    log
}

#[test]
fn the_command_of_a_multi_line_script_decides_not_only_its_first_line() {
    // The group's title is the script's first line (`echo`); the tool runs on a later one.
    for (cmd, cat) in [
        ("npx eslint --max-warnings 0 src", Category::LintError),
        ("black --check .", Category::LintError),
        ("treefmt --fail-on-change", Category::LintError),
        ("python -m pytest -q tests", Category::TestFailure),
    ] {
        let log = github_step(
            &["echo \"Running the checks\"", "cd app", cmd],
            &["Running the checks", "widget.q:3:4 something is not right"],
        );
        let d = analyze(&log);
        assert_eq!(d.category, cat, "{cmd}: {d:#?}");
        assert!(!d.transient, "{cmd}");
        assert!(
            d.evidence.iter().any(|e| e.text.contains("widget.q")),
            "{cmd}: {d:#?}"
        );
    }
}

#[test]
fn the_words_a_script_echoes_are_not_what_it_runs() {
    // `echo "lint docs tests"` names three kinds of work; the script runs none of them.
    let log = github_step(
        &[
            "echo \"lint, docs and tests come later\"",
            "./scripts/publish-notes",
        ],
        &[
            "lint, docs and tests come later",
            "nothing to publish for 4.2.0",
        ],
    );
    let d = analyze(&log);
    assert_eq!(d.category, Category::Unknown, "{d:#?}");
    assert!(d
        .evidence
        .iter()
        .any(|e| e.text.contains("nothing to publish")));
}

#[test]
fn a_meta_check_fails_as_the_check_it_reports() {
    for (reported, cat) in [
        ("type-check", Category::LintError),
        ("unit tests", Category::TestFailure),
    ] {
        let log = github_step(
            &["python .github/scripts/check_status.py"],
            &[
                "Processing check runs...",
                "Check run build (ID: 40528363001) has conclusion: success",
                &format!("Check run {reported} (ID: 40528363020) has conclusion: failure"),
                "Some check runs have failed or have not completed. This check fails.",
            ],
        );
        let d = analyze(&log);
        assert_eq!(d.category, cat, "{reported}: {d:#?}");
        assert!(!d.transient);
    }
}

#[test]
fn a_nix_check_fails_as_the_derivation_nix_names() {
    let log = github_step(
        &["nix flake check"],
        &[
            "building '/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-source.drv'...",
            "error: builder for '/nix/store/vxiv73afxkl1x5zx9wc0mx9ni91r64a1-treefmt-check.drv' failed with exit code 1;",
            "       last 3 log lines:",
            "       > src/main.go was reformatted",
        ],
    );
    let d = analyze(&log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(!d.transient);
}

#[test]
fn a_scripts_own_error_message_says_what_it_checked_or_nothing() {
    let log = github_step(
        &["./.github/verify-pr.sh"],
        &["##[error]Every pull request needs a changelog entry under changes/"],
    );
    let d = analyze(&log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(!d.transient);
    assert!(d
        .evidence
        .iter()
        .any(|e| e.text.contains("changelog entry")));

    // A message with nothing classifiable stays an honest unknown, with the message as evidence.
    let log = github_step(
        &["./.github/verify-pr.sh"],
        &["##[error]The patterns folder did not change"],
    );
    let d = analyze(&log);
    assert_eq!(d.category, Category::Unknown, "{d:#?}");
    assert!(d
        .evidence
        .iter()
        .any(|e| e.text.contains("patterns folder")));
}

#[test]
fn output_after_a_step_marker_is_not_taken_for_its_script() {
    // No `shell:`/`##[endgroup]` closes the group: the lines are output, and a download word in
    // them does not make the step an install.
    let log = "##[group]Run ./scripts/check.sh\nDownloading toolchain 1.2.3\ncurl: (56) Recv failure: Connection reset by peer\n##[error]Process completed with exit code 1.\n";
    let d = analyze(log);
    assert_eq!(d.category, Category::Network, "{d:#?}");
}

#[test]
fn an_api_answering_not_found_is_not_a_missing_program() {
    let log = github_step(
        &["node .github/files-changed.js"],
        &[
            "RequestError [HttpError]: Not Found",
            "##[error]Unhandled error: HttpError: Not Found",
        ],
    );
    let d = analyze(&log);
    assert_ne!(d.category, Category::MissingPackage, "{d:#?}");
    assert!(!d.transient, "{d:#?}");
}

#[test]
fn an_action_failing_with_its_own_error_and_no_exit_line_is_the_failing_step_whatever_runs_after() {
    // A container action reports its findings, fails with an `##[error]` annotation and no
    // exit line; later `if: always()` steps run and end the log.
    let mut log = String::from(
        "2026-12-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4\n\
         2026-12-01T10:00:01.0000000Z ##[endgroup]\n\
         2026-12-01T10:00:02.0000000Z ##[group]Run acme/docs-builder@main\n\
         2026-12-01T10:00:02.0000000Z ##[endgroup]\n\
         2026-12-01T10:00:03.0000000Z ##[error]guide/setup.md: link target intro.md does not exist\n\
         2026-12-01T10:00:03.0000000Z Error: guide/setup.md: link target intro.md does not exist\n\
         2026-12-01T10:00:03.0000000Z 1 Errors / 0 Warnings\n\
         2026-12-01T10:00:04.0000000Z ##[group]Run actions/upload-artifact@v4\n",
    );
    for k in 0..40 {
        log += &format!("2026-12-01T10:00:05.0000000Z Uploaded part {k} of the preview\n");
    }
    log += "2026-12-01T10:00:06.0000000Z Post job cleanup.\n";
    let d = analyze(&log);
    assert_eq!(d.category, Category::LintError, "{d:#?}");
    assert!(!d.transient);
    assert!(
        d.evidence.iter().all(|e| (5..=8).contains(&e.line)),
        "evidence from the annotated step: {d:#?}"
    );
    // With an exit line, the step it closes stays the failing one.
    let exit = log.replace(
        "2026-12-01T10:00:06.0000000Z Post job cleanup.",
        "2026-12-01T10:00:06.0000000Z npm ERR! code ELIFECYCLE\n2026-12-01T10:00:06.0000000Z ##[error]Process completed with exit code 1.\n2026-12-01T10:00:07.0000000Z Post job cleanup.",
    );
    let d = analyze(&exit);
    assert!(
        d.evidence.iter().any(|e| e.line > 8),
        "the exit line's step: {d:#?}"
    );
}
