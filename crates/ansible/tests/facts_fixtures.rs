//! The multi-OS matrix without containers: `ansible -m setup` facts of Debian, Ubuntu,
//! Rocky, Alpine and SUSE hosts choose the rules' commands and the fit of proposed ones.

use pipeguard_ansible::hostloop::{gate, Gate, Purpose};
use pipeguard_ansible::{classify, HostFacts, TaskFailure};
use pipeguard_core::{Analyzer, Risk};
use serde_json::json;

fn facts(name: &str) -> HostFacts {
    let path = format!(
        "{}/tests/fixtures/facts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    HostFacts::from_setup(&v)
}

fn failure(msg: &str, cmd: &str) -> TaskFailure {
    TaskFailure {
        host: "h".into(),
        task: "t".into(),
        module: "ansible.builtin.command".into(),
        msg: msg.into(),
        rc: Some(1),
        args: json!({ "_raw_params": cmd }),
        ..TaskFailure::default()
    }
}

/// The fix commands the rules choose, joined for comparison.
fn fixes(f: &TaskFailure, h: &HostFacts) -> Vec<String> {
    classify(f, Some(h), &Analyzer::builtin())
        .steps()
        .iter()
        .filter(|s| s.phase == pipeguard_ansible::Phase::Fix)
        .map(|s| s.argv.join(" "))
        .collect()
}

#[test]
fn setup_facts_are_read_as_the_plugin_summarises_them() {
    let d = facts("debian12");
    assert_eq!(d.os_family.as_deref(), Some("Debian"));
    assert_eq!(d.pkg_mgr.as_deref(), Some("apt"));
    assert_eq!(d.service_mgr.as_deref(), Some("systemd"));
    assert_eq!(d.memfree_mb, Some(812));
    // Free disk is that of `/`, not of the first mount listed (/boot).
    assert_eq!(d.disk_free_mb, Some(14511239168 / (1024 * 1024)));
    assert_eq!(facts("sles15").disk_free_mb, Some(2048));
    let s = facts("rocky9").summary();
    assert!(
        s.contains("Rocky 9.3 (RedHat family), package manager dnf, init systemd"),
        "{s}"
    );
    assert!(s.contains("689 MB memory free"), "{s}");
}

#[test]
fn missing_program_installs_with_the_hosts_package_manager() {
    let f = failure(
        "[Errno 2] No such file or directory: b'jq'",
        "jq . data.json",
    );
    let expect = [
        ("debian12", "apt-get install -y --no-install-recommends jq"),
        (
            "ubuntu2204",
            "apt-get install -y --no-install-recommends jq",
        ),
        ("rocky9", "dnf install -y jq"),
        ("alpine319", "apk add --no-cache jq"),
        ("sles15", "zypper --non-interactive install jq"),
    ];
    for (host, install) in expect {
        let got = fixes(&f, &facts(host));
        assert_eq!(
            got.last().map(String::as_str),
            Some(install),
            "{host}: {got:?}"
        );
    }
}

#[test]
fn stopped_service_starts_with_the_hosts_init_system() {
    let f = failure("non-zero return code", "systemctl is-active nginx");
    assert_eq!(
        fixes(&f, &facts("rocky9")),
        ["systemctl reset-failed nginx", "systemctl start nginx"]
    );
    assert_eq!(fixes(&f, &facts("alpine319")), ["rc-service nginx start"]);
    assert_eq!(
        fixes(&f, &facts("sles15")).last().unwrap(),
        "systemctl start nginx"
    );
}

#[test]
fn commands_that_do_not_fit_the_host_are_refused_before_they_run() {
    let cases = [
        ("rocky9", "apt-get install -y nginx", false),
        ("rocky9", "dnf install -y nginx", true),
        ("debian12", "dnf install -y nginx", false),
        ("debian12", "sudo apt-get install -y nginx", true),
        ("alpine319", "systemctl restart nginx", false),
        ("alpine319", "rc-service nginx restart", true),
        ("alpine319", "apk add nginx", true),
        ("sles15", "zypper --non-interactive install nginx", true),
        ("sles15", "yum install -y nginx", false),
        ("ubuntu2204", "rc-service nginx start", false),
    ];
    for (host, cmd, fits) in cases {
        let g = gate(Purpose::Fix, cmd, Risk::Low, &facts(host));
        assert_eq!(g == Gate::Run, fits, "{host}: {cmd}: {g:?}");
        if !fits {
            assert!(
                matches!(g, Gate::Refuse(ref why) if why.contains("does not fit")),
                "{g:?}"
            );
        }
    }
}

/// Predicting on hosts: SLES has 2 GB free of 40 GB on `/` (5%), Ubuntu has 4,200 inodes
/// left of 2.6 million; Debian, Rocky and Alpine are fine. The cleanup is offered for disk
/// and inodes, built for the host (zypper's clean on SUSE, apt's on Ubuntu).
#[test]
fn hosts_about_to_fill_up_are_warned_and_offered_the_cleanup() {
    use pipeguard_ansible::predict::{cleanup, warnings, Resource};
    for fine in ["debian12", "rocky9", "alpine319"] {
        assert!(warnings(fine, &facts(fine)).is_empty(), "{fine}");
    }
    assert_eq!(facts("debian12").inodes_free, Some(1_200_000));
    let sles = facts("sles15");
    let w = warnings("sles15", &sles);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].resource, w[0].free, w[0].total),
        (Resource::Disk, 2048, 40952)
    );
    assert!(
        w[0].message.contains("disk / 2048 of 40952 MB free (5.0%)"),
        "{}",
        w[0].message
    );
    let d = cleanup("sles15", &sles, &w).expect("a cleanup is offered");
    assert_eq!(d.kind, "disk_filling");
    let fixes: Vec<String> = d
        .steps()
        .iter()
        .filter(|s| s.phase == pipeguard_ansible::Phase::Fix)
        .map(|s| s.argv.join(" "))
        .collect();
    assert!(fixes.iter().any(|f| f.starts_with("zypper")), "{fixes:?}");
    assert!(
        d.risk() <= Risk::Medium,
        "no approval beyond the usual: {:?}",
        d.risk()
    );
    let yml = pipeguard_ansible::playbook::render("predict", 0, &[(&d, None)]);
    assert!(
        yml.contains("hosts: \"sles15\"") && yml.contains("disk_filling"),
        "{yml}"
    );

    let ubuntu = facts("ubuntu2204");
    let w = warnings("ubuntu2204", &ubuntu);
    assert_eq!(
        w.iter().map(|w| w.resource).collect::<Vec<_>>(),
        [Resource::Inodes]
    );
    assert!(cleanup("ubuntu2204", &ubuntu, &w).is_some());
}

#[test]
fn low_memory_is_warned_without_a_cleanup() {
    use pipeguard_ansible::predict::{cleanup, warnings, Resource};
    let mut rocky = facts("rocky9");
    rocky.memfree_mb = Some(60);
    let w = warnings("rocky9", &rocky);
    assert_eq!(
        w.iter().map(|w| w.resource).collect::<Vec<_>>(),
        [Resource::Memory]
    );
    assert!(
        cleanup("rocky9", &rocky, &w).is_none(),
        "cleaning disks frees no memory"
    );
    // Unknown totals warn about nothing.
    rocky.memtotal_mb = None;
    assert!(warnings("rocky9", &rocky).is_empty());
}
