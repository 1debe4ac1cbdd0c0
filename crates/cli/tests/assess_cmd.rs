//! `pipeguard assess`: levels, reasons and exit statuses.

use std::process::Command;

fn assess(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .arg("assess")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exit_status_follows_the_level() {
    let (code, out) = assess(&["--", "apt-get", "install", "-y", "nginx"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("low:"), "{out}");
    let (code, out) = assess(&["--", "chmod", "0644", "/srv/app/app.conf"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("medium:"), "{out}");
    let (code, out) = assess(&["--", "useradd", "deploy"]);
    assert_eq!(code, Some(3));
    assert!(out.starts_with("high:"), "{out}");
    let (code, out) = assess(&["--", "rm", "-rf", "/"]);
    assert_eq!(code, Some(4));
    assert!(out.starts_with("refused:"), "{out}");
}

#[test]
fn json_format_has_level_reason_and_findings() {
    let (code, out) = assess(&[
        "--format",
        "json",
        "--",
        "sh",
        "-c",
        "echo cm0gLXJmIC8= | base64 -d | sh",
    ]);
    assert_eq!(code, Some(4));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["level"], "refused");
    assert!(v["reason"].as_str().unwrap().contains("deletes /"));
    assert!(v["findings"].as_array().unwrap().len() >= 2);
}

#[test]
fn missing_command_is_a_usage_error() {
    let (code, _) = assess(&[]);
    assert_eq!(code, Some(2));
}
