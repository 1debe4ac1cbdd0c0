//! How maintenance commands (`audit`, `rotate-key`, `purge`) reach the service's database: the
//! same configuration `serve` reads, and never a new empty SQLite file.

use anyhow::{bail, Result};
use clap::Args;
use pipeguard_server::config::Config;
use pipeguard_store::Store;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DbArgs {
    /// TOML configuration file (default: ./pipeguard.toml when it exists), for
    /// `database_url` and `[encryption]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Database to work on (default: the configuration's, or PIPEGUARD_DATABASE_URL).
    #[arg(long)]
    pub database_url: Option<String>,
}

/// A SQLite URL opened read-write without creating the file; other URLs as they are.
pub fn existing_only(url: &str) -> Result<String> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_string());
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        bail!("{url} is not a stored database");
    }
    if !Path::new(path).is_file() {
        bail!("database {path} does not exist (set --database-url or PIPEGUARD_DATABASE_URL)");
    }
    Ok(if rest.contains("mode=") {
        url.to_string()
    } else if rest.contains('?') {
        format!("{url}&mode=rw")
    } else {
        format!("{url}?mode=rw")
    })
}

/// The configuration and the store it names, with its encryption keys when configured and
/// `keys` asks for them.
pub async fn open(args: &DbArgs, keys: bool) -> Result<(Config, Store)> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.database_url {
        config.database_url = url.clone();
    }
    let url = existing_only(&config.database_url)?;
    let mut store = Store::connect(&url).await?;
    if keys {
        if let Some(ring) = config.encryption.keyring()? {
            store = store.with_encryption(ring);
        }
    }
    Ok((config, store))
}

/// Who runs the command, for the audit trail.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    if user.is_empty() {
        "cli".into()
    } else {
        format!("cli:{user}")
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::existing_only;

    #[test]
    fn sqlite_files_must_exist_and_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let url = format!("sqlite://{}", db.display());
        let e = existing_only(&url).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(&db, b"").unwrap();
        assert_eq!(existing_only(&url).unwrap(), format!("{url}?mode=rw"));
        assert_eq!(
            existing_only(&format!("{url}?cache=shared")).unwrap(),
            format!("{url}?cache=shared&mode=rw")
        );
        assert!(existing_only("sqlite::memory:").is_err());
        assert_eq!(existing_only("postgres://h/db").unwrap(), "postgres://h/db");
    }
}
