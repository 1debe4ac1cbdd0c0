//! The CI systems (and local intakes) a failure can come from.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Github,
    Gitlab,
    Jenkins,
    Circleci,
    Buildbot,
    Buildkite,
    Azure,
    Teamcity,
    Ansible,
    Command,
    Generic,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Github => "github",
            Platform::Gitlab => "gitlab",
            Platform::Jenkins => "jenkins",
            Platform::Circleci => "circleci",
            Platform::Buildbot => "buildbot",
            Platform::Buildkite => "buildkite",
            Platform::Azure => "azure",
            Platform::Teamcity => "teamcity",
            Platform::Ansible => "ansible",
            Platform::Command => "command",
            Platform::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        [
            Platform::Github,
            Platform::Gitlab,
            Platform::Jenkins,
            Platform::Circleci,
            Platform::Buildbot,
            Platform::Buildkite,
            Platform::Azure,
            Platform::Teamcity,
            Platform::Ansible,
            Platform::Command,
            Platform::Generic,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
