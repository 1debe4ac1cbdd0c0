//! Safety assessment of commands before anything runs them.
//!
//! Every command is parsed into argv the way a shell would read it (quotes, escapes,
//! `$'\x72m'`, variables set earlier in the same script, `$(...)`, pipes, `sh -c`, wrappers
//! such as `sudo`, `env` or `timeout`) and each resulting command is judged on its argv,
//! never on substrings of the text. The verdict is the worst finding:
//! `low` (install a package, start a service, create a directory), `medium` (change a file,
//! permissions on a managed path, stop a process), `high` (system paths, users, firewall,
//! kernel, disks, code computed at run time) and `refused` (destructive whatever the caller
//! says: recursive deletion of `/` or top-level directories, `mkfs`, `dd` onto devices,
//! shutdown, fork bombs, downloads piped into a shell, and their obfuscated spellings).

pub mod shell;

use crate::policy::Risk;
use serde::{Deserialize, Serialize};
use shell::{Part, Pipeline, SimpleCommand, Word};
use std::collections::HashMap;

/// One reason that contributed to the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub level: Risk,
    pub reason: String,
    /// The command the finding is about, as argv joined for display.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub level: Risk,
    /// The reason of the worst finding.
    pub reason: String,
    pub findings: Vec<Finding>,
}

impl Assessment {
    pub fn allowed_without_approval(&self) -> bool {
        self.level <= Risk::Medium
    }
}

/// `low`, `medium`, `high` or `refused`, as in JSON.
pub fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
        Risk::Refused => "refused",
    }
}

/// Assess a command given as argv (what `execve` would receive). A single argument that
/// contains shell syntax is read as a shell script, since that is how such strings end up run.
pub fn assess(argv: &[String]) -> Assessment {
    if argv.is_empty() {
        return verdict(vec![Finding {
            level: Risk::Refused,
            reason: "empty command".into(),
            command: String::new(),
        }]);
    }
    if argv.len() == 1 && argv[0].chars().any(|c| " \t\n;&|<>()$`\\'\"*".contains(c)) {
        return assess_script(&argv[0]);
    }
    let mut ctx = Ctx::new(0);
    let args: Vec<Arg> = argv.iter().map(|a| Arg::literal(a)).collect();
    ctx.command(args, &Stdin::Inherit);
    verdict(ctx.findings)
}

/// Assess a shell script (as `sh -c SCRIPT` would run it).
pub fn assess_script(script: &str) -> Assessment {
    let mut ctx = Ctx::new(0);
    ctx.script(script);
    verdict(ctx.findings)
}

fn verdict(mut findings: Vec<Finding>) -> Assessment {
    if findings.is_empty() {
        findings.push(Finding {
            level: Risk::Low,
            reason: "nothing to run".into(),
            command: String::new(),
        });
    }
    let worst = findings
        .iter()
        .enumerate()
        .max_by_key(|(i, f)| (f.level, std::cmp::Reverse(*i)))
        .map(|(_, f)| f.clone())
        .unwrap_or_else(|| findings[0].clone());
    Assessment {
        level: worst.level,
        reason: worst.reason,
        findings,
    }
}

/// Marks the place of an expansion whose value is only known at run time.
const DYN: char = '\u{1}';

/// One expanded argument.
#[derive(Debug, Clone, PartialEq)]
struct Arg {
    /// The value, with `DYN` where an unknown expansion stands and `~` for a home directory.
    text: String,
    /// Scripts run by substitutions inside the word.
    subs: Vec<String>,
    procsub: bool,
}

impl Arg {
    fn literal(s: &str) -> Arg {
        Arg {
            text: s.to_string(),
            subs: vec![],
            procsub: false,
        }
    }
    fn dynamic(&self) -> bool {
        self.text.contains(DYN)
    }
    /// The value if every unknown expansion turned out empty (the classic `rm -rf "$DIR/"*`).
    fn if_empty(&self) -> String {
        self.text.replace(DYN, "")
    }
    fn shown(&self) -> String {
        self.text.replace(DYN, "$?")
    }
    fn s(&self) -> &str {
        &self.text
    }
}

enum Stdin<'a> {
    Inherit,
    Pipe(&'a [Vec<Arg>]),
    Text(String),
}

/// What reaches a command's stdin through a pipeline.
enum Content {
    Download,
    Literal(String),
    /// Literal text that was decoded (base64, hex, reversed) on the way: obfuscation.
    Decoded(String),
    Unknown,
}

const SHELLS: [&str; 10] = [
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "fish", "rbash",
];
const INTERPRETERS: [&str; 12] = [
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "tclsh",
    "pwsh",
    "osascript",
];
const DOWNLOADERS: [&str; 9] = [
    "curl",
    "wget",
    "fetch",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "aria2c",
    "lwp-download",
];
const TOP_LEVEL: [&str; 24] = [
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
    "snap",
    "nix",
    "lost+found",
];
const ESSENTIAL_SUBDIRS: [&str; 14] = [
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/share",
    "/usr/include",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/mail",
    "/var/www",
    "/etc/ssh",
];
const CRITICAL_FILES: [&str; 12] = [
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/pam.conf",
    "/etc/inittab",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/hosts",
];
/// Files under /etc whose change is a system change rather than an application's config.
const SENSITIVE_ETC: [&str; 16] = [
    "/etc/sudoers.d",
    "/etc/pam.d",
    "/etc/security",
    "/etc/ssh",
    "/etc/systemd",
    "/etc/sysctl.conf",
    "/etc/sysctl.d",
    "/etc/modprobe.d",
    "/etc/modules",
    "/etc/default/grub",
    "/etc/resolv.conf",
    "/etc/network",
    "/etc/netplan",
    "/etc/iptables",
    "/etc/nftables.conf",
    "/etc/selinux",
];

/// Lexically normalise a path: `//`, `/./`, `..` and trailing slashes, without touching disk.
fn normalize(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string();
    }
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn is_home(p: &str) -> bool {
    let n = normalize(p);
    p == "~"
        || p == "~/"
        || p.starts_with("~/") && normalize(&p[1..]) == "/"
        || n == "/root"
        || (n.starts_with("/home/") && n[6..].split('/').filter(|s| !s.is_empty()).count() == 1)
}

/// True for `/`, a top-level directory, or a glob that reaches them.
fn is_root_or_top(p: &str) -> bool {
    if !p.starts_with('/') {
        return false;
    }
    let n = normalize(p);
    if n == "/" {
        return true;
    }
    let comps: Vec<&str> = n[1..].split('/').collect();
    match comps.as_slice() {
        [one] => TOP_LEVEL.contains(one) || has_glob(one),
        [top, rest] => {
            let everything_in = has_glob(rest) && rest.chars().all(|c| "*?".contains(c));
            ((TOP_LEVEL.contains(top) || has_glob(top)) && everything_in && *top != "tmp")
                || ESSENTIAL_SUBDIRS.contains(&n.as_str())
        }
        _ => false,
    }
}

fn is_block_device(p: &str) -> bool {
    let n = normalize(p);
    let Some(dev) = n.strip_prefix("/dev/") else {
        return false;
    };
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "dm-", "md", "loop", "sr", "mapper/", "disk/",
        "nbd", "zd", "rbd",
    ]
    .iter()
    .any(|pre| dev.starts_with(pre))
        || matches!(dev, "mem" | "kmem" | "port" | "root")
}

fn is_harmless_device(p: &str) -> bool {
    let n = normalize(p);
    matches!(
        n.as_str(),
        "/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/stdin" | "/dev/tty" | "/dev/zero"
    ) || n.starts_with("/dev/fd/")
        || n.starts_with("/dev/pts/")
}

fn is_critical_file(p: &str) -> bool {
    let n = normalize(p);
    CRITICAL_FILES.contains(&n.as_str()) || n.starts_with("/boot/") || n == "/proc/sysrq-trigger"
}

/// Paths whose change is a system change: binaries, libraries, boot, kernel interfaces.
fn is_system_path(p: &str) -> bool {
    if !p.starts_with('/') {
        return false;
    }
    let n = normalize(p);
    if n == "/" {
        return true;
    }
    let top = n[1..].split('/').next().unwrap_or("");
    if matches!(
        top,
        "bin"
            | "sbin"
            | "lib"
            | "lib32"
            | "lib64"
            | "libx32"
            | "boot"
            | "proc"
            | "sys"
            | "dev"
            | "usr"
            | "root"
    ) {
        // /usr/local/<app> is where operators put their own things; still a system path.
        return true;
    }
    if n == "/etc"
        || n == "/var"
        || n == "/var/lib"
        || n.starts_with("/var/lib/dpkg")
        || n.starts_with("/var/lib/rpm")
        || n.starts_with("/var/lib/apt")
    {
        return true;
    }
    SENSITIVE_ETC
        .iter()
        .any(|s| n == *s || n.starts_with(&format!("{s}/")))
        || CRITICAL_FILES.contains(&n.as_str())
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

struct Ctx {
    vars: HashMap<String, String>,
    functions: Vec<String>,
    downloaded: Vec<String>,
    findings: Vec<Finding>,
    depth: u32,
}

/// Scripts nested deeper than this (`sh -c "sh -c \"...\""`) are not worth reading further.
const MAX_DEPTH: u32 = 8;

impl Ctx {
    fn new(depth: u32) -> Ctx {
        Ctx {
            vars: HashMap::new(),
            functions: vec![],
            downloaded: vec![],
            findings: vec![],
            depth,
        }
    }

    fn add(&mut self, level: Risk, reason: impl Into<String>, argv: &[Arg]) {
        let command = shell::join(&argv.iter().map(Arg::shown).collect::<Vec<_>>());
        self.findings.push(Finding {
            level,
            reason: reason.into(),
            command,
        });
    }

    fn script(&mut self, src: &str) {
        if self.depth > MAX_DEPTH {
            self.add(
                Risk::High,
                "scripts nested too deeply to assess",
                &[Arg::literal(src)],
            );
            return;
        }
        let parsed = match shell::parse(src) {
            Ok(s) => s,
            Err(e) => {
                self.add(
                    Risk::Refused,
                    format!("cannot be parsed ({e}), so it cannot be assessed"),
                    &[Arg::literal(src)],
                );
                return;
            }
        };
        for (name, recursive) in &parsed.functions {
            if *recursive {
                self.add(
                    Risk::Refused,
                    format!("defines a function `{name}` that calls itself: a fork bomb"),
                    &[Arg::literal(src)],
                );
            }
            self.functions.push(name.clone());
        }
        for p in &parsed.pipelines {
            self.pipeline(p);
        }
    }

    /// Assess a nested script in a fresh scope that still knows this one's variables.
    fn nested(&mut self, src: &str) {
        let mut inner = Ctx::new(self.depth + 1);
        inner.vars = self.vars.clone();
        inner.downloaded = self.downloaded.clone();
        inner.script(src);
        self.findings.append(&mut inner.findings);
    }

    fn pipeline(&mut self, p: &Pipeline) {
        let mut stages: Vec<Vec<Arg>> = vec![];
        for c in &p.commands {
            let argv: Vec<Arg> = c.words.iter().flat_map(|w| self.expand_fields(w)).collect();
            for (name, value) in &c.assigns {
                let v = self.expand(value);
                if argv.is_empty() {
                    if v.dynamic() {
                        self.vars.remove(name);
                    } else {
                        self.vars.insert(name.clone(), v.text.clone());
                    }
                }
            }
            let stdin = if let Some(doc) = c.redirects.iter().find_map(|r| r.heredoc.clone()) {
                Stdin::Text(doc)
            } else if let Some(r) = c.redirects.iter().find(|r| r.op == "<<<") {
                Stdin::Text(self.expand(&r.target).if_empty())
            } else if stages.is_empty() {
                Stdin::Inherit
            } else {
                Stdin::Pipe(&[])
            };
            let stdin = match stdin {
                Stdin::Pipe(_) => Stdin::Pipe(&stages),
                s => s,
            };
            self.redirects(c, &argv);
            self.command(argv.clone(), &stdin);
            drop(stdin);
            stages.push(argv);
        }
    }

    fn expand(&mut self, w: &Word) -> Arg {
        let mut v = self.expand_fields(w);
        if v.len() == 1 {
            return v.remove(0);
        }
        let mut a = v.first().cloned().unwrap_or_else(|| Arg::literal(""));
        a.text = v
            .iter()
            .map(|x| x.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        a
    }

    /// Expand one word into the fields the shell would pass: unquoted expansions split on
    /// whitespace (`c="rm -rf /"; $c`, `rm${IFS}-rf${IFS}/`), brace lists (`{rm,-rf,/}`).
    fn expand_fields(&mut self, w: &Word) -> Vec<Arg> {
        const SPLIT: char = '\u{2}';
        let mut text = String::new();
        let mut subs = vec![];
        let mut procsub = false;
        let mut braces = false;
        for p in &w.parts {
            match p {
                Part::Lit { text: t, quoted } => {
                    if !quoted && t.contains('{') && t.contains(',') && t.contains('}') {
                        braces = true;
                    }
                    text.push_str(t)
                }
                Part::Var {
                    name,
                    plain,
                    quoted,
                } => {
                    let value = match (plain, self.vars.get(name)) {
                        (true, Some(v)) => Some(v.clone()),
                        _ if name == "HOME" => Some("~".into()),
                        _ if name == "IFS" => Some(" ".into()),
                        _ => None,
                    };
                    match value {
                        Some(v) if !quoted => {
                            text.push_str(&v.replace([' ', '\t', '\n'], &SPLIT.to_string()))
                        }
                        Some(v) => text.push_str(&v),
                        None => text.push(DYN),
                    }
                }
                Part::Home => text.push('~'),
                Part::Sub(s) => {
                    self.nested(s);
                    subs.push(s.clone());
                    match static_output(s) {
                        Some(v) => text.push_str(&v),
                        None => text.push(DYN),
                    }
                }
                Part::ProcSub(s) => {
                    self.nested(s);
                    subs.push(s.clone());
                    procsub = true;
                    text.push_str("/dev/fd/63");
                }
                Part::Unknown => text.push(DYN),
            }
        }
        let mut fields: Vec<String> = if text.contains(SPLIT) {
            text.split(SPLIT)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        } else {
            vec![text]
        };
        if braces {
            fields = fields.iter().flat_map(|f| brace_expand(f)).collect();
        }
        if fields.is_empty() {
            fields.push(String::new());
        }
        fields
            .into_iter()
            .map(|text| Arg {
                text,
                subs: subs.clone(),
                procsub,
            })
            .collect()
    }

    fn redirects(&mut self, c: &SimpleCommand, argv: &[Arg]) {
        for r in &c.redirects {
            if !r.writes() {
                continue;
            }
            let t = self.expand(&r.target);
            let shown: Vec<Arg> = argv
                .iter()
                .cloned()
                .chain([Arg::literal(&format!("{} {}", r.op, t.shown()))])
                .collect();
            self.write_target(&t, r.truncates(), &shown);
        }
    }

    /// A file the command writes, truncating it or not.
    fn write_target(&mut self, t: &Arg, truncates: bool, argv: &[Arg]) {
        let p = t.if_empty();
        if is_harmless_device(&p) && !t.dynamic() {
            return;
        }
        if is_block_device(&p) {
            self.add(Risk::Refused, format!("writes to the device {p}"), argv);
        } else if normalize(&p) == "/proc/sysrq-trigger" {
            self.add(
                Risk::Refused,
                "writes to /proc/sysrq-trigger (reboot, crash)",
                argv,
            );
        } else if is_critical_file(&p) {
            if truncates {
                self.add(Risk::Refused, format!("overwrites {}", normalize(&p)), argv);
            } else {
                self.add(Risk::High, format!("changes {}", normalize(&p)), argv);
            }
        } else if t.dynamic() {
            self.add(
                Risk::High,
                format!("writes to a path computed at run time ({})", t.shown()),
                argv,
            );
        } else if is_system_path(&p) {
            self.add(Risk::High, format!("writes to the system path {p}"), argv);
        } else {
            self.add(Risk::Medium, format!("writes the file {p}"), argv);
        }
    }

    /// Assess one command after expansion.
    fn command(&mut self, argv: Vec<Arg>, stdin: &Stdin) {
        let argv = self.unwrap_wrappers(argv);
        let Some(first) = argv.first() else {
            return;
        };
        if first.dynamic() {
            let guess = first.if_empty();
            self.add(
                Risk::High,
                "the command name is computed at run time".to_string(),
                &argv,
            );
            if !guess.is_empty() && guess != first.text {
                let mut g = argv.clone();
                g[0] = Arg::literal(&guess);
                self.command(g, stdin);
            }
            return;
        }
        let full = first.s().to_string();
        if self
            .downloaded
            .iter()
            .any(|d| normalize(d) == normalize(&full))
        {
            self.add(
                Risk::Refused,
                format!("runs {full}, a file it just downloaded"),
                &argv,
            );
            return;
        }
        let name = basename(&full).to_string();
        if self.functions.contains(&name) {
            return;
        }
        let args: Vec<Arg> = argv[1..].to_vec();
        let a: Vec<&str> = args.iter().map(|x| x.s()).collect();
        let r = self.rules(&name, &argv, &args, &a, stdin);
        if let Some((level, reason)) = r {
            self.add(level, reason, &argv);
        }
    }

    /// Peel `sudo`, `env`, `nice`, `timeout`, `xargs`… off the front and return the real argv.
    fn unwrap_wrappers(&mut self, mut argv: Vec<Arg>) -> Vec<Arg> {
        for _ in 0..16 {
            let Some(first) = argv.first() else {
                return argv;
            };
            let name = basename(first.s()).to_string();
            // Options that take a value, per wrapper.
            let (with_value, positional_before): (&[&str], usize) = match name.as_str() {
                "sudo" => (
                    &[
                        "-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "-c",
                    ],
                    0,
                ),
                "doas" => (&["-u", "-C"], 0),
                "nice" => (&["-n"], 0),
                "ionice" => (&["-c", "-n", "-p", "-P", "-u"], 0),
                "timeout" => (&["-s", "-k", "--signal", "--kill-after"], 1),
                "nohup" | "builtin" | "unbuffer" | "time" | "catchsegv" => (&[], 0),
                "stdbuf" => (&["-i", "-o", "-e"], 0),
                "setsid" => (&[], 0),
                "chrt" => (&[], 1),
                "taskset" => (&[], 1),
                "chroot" => (&["--userspec", "--groups"], 1),
                "flock" => (&["-w", "-E", "--timeout", "--conflict-exit-code"], 1),
                "systemd-run" => (&["-u", "--unit", "-p", "--property", "-M", "-E"], 0),
                "runuser" | "sg" => (&["-u", "-g", "-G"], 0),
                "exec" => (&["-a"], 0),
                "command" => {
                    if argv.get(1).is_some_and(|a| a.s() == "-v" || a.s() == "-V") {
                        return vec![];
                    }
                    (&[], 0)
                }
                "xargs" => (
                    &[
                        "-a", "-d", "-E", "-e", "-I", "-i", "-L", "-l", "-n", "-P", "-s",
                    ],
                    0,
                ),
                "watch" => (&["-n", "-d"], 0),
                "env" => {
                    argv = self.unwrap_env(argv);
                    continue;
                }
                "busybox" if argv.len() > 1 => {
                    argv.remove(0);
                    continue;
                }
                _ => return argv,
            };
            let mut i = 1;
            let mut positional = positional_before;
            while i < argv.len() {
                let s = argv[i].s();
                if s == "--" {
                    i += 1;
                    break;
                }
                if s.starts_with('-') && s.len() > 1 {
                    if name == "flock" && (s == "-c" || s == "--command") {
                        // `flock FILE -c SCRIPT`
                        if let Some(script) = argv.get(i + 1).cloned() {
                            self.shell_string(&script, &argv);
                        }
                        return vec![];
                    }
                    if name == "sudo" && (s == "-s" || s == "-i") && i + 1 >= argv.len() {
                        self.add(Risk::High, "opens a root shell", &argv);
                        return vec![];
                    }
                    if with_value.contains(&s) {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                if positional > 0 {
                    positional -= 1;
                    i += 1;
                    continue;
                }
                break;
            }
            let rest: Vec<Arg> = argv[i.min(argv.len())..].to_vec();
            if name == "xargs" {
                // The arguments arrive on stdin: unknown.
                let mut r = if rest.is_empty() {
                    vec![Arg::literal("echo")]
                } else {
                    rest
                };
                r.push(Arg::literal(&DYN.to_string()));
                argv = r;
                continue;
            }
            if name == "watch" && !rest.is_empty() {
                let joined = rest
                    .iter()
                    .map(|a| a.if_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.nested(&joined);
                return vec![];
            }
            if rest.is_empty() {
                return vec![];
            }
            argv = rest;
        }
        argv
    }

    fn unwrap_env(&mut self, argv: Vec<Arg>) -> Vec<Arg> {
        let mut i = 1;
        while i < argv.len() {
            let s = argv[i].s();
            if s == "--" {
                i += 1;
                break;
            }
            if s == "-S" || s == "--split-string" || s.starts_with("-S") && s.len() > 2 {
                let text = if s.len() > 2 && s.starts_with("-S") {
                    s[2..].to_string()
                } else {
                    argv.get(i + 1).map(|a| a.if_empty()).unwrap_or_default()
                };
                let skip = if s.len() > 2 && s.starts_with("-S") {
                    1
                } else {
                    2
                };
                let mut out: Vec<Arg> = match shell::split_words(&text) {
                    Ok(ws) => ws.iter().map(|w| self.expand(w)).collect(),
                    Err(_) => vec![Arg::literal(&text)],
                };
                out.extend(argv[(i + skip).min(argv.len())..].iter().cloned());
                return out;
            }
            if matches!(s, "-u" | "--unset" | "-C" | "--chdir") {
                i += 2;
                continue;
            }
            if s.starts_with('-') {
                i += 1;
                continue;
            }
            if s.contains('=') && !s.starts_with('=') {
                i += 1;
                continue;
            }
            break;
        }
        argv[i.min(argv.len())..].to_vec()
    }

    /// A string that a shell will run (`sh -c STRING`, `eval`, `su -c`).
    fn shell_string(&mut self, script: &Arg, argv: &[Arg]) {
        if script.subs.iter().any(|s| mentions_download(s)) {
            self.add(
                Risk::Refused,
                "runs the output of a download as a script",
                argv,
            );
            return;
        }
        if script.dynamic() {
            self.add(Risk::High, "runs a script computed at run time", argv);
            let guess = script.if_empty();
            if !guess.trim().is_empty() {
                self.nested(&guess);
            }
            return;
        }
        self.nested(&script.text);
    }

    fn stdin_script(&mut self, stdin: &Stdin, argv: &[Arg], what: &str) {
        match stdin {
            Stdin::Inherit => self.add(
                Risk::Medium,
                format!("{what} reading its standard input"),
                argv,
            ),
            Stdin::Text(t) => self.nested(t),
            Stdin::Pipe(stages) => match content(stages) {
                Content::Download => {
                    self.add(Risk::Refused, format!("pipes a download into {what}"), argv)
                }
                Content::Literal(t) => {
                    if what == "a shell" {
                        self.nested(&t)
                    } else {
                        self.add(Risk::High, format!("runs code piped into {what}"), argv)
                    }
                }
                Content::Decoded(t) => {
                    self.add(
                        Risk::High,
                        format!("runs encoded text through {what}"),
                        argv,
                    );
                    if what == "a shell" {
                        self.nested(&t);
                    }
                }
                Content::Unknown => self.add(
                    Risk::High,
                    format!("runs text produced at run time through {what}"),
                    argv,
                ),
            },
        }
    }

    #[allow(clippy::too_many_lines)]
    fn rules(
        &mut self,
        name: &str,
        argv: &[Arg],
        args: &[Arg],
        a: &[&str],
        stdin: &Stdin,
    ) -> Option<(Risk, String)> {
        let has = |f: &str| a.contains(&f);
        let positional: Vec<&Arg> = {
            let mut v = vec![];
            let mut end = false;
            for x in args {
                if end || !x.s().starts_with('-') || x.s() == "-" {
                    v.push(x);
                } else if x.s() == "--" {
                    end = true;
                }
            }
            v
        };
        // Short option clusters such as `-rf`, `-Rfv`.
        let short = |c: char| {
            a.iter()
                .take_while(|s| **s != "--")
                .any(|s| s.starts_with('-') && !s.starts_with("--") && s[1..].contains(c))
        };
        let sub = positional.first().map(|x| x.s()).unwrap_or("");
        match name {
            n if SHELLS.contains(&n) => {
                let mut i = 0;
                while i < args.len() {
                    let s = args[i].s();
                    if s == "-c"
                        || (s.starts_with('-')
                            && !s.starts_with("--")
                            && s.contains('c')
                            && s.len() > 2
                            && !s.contains('o'))
                    {
                        match args.get(i + 1) {
                            Some(script) => self.shell_string(script, argv),
                            None => return Some((Risk::Refused, "`-c` without a script".into())),
                        }
                        return None;
                    }
                    if s == "-o" || s == "+o" || s == "--rcfile" || s == "--init-file" {
                        i += 2;
                        continue;
                    }
                    if s == "-s" || s == "-" {
                        self.stdin_script(stdin, argv, "a shell");
                        return None;
                    }
                    if s.starts_with('-') || s.starts_with('+') {
                        i += 1;
                        continue;
                    }
                    // A script file.
                    let f = &args[i];
                    if f.procsub {
                        if f.subs.iter().any(|s| mentions_download(s)) {
                            return Some((Risk::Refused, "runs a download as a script".into()));
                        }
                        return Some((Risk::High, "runs a script produced at run time".into()));
                    }
                    if self
                        .downloaded
                        .iter()
                        .any(|d| normalize(d) == normalize(f.s()))
                    {
                        return Some((
                            Risk::Refused,
                            format!("runs {}, a file it just downloaded", f.s()),
                        ));
                    }
                    return Some((Risk::Medium, format!("runs the script {}", f.shown())));
                }
                self.stdin_script(stdin, argv, "a shell");
                None
            }
            "eval" => {
                let joined = Arg {
                    text: args
                        .iter()
                        .map(|x| x.text.clone())
                        .collect::<Vec<_>>()
                        .join(" "),
                    subs: args.iter().flat_map(|x| x.subs.clone()).collect(),
                    procsub: false,
                };
                self.shell_string(&joined, argv);
                None
            }
            "su" => {
                if let Some(i) = a.iter().position(|s| *s == "-c" || *s == "--command") {
                    if let Some(script) = args.get(i + 1) {
                        self.shell_string(script, argv);
                    }
                    None
                } else {
                    Some((Risk::High, "opens a shell as another user".into()))
                }
            }
            "ssh" => {
                // The remote command is run by the remote shell.
                let with_value = [
                    "-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-E", "-c", "-m", "-b",
                    "-S", "-W", "-w", "-Q", "-O", "-B", "-e", "-I",
                ];
                let mut i = 0;
                while i < a.len() && a[i].starts_with('-') {
                    if with_value.contains(&a[i]) {
                        i += 1;
                    }
                    i += 1;
                }
                let remote: Vec<String> = a.iter().skip(i + 1).map(|s| s.to_string()).collect();
                if !remote.is_empty() {
                    self.nested(&remote.join(" "));
                }
                Some((Risk::Medium, "runs a command on another host".into()))
            }
            "source" | "." => {
                let f = args.first()?;
                if f.procsub && f.subs.iter().any(|s| mentions_download(s)) {
                    return Some((Risk::Refused, "sources a download as a script".into()));
                }
                if self
                    .downloaded
                    .iter()
                    .any(|d| normalize(d) == normalize(f.s()))
                {
                    return Some((
                        Risk::Refused,
                        format!("sources {}, a file it just downloaded", f.s()),
                    ));
                }
                Some((Risk::Medium, format!("sources the script {}", f.shown())))
            }
            n if INTERPRETERS.iter().any(|i| {
                n == *i
                    || (n.starts_with(i)
                        && n[i.len()..].chars().all(|c| c.is_ascii_digit() || c == '.'))
            }) =>
            {
                self.interpreter(n, args, a, argv, stdin)
            }
            "rm" | "unlink" | "rmdir" | "srm" => {
                let recursive =
                    short('r') || short('R') || has("--recursive") || name == "rmdir" && has("-p");
                if has("--no-preserve-root") {
                    return Some((Risk::Refused, "rm --no-preserve-root".into()));
                }
                let targets: Vec<&Arg> = positional.clone();
                if targets.is_empty() {
                    return Some((Risk::Low, "rm without a target".into()));
                }
                Some(self.deletion(&targets, recursive || name == "srm"))
            }
            "find" => self.find(args, a, argv, stdin),
            "shred" | "wipe" => {
                for t in &positional {
                    let p = t.if_empty();
                    if is_block_device(&p) || is_critical_file(&p) || is_root_or_top(&p) {
                        return Some((Risk::Refused, format!("{name} destroys {p}")));
                    }
                }
                Some((Risk::High, format!("{name} destroys data irreversibly")))
            }
            n if n.starts_with("mkfs")
                || matches!(
                    n,
                    "mke2fs" | "mkswap" | "wipefs" | "blkdiscard" | "mkdosfs" | "mkntfs" | "newfs"
                ) =>
            {
                Some((Risk::Refused, format!("{n} formats or wipes a filesystem")))
            }
            "sgdisk" | "sfdisk" | "fdisk" | "gdisk" | "cfdisk" | "parted" | "partprobe"
                if has("--zap-all") || has("-Z") || has("--delete") =>
            {
                Some((Risk::Refused, format!("{name} deletes partitions")))
            }
            "dd" => {
                let of = a.iter().find_map(|s| s.strip_prefix("of="));
                match of {
                    Some(of) => {
                        let t = args
                            .iter()
                            .find(|x| x.s().starts_with("of="))
                            .cloned()
                            .unwrap_or_else(|| Arg::literal(of));
                        let t = Arg {
                            text: t.text[3..].to_string(),
                            ..t
                        };
                        self.write_target(&t, true, argv);
                        None
                    }
                    None => Some((Risk::Low, "dd to standard output".into())),
                }
            }
            "chmod" | "chown" | "chgrp" | "setfacl" | "chattr" => self.permissions(name, args, a),
            // A playbook's tasks change hosts and are not assessed here one by one.
            "ansible-playbook" | "ansible" => Some((
                Risk::Medium,
                format!("{name} runs tasks that change the hosts it targets"),
            )),
            "shutdown" | "reboot" | "halt" | "poweroff" | "kexec" => {
                if name == "shutdown" && has("-c") {
                    return Some((Risk::Low, "cancels a scheduled shutdown".into()));
                }
                Some((Risk::Refused, format!("{name} takes the host down")))
            }
            "init" | "telinit" => match sub {
                "0" | "6" | "1" | "s" | "S" => Some((
                    Risk::Refused,
                    format!("{name} {sub} changes the runlevel (halt, reboot or single user)"),
                )),
                "q" | "Q" | "u" | "U" => Some((Risk::Medium, format!("{name} {sub} reloads init"))),
                _ => Some((Risk::High, format!("{name} changes the runlevel"))),
            },
            "systemctl" => self.systemctl(&positional),
            "service" => {
                if has("--status-all") {
                    return Some((Risk::Low, "lists services".into()));
                }
                let action = positional.get(1).map(|x| x.s()).unwrap_or("");
                service_action(&format!("service {sub}"), action)
            }
            "rc-service" | "initctl" | "sv" | "supervisorctl" | "s6-svc" => {
                let (svc, action) = if name == "rc-service" {
                    (sub, positional.get(1).map(|x| x.s()).unwrap_or(""))
                } else {
                    (positional.get(1).map(|x| x.s()).unwrap_or(""), sub)
                };
                service_action(&format!("{name} {svc}"), action)
            }
            "rc-update" | "update-rc.d" | "chkconfig" => match sub {
                "add" | "defaults" | "enable" | "on" | "show" | "--list" => {
                    Some((Risk::Low, "enables a service at boot".into()))
                }
                _ => Some((Risk::Medium, "changes services started at boot".into())),
            },
            "apt-get" | "apt" | "aptitude" => package_action(
                name,
                &a.iter()
                    .filter(|s| !s.starts_with('-'))
                    .copied()
                    .collect::<Vec<_>>(),
                &[
                    "install",
                    "reinstall",
                    "update",
                    "clean",
                    "autoclean",
                    "download",
                    "source",
                    "check",
                    "show",
                    "policy",
                    "search",
                    "list",
                    "depends",
                    "rdepends",
                    "changelog",
                ],
                &["upgrade"],
                &[
                    "remove",
                    "purge",
                    "autoremove",
                    "autopurge",
                    "dist-upgrade",
                    "full-upgrade",
                    "build-dep",
                ],
            ),
            "dnf" | "yum" | "microdnf" | "tdnf" => package_action(
                name,
                &a.iter()
                    .filter(|s| !s.starts_with('-'))
                    .copied()
                    .collect::<Vec<_>>(),
                &[
                    "install",
                    "reinstall",
                    "makecache",
                    "clean",
                    "check-update",
                    "info",
                    "list",
                    "search",
                    "repolist",
                    "provides",
                    "whatprovides",
                    "download",
                    "deplist",
                ],
                &["upgrade", "update", "update-minimal", "upgrade-minimal"],
                &[
                    "remove",
                    "erase",
                    "autoremove",
                    "distro-sync",
                    "distrosync",
                    "downgrade",
                    "swap",
                    "history",
                ],
            ),
            "apk" => package_action(
                name,
                &a.iter()
                    .filter(|s| !s.starts_with('-'))
                    .copied()
                    .collect::<Vec<_>>(),
                &[
                    "add", "update", "cache", "info", "search", "fix", "fetch", "list", "stats",
                    "policy", "version",
                ],
                &["upgrade"],
                &["del", "delete"],
            ),
            "zypper" => package_action(
                name,
                &a.iter()
                    .filter(|s| !s.starts_with('-'))
                    .copied()
                    .collect::<Vec<_>>(),
                &[
                    "install", "in", "refresh", "ref", "clean", "cc", "search", "se", "info", "if",
                    "lr", "repos", "verify", "ve",
                ],
                &["update", "up", "patch"],
                &["dup", "dist-upgrade", "remove", "rm", "removerepo", "rr"],
            ),
            "pacman" => {
                if a.iter().any(|s| s.starts_with("-R")) {
                    Some((Risk::High, "pacman removes packages".into()))
                } else if a.iter().any(|s| s.starts_with("-S") && s.contains('u')) {
                    Some((Risk::Medium, "pacman upgrades the system".into()))
                } else {
                    Some((Risk::Low, "pacman installs or queries packages".into()))
                }
            }
            "dpkg" | "rpm" => {
                if a.iter().any(|s| {
                    matches!(*s, "-r" | "-P" | "--remove" | "--purge" | "-e" | "--erase")
                        || (s.starts_with("--force") && s.contains("remove"))
                }) {
                    Some((Risk::High, format!("{name} removes packages")))
                } else if a.iter().any(|s| {
                    matches!(
                        *s,
                        "-i" | "--install"
                            | "-U"
                            | "--upgrade"
                            | "-F"
                            | "--configure"
                            | "--unpack"
                            | "-ivh"
                            | "-Uvh"
                    )
                }) {
                    Some((Risk::Medium, format!("{name} installs a package file")))
                } else {
                    Some((Risk::Low, format!("{name} queries packages")))
                }
            }
            "pip" | "pip3" | "pipx" | "uv" | "poetry" | "gem" | "npm" | "yarn" | "pnpm"
            | "cargo" | "go" | "brew" | "conda" | "mamba" | "composer" | "bundle" => {
                if matches!(sub, "uninstall" | "remove" | "rm" | "un" | "r") {
                    Some((Risk::Medium, format!("{name} uninstalls a package")))
                } else {
                    Some((Risk::Low, format!("{name} {sub}")))
                }
            }
            "snap" | "flatpak" => match sub {
                "remove" | "uninstall" | "disable" => {
                    Some((Risk::High, format!("{name} removes software")))
                }
                _ => Some((Risk::Low, format!("{name} {sub}"))),
            },
            "useradd" | "adduser" | "usermod" | "userdel" | "deluser" | "groupadd" | "addgroup"
            | "groupdel" | "delgroup" | "groupmod" | "passwd" | "chpasswd" | "chage"
            | "gpasswd" | "visudo" | "vipw" | "vigr" | "newusers" | "chsh" | "chfn" | "pwconv"
            | "grpconv" => Some((Risk::High, format!("{name} changes users or groups"))),
            "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" | "ebtables"
            | "arptables" | "nft" | "ufw" | "firewall-cmd" | "iptables-restore"
            | "ip6tables-restore" | "firewalld" | "pfctl" => {
                let read_only = a.iter().any(|s| {
                    matches!(
                        *s,
                        "-L" | "--list"
                            | "-S"
                            | "--list-rules"
                            | "status"
                            | "list"
                            | "--state"
                            | "--list-all"
                            | "-nL"
                            | "-nvL"
                            | "-vnL"
                    )
                }) && !a.iter().any(|s| {
                    matches!(
                        *s,
                        "-F" | "-X"
                            | "-A"
                            | "-I"
                            | "-D"
                            | "-P"
                            | "flush"
                            | "delete"
                            | "add"
                            | "disable"
                    )
                });
                if read_only {
                    Some((Risk::Low, format!("{name} lists firewall rules")))
                } else {
                    Some((Risk::High, format!("{name} changes the firewall")))
                }
            }
            "modprobe" | "insmod" | "rmmod" | "depmod" | "kmod" | "grub-install"
            | "grub-mkconfig" | "grub2-mkconfig" | "grub2-install" | "update-grub"
            | "update-initramfs" | "dracut" | "mkinitcpio" | "efibootmgr" | "bootctl"
            | "sysctl"
                if name != "sysctl"
                    || a.iter().any(|s| {
                        s.contains('=') || *s == "-w" || *s == "-p" || *s == "--system"
                    }) =>
            {
                Some((
                    Risk::High,
                    format!("{name} changes the kernel or boot configuration"),
                ))
            }
            "sysctl" => Some((Risk::Low, "reads kernel settings".into())),
            "mount" | "umount" | "swapoff" | "swapon" | "losetup" | "hdparm" | "fsck"
            | "e2fsck" | "tune2fs" | "resize2fs" | "xfs_repair" | "xfs_growfs" | "lvremove"
            | "vgremove" | "pvremove" | "lvreduce" | "lvresize" | "lvextend" | "lvcreate"
            | "vgcreate" | "pvcreate" | "mdadm" | "cryptsetup" | "zpool" | "zfs" | "btrfs"
            | "fdisk" | "sfdisk" | "gdisk" | "sgdisk" | "cfdisk" | "parted" | "partprobe"
            | "blockdev" | "dmsetup" | "nvme" => {
                if (name == "mount"
                    || name == "swapon"
                    || name == "losetup"
                    || name == "zfs"
                    || name == "zpool"
                    || name == "lvs")
                    && (args.is_empty() || matches!(sub, "list" | "status" | "get"))
                    || (name == "fdisk" && has("-l"))
                {
                    return Some((Risk::Low, format!("{name} lists disks")));
                }
                if (name == "zfs" || name == "zpool") && sub == "destroy" {
                    return Some((Risk::Refused, format!("{name} destroy deletes storage")));
                }
                Some((Risk::High, format!("{name} changes disks or filesystems")))
            }
            "ip" => {
                if a.iter().any(|s| {
                    matches!(
                        *s,
                        "add"
                            | "del"
                            | "delete"
                            | "set"
                            | "flush"
                            | "change"
                            | "replace"
                            | "append"
                    )
                }) {
                    Some((Risk::High, "ip changes the network configuration".into()))
                } else {
                    Some((Risk::Low, "ip shows the network configuration".into()))
                }
            }
            "ifconfig" | "route" | "ifdown" | "ifup" | "nmcli" | "netplan" | "brctl" | "tc"
            | "ethtool" | "iwconfig" | "resolvectl" | "hostnamectl" | "timedatectl"
            | "hostname"
                if !(args.is_empty()
                    || (name == "ifconfig" && args.len() == 1)
                    || (name == "nmcli"
                        && !a.iter().any(|s| {
                            matches!(
                                *s,
                                "down"
                                    | "delete"
                                    | "modify"
                                    | "off"
                                    | "up"
                                    | "add"
                                    | "reload"
                                    | "set"
                            )
                        }))
                    || (name == "hostname" && a.iter().all(|s| s.starts_with('-')))) =>
            {
                Some((
                    Risk::High,
                    format!("{name} changes the host's network or identity"),
                ))
            }
            "kill" | "pkill" | "killall" | "killall5" | "skill" | "slay" => {
                self.kill(name, args, a)
            }
            "crontab" => {
                if has("-r") {
                    Some((Risk::High, "crontab -r deletes the crontab".into()))
                } else if has("-l") {
                    Some((Risk::Low, "lists the crontab".into()))
                } else {
                    Some((Risk::Medium, "changes the crontab".into()))
                }
            }
            "mkdir" | "touch" | "mktemp" => Some((
                Risk::Low,
                format!(
                    "{name} creates {}",
                    positional
                        .iter()
                        .map(|x| x.shown())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )),
            "cp" | "mv" | "install" | "ln" | "rsync" | "scp" => self.copy(name, args, a, argv),
            "tee" => {
                let append = short('a') || has("--append");
                for t in &positional {
                    self.write_target(t, !append, argv);
                }
                None
            }
            "truncate" | "fallocate" => {
                let with_value = [
                    "-s",
                    "--size",
                    "-r",
                    "--reference",
                    "-l",
                    "-o",
                    "--length",
                    "--offset",
                ];
                let mut i = 0;
                while i < args.len() {
                    let s = args[i].s();
                    if with_value.contains(&s) {
                        i += 2;
                        continue;
                    }
                    if !s.starts_with('-') {
                        let t = args[i].clone();
                        self.write_target(&t, true, argv);
                    }
                    i += 1;
                }
                None
            }
            "sed" | "perl-i" => {
                if a.iter()
                    .any(|s| s.starts_with("-i") || s.starts_with("--in-place"))
                {
                    let files: Vec<Arg> = positional
                        .iter()
                        .skip(if a.iter().any(|s| *s == "-e" || *s == "-f") {
                            0
                        } else {
                            1
                        })
                        .map(|x| (*x).clone())
                        .collect();
                    for f in &files {
                        self.write_target(f, false, argv);
                    }
                    if files.is_empty() {
                        return Some((Risk::Medium, "sed edits files in place".into()));
                    }
                    None
                } else {
                    Some((Risk::Low, "sed filters text".into()))
                }
            }
            "git" => match sub {
                "clean" | "reset" | "checkout" | "restore" | "push" | "rebase"
                | "filter-branch" | "gc" | "prune" | "stash" => {
                    if sub == "push"
                        && a.iter().any(|s| {
                            s.starts_with("--force")
                                || *s == "-f"
                                || *s == "--mirror"
                                || *s == "--delete"
                        })
                    {
                        Some((
                            Risk::High,
                            "git push rewrites or deletes remote history".into(),
                        ))
                    } else {
                        Some((
                            Risk::Medium,
                            format!("git {sub} changes the work tree or history"),
                        ))
                    }
                }
                _ => Some((Risk::Low, format!("git {sub}"))),
            },
            "docker" | "podman" | "nerdctl" => {
                let privileged = a.iter().any(|s| {
                    *s == "--privileged"
                        || s.starts_with("--pid=host")
                        || s.starts_with("--net=host")
                        || s.starts_with("--network=host")
                }) || a.windows(2).any(|w| {
                    (w[0] == "-v" || w[0] == "--volume")
                        && (w[1].starts_with("/:")
                            || w[1].starts_with("/etc:")
                            || w[1].starts_with("/var/run/docker.sock"))
                });
                if privileged {
                    Some((
                        Risk::High,
                        format!("{name} runs a container with access to the host"),
                    ))
                } else if matches!(
                    sub,
                    "rm" | "rmi" | "prune" | "kill" | "stop" | "system" | "volume" | "network"
                ) {
                    if a.contains(&"prune") && a.iter().any(|s| *s == "--volumes" || *s == "volume")
                    {
                        Some((Risk::High, format!("{name} deletes volumes")))
                    } else {
                        Some((
                            Risk::Medium,
                            format!("{name} {sub} removes or stops containers or images"),
                        ))
                    }
                } else {
                    Some((Risk::Low, format!("{name} {sub}")))
                }
            }
            "kubectl" | "helm" | "terraform" | "tofu" | "pulumi" => match sub {
                "delete" | "destroy" | "uninstall" | "drain" | "cordon" | "taint" | "replace" => {
                    Some((
                        Risk::High,
                        format!("{name} {sub} removes or disrupts infrastructure"),
                    ))
                }
                "apply" | "upgrade" | "install" | "scale" | "rollout" | "patch" | "edit"
                | "set" | "label" | "annotate" | "create" | "import" => {
                    Some((Risk::Medium, format!("{name} {sub} changes infrastructure")))
                }
                _ => Some((Risk::Low, format!("{name} {sub}"))),
            },
            "journalctl" => {
                if a.iter()
                    .any(|s| s.starts_with("--vacuum") || s.starts_with("--rotate"))
                {
                    Some((Risk::Low, "journalctl trims old journal files".into()))
                } else {
                    Some((Risk::Low, "journalctl reads logs".into()))
                }
            }
            "fuser" => {
                if short('k') || has("--kill") {
                    Some((
                        Risk::Medium,
                        "fuser -k kills the processes using a file".into(),
                    ))
                } else {
                    Some((Risk::Low, "fuser lists the processes using a file".into()))
                }
            }
            "curl" | "wget" | "fetch" | "aria2c" => {
                let out = a
                    .windows(2)
                    .find(|w| {
                        matches!(w[0], "-o" | "--output" | "-O" | "--output-document")
                            && !(name == "curl" && w[0] == "-O")
                    })
                    .map(|w| w[1].to_string())
                    .or_else(|| {
                        a.iter().find_map(|s| {
                            s.strip_prefix("--output=")
                                .or_else(|| s.strip_prefix("--output-document="))
                                .map(String::from)
                        })
                    });
                match out {
                    Some(o) if o != "-" && o != "/dev/stdout" => {
                        self.downloaded.push(o.clone());
                        let t = Arg::literal(&o);
                        let target = self.classify_write(&t);
                        Some((
                            target.0.max(Risk::Low),
                            format!("downloads into {o}{}", target.1),
                        ))
                    }
                    _ => Some((Risk::Low, format!("{name} fetches a URL"))),
                }
            }
            "echo"
            | "printf"
            | "cat"
            | "head"
            | "tail"
            | "less"
            | "more"
            | "grep"
            | "egrep"
            | "fgrep"
            | "rg"
            | "ls"
            | "ll"
            | "dir"
            | "stat"
            | "file"
            | "du"
            | "df"
            | "free"
            | "uptime"
            | "uname"
            | "id"
            | "whoami"
            | "who"
            | "w"
            | "ps"
            | "pgrep"
            | "top"
            | "htop"
            | "true"
            | "false"
            | "test"
            | "["
            | "[["
            | "sleep"
            | "date"
            | "printenv"
            | "which"
            | "type"
            | "pwd"
            | "cd"
            | "wc"
            | "sort"
            | "uniq"
            | "cut"
            | "tr"
            | "jq"
            | "yq"
            | "diff"
            | "cmp"
            | "md5sum"
            | "sha1sum"
            | "sha256sum"
            | "sha512sum"
            | "base64"
            | "base32"
            | "xxd"
            | "od"
            | "hexdump"
            | "ss"
            | "netstat"
            | "lsof"
            | "ping"
            | "dig"
            | "nslookup"
            | "host"
            | "getent"
            | "groups"
            | "lsblk"
            | "blkid"
            | "findmnt"
            | "nproc"
            | "lscpu"
            | "lsmod"
            | "dmesg"
            | "vmstat"
            | "iostat"
            | "tree"
            | "readlink"
            | "realpath"
            | "dirname"
            | "basename"
            | "seq"
            | "yes"
            | "env"
            | "export"
            | "set"
            | "unset"
            | "exit"
            | "return"
            | "shift"
            | "local"
            | "declare"
            | "readonly"
            | "wait"
            | "read"
            | ":"
            | "rev"
            | "column"
            | "nl"
            | "fold"
            | "fmt"
            | "tac"
            | "strings"
            | "zcat"
            | "gunzip"
            | "gzip"
            | "bzip2"
            | "xz"
            | "unzip"
            | "tar"
            | "zip"
            | "awk"
            | "gawk"
            | "mawk"
            | "openssl"
            | "systemd-analyze"
            | "timeout"
            | "service_facts"
            | "apt-cache"
            | "apt-mark"
            | "dnf-repoquery"
            | "make"
            | "cmake"
            | "mvn"
            | "gradle"
            | "ninja"
            | "gcc"
            | "cc"
            | "clang"
            | "rustc"
            | "tsc"
            | "pytest"
            | "tox"
            | "logger"
            | "nc-z"
            | "trap"
            | "ulimit"
            | "umask"
            | "hash"
            | "alias"
            | "history"
            | "getconf"
            | "locale"
            | "update-ca-certificates"
            | "ldconfig"
            | "ldd"
            | "nohup"
            | "renice"
            | "pidof"
            | "lsattr"
            | "sync" => {
                if matches!(name, "export" | "declare" | "local" | "readonly") {
                    for x in args {
                        if let Some((k, v)) = x.text.split_once('=') {
                            if x.dynamic() {
                                self.vars.remove(k);
                            } else {
                                self.vars.insert(k.to_string(), v.to_string());
                            }
                        }
                    }
                }
                if name == "tar"
                    && a.iter().any(|s| {
                        s.starts_with('-') && s.contains('x')
                            || s.starts_with('x')
                            || *s == "--extract"
                    })
                {
                    if a.windows(2)
                        .any(|w| (w[0] == "-C" || w[0] == "--directory") && is_system_path(w[1]))
                        || a.iter().any(|s| *s == "-C/" || *s == "--directory=/")
                    {
                        return Some((Risk::High, "tar extracts into a system path".into()));
                    }
                    return Some((Risk::Medium, "tar extracts files".into()));
                }
                if matches!(name, "awk" | "gawk" | "mawk")
                    && a.iter().any(|s| {
                        s.contains("system(") || s.contains("| getline") || s.contains("|&")
                    })
                {
                    return Some((Risk::High, "awk program runs commands".into()));
                }
                Some((Risk::Low, format!("{name} only reads or prints")))
            }
            _ => Some((
                Risk::Medium,
                format!("the effects of `{name}` are not known to pipeguard"),
            )),
        }
    }

    fn interpreter(
        &mut self,
        n: &str,
        args: &[Arg],
        a: &[&str],
        argv: &[Arg],
        stdin: &Stdin,
    ) -> Option<(Risk, String)> {
        let code_flag = a.iter().position(|s| {
            matches!(
                *s,
                "-c" | "-e" | "-E" | "-r" | "--eval" | "-p" | "--print" | "-command" | "-Command"
            ) || (s.starts_with("-")
                && !s.starts_with("--")
                && (s.ends_with('e') || s.ends_with('c'))
                && s.len() <= 4
                && !n.starts_with("python"))
        });
        if let Some(i) = a.iter().position(|s| *s == "-m") {
            let module = a.get(i + 1).copied().unwrap_or("");
            return match module {
                "pip" | "venv" | "ensurepip" | "virtualenv" => {
                    if a.get(i + 2) == Some(&"uninstall") {
                        Some((Risk::Medium, "pip uninstalls a package".into()))
                    } else {
                        Some((Risk::Low, format!("python -m {module}")))
                    }
                }
                "json.tool" | "py_compile" | "compileall" | "site" | "pytest" | "unittest" => {
                    Some((Risk::Low, format!("python -m {module}")))
                }
                "http.server" => Some((Risk::Medium, "serves files over HTTP".into())),
                _ => Some((Risk::Medium, format!("runs the Python module {module}"))),
            };
        }
        if let Some(i) = code_flag {
            let code = args.get(i + 1).map(|x| x.if_empty()).unwrap_or_default();
            let squashed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            let forks = squashed.contains("fork")
                && (squashed.contains("while")
                    || squashed.contains("for")
                    || squashed.contains("loop")
                    || squashed.matches("fork").count() > 1);
            if forks {
                return Some((
                    Risk::Refused,
                    format!("{n} inline code forks in a loop: a fork bomb"),
                ));
            }
            if mentions_download(&code)
                && (code.contains("exec(") || code.contains("eval(") || code.contains("system("))
            {
                return Some((
                    Risk::Refused,
                    format!("{n} inline code runs downloaded code"),
                ));
            }
            return Some((
                Risk::High,
                format!("{n} runs inline code that cannot be assessed"),
            ));
        }
        let script = args
            .iter()
            .find(|x| !x.s().starts_with('-') || x.s() == "-");
        match script {
            Some(s) if s.s() == "-" => {
                self.stdin_script(stdin, argv, n);
                None
            }
            Some(s) if s.procsub => {
                if s.subs.iter().any(|x| mentions_download(x)) {
                    Some((Risk::Refused, format!("{n} runs a download")))
                } else {
                    Some((
                        Risk::High,
                        format!("{n} runs a script produced at run time"),
                    ))
                }
            }
            Some(s) => {
                if self
                    .downloaded
                    .iter()
                    .any(|d| normalize(d) == normalize(s.s()))
                {
                    Some((
                        Risk::Refused,
                        format!("runs {}, a file it just downloaded", s.s()),
                    ))
                } else {
                    Some((Risk::Medium, format!("{n} runs the script {}", s.shown())))
                }
            }
            None => {
                if matches!(stdin, Stdin::Inherit) {
                    Some((
                        Risk::Medium,
                        format!("{n} reads a program from its standard input"),
                    ))
                } else {
                    self.stdin_script(stdin, argv, n);
                    None
                }
            }
        }
    }

    fn deletion(&mut self, targets: &[&Arg], recursive: bool) -> (Risk, String) {
        let mut worst = (Risk::Medium, "deletes files".to_string());
        let mut bump = |r: (Risk, String)| {
            if r.0 > worst.0 {
                worst = r;
            }
        };
        for t in targets {
            let p = t.if_empty();
            let what = if recursive {
                "recursively deletes"
            } else {
                "deletes"
            };
            if t.dynamic() {
                if recursive && (is_root_or_top(&p) || is_home(&p)) {
                    bump((
                        Risk::Refused,
                        format!(
                            "{what} {}, which is {} when the variable is empty",
                            t.shown(),
                            normalize(&p)
                        ),
                    ));
                } else {
                    bump((
                        Risk::High,
                        format!("{what} a path computed at run time ({})", t.shown()),
                    ));
                }
                continue;
            }
            if recursive && (is_root_or_top(&p) || normalize(&p) == "/") {
                bump((
                    Risk::Refused,
                    format!(
                        "{what} {}",
                        if has_glob(&p) {
                            p.clone()
                        } else {
                            normalize(&p)
                        }
                    ),
                ));
            } else if is_home(&p) {
                bump((Risk::Refused, format!("{what} a home directory ({p})")));
            } else if is_critical_file(&p) || is_block_device(&p) {
                bump((Risk::Refused, format!("{what} {}", normalize(&p))));
            } else if is_system_path(&p)
                || (p.starts_with('/') && normalize(&p).starts_with("/etc") && recursive)
            {
                bump((
                    Risk::High,
                    format!("{what} the system path {}", normalize(&p)),
                ));
            } else if p == "." || p == ".." || p == "*" || p.starts_with("../") {
                if recursive {
                    bump((
                        Risk::High,
                        format!("{what} {p} relative to wherever it runs"),
                    ));
                }
            } else {
                bump((Risk::Medium, format!("{what} {p}")));
            }
        }
        worst
    }

    fn find(
        &mut self,
        args: &[Arg],
        a: &[&str],
        argv: &[Arg],
        stdin: &Stdin,
    ) -> Option<(Risk, String)> {
        let starts: Vec<&Arg> = args
            .iter()
            .take_while(|x| !x.s().starts_with('-') && x.s() != "(" && x.s() != "!")
            .collect();
        let starts: Vec<&Arg> = if starts.is_empty() { vec![] } else { starts };
        if a.contains(&"-delete") {
            let below_only = a
                .windows(2)
                .any(|w| w[0] == "-mindepth" && w[1].parse::<u32>().is_ok_and(|d| d >= 1));
            let temp_dirs = !starts.is_empty()
                && starts
                    .iter()
                    .all(|x| matches!(normalize(x.s()).as_str(), "/tmp" | "/var/tmp"));
            if below_only && temp_dirs {
                return Some((Risk::Medium, "find deletes temporary files".into()));
            }
            if starts.is_empty() {
                return Some((Risk::High, "find -delete in the current directory".into()));
            }
            return Some(self.deletion(&starts, true));
        }
        let mut i = 0;
        while i < a.len() {
            if matches!(a[i], "-exec" | "-execdir" | "-ok" | "-okdir") {
                let end = a[i + 1..]
                    .iter()
                    .position(|s| *s == ";" || *s == "+")
                    .map(|p| i + 1 + p)
                    .unwrap_or(a.len());
                let mut cmd: Vec<Arg> = args[i + 1..end].to_vec();
                let start = starts
                    .first()
                    .map(|x| (*x).clone())
                    .unwrap_or_else(|| Arg::literal("."));
                for c in cmd.iter_mut() {
                    if c.text.contains("{}") {
                        c.text = c.text.replace("{}", &start.text);
                    }
                }
                // Applied to every file below the start: as good as recursive.
                if cmd.first().is_some_and(|c| basename(c.s()) == "rm") {
                    cmd.insert(1, Arg::literal("-r"));
                }
                self.command(cmd, stdin);
                i = end;
            }
            i += 1;
        }
        let _ = argv;
        Some((Risk::Low, "find lists files".into()))
    }

    fn permissions(&mut self, name: &str, args: &[Arg], a: &[&str]) -> Option<(Risk, String)> {
        let recursive = a.iter().any(|s| {
            *s == "-R"
                || *s == "--recursive"
                || (s.starts_with('-') && !s.starts_with("--") && s.contains('R'))
                || (name == "setfacl" && s.starts_with('-') && s.contains('R'))
        });
        let mut operands: Vec<&Arg> = vec![];
        let mut end = false;
        for x in args {
            let s = x.s();
            let is_mode = name == "chmod"
                && s.len() > 1
                && (s.starts_with('-') || s.starts_with('+'))
                && s[1..].chars().all(|c| "rwxXstugo,+-=".contains(c))
                && !matches!(s, "-R" | "-v" | "-f" | "-c");
            if end || !s.starts_with('-') || is_mode {
                operands.push(x);
            } else if s == "--" {
                end = true;
            }
        }
        let reference = a.iter().any(|s| s.starts_with("--reference"));
        let (spec, targets): (Option<&Arg>, Vec<&Arg>) = if reference {
            (None, operands)
        } else if name == "setfacl" {
            (None, operands.into_iter().skip(1).collect())
        } else {
            (
                operands.first().copied(),
                operands.into_iter().skip(1).collect(),
            )
        };
        let spec_s = spec.map(|s| s.if_empty()).unwrap_or_default();
        if targets.is_empty() {
            return Some((Risk::Low, format!("{name} without a target")));
        }
        let mut worst = (
            Risk::Medium,
            format!("{name} {spec_s} changes permissions or ownership"),
        );
        for t in targets {
            let p = t.if_empty();
            let r = if recursive && (is_root_or_top(&p) || is_home(&p)) {
                (
                    Risk::Refused,
                    format!(
                        "{name} -R on {}",
                        if has_glob(&p) {
                            p.clone()
                        } else {
                            normalize(&p)
                        }
                    ),
                )
            } else if t.dynamic() {
                (
                    Risk::High,
                    format!("{name} on a path computed at run time ({})", t.shown()),
                )
            } else if normalize(&p) == "/"
                || is_critical_file(&p)
                    && (spec_s.contains('7')
                        || spec_s.contains("o+w")
                        || spec_s.contains("a+w")
                        || name != "chmod")
            {
                (Risk::Refused, format!("{name} {spec_s} {}", normalize(&p)))
            } else if is_system_path(&p) || (p.starts_with('/') && is_root_or_top(&p)) {
                (
                    Risk::High,
                    format!("{name} on the system path {}", normalize(&p)),
                )
            } else if name == "chmod"
                && (spec_s.contains('s')
                    || (spec_s.len() == 4 && spec_s.starts_with(['2', '4', '6'])))
            {
                (
                    Risk::High,
                    format!("chmod {spec_s} sets a set-user/group-id bit"),
                )
            } else if name == "chattr" {
                (Risk::Medium, format!("chattr {spec_s} {p}"))
            } else {
                (Risk::Medium, format!("{name} {spec_s} {p}"))
            };
            if r.0 > worst.0 {
                worst = r;
            }
        }
        Some(worst)
    }

    fn systemctl(&mut self, positional: &[&Arg]) -> Option<(Risk, String)> {
        let sub = positional.first().map(|x| x.s()).unwrap_or("");
        let units: Vec<String> = positional
            .iter()
            .skip(1)
            .map(|x| x.s().to_string())
            .collect();
        match sub {
            "reboot" | "poweroff" | "halt" | "kexec" | "emergency" | "rescue" | "suspend"
            | "hibernate" | "hybrid-sleep" | "soft-reboot" => Some((
                Risk::Refused,
                format!("systemctl {sub} takes the host down"),
            )),
            "isolate" | "set-default" | "default" => {
                if units.iter().any(|u| {
                    [
                        "rescue",
                        "emergency",
                        "poweroff",
                        "reboot",
                        "halt",
                        "shutdown",
                        "runlevel0",
                        "runlevel6",
                        "runlevel1",
                        "kexec",
                    ]
                    .iter()
                    .any(|t| u.starts_with(t))
                }) {
                    Some((
                        Risk::Refused,
                        format!("systemctl {sub} {} takes the host down", units.join(" ")),
                    ))
                } else {
                    Some((
                        Risk::High,
                        format!("systemctl {sub} changes the system state"),
                    ))
                }
            }
            _ => {
                let critical = units.iter().any(|u| {
                    let u = u.trim_end_matches(".service");
                    matches!(
                        u,
                        "sshd"
                            | "ssh"
                            | "systemd-journald"
                            | "systemd-logind"
                            | "dbus"
                            | "networking"
                            | "NetworkManager"
                            | "systemd-networkd"
                            | "systemd-resolved"
                            | "getty@tty1"
                    )
                });
                match service_action("systemctl", sub) {
                    Some((Risk::Medium, r)) if critical => Some((
                        Risk::High,
                        format!("{r} of a service the host depends on ({})", units.join(" ")),
                    )),
                    other => other,
                }
            }
        }
    }

    fn kill(&mut self, name: &str, args: &[Arg], a: &[&str]) -> Option<(Risk, String)> {
        if name == "killall5" {
            return Some((Risk::Refused, "killall5 kills every process".into()));
        }
        if name == "kill" {
            let mut pids: Vec<&str> = vec![];
            let mut i = 0;
            let mut signal_seen = false;
            while i < a.len() {
                let s = a[i];
                if s == "--" {
                    pids.extend(a[i + 1..].iter().copied());
                    break;
                }
                if (s == "-s" || s == "-n") && !signal_seen {
                    signal_seen = true;
                    i += 2;
                    continue;
                }
                if s == "-l" || s == "-L" {
                    return Some((Risk::Low, "lists signals".into()));
                }
                if s.starts_with('-') && !signal_seen && pids.is_empty() {
                    signal_seen = true;
                    i += 1;
                    continue;
                }
                pids.push(s);
                i += 1;
            }
            if pids.iter().any(|p| *p == "1" || *p == "-1" || *p == "0") {
                return Some((Risk::Refused, "kill targets init or every process".into()));
            }
            if args.iter().any(|x| x.dynamic()) {
                return Some((Risk::Medium, "kill a process found at run time".into()));
            }
            return Some((Risk::Medium, format!("kill {}", pids.join(" "))));
        }
        let targets: Vec<&str> = a.iter().filter(|s| !s.starts_with('-')).copied().collect();
        if targets.iter().any(|t| {
            matches!(
                *t,
                "init" | "systemd" | "sshd" | "dbus-daemon" | "systemd-journald"
            )
        }) || a.contains(&"-1")
        {
            return Some((
                Risk::Refused,
                format!("{name} targets a process the host cannot live without"),
            ));
        }
        if a.contains(&"-u") || a.contains(&"--user") || targets.is_empty() {
            return Some((Risk::High, format!("{name} kills processes broadly")));
        }
        Some((Risk::Medium, format!("{name} {}", targets.join(" "))))
    }

    fn copy(
        &mut self,
        name: &str,
        args: &[Arg],
        a: &[&str],
        argv: &[Arg],
    ) -> Option<(Risk, String)> {
        let with_value = [
            "-t",
            "--target-directory",
            "-S",
            "--suffix",
            "-m",
            "--mode",
            "-o",
            "--owner",
            "-g",
            "--group",
            "-e",
            "--exclude",
            "--include",
            "-P",
            "-i",
            "-F",
        ];
        let mut ops: Vec<&Arg> = vec![];
        let mut i = 0;
        let mut target_dir: Option<&Arg> = None;
        while i < args.len() {
            let s = args[i].s();
            if (s == "-t" || s == "--target-directory") && name != "rsync" {
                target_dir = args.get(i + 1);
                i += 2;
                continue;
            }
            if with_value.contains(&s)
                && !(name == "rsync" && s == "-P")
                && !(name == "cp" && s == "-i")
            {
                i += 2;
                continue;
            }
            if !s.starts_with('-') || s == "-" {
                ops.push(&args[i]);
            }
            i += 1;
        }
        let (sources, dest): (Vec<&Arg>, Option<&Arg>) = match target_dir {
            Some(t) => (ops, Some(t)),
            None if ops.len() >= 2 => (ops[..ops.len() - 1].to_vec(), ops.last().copied()),
            None => (ops, None),
        };
        if name == "mv" {
            for s in &sources {
                let p = s.if_empty();
                if is_root_or_top(&p) || is_home(&p) || is_critical_file(&p) {
                    return Some((Risk::Refused, format!("mv moves {} away", normalize(&p))));
                }
                if is_system_path(&p) {
                    return Some((
                        Risk::High,
                        format!("mv moves the system path {}", normalize(&p)),
                    ));
                }
            }
        }
        if name == "rsync"
            && a.iter()
                .any(|s| s.starts_with("--delete") || *s == "--remove-source-files")
        {
            if let Some(d) = dest {
                let p = d.if_empty();
                if is_root_or_top(&p) || normalize(&p) == "/" || is_home(&p) {
                    return Some((
                        Risk::Refused,
                        format!("rsync --delete into {}", normalize(&p)),
                    ));
                }
            }
        }
        if let Some(d) = dest {
            if d.s().contains(':') && name != "ln" && !d.s().starts_with('/') {
                return Some((Risk::Medium, format!("{name} copies to another host")));
            }
            let (level, reason) = self.classify_write(d);
            if level == Risk::Refused {
                return Some((level, format!("{name}{reason}")));
            }
            let level = if name == "ln" && level == Risk::Low {
                Risk::Medium
            } else {
                level
            };
            let _ = argv;
            return Some((level.max(Risk::Medium), format!("{name} writes{reason}")));
        }
        Some((Risk::Medium, format!("{name} changes files")))
    }

    fn classify_write(&self, t: &Arg) -> (Risk, String) {
        let p = t.if_empty();
        if is_block_device(&p) {
            (Risk::Refused, format!(" onto the device {p}"))
        } else if is_critical_file(&p) {
            (Risk::Refused, format!(" over {}", normalize(&p)))
        } else if t.dynamic() {
            (
                Risk::High,
                format!(" to a path computed at run time ({})", t.shown()),
            )
        } else if is_system_path(&p) || is_root_or_top(&p) {
            (
                Risk::High,
                format!(" into the system path {}", normalize(&p)),
            )
        } else {
            (Risk::Medium, format!(" to {p}"))
        }
    }
}

fn service_action(what: &str, action: &str) -> Option<(Risk, String)> {
    match action {
        "start"
        | "restart"
        | "reload"
        | "try-restart"
        | "reload-or-restart"
        | "try-reload-or-restart"
        | "force-reload"
        | "condrestart"
        | "reset-failed"
        | "daemon-reload"
        | "enable"
        | "status"
        | "is-active"
        | "is-enabled"
        | "is-failed"
        | "show"
        | "cat"
        | "list-units"
        | "list-unit-files"
        | "list-timers"
        | "list-dependencies"
        | "--version"
        | "" => Some((Risk::Low, format!("{what} {action}").trim().to_string())),
        "stop" | "disable" | "kill" | "freeze" | "once" | "down" | "pause" | "zap" => {
            Some((Risk::Medium, format!("{what} {action} stops a service")))
        }
        "mask" | "edit" | "revert" | "link" | "preset-all" => Some((
            Risk::High,
            format!("{what} {action} changes how the service manager runs the service"),
        )),
        _ => Some((Risk::Medium, format!("{what} {action}"))),
    }
}

fn package_action(
    name: &str,
    words: &[&str],
    low: &[&str],
    medium: &[&str],
    high: &[&str],
) -> Option<(Risk, String)> {
    let action = words.first().copied().unwrap_or("");
    if high.contains(&action) {
        Some((
            Risk::High,
            format!("{name} {action} removes or replaces packages"),
        ))
    } else if medium.contains(&action) {
        Some((Risk::Medium, format!("{name} {action} upgrades packages")))
    } else if low.contains(&action) || action.is_empty() {
        Some((Risk::Low, format!("{name} {action}").trim().to_string()))
    } else {
        Some((Risk::Medium, format!("{name} {action}")))
    }
}

/// Whether a script fetches something from the network.
fn mentions_download(script: &str) -> bool {
    match shell::parse(script) {
        Ok(s) => {
            s.pipelines.iter().flat_map(|p| &p.commands).any(|c| {
                c.words.iter().any(|w| {
                    w.literal()
                        .is_some_and(|l| DOWNLOADERS.contains(&basename(&l)))
                        || w.substitutions().any(mentions_download)
                })
            }) || [
                "http://",
                "https://",
                "ftp://",
                "urlopen",
                "requests.get",
                "LWP::",
                "Net::HTTP",
                "/dev/tcp/",
            ]
            .iter()
            .any(|m| script.contains(m))
        }
        Err(_) => DOWNLOADERS.iter().any(|d| script.contains(d)) || script.contains("http"),
    }
}

/// The output of `$(echo X)` / `$(printf X)`, the only substitutions worth evaluating statically.
fn static_output(script: &str) -> Option<String> {
    let s = shell::parse(script).ok()?;
    if s.pipelines.is_empty() {
        return Some(String::new());
    }
    if s.pipelines.len() != 1 {
        return None;
    }
    let stages: Vec<Vec<Arg>> = s.pipelines[0]
        .commands
        .iter()
        .map(|c| {
            c.words
                .iter()
                .map(|w| match w.literal() {
                    Some(l) => Arg::literal(&l),
                    None => Arg::literal(&DYN.to_string()),
                })
                .collect()
        })
        .collect();
    match content(&stages) {
        Content::Literal(t) | Content::Decoded(t) => Some(t.trim_end_matches('\n').to_string()),
        _ => None,
    }
}

/// What a pipeline of already-expanded stages writes to its stdout.
fn content(stages: &[Vec<Arg>]) -> Content {
    let Some((last, before)) = stages.split_last() else {
        return Content::Unknown;
    };
    let Some(first) = last.first() else {
        return Content::Unknown;
    };
    if stages
        .iter()
        .flatten()
        .any(|a| a.dynamic() && a.subs.iter().any(|s| mentions_download(s)))
    {
        return Content::Download;
    }
    let name = basename(first.s());
    let args: Vec<&str> = last[1..].iter().map(|a| a.s()).collect();
    if DOWNLOADERS.contains(&name) {
        return Content::Download;
    }
    if last.iter().any(|a| a.dynamic()) {
        return if before.iter().any(|s| {
            s.first()
                .is_some_and(|f| DOWNLOADERS.contains(&basename(f.s())))
        }) {
            Content::Download
        } else {
            Content::Unknown
        };
    }
    let upstream = || content(before);
    match name {
        "echo" => {
            let words: Vec<&str> = args
                .iter()
                .copied()
                .skip_while(|a| matches!(*a, "-n" | "-e" | "-E" | "-ne" | "-en"))
                .collect();
            Content::Literal(format!("{}\n", words.join(" ")))
        }
        "printf" => {
            let fmt = args.first().copied().unwrap_or("");
            if fmt.contains('%') {
                let rest = args[1..].join(" ");
                if fmt == "%s" || fmt == "%s\\n" || fmt == "%b" {
                    return Content::Literal(rest);
                }
                return Content::Unknown;
            }
            Content::Literal(unescape_printf(fmt))
        }
        "base64" | "base32" | "openssl" => {
            let decoding = args.iter().any(|a| {
                matches!(*a, "-d" | "--decode" | "-D" | "-di" | "-id" | "enc")
                    || (a.starts_with('-') && a.contains('d') && !a.starts_with("--"))
            });
            if !decoding {
                return match upstream() {
                    Content::Download => Content::Download,
                    _ => Content::Unknown,
                };
            }
            match upstream() {
                Content::Literal(t) | Content::Decoded(t)
                    if name == "base64" || name == "openssl" =>
                {
                    match base64_decode(t.trim()) {
                        Some(d) => Content::Decoded(d),
                        None => Content::Unknown,
                    }
                }
                Content::Download => Content::Download,
                _ => Content::Unknown,
            }
        }
        "xxd" if args.contains(&"-r") => match upstream() {
            Content::Literal(t) | Content::Decoded(t) => match hex_decode(t.trim()) {
                Some(d) => Content::Decoded(d),
                None => Content::Unknown,
            },
            Content::Download => Content::Download,
            _ => Content::Unknown,
        },
        "rev" => match upstream() {
            Content::Literal(t) | Content::Decoded(t) => {
                let lines: Vec<String> = t.lines().map(|l| l.chars().rev().collect()).collect();
                Content::Decoded(lines.join("\n") + "\n")
            }
            c => c,
        },
        "cat" | "tee" | "gunzip" | "zcat" | "bzcat" | "xzcat" | "tr" | "sed" | "awk" | "head"
        | "tail" | "gzip" | "xz" | "bzip2" => {
            if args.iter().any(|a| !a.starts_with('-'))
                && matches!(name, "cat" | "zcat" | "bzcat" | "xzcat")
            {
                return Content::Unknown;
            }
            match upstream() {
                Content::Download => Content::Download,
                Content::Literal(t) if name == "cat" || name == "tee" => Content::Literal(t),
                _ => Content::Unknown,
            }
        }
        _ => Content::Unknown,
    }
}

/// One level of `pre{a,b}post` brace expansion, enough to see through `{rm,-rf,/}`.
fn brace_expand(s: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (s.find('{'), s.rfind('}')) else {
        return vec![s.to_string()];
    };
    if close < open || !s[open..close].contains(',') {
        return vec![s.to_string()];
    }
    let (pre, inner, post) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
    inner
        .split(',')
        .map(|x| format!("{pre}{x}{post}"))
        .collect()
}

fn unescape_printf(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('x') => {
                let h: String = [it.next(), it.next()].into_iter().flatten().collect();
                if let Ok(v) = u8::from_str_radix(&h, 16) {
                    out.push(v as char);
                }
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            v = v * 8 + x;
                            it.next();
                        }
                        None => break,
                    }
                }
                if let Some(ch) = char::from_u32(v) {
                    out.push(ch);
                }
            }
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = vec![];
    for c in s.chars() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' | '\n' | '\r' | ' ' => continue,
            _ => return None,
        };
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_decode(s: &str) -> Option<String> {
    let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let bytes: Option<Vec<u8>> = (0..clean.len() / 2)
        .map(|i| u8::from_str_radix(&clean[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_tricks() {
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("/bin/.."), "/");
        assert_eq!(normalize("/./etc/"), "/etc");
        assert!(is_root_or_top("/*"));
        assert!(is_root_or_top("/usr/*"));
        assert!(!is_root_or_top("/tmp/*"));
        assert!(!is_root_or_top("/var/cache/apt/archives"));
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("cm0gLXJmIC8=").as_deref(), Some("rm -rf /"));
    }
}
