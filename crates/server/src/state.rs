//! What every request handler and the worker share: configuration, the store, the analyzer,
//! and the platform registry with each configured repository's own client and policy.

use crate::auth::oidc::OidcValidator;
use crate::config::Config;
use crate::ratelimit::SourceLimiter;
use crate::tenants::{self, RepoConfig};
use crate::{metrics, notify};
use anyhow::{Context, Result};
use pipeguard_core::event::Platform;
use pipeguard_core::planner::Mode;
use pipeguard_core::{Analyzer, Policy};
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::{Ci, Registry};
use pipeguard_store::Store;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub analyzer: Analyzer,
    pub policy: Policy,
    pub registry: Registry,
    /// One per `config.repos` entry, same order.
    pub tenants: Vec<Tenant>,
    pub notifier: notify::Notifier,
    pub started_at_ms: i64,
    /// Rung by intake so the worker picks new work at once instead of at its next poll.
    pub worker_wake: tokio::sync::Notify,
    pub metrics: metrics::Metrics,
    /// JWT validation when an OIDC provider is configured.
    pub oidc: Option<OidcValidator>,
    pub rate_limit: SourceLimiter,
    /// Refused credentials not yet written to the audit trail, per source and minute.
    pub refusals: crate::auth::refusals::Refusals,
    /// Listening on a loopback address only: unsigned deliveries are accepted there.
    pub loopback: bool,
    /// Turns true when the server stops, for work that would otherwise hold the stop up
    /// (live event streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The model that explains failures the rules cannot place; `None` when none is
    /// configured, and then nothing asks one.
    pub analyst: Option<Arc<pipeguard_llm::Analyst>>,
}

pub type Shared = Arc<AppState>;

/// A configured repository's own client and policy.
pub struct Tenant {
    pub ci: Option<Arc<dyn Ci>>,
    pub policy: Policy,
}

/// The platform's section with a repository's own credentials over it.
fn tenant_section(base: &Section, r: &RepoConfig) -> Section {
    Section {
        api_url: r.api_url.clone().unwrap_or_else(|| base.api_url.clone()),
        token: r.token.clone().or_else(|| base.token.clone()),
        user: r.user.clone().or_else(|| base.user.clone()),
        webhook_secret: r
            .webhook_secret
            .clone()
            .or_else(|| base.webhook_secret.clone()),
        allow_unsigned: base.allow_unsigned,
        // A repository's own token replaces the app for it.
        app_id: base.app_id.clone().filter(|_| r.token.is_none()),
        private_key_file: base.private_key_file.clone().filter(|_| r.token.is_none()),
    }
}

/// Whether `listen` (`host:port`) binds a loopback address only.
pub fn is_loopback(listen: &str) -> bool {
    let host = listen
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(listen)
        .trim_matches(|c| c == '[' || c == ']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The analyst for the configured model, if any.
fn analyst(config: &Config) -> Result<Option<Arc<pipeguard_llm::Analyst>>> {
    config.check_llm()?;
    if !config.llm.is_enabled() {
        return Ok(None);
    }
    let a = pipeguard_llm::Analyst::new(config.llm.clone()).context("[llm]")?;
    tracing::info!(
        source = a.source(),
        "a model explains failures the rules cannot place"
    );
    Ok(Some(Arc::new(a)))
}

impl AppState {
    pub async fn new(
        config: Config,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Shared> {
        let mut store = Store::connect(&config.database_url).await?;
        if let Some(keys) = config.encryption.keyring()? {
            store = store.with_encryption(keys);
        }
        let store =
            store.with_audit_anchor(config.encryption.audit_anchor(&config.database_url, true)?);
        let analyzer = Analyzer::with_user_signatures(config.signatures.clone())
            .context("invalid [[signatures]]")?;
        let policy = config.healing.policy();
        let registry = Registry::new(
            &config.platforms,
            HttpOptions {
                backoff: Duration::from_millis(config.worker.http_backoff_ms),
                ..Default::default()
            },
        );
        let tenants = config
            .repos
            .iter()
            .map(|r| Tenant {
                ci: r
                    .platform()
                    .filter(|_| r.token.is_some() || r.api_url.is_some() || r.user.is_some())
                    .and_then(|p| {
                        registry.client_with(p, &tenant_section(config.platforms.get(p), r))
                    }),
                policy: r.policy(&policy),
            })
            .collect();
        Ok(Arc::new(AppState {
            policy,
            analyzer,
            store,
            registry,
            tenants,
            notifier: notify::Notifier::new(),
            started_at_ms: pipeguard_store::now_ms(),
            worker_wake: tokio::sync::Notify::new(),
            metrics: metrics::Metrics::default(),
            oidc: match &config.auth.oidc {
                Some(o) => Some(OidcValidator::new(o.clone()).map_err(anyhow::Error::msg)?),
                None => None,
            },
            rate_limit: SourceLimiter::new(config.api.rate_limit_per_minute),
            refusals: Default::default(),
            loopback: is_loopback(&config.listen),
            shutdown,
            analyst: analyst(&config)?,
            config,
        }))
    }

    /// The configured entry for a repository, with its index into `tenants`.
    pub fn repo(&self, platform: Platform, repository: &str) -> Option<(usize, &RepoConfig)> {
        tenants::find_repo(&self.config.repos, platform, repository)
    }

    /// The policy for a repository: the global one with the repository's overrides.
    pub fn policy_for(&self, platform: Platform, repository: &str) -> &Policy {
        match self.repo(platform, repository) {
            Some((i, _)) => &self.tenants[i].policy,
            None => &self.policy,
        }
    }

    /// The configuration file's mode for a repository: its `[[repos]] mode`, else
    /// `[healing] mode`.
    pub fn configured_mode(&self, platform: Platform, repository: &str) -> Mode {
        self.repo(platform, repository)
            .and_then(|(_, r)| r.mode)
            .unwrap_or(self.config.healing.mode)
    }

    /// The repository's effective mode: the one set through the API overrides the file's.
    pub async fn mode_for(
        &self,
        platform: Platform,
        repository: &str,
    ) -> Result<Mode, pipeguard_store::StoreError> {
        Ok(match self.store.mode(repository).await? {
            Some(m) => m,
            None => self.configured_mode(platform, repository),
        })
    }

    /// The platform client that acts for a repository: its own credentials when it has some.
    pub fn ci(&self, platform: Platform, repository: &str) -> Option<&dyn Ci> {
        self.repo(platform, repository)
            .and_then(|(i, _)| self.tenants[i].ci.as_deref())
            .or_else(|| self.registry.ci(platform).map(|c| c.as_ref()))
    }

    /// The secret a delivery about `repository` must prove: the repository's own when it
    /// has one, else the platform's.
    pub fn webhook_secret(&self, platform: Platform, repository: Option<&str>) -> Option<&str> {
        repository
            .and_then(|r| self.repo(platform, r))
            .and_then(|(_, r)| r.webhook_secret.as_deref())
            .or(self
                .config
                .platforms
                .get(platform)
                .webhook_secret
                .as_deref())
    }

    /// Whether any secret (the platform's or a repository's) guards deliveries of `platform`.
    pub fn guards(&self, platform: Platform) -> bool {
        self.config.platforms.get(platform).webhook_secret.is_some()
    }
}
