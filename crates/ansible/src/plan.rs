//! From one failed task on one host to a decision: heal (diagnose → fix → verify, with the
//! commands chosen for the host), retry (transient), or escalate with the evidence.
//!
//! Heals cover what operators meet every day: a missing directory or file, wrong
//! permissions or ownership, a stopped service, a stale lock, a port held by a stale
//! process, a missing package or Python module, a stale package cache, a full disk.
//! Unreachable hosts, syntax errors, undefined variables and the author's own assertions
//! are never "healed".

use crate::events::TaskFailure;
use crate::facts::HostFacts;
use crate::predict::Resource;
use pipeguard_core::analysis::Hints;
use pipeguard_core::safety;
use pipeguard_core::{Analyzer, Risk};
use regex::Regex;
use serde::Serialize;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Diagnose,
    Fix,
    Verify,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub description: String,
    /// A command that undoes the fix; `{diagnosis}` is replaced by the output of the
    /// diagnose step named in `from_step` once the heal has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_step: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub phase: Phase,
    pub name: String,
    pub argv: Vec<String>,
    /// Name of the variable the result is registered as, for a later `when`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    /// An Ansible condition on an earlier registered result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// The safety assessment of `argv`, possibly raised by `min_risk`.
    pub risk: Risk,
    pub risk_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    Heal { steps: Vec<Step> },
    Retry,
    Escalate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub host: String,
    pub task: String,
    pub module: String,
    /// What was recognised: `missing_directory`, `service_stopped`, `unreachable`…
    pub kind: String,
    pub reason: String,
    pub action: Action,
    /// The lines of the task's output that explain the decision.
    pub evidence: Vec<String>,
    /// No rule recognised the failure: only the generic analyzer's guess stands behind
    /// the decision, so an analyst may be asked.
    pub unsure: bool,
}

impl Decision {
    pub fn steps(&self) -> &[Step] {
        match &self.action {
            Action::Heal { steps } => steps,
            _ => &[],
        }
    }
    /// The worst risk among the fix steps.
    pub fn risk(&self) -> Risk {
        self.steps()
            .iter()
            .filter(|s| s.phase == Phase::Fix)
            .map(|s| s.risk)
            .max()
            .unwrap_or(Risk::Low)
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in pattern compiles"))
}

macro_rules! regex {
    ($p:expr) => {{
        static CELL: OnceLock<Regex> = OnceLock::new();
        re(&CELL, $p)
    }};
}

fn s(x: &str) -> String {
    x.to_string()
}

struct Builder {
    steps: Vec<Step>,
    n: usize,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            steps: vec![],
            n: 0,
        }
    }
    fn step(&mut self, phase: Phase, name: &str, argv: Vec<String>) -> &mut Step {
        self.n += 1;
        let a = safety::assess(&argv);
        self.steps.push(Step {
            phase,
            name: name.to_string(),
            argv,
            register: None,
            when: None,
            rollback: None,
            risk: a.level,
            risk_reason: a.reason,
        });
        self.steps.last_mut().expect("just pushed")
    }
    fn diagnose(&mut self, name: &str, argv: Vec<String>) -> &mut Step {
        self.step(Phase::Diagnose, name, argv)
    }
    fn fix(&mut self, name: &str, argv: Vec<String>) -> &mut Step {
        self.step(Phase::Fix, name, argv)
    }
    fn verify(&mut self, name: &str, argv: Vec<String>) -> &mut Step {
        self.step(Phase::Verify, name, argv)
    }
    fn done(self) -> Action {
        Action::Heal { steps: self.steps }
    }
}

impl Step {
    /// A diagnostic that runs on its own, through Ansible ad-hoc, before the healing
    /// playbook. A diagnostic whose result a fix's `when` reads (it registers one) is the
    /// fix's guard instead: it stays in the playbook, just before that fix, so that the
    /// condition holds when the fix runs, not when the diagnostics ran.
    pub fn runs_ad_hoc(&self) -> bool {
        self.phase == Phase::Diagnose && self.register.is_none()
    }
    fn register(&mut self, var: &str) -> &mut Step {
        self.register = Some(var.to_string());
        self
    }
    fn when(&mut self, cond: &str) -> &mut Step {
        self.when = Some(cond.to_string());
        self
    }
    fn rollback(&mut self, description: String, argv: Option<Vec<String>>, from: Option<&str>) {
        self.rollback = Some(Rollback {
            description,
            argv,
            from_step: from.map(String::from),
        });
    }
    /// Some fixes are riskier than their argv says (killing a process found at run time).
    fn min_risk(&mut self, r: Risk, why: &str) -> &mut Step {
        if self.risk < r {
            self.risk = r;
            self.risk_reason = why.to_string();
        }
        self
    }
}

fn parent(p: &str) -> Option<String> {
    let t = p.trim_end_matches('/');
    let i = t.rfind('/')?;
    Some(if i == 0 { s("/") } else { t[..i].to_string() })
}

fn evidence(text: &str, m: &Regex) -> Vec<String> {
    let mut ev: Vec<String> = text
        .lines()
        .filter(|l| m.is_match(l))
        .map(|l| l.trim().to_string())
        .take(5)
        .collect();
    if ev.is_empty() {
        ev = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .map(|l| l.trim().to_string())
            .collect();
    }
    ev
}

/// Module names that report an author-written check.
const ASSERTIONS: [&str; 3] = ["assert", "fail", "ansible.builtin.assert"];

/// Decide what to do about one failed task.
pub fn classify(f: &TaskFailure, facts: Option<&HostFacts>, analyzer: &Analyzer) -> Decision {
    let text = f.text();
    let mk = |kind: &str, reason: String, action: Action, evidence: Vec<String>| Decision {
        host: f.host.clone(),
        task: f.task.clone(),
        module: f.module.clone(),
        kind: kind.to_string(),
        reason,
        action,
        evidence,
        unsure: false,
    };
    let first_lines = |n: usize| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .take(n)
            .map(|l| l.trim().to_string())
            .collect()
    };

    if f.unreachable {
        return mk(
            "unreachable",
            format!(
                "{} is unreachable: a connection problem is not healed from here",
                f.host
            ),
            Action::Escalate,
            first_lines(3),
        );
    }
    let module = f.module_short();
    if ASSERTIONS.contains(&module) || ASSERTIONS.contains(&f.module.as_str()) {
        return mk(
            "assertion",
            format!("an assertion written by the playbook's author failed ({module}); it states what must be true, so it is not overridden"),
            Action::Escalate,
            first_lines(3),
        );
    }
    let undefined = regex!(
        r"(?i)\bis undefined\b|undefined variable|has no attribute '|AnsibleUndefinedVariable"
    );
    if undefined.is_match(&text) {
        return mk(
            "undefined_variable",
            "the playbook uses an undefined variable: a change to the playbook or inventory is needed".into(),
            Action::Escalate,
            evidence(&text, undefined),
        );
    }
    let authoring = regex!(
        r"(?i)Unsupported parameters? for|missing required arguments?|conflicting action statements|couldn't resolve module/action|template error while templating|value of \w+ must be one of|is not a valid|Syntax Error"
    );
    if authoring.is_match(&text) {
        return mk(
            "configuration_error",
            "the task itself is written wrongly (parameters or templating)".into(),
            Action::Escalate,
            evidence(&text, authoring),
        );
    }
    if let Some(d) = plan_heal(f, facts, &text) {
        let mut d = mk(d.0, d.1, d.2, d.3);
        // Recognised, but what to do depends on the host: an analyst may look.
        d.unsure = ASK_ANALYST.contains(&d.kind.as_str());
        return d;
    }
    let diag = analyzer.analyze_with(
        text.as_bytes(),
        &Hints {
            exit_code: f.rc.map(|r| r as i32),
            ..Hints::default()
        },
    );
    let ev: Vec<String> = diag
        .evidence
        .iter()
        .map(|e| e.text.trim().to_string())
        .collect();
    let ev = if ev.is_empty() { first_lines(3) } else { ev };
    if let Some(short) = facts
        .filter(|_| diag.category == pipeguard_core::Category::OutOfMemory)
        .and_then(|h| short_of(h, Resource::Memory))
    {
        return mk(
            "out_of_memory",
            format!("out of memory, and the host has {short}: a retry would fail the same way"),
            Action::Escalate,
            ev,
        );
    }
    if diag.transient && diag.confidence >= 0.5 {
        return mk(
            diag.category.as_str(),
            format!(
                "{} (confidence {:.2}) is transient: retry the task",
                diag.category, diag.confidence
            ),
            Action::Retry,
            ev,
        );
    }
    let mut d = mk(
        diag.category.as_str(),
        if diag.category == pipeguard_core::Category::Unknown {
            "the failure is not one pipeguard knows how to heal".to_string()
        } else {
            format!("{} needs a human", diag.category)
        },
        Action::Escalate,
        ev,
    );
    // The same threshold as the retry above: below it the category is a guess.
    d.unsure = diag.category == pipeguard_core::Category::Unknown || diag.confidence < 0.5;
    d
}

type Planned = (&'static str, String, Action, Vec<String>);

/// What every rule reads: the failure, the host's facts, its text, and the program a
/// command task ran.
struct Failed<'a> {
    f: &'a TaskFailure,
    facts: Option<&'a HostFacts>,
    text: &'a str,
    module: &'a str,
    argv0: Option<String>,
}

/// The rules, tried in order; the first that recognises the failure plans its heal.
const RULES: [fn(&Failed) -> Option<Planned>; 11] = [
    missing_directory_rule,
    missing_file_rule,
    unexecutable_rule,
    permission_rule,
    lock_rule,
    port_rule,
    service_rule,
    python_module_rule,
    package_rule,
    missing_program_rule,
    disk_rule,
];

fn plan_heal(f: &TaskFailure, facts: Option<&HostFacts>, text: &str) -> Option<Planned> {
    let module = f.module_short();
    let argv0 = f
        .command_argv()
        .filter(|_| matches!(module, "command" | "shell" | "raw" | "script"))
        .and_then(|a| a.first().cloned());
    let x = Failed {
        f,
        facts,
        text,
        module,
        argv0,
    };
    RULES.iter().find_map(|rule| rule(&x))
}

/// A destination directory that does not exist.
fn missing_directory_rule(x: &Failed) -> Option<Planned> {
    let text = x.text;
    let dest_dir = regex!(r"Destination directory (/.+?) does not exist");
    if let Some(c) = dest_dir.captures(text) {
        return Some(missing_directory(&c[1], evidence(text, dest_dir)));
    }
    let dir_nonexistent = regex!(
        r"(?:cannot create|can't create|cannot touch|could not touch|cannot open|can't open|cannot write to|could not open|failed to open) '?(/[^':\s]+)'?.*(?:Directory nonexistent|No such file or directory)"
    );
    if let Some(c) = dir_nonexistent.captures(text) {
        if let Some(p) = parent(&c[1]) {
            return Some(missing_directory(&p, evidence(text, dir_nonexistent)));
        }
    }
    let cant_cd =
        regex!(r"(?:can't cd to|cd: can't cd to|cd:) (/\S+?):? (?:No such file or directory)?");
    if let Some(c) = cant_cd.captures(text) {
        if text.contains("No such file") || text.contains("can't cd") {
            return Some(missing_directory(&c[1], evidence(text, cant_cd)));
        }
    }
    if x.module == "file" && text.contains("could not touch target") {
        let f = x.f;
        if let Some(p) = f.arg_str("path").or(f.arg_str("dest")).and_then(parent) {
            return Some(missing_directory(&p, first(text)));
        }
    }
    None
}

/// lineinfile and friends on a file that is not there yet.
fn missing_file_rule(x: &Failed) -> Option<Planned> {
    let dest_file = regex!(r"(?:Destination|Path) (/\S+?) does not exist");
    if !matches!(
        x.module,
        "lineinfile" | "blockinfile" | "replace" | "ini_file"
    ) {
        return None;
    }
    let c = dest_file.captures(x.text)?;
    Some(missing_file(&c[1], evidence(x.text, dest_file)))
}

/// ansible-core reports a program it could not execute only by errno in `rc`.
fn unexecutable_rule(x: &Failed) -> Option<Planned> {
    if !matches!(x.module, "command" | "shell") || !x.text.contains("Error executing command") {
        return None;
    }
    let a0 = x.argv0.as_deref()?;
    let ev = first(x.text);
    match x.f.rc {
        Some(13) => Some(permissions(
            a0,
            "a+x",
            "the program the task runs is not executable",
            ev,
        )),
        Some(2) if !a0.contains('/') => Some(missing_package(a0, x.facts, ev)),
        Some(2) => Some(unknown_program(a0, ev)),
        _ => None,
    }
}

fn unknown_program(a0: &str, ev: Vec<String>) -> Planned {
    (
        "missing_program",
        format!(
            "the program {a0} does not exist on the host; which package provides it is not known"
        ),
        Action::Escalate,
        ev,
    )
}

/// Permissions: a key file too open, or a path the task may not use.
fn permission_rule(x: &Failed) -> Option<Planned> {
    let text = x.text;
    let too_open = regex!(r"Permissions (\d{3,4}) for '([^']+)' are too open");
    if let Some(c) = too_open.captures(text) {
        return Some(permissions(
            &c[2],
            "0600",
            "the key file is readable by others and the tool refuses it",
            evidence(text, too_open),
        ));
    }
    let denied_path = regex!(
        r#"(?:\[Errno 13\] Permission denied: b?'([^']+)'|(/[^\s:'"]+): Permission denied)"#
    );
    let c = denied_path.captures(text)?;
    // One of the two alternatives matched, so one group is set.
    let path = c.get(1).or(c.get(2)).map(|m| m.as_str().to_string())?;
    let ev = evidence(text, denied_path);
    let is_program = x.argv0.as_deref() == Some(path.as_str()) || x.f.rc == Some(126);
    if is_program {
        let why = "the program the task runs is not executable";
        return Some(permissions(&path, "a+x", why, ev));
    }
    let user = x.f.become_user.as_deref();
    if let Some(user) = user.filter(|u| !u.is_empty() && *u != "root") {
        return Some(ownership(&path, user, ev));
    }
    Some((
        "permission_denied",
        format!("permission denied on {path}, and the task does not say which user should own it"),
        Action::Escalate,
        ev,
    ))
}

/// A lock held by a process, or a lock file left behind.
fn lock_rule(x: &Failed) -> Option<Planned> {
    let text = x.text;
    let held = regex!(r"Could not get lock (/\S+?)\.? It is held by process (\d+)");
    if let Some(c) = held.captures(text) {
        return Some(stale_lock(
            &c[1],
            Some(&c[2]),
            x.facts,
            evidence(text, held),
        ));
    }
    let lock = regex!(
        r#"(?i)(?:Unable to create '(/[^']+)': File exists|Could not get lock (/\S+?)\.?(?:\s|$)|lock ?file '?(/[^'\s]+?)'? (?:exists|already exists|is held)|(/\S+\.(?:lock|lck)): File exists|unable to lock (?:database|file) (/\S+))"#
    );
    let c = lock.captures(text)?;
    let path = (1..=5)
        .find_map(|i| c.get(i))
        .map(|m| m.as_str().trim_end_matches(['.', ':']).to_string())?;
    let pid = regex!(r"(?i)(?:pid|process)[ =:]+(\d+)")
        .captures(text)
        .map(|c| c[1].to_string());
    Some(stale_lock(
        &path,
        pid.as_deref(),
        x.facts,
        evidence(text, lock),
    ))
}

fn port_rule(x: &Failed) -> Option<Planned> {
    let in_use =
        regex!(r"(?i)address already in use|port (\d+) is already in use|bind\(\).*failed");
    if !in_use.is_match(x.text) {
        return None;
    }
    let port = regex!(r"(?:port |:)(\d{2,5})\b").captures(x.text)?;
    Some(port_held(&port[1], evidence(x.text, in_use)))
}

fn service_rule(x: &Failed) -> Option<Planned> {
    let name = stopped_service(x.f, x.text)?;
    Some(service_stopped(&name, x.facts, first(x.text)))
}

/// A Python library a module needs, or a module a Python program imports.
fn python_module_rule(x: &Failed) -> Option<Planned> {
    let text = x.text;
    let lib = regex!(
        r"Failed to import the required Python library \(([^)]+)\) on \S+'s Python (\S+?)\.?(?:\s|$)"
    );
    if let Some(c) = lib.captures(text) {
        let pkg = c[1].split_whitespace().next().unwrap_or(&c[1]).to_string();
        return Some(python_module(&c[2], &pkg, evidence(text, lib)));
    }
    let no_module = regex!(
        r#"(?:ModuleNotFoundError: No module named|ImportError: No module named) '?([A-Za-z_][\w.]*)'?"#
    );
    let c = no_module.captures(text)?;
    let python = x.argv0.clone().filter(|a| a.contains("python"));
    let top = c[1].split('.').next().unwrap_or(&c[1]).to_string();
    let ev = evidence(text, no_module);
    Some(match python {
        Some(py) => python_module(&py, &dist_name(&top), ev),
        None => (
            "missing_python_module",
            format!("Python module {top} is missing, but not for a Python the task names"),
            Action::Escalate,
            ev,
        ),
    })
}

/// A package the index does not know yet, or a command a package would provide.
fn package_rule(x: &Failed) -> Option<Planned> {
    let text = x.text;
    let stale = regex!(
        r"(?i)No package matching '([^']+)' is available|Unable to locate package (\S+)|No match for argument: (\S+)|No package (\S+) available|Package '?([^' ]+)'? has no installation candidate|unable to select packages:\s*(\S+)"
    );
    if let Some(c) = stale.captures(text) {
        let pkg = (1..=6)
            .find_map(|i| c.get(i))
            .map(|m| m.as_str().to_string())?;
        return Some(stale_cache(&pkg, x.facts, evidence(text, stale)));
    }
    let not_found = regex!(
        r#"(?:^|\n|: )([A-Za-z0-9][\w.+-]*): (?:command )?not found|\[Errno 2\] No such file or directory: b?'([A-Za-z0-9][\w.+-]*)'"#
    );
    let c = not_found.captures(text)?;
    let cmd = c.get(1).or(c.get(2)).map(|m| m.as_str().to_string())?;
    (cmd != "sh" && cmd != "bash" && !cmd.contains('/'))
        .then(|| missing_package(&cmd, x.facts, evidence(text, not_found)))
}

/// An absolute program path that does not exist.
fn missing_program_rule(x: &Failed) -> Option<Planned> {
    let a0 = x.argv0.as_deref().filter(|a| a.starts_with('/'))?;
    let gone = x
        .text
        .contains(&format!("No such file or directory: b'{a0}'"))
        || x.text
            .contains(&format!("No such file or directory: '{a0}'"));
    gone.then(|| unknown_program(a0, first(x.text)))
}

fn disk_rule(x: &Failed) -> Option<Planned> {
    let full = regex!(r"(?i)No space left on device|disk quota exceeded");
    if !full.is_match(x.text) {
        return None;
    }
    // Room on `/` (and its inodes): the full filesystem is another one, which cleaning
    // `/` would not help.
    let roomy = x.facts.filter(|f| {
        measured(f)
            && short_of(f, Resource::Disk).is_none()
            && short_of(f, Resource::Inodes).is_none()
    });
    let Some(f) = roomy else {
        return Some(disk_full(x.facts, evidence(x.text, full)));
    };
    let free = f.disk_free_mb.unwrap_or_default();
    Some((
        DISK_FULL_ELSEWHERE,
        format!("the task ran out of space, but / has {free} MB free: another filesystem (a mount, a quota, a tmpfs) is full, and cleaning / would not help"),
        Action::Escalate,
        evidence(x.text, full),
    ))
}

/// A full disk whose host has room on `/`.
const DISK_FULL_ELSEWHERE: &str = "disk_full_elsewhere";

/// Kinds the rules recognise but do not heal alone: where the host loop runs, an analyst
/// looks on the host.
const ASK_ANALYST: [&str; 1] = [DISK_FULL_ELSEWHERE];

/// Whether the facts measure `/` at all (without them nothing is concluded).
fn measured(f: &HostFacts) -> bool {
    f.disk_free_mb.is_some() && f.disk_total_mb.is_some_and(|t| t > 0)
}

/// What the host is short of in `r` by the warning limits (`predict::LIMITS`), as text.
fn short_of(f: &HostFacts, r: Resource) -> Option<String> {
    crate::predict::warnings("", f)
        .into_iter()
        .find(|w| w.resource == r)
        .map(|w| {
            format!(
                "{} of {} {} free",
                w.free,
                w.total,
                match r {
                    Resource::Inodes => "inodes",
                    _ => "MB",
                }
            )
        })
}

fn first(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .map(|l| l.trim().to_string())
        .collect()
}

fn missing_directory(dir: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    b.diagnose(
        &format!("check {dir}"),
        vec![s("ls"), s("-ld"), dir.to_string()],
    );
    b.fix(
        &format!("create {dir}"),
        vec![s("mkdir"), s("-p"), dir.to_string()],
    )
    .rollback(
        format!("rmdir {dir} (and the parents it created, when empty)"),
        Some(vec![s("rmdir"), dir.to_string()]),
        None,
    );
    b.verify(
        &format!("{dir} is a directory"),
        vec![s("test"), s("-d"), dir.to_string()],
    );
    (
        "missing_directory",
        format!("the directory {dir} does not exist"),
        b.done(),
        ev,
    )
}

fn missing_file(path: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    let dir = parent(path).unwrap_or_else(|| s("/"));
    b.diagnose(
        &format!("check {dir}"),
        vec![s("ls"), s("-ld"), dir.clone()],
    );
    b.fix(
        &format!("create {dir}"),
        vec![s("mkdir"), s("-p"), dir.clone()],
    );
    b.fix(
        &format!("create the empty file {path}"),
        vec![s("touch"), path.to_string()],
    )
    .rollback(
        format!("remove {path}"),
        Some(vec![s("rm"), s("-f"), path.to_string()]),
        None,
    );
    b.verify(
        &format!("{path} exists"),
        vec![s("test"), s("-f"), path.to_string()],
    );
    (
        "missing_file",
        format!("the file {path} the task edits does not exist"),
        b.done(),
        ev,
    )
}

fn permissions(path: &str, mode: &str, why: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    let diag = format!("current mode of {path}");
    b.diagnose(&diag, vec![s("stat"), s("-c"), s("%a"), path.to_string()]);
    b.fix(
        &format!("chmod {mode} {path}"),
        vec![s("chmod"), mode.to_string(), path.to_string()],
    )
    .rollback(
        format!("restore the previous mode of {path}"),
        Some(vec![s("chmod"), s("{diagnosis}"), path.to_string()]),
        Some(&diag),
    );
    let check = if mode == "a+x" { "-x" } else { "-r" };
    b.verify(
        &format!("{path} has the needed permission"),
        vec![s("test"), s(check), path.to_string()],
    );
    ("wrong_permissions", format!("{why}: {path}"), b.done(), ev)
}

fn ownership(path: &str, user: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    let diag = format!("current owner of {path}");
    b.diagnose(
        &diag,
        vec![s("stat"), s("-c"), s("%U:%G"), path.to_string()],
    );
    b.fix(
        &format!("chown {user} {path}"),
        vec![s("chown"), user.to_string(), path.to_string()],
    )
    .rollback(
        format!("restore the previous owner of {path}"),
        Some(vec![s("chown"), s("{diagnosis}"), path.to_string()]),
        Some(&diag),
    );
    b.verify(
        &format!("{path} is owned by {user}"),
        vec![s("stat"), s("-c"), s("%U"), path.to_string()],
    );
    (
        "wrong_ownership",
        format!("{path} is not writable by {user}, the user the task runs as"),
        b.done(),
        ev,
    )
}

fn stale_lock(
    path: &str,
    pid: Option<&str>,
    facts: Option<&HostFacts>,
    ev: Vec<String>,
) -> Planned {
    let mut b = Builder::new();
    let content = format!("content of {path}");
    b.diagnose(&content, vec![s("cat"), path.to_string()]);
    // Only a lock whose holder is gone is stale: a live holder is a real run in progress.
    let cond = match pid {
        Some(pid) => {
            b.diagnose(
                &format!("is process {pid} alive"),
                vec![s("test"), s("-e"), format!("/proc/{pid}")],
            )
            .register("pg_lock_holder");
            "pg_lock_holder.rc != 0"
        }
        None => {
            b.diagnose(
                &format!("processes holding {path}"),
                vec![s("fuser"), path.to_string()],
            )
            .register("pg_lock_holder");
            "pg_lock_holder.rc != 0"
        }
    };
    b.fix(
        &format!("remove the stale lock {path}"),
        vec![s("rm"), s("-f"), path.to_string()],
    )
    .when(cond)
    .rollback(
        format!("recreate {path} with its previous content (recorded from the diagnosis)"),
        None,
        Some(&content),
    );
    if path.starts_with("/var/lib/dpkg/") {
        // An interrupted dpkg run leaves packages half-configured.
        b.fix(
            "finish interrupted package configuration",
            vec![s("dpkg"), s("--configure"), s("-a")],
        )
        .when(cond);
    }
    let _ = facts;
    b.verify(
        &format!("{path} is gone"),
        vec![s("test"), s("!"), s("-e"), path.to_string()],
    );
    (
        "stale_lock",
        match pid {
            Some(p) => format!(
                "the lock {path} is held by process {p}; removed only if that process is gone"
            ),
            None => {
                format!("the lock file {path} was left behind; removed only if no process holds it")
            }
        },
        b.done(),
        ev,
    )
}

fn port_held(port: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    b.diagnose(
        &format!("who listens on port {port}"),
        vec![s("ss"), s("-ltnp"), format!("sport = :{port}")],
    );
    b.fix(
        &format!("stop the process holding port {port}"),
        vec![
            s("fuser"),
            s("-k"),
            s("-TERM"),
            s("-n"),
            s("tcp"),
            port.to_string(),
        ],
    )
    .min_risk(
        Risk::High,
        "kills whichever process holds the port, found only at run time",
    );
    b.verify(
        &format!("port {port} is free"),
        vec![
            s("sh"),
            s("-c"),
            s("! fuser -n tcp \"$0\""),
            port.to_string(),
        ],
    );
    (
        "port_in_use",
        format!("port {port} is held by another process"),
        b.done(),
        ev,
    )
}

/// The service a failure names: a status check in a command, or the service module's message.
fn stopped_service(f: &TaskFailure, text: &str) -> Option<String> {
    let module = f.module_short();
    if matches!(module, "command" | "shell") {
        let a = f.command_argv()?;
        let b: Vec<&str> = a
            .iter()
            .map(|x| x.rsplit('/').next().unwrap_or(x))
            .collect();
        match b.as_slice() {
            ["systemctl", "is-active" | "status", name, ..] => {
                return Some(name.trim_end_matches(".service").to_string())
            }
            ["service", name, "status"] | ["rc-service", name, "status"] => {
                return Some(name.to_string())
            }
            _ => {}
        }
    }
    let patterns = regex!(
        r"(?i)Unable to (?:start|restart|reload) service ([\w@.-]+)|Job for ([\w@.-]+?)\.service failed|([\w@.-]+?)(?:\.service)? is not (?:running|active)|([\w@.-]+)\.service: Failed with result|Failed to connect to service ([\w@.-]+)"
    );
    let c = patterns.captures(text)?;
    let name = (1..=5)
        .find_map(|i| c.get(i))?
        .as_str()
        .trim_end_matches(".service")
        .to_string();
    // A service that does not exist is a missing package or a typo, not a stopped service.
    if text.contains("could not find")
        || text.contains("not found")
        || text.contains("no such service")
    {
        return None;
    }
    Some(name)
}

fn service_stopped(name: &str, facts: Option<&HostFacts>, ev: Vec<String>) -> Planned {
    let sm = facts
        .map(|f| f.service_manager())
        .unwrap_or(crate::facts::ServiceManager::SysV);
    let mut b = Builder::new();
    b.diagnose(&format!("status of {name}"), sm.status(name));
    if let Some(logs) = sm.logs(name) {
        b.diagnose(&format!("recent log of {name}"), logs);
    }
    if let Some(reset) = sm.reset(name) {
        b.fix(&format!("clear the failed state of {name}"), reset);
    }
    let stop = match sm {
        crate::facts::ServiceManager::Systemd => vec![s("systemctl"), s("stop"), name.to_string()],
        crate::facts::ServiceManager::OpenRc => vec![s("rc-service"), name.to_string(), s("stop")],
        crate::facts::ServiceManager::Upstart => vec![s("initctl"), s("stop"), name.to_string()],
        crate::facts::ServiceManager::SysV => vec![s("service"), name.to_string(), s("stop")],
    };
    b.fix(&format!("start {name}"), sm.start(name)).rollback(
        format!("stop {name} again"),
        Some(stop),
        None,
    );
    b.verify(&format!("{name} is running"), sm.status(name));
    (
        "service_stopped",
        format!(
            "the service {name} is not running ({:?} service manager)",
            sm
        )
        .to_lowercase(),
        b.done(),
        ev,
    )
}

fn python_module(python: &str, package: &str, ev: Vec<String>) -> Planned {
    let mut b = Builder::new();
    b.diagnose(
        &format!("{package} in {python}"),
        vec![
            python.to_string(),
            s("-m"),
            s("pip"),
            s("show"),
            package.to_string(),
        ],
    );
    b.fix(
        &format!("install {package} into {python}"),
        vec![
            python.to_string(),
            s("-m"),
            s("pip"),
            s("install"),
            package.to_string(),
        ],
    )
    .rollback(
        format!("uninstall {package}"),
        Some(vec![
            python.to_string(),
            s("-m"),
            s("pip"),
            s("uninstall"),
            s("-y"),
            package.to_string(),
        ]),
        None,
    );
    b.verify(
        &format!("{package} is installed"),
        vec![
            python.to_string(),
            s("-m"),
            s("pip"),
            s("show"),
            package.to_string(),
        ],
    );
    (
        "missing_python_module",
        format!("the Python package {package} is missing from {python}"),
        b.done(),
        ev,
    )
}

/// Import names whose distribution is named differently.
fn dist_name(module: &str) -> String {
    match module {
        "yaml" => "PyYAML",
        "cv2" => "opencv-python-headless",
        "PIL" => "Pillow",
        "sklearn" => "scikit-learn",
        "bs4" => "beautifulsoup4",
        "dateutil" => "python-dateutil",
        "jwt" => "PyJWT",
        "OpenSSL" => "pyOpenSSL",
        "Crypto" => "pycryptodome",
        "dns" => "dnspython",
        "psycopg2" => "psycopg2-binary",
        "MySQLdb" => "mysqlclient",
        "jmespath" => "jmespath",
        m => m,
    }
    .to_string()
}

/// Commands whose package is named differently.
fn package_for(cmd: &str, pm: crate::facts::PackageManager) -> String {
    use crate::facts::PackageManager::*;
    match (cmd, pm) {
        ("psql", Apt) => "postgresql-client",
        ("psql", _) => "postgresql",
        ("mysql", Apt) => "default-mysql-client",
        ("pip3", Apk) => "py3-pip",
        ("pip3", _) => "python3-pip",
        ("dig" | "nslookup", Apt) => "dnsutils",
        ("dig" | "nslookup", _) => "bind-utils",
        ("ss" | "ip", Apt) => "iproute2",
        ("ss" | "ip", _) => "iproute",
        ("fuser", _) => "psmisc",
        ("netstat" | "ifconfig", _) => "net-tools",
        ("xmllint", Apt) => "libxml2-utils",
        ("envsubst", _) => "gettext-base",
        (c, _) => c,
    }
    .to_string()
}

fn missing_package(cmd: &str, facts: Option<&HostFacts>, ev: Vec<String>) -> Planned {
    let Some(pm) = facts
        .map(|f| f.package_manager())
        .filter(|p| *p != crate::facts::PackageManager::Unknown)
    else {
        return (
            "missing_package",
            format!("the command {cmd} is missing, and the host's package manager is not known"),
            Action::Escalate,
            ev,
        );
    };
    let pkg = package_for(cmd, pm);
    let mut b = Builder::new();
    b.diagnose(
        &format!("is {cmd} on PATH"),
        vec![s("sh"), s("-c"), s("command -v \"$0\""), cmd.to_string()],
    );
    if let Some(r) = pm.refresh() {
        b.fix("refresh the package index", r);
    }
    if let Some(i) = pm.install(std::slice::from_ref(&pkg)) {
        b.fix(&format!("install {pkg}"), i).rollback(
            format!("remove {pkg} with the package manager"),
            None,
            None,
        );
    }
    b.verify(
        &format!("{cmd} is on PATH"),
        vec![s("sh"), s("-c"), s("command -v \"$0\""), cmd.to_string()],
    );
    (
        "missing_package",
        format!("the command {cmd} is missing: install {pkg} with {pm:?}").to_lowercase(),
        b.done(),
        ev,
    )
}

fn stale_cache(pkg: &str, facts: Option<&HostFacts>, ev: Vec<String>) -> Planned {
    let Some(pm) = facts
        .map(|f| f.package_manager())
        .filter(|p| *p != crate::facts::PackageManager::Unknown)
    else {
        return (
            "stale_package_cache",
            format!("package {pkg} was not found, and the host's package manager is not known"),
            Action::Escalate,
            ev,
        );
    };
    let mut b = Builder::new();
    if let Some(r) = pm.refresh() {
        b.fix("refresh the package index", r);
    }
    (
        "stale_package_cache",
        format!("package {pkg} was not found in the host's package index: refresh it, then retry"),
        b.done(),
        ev,
    )
}

fn disk_full(facts: Option<&HostFacts>, ev: Vec<String>) -> Planned {
    (
        "disk_full",
        "the disk is full: clean package caches and old temporary files (never user data)".into(),
        disk_cleanup(facts),
        ev,
    )
}

/// The cleanup a full (or filling) disk gets: package caches, the journal, week-old
/// temporary files; never user data.
pub(crate) fn disk_cleanup(facts: Option<&HostFacts>) -> Action {
    let mut b = Builder::new();
    b.diagnose("free space", vec![s("df"), s("-h")]);
    if let Some(clean) = facts.and_then(|f| f.package_manager().clean()) {
        b.fix("delete downloaded package files", clean);
    }
    if facts.is_some_and(|f| f.service_manager() == crate::facts::ServiceManager::Systemd) {
        b.fix(
            "trim the journal",
            vec![s("journalctl"), s("--vacuum-size=200M")],
        );
    }
    // Temporary files untouched for a week; never user data.
    for dir in ["/tmp", "/var/tmp"] {
        b.fix(
            &format!("delete week-old temporary files in {dir}"),
            vec![
                dir.to_string(),
                s("-xdev"),
                s("-mindepth"),
                s("1"),
                s("-type"),
                s("f"),
                s("-atime"),
                s("+7"),
                s("-delete"),
            ]
            .into_iter()
            .fold(vec![s("find")], |mut v, x| {
                v.push(x);
                v
            }),
        );
    }
    b.verify("free space after cleaning", vec![s("df"), s("-h")]);
    b.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failure(module: &str, msg: &str, stderr: &str, args: serde_json::Value) -> TaskFailure {
        TaskFailure {
            host: "web1".into(),
            task: "t".into(),
            module: format!("ansible.builtin.{module}"),
            msg: msg.into(),
            stderr: stderr.into(),
            rc: Some(1),
            args,
            ..TaskFailure::default()
        }
    }

    fn debian() -> HostFacts {
        HostFacts {
            os_family: Some("Debian".into()),
            pkg_mgr: Some("apt".into()),
            service_mgr: Some("systemd".into()),
            ..HostFacts::default()
        }
    }

    fn alpine() -> HostFacts {
        HostFacts {
            os_family: Some("Alpine".into()),
            pkg_mgr: Some("apk".into()),
            service_mgr: Some("openrc".into()),
            ..HostFacts::default()
        }
    }

    fn fixes(d: &Decision) -> Vec<String> {
        d.steps()
            .iter()
            .filter(|s| s.phase == Phase::Fix)
            .map(|s| s.argv.join(" "))
            .collect()
    }

    #[test]
    fn escalations() {
        let a = Analyzer::builtin();
        let mut u = failure(
            "ping",
            "Failed to connect to the host via ssh",
            "",
            json!({}),
        );
        u.unreachable = true;
        assert_eq!(classify(&u, None, &a).kind, "unreachable");
        let f = failure("assert", "Assertion failed", "", json!({}));
        assert_eq!(classify(&f, None, &a).action, Action::Escalate);
        let f = failure(
            "debug",
            "The task includes an option with an undefined variable. 'app_port' is undefined",
            "",
            json!({}),
        );
        assert_eq!(classify(&f, None, &a).kind, "undefined_variable");
        let f = failure(
            "command",
            "non-zero return code",
            "error[E0308]: mismatched types",
            json!({}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.action, Action::Escalate);
        assert!(!d.unsure, "a compiler error is recognised: {d:?}");
        assert!(!classify(&u, None, &a).unsure);
        let f = failure(
            "command",
            "non-zero return code",
            "app: configuration directory /srv/app/etc is missing",
            json!({}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.action, Action::Escalate);
        assert!(d.unsure, "no rule knows this: {d:?}");
    }

    #[test]
    fn package_and_service_fixes_follow_the_host() {
        let a = Analyzer::builtin();
        let f = failure(
            "command",
            "[Errno 2] No such file or directory: b'jq'",
            "",
            json!({"_raw_params": "jq . data.json"}),
        );
        let d = classify(&f, Some(&debian()), &a);
        assert_eq!(d.kind, "missing_package");
        assert_eq!(
            fixes(&d),
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends jq"
            ]
        );
        let d = classify(&f, Some(&alpine()), &a);
        assert_eq!(fixes(&d), ["apk update", "apk add --no-cache jq"]);
        assert_eq!(classify(&f, None, &a).action, Action::Escalate);

        let f = failure(
            "command",
            "non-zero return code",
            "",
            json!({"_raw_params": "systemctl is-active nginx"}),
        );
        let d = classify(&f, Some(&debian()), &a);
        assert_eq!(d.kind, "service_stopped");
        assert_eq!(
            fixes(&d),
            ["systemctl reset-failed nginx", "systemctl start nginx"]
        );
        let d = classify(&f, Some(&alpine()), &a);
        assert_eq!(fixes(&d), ["rc-service nginx start"]);

        let f = failure(
            "apt",
            "No package matching 'nginx-extras' is available",
            "",
            json!({"name": "nginx-extras"}),
        );
        let d = classify(&f, Some(&debian()), &a);
        assert_eq!(d.kind, "stale_package_cache");
        assert_eq!(fixes(&d), ["apt-get update"]);
    }

    #[test]
    fn files_permissions_locks_and_disk() {
        let a = Analyzer::builtin();
        let f = failure(
            "copy",
            "Destination directory /srv/app/conf does not exist",
            "",
            json!({"dest": "/srv/app/conf/app.conf"}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.kind, "missing_directory");
        assert_eq!(fixes(&d), ["mkdir -p /srv/app/conf"]);
        assert!(d.steps().iter().all(|s| s.risk <= Risk::Medium));

        let f = failure(
            "command",
            "[Errno 13] Permission denied: b'/srv/app/bin/deploy.sh'",
            "",
            json!({"_raw_params": "/srv/app/bin/deploy.sh --now"}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.kind, "wrong_permissions");
        assert_eq!(fixes(&d), ["chmod a+x /srv/app/bin/deploy.sh"]);
        let rb = d.steps()[1].rollback.as_ref().unwrap();
        assert_eq!(rb.argv.as_ref().unwrap()[1], "{diagnosis}");

        let mut f = failure(
            "command",
            "non-zero return code",
            "touch: cannot touch '/srv/data/x': Permission denied",
            json!({"_raw_params": "touch /srv/data/x"}),
        );
        f.stderr = "/srv/data/x: Permission denied".into();
        f.become_user = Some("app".into());
        assert_eq!(fixes(&classify(&f, None, &a)), ["chown app /srv/data/x"]);

        let f = failure(
            "command",
            "non-zero return code",
            "fatal: Unable to create '/srv/repo/.git/index.lock': File exists.",
            json!({}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.kind, "stale_lock");
        assert_eq!(fixes(&d), ["rm -f /srv/repo/.git/index.lock"]);
        assert!(d.steps()[2].when.is_some());

        let f = failure("apt", "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)", "", json!({}));
        let d = classify(&f, Some(&debian()), &a);
        assert_eq!(
            fixes(&d),
            ["rm -f /var/lib/dpkg/lock-frontend", "dpkg --configure -a"]
        );

        let f = failure(
            "command",
            "non-zero return code",
            "Error: listen tcp :8080: bind: address already in use",
            json!({}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(d.kind, "port_in_use");
        assert_eq!(d.risk(), Risk::High);

        let f = failure(
            "command",
            "non-zero return code",
            "cp: error writing '/srv/x': No space left on device",
            json!({}),
        );
        let d = classify(&f, Some(&debian()), &a);
        assert_eq!(d.kind, "disk_full");
        let fx = fixes(&d);
        assert!(fx.contains(&"apt-get clean".to_string()));
        assert!(
            d.steps().iter().all(|s| s.risk <= Risk::Medium),
            "{:#?}",
            d.steps()
        );
    }

    #[test]
    fn free_disk_and_memory_in_the_facts_steer_the_rules() {
        let a = Analyzer::builtin();
        let full = failure(
            "command",
            "non-zero return code",
            "cp: error writing '/mnt/scratch/x': No space left on device",
            json!({}),
        );
        let roomy = HostFacts {
            disk_free_mb: Some(30_000),
            disk_total_mb: Some(40_000),
            ..debian()
        };
        let d = classify(&full, Some(&roomy), &a);
        assert_eq!(d.kind, "disk_full_elsewhere");
        assert_eq!(d.action, Action::Escalate, "/ is not cleaned");
        assert!(d.unsure, "an analyst may find which filesystem");
        assert!(d.reason.contains("30000 MB free"), "{}", d.reason);
        let cramped = HostFacts {
            disk_free_mb: Some(300),
            ..roomy.clone()
        };
        assert_eq!(classify(&full, Some(&cramped), &a).kind, "disk_full");
        // Without a measure of `/`, the full disk is believed.
        assert_eq!(classify(&full, Some(&debian()), &a).kind, "disk_full");

        let oom = failure(
            "command",
            "non-zero return code",
            "java.lang.OutOfMemoryError: Java heap space",
            json!({}),
        );
        let plenty = HostFacts {
            memfree_mb: Some(6000),
            memtotal_mb: Some(8000),
            ..debian()
        };
        let d = classify(&oom, Some(&plenty), &a);
        assert_eq!(d.kind, "out_of_memory");
        assert_eq!(d.action, Action::Retry, "{d:?}");
        let starved = HostFacts {
            memfree_mb: Some(60),
            ..plenty
        };
        let d = classify(&oom, Some(&starved), &a);
        assert_eq!(d.action, Action::Escalate);
        assert!(d.reason.contains("60 of 8000 MB free"), "{}", d.reason);
        assert!(!d.unsure);
    }

    #[test]
    fn python_modules_and_transient_failures() {
        let a = Analyzer::builtin();
        let f = failure(
            "command",
            "non-zero return code",
            "ModuleNotFoundError: No module named 'yaml'",
            json!({"argv": ["/srv/venv/bin/python", "-c", "import yaml"]}),
        );
        let d = classify(&f, None, &a);
        assert_eq!(fixes(&d), ["/srv/venv/bin/python -m pip install PyYAML"]);
        let f = failure("postgresql_db", "Failed to import the required Python library (psycopg2) on web1's Python /usr/bin/python3. Please read the module documentation", "", json!({}));
        assert_eq!(
            fixes(&classify(&f, None, &a)),
            ["/usr/bin/python3 -m pip install psycopg2"]
        );
        let f = failure(
            "get_url",
            "Request failed: <urlopen error [Errno 104] Connection reset by peer>",
            "",
            json!({}),
        );
        assert_eq!(classify(&f, None, &a).action, Action::Retry);
    }
}
