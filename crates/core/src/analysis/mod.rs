//! Log analysis: one streaming pass over a log, a category from the taxonomy, the evidence
//! lines that explain it, and a fingerprint that groups recurring failures.

use crate::category::Category;
use crate::policy::Strategy;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};

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

/// Extra facts beside the log that sharpen a diagnosis.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub exit_code: Option<i32>,
    /// The platform's own failure reason (GitLab `failure_reason`, a Jenkins status…).
    pub platform_reason: Option<String>,
}

struct Sig {
    id: String,
    category: Category,
    re: Regex,
}

pub struct Analyzer {
    sigs: Vec<Sig>,
}

impl Analyzer {
    pub fn builtin() -> Analyzer {
        let table: &[(&str, Category, &str)] = &[
            (
                "rust-compile-error",
                Category::CompilationError,
                r"^error(\[E\d+\])?: ",
            ),
            (
                "test-assertion",
                Category::TestFailure,
                r"(?i)assertion.*failed|^FAILED |test result: FAILED",
            ),
            (
                "conn-reset",
                Category::Network,
                r"(?i)connection (reset|refused)|could not resolve host|temporary failure in name resolution",
            ),
            (
                "http-5xx",
                Category::ServiceUnavailable,
                r"(?i)\b(502 bad gateway|503 service unavailable|504 gateway time-?out)\b",
            ),
            (
                "rate-limit",
                Category::RateLimited,
                r"(?i)rate limit|429 too many requests",
            ),
            (
                "oom",
                Category::OutOfMemory,
                r"(?i)out of memory|oomkilled|cannot allocate memory",
            ),
            (
                "disk-full",
                Category::DiskFull,
                r"(?i)no space left on device",
            ),
            ("timeout", Category::Timeout, r"(?i)timed out|timeout"),
        ];
        Analyzer {
            sigs: table
                .iter()
                .map(|(id, c, p)| Sig {
                    id: id.to_string(),
                    category: *c,
                    re: Regex::new(p).expect("built-in signature compiles"),
                })
                .collect(),
        }
    }

    pub fn analyze(&self, log: &[u8]) -> Diagnosis {
        self.analyze_with(log, &Hints::default())
    }

    pub fn analyze_reader<R: Read>(&self, mut r: R) -> io::Result<Diagnosis> {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        Ok(self.analyze(&buf))
    }

    pub fn analyze_with(&self, log: &[u8], _hints: &Hints) -> Diagnosis {
        let text = String::from_utf8_lossy(log);
        let mut best: Option<(usize, &Sig, &str)> = None;
        for (i, line) in text.split('\n').enumerate() {
            for s in &self.sigs {
                if s.re.is_match(line) {
                    best = Some((i + 1, s, line));
                    break;
                }
            }
        }
        match best {
            Some((n, s, line)) => {
                let strategy = if s.category.is_transient() {
                    Strategy::default_for(s.category)
                } else {
                    Strategy::Escalate
                };
                Diagnosis {
                    category: s.category,
                    confidence: 0.8,
                    transient: s.category.is_transient(),
                    evidence: vec![Evidence {
                        line: n,
                        text: line.trim_end_matches('\r').to_string(),
                    }],
                    fingerprint: format!("{}:{}", s.category, s.id),
                    strategy,
                    failing_tests: vec![],
                    analyzer: "rules".into(),
                    signature: Some(s.id.clone()),
                    summary: line.trim().to_string(),
                }
            }
            None => Diagnosis {
                category: Category::Unknown,
                confidence: 0.1,
                transient: false,
                evidence: vec![],
                fingerprint: "unknown".into(),
                strategy: Strategy::Escalate,
                failing_tests: vec![],
                analyzer: "rules".into(),
                signature: None,
                summary: String::new(),
            },
        }
    }
}
