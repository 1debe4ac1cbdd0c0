//! `pipeguard hosts`: the hosts and facts gathered by `pipeguard ansible`.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_ansible::predict::{cleanup, warnings};
use pipeguard_ansible::HostFacts;
use pipeguard_store::hosts::HostRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct CmdArgs {
    /// Database the facts are stored in.
    #[arg(
        long,
        env = "PIPEGUARD_DATABASE_URL",
        default_value = "sqlite://pipeguard.db"
    )]
    database_url: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write the cleanup playbook for hosts about to run out of disk or inodes to this file
    /// (it is offered, not run: review it, then run it with ansible-playbook).
    #[arg(long, value_name = "FILE")]
    cleanup_playbook: Option<PathBuf>,
}

/// Warns (on stderr) about hosts about to run out of disk, inodes or memory, and writes the
/// cleanup playbook for those a cleanup helps to `out`. Returns how many warnings there were.
pub fn offer_cleanup(facts: &BTreeMap<String, HostFacts>, out: Option<&Path>) -> Result<usize> {
    let mut n = 0;
    let mut offered = vec![];
    for (host, f) in facts {
        let w = warnings(host, f);
        for x in &w {
            eprintln!("pipeguard: WARNING {}", x.message);
        }
        n += w.len();
        offered.extend(cleanup(host, f, &w));
    }
    match out {
        Some(path) if !offered.is_empty() => {
            let pairs: Vec<_> = offered.iter().map(|d| (d, None)).collect();
            let text = pipeguard_ansible::playbook::render("predict", 0, &pairs);
            std::fs::write(path, text)
                .with_context(|| format!("writing the cleanup playbook {}", path.display()))?;
            eprintln!(
                "pipeguard: cleanup offered ahead of the failure for {} host(s), not run: review {}, then run it with ansible-playbook",
                offered.len(),
                path.display()
            );
        }
        None if !offered.is_empty() => eprintln!(
            "pipeguard: a cleanup playbook is offered for {} host(s): pipeguard hosts --cleanup-playbook FILE writes it",
            offered.len()
        ),
        _ => {}
    }
    Ok(n)
}

/// The stored form of one host's facts.
pub fn record(name: &str, f: &HostFacts) -> HostRecord {
    HostRecord {
        name: name.to_string(),
        os_family: f.os_family.clone(),
        distribution: f.distribution.clone(),
        distribution_version: f.distribution_version.clone(),
        pkg_mgr: f.pkg_mgr.clone(),
        service_mgr: f.service_mgr.clone(),
        architecture: f.architecture.clone(),
        memtotal_mb: f.memtotal_mb,
        memfree_mb: f.memfree_mb,
        disk_free_mb: f.disk_free_mb,
        disk_total_mb: f.disk_total_mb,
        python: f.python.clone(),
        facts: serde_json::to_value(f).unwrap_or_default(),
        source: "ansible".into(),
        first_seen_at: 0,
        updated_at: 0,
    }
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Listing must not leave an empty database behind: no file means no hosts yet.
    let url = match super::db::existing_only(&args.database_url) {
        Ok(url) => Some(url),
        Err(e) if e.to_string().contains("does not exist") => None,
        Err(e) => return Err(e),
    };
    let hosts = rt.block_on(async {
        let Some(url) = url else {
            return anyhow::Ok(vec![]);
        };
        let store = pipeguard_store::Store::connect(&url).await?;
        let hosts = store.list_hosts().await?;
        store.close().await;
        anyhow::Ok(hosts)
    })?;
    let facts: BTreeMap<String, HostFacts> = hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                serde_json::from_value(h.facts.clone()).unwrap_or_default(),
            )
        })
        .collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&hosts)?),
        Format::Text => {
            if hosts.is_empty() {
                eprintln!(
                    "no hosts yet: `pipeguard ansible PLAYBOOK` records the hosts it runs on"
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:<22} {:<8} {:<12} {:<8} {:>8} {:>10}",
                "HOST", "OS", "PKG", "SERVICE", "ARCH", "MEM MB", "FREE DISK"
            );
            for h in &hosts {
                let os = format!(
                    "{} {}",
                    h.distribution
                        .as_deref()
                        .or(h.os_family.as_deref())
                        .unwrap_or("-"),
                    h.distribution_version.as_deref().unwrap_or("")
                );
                println!(
                    "{:<24} {:<22} {:<8} {:<12} {:<8} {:>8} {:>10}",
                    h.name,
                    os.trim(),
                    or_dash(&h.pkg_mgr),
                    or_dash(&h.service_mgr),
                    or_dash(&h.architecture),
                    or_dash(&h.memtotal_mb),
                    h.disk_free_mb
                        .map(|m| format!("{:.1} GB", m as f64 / 1024.0))
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
    }
    offer_cleanup(&facts, args.cleanup_playbook.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
