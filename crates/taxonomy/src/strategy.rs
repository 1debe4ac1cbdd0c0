//! What pipeguard does about a failure. The analyzer's signatures name one; the policy picks one.

use crate::category::Category;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Re-run the failed work as it was, after a backoff.
    Retry,
    /// Re-run on a bigger runner (more memory, disk or time).
    ScaleResources,
    /// Delete the caches the job restores, then re-run.
    ClearCache,
    /// Re-run on a clean workspace.
    ResetEnvironment,
    /// Run a healing playbook on the target host, then re-run.
    HealHost,
    /// Hand to a human with the evidence.
    Escalate,
    /// Nothing to do (cancelled by a person, not a failure).
    None,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::Retry,
        Strategy::ScaleResources,
        Strategy::ClearCache,
        Strategy::ResetEnvironment,
        Strategy::HealHost,
        Strategy::Escalate,
        Strategy::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Retry => "retry",
            Strategy::ScaleResources => "scale_resources",
            Strategy::ClearCache => "clear_cache",
            Strategy::ResetEnvironment => "reset_environment",
            Strategy::HealHost => "heal_host",
            Strategy::Escalate => "escalate",
            Strategy::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The built-in choice for a category when no signature or learning says otherwise.
    pub fn default_for(category: Category) -> Strategy {
        match category {
            Category::FlakyTest
            | Category::Network
            | Category::DependencyDownload
            | Category::RateLimited
            | Category::Timeout
            | Category::Infrastructure
            | Category::ServiceUnavailable => Strategy::Retry,
            Category::OutOfMemory | Category::DiskFull => Strategy::ScaleResources,
            Category::CacheCorruption => Strategy::ClearCache,
            Category::MissingPackage | Category::PermissionDenied => Strategy::HealHost,
            Category::Cancelled => Strategy::None,
            _ => Strategy::Escalate,
        }
    }

    pub fn acts(self) -> bool {
        !matches!(self, Strategy::Escalate | Strategy::None)
    }
}
