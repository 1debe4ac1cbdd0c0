//! JWTs from an OAuth 2.0 / OIDC identity provider: the signature checked against the
//! provider's JWKS (the algorithms pinned by configuration, so `alg: none` or a downgrade to an
//! HMAC key is refused), issuer, audience, expiry and not-before checked, critical header
//! extensions refused (none is implemented), the token's size bounded before it is parsed, and
//! one claim mapped to a role.

use super::{Principal, Role};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `[auth.oidc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` tokens must carry, e.g. `https://login.example.com/realms/ci`.
    pub issuer: String,
    /// The `aud` tokens must carry (the client id pipeguard is registered as).
    pub audience: String,
    /// Where the signing keys are; discovered from the issuer's
    /// `/.well-known/openid-configuration` when unset.
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<String>,
    /// The claim that holds the role (a string or a list; `a.b` reaches into objects).
    pub role_claim: String,
    /// Claim values mapped to roles; without a mapping a value must be a role name.
    pub roles: BTreeMap<String, String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            algorithms: vec!["RS256".into()],
            role_claim: "pipeguard_role".into(),
            roles: BTreeMap::new(),
            leeway_seconds: 30,
        }
    }
}

/// Algorithms a provider may sign with: asymmetric, so the JWKS holds only public keys.
const ASYMMETRIC: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl OidcConfig {
    pub fn validate(&self) -> Result<Vec<Algorithm>, String> {
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err("[auth.oidc] needs issuer and audience".into());
        }
        for (value, role) in &self.roles {
            Role::from_str(role).map_err(|e| format!("[auth.oidc] roles.{value}: {e}"))?;
        }
        self.algorithms
            .iter()
            .map(|a| {
                Algorithm::from_str(a)
                    .ok()
                    .filter(|a| ASYMMETRIC.contains(a))
                    .ok_or_else(|| {
                        format!("[auth.oidc] algorithm {a:?} is not an asymmetric JWS algorithm")
                    })
            })
            .collect()
    }
}

/// Longest JWT read: provider tokens are a few KiB; anything longer is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Keys refreshed at most this often when a token names a key id the cache lacks.
const REFRESH_AFTER: Duration = Duration::from_secs(60);

pub struct OidcValidator {
    cfg: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: tokio::sync::RwLock<Option<JwkSet>>,
    fetched: Mutex<Option<Instant>>,
}

impl OidcValidator {
    pub fn new(cfg: OidcConfig) -> Result<OidcValidator, String> {
        let algorithms = cfg.validate()?;
        Ok(OidcValidator {
            cfg,
            algorithms,
            http: pipeguard_platforms::api::client(),
            keys: tokio::sync::RwLock::new(None),
            fetched: Mutex::new(None),
        })
    }

    async fn jwks_url(&self) -> Result<String, String> {
        if let Some(u) = &self.cfg.jwks_url {
            return Ok(u.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let doc: Value = self.get_json(&url).await?;
        doc["jwks_uri"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("{url} names no jwks_uri"))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("identity provider unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "identity provider answered {} for {url}",
                r.status()
            ));
        }
        r.json().await.map_err(|e| format!("unreadable {url}: {e}"))
    }

    /// Fetches the keys unless they were fetched moments ago.
    async fn refresh(&self) -> Result<(), String> {
        {
            let fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
            if fetched.is_some_and(|t| t.elapsed() < REFRESH_AFTER) {
                return Ok(());
            }
        }
        let set: JwkSet = self.get_json(&self.jwks_url().await?).await?;
        *self.keys.write().await = Some(set);
        *self.fetched.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        Ok(())
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, String> {
        for attempt in 0..2 {
            if attempt == 1 || self.keys.read().await.is_none() {
                self.refresh().await?;
            }
            let keys = self.keys.read().await;
            let found = keys.as_ref().and_then(|set| match kid {
                Some(k) => set.find(k).cloned(),
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            });
            if let Some(jwk) = found {
                return DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"));
            }
        }
        Err(format!("no signing key {kid:?} at the identity provider"))
    }

    /// The principal a JWT stands for, or why it is refused.
    pub async fn validate(&self, token: &str) -> Result<Principal, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "a JWT longer than {MAX_TOKEN_BYTES} bytes is not read"
            ));
        }
        let header = decode_header(token).map_err(|e| format!("not a valid JWT: {e}"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!("JWT algorithm {:?} is not accepted", header.alg));
        }
        // RFC 7515 4.1.11: a recipient must refuse a token whose critical extensions it does
        // not implement, and pipeguard implements none.
        if let Some(crit) = &header.crit {
            return Err(format!(
                "JWT header names critical extensions that are not implemented: {crit:?}"
            ));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.algorithms = self.algorithms.clone();
        v.leeway = self.cfg.leeway_seconds;
        v.validate_nbf = true;
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Value>(token, &key, &v).map_err(|e| format!("JWT refused: {e}"))?;
        let claims = data.claims;
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or("JWT has no subject")?;
        let role = self
            .role(&claims)
            .ok_or_else(|| format!("JWT grants no pipeguard role ({})", self.cfg.role_claim))?;
        Ok(Principal {
            name: subject.to_string(),
            role,
            via: "jwt",
        })
    }

    /// The strongest role the claim grants.
    fn role(&self, claims: &Value) -> Option<Role> {
        let mut v = claims;
        for part in self.cfg.role_claim.split('.') {
            v = v.get(part)?;
        }
        let values: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        let rank = |r: &Role| match r {
            Role::Admin => 3,
            Role::Operator => 2,
            Role::Viewer => 1,
            Role::Ingest => 0,
        };
        values
            .into_iter()
            .filter_map(|val| {
                let name = self.cfg.roles.get(val).map(String::as_str).unwrap_or(val);
                Role::from_str(name).ok()
            })
            .max_by_key(rank)
    }
}
