//! `pipeguard token create|list|revoke`: the API tokens of the server whose database
//! `PIPEGUARD_DATABASE_URL` (or the configuration) names.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use pipeguard_server::auth::{tokens, Role};
use pipeguard_server::config::Config;
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
                println!("revoked {name}");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn create(store: &pipeguard_store::Store, role: &str, name: &str) -> Result<ExitCode> {
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
    eprintln!("created {} token {name}; it is shown once:", role.as_str());
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &pipeguard_store::Store) -> Result<ExitCode> {
    let fmt = |t: Option<i64>| {
        t.map(|ms| {
            time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                .map(|d| d.date().to_string() + " " + &d.time().to_string()[..8])
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "-".into())
    };
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
