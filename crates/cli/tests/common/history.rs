//! The history `pipeguard import` replays on every platform's stand-in: which failures a
//! person re-ran, how long after, and what the re-run did.

use pipeguard_sim::{logs, JobSpec, RunSpec};
use std::path::Path;
use std::time::Duration;

pub const MIN: Duration = Duration::from_secs(60);

/// A kind of re-run failure and how many of them.
pub struct Kind {
    pub category: &'static str,
    /// Whether the person's re-run went green.
    pub then_green: bool,
    pub runs: usize,
    pub rerun_after: Duration,
}

/// 12 transient failures a person's re-run healed, 3 that failed again; 4 genuine failures
/// that failed again, 2 that a plain re-run turned green. Pipeguard would re-run the 15
/// transient ones (12 confirmed, 3 contradicted; median 20 min) and withhold the 6 others
/// (2 missed).
pub const KINDS: [Kind; 4] = [
    Kind {
        category: "network",
        then_green: true,
        runs: 12,
        rerun_after: Duration::from_secs(20 * 60),
    },
    Kind {
        category: "network",
        then_green: false,
        runs: 3,
        rerun_after: Duration::from_secs(10 * 60),
    },
    Kind {
        category: "compilation_error",
        then_green: false,
        runs: 4,
        rerun_after: Duration::from_secs(5 * 60),
    },
    Kind {
        category: "compilation_error",
        then_green: true,
        runs: 2,
        rerun_after: Duration::from_secs(40 * 60),
    },
];

/// A run whose `lint` passes and whose `test` is `job`.
pub fn run(repo: &str, workflow: &str, job: JobSpec) -> RunSpec {
    RunSpec::new(repo, workflow)
        .job(JobSpec::new("lint"))
        .job(job)
}

/// `test` fails with a sample of `category`, then passes or fails the same way again.
pub fn failing(repo: &str, workflow: &str, category: &str, then_green: bool) -> RunSpec {
    let log = logs::sample(category).unwrap().log;
    let job = JobSpec::new("test").fails(log);
    run(
        repo,
        workflow,
        if then_green {
            job.passes()
        } else {
            job.fails(log)
        },
    )
}

/// `./pipeguard.toml`: a SQLite database in `dir`, the platform's stand-in and its token.
pub fn config(dir: &Path, platform: &str, api_url: &str, token: &str) {
    std::fs::write(
        dir.join("pipeguard.toml"),
        format!(
            "database_url = \"sqlite://{}\"\n[{platform}]\napi_url = \"{api_url}\"\ntoken = \"{token}\"\n",
            dir.join("pipeguard.db").display(),
        ),
    )
    .unwrap();
}

/// `pipeguard import` of the last 30 days: its exit code, its stdout, and both outputs.
pub async fn import(
    dir: &Path,
    platform: &str,
    repository: &str,
    format: &str,
) -> (i32, String, String) {
    let mut c = super::bin(dir);
    c.args(["import", "--platform", platform, "--repository", repository])
        .args(["--days", "30", "--format", format]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), stdout, super::text(&out))
}
