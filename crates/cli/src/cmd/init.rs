//! `pipeguard init`: a commented `pipeguard.toml` for the platforms asked for. The same text,
//! for every platform, is `contrib/pipeguard.example.toml`.

use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_platforms::registry::{by_key, MODULES};
use pipeguard_platforms::settings::SectionSpec;
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

/// What to tell about each platform: where its token comes from and what it needs, and how
/// its deliveries reach the server.
struct Hint {
    key: &'static str,
    credential: &'static str,
    webhook: &'static str,
}

const HINTS: &[Hint] = &[
    Hint {
        key: "github",
        credential: "a fine-grained token with Actions: read and write, Contents: read \
                     (classic: the repo scope); GitHub Enterprise: api_url = https://HOST/api/v3",
        webhook: "Settings > Webhooks: payload URL https://PIPEGUARD/webhooks/github, content \
                  type application/json, this secret, events Workflow runs and Workflow jobs",
    },
    Hint {
        key: "gitlab",
        credential: "a project, group or personal access token with the api scope (a Developer \
                     may retry jobs; deploy jobs need Maintainer on protected branches)",
        webhook: "Settings > Webhooks: URL https://PIPEGUARD/webhooks/gitlab, this secret as \
                  the Secret token, Pipeline events and Job events",
    },
    Hint {
        key: "jenkins",
        credential: "user + that user's API token (Job: Read and Build); api_url is the \
                     Jenkins root URL",
        webhook:
            "Notification plugin: JSON over HTTP to \
                  https://PIPEGUARD/webhooks/jenkins?token=SECRET (or the X-Pipeguard-Token header)",
    },
    Hint {
        key: "circleci",
        credential: "a personal API token (User Settings > Personal API Tokens)",
        webhook: "Project Settings > Webhooks: receiver URL https://PIPEGUARD/webhooks/circleci, \
                  this secret, events workflow-completed and job-completed",
    },
    Hint {
        key: "buildbot",
        credential: "user + password of an account that may rebuild (password is the key)",
        webhook: "an HttpStatusPush reporter to https://PIPEGUARD/webhooks/buildbot with this \
                  secret as its basic-auth password",
    },
    Hint {
        key: "buildkite",
        credential: "an API access token with read_builds, read_build_logs and write_builds",
        webhook:
            "Settings > Notification Services > Webhook: https://PIPEGUARD/webhooks/buildkite, \
                  this secret as the signature key, events build.finished and job.finished",
    },
    Hint {
        key: "azure",
        credential: "a personal access token with Build: read and execute; api_url is \
                     https://dev.azure.com (Azure DevOps Server: its root URL)",
        webhook: "Project settings > Service hooks > Web Hooks: Build completed to \
                  https://PIPEGUARD/webhooks/azure, this secret as the basic-auth password",
    },
    Hint {
        key: "teamcity",
        credential: "an access token of a user who may run builds; api_url is the server URL",
        webhook: "a webhook on BUILD_FINISHED to https://PIPEGUARD/webhooks/teamcity with this \
                  secret as the basic-auth password",
    },
    Hint {
        key: "ansible",
        credential: "",
        webhook: "the callback plugin in contrib/ansible posts failed tasks with this secret as \
                  PIPEGUARD_TOKEN (a bearer token)",
    },
    Hint {
        key: "generic",
        credential: "",
        webhook: "any CI step posts its failure to https://PIPEGUARD/webhooks/generic, signed \
                  with this secret (X-Pipeguard-Signature-256: sha256=HMAC of the body) or \
                  carrying it as X-Pipeguard-Token",
    },
];

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
fn section(spec: &SectionSpec, hint: Option<&Hint>) -> String {
    let key = spec.key;
    let env = format!("PIPEGUARD_{}", key.to_ascii_uppercase());
    let mut out = format!("\n[{key}]\n");
    if let Some(h) = hint.filter(|h| !h.webhook.is_empty()) {
        out.push_str(&comment(&format!("Deliveries: {}.", h.webhook)));
    }
    out.push_str(&format!(
        "# webhook_secret = \"…\"   # or {env}_WEBHOOK_SECRET; unset: deliveries are unsigned\n"
    ));
    let Some(credential) = spec.credential else {
        return out;
    };
    if let Some(h) = hint.filter(|h| !h.credential.is_empty()) {
        out.push_str(&comment(&format!("Credential: {}.", h.credential)));
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
            out.push_str(&section(&spec, HINTS.iter().find(|h| h.key == spec.key)));
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
