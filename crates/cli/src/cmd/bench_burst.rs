//! `pipeguard bench load --burst`: an outage arriving at once. A GitHub stand-in (on the port
//! the servers' API URL names) holds one failed run per delivery, every one failing with the
//! same registry error; the generator sends their `workflow_run` failures at an even pace over
//! `--duration` while the servers' workers diagnose, hold and probe. Then the registry comes
//! back and the held wave drains. What is reported besides intake's figures: when every
//! session had settled (held or final), the re-runs sent into the outage, and how fast the
//! wave drained.

use anyhow::{Context, Result};
use pipeguard_core::lifecycle::SessionStatus;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::{JobSpec, RunSpec, WebhookTarget};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The error every run fails with while the registry is down.
fn registry_log() -> String {
    pipeguard_sim::logs::sample("dependency_download")
        .map(|s| s.log.to_string())
        .unwrap_or_else(|| {
            "npm ERR! network request to https://registry.npmjs.org/left-pad failed".into()
        })
}

/// The stand-in and the runs it holds, one per delivery to send.
pub struct StandIn {
    pub sim: GithubSim,
    pub run_ids: Vec<u64>,
}

/// Starts the stand-in on `port` with the registry down and `runs` failed runs of
/// `repository(n)`; later deliveries (the heals' re-runs) go to `server`.
pub async fn prepare(
    port: u16,
    token: &str,
    runs: usize,
    repository: impl Fn(usize) -> String,
    server: &str,
    secret: &str,
) -> Result<StandIn> {
    let sim = GithubSim::start(GithubConfig::default().token(token).port(port))
        .await
        .with_context(|| format!("cannot start the GitHub stand-in on port {port}"))?;
    let log = registry_log();
    sim.set_outage(Some(log.clone())).await;
    let mut run_ids = Vec::with_capacity(runs);
    for n in 0..runs {
        let spec = RunSpec::new(repository(n), "ci.yml")
            .job(JobSpec::new("build").fails(log.clone()).passes());
        // Played out at once, announcing nothing: the generator sends its failure.
        run_ids.push(sim.add_past_run(spec, Duration::from_secs(60), &[]).await?);
    }
    sim.set_webhook(Some(WebhookTarget::new(
        format!("{}/webhooks/github", server.trim_end_matches('/')),
        secret,
    )))
    .await;
    Ok(StandIn { sim, run_ids })
}

/// The benchmark's sessions by status.
async fn statuses(pool: &sqlx::AnyPool, repos: &str) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM sessions WHERE repository LIKE $1 GROUP BY status",
    )
    .bind(repos)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

fn count(by: &BTreeMap<String, i64>, pred: impl Fn(SessionStatus) -> bool) -> i64 {
    by.iter()
        .filter(|(s, _)| s.parse().is_ok_and(&pred))
        .map(|(_, n)| n)
        .sum()
}

/// The re-runs the stand-in was asked for so far.
async fn reruns(sim: &GithubSim) -> usize {
    sim.requests()
        .await
        .iter()
        .filter(|r| r.method == "POST" && r.path().contains("/rerun"))
        .count()
}

/// What the settling phase is told.
pub struct Settle<'a> {
    pub database_url: &'a str,
    /// `bench-{tag}/%`.
    pub repos: String,
    pub sessions: i64,
    /// When the burst started.
    pub started: Instant,
    /// When the registry comes back, from the burst's start.
    pub outage: Duration,
    /// How long to wait for everything at most, from the burst's start.
    pub limit: Duration,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Waits while the workers settle every session, ends the outage on time, and follows the
/// wave until every session is final (or the limit passes).
pub async fn settle(stand_in: &StandIn, s: Settle<'_>) -> Result<Value> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(s.database_url)
        .await
        .with_context(|| format!("cannot open {}", s.database_url))?;
    let (mut settled_at, mut outage_over, mut drained_at) = (None, None, None);
    let (mut held_at_end, mut in_flight_max, mut into_outage) = (0, 0, 0);
    let mut by = BTreeMap::new();
    while s.started.elapsed() < s.limit {
        by = statuses(&pool, &s.repos).await?;
        let total: i64 = by.values().sum();
        let held = count(&by, |st| st == SessionStatus::Held);
        let terminal = count(&by, SessionStatus::is_terminal);
        let waiting = count(&by, |st| {
            matches!(
                st,
                SessionStatus::Received | SessionStatus::Analyzing | SessionStatus::Planned
            )
        });
        let in_flight = count(&by, |st| {
            matches!(st, SessionStatus::Executing | SessionStatus::Verifying)
        });
        // Settled: each session diagnosed and held or done; a canary may be in flight.
        if settled_at.is_none() && total == s.sessions && waiting == 0 {
            settled_at = Some(s.started.elapsed());
        }
        if outage_over.is_none() {
            in_flight_max = in_flight_max.max(in_flight);
        }
        if outage_over.is_none() && s.started.elapsed() >= s.outage {
            stand_in.sim.set_outage(None).await;
            outage_over = Some(s.started.elapsed());
            held_at_end = held;
            into_outage = reruns(&stand_in.sim).await;
        }
        if outage_over.is_some() && total == s.sessions && terminal == total {
            drained_at = Some(s.started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let canaries: Option<i64> = sqlx::query_scalar("SELECT MAX(canaries) FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap_or(None);
    pool.close().await;
    let reruns = reruns(&stand_in.sim).await;
    let wave_seconds = match (outage_over, drained_at) {
        (Some(o), Some(d)) => Some(secs(d.saturating_sub(o))),
        _ => None,
    };
    Ok(json!({
        "sessions_by_status": by,
        "settled_seconds": settled_at.map(secs),
        "outage_seconds": outage_over.map(secs),
        "held_when_outage_ended": held_at_end,
        "in_flight_max_during_outage": in_flight_max,
        "canaries": canaries,
        "reruns": reruns,
        "reruns_into_outage": into_outage,
        "drained_seconds": drained_at.map(secs),
        "wave_seconds": wave_seconds,
        "wave_per_minute": wave_seconds
            .filter(|w| *w > 0.0)
            .map(|w| (held_at_end as f64 / w * 60.0).round()),
        "ok": settled_at.is_some() && drained_at.is_some(),
    }))
}
