//! The learned classifier, trained from human verdicts; `pipeguard_core::heal::refine` uses it
//! where the knowledge base is not confident.

use crate::Shared;
use pipeguard_core::classifier::Classifier;
use pipeguard_core::Category;
use serde_json::Value;

/// Verdicts the classifier trains on, newest first.
pub const TRAINING_LIMIT: i64 = 5000;

/// The text a stored diagnosis (JSON) is classified by: its evidence lines, as
/// `pipeguard_core::heal::evidence_text` joins them.
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
