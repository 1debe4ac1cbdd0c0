//! The rounds of one `pipeguard ansible` session: run the playbook, sort its failures
//! (heal, retry, the host loop, escalate), heal, and retry the failed hosts.

use super::hostloop::{self, HostLoop};
use super::{
    confirm, escalate, gather_missing_facts, load_error, play_connections, print_plan, report,
    rules, store_facts, write_plan_json, Ansible, CmdArgs, Escalation, RunOutput, RunRecord,
    Session, NEEDS_FACTS,
};
use anyhow::{Context, Result};
use pipeguard_ansible::plan::{Action, Decision, Phase};
use pipeguard_ansible::{classify, playbook, HostFacts, TaskFailure};
use pipeguard_core::backoff::Backoff;
use pipeguard_core::secrets::Redactor;
use pipeguard_core::{Analyzer, Risk};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What a round leads to.
enum Flow {
    /// The session ends with this exit status.
    Stop(i32),
    /// The playbook runs again, limited to these hosts.
    Retry(String),
}

/// One round's failures, sorted by what happens to them.
#[derive(Default)]
struct Triage {
    retry: BTreeSet<String>,
    heals: Vec<Decision>,
    for_loop: Vec<(TaskFailure, Decision)>,
}

pub struct Run<'a> {
    args: &'a CmdArgs,
    ansible: &'a Ansible,
    analyzer: Analyzer,
    host_loop: Option<HostLoop<'a>>,
    redactor: Redactor,
    id: String,
    dir: PathBuf,
    session: Session,
    facts: BTreeMap<String, HostFacts>,
    first_failures: Vec<Decision>,
    /// Exit status of the run in which hosts were escalated (they are not retried).
    escalated_code: Option<i32>,
}

impl<'a> Run<'a> {
    pub fn new(
        args: &'a CmdArgs,
        ansible: &'a Ansible,
        id: String,
        dir: PathBuf,
    ) -> Result<Run<'a>> {
        let host_loop = HostLoop::new(
            ansible,
            hostloop::analyst(args.config.as_deref())?,
            args.approve_medium,
            args.batch.map(|b| b as usize),
            &dir,
            (!args.no_database).then_some(args.database_url.as_str()),
        )?;
        let session = Session {
            id: id.clone(),
            playbook: args.playbook.display().to_string(),
            runs: vec![],
            heals: vec![],
            escalations: vec![],
            outcome: String::new(),
            exit_code: 0,
        };
        Ok(Run {
            redactor: host_loop
                .as_ref()
                .map(|l| l.redactor.clone())
                .unwrap_or_default(),
            args,
            ansible,
            analyzer: Analyzer::builtin(),
            host_loop,
            id,
            dir,
            session,
            facts: BTreeMap::new(),
            first_failures: vec![],
            escalated_code: None,
        })
    }

    /// Every round until the playbook passes, nothing is left to heal or retry, or the
    /// retries run out; returns the last playbook run's exit status.
    pub fn rounds(&mut self) -> Result<i32> {
        let mut limit: Option<String> = None;
        let mut round = 0u32;
        loop {
            match self.round(round, limit.take())? {
                Flow::Stop(code) => return Ok(code),
                Flow::Retry(l) => {
                    round += 1;
                    eprintln!(
                        "pipeguard: retry {round} of {}: --limit {l}",
                        self.args.max_retries
                    );
                    limit = Some(l);
                }
            }
        }
    }

    fn round(&mut self, round: u32, limit: Option<String>) -> Result<Flow> {
        let out = self.play(round, limit)?;
        let failures = out.events.failures();
        if out.code == 0 {
            return Ok(Flow::Stop(0));
        }
        if failures.is_empty() {
            self.escalate_load_error(&out);
            return Ok(Flow::Stop(out.code));
        }
        self.gather_facts(round, &failures)?;
        let decisions: Vec<Decision> = failures
            .iter()
            .map(|f| classify(f, self.facts.get(&f.host), &self.analyzer))
            .collect();
        if round == 0 {
            self.first_failures = decisions.clone();
        }
        let t = self.triage(&decisions, &failures);
        let loop_healed = self.hand_to_loop(&t.for_loop)?;
        let escalated = |e: &Escalation| failures.iter().any(|f| f.host == e.host);
        if self.session.escalations.iter().any(escalated) {
            self.escalated_code.get_or_insert(out.code);
        }
        if t.heals.is_empty() && t.retry.is_empty() {
            let all_healed = failures.iter().all(|f| loop_healed.contains(&f.host));
            return Ok(Flow::Stop(if all_healed { 0 } else { out.code }));
        }
        if round >= self.args.max_retries {
            self.out_of_retries(round, &t, &decisions);
            return Ok(Flow::Stop(out.code));
        }
        self.heal_and_retry(round + 1, &t, out.code)
    }

    /// The original playbook, on `limit`'s hosts (all at first); its facts are kept.
    fn play(&mut self, round: u32, limit: Option<String>) -> Result<RunOutput> {
        let args = self.args;
        let events_path = self.dir.join(format!("run-{round}.jsonl"));
        let t0 = Instant::now();
        let out = self
            .ansible
            .run(&args.playbook, limit.as_deref(), &args.extra, &events_path)?;
        for (h, m) in out.events.facts() {
            self.facts.insert(h, HostFacts::from_map(&m));
        }
        let record = RunRecord {
            limit,
            ..RunRecord::of("playbook", &args.playbook, "", &out, t0, &events_path)
        };
        self.session.runs.push(record);
        Ok(out)
    }

    /// Nothing ran far enough to fail a task: a load or syntax error, or a crash.
    fn escalate_load_error(&mut self, out: &RunOutput) {
        let last_lines = || {
            let mut l: Vec<String> = out
                .stderr_tail
                .lines()
                .rev()
                .take(5)
                .map(String::from)
                .collect();
            l.reverse();
            l
        };
        let (kind, evidence) =
            load_error(&out.stderr_tail).unwrap_or_else(|| ("unknown", last_lines()));
        self.session.escalations.push(Escalation {
            host: "*".into(),
            task: String::new(),
            kind: kind.into(),
            reason: format!(
                "ansible-playbook exited {} before any task failed ({kind}); nothing was changed",
                out.code
            ),
            evidence,
        });
    }

    /// Facts are gathered only where the fix depends on the host (package or service
    /// manager); a plain retry or an escalation needs none.
    fn gather_facts(&mut self, round: u32, failures: &[TaskFailure]) -> Result<()> {
        let need_facts: Vec<TaskFailure> = failures
            .iter()
            .filter(|f| {
                let d = classify(f, None, &self.analyzer);
                !self.facts.contains_key(&f.host)
                    && (NEEDS_FACTS.contains(&d.kind.as_str())
                        || (hostloop::unsure(&d)
                            && self.host_loop.as_ref().is_some_and(|l| l.may_handle(f, &d))))
            })
            .cloned()
            .collect();
        gather_missing_facts(
            self.ansible,
            &self.dir,
            round,
            &need_facts,
            &mut self.facts,
            &mut self.session,
        )?;
        store_facts(self.args, &self.facts);
        Ok(())
    }

    /// Each failure to the rules' heal, a retry, the host loop, or people.
    fn triage(&mut self, decisions: &[Decision], failures: &[TaskFailure]) -> Triage {
        let mut t = Triage::default();
        for (d, f) in decisions.iter().zip(failures) {
            let looped = self
                .host_loop
                .as_ref()
                .map(|l| l.report.hosts.contains_key(&d.host) || !l.may_handle(f, d));
            match &d.action {
                Action::Escalate if looped == Some(false) && hostloop::unsure(d) => {
                    t.for_loop.push((f.clone(), d.clone()));
                }
                Action::Escalate => escalate(&mut self.session, d, d.reason.clone()),
                Action::Retry => {
                    t.retry.insert(d.host.clone());
                }
                Action::Heal { .. } => {
                    if self.admit(d) {
                        t.heals.push(d.clone());
                    }
                }
            }
        }
        t
    }

    /// Whether the rules' heal may run: nothing refused, and high-risk fixes approved.
    fn admit(&mut self, d: &Decision) -> bool {
        let steps = d.steps();
        if let Some(bad) = steps.iter().find(|s| s.risk == Risk::Refused) {
            let argv = bad.argv.join(" ");
            let why = format!("the fix `{argv}` is refused: {}", bad.risk_reason);
            escalate(&mut self.session, d, why);
            return false;
        }
        let high: Vec<_> = steps
            .iter()
            .filter(|s| s.phase == Phase::Fix && s.risk == Risk::High)
            .collect();
        if high.is_empty() || self.args.approve_high_risk || self.args.dry_run {
            return true;
        }
        let prompt = format!(
            "pipeguard: {}: run high-risk fix(es) {}?",
            d.host,
            high.iter()
                .map(|s| format!("`{}` ({})", s.argv.join(" "), s.risk_reason))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if confirm(&prompt) {
            return true;
        }
        let why = format!(
            "{}; the fix is high risk and was not approved (use --approve-high-risk)",
            d.reason
        );
        escalate(&mut self.session, d, why);
        false
    }

    /// The failures the rules were unsure of, to the host loop when there is one (and not
    /// in a dry run); returns the hosts it healed.
    fn hand_to_loop(&mut self, for_loop: &[(TaskFailure, Decision)]) -> Result<BTreeSet<String>> {
        let args = self.args;
        let l = self
            .host_loop
            .as_mut()
            .filter(|_| !for_loop.is_empty() && !args.dry_run);
        if let Some(l) = l {
            return l.handle(
                for_loop,
                &self.facts,
                &args.playbook,
                &args.extra,
                &mut self.session,
            );
        }
        for (_, d) in for_loop {
            escalate(&mut self.session, d, d.reason.clone());
        }
        Ok(BTreeSet::new())
    }

    fn out_of_retries(&mut self, round: u32, t: &Triage, decisions: &[Decision]) {
        let why = |d: &Decision| format!("{}; still failing after {round} retries", d.reason);
        for d in &t.heals {
            escalate(&mut self.session, d, why(d));
        }
        for h in &t.retry {
            if let Some(d) = decisions.iter().find(|d| &d.host == h) {
                escalate(&mut self.session, d, why(d));
            }
        }
    }

    /// Heal what the rules can, wait before retrying transient failures, and name the hosts
    /// the playbook runs on again.
    fn heal_and_retry(&mut self, round: u32, t: &Triage, code: i32) -> Result<Flow> {
        let mut next_hosts = t.retry.clone();
        let heals: Vec<&Decision> = t.heals.iter().collect();
        if heals.is_empty() {
            print_plan(&heals, &t.retry, Path::new(""));
            if self.args.dry_run {
                return Ok(Flow::Stop(code));
            }
        } else {
            match self.heal(round, &heals, &t.retry, code)? {
                Some(healed) => next_hosts.extend(healed),
                None => return Ok(Flow::Stop(code)),
            }
        }
        if next_hosts.is_empty() {
            return Ok(Flow::Stop(code));
        }
        if !t.retry.is_empty() && self.args.backoff_seconds > 0.0 {
            let base = Duration::from_secs_f64(self.args.backoff_seconds);
            let d = Backoff {
                base,
                cap: base * 1024,
            }
            .bound(round - 1);
            eprintln!("pipeguard: waiting {:.1}s before retrying", d.as_secs_f64());
            std::thread::sleep(d);
        }
        Ok(Flow::Retry(
            next_hosts.into_iter().collect::<Vec<_>>().join(","),
        ))
    }

    /// The rules' heals of this round: their diagnostics ad hoc, then the healing
    /// playbook; returns the hosts healed and verified (`None` in a dry run).
    fn heal(
        &mut self,
        round: u32,
        heals: &[&Decision],
        retry: &BTreeSet<String>,
        code: i32,
    ) -> Result<Option<BTreeSet<String>>> {
        let connection = play_connections(&self.args.playbook);
        let pairs: Vec<(&Decision, Option<String>)> =
            heals.iter().map(|d| (*d, connection.clone())).collect();
        let yml = self.dir.join(format!("heal-{round}.yml"));
        let text = playbook::render_heal(&self.id, round, &pairs);
        std::fs::write(&yml, &text)?;
        print_plan(heals, retry, &yml);
        if self.args.dry_run {
            eprintln!(
                "pipeguard: dry run: the healing playbook above was written to {} and not run",
                yml.display()
            );
            println!("{text}");
            write_plan_json(&self.dir, round, heals, None, &BTreeMap::new())?;
            return Ok(None);
        }
        let diagnosed = self.diagnose(round, heals, connection.as_deref())?;
        let heal_events = self.dir.join(format!("heal-{round}.jsonl"));
        let hosts: BTreeSet<&str> = heals.iter().map(|d| d.host.as_str()).collect();
        let limit = hosts.into_iter().collect::<Vec<_>>().join(",");
        let t0 = Instant::now();
        let h = self.ansible.run(
            &yml,
            Some(&limit),
            &self.ansible.connection_args,
            &heal_events,
        )?;
        let record = RunRecord::of("heal", &yml, &limit, &h, t0, &heal_events);
        self.session.runs.push(record);
        let plan = write_plan_json(&self.dir, round, heals, Some(&h.events), &diagnosed)?;
        self.session.heals.push(plan);
        Ok(Some(self.judge(heals, &h, &diagnosed, code)))
    }

    /// The rules' diagnostics on each host, gated and run ad hoc before the healing
    /// playbook, by host and step index.
    fn diagnose(
        &mut self,
        round: u32,
        heals: &[&Decision],
        connection: Option<&str>,
    ) -> Result<rules::Diagnosed> {
        let mut out = rules::Diagnosed::new();
        for d in heals {
            let facts = self.facts.get(&d.host).cloned().unwrap_or_default();
            let tree = self.dir.join(format!("diagnose-{round}"));
            let ran = rules::diagnose(self.ansible, d, &facts, &tree, &self.redactor, connection)?;
            out.insert(d.host.clone(), ran);
        }
        Ok(out)
    }

    /// Healed and verified hosts; the others are escalated with what the heal and its
    /// diagnostics said.
    fn judge(
        &mut self,
        heals: &[&Decision],
        h: &RunOutput,
        diagnosed: &rules::Diagnosed,
        code: i32,
    ) -> BTreeSet<String> {
        let failed: BTreeSet<String> = h.events.failures().into_iter().map(|f| f.host).collect();
        let mut healed = BTreeSet::new();
        for d in heals {
            let ran = h
                .events
                .oks()
                .any(|o| o.host == d.host && o.task.starts_with("pipeguard "));
            if !failed.contains(&d.host) && ran {
                eprintln!("pipeguard: {}: {} healed and verified", d.host, d.kind);
                healed.insert(d.host.clone());
                continue;
            }
            let why = h
                .events
                .failures()
                .into_iter()
                .find(|f| f.host == d.host)
                .map(|f| format!("{}: {}", f.task, f.text().lines().next().unwrap_or("")))
                .unwrap_or_else(|| "the healing playbook did not run".into());
            let mut d = (*d).clone();
            d.evidence.extend(rules::evidence(
                diagnosed.get(&d.host).map_or(&[][..], |v| v.as_slice()),
            ));
            let reason = format!("{}; the heal did not verify ({why})", d.reason);
            escalate(&mut self.session, &d, reason);
            self.escalated_code.get_or_insert(code);
        }
        healed
    }

    /// The outcome, the report and the session record; the exit status.
    pub fn finish(mut self, final_code: i32) -> Result<ExitCode> {
        let exit = if final_code != 0 {
            final_code
        } else {
            self.escalated_code.unwrap_or(0)
        };
        // Ahead of the next failure: hosts about to fill up, with the cleanup offered (not run).
        super::super::hosts::offer_cleanup(&self.facts, Some(&self.dir.join("prevent.yml")))?;
        self.session.exit_code = exit;
        self.session.outcome = outcome(exit, &self.session).into();
        if let Some(path) = &self.args.report {
            let r = report::build(
                &self.args.playbook,
                self.host_loop.map(|l| l.report).unwrap_or_default(),
                &self.first_failures,
                &self.facts,
                &self.session,
            );
            std::fs::write(path, serde_json::to_string_pretty(&r)? + "\n")
                .with_context(|| format!("writing the report {}", path.display()))?;
        }
        let record = self.dir.join("session.json");
        std::fs::write(&record, serde_json::to_string_pretty(&self.session)? + "\n")?;
        print_escalations(&self.session.escalations);
        eprintln!(
            "pipeguard: session {}: {} (exit {exit}); record in {}",
            self.id,
            self.session.outcome,
            record.display()
        );
        Ok(ExitCode::from(exit.clamp(0, 255) as u8))
    }
}

fn outcome(exit: i32, session: &Session) -> &'static str {
    match (exit, session.escalations.is_empty()) {
        (0, true) if session.runs.len() > 1 => "healed",
        (0, true) => "passed",
        (_, false) => "escalated",
        _ => "failed",
    }
}

fn print_escalations(escalations: &[Escalation]) {
    for e in escalations {
        let task = if e.task.is_empty() {
            String::new()
        } else {
            format!(" task {:?}", e.task)
        };
        eprintln!(
            "pipeguard: ESCALATED {}{task}: {}: {}",
            e.host, e.kind, e.reason
        );
        for l in e.evidence.iter().take(5) {
            eprintln!("pipeguard:   | {l}");
        }
    }
}
