//! The pipeguard service: webhook intake, the healing worker and the API, on one axum server.

pub mod api;
pub mod api_learning;
pub mod config;
pub mod error;
pub mod flaky;
pub mod intake;
pub mod intake_ansible;
pub mod intake_buildbot;
pub mod intake_platforms;
pub mod learned;
pub mod metrics;
pub mod notify;
pub mod strategies;
pub mod telemetry;
pub mod tenants;
pub mod worker;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use config::Config;
use pipeguard_core::event::Platform;
use pipeguard_core::{Analyzer, Policy};
use pipeguard_platforms::buildbot::{Buildbot, BuildbotConfig};
use pipeguard_platforms::circleci::{Circleci, CircleciConfig};
use pipeguard_platforms::github::{Github, GithubConfig};
use pipeguard_platforms::gitlab::{Gitlab, GitlabConfig};
use pipeguard_platforms::jenkins::{Jenkins, JenkinsConfig};
use pipeguard_platforms::Ci;
use pipeguard_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tenants::RepoConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything a request handler or the worker needs, shared.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub analyzer: Analyzer,
    pub policy: Policy,
    pub github: Github,
    pub gitlab: Gitlab,
    pub jenkins: Jenkins,
    pub buildbot: Buildbot,
    pub circleci: Circleci,
    /// One per `config.repos` entry, same order.
    pub tenants: Vec<Tenant>,
    pub notifier: notify::Notifier,
    pub started_at_ms: i64,
    /// Rung by intake so the worker picks new work at once instead of at its next poll.
    pub worker_wake: tokio::sync::Notify,
    pub metrics: metrics::Metrics,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub async fn new(config: Config) -> Result<Shared> {
        let store = Store::connect(&config.database_url)
            .await
            .with_context(|| format!("cannot open database {}", config.database_url))?;
        let policy = config.healing.policy();
        let tenants = config
            .repos
            .iter()
            .map(|r| Tenant {
                ci: r
                    .platform()
                    .filter(|_| r.token.is_some() || r.api_url.is_some() || r.user.is_some())
                    .and_then(|p| make_ci(p, &config, Some(r))),
                policy: r.policy(&policy),
            })
            .collect();
        Ok(Arc::new(AppState {
            policy,
            analyzer: Analyzer::builtin(),
            store,
            github: github_client(&config, None),
            gitlab: gitlab_client(&config, None),
            jenkins: jenkins_client(&config, None),
            buildbot: buildbot_client(&config, None),
            circleci: circleci_client(&config, None),
            tenants,
            notifier: notify::Notifier::new(),
            started_at_ms: pipeguard_store::now_ms(),
            worker_wake: tokio::sync::Notify::new(),
            metrics: metrics::Metrics::default(),
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

    /// The platform client that acts for a repository: its own credentials when it has some.
    pub fn ci(&self, platform: Platform, repository: &str) -> Option<&dyn Ci> {
        if let Some(ci) = self
            .repo(platform, repository)
            .and_then(|(i, _)| self.tenants[i].ci.as_deref())
        {
            return Some(ci);
        }
        match platform {
            Platform::Github => Some(&self.github),
            Platform::Gitlab => Some(&self.gitlab),
            Platform::Jenkins => Some(&self.jenkins),
            Platform::Buildbot => Some(&self.buildbot),
            Platform::Circleci => Some(&self.circleci),
            _ => None,
        }
    }

    /// The secret a delivery about `repository` must prove: the repository's own when it
    /// has one, else the platform's.
    pub fn webhook_secret<'a>(
        &'a self,
        platform: Platform,
        repository: Option<&str>,
        global: Option<&'a str>,
    ) -> Option<&'a str> {
        repository
            .and_then(|r| self.repo(platform, r))
            .and_then(|(_, r)| r.webhook_secret.as_deref())
            .or(global)
    }
}

/// A configured repository's own client and policy.
pub struct Tenant {
    pub ci: Option<Box<dyn Ci>>,
    pub policy: Policy,
}

fn backoff(config: &Config) -> Duration {
    Duration::from_millis(config.worker.http_backoff_ms)
}

fn github_client(config: &Config, over: Option<&RepoConfig>) -> Github {
    Github::new(GithubConfig {
        api_url: over
            .and_then(|r| r.api_url.clone())
            .unwrap_or_else(|| config.github.api_url.clone()),
        token: over
            .and_then(|r| r.token.clone())
            .or_else(|| config.github.token.clone()),
        http_tries: 3,
        http_backoff: backoff(config),
    })
}

fn gitlab_client(config: &Config, over: Option<&RepoConfig>) -> Gitlab {
    Gitlab::new(GitlabConfig {
        api_url: over
            .and_then(|r| r.api_url.clone())
            .unwrap_or_else(|| config.gitlab.api_url.clone()),
        token: over
            .and_then(|r| r.token.clone())
            .or_else(|| config.gitlab.token.clone()),
        http_tries: 3,
        http_backoff: backoff(config),
    })
}

fn jenkins_client(config: &Config, over: Option<&RepoConfig>) -> Jenkins {
    Jenkins::new(JenkinsConfig {
        api_url: over
            .and_then(|r| r.api_url.clone())
            .unwrap_or_else(|| config.jenkins.api_url.clone()),
        user: over
            .and_then(|r| r.user.clone())
            .or_else(|| config.jenkins.user.clone()),
        token: over
            .and_then(|r| r.token.clone())
            .or_else(|| config.jenkins.token.clone()),
        http_tries: 3,
        http_backoff: backoff(config),
    })
}

fn circleci_client(config: &Config, over: Option<&RepoConfig>) -> Circleci {
    Circleci::new(CircleciConfig {
        api_url: over
            .and_then(|r| r.api_url.clone())
            .unwrap_or_else(|| config.circleci.api_url.clone()),
        token: over
            .and_then(|r| r.token.clone())
            .or_else(|| config.circleci.token.clone()),
        http_tries: 3,
        http_backoff: backoff(config),
    })
}

fn buildbot_client(config: &Config, over: Option<&RepoConfig>) -> Buildbot {
    Buildbot::new(BuildbotConfig {
        api_url: over
            .and_then(|r| r.api_url.clone())
            .unwrap_or_else(|| config.buildbot.api_url.clone()),
        user: over
            .and_then(|r| r.user.clone())
            .or_else(|| config.buildbot.user.clone()),
        password: over
            .and_then(|r| r.token.clone())
            .or_else(|| config.buildbot.password.clone()),
        http_tries: 3,
        http_backoff: backoff(config),
    })
}

fn make_ci(platform: Platform, config: &Config, over: Option<&RepoConfig>) -> Option<Box<dyn Ci>> {
    Some(match platform {
        Platform::Github => Box::new(github_client(config, over)),
        Platform::Gitlab => Box::new(gitlab_client(config, over)),
        Platform::Jenkins => Box::new(jenkins_client(config, over)),
        Platform::Circleci => Box::new(circleci_client(config, over)),
        Platform::Buildbot => Box::new(buildbot_client(config, over)),
        _ => return None,
    })
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/webhooks/github", post(intake::github))
        .route("/webhooks/gitlab", post(intake_platforms::gitlab))
        .route("/webhooks/jenkins", post(intake_platforms::jenkins))
        .route("/webhooks/buildbot", post(intake_buildbot::buildbot))
        .route("/webhooks/ansible", post(intake_ansible::ansible))
        .route("/webhooks/circleci", post(intake_platforms::circleci))
        .route("/pipeline/webhook", post(intake::generic))
        .route("/pipeline/status", get(api::status))
        .route("/pipeline/healing/history", get(api::history))
        .route("/pipeline/test/trigger", post(api::test_trigger))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/stats", get(metrics::stats))
        .route("/api/v1/sessions", get(api::list_sessions))
        .route("/api/v1/sessions/{id}", get(api::get_session))
        .route("/api/v1/sessions/{id}/approve", post(api::approve))
        .route("/api/v1/sessions/{id}/reject", post(api::reject))
        .route("/api/v1/sessions/{id}/verdict", post(api_learning::verdict))
        .route("/api/v1/flaky-tests", get(api_learning::flaky_tests))
        .route(
            "/api/v1/quarantine",
            get(api_learning::quarantine_list)
                .post(api_learning::quarantine_add)
                .delete(api_learning::quarantine_remove),
        )
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_webhooks,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serves until SIGINT/SIGTERM: stops taking requests, lets the worker finish its job, exits.
pub async fn run(config: Config) -> Result<()> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    serve(config, listener, rx).await
}

/// Runs the server and worker on `listener` until `shutdown` turns true.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    if config.github.webhook_secret.is_none() {
        tracing::warn!(
            "PIPEGUARD_GITHUB_WEBHOOK_SECRET is not set: GitHub deliveries are accepted unsigned"
        );
    }
    if config.github.token.is_none() {
        tracing::warn!("PIPEGUARD_GITHUB_TOKEN is not set: logs of private repositories cannot be read and nothing can be re-run");
    }
    intake_platforms::warn_unverified(&config);
    if config.buildbot.webhook_secret.is_none() {
        tracing::warn!(
            "PIPEGUARD_BUILDBOT_WEBHOOK_SECRET is not set: Buildbot deliveries are accepted without credentials"
        );
    }
    let state = AppState::new(config).await?;
    if state.store.backend() == pipeguard_store::Backend::Sqlite {
        // An embedded database has exactly one worker: this one. Work a killed process had
        // claimed is taken again now instead of after its lease.
        let n = state.store.requeue_running().await?;
        if n > 0 {
            tracing::info!(jobs = n, "resuming work interrupted by the last stop");
        }
    }
    let worker = tokio::spawn(worker::run(state.clone(), shutdown.clone()));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "pipeguard listening");
    let mut rx = shutdown.clone();
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|v| *v).await;
        })
        .await?;
    worker.await.context("worker panicked")?;
    state.store.close().await;
    tracing::info!("pipeguard stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
