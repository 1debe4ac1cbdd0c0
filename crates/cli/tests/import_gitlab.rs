//! `pipeguard import --platform gitlab` against the GitLab stand-in's history: three pages of
//! pipelines, retried jobs found with `include_retried`, a 429 with `Retry-After` and
//! `RateLimit-Reset` waited out, an import stopped half-way and resumed, and the readiness
//! figures asserted exactly.

mod common;

use common::history::{self, failing as failing_in, run as run_in, KINDS, MIN};
use pipeguard_sim::gitlab::{GitlabConfig, GitlabSim};
use pipeguard_sim::{Fault, JobSpec, RunSpec};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const PROJECT: &str = "grp/sub/app";
const DAY: Duration = Duration::from_secs(86_400);

fn pipeline(job: JobSpec) -> RunSpec {
    run_in(PROJECT, ".gitlab-ci.yml", job)
}

fn failing(category: &str, then_green: bool) -> RunSpec {
    failing_in(PROJECT, ".gitlab-ci.yml", category, then_green)
}

/// The retry kinds of [`KINDS`] (a retry of the pipeline's failed jobs), 200 green pipelines
/// and the newest, a new commit's; 5 too old. Made oldest first, as GitLab numbers them.
/// Returns the retried pipelines, newest first.
async fn history(sim: &GitlabSim) -> Vec<u64> {
    // (age, pipeline, retried after, whether it counts as retried)
    let mut all: Vec<(Duration, RunSpec, Vec<Duration>, bool)> = Vec::new();
    let mut age = Duration::from_secs(3600);
    for k in &KINDS {
        for _ in 0..k.runs {
            age += Duration::from_secs(3 * 3600);
            let spec = failing(k.category, k.then_green);
            all.push((age, spec, vec![k.rerun_after], true));
        }
    }
    for i in 0..200u64 {
        let ago = Duration::from_secs(600 + i * 3 * 3600);
        all.push((ago, pipeline(JobSpec::new("test")), vec![], false));
    }
    // A push fixed the genuine failures that failed again: a green pipeline on a new commit.
    let fix = pipeline(JobSpec::new("test")).sha("f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1");
    all.push((5 * MIN, fix, vec![], false));
    for i in 0..5u32 {
        all.push((DAY * (31 + i), failing("network", true), vec![MIN], false));
    }
    all.sort_by_key(|(age, ..)| std::cmp::Reverse(*age));
    let mut retried = Vec::new();
    for (ago, spec, retries, counts) in all {
        let id = sim.add_past_pipeline(spec, ago, &retries).await.unwrap();
        if counts {
            retried.push(id);
        }
    }
    retried.reverse();
    retried
}

fn config(dir: &Path, sim: &GitlabSim) {
    history::config(dir, "gitlab", &sim.base_url(), "sim-gitlab-token");
}

async fn import(dir: &Path, format: &str) -> (i32, String, String) {
    history::import(dir, "gitlab", PROJECT, format).await
}

async fn api_calls(sim: &GitlabSim, from: usize) -> Vec<String> {
    sim.requests().await[from..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

/// The different calls containing `part` (a call the rate limit refused is made again).
fn count(calls: &[String], part: &str) -> usize {
    let distinct: std::collections::HashSet<&String> =
        calls.iter().filter(|c| c.contains(part)).collect();
    distinct.len()
}

#[tokio::test]
async fn gitlab_import_finds_retried_jobs_waits_for_the_limit_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let limited = GitlabConfig::default().rate_limit(40, Duration::from_secs(1));
    let sim = GitlabSim::start(limited).await.unwrap();
    let retried = history(&sim).await;
    config(dir.path(), &sim);
    // The 16th retried pipeline (newest first) cannot be read for a while: the first import
    // stops there, with the 15 before it stored and the green ones before it remembered.
    let stuck = retried[15];
    sim.inject(Fault::refuse(format!("/pipelines/{stuck}/jobs"), 502).times(3))
        .await;

    let (code, _, t) = import(dir.path(), "text").await;
    assert_eq!(code, 2, "{t}");
    assert!(t.contains(&format!("reading run {stuck}")), "{t}");
    assert!(t.contains("run the import again"), "{t}");
    assert!(
        t.contains("page 1: 100 runs, 100 to read") && t.contains("page 3: 22 runs, 22 to read"),
        "{t}"
    );
    // 3 pages + 33 pipelines' jobs + 15 traces + the refused reads: the 41st call got a 429.
    assert!(
        t.contains("waiting") && t.contains("until its limit resets"),
        "{t}"
    );
    assert!(sim.rate_limited().await >= 1);

    let before = sim.requests().await.len();
    let refused = sim.rate_limited().await;
    let (code, out, t) = import(dir.path(), "json").await;
    assert_eq!(code, 0, "{t}");
    let calls = api_calls(&sim, before).await;
    let refused = (sim.rate_limited().await - refused) as usize;
    // Read before the stop: 15 retried pipelines (stored) and the 18 green ones newer than the
    // stuck one (remembered). The 189 others are read now; only the 6 retried have a trace.
    assert_eq!(count(&calls, "include_retried=true"), 189, "{calls:#?}");
    assert_eq!(count(&calls, "/trace"), 6, "{calls:#?}");
    assert_eq!(count(&calls, "/pipelines?updated_after="), 3, "{calls:#?}");
    assert_eq!(calls.len() - refused, 3 + 189 + 6, "{calls:#?}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let expected = json!({
        "repository": PROJECT, "platform": "gitlab", "mode": "act",
        "would_retry": 15, "confirmed": 12, "contradicted": 3,
        "withheld": 6, "missed": 2, "precision": 0.8, "median_minutes_to_rerun": 20.0,
    });
    for (k, want) in expected.as_object().unwrap() {
        assert_eq!(&v[k], want, "{k}: {v:#}");
    }

    // Once more: only the listing is read; nothing counted twice.
    let before = sim.requests().await.len();
    let (code, out, t) = import(dir.path(), "text").await;
    assert_eq!(code, 0, "{t}");
    assert_eq!(api_calls(&sim, before).await.len(), 3);
    assert!(
        t.contains(
            "0 imported now, 21 imported before, 201 without a usable re-run (201 unchanged"
        ),
        "{t}"
    );
    assert!(out.contains("would re-run 15: 12 went green"), "{out}");
    assert!(out.contains("would withhold 6: 2 went green"), "{out}");
    // The 4 genuine failures whose retry failed again were fixed by the new commit's pipeline.
    assert!(
        out.contains("4 failures nobody's re-run measured were fixed by a push"),
        "{out}"
    );
}

/// A failed pipeline nobody retried yet is remembered as it is; once a person retries it (its
/// `updated_at` changes), the next import reads it again and measures the retry.
#[tokio::test]
async fn a_pipeline_retried_after_an_import_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let sim = GitlabSim::start(GitlabConfig::default()).await.unwrap();
    let id = sim
        .add_past_pipeline(
            failing("network", true),
            3 * 3600 * Duration::from_secs(1),
            &[],
        )
        .await
        .unwrap();
    config(dir.path(), &sim);
    let (code, out, t) = import(dir.path(), "text").await;
    assert_eq!(code, 0, "{t}");
    assert!(
        out.contains("1 without a usable re-run (0 unchanged"),
        "{t}"
    );
    assert!(out.contains("would re-run 0"), "{t}");

    let (code, out, t) = import(dir.path(), "text").await;
    assert_eq!(code, 0, "{t}");
    assert!(
        out.contains("1 without a usable re-run (1 unchanged"),
        "{t}"
    );

    sim.retry_past_pipeline(id, 15 * MIN).await;
    let (code, out, t) = import(dir.path(), "json").await;
    assert_eq!(code, 0, "{t}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["would_retry"], &v["confirmed"]),
        (&json!(1), &json!(1)),
        "{v:#}"
    );
    assert_eq!(v["median_minutes_to_rerun"], 15.0, "{v:#}");
}
