//! Outcomes per UTC day, for charts of healing over time.

use crate::{Result, Store};
use pipeguard_core::stats::percentile;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 86_400_000;

/// Sessions that finished on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayOutcome {
    /// Start of the day, epoch milliseconds (UTC midnight).
    pub day_ms: i64,
    pub finished: i64,
    pub healed: i64,
    pub failed: i64,
    pub escalated: i64,
    /// Median and 90th percentile time to green of the day's healed sessions.
    pub time_to_green_median_ms: Option<i64>,
    pub time_to_green_p90_ms: Option<i64>,
}

impl Store {
    /// One entry per day from the day of `since_ms` to the day of `until_ms` (both UTC), days
    /// without finished sessions included, so a chart's axis has no holes.
    pub async fn daily_outcomes(&self, since_ms: i64, until_ms: i64) -> Result<Vec<DayOutcome>> {
        let first = since_ms.div_euclid(DAY_MS);
        let last = until_ms.div_euclid(DAY_MS).max(first);
        let rows = sqlx::query(
            "SELECT finished_at, status, time_to_green_ms FROM sessions \
             WHERE finished_at IS NOT NULL AND finished_at >= $1 AND finished_at < $2",
        )
        .bind(first * DAY_MS)
        .bind((last + 1) * DAY_MS)
        .fetch_all(&self.pool)
        .await?;
        let mut days: BTreeMap<i64, (DayOutcome, Vec<i64>)> = (first..=last)
            .map(|d| {
                let day = DayOutcome {
                    day_ms: d * DAY_MS,
                    ..Default::default()
                };
                (d, (day, Vec::new()))
            })
            .collect();
        for r in &rows {
            let at: i64 = r.try_get("finished_at")?;
            let status: String = r.try_get("status")?;
            let ttg: Option<i64> = r.try_get("time_to_green_ms")?;
            let Some((day, times)) = days.get_mut(&at.div_euclid(DAY_MS)) else {
                continue;
            };
            day.finished += 1;
            match status.as_str() {
                "healed" => {
                    day.healed += 1;
                    times.extend(ttg);
                }
                "failed" => day.failed += 1,
                "escalated" => day.escalated += 1,
                _ => {}
            }
        }
        Ok(days
            .into_values()
            .map(|(mut day, mut times)| {
                times.sort_unstable();
                day.time_to_green_median_ms = percentile(&times, 0.5);
                day.time_to_green_p90_ms = percentile(&times, 0.9);
                day
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Intake, IntakeOutcome, SessionStatus, SessionUpdate, Transition};
    use pipeguard_core::event::{FailureEvent, Platform};

    /// A session of run `run` that ended as `to` at `at` with a time to green.
    async fn finish(store: &Store, run: &str, to: SessionStatus, at: i64, ttg: Option<i64>) {
        let event = FailureEvent {
            platform: Some(Platform::Github),
            repository: "o/r".into(),
            run_id: run.into(),
            attempt: 1,
            ..Default::default()
        };
        let r = store
            .intake(Platform::Github, run, run, Intake::Failure(event))
            .await
            .unwrap();
        let IntakeOutcome::Created { session_id } = r.outcome else {
            panic!("no session: {r:?}")
        };
        let t = Transition::fixture(&[SessionStatus::Received], to, "done");
        let u = SessionUpdate {
            finished_at: Some(at),
            time_to_green_ms: ttg,
            ..Default::default()
        };
        assert!(store.update_session(&session_id, t, u).await.unwrap());
    }

    #[tokio::test]
    async fn days_count_outcomes_and_times_to_green_with_empty_days_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let d0 = 20_000 * DAY_MS;
        finish(&store, "1", SessionStatus::Healed, d0 + 5, Some(60_000)).await;
        finish(
            &store,
            "2",
            SessionStatus::Healed,
            d0 + DAY_MS - 1,
            Some(180_000),
        )
        .await;
        finish(&store, "3", SessionStatus::Escalated, d0 + 9, None).await;
        finish(
            &store,
            "4",
            SessionStatus::Healed,
            d0 + 2 * DAY_MS,
            Some(30_000),
        )
        .await;
        // Before the window: not counted.
        finish(&store, "5", SessionStatus::Failed, d0 - 1, None).await;
        let days = store
            .daily_outcomes(d0 + 1000, d0 + 2 * DAY_MS)
            .await
            .unwrap();
        assert_eq!(days.len(), 3);
        assert_eq!(
            days[0],
            DayOutcome {
                day_ms: d0,
                finished: 3,
                healed: 2,
                failed: 0,
                escalated: 1,
                time_to_green_median_ms: Some(60_000),
                time_to_green_p90_ms: Some(180_000),
            }
        );
        assert_eq!((days[1].day_ms, days[1].finished), (d0 + DAY_MS, 0));
        assert_eq!(days[1].time_to_green_median_ms, None);
        assert_eq!(
            (days[2].healed, days[2].time_to_green_median_ms),
            (1, Some(30_000))
        );
    }
}
