//! What the model is told about one failure.

use pipeguard_core::{Category, Diagnosis, Evidence};
use serde::{Deserialize, Serialize};

/// Facts about the host the failure happened on (from server awareness / Ansible facts), so
/// the commands fit its OS, package manager and service manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostFacts {
    /// e.g. `Ubuntu 22.04`, `Debian`, `RedHat`, `Alpine`, `macOS`.
    pub os: Option<String>,
    /// e.g. `apt`, `dnf`, `apk`, `brew`.
    pub package_manager: Option<String>,
    /// e.g. `systemd`, `openrc`, `launchd`, `none (container)`.
    pub service_manager: Option<String>,
}

/// One failure as the model sees it. Every field is redacted before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The lines the rules picked as evidence (line numbers as in the log).
    pub evidence: Vec<Evidence>,
    /// More lines of the failing step (around the evidence, or its last lines), sent after
    /// the evidence while `max_prompt_tokens` allows; never the whole log.
    pub context_lines: Vec<Evidence>,
    pub platform: String,
    pub repository: String,
    pub workflow: String,
    pub job: String,
    pub step: String,
    pub host: HostFacts,
    /// The rules' (or the learned classifier's) diagnosis.
    pub rules_category: Category,
    pub rules_confidence: f64,
    /// What pipeguard already tried for this failure, e.g. `retry: failed again`.
    pub tried: Vec<String>,
    /// Fixes that healed the same fingerprint before, e.g. `clear_cache healed 3 of 3`.
    pub earlier_fixes: Vec<String>,
    /// Diagnostic commands pipeguard ran on the host and what they printed, for a second
    /// round: `$ ls -ld /etc/app (exit 2)` followed by the output. Quoted as data.
    pub diagnostics: Vec<String>,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            evidence: Vec::new(),
            context_lines: Vec::new(),
            platform: String::new(),
            repository: String::new(),
            workflow: String::new(),
            job: String::new(),
            step: String::new(),
            host: HostFacts::default(),
            rules_category: Category::Unknown,
            rules_confidence: 0.0,
            tried: Vec::new(),
            earlier_fixes: Vec::new(),
            diagnostics: Vec::new(),
        }
    }
}

impl Context {
    /// A context holding a diagnosis's evidence and verdict; fill in the rest.
    pub fn from_diagnosis(d: &Diagnosis) -> Context {
        Context {
            evidence: d.evidence.clone(),
            rules_category: d.category,
            rules_confidence: d.confidence,
            ..Context::default()
        }
    }
}
