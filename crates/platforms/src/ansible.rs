//! Ansible: failed tasks reported in real time by the callback plugin shipped in
//! `contrib/ansible/callback_plugins/pipeguard.py`, authenticated with a bearer token.
//! pipeguard never calls Ansible back: `pipeguard ansible` heals the hosts it runs against.

use crate::api::HttpOptions;
use crate::settings::{Section, SectionSpec};
use crate::webhook::{
    bearer, check_token, idempotency_key, label_char, valid_path, Delivery, WebhookRequest,
};
use crate::Setup;
use crate::{Ci, Module, ParseError, Parsed};
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct AnsibleFailure {
    playbook: String,
    host: String,
    task: String,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
    #[serde(default)]
    rc: Option<i64>,
    #[serde(default)]
    unreachable: bool,
    /// The host's facts as the plugin summarised them, when the play gathered them.
    #[serde(default)]
    facts: Option<Value>,
}

impl AnsibleFailure {
    /// The task's output laid out as Ansible's default callback prints it, so the analyzer's
    /// Ansible signatures apply.
    fn log(&self) -> String {
        let verdict = if self.unreachable {
            "UNREACHABLE!"
        } else {
            "FAILED!"
        };
        let mut log = format!(
            "TASK [{}] ***\nfatal: [{}]: {verdict} => {}\n",
            self.task,
            self.host,
            self.msg.as_deref().unwrap_or("")
        );
        for part in [&self.stdout, &self.stderr].into_iter().flatten() {
            if !part.is_empty() {
                log.push_str(part);
                log.push('\n');
            }
        }
        if let Some(rc) = self.rc {
            log.push_str(&format!("rc: {rc}\n"));
        }
        log
    }
}

use crate::api::now_ms;

/// One reported task failure.
pub fn parse_report(body: &[u8]) -> Result<FailureEvent, ParseError> {
    let f: AnsibleFailure = serde_json::from_slice(body)
        .map_err(|e| ParseError::Shape(format!("invalid Ansible failure report: {e}")))?;
    if f.playbook.trim().is_empty() || f.host.trim().is_empty() || f.task.trim().is_empty() {
        return Err(ParseError::Shape(
            "playbook, host and task must not be empty".into(),
        ));
    }
    let digest = crate::webhook::body_id(body);
    Ok(FailureEvent {
        platform: Some(Platform::Ansible),
        repository: f.playbook.clone(),
        // Each reported task failure is its own run: the playbook's pipeguard run heals it.
        run_id: format!("{}/{}/{}", f.host, f.task, &digest[..12]),
        attempt: 1,
        workflow: f.playbook.clone(),
        jobs: vec![FailedJob {
            id: f.task.clone(),
            name: f.task.clone(),
            stage: f.module.clone(),
            ..Default::default()
        }],
        target_hosts: vec![f.host.clone()],
        log: Some(f.log()),
        error_message: f.msg.clone(),
        finished_at_ms: Some(now_ms()),
        // Anything but an object is no facts (the plugin sends an object or nothing).
        host_facts: f.facts.and_then(|v| match v {
            Value::Object(m) if !m.is_empty() => Some(m),
            _ => None,
        }),
        ..Default::default()
    })
}

pub struct Ansible;

impl Module for Ansible {
    fn platform(&self) -> Platform {
        Platform::Ansible
    }

    fn setup(&self) -> Setup {
        Setup {
            credential: "",
            webhook:
                "the callback plugin in contrib/ansible posts failed tasks with this secret as \
                  PIPEGUARD_TOKEN (a bearer token)",
            probe: None,
        }
    }

    fn section(&self) -> SectionSpec {
        SectionSpec {
            key: "ansible",
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
        bearer(headers).is_some()
    }

    fn verify(&self, req: &WebhookRequest, secret: &str) -> Result<(), String> {
        check_token(bearer(req.headers), secret, "Authorization: Bearer token")
    }

    fn parse(&self, req: &WebhookRequest) -> Result<Delivery, ParseError> {
        Ok(Delivery::new(
            idempotency_key(req),
            Parsed::Failure(Box::new(parse_report(req.body)?)),
        ))
    }

    /// The playbook's path.
    fn valid_repository(&self, name: &str) -> bool {
        valid_path(name.trim_start_matches('/'), 1..=30, label_char)
    }

    fn client(&self, _section: &Section, _http: &HttpOptions) -> Option<Box<dyn Ci>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_facts_travel_with_the_failure() {
        let body = serde_json::json!({
            "playbook": "site.yml", "host": "web-1", "task": "t", "rc": 1,
            "facts": {"os_family": "RedHat", "pkg_mgr": "dnf", "memfree_mb": 812}
        });
        let ev = parse_report(body.to_string().as_bytes()).unwrap();
        let f = ev.host_facts.expect("facts kept");
        assert_eq!(f["pkg_mgr"], "dnf");
        assert_eq!(f["memfree_mb"], 812);
        let none = serde_json::json!({"playbook": "p", "host": "h", "task": "t", "facts": []});
        let ev = parse_report(none.to_string().as_bytes()).unwrap();
        assert!(ev.host_facts.is_none(), "not an object: no facts");
    }
}
