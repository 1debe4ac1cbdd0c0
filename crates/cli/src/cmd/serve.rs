use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (default: ./pipeguard.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let config = pipeguard_server::config::Config::load(args.config.as_deref())?;
    pipeguard_server::telemetry::init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(pipeguard_server::run(config))?;
    Ok(ExitCode::SUCCESS)
}
