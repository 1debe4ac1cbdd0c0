use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {}

pub fn run(_args: CmdArgs) -> Result<ExitCode> {
    anyhow::bail!("not built yet")
}
