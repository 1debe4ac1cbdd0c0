//! The host loop's decisions, as data: which proposed command may run on which host
//! (diagnostics only read; fixes low, or medium with approval; nothing that does not fit
//! the host), the order hosts with the same failure are handled in (a canary, then
//! batches), and the per-host report `pipeguard ansible --report` writes.

use crate::facts::HostFacts;
use crate::fit;
use pipeguard_core::Risk;
use serde::Serialize;
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ran {
    pub command: String,
    pub risk: String,
    pub ran: bool,
    pub exit_code: Option<i32>,
    /// Redacted and bounded.
    pub output: String,
    /// Why it did not run, when it did not.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.ran && self.exit_code == Some(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diagnosis {
    pub category: String,
    /// `rules` or `model`.
    pub source: String,
    pub reason: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Healed,
    Escalated,
    #[default]
    Untouched,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
}
