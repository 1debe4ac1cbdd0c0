//! One command on one host through Ansible ad-hoc (`ansible HOST -m command|shell -a CMD
//! --tree DIR`), bounded in time and output and redacted: what `pipeguard ansible`'s host
//! loop and the server's run on a host.

use pipeguard_ansible::fit;
use pipeguard_ansible::hostloop::Proposal;
use pipeguard_ansible::HostFacts;
use pipeguard_core::secrets::Redactor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one ad-hoc command may run on a host.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a command's output is kept (its end).
pub const MAX_OUTPUT: usize = 4000;

/// How to reach hosts with `ansible`.
#[derive(Debug, Clone)]
pub struct Adhoc {
    /// The `ansible` executable.
    pub ansible: PathBuf,
    pub inventory: Option<String>,
    /// Extra arguments (`--connection`, …).
    pub connection_args: Vec<String>,
    /// `ANSIBLE_PYTHON_INTERPRETER`, when set.
    pub python: Option<String>,
    pub redactor: Redactor,
    pub timeout: Duration,
}

impl Adhoc {
    pub fn new(ansible: PathBuf, inventory: Option<String>) -> Adhoc {
        Adhoc {
            ansible,
            inventory,
            connection_args: vec![],
            python: None,
            redactor: Redactor::default(),
            timeout: TIMEOUT,
        }
    }

    /// Runs `script` on `host` (with `--become` when asked), Ansible's result written under
    /// `tree`; returns its exit code (124 on timeout) and its redacted output's end
    /// (stdout, stderr, or Ansible's message).
    pub fn run(
        &self,
        host: &str,
        script: &str,
        become_: bool,
        tree: &Path,
    ) -> std::io::Result<(i32, String)> {
        let module = if fit::is_plain_command(script) {
            "ansible.builtin.command"
        } else {
            "ansible.builtin.shell"
        };
        let Some(text) = self.module(host, module, script, become_, tree)? else {
            let why = format!("timed out after {} s", self.timeout.as_secs());
            return Ok((124, why));
        };
        let (code, output) = result(&text);
        Ok((code, self.redactor.redact(&tail(&output, MAX_OUTPUT))))
    }

    /// The host's facts from Ansible's setup module (it only reads); `None` when the host
    /// could not tell them in time.
    pub fn facts(&self, host: &str, tree: &Path) -> std::io::Result<Option<HostFacts>> {
        let text = self.module(host, "ansible.builtin.setup", "", false, tree)?;
        let v: serde_json::Value =
            serde_json::from_str(&text.unwrap_or_default()).unwrap_or_default();
        Ok(v.get("ansible_facts").map(HostFacts::from_setup))
    }

    /// Runs one module on `host`; its `--tree` result, or `None` on timeout.
    fn module(
        &self,
        host: &str,
        module: &str,
        args: &str,
        become_: bool,
        tree: &Path,
    ) -> std::io::Result<Option<String>> {
        let mut cmd = Command::new(&self.ansible);
        cmd.arg(host);
        if let Some(i) = &self.inventory {
            cmd.arg("-i").arg(i);
        }
        cmd.args(["-m", module]);
        if !args.is_empty() {
            cmd.args(["-a", args]);
        }
        cmd.arg("--tree").arg(tree);
        if become_ {
            cmd.arg("--become");
        }
        cmd.args(&self.connection_args);
        if let Some(py) = &self.python {
            cmd.env("ANSIBLE_PYTHON_INTERPRETER", py);
        }
        cmd.env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn()?;
        let t0 = Instant::now();
        while child.try_wait()?.is_none() {
            if t0.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(
            std::fs::read_to_string(tree.join(host)).unwrap_or_default(),
        ))
    }
}

/// The exit code and output of one host's `--tree` file.
fn result(text: &str) -> (i32, String) {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .trim_end()
            .to_string()
    };
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    let failed = flag("failed") || flag("unreachable");
    let code = v
        .get("rc")
        .and_then(|x| x.as_i64())
        .map(|c| c as i32)
        .unwrap_or(if failed || text.is_empty() { 1 } else { 0 });
    let mut output: Vec<String> = [s("stdout"), s("stderr")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
    if output.is_empty() {
        output.push(s("msg"));
    }
    (code, output.join("\n"))
}

/// The end of `s`, at most `max` characters.
pub fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(max)).collect()
}

/// The `host_fixes` row for what healed `host`: the CLI's and the server's loops learn alike.
pub fn learned_row(
    fix: pipeguard_ansible::hostloop::LearnedFix,
    host: &str,
) -> pipeguard_store::hosts::HostFix {
    pipeguard_store::hosts::HostFix {
        fingerprint: fix.fingerprint,
        os_family: fix.os_family,
        diagnostics: fix.diagnostics,
        fixes: fix.fixes,
        verification: fix.verification,
        last_host: host.to_string(),
        ..Default::default()
    }
}

/// What the hosts database learned, as the loop replays and offers it.
pub fn learned(rows: Vec<pipeguard_store::hosts::HostFix>) -> pipeguard_ansible::hostloop::Learned {
    let entries = rows
        .into_iter()
        .map(|r| pipeguard_ansible::hostloop::LearnedFix {
            fingerprint: r.fingerprint,
            os_family: r.os_family,
            diagnostics: r.diagnostics,
            fixes: r.fixes,
            verification: r.verification,
            healed: r.healed.clamp(0, u32::MAX as i64) as u32,
        })
        .collect();
    pipeguard_ansible::hostloop::Learned { entries }
}

/// The host as the analyst is told about it: the facts' one-line summary (OS, package and
/// service manager, free memory and disk) and the managers by name.
pub fn analyst_facts(f: &HostFacts) -> pipeguard_llm::HostFacts {
    pipeguard_llm::HostFacts {
        os: Some(f.summary()),
        package_manager: f.pkg_mgr.clone(),
        service_manager: f.service_mgr.clone(),
    }
}

/// The analyst's commands by purpose, in its order (the gate decides later what runs; the
/// assessment the analyst attached is not trusted).
pub fn proposal(e: &pipeguard_llm::Explanation) -> Proposal {
    use pipeguard_llm::Purpose as P;
    let of = |p: P| -> Vec<String> {
        e.commands
            .iter()
            .filter(|c| c.purpose == p)
            .map(|c| c.command.clone())
            .collect()
    };
    Proposal {
        diagnostics: of(P::Diagnostic),
        fixes: of(P::Fix),
        verification: of(P::Verify),
        rollback: of(P::Rollback),
    }
}

/// The answer of the analyst's second round, when usable; else the first answer stands.
/// Its diagnostics are dropped: there is no third round to read them.
pub fn second_round(
    first: &pipeguard_llm::Explanation,
    second: pipeguard_llm::Explanation,
) -> Result<pipeguard_llm::Explanation, String> {
    if !second.is_usable() {
        return Err(second.reason);
    }
    let mut e = second;
    e.commands
        .retain(|c| c.purpose != pipeguard_llm::Purpose::Diagnostic);
    e.commands.extend(
        first
            .commands
            .iter()
            .filter(|c| c.purpose == pipeguard_llm::Purpose::Diagnostic)
            .cloned(),
    );
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_file_gives_the_exit_code_and_output() {
        let (c, o) = result(r#"{"rc": 2, "stdout": "a\n", "stderr": "no such file"}"#);
        assert_eq!((c, o.as_str()), (2, "a\nno such file"));
        let (c, o) = result(r#"{"unreachable": true, "msg": "ssh: refused"}"#);
        assert_eq!((c, o.as_str()), (1, "ssh: refused"));
        assert_eq!(result("").0, 1, "no result is a failure");
        assert_eq!(tail("abcdef", 2), "ef");
    }
}
