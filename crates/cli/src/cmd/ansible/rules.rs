//! The rules' diagnostics, run the way the analyst's are: each command gated on its own
//! (only read-only commands assessed low run), on its host through Ansible ad-hoc, bounded
//! in time and output, redacted, and recorded with its exit code.

use super::Ansible;
use anyhow::Result;
use pipeguard_ansible::hostloop::{gate, purpose_name, Gate, Purpose, Ran};
use pipeguard_ansible::{Decision, HostFacts};
use pipeguard_core::safety::{assess_script, risk_name, shell};
use pipeguard_core::secrets::Redactor;
use std::collections::BTreeMap;
use std::path::Path;

/// Per host, the rules' diagnostics by their index among the heal's steps.
pub type Diagnosed = BTreeMap<String, Vec<(usize, Ran)>>;

/// Run the heal's ad-hoc diagnostics on its host, reached as the healing playbook reaches it
/// (the play's `connection`). `become` is not asked for: they run with the healing
/// playbook's privileges (the user's `-b`, kept in the connection arguments).
pub fn diagnose(
    ansible: &Ansible,
    d: &Decision,
    facts: &HostFacts,
    tree: &Path,
    redactor: &Redactor,
    connection: Option<&str>,
) -> Result<Vec<(usize, Ran)>> {
    let mut out = vec![];
    for (i, step) in d.steps().iter().enumerate() {
        if !step.runs_ad_hoc() {
            continue;
        }
        let command = shell::join(&step.argv);
        let risk = assess_script(&command).level;
        let mut ran = Ran {
            command: command.clone(),
            risk: risk_name(risk).into(),
            ..Ran::default()
        };
        match gate(Purpose::Diagnostic, &command, risk, facts) {
            Gate::Run => {
                let (code, output) =
                    ansible.adhoc(&d.host, &command, false, tree, redactor, connection)?;
                (ran.ran, ran.exit_code, ran.output) = (true, Some(code), output);
            }
            Gate::Refuse(why) => ran.note = why,
            // A diagnostic is never medium (the gate refuses what is not low).
            Gate::NeedsApproval => ran.note = "medium risk".into(),
        }
        print(&d.host, &ran);
        out.push((i, ran));
    }
    Ok(out)
}

fn print(host: &str, r: &Ran) {
    let what = purpose_name(Purpose::Diagnostic);
    let Some(code) = r.exit_code else {
        let (risk, c, note) = (&r.risk, &r.command, &r.note);
        eprintln!("pipeguard: {host}: {what} [{risk}] {c} — not run: {note}");
        return;
    };
    eprintln!(
        "pipeguard: {host}: {what} [{}] {} → exit {code}",
        r.risk, r.command
    );
    for l in r.output.lines().take(3) {
        eprintln!("pipeguard:   | {l}");
    }
}

/// The diagnostics as evidence lines: the command, its exit code, its output's first line.
pub fn evidence(ran: &[(usize, Ran)]) -> Vec<String> {
    ran.iter()
        .filter(|(_, r)| r.ran)
        .map(|(_, r)| {
            let first = r.output.lines().next().unwrap_or("");
            let code = r.exit_code.unwrap_or(-1);
            format!("$ {} (exit {code}): {first}", r.command)
        })
        .collect()
}
