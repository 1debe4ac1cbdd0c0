//! The learned classifier: naive Bayes over normalised log tokens, trained from the categories
//! humans gave sessions whose diagnosis was wrong or unsure. It speaks only where the
//! knowledge base is not confident, so the rules stay the first word and people the last.
//!
//! Tokens are normalised so one lesson generalises: lower-cased words, with numbers, hex ids,
//! paths and URLs dropped (a port, a line number or a temp dir must not tell categories apart).
//! Each document counts a token once (binarised multinomial naive Bayes), which suits short
//! evidence better than raw counts do.

use crate::Category;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Evidence needed before the classifier may name a category: this many human verdicts for it.
pub const MIN_EXAMPLES: u32 = 3;
/// Posterior probability the winning category needs.
pub const MIN_POSTERIOR: f64 = 0.8;
/// Share of the log's tokens the winning category must have seen in training. Without it a
/// model trained on one category would claim every log, since its posterior is always 1.
pub const MIN_OVERLAP: f64 = 0.5;

/// Words every CI log says (English glue, the runner's framing): they tell no category apart
/// and would make any log look familiar.
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "by",
    "code",
    "completed",
    "endgroup",
    "error",
    "exit",
    "for",
    "from",
    "group",
    "in",
    "is",
    "it",
    "of",
    "on",
    "or",
    "process",
    "run",
    "the",
    "this",
    "to",
    "was",
    "with",
];

/// Distinct normalised tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        // Paths and URLs name a machine's layout, not a failure.
        if word.contains('/') || word.contains('\\') {
            continue;
        }
        for t in word
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|t| (2..=40).contains(&t.len()))
        {
            if t.chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            let t = t.to_lowercase();
            if STOPWORDS.contains(&t.as_str()) {
                continue;
            }
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
struct Class {
    docs: u32,
    /// Documents containing each token.
    tokens: HashMap<String, u32>,
    /// Sum of `tokens` values.
    total: u64,
}

/// A trained model. Cheap to rebuild: training is one pass over the examples.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    classes: BTreeMap<Category, Class>,
    vocabulary: HashSet<String>,
    docs: u32,
}

/// The classifier's answer for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub category: Category,
    pub posterior: f64,
    /// Human verdicts of this category the model learned from.
    pub examples: u32,
    /// Share of the text's tokens seen in this category's training examples.
    pub overlap: f64,
}

impl Classifier {
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// Learns that `text` is an example of `category`. `unknown` teaches nothing and is skipped.
    pub fn train(&mut self, text: &str, category: Category) {
        if category == Category::Unknown {
            return;
        }
        let toks = tokens(text);
        if toks.is_empty() {
            return;
        }
        let class = self.classes.entry(category).or_default();
        class.docs += 1;
        for t in toks {
            *class.tokens.entry(t.clone()).or_default() += 1;
            class.total += 1;
            self.vocabulary.insert(t);
        }
        self.docs += 1;
    }

    /// Training examples seen.
    pub fn examples(&self) -> u32 {
        self.docs
    }

    /// The most probable category with its posterior, whatever the thresholds.
    pub fn predict(&self, text: &str) -> Option<Prediction> {
        let toks = tokens(text);
        if toks.is_empty() || self.docs == 0 {
            return None;
        }
        let v = self.vocabulary.len() as f64 + 1.0;
        let scores: Vec<(Category, f64)> = self
            .classes
            .iter()
            .map(|(c, class)| {
                let prior = (class.docs as f64 / self.docs as f64).ln();
                let denom = class.total as f64 + v;
                let likelihood: f64 = toks
                    .iter()
                    .map(|t| {
                        let n = class.tokens.get(t).copied().unwrap_or(0) as f64;
                        ((n + 1.0) / denom).ln()
                    })
                    .sum();
                (*c, prior + likelihood)
            })
            .collect();
        let max = scores
            .iter()
            .map(|(_, s)| *s)
            .fold(f64::NEG_INFINITY, f64::max);
        let norm: f64 = scores.iter().map(|(_, s)| (s - max).exp()).sum();
        let (category, best) = scores.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
        let class = &self.classes[&category];
        let known = toks
            .iter()
            .filter(|t| class.tokens.contains_key(*t))
            .count();
        Some(Prediction {
            category,
            posterior: (best - max).exp() / norm,
            examples: class.docs,
            overlap: known as f64 / toks.len() as f64,
        })
    }

    /// A prediction confident and well-founded enough to act on, or `None`.
    pub fn classify(&self, text: &str) -> Option<Prediction> {
        self.predict(text).filter(|p| {
            p.examples >= MIN_EXAMPLES && p.posterior >= MIN_POSTERIOR && p.overlap >= MIN_OVERLAP
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_drop_numbers_hex_and_paths() {
        let t = tokens(
            "2026-11-23T10:01:31Z ERROR: connect to 10.0.0.7:5432 failed (0xdeadbeef) in /tmp/build-81/x.rs: Broken_Pipe",
        );
        assert_eq!(t, vec!["connect", "failed", "broken_pipe"]);
        assert!(tokens("##[error]Process completed with exit code 1.").is_empty());
    }

    fn trained() -> Classifier {
        let mut c = Classifier::new();
        for host in ["db-1", "db-2", "cache-9"] {
            c.train(
                &format!("frobnicator: upstream {host} went away during handshake (errno 104)"),
                Category::Network,
            );
        }
        for file in ["a", "b", "c"] {
            c.train(
                &format!("schema check: column {file}_id missing from migration manifest"),
                Category::ConfigurationError,
            );
        }
        c
    }

    #[test]
    fn learns_categories_from_examples_and_generalises_over_numbers() {
        let c = trained();
        let p = c
            .classify("frobnicator: upstream db-77 went away during handshake (errno 110)")
            .expect("a confident prediction");
        assert_eq!(p.category, Category::Network);
        assert!(p.posterior >= MIN_POSTERIOR, "{p:?}");
        assert_eq!(p.examples, 3);
        let p = c
            .classify("schema check: column zz_id missing from migration manifest")
            .unwrap();
        assert_eq!(p.category, Category::ConfigurationError);
    }

    #[test]
    fn stays_silent_on_unfamiliar_text_or_too_few_examples() {
        let c = trained();
        assert_eq!(
            c.classify("segmentation fault while linking libfoo with gold"),
            None
        );
        let mut few = Classifier::new();
        few.train("frobnicator went away during handshake", Category::Network);
        few.train("frobnicator went away during handshake", Category::Network);
        assert!(few
            .predict("frobnicator went away during handshake")
            .is_some());
        assert_eq!(few.classify("frobnicator went away during handshake"), None);
    }

    #[test]
    fn unknown_labels_and_empty_texts_teach_nothing() {
        let mut c = Classifier::new();
        c.train("anything at all", Category::Unknown);
        c.train("12345 /a/b/c", Category::Network);
        assert_eq!(c.examples(), 0);
        assert_eq!(c.predict("anything at all"), None);
    }
}
