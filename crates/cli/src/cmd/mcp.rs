//! `pipeguard mcp`: the MCP server for a coding agent on a developer's machine, over stdio.
//! It holds no CI token: every tool calls the pipeguard server (`--server`) with the token in
//! `PIPEGUARD_TOKEN`, whose role decides which tools the agent gets.

use crate::cmd::report::ServerUrl;
use anyhow::{Context, Result};
use clap::Args;
use rmcp::ServiceExt;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    #[command(flatten)]
    server: ServerUrl,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let token = std::env::var("PIPEGUARD_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .context(
            "set PIPEGUARD_TOKEN to a pipeguard API token (`pipeguard token create --role \
             operator --name my-agent`; a viewer token gets the read tools only)",
        )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mcp = pipeguard_server::mcp::Mcp::remote(&args.server.base, &token).await?;
        // stdout carries the protocol; anything else goes to stderr.
        let running = mcp
            .serve(rmcp::transport::stdio())
            .await
            .context("MCP handshake failed")?;
        running.waiting().await.context("MCP session ended")?;
        Ok(ExitCode::SUCCESS)
    })
}
