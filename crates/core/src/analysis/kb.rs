//! The knowledge base: signatures as data (built-in `kb.toml` plus the user's), compiled into
//! one prefilter regex for the hot loop and a `RegexSet` that names the signatures of a line.

use crate::category::Category;
use crate::policy::Strategy;
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

/// The built-in knowledge base, compiled into the binary.
pub const BUILTIN_KB: &str = include_str!("kb.toml");

/// What a signature's match means for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigKind {
    /// The line names a cause.
    #[default]
    Cause,
    /// The job's terminal failure line; anchors "the end" of the failing step.
    Exit,
    /// A failing test; the `test` group (or `test2`, `test3`) is its name.
    Test,
    /// A retried or harmless line: suppresses every other match on the same line.
    Noise,
    /// An error-looking line that only helps to place evidence.
    Hint,
}

/// One signature, as written in `kb.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub id: String,
    pub category: Category,
    pub pattern: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub kind: SigKind,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub ecosystem: String,
    #[serde(default)]
    pub examples: Vec<String>,
    /// Added by the user's configuration (takes precedence over built-ins).
    #[serde(default, skip_deserializing)]
    pub user: bool,
}

fn default_weight() -> f64 {
    0.6
}

/// A signature from the user's configuration (`[[signatures]]` tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSignature {
    #[serde(default)]
    pub id: Option<String>,
    pub pattern: String,
    pub category: Category,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    #[serde(default)]
    pub description: Option<String>,
    /// How decisive a match is (0..1); user signatures default to 0.95.
    #[serde(default)]
    pub weight: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("knowledge base is not valid TOML: {}", .0.message())]
    Toml(#[from] toml::de::Error),
    #[error("signature {id}: invalid pattern: {source}")]
    Pattern {
        id: String,
        #[source]
        source: regex::Error,
    },
    #[error("signature {0}: weight must be between 0 and 1")]
    Weight(String),
    #[error("signature {0}: pattern is empty")]
    Empty(String),
    #[error("duplicate signature id {0}")]
    Duplicate(String),
}

#[derive(Deserialize)]
struct KbFile {
    #[serde(default)]
    signature: Vec<Signature>,
}

/// Parse a knowledge-base TOML document (`[[signature]]` tables).
pub fn parse_kb(text: &str) -> Result<Vec<Signature>, KbError> {
    let f: KbFile = toml::from_str(text)?;
    Ok(f.signature)
}

impl UserSignature {
    fn into_signature(self, n: usize) -> Signature {
        Signature {
            id: self.id.unwrap_or_else(|| format!("user-{}", n + 1)),
            category: self.category,
            pattern: self.pattern,
            weight: self.weight.unwrap_or(0.95),
            kind: SigKind::Cause,
            strategy: self.strategy,
            description: self.description.unwrap_or_default(),
            ecosystem: "user".into(),
            examples: vec![],
            user: true,
        }
    }
}

/// Signatures compiled for matching.
pub struct CompiledKb {
    pub sigs: Vec<Signature>,
    /// Union of all patterns (anchors relaxed): finds candidate lines in bulk.
    pub prefilter: Regex,
    /// Names the signatures matching one cleaned line.
    pub set: RegexSet,
    /// Per-signature regexes, only for kinds that capture (test names, exit codes).
    pub captures: Vec<Option<Regex>>,
}

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(64 << 20)
        .dfa_size_limit(64 << 20)
        .build()
}

/// Relax a line pattern for the chunk prefilter: `^`/`$` become no-ops, so the prefilter finds
/// a superset of the lines the exact set matches (the exact check runs on the cleaned line, where
/// timestamps and section markers are gone).
fn relax(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            out.push_str(&pattern[i..i + 2]);
            i += 2;
            continue;
        }
        if !in_class && pattern[i..].starts_with("(?P<") {
            // Named groups would clash in the union; the prefilter needs no captures.
            if let Some(end) = pattern[i..].find('>') {
                out.push_str("(?:");
                i += end + 1;
                continue;
            }
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
        } else if c == b'[' {
            in_class = true;
        } else if c == b'^' || c == b'$' {
            i += 1;
            continue;
        }
        // Push whole UTF-8 characters.
        let ch = pattern[i..].chars().next().expect("char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl CompiledKb {
    /// Compile user signatures (first, so they take precedence) and built-ins.
    pub fn compile(builtin: Vec<Signature>, user: Vec<UserSignature>) -> Result<CompiledKb, KbError> {
        let mut sigs: Vec<Signature> = user
            .into_iter()
            .enumerate()
            .map(|(n, u)| u.into_signature(n))
            .collect();
        sigs.extend(builtin);
        let mut seen = std::collections::HashSet::new();
        for s in &sigs {
            if s.pattern.trim().is_empty() {
                return Err(KbError::Empty(s.id.clone()));
            }
            if !(0.0..=1.0).contains(&s.weight) {
                return Err(KbError::Weight(s.id.clone()));
            }
            if !seen.insert(s.id.clone()) {
                return Err(KbError::Duplicate(s.id.clone()));
            }
            build(&s.pattern).map_err(|e| KbError::Pattern {
                id: s.id.clone(),
                source: e,
            })?;
        }
        let union = sigs
            .iter()
            .map(|s| format!("(?:{})", relax(&s.pattern)))
            .collect::<Vec<_>>()
            .join("|");
        let prefilter = build(&union).map_err(|e| KbError::Pattern {
            id: "prefilter".into(),
            source: e,
        })?;
        let set = RegexSetBuilder::new(sigs.iter().map(|s| s.pattern.as_str()))
            .unicode(false)
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| KbError::Pattern {
                id: "set".into(),
                source: e,
            })?;
        let captures = sigs
            .iter()
            .map(|s| match s.kind {
                SigKind::Test | SigKind::Exit => build(&s.pattern).ok(),
                _ => None,
            })
            .collect();
        Ok(CompiledKb {
            sigs,
            prefilter,
            set,
            captures,
        })
    }

    /// The test name or exit code a capturing signature extracts from a line.
    pub fn capture(&self, sig: usize, line: &str) -> Option<String> {
        let re = self.captures.get(sig)?.as_ref()?;
        let caps = re.captures(line.as_bytes())?;
        let names: &[&str] = match self.sigs[sig].kind {
            SigKind::Test => &["test", "test2", "test3"],
            SigKind::Exit => &["code"],
            _ => &[],
        };
        names
            .iter()
            .find_map(|n| caps.name(n))
            .map(|m| String::from_utf8_lossy(m.as_bytes()).trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_kb_parses_and_compiles() {
        let sigs = parse_kb(BUILTIN_KB).unwrap();
        assert!(sigs.len() > 100);
        let kb = CompiledKb::compile(sigs, vec![]).unwrap();
        for c in Category::ALL {
            if c == Category::Unknown {
                continue;
            }
            assert!(
                kb.sigs.iter().any(|s| s.category == c),
                "no signature for {c}"
            );
        }
    }

    #[test]
    fn every_example_matches_its_signature_and_the_prefilter() {
        let kb = CompiledKb::compile(parse_kb(BUILTIN_KB).unwrap(), vec![]).unwrap();
        let mut bad = Vec::new();
        for (i, s) in kb.sigs.iter().enumerate() {
            if s.description.is_empty() {
                bad.push(format!("{} has no description", s.id));
            }
            for ex in &s.examples {
                if !kb.set.matches(ex.as_bytes()).matched(i) {
                    bad.push(format!("{} does not match its example {ex:?}", s.id));
                }
                if !kb.prefilter.is_match(ex.as_bytes()) {
                    bad.push(format!("prefilter misses {ex:?}"));
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn relax_drops_anchors_but_not_escapes_or_classes() {
        assert_eq!(relax(r"^error\[E\d+\]: x$"), r"error\[E\d+\]: x");
        assert_eq!(relax(r"[^a]\$"), r"[^a]\$");
        assert_eq!(relax(r"(?i)^FAIL ✕"), r"(?i)FAIL ✕");
        assert_eq!(relax(r"^(?P<test>\S+) x$"), r"(?:\S+) x");
    }

    #[test]
    fn user_signatures_come_first_and_reject_bad_patterns() {
        let user = vec![UserSignature {
            id: None,
            pattern: "flaky widget".into(),
            category: Category::FlakyTest,
            strategy: None,
            description: None,
            weight: None,
        }];
        let kb = CompiledKb::compile(parse_kb(BUILTIN_KB).unwrap(), user).unwrap();
        assert!(kb.sigs[0].user);
        assert_eq!(kb.sigs[0].id, "user-1");
        let bad = vec![UserSignature {
            id: Some("bad".into()),
            pattern: "(".into(),
            category: Category::Network,
            strategy: None,
            description: None,
            weight: None,
        }];
        assert!(CompiledKb::compile(vec![], bad).is_err());
    }
}
