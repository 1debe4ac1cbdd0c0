//! `pipeguard import`: replay a repository's recent history before letting pipeguard touch it.
//! Each past failure a person re-ran goes through the worker's own analysis and planner in
//! observe mode, is stored as an `observed` session with what the re-run said about the
//! decision, and the repository's readiness is printed. Read-only on the platform; rate-limit
//! aware (it waits for the reset and goes on); resumable (runs already imported, and runs read
//! before with nothing to measure that have not changed since, are skipped).

use super::backtest::Format;
use super::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_core::event::Platform;
use pipeguard_core::readiness::RepositoryReadiness;
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::{registry, Cursor, History, PastGreen, PastRun, PlatformError};
use pipeguard_server::config::Config;
use pipeguard_server::import::{self, Imported};
use pipeguard_server::state::AppState;
use std::collections::HashSet;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct CmdArgs {
    /// The CI platform whose history is read (github, gitlab).
    #[arg(long)]
    platform: String,
    /// The repository (`OWNER/REPO`, a GitLab project path `GROUP/PROJECT`).
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
    /// Runs worth reading: re-run, or possibly re-run where the listing cannot tell.
    candidates: usize,
    imported: usize,
    already: usize,
    no_evidence: usize,
    /// Of those without evidence, the runs an earlier import read as they are now.
    unchanged: usize,
}

/// Every page of the history since `since_ms`: the runs worth reading, each once, and the
/// green runs.
async fn list(
    history: &dyn History,
    repository: &str,
    since_ms: i64,
    t: &mut Tally,
    report: &Report,
) -> Result<(Vec<PastRun>, Vec<PastGreen>)> {
    let (mut listed, mut runs, mut greens) = (HashSet::new(), Vec::new(), Vec::new());
    let mut at = Some(Cursor::first());
    while let Some(c) = at {
        let p = patiently("listing runs", || history.page(repository, since_ms, &c))
            .await
            .with_context(|| format!("listing the runs of {repository} (page {})", t.pages + 1))?;
        t.pages += 1;
        // A run at the edge of two windows is listed in both: it counts, and is read, once.
        let fresh: HashSet<String> = p
            .listed
            .into_iter()
            .filter(|id| listed.insert(id.clone()))
            .collect();
        let before = runs.len();
        runs.extend(
            p.runs
                .into_iter()
                .filter(|r| fresh.contains(&r.event.run_id)),
        );
        greens.extend(p.greens);
        report.line(&format!(
            "page {}: {} runs, {} to read",
            t.pages,
            fresh.len(),
            runs.len() - before
        ));
        at = p.next;
    }
    t.listed = listed.len();
    Ok((runs, greens))
}

/// Replays one run unless it was imported, or read as it is now, before.
async fn one(
    st: &pipeguard_server::Shared,
    history: &dyn History,
    platform: Platform,
    run: &PastRun,
    t: &mut Tally,
) -> Result<()> {
    let (repository, id) = (&run.event.repository, &run.event.run_id);
    if import::imported(st, platform, repository, id).await? {
        t.already += 1;
        return Ok(());
    }
    if st
        .store
        .read_before(platform, repository, id, &run.seen)
        .await?
    {
        t.no_evidence += 1;
        t.unchanged += 1;
        return Ok(());
    }
    let failure = patiently("reading a run", || history.failure(run))
        .await
        .with_context(|| {
            format!("reading run {id} (imported so far are kept: run the import again to go on)")
        })?;
    let stored = match failure {
        None => None,
        Some(f) => Some(import::observe_past(st, platform, f).await?),
    };
    match stored {
        Some(Imported::Stored(_)) => t.imported += 1,
        Some(Imported::Already) => t.already += 1,
        None | Some(Imported::Cancelled) => {
            st.store
                .note_read(platform, repository, id, &run.seen)
                .await?;
            t.no_evidence += 1;
        }
    }
    Ok(())
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
    let (runs, greens) = list(history, repository, since_ms, &mut t, &report).await?;
    t.candidates = runs.len();
    for (i, run) in runs.iter().enumerate() {
        one(st, history, platform, run, &mut t).await?;
        report.step(i + 1, runs.len());
    }
    report.finish();
    // Once every failure is stored: a green run on a new commit closes those before it.
    for g in &greens {
        import::push_fixed(
            st,
            platform,
            repository,
            &g.workflow,
            &g.commit,
            g.finished_at_ms,
        )
        .await?;
    }
    Ok(t)
}

fn render(r: &RepositoryReadiness, t: &Tally, days: u32) -> String {
    let f = &r.figures;
    let mut out = format!(
        "{} ({}): {} runs of the last {days} days read in {} page(s), {} to read; \
         {} imported now, {} imported before, {} without a usable re-run ({} unchanged since \
         an earlier import)\n",
        r.repository,
        r.platform,
        t.listed,
        t.pages,
        t.candidates,
        t.imported,
        t.already,
        t.no_evidence,
        t.unchanged
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
    if f.fixed_by_push > 0 {
        out += &format!(
            "{} failures nobody's re-run measured were fixed by a push\n",
            f.fixed_by_push
        );
    }
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
            "import reads the history of GitHub and GitLab; {} is not supported yet",
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
