//! `pipeguard doctor`: checks each configured platform's credential against its API, and the
//! database, and says what is missing before a failure does.

mod platforms;

use anyhow::Result;
use clap::Args;
use pipeguard_platforms::registry::MODULES;
use pipeguard_server::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct DoctorArgs {
    /// TOML configuration file (default: ./pipeguard.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but something is worth knowing.
    Warn,
    /// Something required is missing: pipeguard cannot do its work.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub detail: String,
}

impl Finding {
    pub fn new(level: Level, what: &str, detail: impl Into<String>) -> Finding {
        Finding {
            level,
            what: what.to_string(),
            detail: detail.into(),
        }
    }
}

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let in_file = sections_in_file(args.config.as_deref())?;
    let rt = super::db::runtime()?;
    let findings = rt.block_on(check(&config, &in_file));
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "ok     ",
            Level::Warn => "warn   ",
            Level::Missing => "MISSING",
        };
        println!("{tag}  {}: {}", f.what, f.detail);
    }
    let missing = findings
        .iter()
        .filter(|f| f.level == Level::Missing)
        .count();
    if missing > 0 {
        println!("{missing} required thing(s) missing");
        return Ok(ExitCode::from(1));
    }
    println!("everything required is there");
    Ok(ExitCode::SUCCESS)
}

/// The platform tables the configuration file has (`[github]`…), configured or not.
fn sections_in_file(path: Option<&Path>) -> Result<Vec<String>> {
    let default = Path::new("pipeguard.toml");
    let Some(path) = path.or(default.exists().then_some(default)) else {
        return Ok(vec![]);
    };
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path)?)?;
    Ok(table.keys().cloned().collect())
}

/// Every finding: the service, each configured platform, the database.
pub async fn check(config: &Config, in_file: &[String]) -> Vec<Finding> {
    let mut out = listen_findings(config);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("pipeguard-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds");
    let mut any = false;
    for m in MODULES {
        let spec = m.section();
        let s = config.platform(m.platform());
        let mentioned = in_file.iter().any(|k| k == spec.key)
            || config
                .repos
                .iter()
                .any(|r| r.platform() == Some(m.platform()));
        let configured = mentioned
            || s.token.is_some()
            || s.user.is_some()
            || s.webhook_secret.is_some()
            || s.api_url != spec.default_api_url;
        if configured {
            any = true;
            out.extend(platforms::check(&http, config, m.platform(), s).await);
        }
    }
    if !any {
        out.push(Finding::new(
            Level::Missing,
            "platforms",
            "none configured: `pipeguard init --platform github` writes a pipeguard.toml",
        ));
    }
    out.extend(database(&config.database_url).await);
    out
}

fn listen_findings(config: &Config) -> Vec<Finding> {
    let loopback = pipeguard_server::state::is_loopback(&config.listen);
    let tls = config.tls.cert.is_some();
    let detail = match (loopback, tls) {
        (true, _) => format!(
            "{}: only this machine reaches it; platforms need a reverse proxy with TLS or a \
             tunnel to it",
            config.listen
        ),
        (false, true) => format!("{} with TLS", config.listen),
        (false, false) => format!(
            "{} without TLS: put a reverse proxy with TLS in front, or set [tls]",
            config.listen
        ),
    };
    let level = if loopback || tls {
        Level::Ok
    } else {
        Level::Warn
    };
    vec![Finding::new(level, "listen", detail)]
}

/// The database opens (a missing SQLite file is created by `serve`, not here), and holds an
/// API token, without which nobody can use the API or the dashboard.
async fn database(url: &str) -> Vec<Finding> {
    if let Some(path) = sqlite_path(url) {
        if !Path::new(&path).is_file() {
            let dir = Path::new(&path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return vec![Finding::new(
                    Level::Missing,
                    "database",
                    format!("{path}: directory {} does not exist", dir.display()),
                )];
            }
            return vec![Finding::new(
                Level::Warn,
                "database",
                format!(
                    "{path} does not exist yet: `pipeguard serve` creates it; then create an \
                     API token with `pipeguard token create --role admin --name you`"
                ),
            )];
        }
    }
    let opened = match super::db::existing_only(url) {
        Ok(u) => pipeguard_store::Store::connect(&u)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let store = match opened {
        Ok(s) => s,
        Err(e) => return vec![Finding::new(Level::Missing, "database", e)],
    };
    let mut out = vec![Finding::new(
        Level::Ok,
        "database",
        format!("{} opens", pipeguard_store::redact_url(url)),
    )];
    let live = store
        .list_tokens()
        .await
        .map(|ts| ts.iter().filter(|t| t.revoked_at.is_none()).count())
        .unwrap_or(0);
    out.push(if live == 0 {
        Finding::new(
            Level::Warn,
            "api tokens",
            "none: the API and dashboard need one (`pipeguard token create --role admin --name you`)",
        )
    } else {
        Finding::new(Level::Ok, "api tokens", format!("{live} live"))
    });
    store.close().await;
    out
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest).to_string())
}
