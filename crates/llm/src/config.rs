//! `[llm]` in the TOML file and the `PIPEGUARD_LLM_*` environment variables.

use serde::Deserialize;
use std::fmt;

/// How the answer's shape is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format: json_schema` (strict) with the published schema; endpoints that
    /// reject it are asked again with `json_object`.
    #[default]
    JsonSchema,
    /// `response_format: json_object` (Ollama, llama.cpp and vLLM accept it).
    JsonObject,
    /// No `response_format`: the prompt alone asks for JSON.
    None,
}

/// The model's settings. Without `url` and `model` no model is asked and nothing changes.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API, e.g. `http://127.0.0.1:11434/v1` (Ollama);
    /// `/chat/completions` is appended unless the URL already ends with it.
    pub url: Option<String>,
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …` (and as `api-key` to Azure OpenAI hosts).
    pub api_key: Option<String>,
    /// Deadline of one explanation, all tries included.
    pub timeout_seconds: u64,
    /// Most tokens of log evidence in one prompt (estimated as characters / 4).
    pub max_prompt_tokens: usize,
    /// `max_tokens` of the answer; 0 sends none.
    pub max_answer_tokens: u32,
    /// How long an answer is reused for the same fingerprint on the same kind of host.
    pub cache_ttl_seconds: u64,
    /// Tokens (prompt and answer) spent per rolling hour at most; 0 is no limit.
    pub hourly_token_budget: u64,
    /// Host names masked before anything is sent: `*.corp.example.com`, `10.*`.
    pub internal_hosts: Vec<String>,
    pub structured_output: StructuredOutput,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            url: None,
            model: None,
            api_key: None,
            timeout_seconds: 30,
            max_prompt_tokens: 2000,
            max_answer_tokens: 1024,
            cache_ttl_seconds: 24 * 3600,
            hourly_token_budget: 100_000,
            internal_hosts: Vec::new(),
            structured_output: StructuredOutput::JsonSchema,
        }
    }
}

/// The key never appears in logs or debug output.
impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[set]"))
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_prompt_tokens", &self.max_prompt_tokens)
            .field("max_answer_tokens", &self.max_answer_tokens)
            .field("cache_ttl_seconds", &self.cache_ttl_seconds)
            .field("hourly_token_budget", &self.hourly_token_budget)
            .field("internal_hosts", &self.internal_hosts)
            .field("structured_output", &self.structured_output)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("no model is configured: set PIPEGUARD_LLM_URL and PIPEGUARD_LLM_MODEL (or url and model under [llm])")]
    NotConfigured,
    #[error("{0} is set but {1} is not: both are needed to ask a model")]
    Incomplete(&'static str, &'static str),
    #[error("{name} must be {what}, not {value:?}")]
    Invalid {
        name: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("[llm] internal_hosts: {0}")]
    InternalHosts(String),
}

fn non_empty(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

impl LlmConfig {
    /// Overrides settings from `PIPEGUARD_LLM_URL`, `_MODEL`, `_API_KEY` and
    /// `_TIMEOUT_SECONDS`, read through `get` (e.g. `|k| std::env::var(k).ok()`).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("PIPEGUARD_LLM_URL") {
            self.url = Some(v);
        }
        if let Some(v) = get("PIPEGUARD_LLM_MODEL") {
            self.model = Some(v);
        }
        if let Some(v) = get("PIPEGUARD_LLM_API_KEY") {
            self.api_key = Some(v);
        }
        if let Some(v) = get("PIPEGUARD_LLM_TIMEOUT_SECONDS") {
            self.timeout_seconds = v.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "PIPEGUARD_LLM_TIMEOUT_SECONDS",
                what: "a whole number of seconds",
                value: v.clone(),
            })?;
        }
        Ok(())
    }

    /// Whether a model is configured (URL and model name both set).
    pub fn is_enabled(&self) -> bool {
        non_empty(&self.url) && non_empty(&self.model)
    }

    /// Checks an enabled configuration; a half-set one (URL without model) is an error, so a
    /// typo does not silently turn the model off.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (non_empty(&self.url), non_empty(&self.model)) {
            (false, false) => return Err(ConfigError::NotConfigured),
            (true, false) => {
                return Err(ConfigError::Incomplete(
                    "PIPEGUARD_LLM_URL",
                    "PIPEGUARD_LLM_MODEL",
                ))
            }
            (false, true) => {
                return Err(ConfigError::Incomplete(
                    "PIPEGUARD_LLM_MODEL",
                    "PIPEGUARD_LLM_URL",
                ))
            }
            (true, true) => {}
        }
        let url = self.url.as_deref().unwrap_or_default().trim();
        let parsed = reqwest::Url::parse(url).ok();
        if !parsed
            .as_ref()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(ConfigError::Invalid {
                name: "PIPEGUARD_LLM_URL",
                what: "an http(s) URL such as http://127.0.0.1:11434/v1",
                value: url.to_string(),
            });
        }
        if self.timeout_seconds == 0 {
            return Err(ConfigError::Invalid {
                name: "PIPEGUARD_LLM_TIMEOUT_SECONDS",
                what: "at least 1",
                value: "0".into(),
            });
        }
        if self.max_prompt_tokens < 100 {
            return Err(ConfigError::Invalid {
                name: "[llm] max_prompt_tokens",
                what: "at least 100",
                value: self.max_prompt_tokens.to_string(),
            });
        }
        pipeguard_core::secrets::Redactor::new(&self.internal_hosts)
            .map_err(|e| ConfigError::InternalHosts(e.to_string()))?;
        Ok(())
    }

    /// The chat-completions endpoint.
    pub fn endpoint(&self) -> String {
        let url = self.url.as_deref().unwrap_or_default().trim();
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let base = base.trim_end_matches('/');
        let mut e = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        };
        if let Some(q) = query {
            e.push('?');
            e.push_str(q);
        }
        e
    }

    /// `llm:MODEL via URL`, the URL without credentials or query.
    pub fn source(&self) -> String {
        let model = self.model.as_deref().unwrap_or_default().trim();
        let url = self.url.as_deref().unwrap_or_default().trim();
        let shown = match reqwest::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                u.to_string().trim_end_matches('/').to_string()
            }
            Err(_) => url.to_string(),
        };
        format!("llm:{model} via {shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn nothing_configured_means_disabled() {
        let mut c = LlmConfig::default();
        c.apply_env(env(&[])).unwrap();
        assert!(!c.is_enabled());
        assert_eq!(c.validate(), Err(ConfigError::NotConfigured));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c: LlmConfig = toml_like(
            r#"{"url":"http://file/v1","model":"file-model","timeout_seconds":5,"internal_hosts":["*.corp"]}"#,
        );
        c.apply_env(env(&[
            ("PIPEGUARD_LLM_MODEL", "llama3.1"),
            ("PIPEGUARD_LLM_API_KEY", "sk-test"),
            ("PIPEGUARD_LLM_TIMEOUT_SECONDS", "7"),
        ]))
        .unwrap();
        assert!(c.is_enabled());
        assert_eq!(c.url.as_deref(), Some("http://file/v1"));
        assert_eq!(c.model.as_deref(), Some("llama3.1"));
        assert_eq!(c.timeout_seconds, 7);
        assert_eq!(c.internal_hosts, vec!["*.corp".to_string()]);
        assert!(!format!("{c:?}").contains("sk-test"));
        c.validate().unwrap();
    }

    fn toml_like(json: &str) -> LlmConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let mut c = LlmConfig::default();
        let e = c
            .apply_env(env(&[("PIPEGUARD_LLM_TIMEOUT_SECONDS", "soon")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("PIPEGUARD_LLM_TIMEOUT_SECONDS"),
            "{e}"
        );
        c.url = Some("http://127.0.0.1:11434/v1".into());
        assert!(matches!(c.validate(), Err(ConfigError::Incomplete(..))));
        c.model = Some("m".into());
        c.url = Some("127.0.0.1:11434".into());
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { .. })));
        c.url = Some("http://127.0.0.1:11434/v1".into());
        c.internal_hosts = vec!["*".into()];
        assert!(matches!(c.validate(), Err(ConfigError::InternalHosts(_))));
        assert!(serde_json::from_str::<LlmConfig>(r#"{"modle":"x"}"#).is_err());
    }

    #[test]
    fn endpoint_and_source() {
        let mut c = LlmConfig {
            url: Some("http://127.0.0.1:11434/v1/".into()),
            model: Some("llama3.1".into()),
            ..LlmConfig::default()
        };
        assert_eq!(c.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(c.source(), "llm:llama3.1 via http://127.0.0.1:11434/v1");
        c.url = Some(
            "https://u:p@res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
                .into(),
        );
        assert_eq!(
            c.endpoint(),
            "https://u:p@res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            c.source(),
            "llm:llama3.1 via https://res.openai.azure.com/openai/deployments/d/chat/completions"
        );
    }
}
