//! Building and running the service: checks at start, the listener, the worker, graceful
//! shutdown on SIGINT/SIGTERM.

use crate::config::Config;
use crate::state::AppState;
use crate::{routes, worker};
use anyhow::{Context, Result};
use pipeguard_platforms::registry::MODULES;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Says at start what is not protected or cannot work, for the platforms in use only: the
/// others are nobody's concern until they are configured.
fn warn_unconfigured(config: &Config) {
    let used: Vec<_> = MODULES.iter().filter(|m| in_use(config, **m)).collect();
    if used.is_empty() {
        tracing::warn!(
            "no platform is configured: `pipeguard init` writes a pipeguard.toml for yours"
        );
    }
    for m in &used {
        let s = config.platforms.get(m.platform());
        if s.webhook_secret.is_none() {
            tracing::warn!(
                "PIPEGUARD_{}_WEBHOOK_SECRET is not set: {} deliveries are accepted without proof of origin",
                m.section().key.to_ascii_uppercase(),
                m.platform()
            );
        }
    }
    let github = pipeguard_core::Platform::Github;
    if used.iter().any(|m| m.platform() == github) && config.platforms.get(github).token.is_none() {
        tracing::warn!("PIPEGUARD_GITHUB_TOKEN is not set: logs of private repositories cannot be read and nothing can be re-run");
    }
}

/// Where to log in and, while no API token exists, the command that makes the first one.
async fn login_hint(store: &pipeguard_store::Store, url: &str) -> Result<()> {
    tracing::info!("dashboard: {url}/");
    let tokens = store.list_tokens().await?;
    if tokens.iter().all(|t| t.revoked_at.is_some()) {
        tracing::warn!(
            "no API token yet: the dashboard and the API need one. Create it with \
             `pipeguard token create --role admin --name you` (with the --config or \
             PIPEGUARD_DATABASE_URL this server uses)"
        );
    }
    Ok(())
}

/// Whether someone set a platform up: a credential, a secret, an API address or a repository
/// of it.
fn in_use(config: &Config, m: &dyn pipeguard_platforms::Module) -> bool {
    let s = config.platforms.get(m.platform());
    routes::webhooks::api_configured(config, m) || s.webhook_secret.is_some() || s.allow_unsigned
}

/// Refuses to listen beyond this machine while a platform someone configured would accept
/// deliveries nobody signed: anyone who reaches the port could start heals.
fn check_exposure(config: &Config) -> Result<()> {
    if crate::state::is_loopback(&config.listen) {
        return Ok(());
    }
    for m in MODULES {
        let s = config.platforms.get(m.platform());
        let configured = routes::webhooks::api_configured(config, *m);
        if configured && s.webhook_secret.is_none() && !s.allow_unsigned {
            anyhow::bail!(
                "{} listens on {} but {} has no webhook secret: set PIPEGUARD_{}_WEBHOOK_SECRET \
                 (or allow_unsigned = true in [{}] on a trusted network)",
                "pipeguard",
                config.listen,
                m.platform(),
                m.section().key.to_ascii_uppercase(),
                m.section().key
            );
        }
    }
    Ok(())
}

/// Runs the server and worker on `listener` until `shutdown` turns true.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    check_exposure(&config)?;
    let state = AppState::new(config, shutdown.clone()).await?;
    warn_unconfigured(&state.config);
    if state.store.backend() == pipeguard_store::Backend::Sqlite {
        // An embedded database has exactly one worker: this one. Work a killed process had
        // claimed is taken again now instead of after its lease.
        let n = state.store.requeue_running().await?;
        if n > 0 {
            tracing::info!(jobs = n, "resuming work interrupted by the last stop");
        }
    }
    let tls = match (&state.config.tls.cert, &state.config.tls.key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let worker = if state.config.worker.enabled {
        tokio::spawn(worker::run(state.clone(), shutdown.clone()))
    } else {
        tracing::warn!("[worker] enabled = false: this replica runs no jobs");
        tokio::spawn(async {})
    };
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "pipeguard listening");
    login_hint(&state.store, &format!("{scheme}://{addr}")).await?;
    let limits = crate::connections::Limits::from_config(&state.config);
    let gate = crate::connections::Gate::new(
        limits.max_connections,
        state.metrics.connections_open.clone(),
        state.metrics.connections_refused.clone(),
    );
    let refusals = tokio::spawn(crate::auth::refusals::flush(
        state.clone(),
        shutdown.clone(),
    ));
    crate::tls::serve(
        listener,
        routes::router(state.clone()),
        tls,
        limits,
        gate,
        shutdown.clone(),
    )
    .await;
    worker.await.context("worker panicked")?;
    let _ = refusals.await;
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
