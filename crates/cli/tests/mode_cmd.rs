//! `pipeguard mode set` against a real server process: an admin switches a repository, the
//! readiness endpoint reports the mode, and refusals exit non-zero with the server's reason.

mod common;

use common::{bin, text, Served};

#[test]
fn mode_set_switches_a_repository_and_refuses_non_admins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path());
    let admin = server.token(dir.path(), "admin");
    let operator = server.token(dir.path(), "operator");
    let mode = |token: &str, args: &[&str]| {
        bin(dir.path())
            .args(["mode", "set", "--server", &server.base])
            .args(args)
            .env("PIPEGUARD_TOKEN", token)
            .output()
            .unwrap()
    };

    let o = mode(&admin, &["--repository", "o/r", "observe"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "o/r: observe (was the configuration file's mode)\n"
    );
    let o = mode(&admin, &["--repository", "o/r", "act", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"repository": "o/r", "mode": "act", "before": "observe"})
    );

    let o = mode(&operator, &["--repository", "o/r", "observe"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("403"), "{}", text(&o));
    let o = mode(&admin, &["--repository", "  ", "observe"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("400") && text(&o).contains("repository"),
        "{}",
        text(&o)
    );
    let o = mode(&admin, &["--repository", "o/r", "on"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown mode");
    assert!(
        text(&o).contains("act") && text(&o).contains("observe"),
        "{}",
        text(&o)
    );
}
