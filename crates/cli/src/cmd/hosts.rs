//! `pipeguard hosts`: the hosts and facts gathered by `pipeguard ansible`.

use anyhow::Result;
use clap::{Args, ValueEnum};
use pipeguard_ansible::HostFacts;
use pipeguard_store::hosts::HostRecord;
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
    Ok(ExitCode::SUCCESS)
}
