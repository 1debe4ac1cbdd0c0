//! Log analysis: one streaming pass over a log, a category from the taxonomy, the evidence
//! lines that explain it, the failing tests, and a fingerprint that groups recurring failures.
//!
//! The knowledge base (`kb.toml`) is data: signatures map the tools' own messages to categories.
//! `scan` finds candidate lines at grep speed, `decide` weighs them, `redact` and `fingerprint`
//! make the result safe to store and easy to group.

pub mod baseline;
mod clean;
mod decide;
pub mod eval;
pub mod fingerprint;
pub mod kb;
mod literals;
pub mod redact;
mod scan;
pub mod tests_names;
pub mod tools;

// The modules name the shared taxonomy by its paths in pipeguard-core, where they lived.
use pipeguard_taxonomy::{category, glob};
mod policy {
    pub(crate) use pipeguard_taxonomy::Strategy;
}

use crate::category::Category;
use crate::policy::Strategy;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};

pub use baseline::{Baseline, GreenRun};
pub use clean::strip_ansi;
pub use decide::{ACT_CONFIDENCE, MAX_EVIDENCE};
pub use kb::{KbError, SigKind, Signature, UserSignature, BUILTIN_KB, BUILTIN_STEPS};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// 1-based line number in the log as split on `\n`.
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub category: Category,
    pub confidence: f64,
    /// True when the default policy would retry or heal rather than escalate.
    pub transient: bool,
    pub evidence: Vec<Evidence>,
    pub fingerprint: String,
    pub strategy: Strategy,
    #[serde(default)]
    pub failing_tests: Vec<String>,
    /// Which analyzer decided: `rules`, `learned`, `llm`.
    #[serde(default)]
    pub analyzer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default)]
    pub summary: String,
}

/// A diagnosis read against the job's green runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    pub diagnosis: Diagnosis,
    /// For each evidence line, whether no green run printed it (`None`: no baseline).
    pub evidence_new: Option<Vec<bool>>,
    /// Lines before the failure, in the failing step, that no green run printed.
    pub new_lines: usize,
    /// The green runs compared with, newest first.
    pub green_runs: Vec<String>,
}

/// Extra facts beside the log that sharpen a diagnosis.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub exit_code: Option<i32>,
    /// The platform's own failure reason (GitLab `failure_reason`, a Jenkins status…).
    pub platform_reason: Option<String>,
}

/// One signature's match on one line, for `pipeguard signatures test`.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureHit {
    pub line: usize,
    pub signature: String,
    pub category: Category,
    pub kind: SigKind,
    pub weight: f64,
    pub text: String,
}

/// The rule-based analyzer. Cheap to share: compile once, analyze many logs.
pub struct Analyzer {
    kb: kb::CompiledKb,
}

impl Analyzer {
    /// The built-in knowledge base.
    pub fn builtin() -> Analyzer {
        Self::with_user_signatures(Vec::new()).expect("the built-in knowledge base compiles")
    }

    /// The built-in knowledge base plus the user's signatures, which take precedence.
    pub fn with_user_signatures(user: Vec<UserSignature>) -> Result<Analyzer, KbError> {
        let builtin = kb::builtin_signatures()?;
        Ok(Analyzer {
            kb: kb::CompiledKb::compile(builtin, user)?,
        })
    }

    /// All signatures, user ones first.
    pub fn signatures(&self) -> &[Signature] {
        &self.kb.sigs
    }

    pub fn analyze(&self, log: &[u8]) -> Diagnosis {
        self.analyze_with(log, &Hints::default())
    }

    pub fn analyze_with(&self, log: &[u8], hints: &Hints) -> Diagnosis {
        self.analyze_reader_with(log, hints)
            .expect("reading from memory cannot fail")
    }

    /// Streaming analysis with bounded memory: the log is read in chunks, never whole.
    pub fn analyze_reader<R: Read>(&self, r: R) -> io::Result<Diagnosis> {
        self.analyze_reader_with(r, &Hints::default())
    }

    pub fn analyze_reader_with<R: Read>(&self, r: R, hints: &Hints) -> io::Result<Diagnosis> {
        self.analyze_reader_progress(r, hints, |_| {})
    }

    /// As `analyze_reader_with`, calling `progress` with the bytes read so far.
    pub fn analyze_reader_progress<R: Read>(
        &self,
        r: R,
        hints: &Hints,
        progress: impl FnMut(u64),
    ) -> io::Result<Diagnosis> {
        let scan = scan::Scanner::new(&self.kb).run(r, progress)?;
        Ok(decide::decide(&self.kb, &scan, hints, "rules"))
    }

    /// Analysis read against the job's green runs: lines every green run prints weigh little,
    /// evidence prefers what the failure added, and each evidence line says whether it is new.
    /// With an empty baseline this is `analyze_reader_progress`.
    pub fn analyze_against<R: Read>(
        &self,
        r: R,
        hints: &Hints,
        green: &Baseline,
        progress: impl FnMut(u64),
    ) -> io::Result<Compared> {
        let scan = scan::Scanner::new(&self.kb)
            .with_baseline(Some(green))
            .run(r, progress)?;
        let against = (!green.is_empty()).then_some(green);
        let (diagnosis, new) = decide::decide_against(&self.kb, &scan, hints, "rules", against);
        let added = scan.novel.as_ref().map_or(0, |n| n.count);
        Ok(Compared {
            diagnosis,
            evidence_new: new,
            new_lines: added,
            green_runs: green.runs().iter().map(|r| r.id.clone()).collect(),
        })
    }

    /// Every signature match of a log (first and last ones kept per signature when there are
    /// many), in line order: which signature fired on which line and why.
    pub fn explain<R: Read>(&self, r: R) -> io::Result<Vec<SignatureHit>> {
        let scan = scan::Scanner::new(&self.kb).run(r, |_| {})?;
        let mut seen = std::collections::BTreeMap::new();
        for c in scan
            .first
            .iter()
            .chain(scan.recent.iter())
            .chain(scan.last_per_sig.iter().flatten())
        {
            seen.entry(c.line).or_insert_with(|| c.clone());
        }
        let mut hits = Vec::new();
        for c in seen.values() {
            for &i in &c.sigs {
                let s = &self.kb.sigs[i];
                hits.push(SignatureHit {
                    line: c.line,
                    signature: s.id.clone(),
                    category: s.category,
                    kind: s.kind,
                    weight: s.weight,
                    text: redact::redact(&c.text),
                });
            }
        }
        Ok(hits)
    }

    /// All patterns (for benchmarks against grep).
    pub fn patterns(&self) -> Vec<String> {
        self.kb.sigs.iter().map(|s| s.pattern.clone()).collect()
    }
}
