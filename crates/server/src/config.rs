//! Configuration: an optional TOML file, overridden by `PIPEGUARD_*` environment variables.

use anyhow::{Context, Result};
use pipeguard_core::policy::Policy;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    /// Largest webhook body accepted, in bytes (GitHub caps deliveries at 25 MB).
    pub max_body_bytes: usize,
    pub github: GithubSection,
    pub gitlab: GitlabSection,
    pub jenkins: JenkinsSection,
    pub buildbot: BuildbotSection,
    pub circleci: CircleciSection,
    pub ansible: AnsibleSection,
    pub healing: HealingSection,
    pub worker: WorkerSection,
    /// Per-repository credentials, policy overrides and strategy mappings.
    pub repos: Vec<crate::tenants::RepoConfig>,
    /// User-defined fixes run before a re-run.
    pub strategies: Vec<crate::tenants::CustomStrategy>,
    /// Channels told when a session needs people.
    pub notify: Vec<crate::tenants::NotifyConfig>,
}

/// The Ansible callback plugin's bearer token (`PIPEGUARD_TOKEN` on the Ansible side).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnsibleSection {
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubSection {
    pub webhook_secret: Option<String>,
    pub token: Option<String>,
    pub api_url: String,
}

/// GitLab CI (gitlab.com or self-managed: `api_url` is the instance root).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitlabSection {
    pub webhook_secret: Option<String>,
    pub token: Option<String>,
    pub api_url: String,
}

impl Default for GitlabSection {
    fn default() -> Self {
        GitlabSection {
            webhook_secret: None,
            token: None,
            api_url: "https://gitlab.com".into(),
        }
    }
}

/// Jenkins: `api_url` is the Jenkins root; `user` + `token` are a user and its API token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JenkinsSection {
    pub webhook_secret: Option<String>,
    pub user: Option<String>,
    pub token: Option<String>,
    pub api_url: String,
}

/// Buildbot: `api_url` is the master's web root (`c['buildbotURL']`); `user` + `password` a
/// user of its `www` auth when the API is not open to anonymous users.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildbotSection {
    pub webhook_secret: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub api_url: String,
}

impl Default for BuildbotSection {
    fn default() -> Self {
        BuildbotSection {
            webhook_secret: None,
            user: None,
            password: None,
            api_url: "http://127.0.0.1:8010".into(),
        }
    }
}

/// CircleCI (cloud or server: `api_url` is the host the v1.1 and v2 APIs live on).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircleciSection {
    pub webhook_secret: Option<String>,
    pub token: Option<String>,
    pub api_url: String,
}

impl Default for CircleciSection {
    fn default() -> Self {
        CircleciSection {
            webhook_secret: None,
            token: None,
            api_url: "https://circleci.com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingSection {
    pub backoff_seconds: u64,
    pub max_attempts: u32,
    pub side_effect_patterns: Vec<String>,
    pub min_confidence: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// How often to ask the platform whether a re-run finished, when no webhook said so.
    pub verify_poll_seconds: u64,
    /// How long to wait for a run to complete before healing or for a heal to be verified.
    pub wait_limit_seconds: u64,
    /// Tries of one job on transient platform errors before the session is failed.
    pub max_job_tries: u32,
    /// Lease of a claimed job; a crashed worker's job is taken again after it.
    pub lease_seconds: u64,
    /// First delay between platform API tries on transient errors, in milliseconds.
    pub http_backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://pipeguard.db".into(),
            max_body_bytes: 25 * 1024 * 1024,
            github: GithubSection::default(),
            gitlab: GitlabSection::default(),
            jenkins: JenkinsSection::default(),
            buildbot: BuildbotSection::default(),
            ansible: AnsibleSection::default(),
            circleci: CircleciSection::default(),
            healing: HealingSection::default(),
            worker: WorkerSection::default(),
            repos: vec![],
            strategies: vec![],
            notify: vec![],
        }
    }
}

impl Default for GithubSection {
    fn default() -> Self {
        GithubSection {
            webhook_secret: None,
            token: None,
            api_url: "https://api.github.com".into(),
        }
    }
}

impl Default for HealingSection {
    fn default() -> Self {
        let p = Policy::default();
        HealingSection {
            backoff_seconds: p.backoff_seconds,
            max_attempts: p.max_attempts,
            side_effect_patterns: p.side_effect_patterns,
            min_confidence: p.min_confidence,
        }
    }
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            verify_poll_seconds: 120,
            wait_limit_seconds: 6 * 3600,
            max_job_tries: 6,
            lease_seconds: 300,
            http_backoff_ms: 500,
        }
    }
}

impl HealingSection {
    pub fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.max_attempts,
            backoff_seconds: self.backoff_seconds,
            side_effect_patterns: self.side_effect_patterns.clone(),
            min_confidence: self.min_confidence,
        }
    }
}

impl Config {
    /// Reads `path`, or `./pipeguard.toml` when it exists, then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let default_path = Path::new("pipeguard.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read configuration {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid configuration {}", p.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        crate::tenants::validate(&cfg.repos, &cfg.strategies, &cfg.notify)?;
        Ok(cfg)
    }

    /// Environment overrides, through `get` so tests need not touch the process environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn num<T: std::str::FromStr>(k: &str, v: String) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{k}={v:?} is not a valid number"))
        }
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        if let Some(v) = nonempty("PIPEGUARD_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_GITHUB_WEBHOOK_SECRET") {
            self.github.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_GITHUB_TOKEN") {
            self.github.token = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_GITHUB_API_URL") {
            self.github.api_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_GITLAB_WEBHOOK_SECRET") {
            self.gitlab.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_GITLAB_TOKEN") {
            self.gitlab.token = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_GITLAB_API_URL") {
            self.gitlab.api_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_JENKINS_WEBHOOK_SECRET") {
            self.jenkins.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_JENKINS_USER") {
            self.jenkins.user = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_JENKINS_TOKEN") {
            self.jenkins.token = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_JENKINS_API_URL") {
            self.jenkins.api_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_ANSIBLE_WEBHOOK_SECRET") {
            self.ansible.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_BUILDBOT_WEBHOOK_SECRET") {
            self.buildbot.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_BUILDBOT_USER") {
            self.buildbot.user = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_BUILDBOT_PASSWORD") {
            self.buildbot.password = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_BUILDBOT_API_URL") {
            self.buildbot.api_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_CIRCLECI_WEBHOOK_SECRET") {
            self.circleci.webhook_secret = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_CIRCLECI_TOKEN") {
            self.circleci.token = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_CIRCLECI_API_URL") {
            self.circleci.api_url = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_HEALING_BACKOFF_SECONDS") {
            self.healing.backoff_seconds = num("PIPEGUARD_HEALING_BACKOFF_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_HEALING_MAX_ATTEMPTS") {
            self.healing.max_attempts = num("PIPEGUARD_HEALING_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_MAX_BODY_BYTES") {
            self.max_body_bytes = num("PIPEGUARD_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_VERIFY_POLL_SECONDS") {
            self.worker.verify_poll_seconds = num("PIPEGUARD_VERIFY_POLL_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_WORKER_LEASE_SECONDS") {
            self.worker.lease_seconds = num("PIPEGUARD_WORKER_LEASE_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_HTTP_BACKOFF_MS") {
            self.worker.http_backoff_ms = num("PIPEGUARD_HTTP_BACKOFF_MS", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_values() {
        let mut cfg: Config = toml::from_str(
            "listen = \"0.0.0.0:9000\"\n[healing]\nmax_attempts = 5\nbackoff_seconds = 7\n",
        )
        .unwrap();
        assert_eq!(cfg.healing.max_attempts, 5);
        cfg.apply_env(|k| match k {
            "PIPEGUARD_HEALING_MAX_ATTEMPTS" => Some("1".into()),
            "PIPEGUARD_GITHUB_API_URL" => Some("http://127.0.0.1:1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.healing.max_attempts, 1);
        assert_eq!(cfg.healing.backoff_seconds, 7);
        assert_eq!(cfg.github.api_url, "http://127.0.0.1:1");
        assert_eq!(cfg.database_url, "sqlite://pipeguard.db");
    }

    #[test]
    fn platform_sections_from_file_and_environment() {
        let mut cfg: Config = toml::from_str(
            "[gitlab]\napi_url = \"https://gitlab.example.com\"\n[jenkins]\nuser = \"bot\"\n\
             [circleci]\ntoken = \"file-token\"\n",
        )
        .unwrap();
        assert_eq!(cfg.gitlab.api_url, "https://gitlab.example.com");
        assert_eq!(cfg.circleci.api_url, "https://circleci.com");
        cfg.apply_env(|k| match k {
            "PIPEGUARD_GITLAB_TOKEN" => Some("glpat".into()),
            "PIPEGUARD_JENKINS_API_URL" => Some("https://ci.example.com/".into()),
            "PIPEGUARD_JENKINS_TOKEN" => Some("jt".into()),
            "PIPEGUARD_CIRCLECI_TOKEN" => Some("env-token".into()),
            "PIPEGUARD_CIRCLECI_WEBHOOK_SECRET" => Some("cs".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.gitlab.token.as_deref(), Some("glpat"));
        assert_eq!(cfg.jenkins.user.as_deref(), Some("bot"));
        assert_eq!(cfg.jenkins.api_url, "https://ci.example.com/");
        assert_eq!(cfg.circleci.token.as_deref(), Some("env-token"));
        assert_eq!(cfg.circleci.webhook_secret.as_deref(), Some("cs"));
        assert!(toml::from_str::<Config>("[jenkins]\npassword = \"x\"").is_err());
    }

    #[test]
    fn repositories_strategies_and_channels_from_toml() {
        let text = r#"
[[repos]]
platform = "github"
name = "octo/app"
token = "ghp_repo"
[repos.healing]
max_attempts = 1
[repos.scale]
workflow = "ci.yml"
inputs = { runner = "ubuntu-latest-16-cores" }
[repos.cache]
key_prefix = "npm-"

[[repos]]
platform = "gitlab"
name = "grp/*"
reset = { inputs = { GIT_CLEAN_FLAGS = "-ffdx" } }

[[strategies]]
name = "restart-mirror"
categories = ["dependency_download"]
http = { url = "https://ops.example.com/mirror/restart", body = '{"repo":"{{repository}}"}' }

[[notify]]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"
"#;
        let cfg: Config = toml::from_str(text).unwrap();
        crate::tenants::validate(&cfg.repos, &cfg.strategies, &cfg.notify).unwrap();
        assert_eq!(cfg.repos.len(), 2);
        let base = cfg.healing.policy();
        assert_eq!(cfg.repos[0].policy(&base).max_attempts, 1);
        assert_eq!(cfg.repos[1].policy(&base).max_attempts, base.max_attempts);
        assert_eq!(
            cfg.repos[0].scale.as_ref().unwrap().inputs["runner"],
            "ubuntu-latest-16-cores"
        );
        assert_eq!(
            cfg.notify[0].on,
            ["escalated", "failed", "awaiting_approval"]
        );
        // A misspelt key inside a repository is an error, not silently ignored.
        assert!(toml::from_str::<Config>(
            "[[repos]]
platform = \"github\"
name = \"a/b\"
tokn = \"x\"
"
        )
        .is_err());
    }

    #[test]
    fn bad_numbers_and_unknown_keys_are_errors() {
        let mut cfg = Config::default();
        let err = cfg
            .apply_env(|k| (k == "PIPEGUARD_HEALING_BACKOFF_SECONDS").then(|| "soon".into()))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("PIPEGUARD_HEALING_BACKOFF_SECONDS"));
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
