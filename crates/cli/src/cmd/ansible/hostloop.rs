//! The host loop for failures the rules cannot heal: the analyst proposes commands, the
//! read-only low-risk diagnostics run on the host (Ansible ad-hoc), their output goes back
//! for one more round, then fix → verify → (rollback) → retry the task on that host. Hosts
//! with the same failure go canary first, then in batches, stopping at the first failed
//! verification.

use super::{confirm, escalate, Ansible, RunRecord, Session};
use anyhow::{Context as _, Result};
use pipeguard_ansible::hostloop::{
    default_batch, fingerprint, gate, waves, Diagnosis, Gate, Learned, LearnedFix, Outcome,
    Purpose, Ran, Report,
};
use pipeguard_ansible::{Decision, HostFacts, TaskFailure};
use pipeguard_core::safety::{assess_script, risk_name};
use pipeguard_core::secrets::Redactor;
use pipeguard_core::{Category, Evidence};
use pipeguard_llm::{Analyst, ConfigError, Context, Explanation, LlmConfig};
use pipeguard_server::adhoc::Adhoc;
use pipeguard_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Whether an escalation came from the rules being unsure (the model may try).
pub fn unsure(d: &Decision) -> bool {
    matches!(d.action, pipeguard_ansible::Action::Escalate) && d.unsure
}

/// Only the `[llm]` table of the config file.
#[derive(serde::Deserialize, Default)]
struct File {
    #[serde(default)]
    llm: LlmConfig,
}

/// The model configured in `--config` (or ./pipeguard.toml) and PIPEGUARD_LLM_*, if any.
pub fn analyst(config: Option<&Path>) -> Result<Option<Analyst>> {
    let default = Path::new("pipeguard.toml");
    let path = config.or(default.exists().then_some(default));
    let mut cfg = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<File>(&text)
                .with_context(|| format!("[llm] in {} is not valid", p.display()))?
                .llm
        }
        None => LlmConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    match Analyst::new(cfg) {
        Ok(a) => Ok(Some(a)),
        Err(ConfigError::NotConfigured) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub struct HostLoop<'a> {
    pub ansible: &'a Ansible,
    /// Without one, only what healed before (on the same OS family) is replayed.
    pub analyst: Option<Analyst>,
    pub rt: tokio::runtime::Runtime,
    pub approve_medium: bool,
    pub batch: Option<usize>,
    pub dir: PathBuf,
    pub report: Report,
    pub redactor: Redactor,
    adhoc_runs: usize,
    /// The hosts database, where what healed is kept (none with `--no-database`).
    store: Option<Store>,
    learned: Learned,
}

impl<'a> HostLoop<'a> {
    /// The loop, when there is a model to ask or something learned to replay.
    pub fn new(
        ansible: &'a Ansible,
        analyst: Option<Analyst>,
        approve_medium: bool,
        batch: Option<usize>,
        dir: &Path,
        database_url: Option<&str>,
    ) -> Result<Option<HostLoop<'a>>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (store, learned) = match database_url {
            Some(url) => learned_from(&rt, url),
            None => (None, Learned::default()),
        };
        if analyst.is_none() && learned.entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(HostLoop {
            store,
            learned,
            redactor: analyst
                .as_ref()
                .map(|a| a.redactor().clone())
                .unwrap_or_default(),
            ansible,
            analyst,
            rt,
            approve_medium,
            batch,
            dir: dir.to_path_buf(),
            report: Report::default(),
            adhoc_runs: 0,
        }))
    }

    /// Whether this failure is the loop's: a model may be asked, or a heal was learned.
    pub fn may_handle(&self, f: &TaskFailure, d: &Decision) -> bool {
        self.analyst.is_some()
            || self
                .learned
                .knows(&fingerprint(&f.task, &f.module, &d.kind))
    }

    /// Handle the failures the rules were unsure of; returns the hosts healed (fixed,
    /// verified and passing the retried playbook).
    pub fn handle(
        &mut self,
        items: &[(TaskFailure, Decision)],
        facts: &BTreeMap<String, HostFacts>,
        playbook: &Path,
        extra: &[String],
        session: &mut Session,
    ) -> Result<BTreeSet<String>> {
        // Same task, module and rules' verdict: the same failure on several hosts.
        let mut groups: BTreeMap<String, Vec<&(TaskFailure, Decision)>> = BTreeMap::new();
        for it in items {
            let fp = fingerprint(&it.0.task, &it.0.module, &it.1.kind);
            groups.entry(fp).or_default().push(it);
        }
        let mut healed = BTreeSet::new();
        for (fp, group) in groups {
            let hosts: Vec<String> = group.iter().map(|(f, _)| f.host.clone()).collect();
            let batch = self.batch.unwrap_or_else(|| default_batch(hosts.len()));
            let mut stopped: Option<String> = None;
            for wave in waves(&hosts, batch) {
                if stopped.is_some() {
                    break;
                }
                let mut verified = vec![];
                for host in &wave {
                    let (f, d) = group
                        .iter()
                        .find(|(f, _)| &f.host == host)
                        .expect("in group");
                    let hf = facts.get(host).cloned().unwrap_or_default();
                    if self.host(f, d, &hf, &fp, session)? {
                        verified.push(host.clone());
                    } else {
                        stopped = Some(host.clone());
                        break;
                    }
                }
                if verified.is_empty() {
                    continue;
                }
                let passed = self.retry(&verified, playbook, extra, session)?;
                for h in &verified {
                    let r = self.report.host(h);
                    if passed.contains(h) {
                        r.outcome = Outcome::Healed;
                        r.reason = "fixed, verified, and the task passed when retried".into();
                        eprintln!("pipeguard: {h}: healed (fixed, verified, retried)");
                        let os = r.facts.os_family.clone().unwrap_or_default();
                        let fix = LearnedFix::from_report(&fp, &os, r);
                        self.learn(fix, h);
                        healed.insert(h.clone());
                    } else {
                        r.outcome = Outcome::Escalated;
                        r.reason = "the fix verified but the task still fails".into();
                        let (_, d) = group.iter().find(|(f, _)| &f.host == h).expect("in group");
                        escalate(session, d, r.reason.clone());
                        stopped.get_or_insert(h.clone());
                    }
                }
            }
            if let Some(at) = stopped {
                let rest: Vec<_> = group
                    .iter()
                    .filter(|(f, _)| !self.report.hosts.contains_key(&f.host))
                    .collect();
                for (f, d) in rest {
                    let why = format!("left untouched: the same failure was not healed on {at}");
                    eprintln!("pipeguard: {}: {why}", f.host);
                    let r = self.report.host(&f.host);
                    r.task = f.task.clone();
                    r.facts = facts.get(&f.host).cloned().unwrap_or_default();
                    r.outcome = Outcome::Untouched;
                    r.reason = why.clone();
                    escalate(session, d, why);
                }
            }
        }
        Ok(healed)
    }

    /// Keep what healed, in memory and in the hosts database; a database problem never
    /// fails the run.
    fn learn(&mut self, fix: LearnedFix, host: &str) {
        self.learned.record(fix.clone());
        let Some(store) = &self.store else { return };
        let row = pipeguard_server::adhoc::learned_row(fix, host);
        if let Err(e) = self.rt.block_on(store.record_host_fix(&row)) {
            eprintln!("pipeguard: warning: the heal was not learned: {e}");
        }
    }

    /// The playbook again on the verified hosts.
    fn retry(
        &mut self,
        hosts: &[String],
        playbook: &Path,
        extra: &[String],
        session: &mut Session,
    ) -> Result<BTreeSet<String>> {
        let limit = hosts.join(",");
        eprintln!("pipeguard: retry after verified fix: --limit {limit}");
        self.adhoc_runs += 1;
        let events = self
            .dir
            .join(format!("loop-retry-{}.jsonl", self.adhoc_runs));
        let t0 = Instant::now();
        let out = self.ansible.run(playbook, Some(&limit), extra, &events)?;
        let failed: BTreeSet<String> = out.events.failures().into_iter().map(|f| f.host).collect();
        session.runs.push(RunRecord::of(
            "playbook", playbook, &limit, &out, t0, &events,
        ));
        Ok(hosts
            .iter()
            .filter(|h| !failed.contains(*h) && (out.code == 0 || !failed.is_empty()))
            .cloned()
            .collect())
    }

    fn ask(
        &self,
        analyst: &Analyst,
        f: &TaskFailure,
        facts: &HostFacts,
        fp: &str,
        diagnostics: Vec<String>,
    ) -> Explanation {
        let ctx = Context {
            evidence: f
                .text()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| Evidence {
                    line: i + 1,
                    text: l.to_string(),
                })
                .collect(),
            platform: "ansible".into(),
            job: f.playbook.clone(),
            step: f.task.clone(),
            host: pipeguard_server::adhoc::analyst_facts(facts),
            rules_category: Category::Unknown,
            earlier_fixes: self
                .learned
                .offers(fp, facts.os_family.as_deref().unwrap_or_default()),
            diagnostics,
            ..Context::default()
        };
        // No fingerprint: each host and round is asked afresh (outputs differ per host).
        self.rt.block_on(analyst.explain("", &ctx))
    }

    /// Diagnose, fix, verify (and roll back) one host; true when verified.
    fn host(
        &mut self,
        f: &TaskFailure,
        d: &Decision,
        facts: &HostFacts,
        fp: &str,
        session: &mut Session,
    ) -> Result<bool> {
        let host = f.host.clone();
        {
            let r = self.report.host(&host);
            r.task = f.task.clone();
            r.facts = facts.clone();
            r.diagnosis = Diagnosis {
                category: d.kind.clone(),
                source: "rules".into(),
                reason: d.reason.clone(),
                fingerprint: fp.to_string(),
            };
        }
        // Taken out while asked, so that the loop can be borrowed to run commands.
        let Some(analyst) = self.analyst.take() else {
            return self.replay(f, d, facts, fp, session);
        };
        let healed = self.consult(&analyst, f, d, facts, fp, session);
        self.analyst = Some(analyst);
        healed
    }

    /// The model's loop: ask, run the diagnostics, ask again with their output, then apply.
    fn consult(
        &mut self,
        analyst: &Analyst,
        f: &TaskFailure,
        d: &Decision,
        facts: &HostFacts,
        fp: &str,
        session: &mut Session,
    ) -> Result<bool> {
        let host = f.host.clone();
        eprintln!(
            "pipeguard: {host}: task {:?} failed ({}); asking {}",
            f.task,
            d.kind,
            analyst.source()
        );
        let mut e = self.ask(analyst, f, facts, fp, vec![]);
        if !e.is_usable() {
            return self.give_up(
                session,
                d,
                format!(
                    "{}; the model gave no usable answer ({})",
                    d.reason, e.reason
                ),
            );
        }
        self.set_diagnosis(&host, &e, fp);
        let diags = self.run_list(&host, Purpose::Diagnostic, &e, facts, f.with_become)?;
        if !diags.is_empty() {
            let second = self.ask(analyst, f, facts, fp, diags);
            match pipeguard_server::adhoc::second_round(&e, second) {
                Ok(second) => {
                    e = second;
                    self.set_diagnosis(&host, &e, fp);
                }
                Err(why) => eprintln!(
                    "pipeguard: {host}: second round unusable ({why}); the first answer stands"
                ),
            }
        }
        let p = pipeguard_server::adhoc::proposal(&e);
        let steps = Steps {
            fixes: p.fixes,
            verification: p.verification,
            rollback: p.rollback,
        };
        if steps.fixes.is_empty() {
            return self.give_up(session, d, "the model proposed no fix".into());
        }
        self.apply(f, d, facts, &steps, session)
    }

    /// Without a model: what healed this failure on this OS family before, gated and
    /// verified again like the model's proposal (nothing learned to roll back with).
    fn replay(
        &mut self,
        f: &TaskFailure,
        d: &Decision,
        facts: &HostFacts,
        fp: &str,
        session: &mut Session,
    ) -> Result<bool> {
        let os = facts.os_family.clone().unwrap_or_default();
        let Some(known) = self.learned.replay(fp, &os).cloned() else {
            return self.give_up(
                session,
                d,
                format!(
                    "{}; nothing healed it before on a {os} host and no model is configured",
                    d.reason
                ),
            );
        };
        let r = self.report.host(&f.host);
        r.diagnosis.source = "learned".into();
        r.diagnosis.reason = format!(
            "healed {} time(s) before on {os} hosts by [{}]",
            known.healed,
            known.fixes.join("; ")
        );
        eprintln!(
            "pipeguard: {}: {}; replaying it",
            f.host, r.diagnosis.reason
        );
        let steps = Steps {
            fixes: known.fixes,
            verification: known.verification,
            rollback: vec![],
        };
        self.apply(f, d, facts, &steps, session)
    }

    /// Fix (every fix allowed before any runs), verify, and roll back when that fails;
    /// true when verified.
    fn apply(
        &mut self,
        f: &TaskFailure,
        d: &Decision,
        facts: &HostFacts,
        steps: &Steps,
        session: &mut Session,
    ) -> Result<bool> {
        let host = f.host.clone();
        let fixes = &steps.fixes;
        for c in fixes {
            if let Some(why) = self.blocked(Purpose::Fix, c, facts) {
                self.record_not_run(&host, Purpose::Fix, fixes, facts);
                return self.give_up(session, d, format!("the fix `{c}` was not run: {why}"));
            }
        }
        let ran = self.run_all(&host, Purpose::Fix, fixes, facts, f.with_become)?;
        let verifies = &steps.verification;
        let verified = ran
            && !verifies.is_empty()
            && verifies
                .iter()
                .all(|c| self.blocked(Purpose::Verify, c, facts).is_none())
            && self.run_all(&host, Purpose::Verify, verifies, facts, f.with_become)?;
        if verified {
            return Ok(true);
        }
        let rollbacks = &steps.rollback;
        let mut allowed = vec![];
        for c in rollbacks.iter().cloned() {
            if self.blocked(Purpose::Rollback, &c, facts).is_some() {
                self.record_not_run(&host, Purpose::Rollback, std::slice::from_ref(&c), facts);
            } else {
                allowed.push(c);
            }
        }
        let rolled_back = !allowed.is_empty()
            && allowed.len() == rollbacks.len()
            && self.run_all(&host, Purpose::Rollback, &allowed, facts, f.with_become)?;
        let what = if !ran {
            "a fix failed"
        } else if verifies.is_empty() {
            "the model proposed no verification"
        } else {
            "the verification failed"
        };
        let rb = if rolled_back {
            "rolled back"
        } else {
            "NOT fully rolled back (see the report)"
        };
        self.give_up(session, d, format!("{what}; {rb}"))
    }

    fn set_diagnosis(&mut self, host: &str, e: &Explanation, fp: &str) {
        let a = e.answer.as_ref().expect("usable");
        self.report.host(host).diagnosis = Diagnosis {
            category: a.category.to_string(),
            source: "model".into(),
            reason: a.root_cause.clone(),
            fingerprint: fp.to_string(),
        };
        eprintln!(
            "pipeguard: {host}: {} says {} ({:.2}): {}",
            e.source, a.category, a.confidence, a.root_cause
        );
    }

    fn give_up(&mut self, session: &mut Session, d: &Decision, why: String) -> Result<bool> {
        let r = self.report.host(&d.host);
        r.outcome = Outcome::Escalated;
        r.reason = why.clone();
        escalate(session, d, why);
        Ok(false)
    }

    /// Why a command may not run (refused, or medium and not approved), or `None`.
    fn blocked(&self, p: Purpose, c: &str, facts: &HostFacts) -> Option<String> {
        match gate(p, c, assess_script(c).level, facts) {
            Gate::Run => None,
            Gate::Refuse(why) => Some(why),
            Gate::NeedsApproval if self.approve_medium => None,
            Gate::NeedsApproval => {
                let q = format!("pipeguard: run the medium-risk {} `{c}`?", name(p));
                (!confirm(&q)).then(|| "medium risk and not approved (use --approve-medium)".into())
            }
        }
    }

    /// Record commands that will not run, with the gate's reason.
    fn record_not_run(&mut self, host: &str, p: Purpose, cmds: &[String], facts: &HostFacts) {
        for c in cmds {
            let risk = assess_script(c).level;
            let note = match gate(p, c, risk, facts) {
                Gate::Refuse(why) => why,
                Gate::NeedsApproval if !self.approve_medium => {
                    "medium risk and not approved (use --approve-medium)".into()
                }
                _ => "another command of the same step may not run".into(),
            };
            eprintln!(
                "pipeguard: {host}: {} [{}] {c} — not run: {note}",
                name(p),
                risk_name(risk)
            );
            self.report.host(host).list(p).push(Ran {
                command: c.clone(),
                risk: risk_name(risk).into(),
                note,
                ..Ran::default()
            });
        }
    }

    /// Run the diagnostics the gate allows; returns their outputs for the second round.
    fn run_list(
        &mut self,
        host: &str,
        p: Purpose,
        e: &Explanation,
        facts: &HostFacts,
        become_: bool,
    ) -> Result<Vec<String>> {
        let mut out = vec![];
        for c in pipeguard_server::adhoc::proposal(e).diagnostics {
            if self.blocked(p, &c, facts).is_some() {
                self.record_not_run(host, p, std::slice::from_ref(&c), facts);
                continue;
            }
            let r = self.run_one(host, p, &c, become_)?;
            out.extend(pipeguard_ansible::hostloop::diagnostic_outputs(&[r]));
        }
        Ok(out)
    }

    /// Run each command in order, stopping at the first that fails; true when all passed.
    fn run_all(
        &mut self,
        host: &str,
        p: Purpose,
        cmds: &[String],
        _facts: &HostFacts,
        become_: bool,
    ) -> Result<bool> {
        for c in cmds {
            if !self.run_one(host, p, c, become_)?.ok() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn run_one(&mut self, host: &str, p: Purpose, c: &str, become_: bool) -> Result<Ran> {
        self.adhoc_runs += 1;
        let tree = self.dir.join(format!("adhoc-{}", self.adhoc_runs));
        let (code, output) = self
            .ansible
            .adhoc(host, c, become_, &tree, &self.redactor, None)?;
        let risk = risk_name(assess_script(c).level);
        eprintln!("pipeguard: {host}: {} [{risk}] {c} → exit {code}", name(p));
        for l in output.lines().take(3) {
            eprintln!("pipeguard:   | {l}");
        }
        let r = Ran {
            command: c.to_string(),
            risk: risk.into(),
            ran: true,
            exit_code: Some(code),
            output,
            note: String::new(),
        };
        self.report.host(host).list(p).push(r.clone());
        Ok(r)
    }
}

/// The commands of one heal, in the order they run.
struct Steps {
    fixes: Vec<String>,
    verification: Vec<String>,
    rollback: Vec<String>,
}

/// The hosts database and what it learned; without it (unreachable, say) nothing is
/// learned and the run goes on.
fn learned_from(rt: &tokio::runtime::Runtime, url: &str) -> (Option<Store>, Learned) {
    let loaded = rt.block_on(async {
        let store = Store::connect(url).await?;
        let rows = store.list_host_fixes().await?;
        Ok::<_, pipeguard_store::StoreError>((store, rows))
    });
    match loaded {
        Ok((store, rows)) => (Some(store), pipeguard_server::adhoc::learned(rows)),
        Err(e) => {
            eprintln!("pipeguard: warning: learned heals not read from {url}: {e}");
            (None, Learned::default())
        }
    }
}

fn name(p: Purpose) -> &'static str {
    pipeguard_ansible::hostloop::purpose_name(p)
}

impl Ansible {
    /// One command on one host through the shared ad-hoc executor, redacted and bounded.
    /// `connection` is the play's `connection:`, which the healing playbook's plays carry too.
    pub(super) fn adhoc(
        &self,
        host: &str,
        script: &str,
        become_: bool,
        tree: &Path,
        redactor: &Redactor,
        connection: Option<&str>,
    ) -> Result<(i32, String)> {
        let mut connection_args = self.connection_args.clone();
        // Last, as a play's keyword overrides the command line's `-c`.
        if let Some(c) = connection {
            connection_args.extend(["-c".to_string(), c.to_string()]);
        }
        let a = Adhoc {
            connection_args,
            python: self.python.clone(),
            redactor: redactor.clone(),
            ..Adhoc::new(self.bin.with_file_name("ansible"), self.inventory.clone())
        };
        a.run(host, script, become_, tree)
            .context("running ansible (ad-hoc)")
    }
}
