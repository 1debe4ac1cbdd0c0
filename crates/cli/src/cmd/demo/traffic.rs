//! What the demo's platforms fail with: a table of scenes, fired once per round, each a run
//! whose jobs fail with a real-looking log and pass (or not) when pipeguard re-runs them.

use super::Sims;
use pipeguard_sim::logs::sample;
use pipeguard_sim::{JobSpec, Outcome, RunSpec};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The GitHub repository whose out-of-memory build is re-run on a bigger runner.
pub const SCALED_REPO: &str = "acme/storefront";
/// The workflow dispatched for that, and the runner it asks for.
pub const LARGE_WORKFLOW: &str = "ci-large.yml";
pub const LARGE_RUNNER: &str = "ubuntu-latest-16-cores";

#[derive(Clone, Copy)]
enum Where {
    Github,
    Gitlab,
    Jenkins,
    Circleci,
    /// The Ansible callback plugin reports a failed task.
    Ansible,
}

/// How a scene's session ends, as docs/demo.md tells it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Healed,
    Escalated,
    /// A deploy: held for a person, healed once approved.
    AwaitsApproval,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Healed => "healed",
            Expect::Escalated => "escalated",
            Expect::AwaitsApproval => "awaiting approval",
        }
    }
}

/// One kind of failure the demo shows.
struct Scene {
    what: &'static str,
    at: Where,
    repo: &'static str,
    workflow: &'static str,
    jobs: fn() -> Vec<JobSpec>,
    expect: Expect,
}

/// Every run is on `main`: a `release` branch (GitLab reports its ref as the pipeline's name)
/// reads as a release, so even a registry timeout on it would wait for approval. The deploy
/// scene is the one that waits.
const BRANCH: &str = "main";

fn log(category: &str) -> &'static str {
    sample(category).map(|s| s.log).unwrap_or("error")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Fails once with `category`'s log, then passes: what a re-run fixes.
fn once(name: &str, category: &str, d: u64) -> JobSpec {
    JobSpec::new(name)
        .duration(secs(d))
        .fails(log(category))
        .passes()
}

fn ok(name: &str, d: u64) -> JobSpec {
    JobSpec::new(name).duration(secs(d)).passes()
}

/// The test the team quarantined as flaky (see [`FLAKY_TEST`]'s use at start).
pub const FLAKY_REPO: &str = "acme/checkout";
pub const FLAKY_TEST: &str = "tests/test_checkout.py::test_payment_webhook_is_idempotent";

const FLAKY_LOG: &str = "$ pytest -n 4 tests/\n\
============================= test session starts ==============================\n\
platform linux -- Python 3.12.7, pytest-8.3.3, pluggy-1.5.0\n\
collected 214 items\n\
\n\
........................................................................ [ 33%]\n\
.............................F.......................................... [ 67%]\n\
...................................................................... [100%]\n\
=========================== short test summary info ============================\n\
FAILED tests/test_checkout.py::test_payment_webhook_is_idempotent - TimeoutError: webhook not delivered within 5s\n\
======================== 1 failed, 213 passed in 48.31s ========================";

const REGISTRY_TIMEOUT_LOG: &str = "$ docker build -t registry.example.com/acme/shop:$CI_COMMIT_SHORT_SHA .\n\
#1 [internal] load metadata for registry.example.com/base/node:20-alpine\n\
ERROR: failed to solve: registry.example.com/base/node:20-alpine: failed to do request: \
Head \"https://registry.example.com/v2/base/node/manifests/20-alpine\": dial tcp 10.20.0.7:443: i/o timeout\n\
ERROR: Job failed: exit code 1";

const DEPLOY_LOG: &str = "$ helm upgrade --install shop ./chart --namespace production --atomic --wait\n\
Release \"shop\" does not exist. Installing it now.\n\
Error: INSTALLATION FAILED: Get \"https://k8s.example.com:6443/apis/apps/v1/namespaces/production/deployments/shop\": \
received unexpected HTTP status: 503 Service Unavailable\n\
ERROR: Job failed: exit code 1";

const SCENES: &[Scene] = &[
    Scene {
        what: "a flaky test",
        at: Where::Github,
        repo: FLAKY_REPO,
        workflow: "ci.yml",
        jobs: || {
            let test = JobSpec::new("test")
                .duration(secs(4))
                .fails(FLAKY_LOG)
                .passes();
            vec![ok("lint", 2), test]
        },
        expect: Expect::Healed,
    },
    Scene {
        what: "a compile error",
        at: Where::Github,
        repo: "acme/api",
        workflow: "ci.yml",
        jobs: || {
            let build = JobSpec::new("build")
                .duration(secs(3))
                .fails(log("compilation_error"));
            vec![build, ok("lint", 2)]
        },
        expect: Expect::Escalated,
    },
    Scene {
        what: "an out-of-memory build",
        at: Where::Github,
        repo: SCALED_REPO,
        workflow: "ci.yml",
        // Fails the same way on the same runner; only the bigger one passes.
        jobs: || {
            let build = JobSpec::new("build")
                .duration(secs(4))
                .fails(log("out_of_memory"));
            vec![build]
        },
        expect: Expect::Healed,
    },
    Scene {
        what: "a registry timeout",
        at: Where::Gitlab,
        repo: "acme/shop",
        workflow: "main",
        jobs: || {
            vec![
                JobSpec::new("build-image")
                    .duration(secs(3))
                    .stage("build")
                    .fails(REGISTRY_TIMEOUT_LOG)
                    .passes(),
                ok("test", 2).stage("test").needs(&["build-image"]),
            ]
        },
        expect: Expect::Healed,
    },
    Scene {
        what: "a failed deploy",
        at: Where::Gitlab,
        repo: "acme/payments",
        workflow: "main",
        jobs: || {
            let deploy = JobSpec::new("deploy-production")
                .duration(secs(3))
                .stage("deploy")
                .environment("production")
                .needs(&["build"])
                .then(Outcome::fail(DEPLOY_LOG))
                .passes();
            vec![ok("build", 2).stage("build"), deploy]
        },
        expect: Expect::AwaitsApproval,
    },
    Scene {
        what: "a registry answering 503",
        at: Where::Jenkins,
        repo: "acme/search-indexer",
        workflow: "Jenkinsfile",
        jobs: || {
            vec![
                ok("Build", 2),
                once("Push image", "service_unavailable", 3).needs(&["Build"]),
            ]
        },
        expect: Expect::Healed,
    },
    Scene {
        what: "a package download reset",
        at: Where::Circleci,
        repo: "gh/acme/mobile-app",
        workflow: "build-and-test",
        jobs: || {
            vec![
                once("install", "dependency_download", 3),
                ok("test", 2).needs(&["install"]),
            ]
        },
        expect: Expect::Healed,
    },
    Scene {
        what: "a package missing on a host",
        at: Where::Ansible,
        repo: "playbooks/site.yml",
        workflow: "site.yml",
        jobs: Vec::new,
        expect: Expect::Escalated,
    },
];

/// A commit id for round `round` of scene `scene`: each round is a new commit, so what was
/// tried on one commit (a bigger runner) may be tried again on the next.
fn sha(round: u64, scene: usize) -> String {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (scene as u64 + 1);
    let mut out = String::new();
    while out.len() < 40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(40);
    out
}

/// Fires every scene once per `every`, spread over the round, until aborted.
pub async fn run(sims: Arc<Sims>, base: String, secret: String, every: Duration) {
    if let Err(e) = define_large_runner(&sims).await {
        tracing::warn!("cannot define the large-runner workflow: {e}");
    }
    let http = reqwest::Client::new();
    let gap = every / (SCENES.len() as u32 + 1);
    for round in 0.. {
        for (i, scene) in SCENES.iter().enumerate() {
            match fire(&sims, &http, &base, &secret, scene, round, i).await {
                // A reader that went away must not stop the demo.
                Ok(()) => drop(writeln!(
                    std::io::stdout(),
                    "round {}: {} fails {} ({}; expect {})",
                    round + 1,
                    platform_name(scene.at),
                    scene.repo,
                    scene.what,
                    scene.expect.as_str()
                )),
                Err(e) => eprintln!("pipeguard demo: cannot start {}: {e}", scene.what),
            }
            tokio::time::sleep(gap).await;
        }
        tokio::time::sleep(gap).await;
    }
}

async fn define_large_runner(sims: &Sims) -> Result<(), pipeguard_sim::SpecError> {
    let spec = RunSpec::new(SCALED_REPO, LARGE_WORKFLOW)
        .parameter("runner", "ubuntu-latest")
        .job(ok("build", 5));
    sims.github.define_workflow(spec).await
}

fn platform_name(at: Where) -> &'static str {
    match at {
        Where::Github => "GitHub Actions",
        Where::Gitlab => "GitLab",
        Where::Jenkins => "Jenkins",
        Where::Circleci => "CircleCI",
        Where::Ansible => "Ansible",
    }
}

async fn fire(
    sims: &Sims,
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    scene: &Scene,
    round: u64,
    i: usize,
) -> anyhow::Result<()> {
    let spec = (scene.jobs)()
        .into_iter()
        .fold(RunSpec::new(scene.repo, scene.workflow), RunSpec::job)
        .branch(BRANCH)
        .sha(sha(round, i));
    match scene.at {
        Where::Github => {
            sims.github.start_run(spec).await?;
        }
        Where::Gitlab => {
            sims.gitlab.start_run(spec).await?;
        }
        Where::Jenkins => {
            sims.jenkins.start_run(spec).await?;
        }
        Where::Circleci => {
            sims.circleci.start_run(spec).await?;
        }
        Where::Ansible => report_ansible_failure(http, base, secret, scene.repo, round).await?,
    }
    Ok(())
}

/// What the callback plugin (contrib/ansible) posts when a package task fails on a host.
async fn report_ansible_failure(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    playbook: &str,
    round: u64,
) -> anyhow::Result<()> {
    let host = format!("web-{}.internal", round % 4 + 1);
    let body = json!({
        "playbook": playbook,
        "host": host,
        "task": "Back up the orders database",
        "module": "ansible.builtin.command",
        "msg": "non-zero return code",
        "stdout": "",
        "stderr": "/bin/sh: 1: pg_dump: not found",
        "rc": 127,
        "unreachable": false,
        "facts": {
            "os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "22.04",
            "pkg_mgr": "apt", "service_mgr": "systemd", "hostname": host,
            // Differs between rounds, as a live host's does: each report is its own failure.
            "memfree_mb": 1024 + round,
        },
    });
    let r = http
        .post(format!("{base}/webhooks/ansible"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() {
        anyhow::bail!("the intake answered {}", r.status());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeguard_core::policy::Policy;

    const DOC: &str = include_str!("../../../../../docs/demo.md");

    /// The name the platform's delivery gives the run, which the policy reads with the jobs'
    /// names: GitLab's pipeline hooks name the ref, Jenkins the job, Ansible the playbook.
    fn reported_workflow(scene: &Scene) -> &'static str {
        match scene.at {
            Where::Gitlab => BRANCH,
            Where::Jenkins | Where::Ansible => scene.repo,
            Where::Github | Where::Circleci => scene.workflow,
        }
    }

    #[test]
    fn only_the_deploy_scene_names_a_side_effect_so_only_it_waits() {
        let policy = Policy::default();
        for scene in SCENES {
            let jobs = (scene.jobs)();
            let mut names: Vec<&str> = jobs
                .iter()
                .flat_map(|j| {
                    [
                        Some(j.name.as_str()),
                        j.stage.as_deref(),
                        j.environment.as_deref(),
                    ]
                })
                .flatten()
                .collect();
            names.push(reported_workflow(scene));
            assert_eq!(
                policy.has_side_effects(&names),
                scene.expect == Expect::AwaitsApproval,
                "{}: {names:?}",
                scene.what
            );
        }
    }

    /// docs/demo.md's table: one row per scene, ending as the scene does.
    #[test]
    fn the_document_tells_each_scene_as_the_demo_runs_it() {
        let section = DOC
            .split("## What it fires")
            .nth(1)
            .expect("a What it fires section");
        let rows: Vec<Vec<&str>> = section
            .split("\n## ")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains('`'))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), SCENES.len(), "{rows:?}");
        for scene in SCENES {
            let repo = format!("`{}`", scene.repo);
            let row = rows
                .iter()
                .find(|r| r[1] == platform_name(scene.at) && r[2] == repo)
                .unwrap_or_else(|| panic!("no row for {} ({})", scene.repo, scene.what));
            let does = row[4];
            let says = |outcome: &str| does.contains(&format!("**{outcome}**"));
            // The deploy's row goes on to say it heals once approved.
            let others: &[&str] = match scene.expect {
                Expect::AwaitsApproval => &[],
                Expect::Healed => &["awaiting approval", "escalated"],
                Expect::Escalated => &["awaiting approval", "healed"],
            };
            let agrees = says(scene.expect.as_str()) && !others.iter().any(|o| says(o));
            assert!(
                agrees,
                "{}: the document says {does:?}, the demo {:?}",
                scene.repo, scene.expect
            );
        }
    }
}
