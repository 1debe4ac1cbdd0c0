//! The generic failure report (`POST /pipeline/webhook`), for systems without a native
//! integration. Its webhook secret comes as `X-Pipeguard-Token`, or signs the body as
//! `X-Pipeguard-Signature-256: sha256=<hex HMAC>`.

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    check_token, header, idempotency_key, label_char, valid_path, verify_hmac_sha256, Delivery,
    WebhookRequest,
};
use crate::Setup;
use crate::{Ci, Module, ParseError, Parsed};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericFailure {
    source: String,
    job_name: String,
    #[serde(default)]
    build_number: Option<Value>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    target_hosts: Vec<String>,
    #[serde(default)]
    log: Option<String>,
    #[serde(default)]
    repository: Option<String>,
}

use crate::api::now_ms;

/// `{"source","job_name","build_number","stage","error_message","target_hosts","log"}`.
pub fn parse_report(body: &[u8]) -> Result<FailureEvent, ParseError> {
    let f: GenericFailure = serde_json::from_slice(body)
        .map_err(|e| ParseError::Shape(format!("invalid failure report: {e}")))?;
    if f.source.trim().is_empty() || f.job_name.trim().is_empty() {
        return Err(ParseError::Shape(
            "source and job_name must not be empty".into(),
        ));
    }
    if f.error_message.as_deref().unwrap_or("").is_empty()
        && f.log.as_deref().unwrap_or("").is_empty()
    {
        return Err(ParseError::Shape(
            "give error_message or log: there is nothing to diagnose".into(),
        ));
    }
    let build = match &f.build_number {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(ParseError::Shape(
                "build_number must be a string or a number".into(),
            ))
        }
    };
    let log = match (&f.log, &f.error_message) {
        (Some(l), Some(m)) if !l.contains(m.as_str()) => format!("{l}\n{m}"),
        (Some(l), _) => l.clone(),
        (None, m) => m.clone().unwrap_or_default(),
    };
    Ok(FailureEvent {
        platform: Some(Platform::Generic),
        repository: f.repository.clone().unwrap_or_else(|| f.source.clone()),
        run_id: format!("{}#{}", f.job_name, build),
        attempt: 1,
        workflow: f.job_name.clone(),
        jobs: vec![FailedJob {
            id: f.job_name.clone(),
            name: f.job_name.clone(),
            stage: f.stage.clone(),
            ..Default::default()
        }],
        target_hosts: f.target_hosts.clone(),
        log: Some(log),
        error_message: f.error_message.clone(),
        finished_at_ms: Some(now_ms()),
        ..Default::default()
    })
}

pub struct Generic;

impl Module for Generic {
    fn platform(&self) -> Platform {
        Platform::Generic
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "",
            webhook: "any CI step posts its failure to https://PIPEGUARD/webhooks/generic, signed \
                  with this secret (X-Pipeguard-Signature-256: sha256=HMAC of the body) or \
                  carrying it as X-Pipeguard-Token",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "generic",
            default_api_url: "",
            credential: None,
            user: false,
        }
    }

    fn presents_credential(
        &self,
        headers: &reqwest::header::HeaderMap,
        _query: Option<&str>,
    ) -> bool {
        header(headers, "x-pipeguard-token").is_some()
            || header(headers, "x-pipeguard-signature-256").is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        if let Some(sig) = req.header("x-pipeguard-signature-256") {
            return if verify_hmac_sha256(secret.as_bytes(), req.body, sig, "sha256=") {
                Ok(())
            } else {
                Err("X-Pipeguard-Signature-256 does not match the body".into())
            };
        }
        check_token(
            req.header("x-pipeguard-token"),
            secret,
            "X-Pipeguard-Token or X-Pipeguard-Signature-256",
        )
    }

    /// Deduplicated on `Idempotency-Key`, or the body's hash.
    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        Ok(Delivery::new(
            idempotency_key(req),
            Parsed::Failure(Box::new(parse_report(req.body)?)),
        ))
    }

    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name, 1..=20, label_char)
    }

    fn client(&self, _section: &Section, _http: &HttpOptions) -> Option<Box<dyn Ci>> {
        None
    }
}
