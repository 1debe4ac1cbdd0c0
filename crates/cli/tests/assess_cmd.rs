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

#[test]
fn commands_inside_other_commands_are_judged_as_themselves() {
    let (code, out) = assess(&["--", "kubectl", "exec", "pod", "--", "rm", "-rf", "/"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("rm -rf /"), "{out}");
    let (code, out) = assess(&["--", "kubectl", "exec", "pod", "--", "ls", "/app"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = assess(&["--", "echo / | xargs rm -rf"]);
    assert_eq!(code, Some(4), "{out}");
}

#[test]
fn destruction_outside_the_filesystem() {
    let (code, out) = assess(&["--", "terraform", "destroy", "-auto-approve"]);
    assert_eq!(code, Some(4), "{out}");
    let (code, out) = assess(&[
        "--",
        "aws",
        "ec2",
        "terminate-instances",
        "--instance-ids",
        "i-1",
    ]);
    assert_eq!(code, Some(3), "{out}");
    let (code, out) = assess(&["--", "psql", "-c", "SELECT 1"]);
    assert_eq!(code, Some(0), "{out}");
}
