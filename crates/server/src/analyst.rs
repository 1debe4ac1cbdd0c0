//! The optional model on the server: what it is told about a session (evidence, job, host
//! facts, what was tried, what healed before), the record of what was sent, the explanation
//! as stored with the diagnosis, its counters in `/metrics` and its lines in notifications.
//! Without a configured model none of this runs.

use crate::Shared;
use pipeguard_core::{Diagnosis, Evidence};
use pipeguard_llm::{Analyst, Context, Explanation, HostFacts};
use pipeguard_store::SessionRecord;
use serde_json::{json, Value};

/// Lines of the log's end sent besides the evidence (the prompt's token limit still applies).
const TAIL_LINES: usize = 60;
/// Lines around each evidence line.
const AROUND: usize = 3;

/// The log lines sent with the evidence: a few around each evidence line, and the log's end
/// (where a failing step stops). Numbered from 1 as the analyzer numbers them.
pub fn context_lines(log: &[u8], evidence: &[Evidence]) -> Vec<Evidence> {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let near = |n: usize| {
        evidence
            .iter()
            .any(|e| n + AROUND >= e.line && n <= e.line + AROUND)
    };
    let tail_from = lines.len().saturating_sub(TAIL_LINES) + 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(n, l)| (*n >= tail_from || near(*n)) && !l.trim().is_empty())
        .map(|(n, l)| Evidence {
            line: n,
            text: l.to_string(),
        })
        .collect()
}

/// What the failure's host is, from the facts server awareness gathered about it.
async fn host_facts(st: &Shared, s: &SessionRecord) -> HostFacts {
    let Some(name) = s.event.target_hosts.first() else {
        return HostFacts::default();
    };
    let hosts = st
        .store
        .list_hosts()
        .await
        .inspect_err(|e| tracing::warn!("host facts unavailable: {e}"))
        .unwrap_or_default();
    let Some(h) = hosts.into_iter().find(|h| &h.name == name) else {
        return HostFacts::default();
    };
    let os = match (&h.distribution, &h.distribution_version) {
        (Some(d), Some(v)) => Some(format!("{d} {v}")),
        (Some(d), None) => Some(d.clone()),
        _ => h.os_family.clone(),
    };
    HostFacts {
        os,
        package_manager: h.pkg_mgr,
        service_manager: h.service_mgr,
    }
}

/// What pipeguard already did for this session: its platform calls and commands.
async fn tried(st: &Shared, s: &SessionRecord) -> Vec<String> {
    let actions = st.store.actions(&s.id).await.unwrap_or_default();
    actions
        .into_iter()
        .map(|a| {
            let detail = a.detail.map(|d| format!(": {d}")).unwrap_or_default();
            format!(
                "attempt {}: {} {} ({}){detail}",
                a.attempt, a.kind, a.target, a.status
            )
        })
        .collect()
}

/// The strategies that healed this fingerprint before, with their record.
async fn earlier_fixes(st: &Shared, s: &SessionRecord, d: &Diagnosis) -> Vec<String> {
    let learned = st
        .store
        .learned(
            &d.fingerprint,
            &s.platform,
            &s.repository,
            &d.category.to_string(),
        )
        .await
        .unwrap_or_default();
    learned
        .into_iter()
        .filter(|(_, l)| l.fingerprint.healed > 0)
        .map(|(strategy, l)| {
            format!(
                "{strategy} healed {} of {} earlier failures with this fingerprint",
                l.fingerprint.healed,
                l.fingerprint.trials()
            )
        })
        .collect()
}

/// Asks the model about one job's diagnosis of a session. Never fails: what went wrong is the
/// explanation's outcome and reason. The exact prompt sent goes to the audit trail.
pub async fn ask(
    st: &Shared,
    analyst: &Analyst,
    s: &SessionRecord,
    d: &Diagnosis,
    job: Option<&pipeguard_core::event::FailedJob>,
    context_lines: Vec<Evidence>,
) -> Explanation {
    ask_with(st, analyst, s, d, job, context_lines, More::default()).await
}

/// What the host loop tells the model besides the session.
#[derive(Debug, Default)]
pub struct More {
    /// The host's facts (else those the hosts database knows).
    pub host: Option<HostFacts>,
    /// The diagnostics' redacted output, for a second round.
    pub diagnostics: Vec<String>,
    /// Asked afresh, never answered from the cache (the outputs differ per host and round).
    pub fresh: bool,
    /// What healed the same failure on hosts of the same OS family.
    pub offers: Vec<String>,
}

/// [`ask`] with what the host loop knows.
pub async fn ask_with(
    st: &Shared,
    analyst: &Analyst,
    s: &SessionRecord,
    d: &Diagnosis,
    job: Option<&pipeguard_core::event::FailedJob>,
    context_lines: Vec<Evidence>,
    more: More,
) -> Explanation {
    let mut ctx = Context::from_diagnosis(d);
    ctx.context_lines = context_lines;
    ctx.platform = s.platform.clone();
    ctx.repository = s.repository.clone();
    ctx.workflow = s.workflow.clone();
    if let Some(j) = job {
        ctx.job = j.name.clone();
        ctx.step = j.stage.clone().unwrap_or_default();
    }
    ctx.host = match more.host {
        Some(h) => h,
        None => host_facts(st, s).await,
    };
    ctx.tried = tried(st, s).await;
    ctx.earlier_fixes = earlier_fixes(st, s, d).await;
    ctx.earlier_fixes.extend(more.offers);
    ctx.diagnostics = more.diagnostics;
    let fingerprint = if more.fresh { "" } else { &d.fingerprint };
    let e = analyst.explain(fingerprint, &ctx).await;
    if !e.prompt.is_empty() {
        let detail = json!({"source": e.source, "outcome": e.outcome, "reason": e.reason,
                            "tokens": e.tokens, "prompt": e.prompt});
        crate::audit::record(st, "pipeguard", "llm.prompt", &s.id, detail).await;
    }
    e
}

/// The explanation as stored under `diagnosis.explanation`: the analyst's record, the job it
/// is about, and whether its category replaced the rules' `unknown`.
pub fn stored(e: &Explanation, job: &str, decided: bool) -> Value {
    let mut v = json!(e);
    v["job"] = json!(job);
    v["decided"] = json!(decided);
    v
}

/// A session's stored explanation.
pub fn of_session(s: &SessionRecord) -> Option<Explanation> {
    let v = s.diagnosis.as_ref()?.get("explanation")?;
    serde_json::from_value(v.clone()).ok()
}

/// For escalation notifications: the model's root cause and the safe next steps, when the
/// session has a usable explanation.
pub fn notification_text(s: &SessionRecord) -> Option<String> {
    of_session(s)?.notification_text()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// `pipeguard_llm_requests_total{outcome}` and `pipeguard_llm_tokens_total`, when a model is
/// configured.
pub fn register_metrics(st: &Shared, reg: &mut prometheus_client::registry::Registry) {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    let Some(a) = &st.analyst else {
        return;
    };
    let m = a.metrics();
    let requests = Family::<OutcomeLabels, Counter>::default();
    for (outcome, n) in &m.requests {
        requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().into(),
            })
            .inc_by(*n);
    }
    reg.register(
        "pipeguard_llm_requests",
        "Explanations asked of the model, by outcome",
        requests,
    );
    let tokens: Counter = Counter::default();
    tokens.inc_by(m.tokens);
    reg.register(
        "pipeguard_llm_tokens",
        "Tokens spent on the model (prompt and answer)",
        tokens,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_the_evidence_neighbourhood_and_the_end() {
        let log: String = (1..=200).map(|i| format!("line {i}\n")).collect();
        let ev = [Evidence {
            line: 50,
            text: "line 50".into(),
        }];
        let got: Vec<usize> = context_lines(log.as_bytes(), &ev)
            .iter()
            .map(|e| e.line)
            .collect();
        let mut want: Vec<usize> = (47..=53).collect();
        want.extend(141..=200);
        assert_eq!(got, want);
        for e in context_lines(log.as_bytes(), &ev) {
            assert_eq!(e.text, format!("line {}", e.line));
        }
        assert!(context_lines(b"", &ev).is_empty());
    }
}
