//! Safety assessment of commands before anything runs them.
//!
//! Every command is parsed into argv the way a shell would read it (quotes, escapes,
//! `$'\x72m'`, variables, arrays and `${...}` operations set earlier in the same script,
//! `$(...)`, here-documents, functions, aliases, loops, the working directory) and each
//! resulting command is judged on its argv, never on substrings of the text. Commands run
//! inside other commands — `sudo`, `env`, `sh -c`, `eval`, `xargs`, `find -exec`,
//! `kubectl exec`, `docker exec|run`, `ssh HOST CMD`, `ansible -a`, functions, files the
//! script wrote — are judged as themselves, with what reaches their standard input
//! (`echo / | xargs rm -rf`); text decoded on the way (base64, hex, printf escapes, `rev`,
//! `tr`, `sed`) is read as the script it becomes.
//!
//! What commands do is data: one TOML table per family under `tables/` (filesystem, system,
//! packages, services, containers, cloud, databases, vcs, wrappers, interpreters, readonly),
//! read by `tables.rs`. Commands whose risk depends on the paths, processes or units they are
//! given are judged in code (`commands.rs`) against the path lists of `filesystem.toml`.
//!
//! The verdict is the worst finding: `low` (install a package, restart a service, read
//! state), `medium` (change a file or one thing, stop a process), `high` (system paths,
//! users, firewall, kernel, disks, code computed at run time, deleting one replaceable cloud
//! resource, force-pushing a branch, scaling to zero) and `refused` (destructive whatever
//! the caller says: deleting `/`, a home, a database, a bucket, a namespace, a repository
//! or a whole environment, formatting disks, shutdown, fork bombs, downloads piped into a
//! shell, and their obfuscated spellings).

pub mod shell;

mod builtins;
mod commands;
mod content;
mod decode;
mod engine;
mod expand;
mod inline;
mod paths;
mod shells;
mod tables;

// The modules name the shared taxonomy, and this crate, by their paths in pipeguard-core,
// where they lived.
#[cfg(test)]
use crate as safety;
use pipeguard_taxonomy::glob;
mod policy {
    pub(crate) use pipeguard_taxonomy::Risk;
}

use crate::policy::Risk;
use engine::{Arg, Ctx};
use serde::{Deserialize, Serialize};

/// One reason that contributed to the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub level: Risk,
    pub reason: String,
    /// The command the finding is about, as argv joined for display.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub level: Risk,
    /// The reason of the worst finding.
    pub reason: String,
    pub findings: Vec<Finding>,
}

impl Assessment {
    pub fn allowed_without_approval(&self) -> bool {
        self.level <= Risk::Medium
    }
}

/// `low`, `medium`, `high` or `refused`, as in JSON.
pub fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
        Risk::Refused => "refused",
    }
}

/// Assess a command given as argv (what `execve` would receive). A single argument that
/// contains shell syntax is read as a shell script, since that is how such strings end up run.
pub fn assess(argv: &[String]) -> Assessment {
    if argv.is_empty() {
        return verdict(vec![Finding {
            level: Risk::Refused,
            reason: "empty command".into(),
            command: String::new(),
        }]);
    }
    if argv.len() == 1 && argv[0].chars().any(|c| " \t\n;&|<>()$`\\'\"*".contains(c)) {
        return assess_script(&argv[0]);
    }
    let Some(mut ctx) = context() else {
        return unreadable();
    };
    let args: Vec<Arg> = argv
        .iter()
        .map(|a| Arg::literal(&a.replace([DYN, TMP], "\u{fffd}")))
        .collect();
    ctx.command(args, &content::Input::Outside);
    verdict(ctx.findings)
}

/// Assess a shell script (as `sh -c SCRIPT` would run it).
pub fn assess_script(script: &str) -> Assessment {
    let Some(mut ctx) = context() else {
        return unreadable();
    };
    ctx.script(script);
    verdict(ctx.findings)
}

fn context() -> Option<Ctx> {
    tables::tables().ok().map(Ctx::new)
}

/// The rule tables did not load (a build defect the unit tests catch): nothing is allowed.
fn unreadable() -> Assessment {
    let reason = match tables::tables() {
        Err(e) => format!("the safety rule tables cannot be read: {e}"),
        Ok(_) => "the safety rule tables cannot be read".to_string(),
    };
    verdict(vec![Finding {
        level: Risk::Refused,
        reason,
        command: String::new(),
    }])
}

fn verdict(mut findings: Vec<Finding>) -> Assessment {
    if findings.is_empty() {
        findings.push(Finding {
            level: Risk::Low,
            reason: "nothing to run".into(),
            command: String::new(),
        });
    }
    let worst = findings
        .iter()
        .enumerate()
        .max_by_key(|(i, f)| (f.level, std::cmp::Reverse(*i)))
        .map(|(_, f)| f.clone())
        .unwrap_or_else(|| findings[0].clone());
    Assessment {
        level: worst.level,
        reason: worst.reason,
        findings,
    }
}

/// Marks the place of an expansion whose value is only known at run time.
const DYN: char = '\u{1}';
/// Follows `DYN` when that expansion is the run's temporary or work directory (`$TMPDIR`,
/// `$GITHUB_WORKSPACE`, unset in the script); the text never holds it otherwise.
const TMP: char = '\u{4}';

/// What a proposed command is for: the model's answers and the Ansible host loop sort the
/// commands they gate by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Diagnostic,
    Fix,
    Verify,
    Rollback,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Diagnostic => "diagnostic",
            Purpose::Fix => "fix",
            Purpose::Verify => "verify",
            Purpose::Rollback => "rollback",
        }
    }
}
