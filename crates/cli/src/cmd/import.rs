//! `pipeguard import`: replay a repository's recent history before letting pipeguard touch it.
//! Each past failure a person re-ran goes through the worker's own analysis and planner in
//! observe mode, is stored as an `observed` session with what the re-run said about the
//! decision, and the repository's readiness is printed. Read-only on the platform; rate-limit
//! aware (it waits for the reset and goes on); resumable (runs already imported are skipped).

use super::backtest::Format;
use super::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_core::event::Platform;
use pipeguard_core::readiness::RepositoryReadiness;
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::{registry, History, PlatformError};
use pipeguard_server::config::Config;
use pipeguard_server::import::{self, Imported};
use pipeguard_server::state::AppState;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct CmdArgs {
    /// The CI platform whose history is read (github).
    #[arg(long)]
    platform: String,
    /// The repository (`OWNER/REPO`).
    #[arg(long)]
    repository: String,
    /// How many days back runs are read (GitHub keeps re-runs possible for 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// TOML configuration file (default: ./pipeguard.toml when it exists): the platform's
    /// credential, the policy and the database.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Database the observed sessions go to (default: the configuration's, or
    /// PIPEGUARD_DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
}

/// The longest rate-limit reset worth waiting for (GitHub's windows last an hour).
const MAX_WAIT: Duration = Duration::from_secs(2 * 3600);

/// Calls `call` until the platform stops asking to wait: each wait is announced, then made.
async fn patiently<T, F, Fut>(what: &str, mut call: F) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    loop {
        match call().await {
            Err(PlatformError::Busy {
                message,
                retry_after,
            }) if retry_after <= MAX_WAIT => {
                eprintln!(
                    "pipeguard: {what}: the platform asks to wait ({message}); waiting {} s until its limit resets",
                    retry_after.as_secs().max(1)
                );
                tokio::time::sleep(retry_after).await;
            }
            other => return other,
        }
    }
}

/// Progress on a terminal as a counter redrawn in place; elsewhere a plain line now and then.
struct Report {
    bar: Option<Progress>,
    every: usize,
}

impl Report {
    fn new() -> Report {
        let tty = std::io::stderr().is_terminal();
        Report {
            bar: tty.then(Progress::new),
            every: 25,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.note(text),
            None => eprintln!("{text}"),
        }
    }

    fn step(&mut self, done: usize, total: usize) {
        match &mut self.bar {
            Some(b) => b.step("importing runs", done, total),
            None if done.is_multiple_of(self.every) || done == total => {
                eprintln!("imported {done}/{total} runs")
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// What the import read and did.
#[derive(Debug, Default)]
struct Tally {
    listed: usize,
    pages: u32,
    rerun: usize,
    imported: usize,
    already: usize,
    no_evidence: usize,
}

async fn replay(
    st: &pipeguard_server::Shared,
    history: &dyn History,
    platform: Platform,
    repository: &str,
    since_ms: i64,
) -> Result<Tally> {
    let mut t = Tally::default();
    let mut report = Report::new();
    let mut runs = Vec::new();
    let mut page = Some(1);
    while let Some(n) = page {
        let p = patiently("listing runs", || history.page(repository, since_ms, n))
            .await
            .with_context(|| format!("listing the runs of {repository} (page {n})"))?;
        t.pages += 1;
        t.listed += p.listed;
        report.line(&format!(
            "page {n}: {} runs, {} re-run by a person",
            p.listed,
            p.runs.len()
        ));
        runs.extend(p.runs);
        page = p.next;
    }
    t.rerun = runs.len();
    for (i, run) in runs.iter().enumerate() {
        if import::imported(st, platform, repository, &run.event.run_id).await? {
            t.already += 1;
        } else {
            let failure = patiently("reading a run", || history.failure(run))
                .await
                .with_context(|| {
                    format!(
                        "reading run {} (imported so far are kept: run the import again to go on)",
                        run.event.run_id
                    )
                })?;
            match failure {
                None => t.no_evidence += 1,
                Some(f) => match import::observe_past(st, platform, f).await? {
                    Imported::Stored(_) => t.imported += 1,
                    Imported::Already => t.already += 1,
                    Imported::Cancelled => t.no_evidence += 1,
                },
            }
        }
        report.step(i + 1, runs.len());
    }
    report.finish();
    Ok(t)
}

fn render(r: &RepositoryReadiness, t: &Tally, days: u32) -> String {
    let f = &r.figures;
    let mut out = format!(
        "{} ({}): {} runs of the last {days} days read in {} page(s), {} re-run by a person; \
         {} imported now, {} imported before, {} without a usable re-run\n",
        r.repository, r.platform, t.listed, t.pages, t.rerun, t.imported, t.already, t.no_evidence
    );
    let precision = f
        .precision
        .map(|p| format!("{p:.2}"))
        .unwrap_or_else(|| "none yet".into());
    out += &format!(
        "would re-run {}: {} went green when a person re-ran them (confirmed), {} failed again \
         (contradicted); precision {precision}\n",
        f.would_retry, f.confirmed, f.contradicted
    );
    out += &format!(
        "would withhold {}: {} went green on a plain re-run (missed)\n",
        f.withheld, f.missed
    );
    if let Some(m) = f.median_minutes_to_rerun {
        out += &format!("median {m} min from a would-be re-run's failure to the person's re-run\n");
    }
    out
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let Some(platform) = Platform::parse(&args.platform) else {
        bail!(
            "--platform {:?} is not a platform pipeguard knows",
            args.platform
        );
    };
    let module = registry::module(platform).context("platform without a module")?;
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.database_url {
        config.database_url = url.clone();
    }
    // Every wait the platform asks for comes back here, to be announced before it is made.
    let http = HttpOptions {
        max_inline_wait: Duration::ZERO,
        ..Default::default()
    };
    let Some(history) = module.history(config.platform(platform), &http) else {
        bail!(
            "import reads the history of GitHub repositories; {} is not supported yet",
            platform.as_str()
        );
    };
    if !module.valid_repository(&args.repository) {
        bail!(
            "--repository {:?} is not a {} repository name",
            args.repository,
            platform.as_str()
        );
    }
    let since_ms = pipeguard_store::now_ms() - i64::from(args.days) * 86_400_000;
    let rt = super::db::runtime()?;
    let (figures, tally) = rt.block_on(async {
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let st = AppState::new(config, stopped).await?;
        let tally = replay(&st, history.as_ref(), platform, &args.repository, since_ms).await?;
        let figures = import::readiness(&st, platform, &args.repository).await?;
        st.store.close().await;
        anyhow::Ok((figures, tally))
    })?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&figures)?),
        Format::Text => print!("{}", render(&figures, &tally, args.days)),
    }
    Ok(ExitCode::SUCCESS)
}
