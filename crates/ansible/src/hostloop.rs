//! The host loop's decisions, as data: which proposed command may run on which host
//! (diagnostics only read; fixes low, or medium with approval; nothing that does not fit
//! the host), the order hosts with the same failure are handled in (a canary, then
//! batches), and the per-host report `pipeguard ansible --report` writes.

use crate::facts::HostFacts;
use crate::fit;
use pipeguard_core::lifecycle::{Event, SessionStatus};
use pipeguard_core::Risk;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use pipeguard_core::safety::Purpose;

/// Whether a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Run,
    /// Medium risk: runs once a person approves (`--approve-medium` or the terminal).
    NeedsApproval,
    /// Never runs; why.
    Refuse(String),
}

/// Decide one command: the safety verdict `risk`, then whether it fits the host, then
/// (for diagnostics) whether it only reads.
pub fn gate(purpose: Purpose, command: &str, risk: Risk, facts: &HostFacts) -> Gate {
    // Ansible templates ad-hoc arguments on the controller: `{{ lookup('pipe', …) }}` would
    // run there, unseen by the gate.
    if command.contains("{{") || command.contains("{%") {
        return Gate::Refuse("Jinja templating in a command is not allowed".into());
    }
    if let Some(why) = fit::misfit(command, facts) {
        return Gate::Refuse(why);
    }
    match (purpose, risk) {
        (_, Risk::Refused) => Gate::Refuse("refused by the safety gate".into()),
        (_, Risk::High) => Gate::Refuse("high risk: never run by the host loop".into()),
        (Purpose::Diagnostic, Risk::Low) => match fit::read_only(command) {
            Ok(()) => Gate::Run,
            Err(why) => Gate::Refuse(format!("a diagnostic must only read: {why}")),
        },
        (Purpose::Diagnostic, _) => Gate::Refuse("a diagnostic runs only when assessed low".into()),
        (_, Risk::Low) => Gate::Run,
        (_, Risk::Medium) => Gate::NeedsApproval,
    }
}

/// What the model proposed for one host, by purpose, in the order each runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub diagnostics: Vec<String>,
    pub fixes: Vec<String>,
    pub verification: Vec<String>,
    pub rollback: Vec<String>,
}

/// The host loop's next step on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this command now.
    Run(Purpose, String),
    /// Record this command as not run, with why.
    Skip(Purpose, String, String),
    /// The fixes wait for a person (these are medium risk).
    AskApproval(Vec<String>),
    Healed,
    /// Hand the host to people, with why.
    Escalate(String),
}

/// The loop's order as a pure function of the proposal and what already happened on the
/// host (`done`): diagnostics (each once; the gate skips what does not only read), then
/// every fix (all allowed before any runs; medium ones once `approved`), the verification,
/// and on any failure the rollback, then escalation. The worker and the CLI perform it.
pub fn next(p: &Proposal, facts: &HostFacts, done: &HostReport, approved: bool) -> Next {
    let allowed = |purpose, c: &str| match gate(
        purpose,
        c,
        pipeguard_core::safety::assess_script(c).level,
        facts,
    ) {
        Gate::Run => Ok(()),
        Gate::NeedsApproval if approved => Ok(()),
        Gate::NeedsApproval => Err(None),
        Gate::Refuse(why) => Err(Some(why)),
    };
    let step = |purpose: Purpose, c: &String| match allowed(purpose, c) {
        Ok(()) => Next::Run(purpose, c.clone()),
        Err(why) => Next::Skip(
            purpose,
            c.clone(),
            why.unwrap_or_else(|| "medium risk and not approved".into()),
        ),
    };
    if let Some(c) = p.diagnostics.get(done.diagnostics.len()) {
        return step(Purpose::Diagnostic, c);
    }
    if p.fixes.is_empty() {
        return Next::Escalate("the model proposed no fix".into());
    }
    if done.fixes.is_empty() {
        if let Some((c, why)) = p.fixes.iter().find_map(|c| match allowed(Purpose::Fix, c) {
            Err(Some(why)) => Some((c, why)),
            _ => None,
        }) {
            return Next::Skip(Purpose::Fix, c.clone(), why);
        }
        let medium: Vec<String> = p
            .fixes
            .iter()
            .filter(|c| allowed(Purpose::Fix, c).is_err())
            .cloned()
            .collect();
        if !medium.is_empty() {
            return Next::AskApproval(medium);
        }
    }
    if let Some(x) = done.fixes.iter().find(|x| !x.ran) {
        return Next::Escalate(format!("the fix `{}` was not run: {}", x.command, x.note));
    }
    let fixed = done.fixes.iter().all(Ran::ok);
    if fixed {
        if let Some(c) = p.fixes.get(done.fixes.len()) {
            return Next::Run(Purpose::Fix, c.clone());
        }
    }
    let verified = fixed && !p.verification.is_empty() && done.verification.iter().all(Ran::ok);
    if verified {
        match p.verification.get(done.verification.len()) {
            Some(c) => return step(Purpose::Verify, c),
            None => return Next::Healed,
        }
    }
    after_failure(p, done, fixed, &step)
}

/// A fix or the verification failed: each rollback in order, stopping at the first that
/// fails, then escalation saying what happened.
fn after_failure(
    p: &Proposal,
    done: &HostReport,
    fixed: bool,
    step: &dyn Fn(Purpose, &String) -> Next,
) -> Next {
    let rolled = done.rollback.iter().all(Ran::ok);
    if rolled {
        if let Some(c) = p.rollback.get(done.rollback.len()) {
            return step(Purpose::Rollback, c);
        }
    }
    let what = if !fixed {
        "a fix failed"
    } else if p.verification.is_empty() {
        "the model proposed no verification"
    } else {
        "the verification failed"
    };
    let rb = if rolled && !p.rollback.is_empty() {
        "rolled back"
    } else {
        "NOT fully rolled back"
    };
    Next::Escalate(format!("{what}; {rb}"))
}

/// The lifecycle events that go with the loop's `step` for a session in `status`: fixes
/// run while executing and the verification while verifying; the loop ends healed, waiting
/// for approval, or escalated (at the plan while nothing was changed on the host yet).
pub fn events(step: &Next, status: SessionStatus) -> &'static [Event] {
    use SessionStatus as S;
    match (step, status) {
        (Next::Run(Purpose::Fix, _), S::Analyzing) => &[Event::Plan, Event::Start],
        (Next::Run(Purpose::Fix, _), S::Planned) => &[Event::Start],
        (Next::Run(Purpose::Verify, _), S::Executing) => &[Event::Verify],
        (Next::Run(..) | Next::Skip(..), _) => &[],
        (Next::AskApproval(_), _) => &[Event::AskApproval],
        (Next::Healed, _) => &[Event::Heal],
        (Next::Escalate(_), S::Analyzing) => &[Event::EscalatePlan],
        (Next::Escalate(_), _) => &[Event::EscalateCall],
    }
}

/// What a queued host step does, found again after a crash or a lapsed lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAction {
    /// The step is due and was never started: run its command.
    Run,
    /// A worker started the command and stopped before recording it: it may have run, so it
    /// is recorded as interrupted and never run again.
    Interrupted,
    /// The step is recorded; the loop goes on from there (no later step is queued).
    Continue,
    /// The step is recorded and the next one is queued, or the loop never queued it (a
    /// stray copy): nothing.
    Nothing,
}

/// The decision for queued step number `step` when `done` commands are recorded, `started`
/// is the step whose command began and `queued` the step the loop queued last.
pub fn on_step(
    step: usize,
    done: usize,
    started: Option<usize>,
    queued: Option<usize>,
) -> StepAction {
    if done > step {
        return match queued {
            Some(q) if q >= done => StepAction::Nothing,
            _ => StepAction::Continue,
        };
    }
    if done < step || queued != Some(step) {
        return StepAction::Nothing;
    }
    match started {
        Some(s) if s == step => StepAction::Interrupted,
        _ => StepAction::Run,
    }
}

/// Whether the analyst is asked once more, with the diagnostics' output: every proposed
/// diagnostic was considered, one at least ran (its output is news), no fix was, and it was
/// not asked again yet (one more round at most).
pub fn ask_again(p: &Proposal, done: &HostReport, asked: bool) -> bool {
    !asked
        && done.fixes.is_empty()
        && done.diagnostics.len() >= p.diagnostics.len()
        && done.diagnostics.iter().any(|r| r.ran)
}

/// The diagnostics that ran, as the analyst's second round reads them: `$ CMD (exit N)`
/// then the redacted output.
pub fn diagnostic_outputs(done: &[Ran]) -> Vec<String> {
    done.iter()
        .filter(|r| r.ran)
        .map(|r| {
            format!(
                "$ {} (exit {})\n{}",
                r.command,
                r.exit_code.unwrap_or(-1),
                r.output
            )
        })
        .collect()
}

/// How a purpose is named in reports, the timeline and the audit trail.
pub fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::Diagnostic => "diagnostic",
        Purpose::Fix => "fix",
        Purpose::Verify => "verify",
        Purpose::Rollback => "rollback",
    }
}

/// The default batch: 25 % of the hosts, at least one.
pub fn default_batch(hosts: usize) -> usize {
    (hosts / 4).max(1)
}

/// Hosts with the same failure in the order they are handled: the first alone (the
/// canary), then the rest in batches of `batch`.
pub fn waves(hosts: &[String], batch: usize) -> Vec<Vec<String>> {
    let Some((canary, rest)) = hosts.split_first() else {
        return vec![];
    };
    let mut out = vec![vec![canary.clone()]];
    out.extend(rest.chunks(batch.max(1)).map(|c| c.to_vec()));
    out
}

/// One command the loop considered, run or not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ran {
    pub command: String,
    pub risk: String,
    pub ran: bool,
    pub exit_code: Option<i32>,
    /// Redacted and bounded.
    pub output: String,
    /// Why it did not run, when it did not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.ran && self.exit_code == Some(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub category: String,
    /// `rules` or `model`.
    pub source: String,
    pub reason: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Healed,
    Escalated,
    #[default]
    Untouched,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub task: String,
    pub facts: HostFacts,
    pub diagnosis: Diagnosis,
    pub diagnostics: Vec<Ran>,
    pub fixes: Vec<Ran>,
    pub verification: Vec<Ran>,
    pub rollback: Vec<Ran>,
    pub outcome: Outcome,
    pub reason: String,
}

impl HostReport {
    /// How many commands were considered (run or not): the number of the next step.
    pub fn done(&self) -> usize {
        self.diagnostics.len() + self.fixes.len() + self.verification.len() + self.rollback.len()
    }

    pub fn list(&mut self, p: Purpose) -> &mut Vec<Ran> {
        match p {
            Purpose::Diagnostic => &mut self.diagnostics,
            Purpose::Fix => &mut self.fixes,
            Purpose::Verify => &mut self.verification,
            Purpose::Rollback => &mut self.rollback,
        }
    }
}

/// What `--report FILE` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub playbook: String,
    pub hosts: BTreeMap<String, HostReport>,
    /// The order hosts were handled in.
    pub order: Vec<String>,
}

impl Report {
    /// The host's entry, recording the order on first use.
    pub fn host(&mut self, name: &str) -> &mut HostReport {
        if !self.order.iter().any(|h| h == name) {
            self.order.push(name.to_string());
        }
        self.hosts.entry(name.to_string()).or_default()
    }
}

/// The failure a heal is learned for: the same task, module and rules' verdict.
pub fn fingerprint(task: &str, module: &str, kind: &str) -> String {
    format!("{task}|{module}|{kind}")
}

/// What healed which failure on which OS family (kept in the hosts database): offered to
/// the analyst first next time, and replayed without one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Learned {
    pub entries: Vec<LearnedFix>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LearnedFix {
    pub fingerprint: String,
    pub os_family: String,
    pub diagnostics: Vec<String>,
    pub fixes: Vec<String>,
    pub verification: Vec<String>,
    pub healed: u32,
}

impl LearnedFix {
    /// What ran in a healed host's report: its diagnostics, fixes and verification.
    pub fn from_report(fingerprint: &str, os_family: &str, r: &HostReport) -> LearnedFix {
        let ran = |l: &[Ran]| -> Vec<String> {
            l.iter()
                .filter(|x| x.ran)
                .map(|x| x.command.clone())
                .collect()
        };
        LearnedFix {
            fingerprint: fingerprint.into(),
            os_family: os_family.into(),
            diagnostics: ran(&r.diagnostics),
            fixes: ran(&r.fixes),
            verification: ran(&r.verification),
            healed: 1,
        }
    }
}

impl Learned {
    /// Count one heal (`fix.healed` is ignored).
    pub fn record(&mut self, fix: LearnedFix) {
        let same = |e: &&mut LearnedFix| {
            e.fingerprint == fix.fingerprint && e.os_family == fix.os_family && e.fixes == fix.fixes
        };
        match self.entries.iter_mut().find(|e| same(e)) {
            Some(e) => {
                e.healed += 1;
                e.diagnostics = fix.diagnostics;
                e.verification = fix.verification;
            }
            None => self.entries.push(LearnedFix { healed: 1, ..fix }),
        }
    }

    /// Whether anything healed this failure, on any OS family.
    pub fn knows(&self, fingerprint: &str) -> bool {
        self.entries.iter().any(|e| e.fingerprint == fingerprint)
    }

    /// What healed this failure on this OS family, most heals first.
    fn hits(&self, fingerprint: &str, os_family: &str) -> Vec<&LearnedFix> {
        let mut hits: Vec<&LearnedFix> = self
            .entries
            .iter()
            .filter(|e| e.fingerprint == fingerprint && e.os_family == os_family)
            .collect();
        hits.sort_by_key(|e| std::cmp::Reverse(e.healed));
        hits
    }

    /// The analyst's "earlier fixes", as lines.
    pub fn offers(&self, fingerprint: &str, os_family: &str) -> Vec<String> {
        self.hits(fingerprint, os_family)
            .iter()
            .map(|e| {
                format!(
                    "on a {os_family} host, diagnostics [{}] then fixes [{}] healed it {} time(s)",
                    e.diagnostics.join("; "),
                    e.fixes.join("; "),
                    e.healed
                )
            })
            .collect()
    }

    /// What to replay without an analyst: the most frequent heal on this OS family that can
    /// be verified again (a fix without a verification is never replayed blind).
    pub fn replay(&self, fingerprint: &str, os_family: &str) -> Option<&LearnedFix> {
        if os_family.is_empty() {
            return None;
        }
        self.hits(fingerprint, os_family)
            .into_iter()
            .find(|e| !e.fixes.is_empty() && !e.verification.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> HostFacts {
        HostFacts {
            os_family: Some("Debian".into()),
            pkg_mgr: Some("apt".into()),
            service_mgr: Some("systemd".into()),
            ..HostFacts::default()
        }
    }

    #[test]
    fn the_gate_follows_risk_fit_and_purpose() {
        let h = debian();
        assert_eq!(
            gate(Purpose::Diagnostic, "ls -ld /etc/app", Risk::Low, &h),
            Gate::Run
        );
        assert!(matches!(
            gate(Purpose::Diagnostic, "mkdir -p /etc/app", Risk::Low, &h),
            Gate::Refuse(_)
        ));
        assert_eq!(
            gate(Purpose::Fix, "mkdir -p /etc/app", Risk::Low, &h),
            Gate::Run
        );
        assert_eq!(
            gate(Purpose::Fix, "chmod 640 /etc/app.conf", Risk::Medium, &h),
            Gate::NeedsApproval
        );
        assert!(matches!(
            gate(Purpose::Fix, "x", Risk::High, &h),
            Gate::Refuse(_)
        ));
        assert!(matches!(
            gate(Purpose::Rollback, "x", Risk::Refused, &h),
            Gate::Refuse(_)
        ));
        let Gate::Refuse(why) = gate(Purpose::Fix, "dnf install -y nginx", Risk::Low, &h) else {
            panic!("dnf on an apt host must be refused");
        };
        assert!(why.contains("dnf"), "{why}");
    }

    #[test]
    fn what_healed_is_offered_for_the_same_failure_and_os_family_only() {
        let mut r = HostReport::default();
        r.fixes.push(Ran {
            command: "mkdir -p /etc/app".into(),
            ran: true,
            exit_code: Some(0),
            ..Ran::default()
        });
        r.fixes.push(Ran {
            command: "rm -rf /".into(),
            ..Ran::default()
        });
        let mut l = Learned::default();
        let fix = LearnedFix::from_report("t|command|unknown", "Debian", &r);
        l.record(fix.clone());
        l.record(fix);
        let offers = l.offers("t|command|unknown", "Debian");
        assert_eq!(offers.len(), 1);
        assert!(
            offers[0].contains("fixes [mkdir -p /etc/app] healed it 2 time(s)"),
            "{offers:?}"
        );
        assert!(!offers[0].contains("rm -rf"), "only what ran");
        assert!(l.offers("t|command|unknown", "RedHat").is_empty());
        assert!(l.offers("other|command|unknown", "Debian").is_empty());
        // Never verified: offered, but not replayed without an analyst.
        assert!(l.replay("t|command|unknown", "Debian").is_none());
        assert!(l.knows("t|command|unknown") && !l.knows("other|command|unknown"));
    }

    #[test]
    fn only_a_verified_heal_on_the_same_os_family_is_replayed() {
        let ran = |c: &str| Ran {
            command: c.into(),
            ran: true,
            exit_code: Some(0),
            ..Ran::default()
        };
        let r = HostReport {
            fixes: vec![ran("mkdir -p /etc/app")],
            verification: vec![ran("test -d /etc/app")],
            ..HostReport::default()
        };
        let mut l = Learned::default();
        l.record(LearnedFix::from_report("fp", "Debian", &r));
        let once = HostReport {
            fixes: vec![ran("install -d /etc/app")],
            ..r.clone()
        };
        l.record(LearnedFix::from_report("fp", "Debian", &once));
        l.record(LearnedFix::from_report("fp", "Debian", &r));
        let best = l.replay("fp", "Debian").expect("replayable");
        assert_eq!(best.fixes, ["mkdir -p /etc/app"]);
        assert_eq!(best.verification, ["test -d /etc/app"]);
        assert_eq!(best.healed, 2);
        assert!(l.replay("fp", "RedHat").is_none());
        assert!(l.replay("fp", "").is_none(), "unknown OS family");
    }

    #[test]
    fn a_canary_then_batches() {
        let hosts: Vec<String> = (1..=6).map(|i| format!("h{i}")).collect();
        assert_eq!(default_batch(6), 1);
        assert_eq!(default_batch(12), 3);
        assert_eq!(default_batch(0), 1);
        let w = waves(&hosts, 2);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0], ["h1"]);
        assert_eq!(w[1], ["h2", "h3"]);
        assert_eq!(w[3], ["h6"]);
        assert!(waves(&[], 3).is_empty());
    }

    fn ran(c: &str, code: i32) -> Ran {
        Ran {
            command: c.into(),
            ran: true,
            exit_code: Some(code),
            ..Ran::default()
        }
    }

    #[test]
    fn the_loop_diagnoses_fixes_verifies_and_heals_in_order() {
        let p = Proposal {
            diagnostics: vec!["ls -ld /srv/etc".into(), "mkdir -p /x".into()],
            fixes: vec!["mkdir -p /srv/etc/app".into()],
            verification: vec!["test -d /srv/etc/app".into()],
            rollback: vec![],
        };
        let h = debian();
        let mut r = HostReport::default();
        assert_eq!(
            next(&p, &h, &r, false),
            Next::Run(Purpose::Diagnostic, "ls -ld /srv/etc".into())
        );
        r.diagnostics.push(ran("ls -ld /srv/etc", 2));
        // A diagnostic that writes is recorded, never run.
        assert!(matches!(
            next(&p, &h, &r, false),
            Next::Skip(Purpose::Diagnostic, _, _)
        ));
        r.diagnostics.push(Ran {
            command: "mkdir -p /x".into(),
            ..Ran::default()
        });
        assert_eq!(
            next(&p, &h, &r, false),
            Next::Run(Purpose::Fix, "mkdir -p /srv/etc/app".into())
        );
        r.fixes.push(ran("mkdir -p /srv/etc/app", 0));
        assert_eq!(
            next(&p, &h, &r, false),
            Next::Run(Purpose::Verify, "test -d /srv/etc/app".into())
        );
        r.verification.push(ran("test -d /srv/etc/app", 0));
        assert_eq!(next(&p, &h, &r, false), Next::Healed);
        // A failed verification: rolled back, escalated.
        r.verification[0].exit_code = Some(1);
        let p = Proposal {
            rollback: vec!["rmdir /srv/etc/app".into()],
            ..p
        };
        // `rmdir` is medium: a rollback, too, runs only once approved.
        assert!(matches!(
            next(&p, &h, &r, false),
            Next::Skip(Purpose::Rollback, _, _)
        ));
        assert_eq!(
            next(&p, &h, &r, true),
            Next::Run(Purpose::Rollback, "rmdir /srv/etc/app".into())
        );
        r.rollback.push(ran("rmdir /srv/etc/app", 0));
        assert_eq!(
            next(&p, &h, &r, false),
            Next::Escalate("the verification failed; rolled back".into())
        );
    }

    #[test]
    fn medium_fixes_wait_for_approval_and_refused_ones_never_run() {
        let h = debian();
        let medium = "chmod 640 /etc/app.conf".to_string();
        let p = Proposal {
            fixes: vec![medium.clone()],
            verification: vec!["test -f /etc/app.conf".into()],
            ..Proposal::default()
        };
        let r = HostReport::default();
        assert_eq!(
            next(&p, &h, &r, false),
            Next::AskApproval(vec![medium.clone()])
        );
        assert_eq!(next(&p, &h, &r, true), Next::Run(Purpose::Fix, medium));
        let p = Proposal {
            fixes: vec!["mkdir -p /a".into(), "rm -rf /var/lib/postgresql".into()],
            ..p
        };
        let Next::Skip(Purpose::Fix, c, _) = next(&p, &h, &r, true) else {
            panic!("the rm -rf must be refused before any fix runs");
        };
        assert_eq!(c, "rm -rf /var/lib/postgresql");
        let r = HostReport {
            fixes: vec![Ran {
                command: c,
                note: "refused".into(),
                ..Ran::default()
            }],
            ..r
        };
        assert!(
            matches!(next(&p, &h, &r, true), Next::Escalate(why) if why.contains("was not run"))
        );
        let none = Proposal::default();
        assert_eq!(
            next(&none, &h, &HostReport::default(), false),
            Next::Escalate("the model proposed no fix".into())
        );
    }

    #[test]
    fn each_step_has_its_lifecycle_events() {
        use SessionStatus as S;
        let run = |p| Next::Run(p, "c".into());
        assert_eq!(
            events(&run(Purpose::Fix), S::Analyzing),
            [Event::Plan, Event::Start]
        );
        assert_eq!(events(&run(Purpose::Fix), S::Planned), [Event::Start]);
        assert!(events(&run(Purpose::Fix), S::Executing).is_empty());
        assert!(events(&run(Purpose::Diagnostic), S::Analyzing).is_empty());
        assert_eq!(events(&run(Purpose::Verify), S::Executing), [Event::Verify]);
        assert!(events(&run(Purpose::Rollback), S::Verifying).is_empty());
        let skip = Next::Skip(Purpose::Fix, "c".into(), "no".into());
        assert!(events(&skip, S::Analyzing).is_empty());
        assert_eq!(
            events(&Next::AskApproval(vec![]), S::Analyzing),
            [Event::AskApproval]
        );
        assert_eq!(events(&Next::Healed, S::Verifying), [Event::Heal]);
        let esc = Next::Escalate("x".into());
        assert_eq!(events(&esc, S::Analyzing), [Event::EscalatePlan]);
        assert_eq!(events(&esc, S::Verifying), [Event::EscalateCall]);
        assert_eq!(events(&esc, S::Executing), [Event::EscalateCall]);
        // Every move is legal from where the loop is.
        let legal = |e: &[Event], mut from: S| {
            e.iter().all(|e| {
                pipeguard_core::lifecycle::transition(from, *e)
                    .map(|to| from = to)
                    .is_ok()
            })
        };
        assert!(legal(
            events(&run(Purpose::Fix), S::Analyzing),
            S::Analyzing
        ));
        assert!(legal(
            events(&run(Purpose::Verify), S::Executing),
            S::Executing
        ));
        assert!(legal(events(&Next::Healed, S::Verifying), S::Verifying));
        assert!(legal(events(&esc, S::Verifying), S::Verifying));
        assert!(legal(
            events(&Next::AskApproval(vec![]), S::Analyzing),
            S::Analyzing
        ));
    }

    #[test]
    fn a_step_runs_once_even_when_queued_twice_or_interrupted() {
        assert_eq!(on_step(2, 2, None, Some(2)), StepAction::Run);
        assert_eq!(on_step(2, 2, Some(1), Some(2)), StepAction::Run);
        // Started and not recorded: it may have run, it is never run again.
        assert_eq!(on_step(2, 2, Some(2), Some(2)), StepAction::Interrupted);
        // Recorded, and the next step is queued: a second copy does nothing.
        assert_eq!(on_step(2, 3, None, Some(3)), StepAction::Nothing);
        // Recorded, but the worker stopped before queueing what follows.
        assert_eq!(on_step(2, 3, None, Some(2)), StepAction::Continue);
        assert_eq!(on_step(2, 4, None, None), StepAction::Continue);
        assert_eq!(on_step(5, 3, None, Some(3)), StepAction::Nothing);
        // Due, but the loop never queued it (it waits for approval, say): nothing runs.
        assert_eq!(on_step(0, 0, None, None), StepAction::Nothing);
        assert_eq!(on_step(2, 2, None, Some(1)), StepAction::Nothing);
    }

    #[test]
    fn the_second_round_reads_what_the_diagnostics_printed() {
        let r = vec![
            ran("ls -ld /etc/app", 2),
            Ran {
                command: "mkdir /x".into(),
                note: "writes".into(),
                ..Ran::default()
            },
        ];
        let p = Proposal {
            diagnostics: vec!["ls -ld /etc/app".into(), "mkdir /x".into()],
            ..Proposal::default()
        };
        let mut done = HostReport {
            diagnostics: r[..1].to_vec(),
            ..HostReport::default()
        };
        assert!(!ask_again(&p, &done, false), "a diagnostic is still due");
        done.diagnostics = r.clone();
        assert!(ask_again(&p, &done, false));
        assert!(!ask_again(&p, &done, true), "one more round at most");
        let refused = HostReport {
            diagnostics: r[1..].to_vec(),
            ..HostReport::default()
        };
        let p1 = Proposal {
            diagnostics: vec!["mkdir /x".into()],
            ..Proposal::default()
        };
        assert!(
            !ask_again(&p1, &refused, false),
            "nothing ran: nothing new to read"
        );
        let out = diagnostic_outputs(&r);
        assert_eq!(out.len(), 1, "only what ran");
        assert!(
            out[0].starts_with("$ ls -ld /etc/app (exit 2)\n"),
            "{out:?}"
        );
    }
}
