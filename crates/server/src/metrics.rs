//! `/metrics` (Prometheus / OpenMetrics text) and `/api/v1/stats`.
//!
//! Session figures come from the database at scrape time, so every replica reports the same
//! totals; only webhook deliveries and platform API errors are counted in the process.

use crate::error::ApiError;
use crate::Shared;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeguard_core::stats::percentile;
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub platform: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    platform: String,
    category: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    repository_mode: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    agreed: String,
}

#[derive(Default)]
pub struct Metrics {
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Connections open now, and those closed at once because `max_connections` were.
    pub connections_open: Gauge,
    pub connections_refused: Counter,
}

/// Counts every delivery to `/webhooks/{platform}` by the status it was answered with. The
/// label is a registered platform's key or `unknown`: a path anyone can send must not add
/// series.
pub async fn count_webhooks(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let platform = req.uri().path().strip_prefix("/webhooks/").map(|key| {
        pipeguard_platforms::registry::by_key(key)
            .map_or("unknown", |m| m.section().key)
            .to_string()
    });
    let resp = next.run(req).await;
    if let Some(platform) = platform {
        st.metrics
            .webhooks
            .get_or_create(&WebhookLabels {
                platform,
                status: resp.status().as_u16().to_string(),
            })
            .inc();
    }
    resp
}

/// Buckets for time to green, in seconds: one minute to one day.
const TTG_BUCKETS: [f64; 10] = [
    60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// `GET /metrics`: Prometheus text; open unless `[metrics] token` is set.
#[utoipa::path(
    get, path = "/metrics", tag = "service", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "`[metrics] token` is set and was not given", body = crate::error::ErrorBody),
    )
)]
pub async fn metrics(
    State(st): State<Shared>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.config.metrics.token {
        let given = pipeguard_platforms::webhook::bearer(&headers).unwrap_or("");
        if !pipeguard_platforms::webhook::token_eq(token, given) {
            return Err(ApiError::unauthorized(
                "/metrics needs the [metrics] token as a bearer credential",
            )
            .with_challenge(crate::error::BEARER));
        }
    }
    let mut reg = Registry::default();
    reg.register(
        "pipeguard_webhooks_received",
        "Webhook deliveries received, by platform and answer status",
        st.metrics.webhooks.clone(),
    );
    reg.register(
        "pipeguard_connections_open",
        "HTTP connections open now",
        st.metrics.connections_open.clone(),
    );
    reg.register(
        "pipeguard_connections_refused",
        "Connections closed at once because [server] max_connections were open",
        st.metrics.connections_refused.clone(),
    );
    let sessions = Family::<SessionLabels, Counter>::default();
    for o in st.store.outcome_counts().await? {
        sessions
            .get_or_create(&SessionLabels {
                platform: o.platform,
                category: o.category,
                outcome: o.status,
            })
            .inc_by(o.count as u64);
    }
    reg.register(
        "pipeguard_sessions",
        "Healing sessions by platform, diagnosed category and current outcome",
        sessions,
    );
    let decisions = Family::<DecisionLabels, Counter>::default();
    for (mode, outcome, n) in st.store.decision_counts().await? {
        decisions
            .get_or_create(&DecisionLabels {
                repository_mode: mode.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc_by(n as u64);
    }
    reg.register(
        "pipeguard_decisions",
        "Decisions a later re-run measured, by the repository's mode when deciding and the outcome",
        decisions,
    );
    let ttg = Histogram::new(TTG_BUCKETS);
    for ms in st.store.times_to_green(100_000).await? {
        ttg.observe(ms as f64 / 1000.0);
    }
    reg.register_with_unit(
        "pipeguard_time_to_green",
        "Time from a run's failure to its healed attempt's success",
        prometheus_client::registry::Unit::Seconds,
        ttg,
    );
    let depth: Gauge = Gauge::default();
    depth.set(st.store.queue_depth().await?);
    reg.register(
        "pipeguard_queue_depth",
        "Jobs waiting or running in the healing queue",
        depth,
    );
    let dead: Gauge = Gauge::default();
    dead.set(st.store.dead_letter_count().await?);
    reg.register(
        "pipeguard_dead_letters",
        "Jobs that failed for good and wait for a person (pipeguard retry-dead SESSION)",
        dead,
    );
    let flaky: Gauge = Gauge::default();
    flaky.set(st.store.flaky_test_count().await?);
    reg.register(
        "pipeguard_flaky_tests",
        "Tests that failed and then passed on the same commit at least once",
        flaky,
    );
    let suspect: Gauge = Gauge::default();
    suspect.set(crate::runners::suspect_count(&st).await?);
    reg.register(
        "pipeguard_runners_suspect",
        "Runners whose unrelated failures are far above their pool's (quarantined or not)",
        suspect,
    );
    let incidents: Gauge = Gauge::default();
    incidents.set(st.store.open_incident_count().await?);
    reg.register(
        "pipeguard_incidents_open",
        "Open incidents: outages whose failures are held while a canary probes the cause",
        incidents,
    );
    let held: Gauge = Gauge::default();
    let counts = st.store.status_counts().await?;
    held.set(
        counts
            .iter()
            .find(|(s, _)| *s == pipeguard_store::SessionStatus::Held)
            .map_or(0, |(_, n)| *n),
    );
    reg.register(
        "pipeguard_sessions_held",
        "Sessions held by an incident, waiting for its canary or its wave",
        held,
    );
    let verdicts = Family::<VerdictLabels, Counter>::default();
    for c in st.store.verdict_confusion().await? {
        verdicts
            .get_or_create(&VerdictLabels {
                agreed: (c.diagnosed == c.human).to_string(),
            })
            .inc_by(c.count as u64);
    }
    reg.register(
        "pipeguard_human_verdicts",
        "Human verdicts on diagnoses, by whether pipeguard's category agreed",
        verdicts,
    );
    let api_errors: Counter = Counter::default();
    api_errors.inc_by(pipeguard_platforms::api::API_ERRORS.load(Ordering::Relaxed));
    reg.register(
        "pipeguard_platform_api_errors",
        "Failed calls to CI platform APIs (each failed try)",
        api_errors,
    );
    crate::analyst::register_metrics(&st, &mut reg);
    let mut text = String::new();
    encode(&mut text, &reg)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        Body::from(text),
    )
        .into_response())
}

/// Sessions read for the per-host, retry, hand-off and compute figures.
const FACTS_LIMIT: i64 = 100_000;

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole != 0).then(|| part as f64 / whole as f64)
}

/// Outcomes overall and by category, platform and host; time to green; verdicts.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    pub by_category: Vec<Outcomes>,
    pub by_host: Vec<Outcomes>,
    pub by_platform: Vec<Outcomes>,
    pub escalations: i64,
    pub flaky_tests: i64,
    pub heal_compute_minutes: ComputeMinutes,
    pub retry: RetryStats,
    pub time_to_green_ms: Percentiles,
    pub time_to_handoff_ms: Percentiles,
    #[schema(value_type = Vec<Object>)]
    pub top_fingerprints: Vec<pipeguard_store::FingerprintCount>,
    pub total: Outcomes,
    pub verdicts: Verdicts,
}

/// Outcomes of one scope (`scope`, `category`, `platform` or `host` names it).
#[derive(Serialize, ToSchema)]
pub struct Outcomes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub escalated: i64,
    pub failed: i64,
    pub healed: i64,
    /// Null when nothing was healed or failed.
    pub healing_success_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub sessions: i64,
}

/// Estimated runner minutes the re-runs took.
#[derive(Serialize, ToSchema)]
pub struct ComputeMinutes {
    pub estimated: f64,
    pub sessions_with_run_times: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RetryStats {
    pub healed: usize,
    pub sessions: usize,
    pub success_rate: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

impl Percentiles {
    fn of(sorted: &[i64]) -> Percentiles {
        Percentiles {
            count: sorted.len(),
            median: percentile(sorted, 0.5),
            p90: percentile(sorted, 0.9),
        }
    }
}

/// How often people agreed with the diagnosis.
#[derive(Serialize, ToSchema)]
pub struct Verdicts {
    pub agreed: i64,
    pub agreement_rate: Option<f64>,
    #[schema(value_type = Vec<Object>)]
    pub confusion: Vec<pipeguard_store::ConfusionCell>,
    pub count: i64,
}

#[derive(Default)]
struct Tally {
    sessions: i64,
    healed: i64,
    failed: i64,
    escalated: i64,
}

impl Tally {
    fn add(&mut self, status: &str, n: i64) {
        self.sessions += n;
        match status {
            "healed" => self.healed += n,
            "failed" => self.failed += n,
            "escalated" => self.escalated += n,
            _ => {}
        }
    }

    /// The tally of the scope `key` (`scope`, `category`, `platform` or `host`) named `name`.
    fn answer(&self, key: &str, name: &str) -> Outcomes {
        let named = |k: &str| (k == key).then(|| name.to_string());
        Outcomes {
            category: named("category"),
            escalated: self.escalated,
            failed: self.failed,
            healed: self.healed,
            healing_success_rate: rate(self.healed, self.healed + self.failed),
            host: named("host"),
            platform: named("platform"),
            scope: named("scope"),
            sessions: self.sessions,
        }
    }
}

/// `GET /api/v1/stats`: outcomes, time to green, retries, verdicts.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "learning",
    responses((status = 200, description = "Healing statistics", body = Stats))
)]
pub async fn stats(State(st): State<Shared>) -> Result<Json<Stats>, ApiError> {
    let outcomes = st.store.outcome_counts().await?;
    let mut by_category: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_platform: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for o in &outcomes {
        by_category
            .entry(o.category.clone())
            .or_default()
            .add(&o.status, o.count);
        by_platform
            .entry(o.platform.clone())
            .or_default()
            .add(&o.status, o.count);
        total.add(&o.status, o.count);
    }
    let mut ttg = st.store.times_to_green(100_000).await?;
    ttg.sort_unstable();
    let facts = st.store.session_facts(FACTS_LIMIT).await?;
    let mut by_host: BTreeMap<String, Tally> = BTreeMap::new();
    for f in &facts {
        for h in &f.hosts {
            by_host.entry(h.clone()).or_default().add(&f.status, 1);
        }
    }
    let retried: Vec<_> = facts.iter().filter(|f| f.heal_attempts > 0).collect();
    let retried_healed = retried.iter().filter(|f| f.status == "healed").count();
    // Failed or escalated: from the failure until pipeguard handed it over. The human's own
    // time to green is not seen, so it is not called that.
    let mut handoff: Vec<i64> = facts
        .iter()
        .filter(|f| f.status == "failed" || f.status == "escalated")
        .filter_map(|f| f.finished_at.map(|end| (end - f.failed_at).max(0)))
        .collect();
    handoff.sort_unstable();
    // Each re-run is assumed to take as long as the failed attempt did: webhooks do not report
    // the runner minutes of a re-run, so this is an estimate.
    let heal_ms: i64 = retried
        .iter()
        .filter_map(|f| f.run_ms.map(|ms| ms * f.heal_attempts))
        .sum();
    let confusion = st.store.verdict_confusion().await?;
    let verdicts: i64 = confusion.iter().map(|c| c.count).sum();
    let agreed: i64 = confusion
        .iter()
        .filter(|c| c.diagnosed == c.human)
        .map(|c| c.count)
        .sum();
    let scoped = |key: &str, tallies: &BTreeMap<String, Tally>| -> Vec<Outcomes> {
        tallies.iter().map(|(k, t)| t.answer(key, k)).collect()
    };
    Ok(Json(Stats {
        by_category: scoped("category", &by_category),
        by_host: scoped("host", &by_host),
        by_platform: scoped("platform", &by_platform),
        escalations: total.escalated,
        flaky_tests: st.store.flaky_test_count().await?,
        heal_compute_minutes: ComputeMinutes {
            estimated: heal_ms as f64 / 60_000.0,
            sessions_with_run_times: retried.iter().filter(|f| f.run_ms.is_some()).count(),
        },
        retry: RetryStats {
            healed: retried_healed,
            sessions: retried.len(),
            success_rate: rate(retried_healed as i64, retried.len() as i64),
        },
        time_to_green_ms: Percentiles::of(&ttg),
        time_to_handoff_ms: Percentiles::of(&handoff),
        top_fingerprints: st.store.top_fingerprints(10).await?,
        total: total.answer("scope", "all"),
        verdicts: Verdicts {
            agreed,
            agreement_rate: rate(agreed, verdicts),
            confusion,
            count: verdicts,
        },
    }))
}
