//! When the worker asks the model: the knowledge base and the learned classifier are unsure
//! of a job (`unknown`, or below the repository's `min_confidence`), or the user signature
//! that matched says `explain = true`. One job per analysis is asked about. The model's
//! category replaces the rules' only where they said `unknown`; its proposed commands are
//! shown with the safety gate's verdict, and a fix above low risk makes the plan wait for a
//! person.

use super::platform_of;
use crate::analyst;
use crate::Shared;
use pipeguard_core::heal::{JobDiagnosis, StoredPlan};
use pipeguard_core::policy::Decision;
use pipeguard_core::Diagnosis;
use pipeguard_llm::{Explanation, Purpose};
use pipeguard_platforms::JobLog;
use pipeguard_store::SessionRecord;
use serde_json::Value;

/// What the model said about the session's failure.
pub(super) struct Consulted {
    explanation: Explanation,
    job: String,
    /// Its category replaced the rules' `unknown`.
    decided: bool,
}

/// The logs' text for the model's context; nothing is kept when no model is configured.
pub(super) fn keep_logs(st: &Shared, logs: &[JobLog]) -> Vec<Vec<u8>> {
    if st.analyst.is_none() {
        return Vec::new();
    }
    logs.iter().map(|l| l.log.clone()).collect()
}

/// The matched signature is a user signature with `explain = true`.
fn signature_asks(st: &Shared, d: &Diagnosis) -> bool {
    let Some(id) = d.signature.as_deref() else {
        return false;
    };
    st.config
        .signatures
        .iter()
        .enumerate()
        .any(|(n, u)| u.explain && u.id_at(n) == id)
}

/// Asks the model about the first job the rules are unsure of (or whose signature asks for
/// it); `None` without a model or without such a job. `logs` are in the order of `jobs`.
pub(super) async fn consult(
    st: &Shared,
    s: &SessionRecord,
    jobs: &mut [JobDiagnosis],
    logs: Vec<Vec<u8>>,
) -> Option<Consulted> {
    let model = st.analyst.as_ref()?;
    let min_confidence = st.policy_for(platform_of(s), &s.repository).min_confidence;
    let i = jobs.iter().position(|j| {
        pipeguard_llm::is_unsure(&j.diagnosis, min_confidence) || signature_asks(st, &j.diagnosis)
    })?;
    let j = &mut jobs[i];
    let lines = logs
        .get(i)
        .map(|l| analyst::context_lines(l, &j.diagnosis.evidence))
        .unwrap_or_default();
    let explanation = analyst::ask(st, model, s, &j.diagnosis, Some(&j.job), lines).await;
    let decided = explanation.apply_to(&mut j.diagnosis);
    Some(Consulted {
        explanation,
        job: j.job.name.clone(),
        decided,
    })
}

/// A plan built on the model's reading waits for a person when the model proposes a fix
/// above low risk, whatever the policy says.
pub(super) fn gate(c: Option<&Consulted>, stored: &mut StoredPlan) {
    let Some(c) = c.filter(|c| c.decided) else {
        return;
    };
    let plan = &mut stored.plan;
    if plan.decision != Decision::Act {
        return;
    }
    let risky = c
        .explanation
        .commands
        .iter()
        .find(|p| p.purpose == Purpose::Fix && p.runnable && p.needs_approval);
    if let Some(p) = risky {
        plan.decision = Decision::AwaitApproval;
        plan.reason = format!(
            "{}; the model proposes the fix `{}` ({} risk), so a human must approve",
            plan.reason,
            p.command,
            pipeguard_core::safety::risk_name(p.risk)
        );
    }
}

/// Stores the explanation under `diagnosis.explanation`.
pub(super) fn attach(diagnosis: &mut Value, c: Option<&Consulted>) {
    if let Some(c) = c {
        diagnosis["explanation"] = analyst::stored(&c.explanation, &c.job, c.decided);
    }
}
