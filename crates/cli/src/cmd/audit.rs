//! `pipeguard audit verify`: checks the audit trail's keyed hash chain against the head the
//! server recorded beside its key, and names the first entry that was edited or deleted, a
//! cut-off tail, or entries whose seals were removed. Exit 0 intact, 1 broken, 2 could not
//! check (e.g. the key is not available here).

use super::db::{self, DbArgs};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand, ValueEnum};
use pipeguard_store::{AuditPin, AuditReport, ProblemKind};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct CmdArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every sealed entry's hash; exit 1 naming the first bad entry.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// A head printed by an earlier run, `SEQ:HASH`: that entry must still have that hash
    /// (catches a deleted or rewritten tail).
    #[arg(long, value_parser = parse_pin)]
    expect_head: Option<AuditPin>,
}

fn parse_pin(s: &str) -> Result<AuditPin> {
    let (seq, hash) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("expected SEQ:HASH, e.g. 1234:9f86d0…"))?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| anyhow!("{seq:?} is not a sequence number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(anyhow!("the hash must be 64 hex characters"));
    }
    Ok(AuditPin {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

fn render(r: &AuditReport) -> String {
    let mut out = match (&r.problem, &r.head) {
        (Some(p), _) if p.kind == ProblemKind::UnknownKey => {
            format!("audit trail NOT CHECKED: {}\n", p.message)
        }
        (Some(p), _) => format!(
            "audit trail BROKEN at seq {}{}: {}\n",
            p.seq,
            p.id.map(|i| format!(" (id {i})")).unwrap_or_default(),
            p.message
        ),
        (None, Some(h)) => format!(
            "audit trail intact: {} sealed entries\nhead: seq {} hash {}\n\
             the server records its head beside the audit key; to guard against someone who \
             can also write there, record it elsewhere and check later with \
             --expect-head {}:{}\n",
            r.sealed, h.seq, h.hash, h.seq, h.hash
        ),
        (None, None) => "audit trail intact: no sealed entries yet\n".to_string(),
    };
    if r.unsealed > 0 {
        out += &format!("{} entries not sealed yet\n", r.unsealed);
    }
    if r.unsealed_stale > 0 {
        out += &format!(
            "warning: {} unsealed entries are older than a minute: is a server (its sealer) \
             running?\n",
            r.unsealed_stale
        );
    }
    out
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let AuditCommand::Verify(a) = args.command;
    let report = db::runtime()?.block_on(async {
        // Details are stored in the clear; the keys are only the chain's (never made here).
        let (config, store) = db::open(&a.db, false).await?;
        let anchor = config
            .encryption
            .audit_anchor(&config.database_url, false)?;
        let store = store.with_audit_anchor(anchor);
        let r = store.verify_audit_pinned(a.expect_head.as_ref()).await;
        store.close().await;
        anyhow::Ok(r?)
    })?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report)),
    }
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else if report.is_unchecked() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    })
}
