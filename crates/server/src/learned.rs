//! What humans and outcomes taught, applied to fresh diagnoses before the plan is made: the
//! learned classifier (trained from verdicts) where the knowledge base is not confident, then
//! the flaky-test history.

use crate::Shared;
use pipeguard_core::classifier::Classifier;
use pipeguard_core::{Category, Diagnosis, Strategy};
use serde_json::Value;

/// The `analyzer` of a diagnosis the classifier made.
pub const ANALYZER: &str = "learned";
/// Verdicts the classifier trains on, newest first.
pub const TRAINING_LIMIT: i64 = 5000;

/// The text a diagnosis is classified by: its evidence lines. Verdicts store the same text, so
/// the classifier learns and predicts from one kind of input.
pub fn evidence_text(d: &Diagnosis) -> String {
    d.evidence
        .iter()
        .map(|e| e.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same text from a stored diagnosis (JSON).
pub fn evidence_text_json(diagnosis: &Value) -> String {
    diagnosis["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A classifier trained on the stored verdicts.
pub async fn trained(st: &Shared) -> pipeguard_store::Result<Classifier> {
    let mut c = Classifier::new();
    for v in st.store.verdicts(TRAINING_LIMIT).await? {
        if let Ok(category) = v.category.parse::<Category>() {
            c.train(&v.evidence, category);
        }
    }
    Ok(c)
}

/// Refines each job's diagnosis in place. Errors are logged and the diagnoses left as the
/// knowledge base made them: learning must never stop healing.
pub async fn refine<'a>(
    st: &Shared,
    repository: &str,
    diagnoses: impl Iterator<Item = &'a mut Diagnosis>,
) {
    let mut diagnoses: Vec<&mut Diagnosis> = diagnoses.collect();
    let unsure =
        |d: &Diagnosis| d.category == Category::Unknown || d.confidence < st.policy.min_confidence;
    if diagnoses.iter().any(|d| unsure(d)) {
        match trained(st).await {
            Ok(model) if model.examples() > 0 => {
                for d in diagnoses.iter_mut().filter(|d| unsure(d)) {
                    classify(&model, d);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("learned classifier unavailable: {e}"),
        }
    }
    for d in diagnoses {
        if let Err(e) = crate::flaky::apply_known_flaky(st, repository, d).await {
            tracing::warn!("flaky-test history unavailable: {e}");
        }
    }
}

fn classify(model: &Classifier, d: &mut Diagnosis) {
    let Some(p) = model.classify(&evidence_text(d)) else {
        return;
    };
    if p.category == d.category && d.confidence >= p.posterior {
        return;
    }
    d.summary = format!(
        "learned from {} human verdicts: {} (posterior {:.2}; the knowledge base said {} at {:.2})",
        p.examples, p.category, p.posterior, d.category, d.confidence
    );
    d.category = p.category;
    d.transient = p.category.is_transient();
    d.strategy = Strategy::default_for(p.category);
    d.confidence = p.posterior;
    d.analyzer = ANALYZER.to_string();
}
