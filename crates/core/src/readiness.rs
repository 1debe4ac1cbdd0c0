//! Readiness: how often pipeguard's decisions on a repository would have been right, from
//! what happened when the failure was re-run afterwards (by a person, or by pipeguard itself
//! in act mode). The figures behind `GET /api/v1/readiness`, the dashboard and `import`.

use crate::planner::Mode;
use serde::{Deserialize, Serialize};

/// What a re-run after the decision said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Would have re-run it, and a re-run went green.
    Confirmed,
    /// Would have re-run it, and a re-run failed again.
    Contradicted,
    /// Would not have re-run it, and a person's plain re-run went green: a heal left undone.
    Missed,
    /// Nobody's re-run measured it, and the next green run of its workflow on its branch was
    /// for a new commit: people fixed it by a push. It supports withholding; for a would-be
    /// re-run it is no verdict on the re-run (which might have gone green too), so it counts
    /// neither as confirmed nor as contradicted.
    FixedByPush,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Confirmed,
        Outcome::Contradicted,
        Outcome::Missed,
        Outcome::FixedByPush,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Contradicted => "contradicted",
            Outcome::Missed => "missed",
            Outcome::FixedByPush => "fixed_by_push",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// What a re-run that went green (or not) says about a decision that would (or would
    /// not) have re-run the failure. A withheld failure that fails again proves nothing.
    pub fn of(would_retry: bool, went_green: bool) -> Option<Outcome> {
        const TABLE: [(bool, bool, Option<Outcome>); 4] = [
            (true, true, Some(Outcome::Confirmed)),
            (true, false, Some(Outcome::Contradicted)),
            (false, true, Some(Outcome::Missed)),
            (false, false, None),
        ];
        TABLE
            .iter()
            .find(|(w, g, _)| *w == would_retry && *g == went_green)
            .and_then(|(_, _, o)| *o)
    }
}

/// One recorded decision on a failure, with what the re-run after it said.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub would_retry: bool,
    pub outcome: Option<Outcome>,
    pub failed_at_ms: i64,
    /// When a person re-ran it; `None` when nobody did (or pipeguard did).
    pub rerun_at_ms: Option<i64>,
}

/// A repository's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub would_retry: u64,
    pub confirmed: u64,
    pub contradicted: u64,
    pub withheld: u64,
    pub missed: u64,
    /// confirmed / (confirmed + contradicted); `None` without evidence.
    pub precision: Option<f64>,
    /// Median minutes from a would-be re-run's failure to the person's re-run: what acting
    /// would have saved. `None` when no person re-ran one.
    pub median_minutes_to_rerun: Option<f64>,
    /// Failures fixed by a push (withheld or not): for the recommendation and the cases, not
    /// a field of the readiness row, whose shape is the issue's.
    #[serde(skip)]
    pub fixed_by_push: u64,
}

/// The figures of `decisions`.
pub fn readiness(decisions: &[Decided]) -> Readiness {
    let count = |would: bool, o: Option<Outcome>| {
        decisions
            .iter()
            .filter(|d| d.would_retry == would && (o.is_none() || d.outcome == o))
            .count() as u64
    };
    let confirmed = count(true, Some(Outcome::Confirmed));
    let contradicted = count(true, Some(Outcome::Contradicted));
    let evidence = confirmed + contradicted;
    let mut minutes: Vec<f64> = decisions
        .iter()
        .filter(|d| d.would_retry)
        .filter_map(|d| Some((d.rerun_at_ms? - d.failed_at_ms).max(0) as f64 / 60_000.0))
        .collect();
    minutes.sort_by(f64::total_cmp);
    Readiness {
        would_retry: count(true, None),
        confirmed,
        contradicted,
        withheld: count(false, None),
        missed: count(false, Some(Outcome::Missed)),
        fixed_by_push: count(true, Some(Outcome::FixedByPush))
            + count(false, Some(Outcome::FixedByPush)),
        precision: (evidence > 0).then(|| confirmed as f64 / evidence as f64),
        median_minutes_to_rerun: crate::stats::percentile(&minutes, 0.5)
            .map(|m| (m * 10.0).round() / 10.0),
    }
}

/// One repository's row of `GET /api/v1/readiness`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryReadiness {
    pub repository: String,
    pub platform: String,
    pub mode: Mode,
    #[serde(flatten)]
    pub figures: Readiness,
    /// When the first recorded decision's failure happened (epoch milliseconds).
    pub since: Option<i64>,
}

/// Below this many re-runs of would-be re-runs, the evidence is too thin to recommend acting.
pub const MIN_EVIDENCE: u64 = 5;
/// The precision a repository needs before acting is recommended.
pub const MIN_PRECISION: f64 = 0.95;

/// The recommendation in words, e.g. "act: 41 would-be re-runs, 39 went green when a person
/// re-ran them, none of the genuine failures would have been re-run; median 23 min saved".
pub fn recommendation(r: &Readiness) -> String {
    let evidence = r.confirmed + r.contradicted;
    let pushed = match r.fixed_by_push {
        0 => String::new(),
        n => format!(", {n} fixed by a push instead"),
    };
    if evidence == 0 {
        return format!(
            "observe: {} would-be re-runs, none re-run afterwards yet, so nothing to measure{pushed}",
            r.would_retry
        );
    }
    let act = evidence >= MIN_EVIDENCE && r.precision.unwrap_or(0.0) >= MIN_PRECISION;
    let genuine = match r.contradicted {
        0 => "none of the genuine failures would have been re-run".to_string(),
        n => format!("{n} that failed again would have been re-run"),
    };
    let missed = match r.missed {
        0 => String::new(),
        n => format!(", {n} withheld that a plain re-run healed"),
    };
    let saved = r
        .median_minutes_to_rerun
        .map(|m| format!("; median {m} min saved"))
        .unwrap_or_default();
    let verdict = if act {
        "act"
    } else if evidence < MIN_EVIDENCE {
        "observe (too few re-runs yet)"
    } else {
        "observe"
    };
    format!(
        "{verdict}: {} would-be re-runs, {} went green when re-run, {genuine}{missed}{pushed}{saved}",
        r.would_retry, r.confirmed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(would: bool, outcome: Option<Outcome>, minutes: Option<i64>) -> Decided {
        Decided {
            would_retry: would,
            outcome,
            failed_at_ms: 1_000_000,
            rerun_at_ms: minutes.map(|m| 1_000_000 + m * 60_000),
        }
    }

    #[test]
    fn outcomes_follow_the_table() {
        assert_eq!(Outcome::of(true, true), Some(Outcome::Confirmed));
        assert_eq!(Outcome::of(true, false), Some(Outcome::Contradicted));
        assert_eq!(Outcome::of(false, true), Some(Outcome::Missed));
        assert_eq!(Outcome::of(false, false), None);
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }

    #[test]
    fn figures_count_each_side_and_take_the_median_of_would_be_re_runs() {
        use Outcome::*;
        let ds = [
            d(true, Some(Confirmed), Some(20)),
            d(true, Some(Confirmed), Some(30)),
            d(true, Some(Contradicted), Some(10)),
            d(true, Some(Confirmed), None),
            d(true, None, None),
            d(false, Some(Missed), Some(1)),
            d(false, None, Some(2)),
        ];
        let r = readiness(&ds);
        assert_eq!(
            r,
            Readiness {
                would_retry: 5,
                confirmed: 3,
                contradicted: 1,
                withheld: 2,
                missed: 1,
                precision: Some(0.75),
                median_minutes_to_rerun: Some(20.0),
                fixed_by_push: 0,
            }
        );
        // A push fix counts on neither side's evidence, whichever side it was on.
        let pushed = [
            d(true, Some(Confirmed), Some(20)),
            d(true, Some(FixedByPush), None),
            d(false, Some(FixedByPush), None),
            d(false, None, None),
        ];
        let r = readiness(&pushed);
        assert_eq!(
            (
                r.would_retry,
                r.confirmed,
                r.contradicted,
                r.withheld,
                r.missed
            ),
            (2, 1, 0, 2, 0)
        );
        assert_eq!((r.precision, r.fixed_by_push), (Some(1.0), 2));
        assert!(!serde_json::to_string(&r).unwrap().contains("fixed_by_push"));
        let empty = readiness(&[d(false, None, None)]);
        assert_eq!(
            (empty.precision, empty.median_minutes_to_rerun),
            (None, None)
        );
        assert_eq!(empty.withheld, 1);
        let json = serde_json::to_value(RepositoryReadiness {
            repository: "o/r".into(),
            platform: "github".into(),
            mode: Mode::Observe,
            figures: empty,
            since: Some(5),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"repository": "o/r", "platform": "github", "mode": "observe",
                "would_retry": 0, "confirmed": 0, "contradicted": 0, "withheld": 1, "missed": 0,
                "precision": null, "median_minutes_to_rerun": null, "since": 5})
        );
    }

    #[test]
    fn the_recommendation_acts_only_on_enough_precise_evidence() {
        let mut r = Readiness {
            would_retry: 41,
            confirmed: 39,
            contradicted: 0,
            withheld: 12,
            missed: 0,
            precision: Some(1.0),
            median_minutes_to_rerun: Some(23.0),
            fixed_by_push: 0,
        };
        assert_eq!(
            recommendation(&r),
            "act: 41 would-be re-runs, 39 went green when re-run, none of the genuine failures would have been re-run; median 23 min saved"
        );
        r.fixed_by_push = 3;
        assert!(
            recommendation(&r).contains(", 3 fixed by a push instead; median"),
            "{}",
            recommendation(&r)
        );
        r.contradicted = 5;
        r.precision = Some(39.0 / 44.0);
        assert!(recommendation(&r).starts_with("observe: "));
        let thin = Readiness {
            would_retry: 2,
            confirmed: 2,
            precision: Some(1.0),
            ..Default::default()
        };
        assert!(recommendation(&thin).starts_with("observe (too few re-runs yet): "));
        assert!(recommendation(&Readiness::default()).contains("nothing to measure"));
    }
}
