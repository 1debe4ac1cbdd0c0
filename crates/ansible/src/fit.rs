//! Whether a command fits the host it would run on (`apt-get` needs apt, `systemctl` needs
//! systemd), and whether a diagnostic only reads. Both are tables; the shell reader of the
//! safety engine finds every command a script runs.

use crate::facts::{HostFacts, PackageManager, ServiceManager};
use pipeguard_core::safety::shell::{self, Part, SimpleCommand};

/// What a tool needs of the host.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Packages(&'static [PackageManager]),
    Init(&'static [ServiceManager]),
}

use PackageManager as P;
use ServiceManager as S;

/// Tool → the facts it requires. A tool not listed fits every host.
const TOOLS: &[(&str, Needs)] = &[
    ("apt-get", Needs::Packages(&[P::Apt])),
    ("apt", Needs::Packages(&[P::Apt])),
    ("apt-cache", Needs::Packages(&[P::Apt])),
    ("dpkg", Needs::Packages(&[P::Apt])),
    ("dnf", Needs::Packages(&[P::Dnf])),
    ("yum", Needs::Packages(&[P::Yum, P::Dnf])),
    ("rpm", Needs::Packages(&[P::Dnf, P::Yum, P::Zypper])),
    ("apk", Needs::Packages(&[P::Apk])),
    ("zypper", Needs::Packages(&[P::Zypper])),
    ("pacman", Needs::Packages(&[P::Pacman])),
    ("systemctl", Needs::Init(&[S::Systemd])),
    ("journalctl", Needs::Init(&[S::Systemd])),
    ("rc-service", Needs::Init(&[S::OpenRc])),
    ("rc-update", Needs::Init(&[S::OpenRc])),
    ("initctl", Needs::Init(&[S::Upstart])),
];

/// Commands that run the command after them (their own options skipped).
const WRAPPERS: [&str; 6] = ["sudo", "doas", "env", "nice", "nohup", "command"];

/// Tools that only read, with the subcommands or options that would make them write.
/// `Some(list)`: only these first arguments read; `None`: every use reads unless an argument
/// is in `FORBIDDEN_ARGS`.
const READ_ONLY: &[(&str, Option<&[&str]>)] = &[
    ("ls", None),
    ("stat", None),
    ("test", None),
    ("[", None),
    ("cat", None),
    ("head", None),
    ("tail", None),
    ("grep", None),
    ("wc", None),
    ("df", None),
    ("du", None),
    ("free", None),
    ("uptime", None),
    ("uname", None),
    ("id", None),
    ("whoami", None),
    ("hostname", None),
    ("ps", None),
    ("pgrep", None),
    ("ss", None),
    ("netstat", None),
    ("lsof", None),
    ("which", None),
    ("file", None),
    ("readlink", None),
    ("realpath", None),
    ("getent", None),
    ("findmnt", None),
    ("lsblk", None),
    ("find", None),
    ("journalctl", None),
    ("echo", None),
    ("true", None),
    (
        "systemctl",
        Some(&[
            "status",
            "is-active",
            "is-enabled",
            "is-failed",
            "show",
            "cat",
            "list-units",
        ]),
    ),
    ("rc-service", None),
    ("service", None),
    (
        "dpkg",
        Some(&["-l", "-s", "-L", "-S", "--status", "--list"]),
    ),
    ("rpm", Some(&["-q", "-qa", "-qi", "-ql", "-qf"])),
];

/// Arguments that make an otherwise reading tool write or run something.
const FORBIDDEN_ARGS: [&str; 12] = [
    "-delete",
    "-exec",
    "-execdir",
    "-ok",
    "-okdir",
    "-fprint",
    "-fprintf",
    "-fls",
    "--vacuum-size",
    "--vacuum-time",
    "--rotate",
    "--flush",
];

/// The literal argv of each simple command of a script, or `None` when it cannot be read
/// statically (a parse error, an expansion in the command name).
fn commands(script: &str) -> Option<Vec<(Vec<String>, bool)>> {
    let parsed = shell::parse(script).ok()?;
    if !parsed.functions.is_empty() {
        return None;
    }
    let mut out = vec![];
    for c in parsed.pipelines.iter().flat_map(|p| &p.commands) {
        let argv: Option<Vec<String>> = c.words.iter().map(|w| w.literal()).collect();
        out.push((unwrap(argv?), simple(c)));
    }
    Some(out)
}

/// Whether the command expands nothing at run time and writes through no redirection.
fn simple(c: &SimpleCommand) -> bool {
    let expands = c.words.iter().any(|w| {
        w.parts
            .iter()
            .any(|p| matches!(p, Part::Sub { .. } | Part::ProcSub { .. }))
    });
    !expands && !c.background && c.redirects.iter().all(|r| !r.writes())
}

/// The command a wrapper runs: `sudo -n systemctl status x` → `systemctl status x`.
fn unwrap(argv: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i < argv.len() && WRAPPERS.contains(&base(&argv[i])) {
        i += 1;
        while i < argv.len() && (argv[i].starts_with('-') || argv[i].contains('=')) {
            i += 1;
        }
    }
    argv[i..].to_vec()
}

fn base(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Why `script` does not fit the host, or `None` when it fits (or the facts cannot tell).
pub fn misfit(script: &str, facts: &HostFacts) -> Option<String> {
    let pkg = facts.package_manager();
    let init = facts.service_mgr.as_ref().map(|_| facts.service_manager());
    for (argv, _) in commands(script).unwrap_or_default() {
        let Some(tool) = argv.first().map(|a| base(a)) else {
            continue;
        };
        let Some((_, needs)) = TOOLS.iter().find(|(t, _)| *t == tool) else {
            continue;
        };
        let fits = match needs {
            Needs::Packages(list) => pkg == P::Unknown || list.contains(&pkg),
            Needs::Init(list) => init.is_none_or(|i| list.contains(&i)),
        };
        if !fits {
            return Some(format!(
                "{tool} does not fit this host (package manager {}, init {})",
                facts.pkg_mgr.as_deref().unwrap_or("unknown"),
                facts.service_mgr.as_deref().unwrap_or("unknown")
            ));
        }
    }
    None
}

/// `Ok` when every command of the script only reads; otherwise why not.
pub fn read_only(script: &str) -> Result<(), String> {
    let cmds = commands(script).ok_or("it cannot be read statically")?;
    for (argv, simple) in cmds {
        let tool = argv.first().map(|a| base(a)).unwrap_or("");
        if !simple {
            return Err(format!("{tool} writes through a redirection or runs code"));
        }
        let Some((_, subs)) = READ_ONLY.iter().find(|(t, _)| *t == tool) else {
            return Err(format!("{tool} is not a read-only tool"));
        };
        let first = argv.get(1).map(String::as_str).unwrap_or("");
        let allowed = match subs {
            Some(list) => list.contains(&first),
            None => !argv[1..]
                .iter()
                .any(|a| FORBIDDEN_ARGS.contains(&a.as_str())),
        };
        // `service NAME status` and `rc-service NAME status` only read when they say so.
        let service_ok = !matches!(tool, "service" | "rc-service")
            || argv.last().map(String::as_str) == Some("status");
        if !allowed || !service_ok {
            return Err(format!("`{}` may change the host", argv.join(" ")));
        }
    }
    Ok(())
}

/// Whether the script is one plain command (`ansible.builtin.command` runs it) rather
/// than shell syntax (`ansible.builtin.shell`).
pub fn is_plain_command(script: &str) -> bool {
    commands(script).is_some_and(|c| c.len() == 1 && c[0].1)
        && !script.contains(['|', '&', ';', '<', '>', '$', '`', '*', '?', '~'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(pkg: &str, init: &str) -> HostFacts {
        HostFacts {
            pkg_mgr: Some(pkg.into()),
            service_mgr: Some(init.into()),
            ..HostFacts::default()
        }
    }

    #[test]
    fn tools_must_fit_the_host() {
        let rocky = host("dnf", "systemd");
        assert!(misfit("apt-get install -y nginx", &rocky).is_some());
        assert!(misfit("sudo -n apt-get update && dnf makecache", &rocky).is_some());
        assert!(misfit("dnf install -y nginx", &rocky).is_none());
        assert!(misfit("systemctl restart nginx", &rocky).is_none());
        let alpine = host("apk", "openrc");
        assert!(misfit("systemctl status nginx", &alpine)
            .unwrap()
            .contains("systemctl"));
        assert!(misfit("rc-service nginx status", &alpine).is_none());
        // Facts that say nothing refuse nothing.
        assert!(misfit("apt-get update", &HostFacts::default()).is_none());
    }

    #[test]
    fn diagnostics_must_only_read() {
        for ok in [
            "ls -ld /etc/app",
            "systemctl status nginx",
            "df -h / | tail -1",
            "sudo journalctl -u nginx -n 50",
            "service nginx status",
        ] {
            assert_eq!(read_only(ok), Ok(()), "{ok}");
        }
        for bad in [
            "mkdir -p /etc/app",
            "systemctl restart nginx",
            "find /tmp -delete",
            "echo x > /etc/app.conf",
            "ls $(rm -rf /x)",
            "service nginx start",
            "dpkg -i x.deb",
        ] {
            assert!(read_only(bad).is_err(), "{bad}");
        }
        assert!(is_plain_command("mkdir -p /etc/app"));
        assert!(!is_plain_command("df -h / | tail -1"));
    }
}
