//! Many repositories, one service: per-repository credentials, policy overrides and the
//! mappings the strategies beyond retry need (a bigger runner, a cache key, a clean
//! workspace), plus user-defined strategies and notification channels.

use anyhow::{bail, Result};
use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_core::policy::Policy;
use pipeguard_core::policy::Risk;
use pipeguard_core::safety;
use pipeguard_core::Category;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One repository (GitHub `owner/repo`, GitLab project path, Jenkins job path, CircleCI
/// slug, Buildbot builder) or a family of them (`name` ending in `*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoConfig {
    pub platform: String,
    pub name: String,
    /// Replaces the platform's token for this repository's API calls.
    pub token: Option<String>,
    /// Jenkins or Buildbot user that goes with `token`.
    pub user: Option<String>,
    pub api_url: Option<String>,
    /// Replaces the platform's webhook secret for deliveries about this repository.
    pub webhook_secret: Option<String>,
    pub healing: PolicyOverrides,
    /// Replaces `[healing] mode` for this repository (the mode set through the API wins).
    pub mode: Option<pipeguard_core::planner::Mode>,
    /// How to re-run on a bigger runner.
    pub scale: Option<Trigger>,
    pub cache: CacheConfig,
    /// How to re-run on a clean workspace.
    pub reset: Option<Trigger>,
}

/// Any `[healing]` setting, for one repository.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverrides {
    pub max_attempts: Option<u32>,
    pub backoff_seconds: Option<u64>,
    pub side_effect_patterns: Option<Vec<String>>,
    pub min_confidence: Option<f64>,
}

/// Starting the work again with changed inputs: GitHub workflow-dispatch inputs (with the
/// workflow file), GitLab pipeline variables, CircleCI pipeline parameters, Jenkins build
/// parameters. Or, for a reset, a command (an Ansible playbook, say), assessed for safety.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trigger {
    pub workflow: Option<String>,
    pub inputs: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// GitHub: delete only caches whose key starts with this (all of the branch's otherwise).
    pub key_prefix: Option<String>,
    /// GitLab variable, CircleCI parameter or Jenkins parameter that feeds the cache key;
    /// set to a fresh value, it makes the jobs start from an empty cache.
    pub variable: Option<String>,
}

/// A user-defined fix run before the re-run, for the listed categories.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomStrategy {
    pub name: String,
    pub categories: Vec<String>,
    /// Repository names or `prefix*` patterns; empty means every repository.
    pub repos: Vec<String>,
    pub http: Option<HttpCall>,
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    /// Templated: `{{repository}}`, `{{run_id}}`, `{{branch}}`, `{{sha}}`, `{{category}}`,
    /// `{{platform}}`, `{{session_id}}`. Values are JSON-escaped.
    pub body: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpCall {
    fn default() -> Self {
        HttpCall {
            method: "POST".into(),
            url: String::new(),
            body: None,
            headers: BTreeMap::new(),
        }
    }
}

/// A channel told when a session needs people: a Slack-compatible incoming webhook
/// (`kind = "slack"`, also Mattermost and Rocket.Chat) or a generic JSON webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    pub kind: String,
    pub url: String,
    /// Signs generic webhook bodies: `X-Pipeguard-Signature-256: sha256=<hmac>`.
    pub secret: Option<String>,
    /// Session statuses that notify.
    pub on: Vec<String>,
    pub repos: Vec<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            kind: "webhook".into(),
            url: String::new(),
            secret: None,
            on: ["escalated", "failed", "awaiting_approval"]
                .map(String::from)
                .to_vec(),
            repos: vec![],
        }
    }
}

/// `pattern` is a name or a prefix ending in `*`; case does not matter, as platforms resolve
/// `Octo/App` and `octo/app` to the same repository.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_lowercase(), name.to_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn repos_match(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| name_matches(p, name))
}

impl RepoConfig {
    pub fn platform(&self) -> Option<Platform> {
        Platform::parse(&self.platform)
    }

    /// The global policy with this repository's overrides.
    pub fn policy(&self, base: &Policy) -> Policy {
        let o = &self.healing;
        Policy {
            max_attempts: o.max_attempts.unwrap_or(base.max_attempts),
            backoff_seconds: o.backoff_seconds.unwrap_or(base.backoff_seconds),
            side_effect_patterns: o
                .side_effect_patterns
                .clone()
                .unwrap_or_else(|| base.side_effect_patterns.clone()),
            min_confidence: o.min_confidence.unwrap_or(base.min_confidence),
        }
    }
}

/// The most specific entry for a repository: an exact name wins over the longest pattern.
pub fn find_repo<'a>(
    repos: &'a [RepoConfig],
    platform: Platform,
    name: &str,
) -> Option<(usize, &'a RepoConfig)> {
    repos
        .iter()
        .enumerate()
        .filter(|(_, r)| r.platform() == Some(platform) && name_matches(&r.name, name))
        .max_by_key(|(_, r)| {
            (
                !r.name.ends_with('*'),
                r.name.len(),
                std::cmp::Reverse(r.name.clone()),
            )
        })
}

impl CustomStrategy {
    pub fn applies(&self, category: Category, repository: &str) -> bool {
        self.categories
            .iter()
            .any(|c| c.parse::<Category>().ok() == Some(category))
            && repos_match(&self.repos, repository)
    }
}

impl NotifyConfig {
    pub fn wants(&self, status: &str, repository: &str) -> bool {
        self.on.iter().any(|s| s == status) && repos_match(&self.repos, repository)
    }
}

/// How placeholder values are written into a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As they are (one argument of a command, never a shell line).
    Raw,
    /// Inside a JSON string.
    Json,
    /// Percent-encoded, for a URL.
    Url,
}

/// Fills `{{name}}` placeholders with the event's values, encoded for where they go.
pub fn render(
    template: &str,
    ev: &FailureEvent,
    category: &str,
    session_id: &str,
    encoding: Encoding,
) -> String {
    let vars = [
        ("repository", ev.repository.as_str()),
        ("run_id", ev.run_id.as_str()),
        ("branch", ev.branch.as_deref().unwrap_or("")),
        ("sha", ev.head_sha.as_deref().unwrap_or("")),
        ("category", category),
        ("platform", ev.platform.map(|p| p.as_str()).unwrap_or("")),
        ("session_id", session_id),
    ];
    let mut out = template.to_string();
    for (k, v) in vars {
        let value = match encoding {
            Encoding::Json => {
                let quoted = serde_json::Value::String(v.to_string()).to_string();
                quoted[1..quoted.len() - 1].to_string()
            }
            Encoding::Url => pipeguard_platforms::api::encode(v),
            Encoding::Raw => v.to_string(),
        };
        out = out.replace(&format!("{{{{{k}}}}}"), &value);
    }
    out
}

/// Rejects configuration that could not work or must never run, at start rather than
/// in the middle of a heal.
pub fn validate(
    repos: &[RepoConfig],
    strategies: &[CustomStrategy],
    notify: &[NotifyConfig],
) -> Result<()> {
    for r in repos {
        if r.platform().is_none() {
            bail!(
                "repos: {:?} is not a platform (name {:?})",
                r.platform,
                r.name
            );
        }
        if r.name.trim().is_empty() {
            bail!("repos: an entry for {} has no name", r.platform);
        }
        for t in [&r.scale, &r.reset].into_iter().flatten() {
            if let Some(cmd) = &t.command {
                check_command(&format!("repos {:?}", r.name), cmd)?;
            }
            // GitHub starts the new run by dispatching a workflow, which must be named.
            if r.platform() == Some(Platform::Github)
                && !t.inputs.is_empty()
                && t.workflow.is_none()
            {
                bail!(
                    "repos {:?}: inputs need the workflow file to dispatch (workflow = \"ci.yml\")",
                    r.name
                );
            }
        }
    }
    for s in strategies {
        if s.name.trim().is_empty() {
            bail!("strategies: an entry has no name");
        }
        if s.categories.is_empty() {
            bail!("strategies {:?}: list the categories it fixes", s.name);
        }
        for c in &s.categories {
            if c.parse::<Category>().is_err() {
                bail!("strategies {:?}: {c:?} is not a category", s.name);
            }
        }
        match (&s.http, &s.command) {
            (Some(h), None) => {
                if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                    bail!("strategies {:?}: http.url must be an http(s) URL", s.name);
                }
                if reqwest::Method::from_bytes(h.method.to_ascii_uppercase().as_bytes()).is_err() {
                    bail!(
                        "strategies {:?}: {:?} is not an HTTP method",
                        s.name,
                        h.method
                    );
                }
            }
            (None, Some(cmd)) => check_command(&format!("strategies {:?}", s.name), cmd)?,
            _ => bail!(
                "strategies {:?}: give exactly one of http or command",
                s.name
            ),
        }
    }
    for n in notify {
        let platform_kind = crate::notify::platform::platform_of(&n.kind).is_some();
        if n.kind != "slack" && n.kind != "webhook" && !platform_kind {
            let platform_kinds: Vec<&str> =
                crate::notify::platform::KINDS.iter().map(|k| k.0).collect();
            bail!(
                "notify: kind {:?} is not slack, webhook or one of {}",
                n.kind,
                platform_kinds.join(", ")
            );
        }
        if !(n.url.starts_with("http://") || n.url.starts_with("https://")) {
            bail!("notify: url {:?} must be an http(s) URL", n.url);
        }
    }
    Ok(())
}

fn check_command(what: &str, argv: &[String]) -> Result<()> {
    if argv.is_empty() {
        bail!("{what}: command is empty");
    }
    let a = safety::assess(argv);
    if a.level == Risk::Refused {
        bail!(
            "{what}: command refused by the safety assessment: {}",
            a.reason
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(platform: &str, name: &str) -> RepoConfig {
        RepoConfig {
            platform: platform.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exact_names_win_over_patterns() {
        let repos = vec![
            repo("github", "octo/*"),
            repo("github", "octo/app"),
            repo("gitlab", "octo/app"),
            repo("github", "o*"),
        ];
        assert_eq!(
            find_repo(&repos, Platform::Github, "octo/app").unwrap().0,
            1
        );
        assert_eq!(
            find_repo(&repos, Platform::Github, "octo/lib").unwrap().0,
            0
        );
        assert_eq!(find_repo(&repos, Platform::Github, "other/x").unwrap().0, 3);
        assert_eq!(
            find_repo(&repos, Platform::Gitlab, "octo/app").unwrap().0,
            2
        );
        assert!(find_repo(&repos, Platform::Jenkins, "octo/app").is_none());
        assert_eq!(
            find_repo(&repos, Platform::Github, "Octo/App").unwrap().0,
            1
        );
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let mut r = repo("github", "a/b");
        r.healing.max_attempts = Some(1);
        let p = r.policy(&Policy::default());
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.backoff_seconds, Policy::default().backoff_seconds);
    }

    #[test]
    fn templates_escape_json_values() {
        let ev = FailureEvent {
            repository: "a/b".into(),
            branch: Some("fix\"quote".into()),
            ..Default::default()
        };
        let body = render(
            r#"{"repo":"{{repository}}","ref":"{{branch}}"}"#,
            &ev,
            "network",
            "s1",
            Encoding::Json,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ref"], "fix\"quote");
        assert_eq!(
            render("{{branch}}", &ev, "", "", Encoding::Raw),
            "fix\"quote"
        );
        let url = render("https://x/r?b={{branch}}", &ev, "", "", Encoding::Url);
        assert_eq!(url, "https://x/r?b=fix%22quote");
    }

    #[test]
    fn refused_commands_and_bad_entries_are_configuration_errors() {
        let rm = CustomStrategy {
            name: "wipe".into(),
            categories: vec!["disk_full".into()],
            command: Some(vec!["rm".into(), "-rf".into(), "/".into()]),
            ..Default::default()
        };
        let err = validate(&[], &[rm], &[]).unwrap_err().to_string();
        assert!(err.contains("refused"), "{err}");
        let bad_cat = CustomStrategy {
            name: "x".into(),
            categories: vec!["gremlins".into()],
            http: Some(HttpCall {
                url: "http://127.0.0.1/x".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(validate(&[], &[bad_cat], &[]).is_err());
        assert!(validate(&[repo("gitlub", "x")], &[], &[]).is_err());
        let n = NotifyConfig {
            kind: "pager".into(),
            url: "http://x".into(),
            ..Default::default()
        };
        assert!(validate(&[], &[], &[n]).is_err());
        assert!(validate(&[repo("github", "a/*")], &[], &[]).is_ok());
        let mut no_workflow = repo("github", "a/b");
        no_workflow.scale = Some(Trigger {
            inputs: [("runner".to_string(), "large".to_string())].into(),
            ..Default::default()
        });
        assert!(validate(&[no_workflow], &[], &[]).is_err());
    }
}
