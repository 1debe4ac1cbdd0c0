//! GitHub App authentication
//! (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>,
//! <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation>):
//! an RS256 JWT signed with the app's private key proves the app; exchanged at
//! `POST /app/installations/{id}/access_tokens` it gives an installation token (one hour)
//! that serves only that installation's repositories.

use crate::api::{encode, ApiClient, Auth, HttpOptions};
use crate::settings::Section;
use crate::PlatformError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// GitHub's advice: `iat` 60 s in the past against clock drift; `exp` at most 10 min ahead.
const IAT_BACKDATE: Duration = Duration::seconds(60);
const JWT_LIFETIME: Duration = Duration::seconds(9 * 60);
/// A cached installation token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::minutes(5);

/// What the app needs on each repository, as `GET /app` lists `permissions`.
pub const APP_PERMISSIONS: &[(&str, &str)] = &[
    ("actions", "write"),
    ("checks", "write"),
    ("contents", "read"),
    ("pull_requests", "read"),
];

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

struct Token {
    value: String,
    renew_at: OffsetDateTime,
}

/// One installation's token slot: its lock makes concurrent first calls fetch once.
type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// The app's identity and the installation tokens it obtained.
pub struct GithubApp {
    app_id: String,
    key: EncodingKey,
    base: String,
    http: HttpOptions,
    /// `owner/repo` → installation id.
    installations: Mutex<HashMap<String, u64>>,
    tokens: Mutex<HashMap<u64, Slot>>,
}

/// The section's app, when `app_id` and `private_key_file` are set; an error names what is
/// wrong with them (one without the other, an unreadable or non-RSA key).
pub fn configured_app(s: &Section, http: &HttpOptions) -> Result<Option<GithubApp>, String> {
    match (s.app_id.as_deref(), s.private_key_file.as_deref()) {
        (None, None) => Ok(None),
        (Some(id), Some(file)) => GithubApp::load(id, file, &s.api_url, http).map(Some),
        (Some(_), None) => Err("[github] app_id needs private_key_file \
             (PIPEGUARD_GITHUB_APP_PRIVATE_KEY_FILE)"
            .into()),
        (None, Some(_)) => {
            Err("[github] private_key_file needs app_id (PIPEGUARD_GITHUB_APP_ID)".into())
        }
    }
}

/// The section's app, one per process for each API, app id and key: the healing clients and
/// the notifications share its installation tokens.
pub fn shared_app(s: &Section, http: &HttpOptions) -> Result<Option<Arc<GithubApp>>, String> {
    type Key = (String, String, Vec<u8>);
    static APPS: std::sync::OnceLock<Mutex<HashMap<Key, Arc<GithubApp>>>> =
        std::sync::OnceLock::new();
    let (Some(id), Some(file)) = (s.app_id.as_deref(), s.private_key_file.as_deref()) else {
        return configured_app(s, http).map(|a| a.map(Arc::new));
    };
    let pem = std::fs::read(file).unwrap_or_default();
    let key = (s.api_url.clone(), id.to_string(), pem);
    if let Some(app) = APPS.get_or_init(Mutex::default).lock().unwrap().get(&key) {
        return Ok(Some(app.clone()));
    }
    let app = configured_app(s, http)?.map(Arc::new);
    if let Some(a) = &app {
        let mut apps = APPS.get_or_init(Mutex::default).lock().unwrap();
        return Ok(Some(apps.entry(key).or_insert_with(|| a.clone()).clone()));
    }
    Ok(app)
}

/// `pem` is GitHub's download (`RSA PRIVATE KEY`, PKCS#1) or a PKCS#8 `PRIVATE KEY`.
fn rsa_key(pem_text: &[u8]) -> Result<EncodingKey, String> {
    let block = pem::parse(pem_text).map_err(|e| format!("not a PEM file: {e}"))?;
    let der = match block.tag() {
        "RSA PRIVATE KEY" => block.contents(),
        "PRIVATE KEY" => pkcs8_inner(block.contents())
            .ok_or("the PKCS#8 key holds no private key".to_string())?,
        other => return Err(format!("a {other:?} block, not an RSA private key")),
    };
    Ok(EncodingKey::from_rsa_der(der))
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208): a SEQUENCE of a
/// version INTEGER, an AlgorithmIdentifier SEQUENCE, then the key.
fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (0x30, info, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _, rest) = tlv(info)? else {
        return None;
    };
    let (0x30, _, rest) = tlv(rest)? else {
        return None;
    };
    match tlv(rest)? {
        (0x04, key, _) => Some(key),
        _ => None,
    }
}

impl GithubApp {
    pub fn load(
        app_id: &str,
        key_file: &str,
        api_url: &str,
        http: &HttpOptions,
    ) -> Result<GithubApp, String> {
        let text = std::fs::read(key_file)
            .map_err(|e| format!("[github] private_key_file {key_file}: cannot read it: {e}"))?;
        let key =
            rsa_key(&text).map_err(|e| format!("[github] private_key_file {key_file}: {e}"))?;
        let app = GithubApp {
            app_id: app_id.to_string(),
            key,
            base: api_url.to_string(),
            http: http.clone(),
            installations: Mutex::default(),
            tokens: Mutex::default(),
        };
        // Signing once proves the key is a usable RSA key now rather than at the first failure.
        app.jwt()
            .map_err(|e| format!("[github] private_key_file {key_file}: {e}"))?;
        Ok(app)
    }

    /// The app's JWT, made fresh for each use (it lives minutes).
    pub fn jwt(&self) -> Result<String, PlatformError> {
        let now = OffsetDateTime::now_utc();
        let claims = Claims {
            iat: (now - IAT_BACKDATE).unix_timestamp(),
            exp: (now + JWT_LIFETIME).unix_timestamp(),
            iss: &self.app_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).map_err(|e| {
            PlatformError::NotConfigured(format!("cannot sign the GitHub App JWT: {e}"))
        })
    }

    /// The API as the app itself (`/app`, installations).
    fn as_app(&self) -> Result<ApiClient, PlatformError> {
        Ok(github_api(
            &self.base,
            Auth::Bearer(self.jwt()?),
            &self.http,
        ))
    }

    /// `GET /app`: the app's name and `permissions`.
    pub async fn describe(&self) -> Result<Value, PlatformError> {
        self.as_app()?.get_json("get the app", "/app").await
    }

    /// The installation that covers `owner/repo` (`GET /repos/{owner}/{repo}/installation`).
    async fn installation(&self, repository: &str) -> Result<u64, PlatformError> {
        if let Some(id) = self.installations.lock().unwrap().get(repository) {
            return Ok(*id);
        }
        let (owner, repo) = repository.split_once('/').unwrap_or_default();
        let path = format!("/repos/{}/{}/installation", encode(owner), encode(repo));
        let v: Value = match self
            .as_app()?
            .get_json("find the installation", &path)
            .await
        {
            Err(PlatformError::Refused { status: 404, .. }) => {
                return Err(PlatformError::NotConfigured(format!(
                    "the GitHub App is not installed on {repository}"
                )))
            }
            other => other?,
        };
        let id = v["id"]
            .as_u64()
            .ok_or_else(|| PlatformError::Permanent(format!("{path} named no installation id")))?;
        self.installations
            .lock()
            .unwrap()
            .insert(repository.to_string(), id);
        Ok(id)
    }

    /// The installation's token, from the cache while it has more than 5 minutes left.
    pub async fn installation_token(&self, installation: u64) -> Result<String, PlatformError> {
        let slot = self
            .tokens
            .lock()
            .unwrap()
            .entry(installation)
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some(t) = held.as_ref() {
            if OffsetDateTime::now_utc() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let r = self
            .as_app()?
            .call("get an installation token", Method::POST, &path, None)
            .await?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| PlatformError::Transient(format!("{path}: unreadable answer: {e}")))?;
        let value = v["token"].as_str().unwrap_or_default().to_string();
        let expires_at = v["expires_at"]
            .as_str()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .ok_or_else(|| PlatformError::Permanent(format!("{path} gave no token or expiry")))?;
        if value.is_empty() {
            return Err(PlatformError::Permanent(format!("{path} gave no token")));
        }
        *held = Some(Token {
            value: value.clone(),
            renew_at: expires_at - RENEW_BEFORE,
        });
        Ok(value)
    }

    /// The API as the installation that covers `repository`.
    pub async fn client_for(&self, repository: &str) -> Result<ApiClient, PlatformError> {
        let id = self.installation(repository).await?;
        let token = self.installation_token(id).await?;
        Ok(github_api(&self.base, Auth::Bearer(token), &self.http))
    }
}

/// The permissions of [`APP_PERMISSIONS`] that `granted` (`GET /app`'s `permissions`) lacks;
/// `write` covers `read`.
pub fn missing_permissions(granted: &Value) -> Vec<String> {
    APP_PERMISSIONS
        .iter()
        .filter(|(name, need)| {
            let has = granted[*name].as_str().unwrap_or("");
            !(has == *need || has == "write" || has == "admin")
        })
        .map(|(name, need)| format!("{name}: {need}"))
        .collect()
}

/// GitHub's REST API at `base` (api.github.com or a GitHub Enterprise Server's `/api/v3`).
pub(super) fn github_api(base: &str, auth: Auth, http: &HttpOptions) -> ApiClient {
    ApiClient::new(base, auth, http.clone())
        .with_header("Accept", "application/vnd.github+json")
        .with_header("X-GitHub-Api-Version", "2022-11-28")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_covers_read_and_missing_ones_are_named() {
        let granted = json!({"actions": "write", "checks": "read", "contents": "write"});
        assert_eq!(
            missing_permissions(&granted),
            vec![
                "checks: write".to_string(),
                "pull_requests: read".to_string()
            ]
        );
        let all = json!({"actions": "write", "checks": "write", "contents": "read",
                         "pull_requests": "read"});
        assert!(missing_permissions(&all).is_empty());
    }

    #[test]
    fn a_key_file_that_is_no_rsa_key_is_refused_with_its_reason() {
        assert!(rsa_key(b"hello").unwrap_err().contains("not a PEM file"));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(rsa_key(cert.as_bytes())
            .unwrap_err()
            .contains("not an RSA private key"));
        assert_eq!(pkcs8_inner(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
    }
}
