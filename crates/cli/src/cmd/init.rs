//! `pipeguard init`: a commented `pipeguard.toml` for the platforms asked for. The same text,
//! for every platform, is `contrib/pipeguard.example.toml`.

use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_platforms::registry::{by_key, MODULES};
use pipeguard_platforms::settings::SectionSpec;
use pipeguard_platforms::Setup;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InitArgs {
    /// Platforms to configure, comma-separated (github, gitlab, jenkins, circleci, buildbot,
    /// buildkite, azure, teamcity, ansible, generic).
    #[arg(long, value_delimiter = ',', default_value = "github")]
    platform: Vec<String>,
    /// Where to write it (`-` for standard output).
    #[arg(long, short, default_value = "pipeguard.toml")]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

const HEAD: &str = r#"# pipeguard configuration. Every value here can be overridden by an environment variable
# (PIPEGUARD_LISTEN, PIPEGUARD_GITHUB_TOKEN, …): keep secrets in the environment or in a file
# only the service can read. Unknown keys are errors. `pipeguard doctor` checks this file.

# Where the service listens. A platform must reach it: behind a reverse proxy with TLS
# (https://PIPEGUARD/webhooks/…), with [tls] below, or through a tunnel for a trial.
listen = "127.0.0.1:8080"

# SQLite for one server; postgres://user@host/db for several replicas.
database_url = "sqlite://pipeguard.db"
"#;

const TAIL: &str = r#"
[healing]
# "observe" plans every failure and records what it would have done (dashboard: Readiness)
# without touching a pipeline; "act" re-runs. Start observing, then switch each repository
# once its readiness earns it: `pipeguard mode set --repository R act` (or [[repos]] mode).
mode = "observe"
# Seconds before a re-run: a registry or network blip has time to pass.
backoff_seconds = 30
# Heal attempts per failed run before a human gets it.
max_attempts = 2
# Jobs whose name, stage or environment matches these wait for approval before a re-run.
side_effect_patterns = ["deploy", "release", "publish", "production"]

[approvals]
# Distinct operators who must approve a plan (2 = four eyes), and hours before it lapses.
required = 1
expire_hours = 24

# [tls]
# cert = "/etc/pipeguard/cert.pem"
# key = "/etc/pipeguard/key.pem"

# Told when a session is escalated, failed or waits for approval (docs/notifications.md).
# [[notify]]
# kind = "slack"
# url = "https://hooks.slack.com/services/T000/B000/XXXX"
#
# [[notify]]
# kind = "github_check"          # a check run on the commit, with the diagnosis and a link
# url = "https://pipeguard.example.com"   # the dashboard's address, for the link
#
# [[notify]]
# kind = "gitlab_status"         # a commit status, and a note on the merge request
# url = "https://pipeguard.example.com"

# Per-repository credentials and strategies (README: Many repositories).
# [[repos]]
# platform = "github"
# name = "octo/app"
# mode = "act"
# [repos.scale]
# workflow = "ci.yml"
# inputs = { runner = "ubuntu-latest-16-cores" }
"#;

/// `text` as comment lines of at most 96 characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// One platform's commented section.
fn section(spec: &SectionSpec, hint: &Setup) -> String {
    let key = spec.key;
    let env = format!("PIPEGUARD_{}", key.to_ascii_uppercase());
    let mut out = format!("\n[{key}]\n");
    if !hint.webhook.is_empty() {
        out.push_str(&comment(&format!("Deliveries: {}.", hint.webhook)));
    }
    out.push_str(&format!(
        "# webhook_secret = \"…\"   # or {env}_WEBHOOK_SECRET; unset: deliveries are unsigned\n"
    ));
    let Some(credential) = spec.credential else {
        return out;
    };
    if !hint.credential.is_empty() {
        out.push_str(&comment(&format!("Credential: {}.", hint.credential)));
    }
    if spec.default_api_url.is_empty() {
        out.push_str(&format!(
            "# api_url = \"https://{key}.example.com\"   # required, or {env}_API_URL\n"
        ));
    } else {
        out.push_str(&format!("api_url = \"{}\"\n", spec.default_api_url));
    }
    if spec.user {
        out.push_str(&format!("# user = \"pipeguard\"      # or {env}_USER\n"));
    }
    let upper = credential.to_ascii_uppercase();
    out.push_str(&format!(
        "# {credential} = \"…\"            # or {env}_{upper}\n"
    ));
    out
}

/// The configuration file for `keys` (section keys, in the registry's order).
pub fn render(keys: &[&str]) -> String {
    let mut out = HEAD.to_string();
    for m in MODULES {
        let spec = m.section();
        if keys.contains(&spec.key) {
            out.push_str(&section(&spec, &m.setup()));
        }
    }
    out.push_str(TAIL);
    out
}

/// Every platform's key.
pub fn all_keys() -> Vec<&'static str> {
    MODULES.iter().map(|m| m.section().key).collect()
}

pub fn run(args: InitArgs) -> Result<ExitCode> {
    let mut keys = Vec::new();
    for p in &args.platform {
        let p = p.trim().to_ascii_lowercase();
        let Some(m) = by_key(&p) else {
            bail!(
                "--platform {p}: not a platform (one of: {})",
                all_keys().join(", ")
            );
        };
        keys.push(m.section().key);
    }
    let text = render(&keys);
    if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = &args.output;
    if path.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} for {}; next: set the secrets, then `pipeguard doctor --config {}`",
        path.display(),
        keys.join(", "),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
