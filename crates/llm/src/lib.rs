//! A model as pipeguard's optional analyst: any OpenAI-compatible chat-completions endpoint
//! (OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp's server). Without a configured model
//! nothing asks it and nothing changes.
//!
//! What it guarantees:
//! - **Redacted, bounded prompts.** Only the failing step's evidence (at most
//!   `max_prompt_tokens`, latest lines kept) and the job's names, host facts, what was tried
//!   and what healed before are sent, all through [`pipeguard_core::secrets::Redactor`]. The
//!   log is quoted data inside an unguessable fence; the system message says it is untrusted.
//! - **Validated answers.** The answer must match `docs/llm-answer.schema.json`
//!   ([`answer::SCHEMA_JSON`], sent as the structured-output schema). Invalid JSON, an unknown
//!   category, a refusal, a timeout or an unreachable endpoint become the [`Outcome`] and
//!   `reason` of the [`Explanation`]; [`Analyst::explain`] never fails.
//! - **The safety gate decides.** Every proposed command goes through
//!   [`pipeguard_core::safety::assess_script`]; refused ones are `runnable: false` with the
//!   reason; anything above low risk is `needs_approval: true`, whatever the policy says.
//! - **Cost.** Valid answers are cached per fingerprint and kind of host for
//!   `cache_ttl_seconds`; a rolling hourly token budget stops requests when spent.
//!
//! # Integrating it in the server
//!
//! ```no_run
//! # async fn demo(diagnosis: &mut pipeguard_core::Diagnosis) -> Result<(), Box<dyn std::error::Error>> {
//! use pipeguard_llm::{Analyst, Context, HostFacts, LlmConfig};
//! // 1. Config: embed `pub llm: LlmConfig` in the server's Config (it is `serde(default,
//! //    deny_unknown_fields)`, so it reads the `[llm]` table), then apply the environment.
//! let mut cfg = LlmConfig::default();
//! cfg.apply_env(|k| std::env::var(k).ok())?;
//! // 2. At start: `None` when no model is configured (log the error of a half-set one).
//! let analyst: Option<std::sync::Arc<Analyst>> = if cfg.is_enabled() {
//!     Some(std::sync::Arc::new(Analyst::new(cfg)?))
//! } else {
//!     None
//! };
//! // 3. In the worker, after the rules and the learned classifier:
//! if let Some(a) = &analyst {
//!     if pipeguard_llm::is_unsure(diagnosis, 0.5 /* policy.min_confidence */) {
//!         let mut ctx = Context::from_diagnosis(diagnosis);
//!         ctx.platform = "github".into();
//!         ctx.repository = "octo/app".into();
//!         ctx.job = "build".into();
//!         ctx.host = HostFacts { os: Some("Ubuntu 22.04".into()), ..HostFacts::default() };
//!         // Lines around the evidence (e.g. the failed step's last 200 lines), sent while
//!         // `max_prompt_tokens` allows; numbered as in the log.
//!         ctx.context_lines = Vec::new();
//!         ctx.tried = vec!["retry: failed again".into()];
//!         ctx.earlier_fixes = vec!["clear_cache healed it 3 times".into()];
//!         let explanation = a.explain(&diagnosis.fingerprint, &ctx).await;
//!         explanation.apply_to(diagnosis); // only when the rules said `unknown`
//!         // Store `serde_json::to_value(&explanation)` with the session (it holds the exact
//!         // prompt sent) and add `explanation.notification_text()` to escalations. A model's
//!         // command may run only when `runnable`, and waits for approval when
//!         // `needs_approval`, whatever the policy says.
//!     }
//! }
//! // 4. `/metrics`: `a.metrics()` → `pipeguard_llm_requests_total{outcome}` from
//! //    `requests` (label `Outcome::as_str`) and `pipeguard_llm_tokens_total` from `tokens`.
//! # Ok(()) }
//! ```

pub mod analyst;
pub mod answer;
mod client;
pub mod commands;
pub mod config;
pub mod context;
mod limits;
pub mod metrics;
pub mod prompt;

pub use analyst::{is_unsure, Analyst, Explanation, Outcome, ANALYZER};
pub use answer::{parse_answer, Answer, AnswerError};
pub use commands::{ProposedCommand, Purpose};
pub use config::{ConfigError, LlmConfig, StructuredOutput};
pub use context::{Context, HostFacts};
pub use metrics::MetricsSnapshot;
pub use prompt::{Message, Prompt};
