//! `pipeguard purge`: removes the payloads, logs and evidence of old sessions or of one
//! repository, on demand (the server does it on `[retention] days`).

use super::db::{self, DbArgs};
use anyhow::{bail, Result};
use clap::{ArgGroup, Args, ValueEnum};
use pipeguard_store::{PurgeFilter, PurgeReport};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)
    .args(["older_than", "repository"])))]
pub struct CmdArgs {
    /// Sessions closed longer ago than this: `30d`, `12h`, `90m`, `2w`, `45s`.
    #[arg(long, value_parser = parse_age)]
    older_than: Option<u64>,
    /// Every closed session of this repository (open ones are left to finish).
    #[arg(long)]
    repository: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    db: DbArgs,
}

const UNITS: [(&str, u64); 5] = [
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// A positive age with a unit, in milliseconds.
pub fn parse_age(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let Some((_, ms)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        bail!("{s:?}: give a number and a unit (s, m, h, d, w), e.g. 30d");
    };
    let n: u64 = match number.parse() {
        Ok(n) if n > 0 => n,
        _ => bail!("{s:?}: the age must be a whole number above 0, e.g. 30d"),
    };
    n.checked_mul(*ms)
        .filter(|ms| *ms <= i64::MAX as u64 / 2)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is too long"))
}

fn render(r: &PurgeReport, repository: Option<&str>) -> String {
    let mut out = format!(
        "purged {} sessions (payloads, logs, evidence), {} finished jobs, {} deliveries, \
         {} verdicts' evidence\n",
        r.sessions, r.jobs, r.deliveries, r.verdicts
    );
    if let (Some(repo), n) = (repository, r.open_skipped) {
        if n > 0 {
            out += &format!("{n} open sessions of {repo} left alone: purge again once closed\n");
        }
    }
    out
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let filter = PurgeFilter {
        finished_before_ms: args
            .older_than
            .map(|age| pipeguard_store::now_ms() - age as i64),
        repository: args.repository.clone(),
    };
    let report = db::runtime()?.block_on(async {
        let (_, store) = db::open(&args.db, true).await?;
        let r = store.purge(&filter, &db::actor()).await;
        store.close().await;
        anyhow::Ok(r?)
    })?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report, args.repository.as_deref())),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_need_a_number_and_a_unit() {
        assert_eq!(parse_age("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_age("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_age("2w").unwrap(), 14 * 86_400_000);
        assert_eq!(parse_age("45s").unwrap(), 45_000);
        for bad in [
            "30",
            "d",
            "0d",
            "-3d",
            "3.5d",
            "30 days",
            "30x",
            "",
            "99999999999999w",
        ] {
            assert!(parse_age(bad).is_err(), "{bad:?} accepted");
        }
    }
}
