//! Failures a retry cannot fix, told by the tool's own generic messages: an API client's
//! request the API rejects (404/422), a push git refuses as not a fast-forward, pnpm refusing
//! the project's settings, Windows' cmd.exe not finding a path. Each is a configuration error
//! and never retried; lines that only look alike stay what they were.

use pipeguard_analysis::{Analyzer, Diagnosis};
use pipeguard_taxonomy::Category;

fn analyze(log: &str) -> Diagnosis {
    Analyzer::builtin().analyze(log.as_bytes())
}

/// A GitHub job log: one step `title`, printing `output`, then `last` (the runner's verdict).
fn github_step(title: &str, output: &[&str], last: &str) -> String {
    let mut log = String::from(
        "2026-12-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4\n\
         2026-12-01T10:00:01.0000000Z ##[endgroup]\n",
    );
    log += &format!("2026-12-01T10:00:02.0000000Z ##[group]Run {title}\n");
    log += "2026-12-01T10:00:02.0000000Z ##[endgroup]\n";
    for l in output {
        log += &format!("2026-12-01T10:00:03.0000000Z {l}\n");
    }
    log += &format!("2026-12-01T10:00:04.0000000Z {last}\n");
    log += "2026-12-01T10:00:05.0000000Z Post job cleanup.\n";
    log
}

const EXIT: &str = "##[error]Process completed with exit code 1.";

fn assert_config(log: &str, cause: &str) {
    let d = analyze(log);
    assert_eq!(d.category, Category::ConfigurationError, "{d:#?}");
    assert!(!d.transient, "a retry asks the same: {d:#?}");
    assert!(
        d.evidence.iter().any(|e| e.text.contains(cause)),
        "{cause:?} is evidence: {d:#?}"
    );
}

#[test]
fn an_api_client_asking_for_what_does_not_exist_is_a_configuration_error() {
    for (status, message) in [("404", "Not Found"), ("422", "Validation Failed")] {
        let log = github_step(
            "actions/github-script@v7",
            &[
                &format!("RequestError [HttpError]: {message}"),
                &format!("    at /home/runner/work/_actions/actions/github-script/v7/dist/index.js:9537:21 {{ status: {status} }}"),
                "  request: { method: 'GET', url: 'https://api.github.com/repos/o/r/pulls//files' }",
            ],
            &format!("##[error]Unhandled error: HttpError: {message}"),
        );
        assert_config(&log, message);
    }
}

#[test]
fn a_client_error_is_not_a_server_error() {
    // A 503 from the same client is the service's trouble, not the request's.
    let log = github_step(
        "actions/github-script@v7",
        &["RequestError [HttpError]: Service Unavailable"],
        "##[error]Unhandled error: HttpError: Service Unavailable",
    );
    assert_ne!(analyze(&log).category, Category::ConfigurationError);
}

#[test]
fn a_push_git_refuses_as_not_a_fast_forward_is_a_configuration_error() {
    let log = github_step(
        "git push origin HEAD:release",
        &[
            "To https://github.com/o/r",
            " ! [rejected]        HEAD -> release (non-fast-forward)",
            "error: failed to push some refs to 'https://github.com/o/r'",
            "hint: Updates were rejected because the tip of your current branch is behind",
            "hint: its remote counterpart. If you want to integrate the remote changes,",
        ],
        EXIT,
    );
    assert_config(&log, "[rejected]");
}

#[test]
fn pnpm_refusing_the_projects_settings_is_a_configuration_error() {
    let log = github_step(
        "pnpm --recursive publish --no-git-checks",
        &[
            "packages/a  |  WARN  Unsupported platform: wanted: {\"os\":[\"linux\"]}",
            " ERR_PNPM_NO_SCRIPT  Missing script: prepublish-check",
            "",
            "Command \"prepublish-check\" not found.",
        ],
        EXIT,
    );
    assert_config(&log, "ERR_PNPM_NO_SCRIPT");
}

#[test]
fn cmd_not_finding_a_path_is_a_configuration_error() {
    let log = github_step(
        "some-org/setup-toolchain@v2",
        &[
            "[command]C:\\Windows\\system32\\cmd.exe /D /S /C C:\\a\\_temp\\setup\\shell.cmd -c \"uname -a\"",
            "The system cannot find the path specified.",
        ],
        "##[error]The process 'C:\\Windows\\system32\\cmd.exe' failed with exit code 1",
    );
    assert_config(&log, "cannot find the path");
}
