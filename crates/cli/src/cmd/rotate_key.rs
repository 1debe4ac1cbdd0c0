//! `pipeguard rotate-key`: re-encrypts every stored payload, log and evidence with a new key,
//! reading with the configured keys. Safe to run again after an interruption.

use super::db::{self, DbArgs};
use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use pipeguard_store::Keyring;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(group(ArgGroup::new("new").required(true).args(["new_key_file", "new_key"])))]
pub struct CmdArgs {
    /// File holding the new key (32 bytes as base64 or 64 hex characters; the first key in
    /// the file is used).
    #[arg(long)]
    new_key_file: Option<PathBuf>,
    /// The new key itself. Visible to other users in the process list: prefer a file.
    #[arg(long)]
    new_key: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

fn new_keyring(args: &CmdArgs) -> Result<Keyring> {
    let text = match (&args.new_key, &args.new_key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read new key file {}", path.display()))?,
        (None, None) => unreachable!("clap requires one of them"),
    };
    Keyring::parse(&text).context("new key")
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let new = new_keyring(&args)?;
    let report = db::runtime()?.block_on(async {
        let (_, store) = db::open(&args.db, true).await?;
        let r = store.rotate_key(&new, &db::actor()).await;
        store.close().await;
        anyhow::Ok(r?)
    })?;
    let total: u64 = report.rewritten.iter().map(|(_, n)| n).sum();
    let per: Vec<String> = report
        .rewritten
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "re-encrypted {total} values with key {} ({}); {} were already under it",
        report.key_id,
        per.join(", "),
        report.already_current
    );
    if report.left_behind > 0 {
        println!(
            "{} values kept changing under the rotation: run it again (servers should already \
             have key {} first in their keyring)",
            report.left_behind, report.key_id
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "every value is now under key {}: once every server runs with it, older keys can go",
        report.key_id
    );
    Ok(ExitCode::SUCCESS)
}
