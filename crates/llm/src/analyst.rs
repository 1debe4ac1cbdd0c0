//! The analyst: asks the model about one failure and never fails doing so.

use crate::answer::{parse_answer, Answer, AnswerError};
use crate::client::{self, Failure, Reply};
use crate::commands::{assess_commands, ProposedCommand};
use crate::config::{ConfigError, LlmConfig};
use crate::context::{Context, HostFacts};
use crate::limits::{Budget, Cache};
use crate::metrics::{Counters, MetricsSnapshot};
use crate::prompt::{self, estimate_tokens, Prompt};
use pipeguard_core::secrets::Redactor;
use pipeguard_core::{Category, Diagnosis, Strategy};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `analyzer` of a diagnosis the model made.
pub const ANALYZER: &str = "llm";

/// How an explanation ended. Only `used` and `cached` carry an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The model answered and the answer is valid.
    Used,
    /// An earlier valid answer for the same fingerprint and kind of host; nothing was sent.
    Cached,
    /// Not JSON, not the schema, or cut off.
    InvalidAnswer,
    /// A category outside the taxonomy.
    UnknownCategory,
    /// The model or its provider declined.
    Refusal,
    TimedOut,
    /// The hourly token budget is spent; nothing was sent.
    BudgetExhausted,
    /// Unreachable, or an HTTP error.
    Unavailable,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Used,
        Outcome::Cached,
        Outcome::InvalidAnswer,
        Outcome::UnknownCategory,
        Outcome::Refusal,
        Outcome::TimedOut,
        Outcome::BudgetExhausted,
        Outcome::Unavailable,
    ];

    /// The `outcome` label of `pipeguard_llm_requests_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Used => "used",
            Outcome::Cached => "cached",
            Outcome::InvalidAnswer => "invalid_answer",
            Outcome::UnknownCategory => "unknown_category",
            Outcome::Refusal => "refusal",
            Outcome::TimedOut => "timed_out",
            Outcome::BudgetExhausted => "budget_exhausted",
            Outcome::Unavailable => "unavailable",
        }
    }

    pub(crate) fn index(self) -> usize {
        Outcome::ALL
            .iter()
            .position(|o| *o == self)
            .expect("every outcome is listed")
    }
}

/// What the model said about one failure, or why it said nothing usable. Stored with the
/// session as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub outcome: Outcome,
    /// e.g. `llm: answered`, `llm: invalid answer: not JSON (…)`, `llm: timed out after 30 s`.
    pub reason: String,
    /// e.g. `llm:llama3.1 via http://127.0.0.1:11434/v1`.
    pub source: String,
    pub answer: Option<Answer>,
    /// The answer's commands after the safety gate, in the order diagnose → fix → verify →
    /// roll back.
    pub commands: Vec<ProposedCommand>,
    /// The exact messages sent (JSON array of `{role, content}`), already redacted; empty
    /// when nothing was sent (cached answer, budget spent).
    pub prompt: String,
    /// Tokens this explanation cost (0 when nothing was sent).
    pub tokens: u64,
    pub elapsed_ms: u64,
}

impl Explanation {
    /// Whether the answer may be shown and used.
    pub fn is_usable(&self) -> bool {
        matches!(self.outcome, Outcome::Used | Outcome::Cached) && self.answer.is_some()
    }

    /// Lets the model's category decide only where the rules could not: when `d` says
    /// `unknown`. Returns whether `d` changed. The gate and the policy still decide what runs.
    pub fn apply_to(&self, d: &mut Diagnosis) -> bool {
        let Some(a) = self.answer.as_ref().filter(|_| self.is_usable()) else {
            return false;
        };
        if d.category != Category::Unknown || a.category == Category::Unknown {
            return false;
        }
        d.summary = format!(
            "{}: {} (confidence {:.2}; the knowledge base said unknown): {}",
            self.source, a.category, a.confidence, a.root_cause
        );
        d.category = a.category;
        d.transient = a.category.is_transient();
        d.strategy = Strategy::default_for(a.category);
        d.confidence = a.confidence;
        d.analyzer = ANALYZER.to_string();
        true
    }

    /// Root cause and the safe next steps, for escalation notifications; `None` without a
    /// usable answer. Refused commands are left out; others say when they need approval.
    pub fn notification_text(&self) -> Option<String> {
        let a = self.answer.as_ref().filter(|_| self.is_usable())?;
        let mut s = format!(
            "Root cause ({}, {}, confidence {:.2}): {}",
            self.source, a.category, a.confidence, a.root_cause
        );
        let steps: Vec<&ProposedCommand> = self.commands.iter().filter(|c| c.runnable).collect();
        if !steps.is_empty() {
            s.push_str("\nSafe next steps:");
            for c in steps {
                let approval = if c.needs_approval {
                    ", needs approval"
                } else {
                    ""
                };
                s.push_str(&format!(
                    "\n- {} ({}{approval}): {}",
                    c.purpose.as_str(),
                    pipeguard_core::safety::risk_name(c.risk),
                    c.command
                ));
            }
        }
        Some(s)
    }
}

/// Whether the rules (and the learned classifier) are unsure enough to ask the model.
pub fn is_unsure(d: &Diagnosis, min_confidence: f64) -> bool {
    d.category == Category::Unknown || d.confidence < min_confidence
}

struct State {
    cache: Cache<Explanation>,
    budget: Budget,
}

/// The model as an analyst. Share one per process (it holds the cache, the budget and the
/// counters); `explain` may be called concurrently.
pub struct Analyst {
    cfg: LlmConfig,
    client: reqwest::Client,
    redactor: Redactor,
    source: String,
    state: Mutex<State>,
    counters: Counters,
}

fn cache_key(fingerprint: &str, host: &HostFacts) -> String {
    let f = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_lowercase();
    format!(
        "{fingerprint}\u{1f}{}\u{1f}{}\u{1f}{}",
        f(&host.os),
        f(&host.package_manager),
        f(&host.service_manager)
    )
}

impl Analyst {
    /// An analyst for a configured model; [`ConfigError::NotConfigured`] when there is none.
    pub fn new(cfg: LlmConfig) -> Result<Analyst, ConfigError> {
        cfg.validate()?;
        let redactor = Redactor::new(&cfg.internal_hosts)
            .map_err(|e| ConfigError::InternalHosts(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .user_agent(concat!("pipeguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Invalid {
                name: "[llm]",
                what: "usable to build an HTTP client",
                value: e.to_string(),
            })?;
        Ok(Analyst {
            source: cfg.source(),
            state: Mutex::new(State {
                cache: Cache::new(Duration::from_secs(cfg.cache_ttl_seconds)),
                budget: Budget::new(cfg.hourly_token_budget),
            }),
            redactor,
            client,
            cfg,
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// `llm:MODEL via URL`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The redactor everything sent goes through (also fit for notifications).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Counts per outcome and tokens spent, for `/metrics`.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.counters.snapshot()
    }

    /// The prompt `explain` would send for `ctx` (with a fresh fence).
    pub fn prompt(&self, ctx: &Context) -> Prompt {
        prompt::build(
            ctx,
            &self.redactor,
            self.cfg.max_prompt_tokens,
            &prompt::new_fence(),
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is one call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the model about one failure. Never fails: whatever goes wrong is the outcome and
    /// reason of the explanation, and the rules' diagnosis stands.
    pub async fn explain(&self, fingerprint: &str, ctx: &Context) -> Explanation {
        let started = Instant::now();
        let key = cache_key(fingerprint, &ctx.host);
        let cached = if fingerprint.is_empty() {
            None
        } else {
            self.state().cache.get(&key, started)
        };
        let mut e = match cached {
            Some((hit, age)) => Explanation {
                outcome: Outcome::Cached,
                reason: format!("llm: cached answer from {} s ago", age.as_secs()),
                prompt: String::new(),
                tokens: 0,
                ..hit
            },
            None => self.ask(ctx, started).await,
        };
        e.elapsed_ms = started.elapsed().as_millis() as u64;
        if e.outcome == Outcome::Used && !fingerprint.is_empty() {
            self.state().cache.put(key, e.clone(), Instant::now());
        }
        self.counters.record(e.outcome, e.tokens);
        tracing::info!(
            outcome = e.outcome.as_str(),
            tokens = e.tokens,
            elapsed_ms = e.elapsed_ms,
            "{}",
            e.reason
        );
        e
    }

    async fn ask(&self, ctx: &Context, started: Instant) -> Explanation {
        let p = self.prompt(ctx);
        let blank = |outcome, reason: String| Explanation {
            outcome,
            reason,
            source: self.source.clone(),
            answer: None,
            commands: Vec::new(),
            prompt: String::new(),
            tokens: 0,
            elapsed_ms: 0,
        };
        {
            let mut st = self.state();
            if !st.budget.allows(p.estimated_tokens, started) {
                let limit = st.budget.limit();
                return blank(
                    Outcome::BudgetExhausted,
                    format!("llm: hourly token budget of {limit} tokens spent"),
                );
            }
        }
        let sent = serde_json::to_string(&p.messages).expect("messages serialize");
        let deadline = Duration::from_secs(self.cfg.timeout_seconds);
        let result =
            tokio::time::timeout(deadline, client::chat(&self.client, &self.cfg, &p.messages))
                .await;
        let mut e = blank(Outcome::Used, String::new());
        e.prompt = sent;
        e.tokens = p.estimated_tokens;
        match result {
            Err(_) | Ok(Err(Failure::TimedOut)) => {
                e.outcome = Outcome::TimedOut;
                e.reason = format!("llm: timed out after {} s", self.cfg.timeout_seconds);
            }
            Ok(Err(Failure::Unavailable(why))) => {
                e.outcome = Outcome::Unavailable;
                e.reason = format!("llm: unavailable: {why}");
                e.tokens = 0;
            }
            Ok(Err(Failure::Invalid(why))) => {
                e.outcome = Outcome::InvalidAnswer;
                e.reason = format!("llm: invalid answer: {why}");
            }
            Ok(Ok(reply)) => self.judge(&mut e, reply, &p),
        }
        self.state().budget.record(e.tokens, Instant::now());
        e
    }

    /// Validates a reply into the explanation.
    fn judge(&self, e: &mut Explanation, reply: Reply, p: &Prompt) {
        let content = reply.content.unwrap_or_default();
        e.tokens = reply
            .tokens
            .unwrap_or_else(|| p.estimated_tokens + estimate_tokens(content.chars().count()));
        if let Some(r) = reply.refusal {
            e.outcome = Outcome::Refusal;
            e.reason = format!("llm: refused: {}", r.chars().take(200).collect::<String>());
            return;
        }
        if reply.finish_reason.as_deref() == Some("content_filter") {
            e.outcome = Outcome::Refusal;
            e.reason = "llm: refused: the provider's content filter stopped the answer".into();
            return;
        }
        match parse_answer(&content) {
            Ok(a) => {
                e.outcome = Outcome::Used;
                e.reason = format!("llm: answered ({})", a.category);
                e.commands = assess_commands(&a);
                e.answer = Some(a);
            }
            Err(AnswerError::UnknownCategory(c)) => {
                e.outcome = Outcome::UnknownCategory;
                e.reason = format!(
                    "llm: invalid answer: unknown category {:?}",
                    c.chars().take(60).collect::<String>()
                );
            }
            Err(AnswerError::Invalid(why)) => {
                e.outcome = Outcome::InvalidAnswer;
                e.reason = if reply.finish_reason.as_deref() == Some("length") {
                    format!("llm: invalid answer: cut off at max_answer_tokens ({why})")
                } else {
                    format!("llm: invalid answer: {why}")
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Purpose;
    use pipeguard_core::Risk;

    fn used(category: Category) -> Explanation {
        Explanation {
            outcome: Outcome::Used,
            reason: "llm: answered".into(),
            source: "llm:m via http://x".into(),
            answer: Some(Answer {
                category,
                root_cause: "The mirror was down.".into(),
                confidence: 0.7,
                diagnostic_commands: vec![],
                fix_commands: vec![],
                verification_commands: vec![],
                rollback_commands: vec![],
            }),
            commands: vec![
                ProposedCommand {
                    purpose: Purpose::Diagnostic,
                    command: "curl -sI https://mirror".into(),
                    risk: Risk::Low,
                    reason: "reads".into(),
                    runnable: true,
                    needs_approval: false,
                },
                ProposedCommand {
                    purpose: Purpose::Fix,
                    command: "rm -rf /".into(),
                    risk: Risk::Refused,
                    reason: "refused: deletes /".into(),
                    runnable: false,
                    needs_approval: false,
                },
                ProposedCommand {
                    purpose: Purpose::Fix,
                    command: "sudo systemctl restart mirror".into(),
                    risk: Risk::High,
                    reason: "needs approval".into(),
                    runnable: true,
                    needs_approval: true,
                },
            ],
            prompt: String::new(),
            tokens: 10,
            elapsed_ms: 1,
        }
    }

    fn diagnosis(category: Category) -> Diagnosis {
        let mut d = pipeguard_core::Analyzer::builtin().analyze(b"something odd happened\n");
        d.category = category;
        d.confidence = 0.9;
        d
    }

    #[test]
    fn the_model_decides_only_where_the_rules_said_unknown() {
        let mut d = diagnosis(Category::Unknown);
        assert!(used(Category::Network).apply_to(&mut d));
        assert_eq!(d.category, Category::Network);
        assert!(d.transient);
        assert_eq!(d.strategy, Strategy::Retry);
        assert_eq!(d.analyzer, "llm");
        assert!(d.summary.contains("The mirror was down."));

        let mut d = diagnosis(Category::CompilationError);
        assert!(!used(Category::Network).apply_to(&mut d));
        assert_eq!(d.category, Category::CompilationError);

        let mut d = diagnosis(Category::Unknown);
        let mut failed = used(Category::Network);
        failed.outcome = Outcome::InvalidAnswer;
        assert!(!failed.apply_to(&mut d));
        assert!(!used(Category::Unknown).apply_to(&mut d));
        assert_eq!(d.category, Category::Unknown);
    }

    #[test]
    fn notifications_name_the_cause_and_only_safe_steps() {
        let text = used(Category::Network).notification_text().unwrap();
        assert!(text.starts_with(
            "Root cause (llm:m via http://x, network, confidence 0.70): The mirror was down."
        ));
        assert!(text.contains("- diagnostic (low): curl -sI https://mirror"));
        assert!(text.contains("- fix (high, needs approval): sudo systemctl restart mirror"));
        assert!(!text.contains("rm -rf"));
        let mut failed = used(Category::Network);
        failed.outcome = Outcome::TimedOut;
        assert_eq!(failed.notification_text(), None);
    }

    #[test]
    fn unsure_means_unknown_or_below_the_confidence_needed() {
        let mut d = diagnosis(Category::Network);
        assert!(!is_unsure(&d, 0.5));
        d.confidence = 0.4;
        assert!(is_unsure(&d, 0.5));
        assert!(is_unsure(&diagnosis(Category::Unknown), 0.5));
    }

    #[test]
    fn outcome_names_are_the_metric_labels() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
    }

    #[test]
    fn no_analyst_without_a_model() {
        assert_eq!(
            Analyst::new(LlmConfig::default()).err(),
            Some(ConfigError::NotConfigured)
        );
    }
}
