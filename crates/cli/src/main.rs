//! The `pipeguard` command line: the server and the local tools share one binary.

mod cmd;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pipeguard",
    version,
    about = "Self-healing CI/CD: diagnose failed pipelines, fix what is safe to fix, escalate the rest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service: webhooks, the healing worker and the API.
    Serve(cmd::serve::ServeArgs),
    /// Watch pipeguard heal in a minute: simulated CI platforms fire failures at a real server.
    Demo(cmd::demo::DemoArgs),
    /// Write a commented pipeguard.toml for the platforms you use.
    Init(cmd::init::InitArgs),
    /// Check each configured platform's credential and permissions, and the database.
    Doctor(cmd::doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Diagnose one log file (or `-` for stdin); `--explain` also asks the configured model.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// List the knowledge base, or show which signature fires on which line of a log.
    Signatures(cmd::signatures::CmdArgs),
    /// Measure the analyzer on a directory of labeled logs and print a confusion table.
    Eval(cmd::eval::CmdArgs),
    /// Benchmark the analyzer on a generated log.
    Bench(cmd::bench::CmdArgs),
    /// Healing analytics of a running server: success rates, time to green, top failures.
    Report(cmd::report::ReportArgs),
    /// Run a command, retrying it only when its failure is transient.
    Run(cmd::run::CmdArgs),
    /// Print the safety assessment of one command without running it.
    Assess(cmd::assess::CmdArgs),
    /// Run an Ansible playbook and heal the hosts it fails on.
    Ansible(cmd::ansible::CmdArgs),
    /// List the hosts and facts pipeguard knows.
    Hosts(cmd::hosts::CmdArgs),
    /// Flaky tests seen by a server, most costly first; `flaky quarantine add|remove|list`.
    Flaky(cmd::flaky::CmdArgs),
    /// Tell a server what a session's failure really was (trains its learned classifier).
    Verdict(cmd::verdict::CmdArgs),
    /// Replay a trace of failed runs through pipeguard and two baselines, or generate one.
    Simulate(cmd::simulate::CmdArgs),
    /// Re-decide the stored sessions with a candidate policy and show what would change.
    Backtest(cmd::backtest::CmdArgs),
    /// Replay a repository's recent runs in observe mode and print its readiness.
    Import(cmd::import::CmdArgs),
    /// Send a session's dead letters (work that failed for good) again; `--list` shows them.
    RetryDead(cmd::retry_dead::CmdArgs),
    /// MCP server over stdio for coding agents; tools call `--server` with `PIPEGUARD_TOKEN`.
    Mcp(cmd::mcp::CmdArgs),
    /// Create, list and revoke API tokens.
    Token(cmd::token::CmdArgs),
    /// Switch a repository between observe and act: `mode set --repository R act|observe`.
    Mode(cmd::mode::CmdArgs),
    /// Check the audit trail: `audit verify` names the first edited or deleted entry.
    Audit(cmd::audit::CmdArgs),
    /// Re-encrypt stored payloads, logs and evidence with a new key.
    RotateKey(cmd::rotate_key::CmdArgs),
    /// Remove payloads, logs and evidence of old sessions, or of one repository.
    Purge(cmd::purge::CmdArgs),
}

impl Command {
    /// Commands that only print: when their reader goes away (`pipeguard … | head -1`) they
    /// end quietly, as Unix tools do. The service and the commands that drive child processes
    /// keep Rust's default, where a closed pipe is an error they handle.
    fn only_prints(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_)
                | Command::Demo(_)
                | Command::Run(_)
                | Command::Ansible(_)
                | Command::Mcp(_)
        )
    }
}

#[cfg(unix)]
fn end_quietly_on_closed_stdout() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_closed_stdout() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        end_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Doctor(a) => cmd::doctor::run(a),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "pipeguard", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Signatures(a) => cmd::signatures::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Assess(a) => cmd::assess::run(a),
        Command::Ansible(a) => cmd::ansible::run(a),
        Command::Hosts(a) => cmd::hosts::run(a),
        Command::Flaky(a) => cmd::flaky::run(a),
        Command::Verdict(a) => cmd::verdict::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Backtest(a) => cmd::backtest::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::RetryDead(a) => cmd::retry_dead::run(a),
        Command::Mcp(a) => cmd::mcp::run(a),
        Command::Token(a) => cmd::token::run(a),
        Command::Mode(a) => cmd::mode::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::RotateKey(a) => cmd::rotate_key::run(a),
        Command::Purge(a) => cmd::purge::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipeguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
