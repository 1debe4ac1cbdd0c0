//! `POST /webhooks/ansible`: failed tasks reported in real time by the callback plugin shipped
//! in `contrib/ansible/callback_plugins/pipeguard.py`.

use crate::error::ApiError;
use crate::intake::{answer, header, require_json};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_platforms::signature::token_eq;
use pipeguard_store::Intake;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
pub struct AnsibleFailure {
    pub playbook: String,
    pub host: String,
    pub task: String,
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    #[serde(default)]
    pub rc: Option<i64>,
    #[serde(default)]
    pub unreachable: bool,
    #[serde(default)]
    pub facts: Option<Value>,
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

pub async fn ansible(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(secret) = &st.config.ansible.webhook_secret {
        let given = header(&headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        if !token_eq(secret, given.trim()) {
            return Err(ApiError::unauthorized("wrong token"));
        }
    }
    require_json(&headers)?;
    let f: AnsibleFailure = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid Ansible failure report: {e}")))?;
    if f.playbook.trim().is_empty() || f.host.trim().is_empty() || f.task.trim().is_empty() {
        return Err(ApiError::bad_request(
            "playbook, host and task must not be empty",
        ));
    }
    let digest = hex::encode(Sha256::digest(&body));
    let delivery = header(&headers, "idempotency-key")
        .map(str::to_string)
        .unwrap_or_else(|| digest.clone());
    let ev = FailureEvent {
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
        finished_at_ms: Some(pipeguard_store::now_ms()),
        ..Default::default()
    };
    let r = st
        .store
        .intake(Platform::Ansible, &delivery, Intake::Failure(ev))
        .await?;
    st.worker_wake.notify_one();
    Ok(answer(r))
}
