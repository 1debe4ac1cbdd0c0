//! When the worker asks the model: the knowledge base and the learned classifier are unsure
//! of a job (`unknown`, or below the repository's `min_confidence`), or the user signature
//! that matched says `explain = true`. One job per analysis is asked about. The model's
//! category replaces the rules' only where they said `unknown`; its proposed commands are
//! shown with the safety gate's verdict; the planner makes a plan on the model's reading wait
//! for a person when it proposes a fix above low risk.

use super::platform_of;
use crate::analyst;
use crate::Shared;
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::planner::ModelVerdict;
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

impl Consulted {
    pub(super) fn explanation(&self) -> &Explanation {
        &self.explanation
    }
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
/// it); `None` without a model or without such a job. `logs` are in the order of `jobs`;
/// `more` is what the host loop knows of the failed host.
pub(super) async fn consult(
    st: &Shared,
    s: &SessionRecord,
    jobs: &mut [JobDiagnosis],
    logs: Vec<Vec<u8>>,
    more: analyst::More,
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
    let explanation =
        analyst::ask_with(st, model, s, &j.diagnosis, Some(&j.job), lines, more).await;
    let decided = explanation.apply_to(&mut j.diagnosis);
    Some(Consulted {
        explanation,
        job: j.job.name.clone(),
        decided,
    })
}

/// The model's verdict as the planner weighs it: whether its reading decided the category,
/// and the first runnable fix it proposes that the safety gate puts above low risk.
pub(super) fn verdict(c: Option<&Consulted>) -> Option<ModelVerdict> {
    let c = c?;
    let risky_fix = c
        .explanation
        .commands
        .iter()
        .find(|p| p.purpose == Purpose::Fix && p.runnable && p.needs_approval)
        .map(|p| (p.command.clone(), p.risk));
    Some(ModelVerdict {
        decided: c.decided,
        risky_fix,
    })
}

/// Stores the explanation under `diagnosis.explanation`.
pub(super) fn attach(diagnosis: &mut Value, c: Option<&Consulted>) {
    if let Some(c) = c {
        diagnosis["explanation"] = analyst::stored(&c.explanation, &c.job, c.decided);
    }
}
