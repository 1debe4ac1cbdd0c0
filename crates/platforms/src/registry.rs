//! The platforms pipeguard knows, and their configured clients: the one list a new platform
//! is added to.

use crate::api::HttpOptions;
use crate::settings::Section;
use crate::{
    ansible, azure, buildbot, buildkite, circleci, generic, github, gitlab, jenkins, teamcity,
};
use crate::{Ci, Module};
use pipeguard_core::event::Platform;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every platform module, in the order the README lists them.
pub static MODULES: &[&dyn Module] = &[
    &github::Github,
    &gitlab::Gitlab,
    &jenkins::Jenkins,
    &circleci::Circleci,
    &buildbot::Buildbot,
    &buildkite::Buildkite,
    &azure::Azure,
    &teamcity::Teamcity,
    &ansible::Ansible,
    &generic::Generic,
];

pub fn module(p: Platform) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.platform() == p)
}

/// The module whose section (and webhook path) is `key`: `/webhooks/{key}`.
pub fn by_key(key: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.section().key == key)
}

/// The configuration of every platform, keyed by platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Sections(BTreeMap<Platform, Section>);

impl Default for Sections {
    fn default() -> Self {
        Sections(
            MODULES
                .iter()
                .map(|m| (m.platform(), m.section().default_section()))
                .collect(),
        )
    }
}

impl Sections {
    /// Whether `key` is a platform section (`github`, `gitlab`…).
    pub fn is_key(key: &str) -> bool {
        by_key(key).is_some()
    }

    /// Sections from the TOML tables named after platforms; the others stay at their defaults.
    pub fn from_tables(tables: BTreeMap<String, toml::Value>) -> Result<Sections, String> {
        let mut s = Sections::default();
        for (key, value) in tables {
            let m = by_key(&key).ok_or_else(|| format!("[{key}] is not a platform"))?;
            let toml::Value::Table(t) = value else {
                return Err(format!("{key} must be a table ([{key}])"));
            };
            s.0.insert(m.platform(), m.section().parse(t)?);
        }
        Ok(s)
    }

    pub fn apply_env(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        for m in MODULES {
            let section = self.0.entry(m.platform()).or_default();
            m.section().apply_env(section, get)?;
        }
        Ok(())
    }

    pub fn get(&self, p: Platform) -> &Section {
        static EMPTY: std::sync::OnceLock<Section> = std::sync::OnceLock::new();
        self.0
            .get(&p)
            .unwrap_or_else(|| EMPTY.get_or_init(Section::default))
    }

    pub fn get_mut(&mut self, p: Platform) -> &mut Section {
        self.0.entry(p).or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Platform, &Section)> {
        self.0.iter().map(|(p, s)| (*p, s))
    }
}

/// The modules with the clients their sections configure.
pub struct Registry {
    clients: BTreeMap<Platform, Arc<dyn Ci>>,
    http: HttpOptions,
}

impl Registry {
    pub fn new(sections: &Sections, http: HttpOptions) -> Registry {
        let clients = MODULES
            .iter()
            .filter_map(|m| {
                let c = m.client(sections.get(m.platform()), &http)?;
                Some((m.platform(), Arc::from(c)))
            })
            .collect();
        Registry { clients, http }
    }

    /// The platform's client built from its own section.
    pub fn ci(&self, p: Platform) -> Option<&Arc<dyn Ci>> {
        self.clients.get(&p)
    }

    /// A client with other credentials (a repository's own).
    pub fn client_with(&self, p: Platform, section: &Section) -> Option<Arc<dyn Ci>> {
        module(p)?.client(section, &self.http).map(Arc::from)
    }

    pub fn http(&self) -> &HttpOptions {
        &self.http
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_is_listed_once_with_its_own_key() {
        let mut keys: Vec<&str> = MODULES.iter().map(|m| m.section().key).collect();
        for m in MODULES {
            assert_eq!(m.platform().as_str(), m.section().key);
            assert_eq!(module(m.platform()).unwrap().section().key, m.section().key);
        }
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), MODULES.len());
    }

    /// `init` and `doctor` read a platform's setup from its module alone: each says how its
    /// deliveries are sent, and each with an API credential how to get it and how it is checked
    /// (a probe, or one of doctor's finer checks for the five platforms that tell scopes).
    #[test]
    fn every_platform_explains_its_setup() {
        let finer = ["github", "gitlab", "jenkins", "circleci", "buildkite"];
        for m in MODULES {
            let (spec, setup) = (m.section(), m.setup());
            assert!(!setup.webhook.is_empty(), "{}", spec.key);
            if spec.credential.is_some() {
                assert!(!setup.credential.is_empty(), "{}", spec.key);
                assert!(
                    setup.probe.is_some() || finer.contains(&spec.key),
                    "{}: no doctor probe",
                    spec.key
                );
            }
        }
    }

    #[test]
    fn sections_from_tables() {
        let t: toml::Table = toml::from_str(
            "[gitlab]\napi_url = \"https://gl.example.com\"\n[buildbot]\npassword = \"pw\"",
        )
        .unwrap();
        let s = Sections::from_tables(t.into_iter().collect()).unwrap();
        assert_eq!(s.get(Platform::Gitlab).api_url, "https://gl.example.com");
        assert_eq!(s.get(Platform::Github).api_url, "https://api.github.com");
        assert_eq!(s.get(Platform::Buildbot).token.as_deref(), Some("pw"));
        let bad: toml::Table = toml::from_str("[jenkins]\npassword = \"x\"").unwrap();
        assert!(Sections::from_tables(bad.into_iter().collect()).is_err());
    }
}
