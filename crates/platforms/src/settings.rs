//! Each platform's configuration section: one shape for all (`api_url`, a credential, a
//! webhook secret), with what each platform calls its keys and environment variables declared
//! by the platform's module in a [`SectionSpec`].

use serde::Deserialize;

/// One platform's settings, from its TOML table (`[github]`) and `PIPEGUARD_<PLATFORM>_*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Section {
    /// Root of the platform's API (or of the server, for self-hosted platforms).
    pub api_url: String,
    /// The API credential: a token, or the password that goes with `user`.
    pub token: Option<String>,
    /// User name for platforms that authenticate with user + token/password.
    pub user: Option<String>,
    /// What deliveries must prove: an HMAC key or a shared token.
    pub webhook_secret: Option<String>,
    /// Accept unsigned deliveries even on a non-loopback address (trusted networks only).
    pub allow_unsigned: bool,
    /// GitHub App: its id (or client id), a number or a string in TOML.
    #[serde(deserialize_with = "id_text")]
    pub app_id: Option<String>,
    /// GitHub App: the PEM file of its private key.
    pub private_key_file: Option<String>,
    /// Who may approve from the platform itself (a check run's button, a `/pipeguard` note):
    /// user names, and GitHub `org/team` or GitLab group paths whose members may.
    pub approvers: Vec<String>,
}

/// Platforms whose section also takes an app's id and private key.
const APP_PLATFORMS: &[&str] = &["github"];
/// Platforms where people approve from the platform (`approvers`).
const APPROVER_PLATFORMS: &[&str] = &["github", "gitlab"];

fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Number(n) => n.to_string(),
        Id::Text(t) => t,
    }))
}

/// How a platform names its section, its credential and its environment variables.
#[derive(Debug, Clone, Copy)]
pub struct SectionSpec {
    /// TOML table and environment prefix: `github` → `[github]`, `PIPEGUARD_GITHUB_*`.
    pub key: &'static str,
    pub default_api_url: &'static str,
    /// The credential's key (`token`; Buildbot calls it `password`), `None` when the
    /// platform has no API pipeguard calls.
    pub credential: Option<&'static str>,
    /// Whether `user` goes with the credential.
    pub user: bool,
}

impl SectionSpec {
    fn keys(&self) -> Vec<&'static str> {
        let mut k = vec!["webhook_secret", "allow_unsigned"];
        if let Some(c) = self.credential {
            k.extend(["api_url", c]);
        }
        if self.user {
            k.push("user");
        }
        if APP_PLATFORMS.contains(&self.key) {
            k.extend(["app_id", "private_key_file"]);
        }
        if APPROVER_PLATFORMS.contains(&self.key) {
            k.push("approvers");
        }
        k
    }

    /// The section read from its TOML table; unknown keys are errors (a typo must not fall
    /// back to a default silently).
    pub fn parse(&self, table: toml::Table) -> Result<Section, String> {
        let allowed = self.keys();
        let mut table = table;
        for k in table.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "unknown key `{k}` in [{}] (expected one of: {})",
                    self.key,
                    allowed.join(", ")
                ));
            }
        }
        if let Some(c) = self.credential.filter(|c| *c != "token") {
            if let Some(v) = table.remove(c) {
                table.insert("token".into(), v);
            }
        }
        let mut s: Section = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("[{}]: {e}", self.key))?;
        if s.api_url.is_empty() {
            s.api_url = self.default_api_url.to_string();
        }
        Ok(s)
    }

    /// The section with nothing configured.
    pub fn default_section(&self) -> Section {
        Section {
            api_url: self.default_api_url.to_string(),
            ..Default::default()
        }
    }

    /// `PIPEGUARD_<KEY>_API_URL`, `_<CREDENTIAL>`, `_USER`, `_WEBHOOK_SECRET`,
    /// `_ALLOW_UNSIGNED` over the file's values; empty variables are ignored.
    pub fn apply_env(
        &self,
        s: &mut Section,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let prefix = format!("PIPEGUARD_{}_", self.key.to_ascii_uppercase());
        let var = |name: &str| get(&format!("{prefix}{name}")).filter(|v| !v.is_empty());
        if let Some(v) = var("WEBHOOK_SECRET") {
            s.webhook_secret = Some(v);
        }
        if let Some(v) = var("ALLOW_UNSIGNED") {
            s.allow_unsigned = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(format!("{prefix}ALLOW_UNSIGNED={v:?} is not true or false")),
            };
        }
        if let Some(c) = self.credential {
            if let Some(v) = var("API_URL") {
                s.api_url = v;
            }
            if let Some(v) = var(&c.to_ascii_uppercase()) {
                s.token = Some(v);
            }
        }
        if self.user {
            if let Some(v) = var("USER") {
                s.user = Some(v);
            }
        }
        if APP_PLATFORMS.contains(&self.key) {
            if let Some(v) = var("APP_ID") {
                s.app_id = Some(v);
            }
            if let Some(v) = var("APP_PRIVATE_KEY_FILE") {
                s.private_key_file = Some(v);
            }
        }
        if APPROVER_PLATFORMS.contains(&self.key) {
            if let Some(v) = var("APPROVERS") {
                s.approvers = v.split(',').map(|a| a.trim().to_string()).collect();
                s.approvers.retain(|a| !a.is_empty());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: SectionSpec = SectionSpec {
        key: "buildbot",
        default_api_url: "http://127.0.0.1:8010",
        credential: Some("password"),
        user: true,
    };

    #[test]
    fn the_credential_keeps_the_platform_s_name() {
        let t: toml::Table = toml::from_str("user = \"bot\"\npassword = \"pw\"").unwrap();
        let s = SPEC.parse(t).unwrap();
        assert_eq!(s.token.as_deref(), Some("pw"));
        assert_eq!(s.api_url, "http://127.0.0.1:8010");
        let t: toml::Table = toml::from_str("token = \"pw\"").unwrap();
        assert!(SPEC.parse(t).unwrap_err().contains("unknown key `token`"));
    }

    #[test]
    fn environment_overrides_with_the_platform_s_names() {
        let mut s = SPEC.default_section();
        SPEC.apply_env(&mut s, &|k| match k {
            "PIPEGUARD_BUILDBOT_PASSWORD" => Some("env-pw".into()),
            "PIPEGUARD_BUILDBOT_API_URL" => Some("http://b:8010".into()),
            "PIPEGUARD_BUILDBOT_ALLOW_UNSIGNED" => Some("true".into()),
            "PIPEGUARD_BUILDBOT_USER" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.token.as_deref(), Some("env-pw"));
        assert_eq!(s.api_url, "http://b:8010");
        assert!(s.allow_unsigned);
        assert_eq!(s.user, None, "empty variables are ignored");
        assert!(SPEC
            .apply_env(&mut s, &|k| (k == "PIPEGUARD_BUILDBOT_ALLOW_UNSIGNED")
                .then(|| "maybe".into()))
            .is_err());
    }
}
