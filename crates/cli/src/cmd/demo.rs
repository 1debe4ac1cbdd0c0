//! `pipeguard demo`: the real server on a throw-away SQLite database, with in-process stand-ins
//! of GitHub Actions, GitLab, Jenkins and CircleCI sending it signed webhooks, so a newcomer
//! watches failures be diagnosed, healed, escalated and held for approval without an account.

mod traffic;

use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_core::event::Platform;
use pipeguard_server::config::Config;
use pipeguard_server::tenants::{RepoConfig, Trigger};
use pipeguard_sim::circleci::{CircleciConfig, CircleciSim};
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::jenkins::{JenkinsConfig, JenkinsSim};
use pipeguard_sim::WebhookTarget;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {
    /// Address of the dashboard and API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Do not open the dashboard in a browser.
    #[arg(long)]
    no_open: bool,
    /// Seconds between two rounds of failures (each round fires every kind once).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..))]
    every: u64,
}

/// The credentials the stand-ins and the server share; fresh for each demo.
pub struct Secrets {
    github_token: String,
    gitlab_token: String,
    jenkins_token: String,
    circleci_token: String,
    webhook: String,
}

impl Secrets {
    fn generate() -> Secrets {
        let t = pipeguard_server::auth::tokens::generate;
        Secrets {
            github_token: t(),
            gitlab_token: t(),
            jenkins_token: t(),
            circleci_token: t(),
            webhook: t(),
        }
    }
}

pub const JENKINS_USER: &str = "pipeguard";

/// The four platforms, each on its own 127.0.0.1 port.
pub struct Sims {
    pub github: GithubSim,
    pub gitlab: GitlabSim,
    pub jenkins: JenkinsSim,
    pub circleci: CircleciSim,
}

impl Sims {
    async fn start(s: &Secrets) -> Result<Sims> {
        let jenkins = JenkinsConfig {
            quiet_period: Duration::from_millis(500),
            ..JenkinsConfig::default().credentials(JENKINS_USER, &s.jenkins_token)
        };
        Ok(Sims {
            github: GithubSim::start(GithubConfig::default().token(&s.github_token)).await?,
            gitlab: GitlabSim::start(GitlabConfig::default().token(&s.gitlab_token)).await?,
            jenkins: JenkinsSim::start(jenkins).await?,
            circleci: CircleciSim::start(CircleciConfig::default().token(&s.circleci_token))
                .await?,
        })
    }

    /// Points each platform's webhook at the server's intake.
    async fn deliver_to(&self, base: &str, secret: &str) {
        let to = |p: &str| Some(WebhookTarget::new(format!("{base}/webhooks/{p}"), secret));
        self.github.set_webhook(to("github")).await;
        self.gitlab.set_webhook(to("gitlab")).await;
        self.jenkins.set_webhook(to("jenkins")).await;
        self.circleci.set_webhook(to("circleci")).await;
    }
}

/// The server's configuration: the stand-ins as API endpoints, short waits so a heal takes
/// seconds, no hourly re-run budget (the demo repeats the same failures all along).
fn config(listen: &str, database_url: &str, sims: &Sims, s: &Secrets) -> Config {
    let mut c = Config {
        listen: listen.to_string(),
        database_url: database_url.to_string(),
        ..Default::default()
    };
    let platforms = [
        (Platform::Github, sims.github.base_url(), &s.github_token),
        (Platform::Gitlab, sims.gitlab.base_url(), &s.gitlab_token),
        (Platform::Jenkins, sims.jenkins.base_url(), &s.jenkins_token),
        (
            Platform::Circleci,
            sims.circleci.base_url(),
            &s.circleci_token,
        ),
    ];
    for (p, url, token) in platforms {
        let section = c.platform_mut(p);
        section.api_url = url;
        section.token = Some(token.clone());
        section.webhook_secret = Some(s.webhook.clone());
    }
    c.platform_mut(Platform::Jenkins).user = Some(JENKINS_USER.into());
    // The other platforms' intakes (the Ansible callback's among them) take the same secret,
    // so nothing is accepted unsigned.
    for m in pipeguard_platforms::registry::MODULES {
        let section = c.platform_mut(m.platform());
        section
            .webhook_secret
            .get_or_insert_with(|| s.webhook.clone());
    }
    c.healing.backoff_seconds = 2;
    c.healing.budget_per_repository_per_hour = 0;
    c.healing.budget_per_hour = 0;
    c.worker.verify_poll_seconds = 5;
    c.worker.http_backoff_ms = 100;
    c.repos.push(RepoConfig {
        platform: "github".into(),
        name: traffic::SCALED_REPO.into(),
        scale: Some(Trigger {
            workflow: Some(traffic::LARGE_WORKFLOW.into()),
            inputs: [("runner".to_string(), traffic::LARGE_RUNNER.to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    c
}

/// An admin token in the demo's database, as `pipeguard token create` makes one.
async fn mint_token(database_url: &str) -> Result<String> {
    let store = pipeguard_store::Store::connect(database_url)
        .await
        .context("cannot create the demo database")?;
    let token = pipeguard_server::auth::tokens::generate();
    let hash = pipeguard_server::auth::tokens::hash(&token);
    store.create_token("demo-admin", "admin", &hash).await?;
    store.close().await;
    Ok(token)
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    // The demo's own lines are the story; the server's info logs would bury them.
    pipeguard_server::telemetry::init_with("warn");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(demo(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(args: DemoArgs) -> Result<()> {
    // First, so a taken port is said at once, before anything else starts.
    let listener = listen(&args.listen).await?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let database_url = format!("sqlite://{}", dir.path().join("pipeguard.db").display());
    let secrets = Secrets::generate();
    let sims = Arc::new(Sims::start(&secrets).await?);
    let config = config(&args.listen, &database_url, &sims, &secrets);
    let token = mint_token(&database_url).await?;
    // A wildcard address is reached through this machine's loopback.
    let addr = listener.local_addr()?;
    let base = format!(
        "http://{}",
        addr.to_string().replace("0.0.0.0:", "127.0.0.1:")
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut server = tokio::spawn(pipeguard_server::serve(config, listener, stopped));
    tokio::select! {
        up = wait_until_up(&base) => up?,
        ended = &mut server => {
            ended.context("the server stopped")??;
            bail!("the server stopped before it answered");
        }
    }
    sims.deliver_to(&base, &secrets.webhook).await;
    quarantine_flaky_test(&base, &token).await?;
    banner(&base, &token, &sims);
    if !args.no_open {
        open_browser(&format!("{base}/"));
    }
    let round = Duration::from_secs(args.every);
    let fire = tokio::spawn(traffic::run(
        sims.clone(),
        base.clone(),
        secrets.webhook.clone(),
        round,
    ));
    let result = server.await;
    fire.abort();
    println!("demo stopped; its database is deleted");
    result.context("the server stopped")?
}

/// The demo's address, or what to do when it is taken.
async fn listen(addr: &str) -> Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let other = addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some(format!("{host}:{}", port.parse::<u16>().ok()? + 1)))
                .unwrap_or_else(|| "127.0.0.1:8081".into());
            bail!(
                "{addr} is already in use (another pipeguard or another program listens there): \
                 run the demo on another address, e.g. `pipeguard demo --listen {other}`"
            )
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot listen on {addr} (give another with --listen)"))
        }
    }
}

/// Ctrl-C or SIGTERM: the server stops taking requests and the demo ends.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The team already knows this test is flaky: a failure of it alone is retried at once.
async fn quarantine_flaky_test(base: &str, token: &str) -> Result<()> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/quarantine"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "repository": traffic::FLAKY_REPO,
            "test": traffic::FLAKY_TEST,
            "reason": "times out when the payment sandbox is slow",
        }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("cannot quarantine the demo's flaky test: {}", r.status());
    }
    Ok(())
}

async fn wait_until_up(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let ok = http.get(format!("{base}/healthz")).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server did not answer on {base} within 10 s")
}

fn banner(base: &str, token: &str, sims: &Sims) {
    println!("pipeguard demo: simulated CI platforms fire failures at a real pipeguard server");
    println!("dashboard: {base}/  (log in with the token below)");
    println!("token: {token}");
    println!(
        "platforms: GitHub Actions {}, GitLab {}, Jenkins {}, CircleCI {}",
        sims.github.base_url(),
        sims.gitlab.base_url(),
        sims.jenkins.base_url(),
        sims.circleci.base_url()
    );
    println!("API: curl -H 'Authorization: Bearer <token>' {base}/api/v1/sessions");
    println!("Ctrl-C stops the demo.");
}

/// Best effort: a machine without a desktop still runs the demo.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let child = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        // Reaped in the background so it leaves no zombie.
        std::thread::spawn(move || child.wait());
    }
}
