//! Carrying out the strategies beyond a plain retry: a bigger runner, fresh caches, a clean
//! workspace, and user-defined fixes. What each platform allows is decided by its API
//! (`Ci::can_rerun_with`, `Ci::can_clear_caches`, `Ci::clean_workspace_inputs`) and the
//! repository's configuration.

use crate::tenants::{render, CustomStrategy, Encoding, RepoConfig, Trigger};
use crate::Shared;
use pipeguard_core::event::Platform;
use pipeguard_core::heal::{Fix, StoredPlan};
use pipeguard_core::planner::{Call, Inputs, Traits};
use pipeguard_core::policy::{Capabilities, Risk, Strategy};
use pipeguard_core::{safety, Category};
use pipeguard_platforms::api::{send, HttpOptions};
use pipeguard_platforms::{Ci, PlatformError};
use pipeguard_store::SessionRecord;
use std::time::Duration;

/// Longest a fix command may run before it is killed and the heal escalated.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// What a strategy did on the platform.
pub struct Acted {
    pub detail: String,
    /// A new run the heal started, whose outcome is the heal's.
    pub new_run: Option<String>,
    /// The attempt whose completion is this heal's outcome, when the platform named it.
    pub attempt: Option<u32>,
}

/// How this platform and the repository's configuration carry strategies out: what the
/// planner turns a strategy into a platform call with.
pub fn traits(st: &Shared, s: &SessionRecord, ci: &dyn Ci) -> Traits {
    Traits {
        one_job_per_attempt: ci.one_job_per_attempt(),
        can_clear_caches: ci.can_clear_caches(),
        rerun_starts_new_run: ci.rerun_starts_new_run(),
        reset_command: reset_command(repo(st, s)).is_some(),
        steer_runners: st.config.runners.steer_parameter.is_some() && ci.can_steer_runners(),
    }
}

fn repo<'a>(st: &'a Shared, s: &SessionRecord) -> Option<&'a RepoConfig> {
    st.repo(Platform::parse(&s.platform)?, &s.repository)
        .map(|(_, r)| r)
}

fn has_inputs(t: Option<&Trigger>) -> bool {
    t.is_some_and(|t| !t.inputs.is_empty())
}

fn reset_command(r: Option<&RepoConfig>) -> Option<&Vec<String>> {
    r.and_then(|r| r.reset.as_ref())
        .and_then(|t| t.command.as_ref())
}

/// Adds what the repository's configuration makes possible to the platform's abilities.
pub fn widen(st: &Shared, s: &SessionRecord, ci: &dyn Ci, caps: &mut Capabilities) {
    let r = repo(st, s);
    let rerun = ci.can_rerun_with_for(&s.event);
    let clean = !ci.clean_workspace_inputs().is_empty();
    caps.scale_resources |= rerun && has_inputs(r.and_then(|r| r.scale.as_ref()));
    caps.clear_cache |=
        ci.can_clear_caches() || (rerun && r.and_then(|r| r.cache.variable.as_ref()).is_some());
    // Some platforms can ask for a clean workspace on their own; elsewhere a reset must be
    // configured.
    caps.reset_environment |= (caps.retry && reset_command(r).is_some())
        || (rerun && (clean || has_inputs(r.and_then(|r| r.reset.as_ref()))));
}

/// A command fix's argv for this session, templated element by element (never through a
/// shell, so a branch name cannot become code). A value that would turn an argument into an
/// option (a branch named `--force`) makes the command refused.
fn argv(cmd: &[String], s: &SessionRecord, category: &str) -> Result<Vec<String>, String> {
    cmd.iter()
        .map(|a| {
            let v = render(a, &s.event, category, &s.id, Encoding::Raw);
            if v.starts_with('-') && !a.starts_with('-') {
                return Err(format!(
                    "the value filled into {a:?} would make it an option ({v:?})"
                ));
            }
            Ok(v)
        })
        .collect()
}

/// The risk of a command fix for this session, and what it runs.
fn assess_fix(cmd: &[String], s: &SessionRecord, category: &str) -> (Risk, String) {
    match argv(cmd, s, category) {
        Ok(argv) => {
            let a = safety::assess(&argv);
            (a.level, format!("{} ({})", argv.join(" "), a.reason))
        }
        Err(why) => (Risk::Refused, why),
    }
}

/// The user-defined fixes that apply to this session's failure.
fn custom<'a>(st: &'a Shared, s: &SessionRecord, category: Category) -> Vec<&'a CustomStrategy> {
    st.config
        .strategies
        .iter()
        .filter(|c| c.applies(category, &s.repository))
        .collect()
}

/// The fixes that may run before the re-run of a failure of `category`, each with its safety
/// risk: the user-defined ones for the category, and the repository's reset command (which
/// belongs to the reset strategy). The plan decides which run and what their risk implies.
pub fn planned(st: &Shared, s: &SessionRecord, category: Category) -> Vec<Fix> {
    let cat = category.to_string();
    let mut fixes = Vec::new();
    for c in custom(st, s, category) {
        let (risk, what) = match (&c.http, &c.command) {
            (Some(h), _) => (
                Risk::Low,
                format!("{} {}", h.method.to_ascii_uppercase(), h.url),
            ),
            (None, Some(cmd)) => assess_fix(cmd, s, &cat),
            (None, None) => continue,
        };
        fixes.push(Fix {
            name: c.name.clone(),
            risk,
            what,
            strategy: None,
        });
    }
    if let Some(cmd) = reset_command(repo(st, s)) {
        let (risk, what) = assess_fix(cmd, s, &cat);
        fixes.push(Fix {
            name: "reset".into(),
            risk,
            what,
            strategy: Some(Strategy::ResetEnvironment),
        });
    }
    fixes
}

/// Runs a command fix with a time limit; its output's tail explains a failure.
async fn run_command(argv: &[String]) -> Result<String, PlatformError> {
    let a = safety::assess(argv);
    if a.level == Risk::Refused {
        return Err(PlatformError::Permanent(format!(
            "refused by the safety assessment: {}",
            a.reason
        )));
    }
    let out = tokio::time::timeout(
        COMMAND_TIMEOUT,
        tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| PlatformError::Permanent(format!("{} timed out", argv[0])))?
    .map_err(|e| PlatformError::Permanent(format!("cannot run {}: {e}", argv[0])))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let tail: String = text
        .lines()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    if out.status.success() {
        Ok(format!("{} exited 0", argv.join(" ")))
    } else {
        Err(PlatformError::Permanent(format!(
            "{} failed ({}): {tail}",
            argv.join(" "),
            out.status
        )))
    }
}

async fn run_http(
    st: &Shared,
    c: &CustomStrategy,
    s: &SessionRecord,
) -> Result<String, PlatformError> {
    let Some(h) = &c.http else {
        return Ok(String::new());
    };
    let cat = s.category.clone().unwrap_or_default();
    let url = render(&h.url, &s.event, &cat, &s.id, Encoding::Url);
    let body = h
        .body
        .as_ref()
        .map(|b| render(b, &s.event, &cat, &s.id, Encoding::Json));
    let method = reqwest::Method::from_bytes(h.method.to_ascii_uppercase().as_bytes())
        .map_err(|e| PlatformError::Permanent(format!("bad method: {e}")))?;
    send(&c.name, &url, &HttpOptions::default(), || {
        let mut b = st.notifier.http().request(method.clone(), &url);
        for (k, v) in &h.headers {
            b = b.header(k, v);
        }
        if let Some(body) = &body {
            b = b
                .header("Content-Type", "application/json")
                .body(body.clone());
        }
        b
    })
    .await?;
    Ok(format!("{method} {url}"))
}

/// How a fix is carried out.
enum FixCall<'a> {
    Http(&'a CustomStrategy),
    Command(Result<Vec<String>, String>),
}

/// Runs the plan's custom fixes once per heal attempt, before the re-run.
pub async fn run_fixes(st: &Shared, s: &SessionRecord, attempt: i64) -> Result<(), PlatformError> {
    let store_err =
        |e: pipeguard_store::StoreError| PlatformError::Transient(format!("store: {e}"));
    let category: Category = match &s.plan {
        Some(p) => p.category,
        None => s
            .category
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(Category::Unknown),
    };
    let cat = category.to_string();
    let mut fixes: Vec<(String, FixCall)> = custom(st, s, category)
        .into_iter()
        .map(|c| {
            let call = match &c.command {
                Some(cmd) => FixCall::Command(argv(cmd, s, &cat)),
                None => FixCall::Http(c),
            };
            (c.name.clone(), call)
        })
        .collect();
    if s.strategy.as_deref() == Some(Strategy::ResetEnvironment.as_str()) {
        if let Some(cmd) = reset_command(repo(st, s)) {
            fixes.push(("reset".into(), FixCall::Command(argv(cmd, s, &cat))));
        }
    }
    for (name, call) in fixes {
        let target = format!("fix:{name}");
        if !st
            .store
            .claim_action(&s.id, attempt, &target, "fix")
            .await
            .map_err(store_err)?
        {
            continue;
        }
        let is_command = matches!(call, FixCall::Command(_));
        let result = match call {
            FixCall::Command(Ok(argv)) => run_command(&argv).await,
            FixCall::Command(Err(why)) => Err(PlatformError::Permanent(why)),
            FixCall::Http(c) => run_http(st, c, s).await,
        };
        let action = if is_command {
            "command.run"
        } else {
            "platform.call"
        };
        let audited = match &result {
            Ok(d) => (d.clone(), "done"),
            Err(e) => (e.to_string(), "error"),
        };
        crate::audit::acted(st, &s.id, action, &audited.0, audited.1).await;
        match result {
            Ok(detail) => st
                .store
                .finish_action(&s.id, attempt, &target, "done", &detail)
                .await
                .map_err(store_err)?,
            Err(e) => {
                st.store
                    .finish_action(&s.id, attempt, &target, "error", &e.to_string())
                    .await
                    .map_err(store_err)?;
                if matches!(e, PlatformError::Transient(_)) {
                    st.store
                        .release_action(&s.id, attempt, &target)
                        .await
                        .map_err(store_err)?;
                }
                return Err(match e {
                    PlatformError::Transient(m) => {
                        PlatformError::Transient(format!("fix {name}: {m}"))
                    }
                    other => PlatformError::Permanent(format!("fix {name}: {other}")),
                });
            }
        }
    }
    Ok(())
}

/// Makes the platform call the planner chose.
pub async fn act(
    st: &Shared,
    s: &SessionRecord,
    ci: &dyn Ci,
    call: Call,
    plan: &StoredPlan,
) -> Result<Acted, PlatformError> {
    let retry = || async {
        ci.retry_tracked(&s.event, &plan.jobs, plan.all_failed)
            .await
            .map(|r| Acted {
                detail: r.detail,
                new_run: None,
                attempt: r.attempt,
            })
    };
    match call {
        Call::Retry => retry().await,
        Call::ClearCachesThenRetry => {
            let prefix = repo(st, s).and_then(|r| r.cache.key_prefix.as_deref());
            let cleared = ci.clear_caches(&s.event, prefix).await?;
            let done = retry().await?;
            Ok(Acted {
                detail: format!("{cleared}; {}", done.detail),
                ..done
            })
        }
        Call::RerunWith(Inputs::AvoidRunners) => {
            let parameter = st
                .config
                .runners
                .steer_parameter
                .as_deref()
                .ok_or_else(|| {
                    PlatformError::NotConfigured("[runners] steer_parameter is not set".into())
                })?;
            let r = ci
                .rerun_avoiding(&s.event, parameter, &plan.avoid_runners)
                .await?;
            Ok(Acted {
                detail: r.detail,
                new_run: r.new_run_id,
                attempt: r.new_attempt,
            })
        }
        Call::RerunWith(inputs) => {
            let (workflow, vars) = rerun_inputs(st, s, ci, inputs)?;
            let r = ci.rerun_with(&s.event, workflow.as_deref(), &vars).await?;
            Ok(Acted {
                detail: r.detail,
                new_run: r.new_run_id,
                attempt: r.new_attempt,
            })
        }
    }
}

/// A re-run's workflow (`None`: the run's own) and its inputs.
type Rerun = (Option<String>, Vec<(String, String)>);

/// The workflow and inputs of a re-run, from the repository's configuration.
fn rerun_inputs(
    st: &Shared,
    s: &SessionRecord,
    ci: &dyn Ci,
    inputs: Inputs,
) -> Result<Rerun, PlatformError> {
    let r = repo(st, s);
    let of = |t: Option<&Trigger>| -> Vec<(String, String)> {
        t.map(|t| {
            t.inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
    };
    let workflow = |t: Option<&Trigger>| t.and_then(|t| t.workflow.clone());
    Ok(match inputs {
        Inputs::Scale => {
            let scale = r.and_then(|r| r.scale.as_ref());
            (workflow(scale), of(scale))
        }
        Inputs::FreshCacheKey => {
            let variable = r
                .and_then(|r| r.cache.variable.clone())
                .ok_or_else(|| PlatformError::NotConfigured("no cache variable".into()))?;
            // A value no earlier run used gives the jobs an empty cache.
            let fresh = format!(
                "pipeguard-{}-{}",
                &s.id[..8.min(s.id.len())],
                s.heal_attempts + 1
            );
            let trigger = r.and_then(|r| r.scale.as_ref().or(r.reset.as_ref()));
            (workflow(trigger), vec![(variable, fresh)])
        }
        Inputs::CleanWorkspace => {
            let reset = r.and_then(|r| r.reset.as_ref());
            let mut vars = of(reset);
            for (k, v) in ci.clean_workspace_inputs() {
                if !vars.iter().any(|(name, _)| *name == k) {
                    vars.push((k, v));
                }
            }
            (workflow(reset), vars)
        }
        Inputs::AvoidRunners => {
            return Err(PlatformError::NotConfigured(
                "a steered re-run is composed by the platform".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_command_is_not_started_whatever_the_plan_said() {
        // Harmless if it ran (it exits first), refused for what it holds.
        let argv: Vec<String> = ["sh", "-c", "exit 7; rm -rf /"].map(String::from).to_vec();
        let e = run_command(&argv).await.unwrap_err();
        assert!(
            e.to_string().contains("refused by the safety assessment"),
            "{e}"
        );
    }
}
