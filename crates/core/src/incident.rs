//! Incidents: many repositories failing at once for the same transient cause (a registry, an
//! API or a cloud endpoint that is down) are one outage, not many failures. Retrying each of
//! them into the outage spends the budget for nothing; pipeguard holds them, probes the cause
//! with one canary at a time and releases them in a paced wave once the canary is green.
//! This module is the pure part: which external target a diagnosis failed on, when an
//! incident opens, the canary's backoff and how many held sessions a wave releases now.

use crate::analysis::Diagnosis;
use crate::category::Category;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// `[incidents]`: when failures become an incident and how it is probed and released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Repositories failing with the same cause within the window that open an incident
    /// (0 turns incidents off).
    pub min_repositories: u32,
    pub window_minutes: u32,
    /// An incident open longer than this escalates its held sessions, together.
    pub give_up_hours: u32,
    /// The first canary goes this long after the incident opened; each later one waits
    /// twice as long as the one before, up to `canary_max_seconds`.
    pub canary_seconds: u64,
    pub canary_max_seconds: u64,
    /// Held sessions released per minute once the incident closed (the platform's rate of
    /// re-runs); the healing budget caps each wave too.
    pub release_per_minute: u32,
    /// Share of the hourly healing budget a wave leaves alone, for failures that have nothing
    /// to do with the incident (0 to 1). The rest of the wave waits for the budget to free.
    pub reserve_share: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_repositories: 3,
            window_minutes: 10,
            give_up_hours: 6,
            canary_seconds: 120,
            canary_max_seconds: 1800,
            release_per_minute: 60,
            reserve_share: 0.25,
        }
    }
}

/// The categories an outage elsewhere produces; a local cause (memory, disk, a flaky test,
/// a corrupt cache) is never an incident.
const OUTAGE_CATEGORIES: &[Category] = &[
    Category::Network,
    Category::DependencyDownload,
    Category::RateLimited,
    Category::Timeout,
    Category::ServiceUnavailable,
    Category::Infrastructure,
];

/// Where an evidence line names the external target, most specific first; the host is the
/// capture group `host`.
const TARGET_RULES: &[&str] = &[
    // docker push/pull: "The push refers to repository [registry.example.com/acme/api]"
    r"repository \[(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)(?::\d+)?/",
    // curl, git: "Could not resolve host: github.com"
    r"could not resolve host:? '?(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)",
    // Node: "getaddrinfo ENOTFOUND registry.npmjs.org", "EAI_AGAIN"
    r"getaddrinfo (?:enotfound|eai_again) (?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)",
    // Go: "dial tcp: lookup proxy.golang.org"
    r"dial tcp: lookup (?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)",
    // curl: "Failed to connect to api.example.com port 443"
    r"failed to connect to (?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+) port",
    // Any URL in the line: its host.
    r"[a-z][a-z0-9+.-]*://(?:[^/@\s]+@)?(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)",
];

fn rules() -> &'static [Regex] {
    static R: OnceLock<Vec<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        TARGET_RULES
            .iter()
            .map(|r| Regex::new(r).expect("target rules are valid"))
            .collect()
    })
}

/// The external target a line names, lower-cased, by the first rule that matches.
pub fn target_in(line: &str) -> Option<String> {
    let line = line.to_ascii_lowercase();
    rules().iter().find_map(|r| {
        r.captures(&line)?
            .name("host")
            .map(|m| m.as_str().to_string())
    })
}

/// What a failure's incident would be about: its category and the external target its
/// evidence names. `None` for a cause that is not an outage elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cause {
    pub category: Category,
    pub target: String,
}

pub fn cause(d: &Diagnosis) -> Option<Cause> {
    if !d.transient || !OUTAGE_CATEGORIES.contains(&d.category) {
        return None;
    }
    let target = d.evidence.iter().find_map(|e| target_in(&e.text))?;
    Some(Cause {
        category: d.category,
        target,
    })
}

/// Whether failures of one cause from `repositories` distinct repositories within the window
/// are an incident.
pub fn opens(repositories: usize, s: &Settings) -> bool {
    s.min_repositories > 0 && repositories >= s.min_repositories as usize
}

/// How long after the previous probe (or the opening) the next canary goes, when
/// `canaries` went before: 1, 2, 4 … times `canary_seconds`, capped.
pub fn canary_delay_seconds(canaries: u32, s: &Settings) -> u64 {
    let factor = 1u64 << canaries.min(30);
    s.canary_seconds
        .saturating_mul(factor)
        .min(s.canary_max_seconds.max(s.canary_seconds))
}

/// The healing budget of the hour: re-runs allowed and those already made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourBudget {
    pub limit: u32,
    pub used: i64,
}

impl HourBudget {
    /// What a wave may spend: what is left beyond the reserve for unrelated failures.
    pub fn for_wave(self, s: &Settings) -> usize {
        (i64::from(wave_limit(self.limit, s)) - self.used).max(0) as usize
    }
}

/// The re-runs of the hour a wave may reach: the hourly `limit` less the reserve kept for
/// failures that have nothing to do with the incident.
pub fn wave_limit(limit: u32, s: &Settings) -> u32 {
    let reserve = (f64::from(limit) * s.reserve_share.clamp(0.0, 1.0)).ceil() as u32;
    limit.saturating_sub(reserve)
}

/// How many held sessions a wave releases now: those the rate allows since the last release,
/// no more than are held and than the healing budget has left beyond its reserve (`None`:
/// no budget).
pub fn release_now(
    held: usize,
    since_last_ms: i64,
    budget: Option<HourBudget>,
    s: &Settings,
) -> usize {
    let by_budget = budget.map_or(usize::MAX, |b| b.for_wave(s));
    if s.release_per_minute == 0 {
        return held.min(by_budget);
    }
    let interval = 60_000 / s.release_per_minute as i64;
    let by_rate = (since_last_ms.max(0) / interval.max(1)) as usize;
    held.min(by_rate).min(by_budget)
}

/// The open incident a session's cause belongs to, as far as its plan depends on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub id: i64,
    pub target: String,
    /// This session is the incident's canary: its re-run probes the cause.
    #[serde(default)]
    pub canary: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Evidence;

    fn diagnosis(category: Category, lines: &[&str]) -> Diagnosis {
        Diagnosis {
            category,
            confidence: 0.9,
            transient: category.is_transient(),
            evidence: lines
                .iter()
                .enumerate()
                .map(|(i, t)| Evidence {
                    line: i + 1,
                    text: t.to_string(),
                })
                .collect(),
            fingerprint: "f".into(),
            strategy: crate::policy::Strategy::Retry,
            failing_tests: vec![],
            analyzer: "rules".into(),
            signature: None,
            summary: String::new(),
        }
    }

    #[test]
    fn targets_are_read_from_the_evidence_by_the_first_matching_rule() {
        let cases = [
            ("npm ERR! network request to https://registry.npmjs.org/react/-/react-18.2.0.tgz failed", "registry.npmjs.org"),
            ("The push refers to repository [registry.example.com:5000/acme/api]", "registry.example.com"),
            ("curl: (6) Could not resolve host: API.GitHub.com", "api.github.com"),
            ("npm ERR! getaddrinfo EAI_AGAIN registry.yarnpkg.com", "registry.yarnpkg.com"),
            ("dial tcp: lookup proxy.golang.org on 10.0.0.2:53: no such host", "proxy.golang.org"),
            ("curl: (7) Failed to connect to s3.eu-west-1.amazonaws.com port 443", "s3.eu-west-1.amazonaws.com"),
            ("fatal: unable to access 'https://user@git.example.org/x.git/'", "git.example.org"),
        ];
        for (line, host) in cases {
            assert_eq!(target_in(line).as_deref(), Some(host), "{line}");
        }
        assert_eq!(target_in("error: connection reset by peer"), None);
    }

    #[test]
    fn only_an_outage_category_with_a_named_target_is_a_cause() {
        let line = "request to https://registry.npmjs.org/x failed";
        let c = cause(&diagnosis(Category::DependencyDownload, &["npm ci", line])).unwrap();
        assert_eq!(c.target, "registry.npmjs.org");
        assert_eq!(c.category, Category::DependencyDownload);
        // Local causes and genuine failures are never incidents, whatever they print.
        assert_eq!(cause(&diagnosis(Category::OutOfMemory, &[line])), None);
        assert_eq!(cause(&diagnosis(Category::CompilationError, &[line])), None);
        assert_eq!(
            cause(&diagnosis(Category::Network, &["connection reset"])),
            None
        );
    }

    #[test]
    fn canaries_back_off_by_doubling_up_to_the_cap_and_waves_keep_the_pace() {
        let s = Settings::default();
        let delays: Vec<u64> = (0..6).map(|n| canary_delay_seconds(n, &s)).collect();
        assert_eq!(delays, [120, 240, 480, 960, 1800, 1800]);
        assert!(!opens(2, &s) && opens(3, &s));
        assert!(!opens(
            100,
            &Settings {
                min_repositories: 0,
                ..s.clone()
            }
        ));
        // 60 a minute: one a second since the last release, no more than held or budget.
        assert_eq!(release_now(30, 5_500, None, &s), 5);
        assert_eq!(release_now(3, 5_500, None, &s), 3);
        let hour = |used| Some(HourBudget { limit: 100, used });
        // A quarter of 100 is kept back: 73 used leaves the wave 2, 75 used none.
        assert_eq!(release_now(30, 5_500, hour(73), &s), 2);
        assert_eq!(release_now(30, 5_500, hour(75), &s), 0);
        assert_eq!(release_now(30, 5_500, hour(90), &s), 0);
        assert_eq!(release_now(30, 500, None, &s), 0);
        // Without a reserve the wave may spend the budget to its end.
        let all = Settings {
            reserve_share: 0.0,
            ..s.clone()
        };
        assert_eq!(release_now(30, 5_500, hour(98), &all), 2);
        // A share out of range is taken at its bound.
        let over = Settings {
            reserve_share: 7.0,
            ..s.clone()
        };
        assert_eq!(release_now(30, 5_500, hour(0), &over), 0);
        // What a wave may reach of the hour's limit: the same reserve, rounded up.
        assert_eq!(wave_limit(100, &s), 75);
        assert_eq!(wave_limit(10, &s), 7);
        assert_eq!(wave_limit(100, &all), 100);
        assert_eq!(wave_limit(100, &over), 0);
    }
}
