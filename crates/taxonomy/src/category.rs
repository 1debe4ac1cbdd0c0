//! The failure taxonomy. Names are stable in JSON (snake_case) and in the database.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    // Transient or healable.
    FlakyTest,
    Network,
    DependencyDownload,
    RateLimited,
    OutOfMemory,
    DiskFull,
    Timeout,
    Infrastructure,
    CacheCorruption,
    ServiceUnavailable,
    MissingPackage,
    PermissionDenied,
    // Needs a human.
    TestFailure,
    CompilationError,
    LintError,
    ConfigurationError,
    Authentication,
    DependencyConflict,
    // Other.
    Cancelled,
    Unknown,
}

impl Category {
    pub const ALL: [Category; 20] = [
        Category::FlakyTest,
        Category::Network,
        Category::DependencyDownload,
        Category::RateLimited,
        Category::OutOfMemory,
        Category::DiskFull,
        Category::Timeout,
        Category::Infrastructure,
        Category::CacheCorruption,
        Category::ServiceUnavailable,
        Category::MissingPackage,
        Category::PermissionDenied,
        Category::TestFailure,
        Category::CompilationError,
        Category::LintError,
        Category::ConfigurationError,
        Category::Authentication,
        Category::DependencyConflict,
        Category::Cancelled,
        Category::Unknown,
    ];

    /// Whether a machine may act on this category (retry, scale, clean, heal a host)
    /// rather than hand it to a human.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Category::FlakyTest
                | Category::Network
                | Category::DependencyDownload
                | Category::RateLimited
                | Category::OutOfMemory
                | Category::DiskFull
                | Category::Timeout
                | Category::Infrastructure
                | Category::CacheCorruption
                | Category::ServiceUnavailable
                | Category::MissingPackage
                | Category::PermissionDenied
        )
    }

    pub fn needs_human(self) -> bool {
        matches!(
            self,
            Category::TestFailure
                | Category::CompilationError
                | Category::LintError
                | Category::ConfigurationError
                | Category::Authentication
                | Category::DependencyConflict
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::FlakyTest => "flaky_test",
            Category::Network => "network",
            Category::DependencyDownload => "dependency_download",
            Category::RateLimited => "rate_limited",
            Category::OutOfMemory => "out_of_memory",
            Category::DiskFull => "disk_full",
            Category::Timeout => "timeout",
            Category::Infrastructure => "infrastructure",
            Category::CacheCorruption => "cache_corruption",
            Category::ServiceUnavailable => "service_unavailable",
            Category::MissingPackage => "missing_package",
            Category::PermissionDenied => "permission_denied",
            Category::TestFailure => "test_failure",
            Category::CompilationError => "compilation_error",
            Category::LintError => "lint_error",
            Category::ConfigurationError => "configuration_error",
            Category::Authentication => "authentication",
            Category::DependencyConflict => "dependency_conflict",
            Category::Cancelled => "cancelled",
            Category::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown category {0:?}")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json_and_str() {
        for c in Category::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(c.as_str().parse::<Category>().unwrap(), c);
        }
        assert!("bogus".parse::<Category>().is_err());
    }

    #[test]
    fn transient_and_human_groups_are_disjoint() {
        for c in Category::ALL {
            assert!(!(c.is_transient() && c.needs_human()), "{c}");
        }
        assert!(Category::Network.is_transient());
        assert!(Category::CompilationError.needs_human());
        assert!(!Category::Unknown.is_transient() && !Category::Unknown.needs_human());
    }
}
