//! Configuration: an optional TOML file, overridden by `PIPEGUARD_*` environment variables.

use anyhow::{Context, Result};
use pipeguard_core::analysis::UserSignature;
use pipeguard_core::policy::Policy;
use pipeguard_platforms::registry::Sections;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    /// Largest webhook body accepted, in bytes (GitHub caps deliveries at 25 MB).
    pub max_body_bytes: usize,
    /// Each platform's `[github]`, `[gitlab]`… section, read by the platform's own spec.
    #[serde(skip)]
    pub platforms: Sections,
    pub healing: HealingSection,
    pub worker: WorkerSection,
    /// Per-repository credentials, policy overrides and strategy mappings.
    pub repos: Vec<crate::tenants::RepoConfig>,
    /// User-defined fixes run before a re-run.
    pub strategies: Vec<crate::tenants::CustomStrategy>,
    /// Channels told when a session needs people.
    pub notify: Vec<crate::tenants::NotifyConfig>,
    /// User signatures, ahead of the built-in knowledge base.
    pub signatures: Vec<UserSignature>,
    pub auth: AuthSection,
    pub approvals: ApprovalsSection,
    pub api: ApiSection,
    pub server: ServerSection,
    pub metrics: MetricsSection,
    pub tls: TlsSection,
    /// Encryption at rest of payloads, logs and evidence.
    pub encryption: EncryptionSection,
    /// How long payloads, logs and evidence are kept.
    pub retention: RetentionSection,
    /// Runners that fail unrelated jobs: whether they are taken out by themselves.
    pub runners: RunnersSection,
    /// The optional model that explains failures the rules cannot place.
    pub llm: pipeguard_llm::LlmConfig,
    /// Decisions from Slack messages' buttons.
    pub slack: SlackSection,
    /// When many repositories failing for one cause become an incident, and how it is
    /// probed and released.
    pub incidents: pipeguard_core::incident::Settings,
    /// Quarantined tests: when they are released and where their tickets go.
    pub flaky: FlakySection,
    /// The host loop's keys of `[ansible]` (the rest of that table is the platform's).
    #[serde(skip)]
    pub ansible: AnsibleHostLoop,
}

/// `[ansible] host_loop`, `inventory`, `hosts`, `become`, `ansible`: reports from the
/// callback plugin run the host loop on the server, for the listed hosts it may reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnsibleHostLoop {
    /// Off by default: reports are diagnosed and escalated as before.
    pub host_loop: bool,
    /// The inventory the server reaches hosts with (`-i`).
    pub inventory: Option<String>,
    /// Globs of inventory names the server may run commands on; none matches nothing.
    pub hosts: Vec<String>,
    /// Run the commands with `--become`.
    #[serde(rename = "become")]
    pub become_: bool,
    /// The `ansible` executable (default: `ansible` on the PATH).
    pub ansible: Option<String>,
}

impl AnsibleHostLoop {
    const KEYS: [&'static str; 5] = ["host_loop", "inventory", "hosts", "become", "ansible"];

    /// Whether the loop may run on `host`.
    pub fn reaches(&self, host: &str) -> bool {
        self.host_loop
            && self
                .hosts
                .iter()
                .any(|g| pipeguard_core::glob::Pattern::shell(g).is_match(host))
    }

    /// Takes the host loop's keys out of the `[ansible]` table.
    fn take(table: &mut toml::Table) -> Result<AnsibleHostLoop> {
        let Some(toml::Value::Table(a)) = table.get_mut("ansible") else {
            return Ok(AnsibleHostLoop::default());
        };
        let mine: toml::Table = Self::KEYS
            .iter()
            .filter_map(|k| Some((k.to_string(), a.remove(*k)?)))
            .collect();
        toml::Value::Table(mine)
            .try_into()
            .map_err(|e| anyhow::anyhow!("[ansible]: {e}"))
    }

    /// `PIPEGUARD_ANSIBLE_HOST_LOOP`, `_INVENTORY`, `_HOSTS` (comma-separated), `_BECOME`,
    /// `_BIN`.
    fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        let v = |k: &str| get(&format!("PIPEGUARD_ANSIBLE_{k}")).filter(|v| !v.is_empty());
        let flag = |k: &str, field: &mut bool| -> Result<()> {
            if let Some(x) = v(k) {
                *field = x.trim().parse().map_err(|_| {
                    anyhow::anyhow!("PIPEGUARD_ANSIBLE_{k}={x:?} is not true or false")
                })?;
            }
            Ok(())
        };
        flag("HOST_LOOP", &mut self.host_loop)?;
        flag("BECOME", &mut self.become_)?;
        if let Some(x) = v("INVENTORY") {
            self.inventory = Some(x);
        }
        if let Some(x) = v("BIN") {
            self.ansible = Some(x);
        }
        if let Some(x) = v("HOSTS") {
            self.hosts = x.split(',').map(|h| h.trim().to_string()).collect();
        }
        Ok(())
    }
}

/// Slack's interactive messages: the app's signing secret proves each button press, and
/// only the listed Slack user ids may decide.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackSection {
    /// The Slack app's signing secret (`PIPEGUARD_SLACK_SIGNING_SECRET`).
    pub signing_secret: Option<String>,
    /// Slack user ids (`U…`) who may approve, reject or retry.
    pub approvers: Vec<String>,
}

impl std::fmt::Debug for SlackSection {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSection")
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<set>"),
            )
            .field("approvers", &self.approvers)
            .finish()
    }
}

/// The quarantine lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlakySection {
    /// First-attempt green runs of its repository in a row that release a quarantined test.
    pub release_after_passes: u32,
    /// Where a quarantined test's ticket is filed (closed on release).
    pub tickets: Tickets,
}

impl Default for FlakySection {
    fn default() -> Self {
        FlakySection {
            release_after_passes: 20,
            tickets: Tickets::Off,
        }
    }
}

/// `[flaky] tickets`: the platform whose issues hold quarantined tests' tickets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tickets {
    #[default]
    Off,
    Github,
    Gitlab,
}

impl Tickets {
    pub fn platform(self) -> Option<pipeguard_core::Platform> {
        match self {
            Tickets::Off => None,
            Tickets::Github => Some(pipeguard_core::Platform::Github),
            Tickets::Gitlab => Some(pipeguard_core::Platform::Gitlab),
        }
    }
}

/// How API callers prove who they are: API tokens always; JWTs when `[auth.oidc]` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
}

/// Human approval of plans that change what is live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsSection {
    /// Distinct operators who must approve (2 = four eyes).
    pub required: u32,
    /// A plan not approved within this many hours is escalated; older approvals lapse.
    pub expire_hours: u64,
}

impl Default for ApprovalsSection {
    fn default() -> Self {
        ApprovalsSection {
            required: 1,
            expire_hours: 24,
        }
    }
}

/// Bounds on API requests (webhooks have `max_body_bytes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    pub max_body_bytes: usize,
    /// Requests per minute from one source address; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Seconds a request may take, body included, before it is cut off.
    pub request_timeout_seconds: u64,
    /// Seconds a client may take to send a request's headers (or finish a TLS handshake).
    pub header_timeout_seconds: u64,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            max_body_bytes: 64 * 1024,
            rate_limit_per_minute: 600,
            request_timeout_seconds: 30,
            header_timeout_seconds: 10,
        }
    }
}

/// Bounds on connections, below HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Connections open at once; new ones beyond it are closed at once.
    pub max_connections: usize,
    /// Seconds a connection may stay open with no request in flight (one that never sends a
    /// request included) before it is closed.
    pub idle_timeout_seconds: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            max_connections: 10_000,
            idle_timeout_seconds: 30,
        }
    }
}

/// `/metrics` is open unless a token is set; Prometheus then sends it as a bearer token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub token: Option<String>,
}

/// TLS with rustls: PEM certificate chain and private key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionSection {
    /// A file of keys (base64 or 64 hex characters each), the current key first and older
    /// keys after it, one per line.
    pub key_file: Option<std::path::PathBuf>,
    /// The keys from `PIPEGUARD_ENCRYPTION_KEY` (same format); they win over `key_file`.
    /// Never read from the configuration file, so key material stays out of it.
    #[serde(skip)]
    pub key: Option<String>,
    /// Where the audit chain's key file (when no encryption key is set) and head file are
    /// kept: default beside the SQLite database, or the working directory for PostgreSQL.
    pub audit_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EncryptionSection {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionSection")
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("audit_dir", &self.audit_dir)
            .finish()
    }
}

impl EncryptionSection {
    /// The configured keys; `None` when encryption is off.
    pub fn keyring(&self) -> Result<Option<pipeguard_store::Keyring>> {
        let text = match (&self.key, &self.key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read encryption key file {}", path.display()))?,
            (None, None) => return Ok(None),
        };
        let ring = pipeguard_store::Keyring::parse(&text).map_err(|e| match &self.key {
            Some(_) => anyhow::anyhow!("PIPEGUARD_ENCRYPTION_KEY: {e}"),
            None => anyhow::anyhow!("{}: {e}", self.key_file.as_deref().unwrap().display()),
        })?;
        Ok(Some(ring))
    }

    /// The audit chain's keys and head file for `database_url`: keyed with the encryption
    /// key when one is set, otherwise with a key file made (mode 0600) when `create`.
    pub fn audit_anchor(
        &self,
        database_url: &str,
        create: bool,
    ) -> Result<pipeguard_store::AuditAnchor> {
        let ring = self.keyring()?;
        let Some(base) = pipeguard_store::audit_files_base(database_url, self.audit_dir.as_deref())
        else {
            return Ok(pipeguard_store::AuditAnchor::default());
        };
        Ok(pipeguard_store::AuditAnchor::files(
            &base,
            ring.as_ref(),
            create,
        )?)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Sessions closed more than this many days ago lose their payloads, logs and evidence
    /// (their statistics stay); 0 keeps everything.
    pub days: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnersSection {
    pub quarantine: Quarantine,
    /// The Jenkins build parameter (a Label parameter, or a string the pipeline passes to
    /// `agent { label ... }`) a re-run sets to steer away from a suspect node; unset, a
    /// failure on a suspect runner not taken out waits for approval.
    pub steer_parameter: Option<String>,
}

/// What happens to a suspect runner where the platform's API can take it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quarantine {
    /// Reported; an operator takes it out (`POST /api/v1/runners/{platform}/{name}/quarantine`).
    #[default]
    Approve,
    /// Taken out at once through the platform's API.
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingSection {
    pub backoff_seconds: u64,
    pub max_attempts: u32,
    pub side_effect_patterns: Vec<String>,
    pub min_confidence: f64,
    /// Re-runs pipeguard may start per repository in an hour (0 = no limit): a flood of
    /// failures cannot become a retry storm.
    pub budget_per_repository_per_hour: u32,
    /// Re-runs per hour over all repositories (0 = no limit).
    pub budget_per_hour: u32,
    /// `act` heals; `observe` records what it would have done and touches nothing.
    pub mode: pipeguard_core::planner::Mode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// False on replicas that only take webhooks and serve the API while others (sharing
    /// the PostgreSQL database) run the jobs; also how intake alone is benchmarked.
    pub enabled: bool,
    /// How often to ask the platform whether a re-run finished, when no webhook said so.
    pub verify_poll_seconds: u64,
    /// How long to wait for a run to complete before healing or for a heal to be verified.
    pub wait_limit_seconds: u64,
    /// Tries of one job on transient platform errors before the session is failed.
    pub max_job_tries: u32,
    /// Lease of a claimed job; a crashed worker's job is taken again after it.
    pub lease_seconds: u64,
    /// First delay between platform API tries on transient errors, in milliseconds.
    pub http_backoff_ms: u64,
    /// Jobs run at once by this replica: a slow log download or a long fix command holds
    /// only its own session back.
    pub concurrency: usize,
    /// Jobs of one platform at once, so a platform that times out cannot take every worker.
    pub per_platform: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://pipeguard.db".into(),
            max_body_bytes: 25 * 1024 * 1024,
            platforms: Sections::default(),
            healing: HealingSection::default(),
            worker: WorkerSection::default(),
            repos: vec![],
            strategies: vec![],
            notify: vec![],
            signatures: vec![],
            auth: AuthSection::default(),
            approvals: ApprovalsSection::default(),
            api: ApiSection::default(),
            server: ServerSection::default(),
            metrics: MetricsSection::default(),
            tls: TlsSection::default(),
            encryption: EncryptionSection::default(),
            retention: RetentionSection::default(),
            runners: RunnersSection::default(),
            llm: pipeguard_llm::LlmConfig::default(),
            slack: SlackSection::default(),
            incidents: Default::default(),
            flaky: FlakySection::default(),
            ansible: AnsibleHostLoop::default(),
        }
    }
}

impl Default for HealingSection {
    fn default() -> Self {
        let p = Policy::default();
        HealingSection {
            backoff_seconds: p.backoff_seconds,
            max_attempts: p.max_attempts,
            side_effect_patterns: p.side_effect_patterns,
            min_confidence: p.min_confidence,
            budget_per_repository_per_hour: 30,
            budget_per_hour: 300,
            mode: Default::default(),
        }
    }
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            enabled: true,
            verify_poll_seconds: 120,
            wait_limit_seconds: 6 * 3600,
            max_job_tries: 6,
            lease_seconds: 300,
            http_backoff_ms: 500,
            concurrency: 8,
            per_platform: 4,
        }
    }
}

impl HealingSection {
    pub fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.max_attempts,
            backoff_seconds: self.backoff_seconds,
            side_effect_patterns: self.side_effect_patterns.clone(),
            min_confidence: self.min_confidence,
        }
    }
}

impl Config {
    /// `PIPEGUARD_OIDC_ISSUER`, `_AUDIENCE`, `_JWKS_URL`, `_ROLE_CLAIM` turn on (or override)
    /// `[auth.oidc]`.
    fn apply_oidc_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        let vars = ["ISSUER", "AUDIENCE", "JWKS_URL", "ROLE_CLAIM"];
        if vars
            .iter()
            .all(|v| get(&format!("PIPEGUARD_OIDC_{v}")).is_none())
        {
            return;
        }
        let o = self.auth.oidc.get_or_insert_with(Default::default);
        if let Some(v) = get("PIPEGUARD_OIDC_ISSUER") {
            o.issuer = v;
        }
        if let Some(v) = get("PIPEGUARD_OIDC_AUDIENCE") {
            o.audience = v;
        }
        if let Some(v) = get("PIPEGUARD_OIDC_JWKS_URL") {
            o.jwks_url = Some(v);
        }
        if let Some(v) = get("PIPEGUARD_OIDC_ROLE_CLAIM") {
            o.role_claim = v;
        }
    }

    /// Reads `path`, or `./pipeguard.toml` when it exists, then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let default_path = Path::new("pipeguard.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read configuration {}", p.display()))?;
                Config::from_toml(&text)
                    .with_context(|| format!("invalid configuration {}", p.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        // A GitHub App's key is read now: a bad one stops the start, not the first heal.
        pipeguard_platforms::github::configured_app(
            cfg.platform(pipeguard_core::Platform::Github),
            &Default::default(),
        )
        .map_err(anyhow::Error::msg)?;
        crate::tenants::validate(&cfg.repos, &cfg.strategies, &cfg.notify)?;
        if let Some(o) = &cfg.auth.oidc {
            o.validate().map_err(anyhow::Error::msg)?;
        }
        if cfg.approvals.required == 0 {
            anyhow::bail!("[approvals] required must be at least 1");
        }
        if cfg.flaky.release_after_passes == 0 {
            anyhow::bail!("[flaky] release_after_passes must be at least 1");
        }
        if cfg.server.max_connections == 0 || cfg.server.idle_timeout_seconds == 0 {
            anyhow::bail!("[server] max_connections and idle_timeout_seconds must be at least 1");
        }
        if cfg.tls.cert.is_some() != cfg.tls.key.is_some() {
            anyhow::bail!("[tls] needs both cert and key");
        }
        cfg.check_llm()?;
        Ok(cfg)
    }

    /// A model is optional, but a half-set or malformed `[llm]` is an error rather than a
    /// model silently left off.
    pub fn check_llm(&self) -> Result<()> {
        let l = &self.llm;
        if l.url.is_none() && l.model.is_none() {
            return Ok(());
        }
        l.validate().map_err(|e| anyhow::anyhow!("[llm]: {e}"))
    }

    /// A platform's section.
    pub fn platform(&self, p: pipeguard_core::Platform) -> &pipeguard_platforms::settings::Section {
        self.platforms.get(p)
    }

    pub fn platform_mut(
        &mut self,
        p: pipeguard_core::Platform,
    ) -> &mut pipeguard_platforms::settings::Section {
        self.platforms.get_mut(p)
    }

    /// The configuration a TOML text describes: the platform tables go to their platform's
    /// section spec, the rest to `Config`; unknown keys are errors in both.
    pub fn from_toml(text: &str) -> Result<Config> {
        let mut table: toml::Table = toml::from_str(text)?;
        if let Some(e) = unknown_top_level_key(&table) {
            anyhow::bail!(e);
        }
        let ansible = AnsibleHostLoop::take(&mut table)?;
        let (platforms, rest): (Vec<_>, Vec<_>) =
            table.into_iter().partition(|(k, _)| Sections::is_key(k));
        let mut cfg: Config = toml::Value::Table(rest.into_iter().collect()).try_into()?;
        cfg.platforms =
            Sections::from_tables(platforms.into_iter().collect()).map_err(anyhow::Error::msg)?;
        cfg.ansible = ansible;
        Ok(cfg)
    }

    /// `PIPEGUARD_INCIDENTS_<KEY>` for each key of `[incidents]`.
    fn apply_runners_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("PIPEGUARD_RUNNERS_QUARANTINE") {
            self.runners.quarantine = match v.as_str() {
                "approve" => Quarantine::Approve,
                "auto" => Quarantine::Auto,
                _ => anyhow::bail!(
                    "PIPEGUARD_RUNNERS_QUARANTINE={v:?} is neither \"approve\" nor \"auto\""
                ),
            };
        }
        if let Some(v) = get("PIPEGUARD_RUNNERS_STEER_PARAMETER") {
            self.runners.steer_parameter = Some(v);
        }
        // A name Jenkins would not declare would only be refused at the first re-run.
        if let Some(p) = &self.runners.steer_parameter {
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            if p.is_empty() || p.len() > 100 || !p.chars().all(ok) {
                anyhow::bail!(
                    "[runners] steer_parameter = {p:?} is not a build parameter name (letters, digits, _ - .)"
                );
            }
        }
        Ok(())
    }

    fn apply_incidents_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        fn set<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            key: &str,
            field: &mut T,
        ) -> Result<()> {
            let name = format!("PIPEGUARD_INCIDENTS_{key}");
            if let Some(v) = get(&name) {
                *field = v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number"))?;
            }
            Ok(())
        }
        let i = &mut self.incidents;
        set(get, "MIN_REPOSITORIES", &mut i.min_repositories)?;
        set(get, "WINDOW_MINUTES", &mut i.window_minutes)?;
        set(get, "GIVE_UP_HOURS", &mut i.give_up_hours)?;
        set(get, "CANARY_SECONDS", &mut i.canary_seconds)?;
        set(get, "CANARY_MAX_SECONDS", &mut i.canary_max_seconds)?;
        set(get, "RELEASE_PER_MINUTE", &mut i.release_per_minute)?;
        set(get, "RESERVE_SHARE", &mut i.reserve_share)?;
        if !(0.0..=1.0).contains(&i.reserve_share) {
            anyhow::bail!(
                "[incidents] reserve_share = {} is not a share: use 0 to 1 (0.25 keeps a quarter \
                 of the healing budget from the wave)",
                i.reserve_share
            );
        }
        Ok(())
    }

    /// Environment overrides, through `get` so tests need not touch the process environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn num<T: std::str::FromStr>(k: &str, v: String) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{k}={v:?} is not a valid number"))
        }
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        if let Some(v) = nonempty("PIPEGUARD_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = nonempty("PIPEGUARD_DATABASE_URL") {
            self.database_url = v;
        }
        self.platforms
            .apply_env(&|k| get(k))
            .map_err(anyhow::Error::msg)?;
        self.ansible.apply_env(&get)?;
        if let Some(v) = nonempty("PIPEGUARD_HEALING_MODE") {
            self.healing.mode =
                pipeguard_core::planner::Mode::parse(v.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "PIPEGUARD_HEALING_MODE={v:?} is not a mode: use act or observe"
                    )
                })?;
        }
        if let Some(v) = nonempty("PIPEGUARD_HEALING_BACKOFF_SECONDS") {
            self.healing.backoff_seconds = num("PIPEGUARD_HEALING_BACKOFF_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_HEALING_MAX_ATTEMPTS") {
            self.healing.max_attempts = num("PIPEGUARD_HEALING_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_MAX_BODY_BYTES") {
            self.max_body_bytes = num("PIPEGUARD_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_VERIFY_POLL_SECONDS") {
            self.worker.verify_poll_seconds = num("PIPEGUARD_VERIFY_POLL_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_WORKER_LEASE_SECONDS") {
            self.worker.lease_seconds = num("PIPEGUARD_WORKER_LEASE_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_SERVER_MAX_CONNECTIONS") {
            self.server.max_connections = num("PIPEGUARD_SERVER_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_SERVER_IDLE_TIMEOUT_SECONDS") {
            self.server.idle_timeout_seconds = num("PIPEGUARD_SERVER_IDLE_TIMEOUT_SECONDS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_METRICS_TOKEN") {
            self.metrics.token = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_TLS_CERT") {
            self.tls.cert = Some(v.into());
        }
        if let Some(v) = nonempty("PIPEGUARD_TLS_KEY") {
            self.tls.key = Some(v.into());
        }
        if let Some(v) = nonempty("PIPEGUARD_APPROVALS_REQUIRED") {
            self.approvals.required = num("PIPEGUARD_APPROVALS_REQUIRED", v)?;
        }
        self.apply_oidc_env(&nonempty);
        if let Some(v) = nonempty("PIPEGUARD_WORKER_ENABLED") {
            self.worker.enabled = num("PIPEGUARD_WORKER_ENABLED", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_WORKER_CONCURRENCY") {
            self.worker.concurrency = num("PIPEGUARD_WORKER_CONCURRENCY", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_HTTP_BACKOFF_MS") {
            self.worker.http_backoff_ms = num("PIPEGUARD_HTTP_BACKOFF_MS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_ENCRYPTION_KEY") {
            self.encryption.key = Some(v);
        }
        if let Some(v) = nonempty("PIPEGUARD_AUDIT_DIR") {
            self.encryption.audit_dir = Some(v.into());
        }
        if let Some(v) = nonempty("PIPEGUARD_RETENTION_DAYS") {
            self.retention.days = num("PIPEGUARD_RETENTION_DAYS", v)?;
        }
        if let Some(v) = nonempty("PIPEGUARD_SLACK_SIGNING_SECRET") {
            self.slack.signing_secret = Some(v);
        }
        self.apply_runners_env(&nonempty)?;
        self.apply_incidents_env(&nonempty)?;
        self.llm.apply_env(nonempty)?;
        Ok(())
    }
}

/// The message for the first top-level key that is neither a platform section nor a key of
/// [`Config`]: every accepted name, and the nearest one when the key looks like a typo.
fn unknown_top_level_key(table: &toml::Table) -> Option<String> {
    let keys = config_keys();
    let (k, v) = table
        .iter()
        .find(|(k, _)| !Sections::is_key(k) && !keys.contains(&k.as_str()))?;
    let platforms: Vec<&str> = pipeguard_platforms::registry::MODULES
        .iter()
        .map(|m| m.section().key)
        .collect();
    let shown = |name: &str| match v {
        toml::Value::Table(_) => format!("[{name}]"),
        toml::Value::Array(a) if a.iter().all(toml::Value::is_table) => format!("[[{name}]]"),
        _ => format!("`{name}`"),
    };
    let nearest = platforms
        .iter()
        .chain(keys)
        .map(|c| (strsim::damerau_levenshtein(k, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < k.len().min(c.len()))
        .min();
    let hint = nearest
        .map(|(_, c)| format!(" (did you mean {}?)", shown(c)))
        .unwrap_or_default();
    Some(format!(
        "unknown {}{hint}. Platform sections: {}. Other keys and sections: {}.",
        shown(k),
        platforms.join(", "),
        keys.join(", ")
    ))
}

/// The top-level keys [`Config`] accepts, read from its derived `Deserialize` so that a key
/// added to the struct needs no second list here.
fn config_keys() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("only a struct tells its fields"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = Config::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeguard_core::event::Platform;

    #[test]
    fn the_healing_mode_is_act_unless_the_file_or_the_environment_says_observe() {
        use pipeguard_core::planner::Mode;
        assert_eq!(Config::default().healing.mode, Mode::Act);
        let text = "[healing]\nmode = \"observe\"\n[[repos]]\nplatform = \"github\"\nname = \"o/r\"\nmode = \"act\"\n";
        let mut cfg = Config::from_toml(text).unwrap();
        assert_eq!(cfg.healing.mode, Mode::Observe);
        assert_eq!(cfg.repos[0].mode, Some(Mode::Act));
        cfg.apply_env(|k| (k == "PIPEGUARD_HEALING_MODE").then(|| "act".into()))
            .unwrap();
        assert_eq!(cfg.healing.mode, Mode::Act);
        let e = cfg
            .apply_env(|k| (k == "PIPEGUARD_HEALING_MODE").then(|| "watch".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PIPEGUARD_HEALING_MODE=\"watch\"") && e.contains("act or observe"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            Config::from_toml("[healing]\nmode = \"watch\"\n").unwrap_err()
        );
        assert!(e.contains("watch") && e.contains("observe"), "{e}");
    }

    #[test]
    fn environment_overrides_file_values() {
        let mut cfg = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\n[healing]\nmax_attempts = 5\nbackoff_seconds = 7\n",
        )
        .unwrap();
        assert_eq!(cfg.healing.max_attempts, 5);
        cfg.apply_env(|k| match k {
            "PIPEGUARD_HEALING_MAX_ATTEMPTS" => Some("1".into()),
            "PIPEGUARD_GITHUB_API_URL" => Some("http://127.0.0.1:1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.healing.max_attempts, 1);
        assert_eq!(cfg.healing.backoff_seconds, 7);
        assert_eq!(
            cfg.platforms.get(Platform::Github).api_url,
            "http://127.0.0.1:1"
        );
        assert_eq!(cfg.database_url, "sqlite://pipeguard.db");
    }

    #[test]
    fn runners_steer_parameter_from_file_and_environment() {
        let mut cfg = Config::from_toml("[runners]\nsteer_parameter = \"NODE_LABEL\"\n").unwrap();
        cfg.apply_env(|_| None).unwrap();
        assert_eq!(cfg.runners.steer_parameter.as_deref(), Some("NODE_LABEL"));
        assert_eq!(cfg.runners.quarantine, Quarantine::Approve);
        let mut cfg = Config::default();
        cfg.apply_env(|_| None).unwrap();
        assert_eq!(cfg.runners.steer_parameter, None);
        cfg.apply_env(|k| (k == "PIPEGUARD_RUNNERS_STEER_PARAMETER").then(|| "AGENT".into()))
            .unwrap();
        assert_eq!(cfg.runners.steer_parameter.as_deref(), Some("AGENT"));
        for bad in ["NODE LABEL", "a&&b", ""] {
            let toml = format!("[runners]\nsteer_parameter = {bad:?}\n");
            let e = Config::from_toml(&toml)
                .unwrap()
                .apply_env(|_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("steer_parameter"), "{bad}: {e}");
        }
    }

    #[test]
    fn incidents_section_from_file_and_environment() {
        let mut cfg =
            Config::from_toml("[incidents]\nmin_repositories = 5\nwindow_minutes = 3\n").unwrap();
        assert_eq!(
            (cfg.incidents.min_repositories, cfg.incidents.give_up_hours),
            (5, 6)
        );
        cfg.apply_env(|k| match k {
            "PIPEGUARD_INCIDENTS_WINDOW_MINUTES" => Some("20".into()),
            "PIPEGUARD_INCIDENTS_GIVE_UP_HOURS" => Some("2".into()),
            _ => None,
        })
        .unwrap();
        let i = &cfg.incidents;
        assert_eq!(
            (i.min_repositories, i.window_minutes, i.give_up_hours),
            (5, 20, 2)
        );
        let e = Config::default()
            .apply_env(|k| (k == "PIPEGUARD_INCIDENTS_MIN_REPOSITORIES").then(|| "many".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PIPEGUARD_INCIDENTS_MIN_REPOSITORIES"), "{e}");
        assert!(Config::from_toml("[incidents]\nmin_repos = 2\n").is_err());
        // The wave's reserve: from the file, the environment, and only as a share.
        let mut cfg = Config::from_toml("[incidents]\nreserve_share = 0.4\n").unwrap();
        assert_eq!(cfg.incidents.reserve_share, 0.4);
        cfg.apply_env(|k| (k == "PIPEGUARD_INCIDENTS_RESERVE_SHARE").then(|| "0.1".into()))
            .unwrap();
        assert_eq!(cfg.incidents.reserve_share, 0.1);
        let e = Config::from_toml("[incidents]\nreserve_share = 1.5\n")
            .unwrap()
            .apply_env(|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserve_share"), "{e}");
    }

    #[test]
    fn the_ansible_host_loop_is_off_unless_configured_and_lists_its_hosts() {
        let cfg = Config::from_toml("[ansible]\nwebhook_secret = \"s\"\n").unwrap();
        assert!(!cfg.ansible.host_loop && !cfg.ansible.reaches("web-1"));
        let mut cfg = Config::from_toml(
            "[ansible]\nwebhook_secret = \"s\"\nhost_loop = true\nhosts = [\"web-*\"]\nbecome = true\n",
        )
        .unwrap();
        assert_eq!(
            cfg.platform(Platform::Ansible).webhook_secret.as_deref(),
            Some("s")
        );
        assert!(cfg.ansible.reaches("web-1") && !cfg.ansible.reaches("db-1"));
        assert!(cfg.ansible.become_);
        let env = |k: &str| match k {
            "PIPEGUARD_ANSIBLE_HOSTS" => Some("db-*, cache-1".to_string()),
            "PIPEGUARD_ANSIBLE_INVENTORY" => Some("/etc/ansible/hosts".to_string()),
            _ => None,
        };
        cfg.apply_env(env).unwrap();
        assert!(cfg.ansible.reaches("db-1") && cfg.ansible.reaches("cache-1"));
        assert!(!cfg.ansible.reaches("web-1"));
        assert_eq!(cfg.ansible.inventory.as_deref(), Some("/etc/ansible/hosts"));
        let bad = |k: &str| (k == "PIPEGUARD_ANSIBLE_HOST_LOOP").then(|| "yes".to_string());
        assert!(cfg.apply_env(bad).is_err());
        assert!(Config::from_toml("[ansible]\nhost_loop = \"on\"\n").is_err());
    }

    #[test]
    fn platform_sections_from_file_and_environment() {
        let mut cfg = Config::from_toml(
            "[gitlab]\napi_url = \"https://gitlab.example.com\"\n[jenkins]\nuser = \"bot\"\n\
             [circleci]\ntoken = \"file-token\"\n",
        )
        .unwrap();
        let p = |cfg: &Config, x| cfg.platforms.get(x).clone();
        assert_eq!(
            p(&cfg, Platform::Gitlab).api_url,
            "https://gitlab.example.com"
        );
        assert_eq!(p(&cfg, Platform::Circleci).api_url, "https://circleci.com");
        cfg.apply_env(|k| match k {
            "PIPEGUARD_GITLAB_TOKEN" => Some("glpat".into()),
            "PIPEGUARD_JENKINS_API_URL" => Some("https://ci.example.com/".into()),
            "PIPEGUARD_JENKINS_TOKEN" => Some("jt".into()),
            "PIPEGUARD_CIRCLECI_TOKEN" => Some("env-token".into()),
            "PIPEGUARD_CIRCLECI_WEBHOOK_SECRET" => Some("cs".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(p(&cfg, Platform::Gitlab).token.as_deref(), Some("glpat"));
        assert_eq!(p(&cfg, Platform::Jenkins).user.as_deref(), Some("bot"));
        assert_eq!(
            p(&cfg, Platform::Jenkins).api_url,
            "https://ci.example.com/"
        );
        assert_eq!(
            p(&cfg, Platform::Circleci).token.as_deref(),
            Some("env-token")
        );
        assert_eq!(
            p(&cfg, Platform::Circleci).webhook_secret.as_deref(),
            Some("cs")
        );
        assert!(Config::from_toml("[jenkins]\npassword = \"x\"").is_err());
    }

    #[test]
    fn repositories_strategies_and_channels_from_toml() {
        let text = r#"
[[repos]]
platform = "github"
name = "octo/app"
token = "ghp_repo"
[repos.healing]
max_attempts = 1
[repos.scale]
workflow = "ci.yml"
inputs = { runner = "ubuntu-latest-16-cores" }
[repos.cache]
key_prefix = "npm-"

[[repos]]
platform = "gitlab"
name = "grp/*"
reset = { inputs = { GIT_CLEAN_FLAGS = "-ffdx" } }

[[strategies]]
name = "restart-mirror"
categories = ["dependency_download"]
http = { url = "https://ops.example.com/mirror/restart", body = '{"repo":"{{repository}}"}' }

[[notify]]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"
"#;
        let cfg = Config::from_toml(text).unwrap();
        crate::tenants::validate(&cfg.repos, &cfg.strategies, &cfg.notify).unwrap();
        assert_eq!(cfg.repos.len(), 2);
        let base = cfg.healing.policy();
        assert_eq!(cfg.repos[0].policy(&base).max_attempts, 1);
        assert_eq!(cfg.repos[1].policy(&base).max_attempts, base.max_attempts);
        assert_eq!(
            cfg.repos[0].scale.as_ref().unwrap().inputs["runner"],
            "ubuntu-latest-16-cores"
        );
        assert_eq!(
            cfg.notify[0].on,
            ["escalated", "failed", "awaiting_approval"]
        );
        // A misspelt key inside a repository is an error, not silently ignored.
        assert!(Config::from_toml(
            "[[repos]]
platform = \"github\"
name = \"a/b\"
tokn = \"x\"
"
        )
        .is_err());
    }

    #[test]
    fn encryption_keys_from_file_or_environment_and_retention_days() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        let (_, a) = pipeguard_store::Keyring::generate();
        let (_, b) = pipeguard_store::Keyring::generate();
        std::fs::write(&file, format!("{a}\n{b}\n")).unwrap();
        let toml = format!(
            "[encryption]\nkey_file = {:?}\n[retention]\ndays = 30\n",
            file.display().to_string()
        );
        let mut cfg = Config::from_toml(&toml).unwrap();
        assert_eq!(cfg.retention.days, 30);
        let ring = cfg.encryption.keyring().unwrap().unwrap();
        assert_eq!(ring.ids().len(), 2);
        cfg.apply_env(|k| (k == "PIPEGUARD_ENCRYPTION_KEY").then(|| b.clone()))
            .unwrap();
        let from_env = cfg.encryption.keyring().unwrap().unwrap();
        assert_eq!(from_env.ids(), [ring.ids()[1]]);
        assert!(!format!("{cfg:?}").contains(&b), "the key is never printed");
        assert!(Config::default().encryption.keyring().unwrap().is_none());
        cfg.encryption.key = Some("not-a-key".into());
        let e = cfg.encryption.keyring().unwrap_err().to_string();
        assert!(
            e.contains("PIPEGUARD_ENCRYPTION_KEY") && !e.contains("not-a-key"),
            "{e}"
        );
        assert!(Config::from_toml("[encryption]\nkey = \"x\"").is_err());
    }

    /// Every `[encryption]` key the README names is one the configuration accepts.
    #[test]
    fn the_readme_names_only_encryption_keys_that_exist() {
        let readme = include_str!("../../../README.md");
        let mut named = Vec::new();
        for line in readme.lines().filter(|l| l.starts_with('|')) {
            for cell in line.split('|').filter(|c| c.contains("`[encryption] ")) {
                let words = cell.split('`').skip(1).step_by(2);
                named.extend(words.map(|w| w.trim_start_matches("[encryption] ").to_string()));
            }
        }
        assert!(named.contains(&"key_file".to_string()), "{named:?}");
        for key in named {
            let toml = format!("[encryption]\n{key} = \"x\"\n");
            assert!(
                Config::from_toml(&toml).is_ok(),
                "the README names [encryption] {key}, which the configuration refuses"
            );
        }
    }

    #[test]
    fn llm_from_file_and_environment() {
        let mut cfg = Config::from_toml(
            "[llm]\nurl = \"http://127.0.0.1:11434/v1\"\nmodel = \"file\"\n\
             max_prompt_tokens = 500\nhourly_token_budget = 9000\ncache_ttl_seconds = 60\n\
             internal_hosts = [\"*.corp.example.com\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.llm.timeout_seconds, 30);
        cfg.apply_env(|k| match k {
            "PIPEGUARD_LLM_MODEL" => Some("llama3.1".into()),
            "PIPEGUARD_LLM_API_KEY" => Some("sk-secret".into()),
            "PIPEGUARD_LLM_TIMEOUT_SECONDS" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        let l = &cfg.llm;
        assert_eq!(l.model.as_deref(), Some("llama3.1"));
        assert_eq!(l.url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!((l.timeout_seconds, l.max_prompt_tokens), (7, 500));
        assert_eq!((l.hourly_token_budget, l.cache_ttl_seconds), (9000, 60));
        assert_eq!(l.internal_hosts, ["*.corp.example.com"]);
        assert!(!format!("{cfg:?}").contains("sk-secret"));
        cfg.check_llm().unwrap();
        // Nothing set: no model, no error. Half set: an error naming what is missing.
        Config::default().check_llm().unwrap();
        assert!(!Config::default().llm.is_enabled());
        let mut half = Config::default();
        half.apply_env(|k| (k == "PIPEGUARD_LLM_URL").then(|| "http://x/v1".into()))
            .unwrap();
        let e = half.check_llm().unwrap_err().to_string();
        assert!(e.contains("PIPEGUARD_LLM_MODEL"), "{e}");
        assert!(Config::from_toml("[llm]\nmodle = \"x\"").is_err());
        let bad = Config::default()
            .apply_env(|k| (k == "PIPEGUARD_LLM_TIMEOUT_SECONDS").then(|| "soon".into()));
        assert!(bad.is_err());
    }

    #[test]
    fn bad_numbers_and_unknown_keys_are_errors() {
        let mut cfg = Config::default();
        let err = cfg
            .apply_env(|k| (k == "PIPEGUARD_HEALING_BACKOFF_SECONDS").then(|| "soon".into()))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("PIPEGUARD_HEALING_BACKOFF_SECONDS"));
        assert!(Config::from_toml("lisen = \"x\"").is_err());
    }

    #[test]
    fn server_limits_from_file_and_environment() {
        assert_eq!(Config::default().server.max_connections, 10_000);
        assert_eq!(Config::default().server.idle_timeout_seconds, 30);
        let mut cfg =
            Config::from_toml("[server]\nmax_connections = 500\nidle_timeout_seconds = 5\n")
                .unwrap();
        assert_eq!(cfg.server.max_connections, 500);
        cfg.apply_env(|k| (k == "PIPEGUARD_SERVER_MAX_CONNECTIONS").then(|| "42".into()))
            .unwrap();
        assert_eq!(
            (cfg.server.max_connections, cfg.server.idle_timeout_seconds),
            (42, 5)
        );
        assert!(Config::from_toml("[server]\nmax_conections = 1").is_err());
    }

    #[test]
    fn an_unknown_section_names_the_platform_sections_and_the_nearest() {
        let err = |toml: &str| Config::from_toml(toml).unwrap_err().to_string();
        let e = err("[gitlb]\ntoken = \"x\"");
        assert!(
            e.starts_with("unknown [gitlb] (did you mean [gitlab]?). "),
            "{e}"
        );
        for section in [
            "github", "jenkins", "buildbot", "healing", "worker", "listen",
        ] {
            assert!(e.contains(section), "{section} missing: {e}");
        }
        let e = err("lisen = \"127.0.0.1:9\"");
        assert!(
            e.starts_with("unknown `lisen` (did you mean `listen`?). "),
            "{e}"
        );
        let e = err("[[repo]]\nname = \"a/b\"");
        assert!(
            e.starts_with("unknown [[repo]] (did you mean [[repos]]?). "),
            "{e}"
        );
        let e = err("[zzzzzzzz]");
        assert!(
            e.starts_with("unknown [zzzzzzzz]. Platform sections:"),
            "{e}"
        );
    }
}
