//! `pipeguard token create|list|revoke`: the API tokens of the server whose database
//! `PIPEGUARD_DATABASE_URL` (or the configuration) names. Creating and revoking are audited
//! like the API's (`token.created`, `token.revoked`), with the actor `cli:$USER`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pipeguard_server::auth::{tokens, Role};
use pipeguard_server::config::Config;
use pipeguard_store::{AuditEntry, Store};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    /// TOML configuration file (default: ./pipeguard.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand)]
enum Op {
    /// Create a token and print it (shown once; only its hash is stored).
    Create {
        /// viewer, operator, admin or ingest.
        #[arg(long)]
        role: String,
        /// Who or what holds it; approvals and the audit trail name it.
        #[arg(long)]
        name: String,
    },
    /// Names, roles and last use of every token.
    List,
    /// Revoke a token: requests with it are refused at once.
    Revoke { name: String },
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = pipeguard_store::Store::connect(&config.database_url).await?;
        match args.op {
            Op::Create { role, name } => create(&store, &role, &name).await,
            Op::List => list(&store).await,
            Op::Revoke { name } => {
                if !store.revoke_token(&name).await? {
                    bail!("no live token named {name}");
                }
                audit(&store, "token.revoked", &name, "").await?;
                println!("revoked {name}");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// The entry the API writes for the same change (`crate::audit::token_changed` of the
/// server), with the person running the command as the actor.
async fn audit(store: &Store, action: &str, name: &str, role: &str) -> Result<()> {
    let e = AuditEntry::new(&super::db::actor(), action, name, json!({ "role": role }));
    store
        .audit(e)
        .await
        .with_context(|| format!("{action} {name}, but the audit trail could not record it"))
}

async fn create(store: &Store, role: &str, name: &str) -> Result<ExitCode> {
    let role: Role = role.parse().map_err(anyhow::Error::msg)?;
    if !tokens::valid_name(name) {
        bail!("--name: 1-64 letters, digits, '-', '_', '.' or '@'");
    }
    let token = tokens::generate();
    if !store
        .create_token(name, role.as_str(), &tokens::hash(&token))
        .await?
    {
        bail!("a token named {name} exists; revoke it first or choose another name");
    }
    audit(store, "token.created", name, role.as_str()).await?;
    eprintln!("created {} token {name}; it is shown once:", role.as_str());
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339 in UTC to the second (`2026-12-07T03:10:58Z`), `-` for never.
fn timestamp(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

async fn list(store: &Store) -> Result<ExitCode> {
    let fmt = timestamp;
    println!(
        "{:<24} {:<9} {:<20} {:<20} STATE",
        "NAME", "ROLE", "CREATED", "LAST USED"
    );
    for t in store.list_tokens().await? {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else {
            "live"
        };
        println!(
            "{:<24} {:<9} {:<20} {:<20} {state}",
            t.name,
            t.role,
            fmt(Some(t.created_at)),
            fmt(t.last_used_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_whole_rfc3339_in_utc() {
        // 03:10:58.123: the hour is zero-padded, nothing is cut, milliseconds are dropped.
        assert_eq!(timestamp(Some(1_796_613_058_123)), "2026-12-07T03:10:58Z");
        assert_eq!(timestamp(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(None), "-");
    }
}
