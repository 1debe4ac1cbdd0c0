//! `pipeguard import` against the GitHub stand-in's history: three pages of runs, a rate-limit
//! pause, an import stopped half-way and resumed, and the readiness figures asserted exactly.

mod common;

use common::history::{self, failing as failing_in, run as run_in, KINDS, MIN};
use common::*;
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::{Fault, JobSpec, RunSpec};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const REPO: &str = "octo/app";
const DAY: Duration = Duration::from_secs(86_400);

fn run(job: JobSpec) -> RunSpec {
    run_in(REPO, "ci.yml", job)
}

fn failing(category: &str, then_green: bool) -> RunSpec {
    failing_in(REPO, "ci.yml", category, then_green)
}

/// The re-run kinds of [`KINDS`], 200 green runs and 5 runs too old. Returns the re-run runs,
/// newest first.
async fn history(sim: &GithubSim) -> Vec<u64> {
    let mut retried = Vec::new();
    let mut age = Duration::from_secs(3600);
    for k in &KINDS {
        for _ in 0..k.runs {
            age += Duration::from_secs(3 * 3600);
            let spec = failing(k.category, k.then_green);
            let id = sim.add_past_run(spec, age, &[k.rerun_after]).await.unwrap();
            retried.push(id);
        }
    }
    for i in 0..200u64 {
        let ago = Duration::from_secs(600 + i * 3 * 3600);
        sim.add_past_run(run(JobSpec::new("test")), ago, &[])
            .await
            .unwrap();
    }
    for i in 0..5u32 {
        let old = failing("network", true);
        sim.add_past_run(old, DAY * (31 + i), &[]).await.unwrap();
    }
    retried
}

fn config(dir: &Path, sim: &GithubSim) {
    history::config(dir, "github", &sim.base_url(), "sim-github-token");
}

async fn import(dir: &Path, format: &str) -> (i32, String, String) {
    history::import(dir, "github", REPO, format).await
}

/// API calls (blob downloads apart) the stand-in received since `from`.
async fn api_calls(sim: &GithubSim, from: usize) -> Vec<String> {
    sim.requests().await[from..]
        .iter()
        .filter(|r| !r.path().starts_with("/_blobs/"))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

#[tokio::test]
async fn import_replays_pages_waits_for_the_rate_limit_and_resumes_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let limited = GithubConfig::default().rate_limit(40, Duration::from_secs(2));
    let sim = GithubSim::start(limited).await.unwrap();
    let retried = history(&sim).await;
    config(dir.path(), &sim);
    // The 16th re-run run (listed newest first, as `retried` is) cannot be read for a while:
    // the first import stops there, with the 15 before it stored.
    let stuck = retried[15];
    sim.inject(Fault::refuse(format!("/actions/runs/{stuck}/attempts/1/jobs"), 502).times(3))
        .await;

    let (code, _, t) = import(dir.path(), "text").await;
    assert_eq!(code, 2, "{t}");
    assert!(t.contains(&format!("reading run {stuck}")), "{t}");
    assert!(t.contains("run the import again"), "{t}");
    assert!(
        t.contains("page 1: 100 runs") && t.contains("page 3: 21 runs"),
        "{t}"
    );
    // 3 pages + 15 runs × 3 calls + the refused one: the 41st call waited for the reset.
    assert!(
        t.contains("waiting") && t.contains("until its limit resets"),
        "{t}"
    );
    assert!(sim.rate_limited().await >= 1);

    let before = sim.requests().await.len();
    let (code, out, t) = import(dir.path(), "json").await;
    assert_eq!(code, 0, "{t}");
    let calls = api_calls(&sim, before).await;
    // The 15 stored runs are skipped: only the 6 left are read (jobs of both attempts, the log).
    let read_jobs = calls
        .iter()
        .filter(|c| c.contains("/attempts/1/jobs"))
        .count();
    assert_eq!(read_jobs, 6, "{calls:#?}");
    assert_eq!(calls.len(), 3 + 6 * 3, "{calls:#?}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let expected = json!({
        // Importing never switches the repository: it stays in the configured mode.
        "repository": REPO, "platform": "github", "mode": "act",
        "would_retry": 15, "confirmed": 12, "contradicted": 3,
        "withheld": 6, "missed": 2, "precision": 0.8, "median_minutes_to_rerun": 20.0,
    });
    for (k, want) in expected.as_object().unwrap() {
        assert_eq!(&v[k], want, "{k}: {v:#}");
    }
    assert!(v["since"].as_i64().is_some(), "{v:#}");

    // Once more: nothing new, nothing counted twice.
    let (code, out, t) = import(dir.path(), "text").await;
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("0 imported now, 21 imported before"), "{t}");
    assert!(out.contains("would re-run 15: 12 went green"), "{out}");
    assert!(out.contains("precision 0.80"), "{out}");
    assert!(out.contains("would withhold 6: 2 went green"), "{out}");
    assert!(out.contains("median 20 min"), "{out}");
}

#[tokio::test]
async fn import_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.args([
        "import",
        "--platform",
        "jenkins",
        "--repository",
        "folder/job",
    ]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not supported yet"), "{}", text(&out));
    let mut c = bin(dir.path());
    c.args(["import", "--platform", "github", "--repository", "../x?y"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("is not a github repository name"),
        "{}",
        text(&out)
    );
    let mut c = bin(dir.path());
    c.args(["import", "--platform", "nope", "--repository", "a/b"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("pipeguard.db").exists());
}

/// GitHub lists at most 1,000 runs per `created` filter (50 on this stand-in): past that the
/// import lists an older window, ending at the oldest run listed, and counts each run once.
#[tokio::test]
async fn import_splits_the_window_past_the_search_cap() {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(GithubConfig::default().search_cap(50))
        .await
        .unwrap();
    for i in 0..126u64 {
        let ago = Duration::from_secs(600 + i * 3 * 3600);
        let (spec, reruns) = if i % 21 == 5 {
            (failing("network", true), vec![20 * MIN])
        } else {
            (run(JobSpec::new("test")), vec![])
        };
        sim.add_past_run(spec, ago, &reruns).await.unwrap();
    }
    config(dir.path(), &sim);
    let (code, out, t) = import(dir.path(), "text").await;
    assert_eq!(code, 0, "{t}");
    // The 50 newest; then windows up to the oldest listed so far (an edge run listed again
    // counts once): 126 runs in 3 listings, each re-run one read once.
    assert!(t.contains("page 1: 50 runs, 3 to read"), "{t}");
    assert!(t.contains("page 3: ") && !t.contains("page 4: "), "{t}");
    assert!(
        out.contains("126 runs of the last 30 days read in 3 page(s), 6 to read; 6 imported now"),
        "{out}"
    );
    assert!(out.contains("would re-run 6: 6 went green"), "{out}");
    let lists: Vec<String> = api_calls(&sim, 0)
        .await
        .into_iter()
        .filter(|c| c.contains("/actions/runs?created="))
        .collect();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists[1].contains(".."), "{lists:#?}");
}
