//! The knowledge base: signatures as data (built-in `kb.toml` plus the user's), compiled into one
//! Aho-Corasick automaton of required literals for the hot loop, and lazily compiled regexes.

use super::literals;
use super::tools::{ToolError, ToolTable};
use crate::category::Category;
use crate::policy::Strategy;
use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_automata::hybrid;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The built-in knowledge base, compiled into the binary.
pub const BUILTIN_KB: &str = include_str!("kb.toml");
/// How each CI runner lays out steps, compiled into the binary.
pub const BUILTIN_STEPS: &str = include_str!("steps.toml");

/// Every built-in signature: the runners' step layout, then the knowledge base.
pub fn builtin_signatures() -> Result<Vec<Signature>, KbError> {
    let mut sigs = parse_kb(BUILTIN_STEPS)?;
    sigs.extend(parse_kb(BUILTIN_KB)?);
    Ok(sigs)
}

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
    /// A step of the job starts (`$ cmd`, `##[group]Run cmd`, `[Pipeline] sh`); group `cmd`.
    Step,
    /// A command traced inside a step (`+ cmd`); group `cmd`.
    Trace,
    /// A named stage around steps (a Jenkins stage, a Buildkite group); group `cmd`.
    Section,
    /// The current step's output ends.
    End,
    /// The runner's own work after the job's script (after_script, artifacts, cleanup).
    Post,
    /// A tool inside a step names the sub-command, target or task that failed; groups `cmd…`.
    Subtask,
    /// A step's own failure message (GitHub's `##[error]` annotation): when no exit line ever
    /// follows, the first such line's step is the one that failed.
    Annotation,
}

impl SigKind {
    /// Kinds that describe the log's layout rather than a failure.
    pub fn is_layout(self) -> bool {
        matches!(
            self,
            SigKind::Step
                | SigKind::Trace
                | SigKind::Section
                | SigKind::End
                | SigKind::Post
                | SigKind::Subtask
        )
    }
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
    /// A summary that only says a step failed (`could not compile`, `make: *** Error`): when a
    /// specific cause of another kind sits next to it, that cause explains it.
    #[serde(default)]
    pub wrapper: bool,
    /// The details of the failure follow this line (mocha's `N failing`).
    #[serde(default)]
    pub details_after: bool,
    /// Too common to look for on every line (a word such as `error`): checked only on the
    /// lines kept around the failure (the failing step's last lines, the log's tail).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tail_only: bool,
    /// Prefilter strings for a pattern whose own literals are too short; a leading newline
    /// means "at the start of a line" (`"\n$ "`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    /// For a `step`: the step's script follows on the next lines, up to one that starts with
    /// one of these (GitHub prints a multi-line `run:` script whole inside its group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script_until: Vec<String>,
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
    /// Ask the configured model to explain every failure this signature matches, even when
    /// the match is confident (the model's category never replaces the signature's).
    #[serde(default)]
    pub explain: bool,
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
    #[error(transparent)]
    Tools(#[from] ToolError),
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
    /// The id of the `n`th (from 0) user signature: its own, else `user-N`.
    pub fn id_at(&self, n: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("user-{}", n + 1))
    }

    fn into_signature(self, n: usize) -> Signature {
        Signature {
            id: self.id_at(n),
            category: self.category,
            pattern: self.pattern,
            weight: self.weight.unwrap_or(0.95),
            kind: SigKind::Cause,
            strategy: self.strategy,
            description: self.description.unwrap_or_default(),
            ecosystem: "user".into(),
            examples: vec![],
            wrapper: false,
            details_after: false,
            tail_only: false,
            literals: vec![],
            script_until: vec![],
            user: true,
        }
    }
}

/// Signatures compiled for matching.
pub struct CompiledKb {
    pub sigs: Vec<Signature>,
    /// The shortest of the signatures' required literals (one that contains another adds
    /// nothing), ASCII case ignored: finds candidate lines in bulk. A small automaton that is
    /// A lazy DFA: it builds only the states the log's bytes visit, so it is quick to build
    /// and, once warm, scans several times faster than an Aho-Corasick automaton of the same
    /// literals. Should it give up (a pathological log thrashing its cache), an Aho-Corasick
    /// automaton takes over.
    prefilter: hybrid::dfa::DFA,
    /// Warm caches of the lazy DFA, handed from one analysis to the next.
    prefilter_caches: std::sync::Mutex<Vec<hybrid::dfa::Cache>>,
    prefilter_fallback: OnceLock<AhoCorasick>,
    prefilter_lits: Vec<Vec<u8>>,
    /// All required literals: names the signatures a candidate line may match.
    mapper: AhoCorasick,
    /// For each mapper pattern, the signatures that require it.
    lit_sigs: Vec<Vec<usize>>,
    /// Signatures without a usable literal: checked on every line (only user ones, if any).
    pub always: Vec<usize>,
    /// Each signature's regex, compiled on first use (most logs touch few signatures).
    regexes: Vec<OnceLock<Regex>>,
    /// What the failing command's tool says when no signature does.
    pub tools: ToolTable,
}

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(16 << 20)
        .build()
}

/// The prefilter's lazy DFA for the literals (ASCII case ignored), reporting the earliest end
/// of any of them.
fn build_prefilter(lits: &[Vec<u8>]) -> hybrid::dfa::DFA {
    let patterns: Vec<String> = lits
        .iter()
        .map(|l| {
            format!(
                "(?i-u:{})",
                regex_syntax::escape(&String::from_utf8_lossy(l))
            )
        })
        .collect();
    hybrid::dfa::Builder::new()
        .configure(
            hybrid::dfa::Config::new()
                .match_kind(regex_automata::MatchKind::All)
                .cache_capacity(PREFILTER_CACHE)
                .byte_classes(true),
        )
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
        .build_many(&patterns)
        .expect("escaped literals always compile")
}

/// Memory the prefilter's lazy DFA may use for its states (a typical log needs about 1 MB).
const PREFILTER_CACHE: usize = 8 << 20;
/// Warm caches kept for later scans (as many as analyses usually run at once).
const WARM_CACHES: usize = 4;

/// Literals shorter than this make a poor prefilter.
pub const MIN_LITERAL: usize = 3;

impl CompiledKb {
    /// Compile user signatures (first, so they take precedence) and built-ins.
    pub fn compile(
        builtin: Vec<Signature>,
        user: Vec<UserSignature>,
    ) -> Result<CompiledKb, KbError> {
        let mut sigs: Vec<Signature> = user
            .into_iter()
            .enumerate()
            .map(|(n, u)| u.into_signature(n))
            .collect();
        sigs.extend(builtin);
        let mut seen = std::collections::HashSet::new();
        let regexes: Vec<OnceLock<Regex>> = sigs.iter().map(|_| OnceLock::new()).collect();
        let mut lits: Vec<Vec<u8>> = Vec::new();
        let mut lit_index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut lit_sigs: Vec<Vec<usize>> = Vec::new();
        let mut pre_lits: Vec<Vec<u8>> = Vec::new();
        let mut pre_seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let mut always = Vec::new();
        for (i, s) in sigs.iter().enumerate() {
            if s.pattern.trim().is_empty() {
                return Err(KbError::Empty(s.id.clone()));
            }
            if !(0.0..=1.0).contains(&s.weight) {
                return Err(KbError::Weight(s.id.clone()));
            }
            if !seen.insert(s.id.clone()) {
                return Err(KbError::Duplicate(s.id.clone()));
            }
            if s.user {
                // The built-in base is checked by its tests; the user's is checked here.
                let re = build(&s.pattern).map_err(|e| KbError::Pattern {
                    id: s.id.clone(),
                    source: e,
                })?;
                let _ = regexes[i].set(re);
            }
            if s.tail_only {
                continue;
            }
            // Explicit literals serve patterns whose own are too short (`^\$ `); the mapper
            // sees the cleaned line, where a line-start newline is gone.
            let mut explicit: Vec<Vec<u8>> = s
                .literals
                .iter()
                .map(|l| l.to_ascii_lowercase().into_bytes())
                .collect();
            // GitHub and Azure put a timestamp (`…00.0000000Z `) before each line's own start.
            let stamped: Vec<Vec<u8>> = explicit
                .iter()
                .filter_map(|l| {
                    l.strip_prefix(b"\n")
                        .map(|rest| [b"z ".as_slice(), rest].concat())
                })
                .collect();
            explicit.extend(stamped);
            let (pre, map) = if explicit.is_empty() {
                match literals::required_literals(&s.pattern, MIN_LITERAL) {
                    Some(ls) => (ls.clone(), ls),
                    None => {
                        always.push(i);
                        continue;
                    }
                }
            } else {
                let map = explicit
                    .iter()
                    .map(|l| l.trim_ascii().to_vec())
                    .filter(|l| !l.is_empty())
                    .collect();
                (explicit, map)
            };
            for l in pre {
                if pre_seen.insert(l.clone()) {
                    pre_lits.push(l);
                }
            }
            for l in map {
                let k = *lit_index.entry(l.clone()).or_insert_with(|| {
                    lits.push(l);
                    lit_sigs.push(Vec::new());
                    lits.len() - 1
                });
                if !lit_sigs[k].contains(&i) {
                    lit_sigs[k].push(i);
                }
            }
        }
        // A literal containing another is redundant for the prefilter: whatever line holds it
        // holds the shorter one too.
        let all = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pre_lits)
            .expect("literal automaton builds");
        let prefilter_lits: Vec<Vec<u8>> = pre_lits
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                !all.find_overlapping_iter(l.as_slice())
                    .any(|m| m.pattern().as_usize() != *i)
            })
            .map(|(_, l)| l.clone())
            .collect();
        let prefilter = build_prefilter(&prefilter_lits);
        let mapper = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&lits)
            .expect("literal automaton builds");
        Ok(CompiledKb {
            sigs,
            prefilter,
            prefilter_caches: std::sync::Mutex::new(Vec::new()),
            prefilter_fallback: OnceLock::new(),
            prefilter_lits,
            mapper,
            lit_sigs,
            always,
            regexes,
            tools: ToolTable::builtin()?,
        })
    }

    /// The signature's regex (compiled now if it was not yet).
    pub fn regex(&self, sig: usize) -> &Regex {
        self.regexes[sig].get_or_init(|| {
            build(&self.sigs[sig].pattern).expect("signature patterns are validated")
        })
    }

    /// A cache for the prefilter's lazy DFA, one per scan: a warm one left by an earlier scan
    /// when there is one (its states are what the next log needs too).
    pub fn prefilter_cache(&self) -> hybrid::dfa::Cache {
        let warm = self.prefilter_caches.lock().ok().and_then(|mut v| v.pop());
        warm.unwrap_or_else(|| self.prefilter.create_cache())
    }

    /// Give a scan's cache back for the next one.
    pub fn return_cache(&self, cache: hybrid::dfa::Cache) {
        if let Ok(mut v) = self.prefilter_caches.lock() {
            if v.len() < WARM_CACHES {
                v.push(cache);
            }
        }
    }

    /// A position inside the line of the next literal hit in `hay` at or after `from` (for a
    /// line-start literal `"\n$ "`, inside the line it starts).
    pub fn next_hit(
        &self,
        cache: &mut hybrid::dfa::Cache,
        hay: &[u8],
        from: usize,
    ) -> Option<usize> {
        let input = regex_automata::Input::new(hay)
            .range(from..hay.len())
            .earliest(true);
        match self.prefilter.try_search_fwd(cache, &input) {
            // The match's last byte belongs to the line the literal is about.
            Ok(m) => m.map(|m| m.offset() - 1),
            Err(_) => self.next_hit_fallback(hay, from),
        }
    }

    fn next_hit_fallback(&self, hay: &[u8], from: usize) -> Option<usize> {
        let ac = self.prefilter_fallback.get_or_init(|| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(&self.prefilter_lits)
                .expect("literal automaton builds")
        });
        let m = ac.find(Input::new(hay).span(from..hay.len()))?;
        Some(m.end() - 1)
    }

    /// Whether `line` (the first of a chunk, without the newline before it) starts with one of
    /// the line-start literals, which the prefilter cannot see there.
    pub fn line_start_hit(&self, line: &[u8]) -> bool {
        let line = &line[super::clean::timestamp_prefix(line)..];
        self.prefilter_lits.iter().any(|l| {
            l[0] == b'\n'
                && line.len() >= l.len() - 1
                && line[..l.len() - 1].eq_ignore_ascii_case(&l[1..])
        })
    }

    /// The signatures that match a cleaned line, in signature order.
    pub fn matches(&self, line: &[u8], out: &mut Vec<usize>) {
        out.clear();
        for m in self.mapper.find_overlapping_iter(line) {
            for &i in &self.lit_sigs[m.pattern().as_usize()] {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out.extend(self.always.iter().copied());
        out.sort_unstable();
        out.dedup();
        out.retain(|&i| self.regex(i).is_match(line));
    }

    /// The strongest tail-only hint a line matches (0 when none): for lines kept around the
    /// failure, checked after the scan.
    pub fn tail_hint(&self, line: &str) -> f64 {
        self.sigs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tail_only)
            .filter(|(i, _)| self.regex(*i).is_match(line.as_bytes()))
            .map(|(_, s)| s.weight)
            .fold(0.0, f64::max)
    }

    /// The test name, exit code or command a capturing signature extracts from a line.
    pub fn capture(&self, sig: usize, line: &str) -> Option<String> {
        let names: &[&str] = match self.sigs[sig].kind {
            SigKind::Test => &["test", "test2", "test3"],
            SigKind::Exit => &["code"],
            k if k.is_layout() => return self.capture_command(sig, line),
            _ => return None,
        };
        self.capture_named(sig, line, names)
    }

    /// The command a layout signature names: its first matching group called `cmd…`.
    pub fn capture_command(&self, sig: usize, line: &str) -> Option<String> {
        let re = self.regex(sig);
        let caps = re.captures(line.as_bytes())?;
        re.capture_names()
            .enumerate()
            .filter(|(_, n)| n.is_some_and(|n| n.starts_with("cmd")))
            .find_map(|(i, _)| caps.get(i))
            .map(|m| String::from_utf8_lossy(m.as_bytes()).trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The first of the named groups a signature's match on `line` captured.
    pub fn capture_named(&self, sig: usize, line: &str, names: &[&str]) -> Option<String> {
        let caps = self.regex(sig).captures(line.as_bytes())?;
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
        let sigs = builtin_signatures().unwrap();
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
        let kb = CompiledKb::compile(builtin_signatures().unwrap(), vec![]).unwrap();
        let mut bad = Vec::new();
        let mut found = Vec::new();
        for (i, s) in kb.sigs.iter().enumerate() {
            if s.description.is_empty() {
                bad.push(format!("{} has no description", s.id));
            }
            if s.examples.is_empty() {
                bad.push(format!("{} has no example", s.id));
            }
            if let Err(e) = build(&s.pattern) {
                bad.push(format!("{}: {e}", s.id));
                continue;
            }
            for ex in &s.examples {
                if s.tail_only {
                    if kb.tail_hint(ex) == 0.0 {
                        bad.push(format!("{} does not match its example {ex:?}", s.id));
                    }
                    continue;
                }
                kb.matches(ex.as_bytes(), &mut found);
                if !found.contains(&i) {
                    bad.push(format!("{} does not match its example {ex:?}", s.id));
                }
                // As a line of a log: after a newline, as the prefilter sees it.
                let line = format!("\n{ex}\n");
                let mut cache = kb.prefilter_cache();
                if kb.next_hit(&mut cache, line.as_bytes(), 0).is_none()
                    || kb.next_hit_fallback(line.as_bytes(), 0).is_none()
                    // At a chunk's start, with no newline before it.
                    || (kb.next_hit(&mut cache, ex.as_bytes(), 0).is_none()
                        && !kb.line_start_hit(ex.as_bytes()))
                {
                    bad.push(format!("prefilter misses {ex:?}"));
                }
            }
        }
        if !kb.always.is_empty() {
            bad.push(format!(
                "signatures without a literal of {MIN_LITERAL}+ bytes: {:?}",
                kb.always
                    .iter()
                    .map(|&i| &kb.sigs[i].id)
                    .collect::<Vec<_>>()
            ));
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
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
            explain: false,
        }];
        let kb = CompiledKb::compile(builtin_signatures().unwrap(), user).unwrap();
        assert!(kb.sigs[0].user);
        assert_eq!(kb.sigs[0].id, "user-1");
        let bad = vec![UserSignature {
            id: Some("bad".into()),
            pattern: "(".into(),
            category: Category::Network,
            strategy: None,
            description: None,
            weight: None,
            explain: false,
        }];
        assert!(CompiledKb::compile(vec![], bad).is_err());
    }
}
