//! The JSON lines the callback plugin writes, one event per line.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskFailure {
    pub playbook: String,
    pub play: String,
    pub host: String,
    pub task: String,
    pub module: String,
    pub msg: String,
    pub stdout: String,
    pub stderr: String,
    pub rc: Option<i64>,
    pub unreachable: bool,
    pub ignored: bool,
    pub args: Value,
    pub become_user: Option<String>,
    /// Whether the task ran with `become` (diagnostics and fixes then do too).
    #[serde(rename = "become")]
    pub with_become: bool,
    pub task_path: Option<String>,
    pub exception: Option<String>,
}

impl TaskFailure {
    /// Everything the task said, for pattern matching and the analyzer.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for part in [&self.msg, &self.stderr, &self.stdout] {
            if !part.trim().is_empty() {
                s.push_str(part.trim_end());
                s.push('\n');
            }
        }
        if let Some(e) = &self.exception {
            s.push_str(e);
        }
        s
    }

    /// The short module name: `ansible.builtin.copy` → `copy`.
    pub fn module_short(&self) -> &str {
        self.module.rsplit('.').next().unwrap_or(&self.module)
    }

    /// The argv of a `command`/`shell` task, when it can be read from its arguments.
    pub fn command_argv(&self) -> Option<Vec<String>> {
        if let Some(a) = self.args.get("argv").and_then(Value::as_array) {
            return Some(
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
            );
        }
        let raw = self
            .args
            .get("_raw_params")
            .or_else(|| self.args.get("cmd"))
            .and_then(Value::as_str)?;
        Some(raw.split_whitespace().map(String::from).collect())
    }

    pub fn arg_str(&self, key: &str) -> Option<&str> {
        self.args.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskOk {
    pub host: String,
    pub task: String,
    pub module: String,
    pub changed: bool,
    pub rc: Option<i64>,
    pub stdout: Option<String>,
    pub stat: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HostStats {
    pub ok: i64,
    pub failures: i64,
    pub unreachable: i64,
    pub changed: i64,
    pub skipped: i64,
    pub rescued: i64,
    pub ignored: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PlaybookStart {
        #[serde(default)]
        playbook: String,
    },
    PlayStart {
        #[serde(default)]
        play: String,
    },
    Facts {
        host: String,
        facts: serde_json::Map<String, Value>,
    },
    Failed(TaskFailure),
    Unreachable(TaskFailure),
    Ok(TaskOk),
    Stats {
        hosts: BTreeMap<String, HostStats>,
    },
    #[serde(other)]
    Other,
}

/// The events of one `ansible-playbook` run.
#[derive(Debug, Clone, Default)]
pub struct RunEvents {
    pub events: Vec<Event>,
    /// Lines that were not valid events (reported, never fatal).
    pub bad_lines: usize,
}

impl RunEvents {
    pub fn parse(text: &str) -> RunEvents {
        let mut r = RunEvents::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Event>(line) {
                Ok(e) => r.events.push(e),
                Err(_) => r.bad_lines += 1,
            }
        }
        r
    }

    /// Failures that stopped a host (ignored ones do not), the last per host.
    pub fn failures(&self) -> Vec<TaskFailure> {
        let mut by_host: BTreeMap<String, TaskFailure> = BTreeMap::new();
        for e in &self.events {
            match e {
                Event::Failed(f) | Event::Unreachable(f) if !f.ignored => {
                    by_host.insert(f.host.clone(), f.clone());
                }
                _ => {}
            }
        }
        by_host.into_values().collect()
    }

    pub fn facts(&self) -> BTreeMap<String, serde_json::Map<String, Value>> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let Event::Facts { host, facts } = e {
                out.insert(host.clone(), facts.clone());
            }
        }
        out
    }

    pub fn oks(&self) -> impl Iterator<Item = &TaskOk> {
        self.events.iter().filter_map(|e| match e {
            Event::Ok(o) => Some(o),
            _ => None,
        })
    }

    pub fn started(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::PlaybookStart { .. }))
    }

    pub fn stats(&self) -> Option<&BTreeMap<String, HostStats>> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Stats { hosts } => Some(hosts),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plugin_lines_and_keeps_the_last_failure_per_host() {
        let text = r#"{"event":"playbook_start","playbook":"site.yml"}
{"event":"facts","host":"web1","facts":{"os_family":"Debian","pkg_mgr":"apt"}}
{"event":"failed","host":"web1","task":"a","module":"ansible.builtin.command","msg":"x","ignored":true}
{"event":"failed","host":"web1","task":"b","module":"ansible.builtin.copy","msg":"Destination directory /srv/x does not exist","rc":null}
{"event":"unreachable","host":"db1","task":"Gathering Facts","unreachable":true,"msg":"ssh: connect to host 127.0.0.1 port 1: Connection refused"}
{"event":"something_new"}
not json
{"event":"stats","hosts":{"web1":{"ok":1,"failures":1}}}"#;
        let r = RunEvents::parse(text);
        assert_eq!(r.bad_lines, 1);
        assert!(r.started());
        let f = r.failures();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].host, "db1");
        assert!(f[0].unreachable);
        assert_eq!(f[1].task, "b");
        assert_eq!(f[1].module_short(), "copy");
        assert_eq!(r.facts()["web1"]["pkg_mgr"], "apt");
        assert_eq!(r.stats().unwrap()["web1"].failures, 1);
    }
}
