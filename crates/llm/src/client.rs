//! One chat-completions exchange with an OpenAI-compatible endpoint (OpenAI, Azure OpenAI,
//! Ollama, vLLM, llama.cpp's server). Nothing is streamed.

use crate::answer::wire_schema;
use crate::config::{LlmConfig, StructuredOutput};
use crate::prompt::Message;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest answer body read.
const MAX_BODY: usize = 1 << 20;

/// What the endpoint answered.
#[derive(Debug)]
pub struct Reply {
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub finish_reason: Option<String>,
    /// `usage.total_tokens` (or prompt + completion) when the endpoint reports it.
    pub tokens: Option<u64>,
}

#[derive(Debug)]
pub enum Failure {
    /// The HTTP client's own deadline passed.
    TimedOut,
    /// Not reachable, or an HTTP error.
    Unavailable(String),
    /// A 2xx whose body is not a chat completion.
    Invalid(String),
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    total_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// Which field limits the answer's length: OpenAI's newer models want
/// `max_completion_tokens` and reject `max_tokens`; most other servers know only the latter.
#[derive(Clone, Copy, PartialEq)]
enum LengthField {
    MaxTokens,
    MaxCompletionTokens,
}

/// The request body; fields in this order, so the stored prompt is the exact text sent.
#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
}

fn body<'a>(
    cfg: &'a LlmConfig,
    messages: &'a [Message],
    format: StructuredOutput,
    length: LengthField,
) -> Request<'a> {
    let response_format = match format {
        StructuredOutput::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "pipeguard_diagnosis", "strict": true, "schema": wire_schema()},
        })),
        StructuredOutput::JsonObject => Some(json!({"type": "json_object"})),
        StructuredOutput::None => None,
    };
    let limit = Some(cfg.max_answer_tokens).filter(|n| *n > 0);
    Request {
        model: cfg.model.as_deref().unwrap_or_default().trim(),
        messages,
        stream: false,
        response_format,
        max_tokens: limit.filter(|_| length == LengthField::MaxTokens),
        max_completion_tokens: limit.filter(|_| length == LengthField::MaxCompletionTokens),
    }
}

fn weaker(format: StructuredOutput) -> Option<StructuredOutput> {
    match format {
        StructuredOutput::JsonSchema => Some(StructuredOutput::JsonObject),
        StructuredOutput::JsonObject => Some(StructuredOutput::None),
        StructuredOutput::None => None,
    }
}

fn is_azure(endpoint: &str) -> bool {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.ends_with(".azure.com")))
        .unwrap_or(false)
}

/// Sends the messages; a 400 about `response_format` is asked again with a weaker format,
/// and one about `max_tokens` with `max_completion_tokens`. The caller bounds the time.
pub async fn chat(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    messages: &[Message],
) -> Result<Reply, Failure> {
    let endpoint = cfg.endpoint();
    let mut format = cfg.structured_output;
    let mut length = LengthField::MaxTokens;
    loop {
        let mut req = client
            .post(&endpoint)
            .json(&body(cfg, messages, format, length));
        if let Some(key) = cfg.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.bearer_auth(key);
            if is_azure(&endpoint) {
                req = req.header("api-key", key);
            }
        }
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = read_body(&mut resp).await?;
        if status == reqwest::StatusCode::BAD_REQUEST {
            let text = String::from_utf8_lossy(&bytes).to_lowercase();
            if (text.contains("response_format") || text.contains("json_schema"))
                && weaker(format).is_some()
            {
                tracing::info!(
                    ?format,
                    "the model endpoint rejected the response format; asking with a weaker one"
                );
                format = weaker(format).unwrap_or(StructuredOutput::None);
                continue;
            }
            if text.contains("max_tokens") && length == LengthField::MaxTokens {
                length = LengthField::MaxCompletionTokens;
                continue;
            }
        }
        if !status.is_success() {
            return Err(Failure::Unavailable(http_error(status, &bytes)));
        }
        return parse_reply(&bytes);
    }
}

fn unreachable(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    if e.is_timeout() {
        Failure::TimedOut
    } else if e.is_connect() {
        Failure::Unavailable("cannot connect to the endpoint".into())
    } else {
        Failure::Unavailable(e.to_string())
    }
}

async fn read_body(resp: &mut reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(Failure::Invalid("the answer is larger than 1 MiB".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn http_error(status: reqwest::StatusCode, body: &[u8]) -> String {
    let hint = match status.as_u16() {
        401 | 403 => " (check PIPEGUARD_LLM_API_KEY)",
        404 => " (check PIPEGUARD_LLM_URL and PIPEGUARD_LLM_MODEL)",
        429 => " (rate limited by the endpoint)",
        _ => "",
    };
    // The endpoint's own message, short: it is logged and stored with the session.
    let detail: String = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    if detail.is_empty() {
        format!("HTTP {}{hint}", status.as_u16())
    } else {
        format!("HTTP {}{hint}: {detail}", status.as_u16())
    }
}

fn parse_reply(bytes: &[u8]) -> Result<Reply, Failure> {
    let r: ChatResponse = serde_json::from_slice(bytes)
        .map_err(|e| Failure::Invalid(format!("not a chat completion ({e})")))?;
    let tokens = r.usage.and_then(|u| {
        u.total_tokens
            .or(match (u.prompt_tokens, u.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
            })
    });
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Invalid("no choices in the answer".into()))?;
    let (content, refusal) = match choice.message {
        Some(m) => (m.content, m.refusal),
        None => (None, None),
    };
    Ok(Reply {
        content,
        refusal: refusal.filter(|r| !r.trim().is_empty()),
        finish_reason: choice.finish_reason,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LlmConfig {
        LlmConfig {
            url: Some("http://127.0.0.1:1/v1".into()),
            model: Some("m".into()),
            ..LlmConfig::default()
        }
    }

    #[test]
    fn the_body_asks_for_the_schema_and_bounds_the_answer() {
        let c = cfg();
        let b = serde_json::to_value(body(
            &c,
            &[],
            StructuredOutput::JsonSchema,
            LengthField::MaxTokens,
        ))
        .unwrap();
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            b["response_format"]["json_schema"]["schema"]["properties"]["category"]["enum"][0],
            "flaky_test"
        );
        assert_eq!(b["max_tokens"], 1024);
        assert_eq!(b["stream"], false);
        let b = serde_json::to_value(body(
            &c,
            &[],
            StructuredOutput::None,
            LengthField::MaxCompletionTokens,
        ))
        .unwrap();
        assert!(b.get("response_format").is_none());
        assert!(b.get("max_tokens").is_none());
        assert_eq!(b["max_completion_tokens"], 1024);
    }

    #[test]
    fn replies_are_read_with_their_usage() {
        let r = parse_reply(br#"{"choices":[{"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#).unwrap();
        assert_eq!(r.content.as_deref(), Some("{}"));
        assert_eq!(r.tokens, Some(15));
        let r = parse_reply(br#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."}}],"usage":{"total_tokens":9}}"#).unwrap();
        assert_eq!(r.refusal.as_deref(), Some("I can't help with that."));
        assert_eq!(r.tokens, Some(9));
        assert!(matches!(
            parse_reply(br#"{"choices":[]}"#),
            Err(Failure::Invalid(_))
        ));
        assert!(matches!(parse_reply(b"<html>"), Err(Failure::Invalid(_))));
    }

    #[test]
    fn http_errors_carry_a_hint_and_the_endpoint_message() {
        let e = http_error(
            reqwest::StatusCode::NOT_FOUND,
            br#"{"error":{"message":"model \"llama9\" not found, try pulling it first"}}"#,
        );
        assert_eq!(
            e,
            "HTTP 404 (check PIPEGUARD_LLM_URL and PIPEGUARD_LLM_MODEL): model \"llama9\" not found, try pulling it first"
        );
        assert_eq!(
            http_error(reqwest::StatusCode::BAD_GATEWAY, b""),
            "HTTP 502"
        );
    }
}
