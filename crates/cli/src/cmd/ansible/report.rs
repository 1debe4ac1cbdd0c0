//! `--report FILE`: the host loop's entries, completed with the hosts the rules handled
//! (their healing playbook's steps) or escalated outright.

use super::Session;
use pipeguard_ansible::hostloop::{Diagnosis, Outcome, Purpose, Ran, Report};
use pipeguard_ansible::{Decision, HostFacts};
use std::collections::BTreeMap;
use std::path::Path;

pub fn build(
    playbook: &Path,
    mut report: Report,
    first_failures: &[Decision],
    facts: &BTreeMap<String, HostFacts>,
    session: &Session,
) -> Report {
    report.playbook = playbook.display().to_string();
    for d in first_failures {
        if report.hosts.contains_key(&d.host) {
            continue;
        }
        let escalation = session.escalations.iter().find(|e| e.host == d.host);
        let r = report.host(&d.host);
        r.task = d.task.clone();
        r.facts = facts.get(&d.host).cloned().unwrap_or_default();
        r.diagnosis = Diagnosis {
            category: d.kind.clone(),
            source: "rules".into(),
            reason: d.reason.clone(),
            fingerprint: format!("{}|{}|{}", d.task, d.module, d.kind),
        };
        for step in rule_steps(session, &d.host) {
            let (purpose, ran) = step;
            r.list(purpose).push(ran);
        }
        (r.outcome, r.reason) = match escalation {
            Some(e) => (Outcome::Escalated, e.reason.clone()),
            None => (Outcome::Healed, d.reason.clone()),
        };
    }
    report
}

/// The steps of the rules' healing playbooks that concerned `host`.
fn rule_steps(session: &Session, host: &str) -> Vec<(Purpose, Ran)> {
    let mut out = vec![];
    for heal in &session.heals {
        let hosts = heal["hosts"].as_array().into_iter().flatten();
        for h in hosts.filter(|h| h["host"] == host) {
            for s in h["steps"].as_array().into_iter().flatten() {
                let purpose = match s["phase"].as_str() {
                    Some("diagnose") => Purpose::Diagnostic,
                    Some("verify") => Purpose::Verify,
                    _ => Purpose::Fix,
                };
                let argv: Vec<String> = s["argv"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect();
                let status = s["status"].as_str().unwrap_or("");
                let ran = matches!(status, "ok" | "failed");
                // A diagnostic run ad hoc has its own exit code; a playbook step has its status.
                let code = s["exit_code"].as_i64().map(|c| c as i32);
                let note = s["note"].as_str().unwrap_or(status);
                out.push((
                    purpose,
                    Ran {
                        command: pipeguard_core::safety::shell::join(&argv),
                        risk: s["risk"].as_str().unwrap_or("").into(),
                        ran,
                        exit_code: ran.then_some(code.unwrap_or(if status == "ok" {
                            0
                        } else {
                            1
                        })),
                        output: s["output"].as_str().unwrap_or("").into(),
                        note: if ran { String::new() } else { note.to_string() },
                    },
                ));
            }
        }
    }
    out
}
