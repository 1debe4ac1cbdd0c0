//! The tools an agent sees, as data: name, what it does, the role it needs and its
//! parameters. Each tool is one or two calls of the pipeguard API with the agent's own token,
//! so the API's role check, the planner and the audit trail apply to agents as to anyone.

use crate::auth::Role;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ListFailures,
    GetDiagnosis,
    ExplainFailure,
    RequestRetry,
    ListFlakyTests,
    QuarantineTest,
}

/// One parameter: name, JSON type, description, required.
pub type Param = (&'static str, &'static str, &'static str, bool);

pub struct Tool {
    pub name: &'static str,
    pub kind: Kind,
    /// The role a token needs to see and call it.
    pub role: Role,
    pub read_only: bool,
    pub description: &'static str,
    pub params: &'static [Param],
}

const SESSION: Param = (
    "session",
    "string",
    "The session id (from list_failures).",
    true,
);

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "list_failures",
        kind: Kind::ListFailures,
        role: Role::Viewer,
        read_only: true,
        description: "Recent CI failures pipeguard handled, newest first: session id, \
            repository, run, status, failure category and the reason for what pipeguard did.",
        params: &[
            (
                "repository",
                "string",
                "Only this repository (owner/name).",
                false,
            ),
            (
                "status",
                "string",
                "Only sessions in this status (escalated, healed, awaiting_approval, …).",
                false,
            ),
            (
                "limit",
                "integer",
                "At most this many (1..=100, default 20).",
                false,
            ),
        ],
    },
    Tool {
        name: "get_diagnosis",
        kind: Kind::GetDiagnosis,
        role: Role::Viewer,
        read_only: true,
        description: "Why a CI run failed: category, confidence, the evidence lines of the log \
            (secrets redacted), failing tests, pipeguard's plan and the session's timeline.",
        params: &[SESSION],
    },
    Tool {
        name: "explain_failure",
        kind: Kind::ExplainFailure,
        role: Role::Viewer,
        read_only: true,
        description: "The analyst model's explanation of a failure: the stored one, or (operator \
            tokens, a model configured) a fresh one.",
        params: &[SESSION],
    },
    Tool {
        name: "request_retry",
        kind: Kind::RequestRetry,
        role: Role::Operator,
        read_only: false,
        description: "Ask pipeguard to re-run a failed CI run. pipeguard's policy, safety gate, \
            budget and approvals decide: a genuine failure (compile error, failing test) is \
            refused with the reason, a deploy waits for a human's approval, a transient failure \
            is re-run once. Your identity is recorded as mcp:TOKEN-NAME.",
        params: &[
            SESSION,
            (
                "reason",
                "string",
                "Why a re-run should help (kept on the timeline and in the audit trail).",
                true,
            ),
        ],
    },
    Tool {
        name: "list_flaky_tests",
        kind: Kind::ListFlakyTests,
        role: Role::Viewer,
        read_only: true,
        description: "Flaky tests of a repository, most costly first: failure rate over all \
            attempts including retries, trend, quarantine, owner.",
        params: &[("repository", "string", "The repository (owner/name).", true)],
    },
    Tool {
        name: "quarantine_test",
        kind: Kind::QuarantineTest,
        role: Role::Operator,
        read_only: false,
        description: "Quarantine a flaky test: its failures are retried at once instead of \
            escalated, until it passes enough times in a row or the quarantine expires. It gets \
            an owner (given, from CODEOWNERS, or the repository's default) and a ticket.",
        params: &[
            ("repository", "string", "The repository (owner/name).", true),
            (
                "test",
                "string",
                "The test's name as the log shows it.",
                true,
            ),
            ("reason", "string", "Why it is quarantined.", true),
            (
                "owner",
                "string",
                "Who fixes it (default: CODEOWNERS of its file, then [[repos]] default_owner).",
                false,
            ),
            (
                "file",
                "string",
                "The test's file, to find its owner in CODEOWNERS.",
                false,
            ),
            (
                "expires_in_days",
                "integer",
                "Released after this many days (default 14).",
                false,
            ),
        ],
    },
];

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

impl Tool {
    /// The JSON Schema of the tool's arguments.
    pub fn input_schema(&self) -> Map<String, Value> {
        let props: Map<String, Value> = self
            .params
            .iter()
            .map(|(n, ty, d, _)| (n.to_string(), json!({"type": ty, "description": d})))
            .collect();
        let required: Vec<&str> = self.params.iter().filter(|p| p.3).map(|p| p.0).collect();
        let schema = json!({"type": "object", "properties": props, "required": required,
                            "additionalProperties": false});
        match schema {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The arguments checked against the parameters: unknown ones, missing required ones and
    /// wrong types are refused with a message for the agent.
    pub fn check(&self, args: &Map<String, Value>) -> Result<(), String> {
        if let Some(k) = args
            .keys()
            .find(|k| !self.params.iter().any(|p| p.0 == k.as_str()))
        {
            return Err(format!("{} takes no argument {k:?}", self.name));
        }
        for (n, ty, _, required) in self.params {
            match args.get(*n) {
                None | Some(Value::Null) if *required => {
                    return Err(format!("{} needs the argument {n}", self.name))
                }
                Some(Value::String(s)) if *ty == "string" && *required && s.trim().is_empty() => {
                    return Err(format!("{n} must not be empty"))
                }
                Some(v) if !matches_type(v, ty) => {
                    return Err(format!("{n} must be a {ty}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn matches_type(v: &Value, ty: &str) -> bool {
    match ty {
        "integer" => v.is_i64() || v.is_u64() || v.is_null(),
        _ => v.is_string() || v.is_null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_against_the_table() {
        let t = find("request_retry").unwrap();
        let args = |v: Value| v.as_object().cloned().unwrap();
        assert!(t
            .check(&args(json!({"session": "s", "reason": "r"})))
            .is_ok());
        assert!(t
            .check(&args(json!({"session": "s"})))
            .unwrap_err()
            .contains("reason"));
        assert!(t
            .check(&args(json!({"session": "s", "reason": " "})))
            .is_err());
        assert!(t
            .check(&args(json!({"session": 3, "reason": "r"})))
            .is_err());
        assert!(t
            .check(&args(json!({"session": "s", "reason": "r", "x": 1})))
            .is_err());
        let schema = t.input_schema();
        assert_eq!(schema["required"], json!(["session", "reason"]));
        // Only the two that change something need an operator.
        let operator: Vec<_> = TOOLS
            .iter()
            .filter(|t| t.role == Role::Operator)
            .map(|t| t.name)
            .collect();
        assert_eq!(operator, ["request_retry", "quarantine_test"]);
    }
}
