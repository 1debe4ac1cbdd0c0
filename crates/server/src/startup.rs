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

/// Says at start what is not protected or cannot work.
fn warn_unconfigured(config: &Config) {
    for m in MODULES {
        let spec = m.section();
        let s = config.platforms.get(m.platform());
        let prefix = format!("PIPEGUARD_{}", spec.key.to_ascii_uppercase());
        if s.webhook_secret.is_none() {
            tracing::warn!(
                "{prefix}_WEBHOOK_SECRET is not set: {} deliveries are accepted without proof of origin",
                m.platform()
            );
        }
    }
    if config
        .platforms
        .get(pipeguard_core::Platform::Github)
        .token
        .is_none()
    {
        tracing::warn!("PIPEGUARD_GITHUB_TOKEN is not set: logs of private repositories cannot be read and nothing can be re-run");
    }
}

/// Runs the server and worker on `listener` until `shutdown` turns true.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    warn_unconfigured(&config);
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
    axum::serve(listener, routes::router(state.clone()))
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
