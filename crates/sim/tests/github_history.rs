//! The GitHub stand-in's history (past runs with attempts a person re-ran, paged listings, the
//! rate limit) read through pipeguard's own history reader, with the calls it costs counted.

use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::{github, Cursor, History, PlatformError};
use pipeguard_sim::github::{GithubConfig, GithubSim};
use pipeguard_sim::{logs, JobSpec, RunSpec};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn reader(sim: &GithubSim) -> github::GithubClient {
    github::GithubClient::new(
        &Section {
            api_url: sim.base_url(),
            token: Some("sim-github-token".into()),
            ..Default::default()
        },
        &HttpOptions {
            tries: 1,
            max_inline_wait: Duration::ZERO,
            ..Default::default()
        },
    )
}

fn network_then(green: bool) -> RunSpec {
    let log = logs::sample("network").unwrap().log;
    let test = JobSpec::new("test").needs(&["build"]).fails(log);
    let test = if green {
        test.passes()
    } else {
        test.fails(log)
    };
    RunSpec::new("octo/app", "ci.yml")
        .job(JobSpec::new("build"))
        .job(test)
        .job(JobSpec::new("deploy").needs(&["test"]))
}

fn since(days: i64) -> i64 {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days)).unix_timestamp() * 1000
}

#[tokio::test]
async fn past_runs_list_in_pages_and_a_rerun_tells_its_outcome() {
    let sim = GithubSim::start(GithubConfig::default()).await.unwrap();
    for i in 0..150u32 {
        let spec = RunSpec::new("octo/app", "ci.yml").job(JobSpec::new("test"));
        sim.add_past_run(spec, HOUR * (i + 2), &[]).await.unwrap();
    }
    let healed = sim
        .add_past_run(network_then(true), HOUR, &[Duration::from_secs(25 * 60)])
        .await
        .unwrap();
    let twice = Duration::from_secs(300);
    let failed_again = sim
        .add_past_run(network_then(false), 3 * HOUR / 2, &[twice, twice])
        .await
        .unwrap();
    // Older than the window asked for: not listed.
    sim.add_past_run(network_then(true), HOUR * 24 * 20, &[HOUR])
        .await
        .unwrap();

    let r = reader(&sim);
    let p1 = r
        .page("octo/app", since(10), &Cursor::first())
        .await
        .unwrap();
    assert_eq!(p1.listed.len(), 100);
    let next = p1.next.clone().unwrap();
    assert_eq!((next.page, next.until.as_deref()), (2, None));
    let ids: Vec<&str> = p1.runs.iter().map(|x| x.event.run_id.as_str()).collect();
    assert_eq!(ids, [healed.to_string(), failed_again.to_string()]);
    assert_eq!((p1.runs[0].attempts, p1.runs[1].attempts), (2, 3));
    let p2 = r.page("octo/app", since(10), &next).await.unwrap();
    assert_eq!((p2.listed.len(), p2.next, p2.runs.len()), (52, None, 0));

    let f = r.failure(&p1.runs[0]).await.unwrap().unwrap();
    assert!(f.green);
    assert_eq!(f.event.attempt, 1);
    assert_eq!(f.rerun_at_ms - f.failed_at_ms, 25 * 60 * 1000);
    assert_eq!(f.logs.len(), 1);
    assert_eq!(f.logs[0].job.name, "test");
    let log = String::from_utf8_lossy(&f.logs[0].log);
    assert!(log.contains("Connection reset by peer"), "{log}");
    // The second attempt re-ran `test` and `deploy` (it needs `test`); `build` kept its result.
    let jobs = sim.attempt_jobs(healed, 2).await;
    let again: Vec<(&str, u32)> = jobs
        .iter()
        .map(|j| (j.name.as_str(), j.run_attempt))
        .collect();
    assert_eq!(again, [("build", 1), ("test", 2), ("deploy", 2)]);

    // Compared with the attempt right after the first failure, not the last one.
    let f = r.failure(&p1.runs[1]).await.unwrap().unwrap();
    assert!(!f.green);
    assert_eq!(f.rerun_at_ms - f.failed_at_ms, 300_000);
}

#[tokio::test]
async fn the_rate_limit_says_when_it_resets_and_the_calls_per_run_are_counted() {
    let limited = GithubConfig::default().rate_limit(4, Duration::from_secs(2));
    let sim = GithubSim::start(limited).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..3u32 {
        let gap = [Duration::from_secs(60)];
        runs.push(
            sim.add_past_run(network_then(true), HOUR * (i + 1), &gap)
                .await
                .unwrap(),
        );
    }
    let r = reader(&sim);
    let page = r
        .page("octo/app", since(30), &Cursor::first())
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 3);
    // One run: its first attempt's jobs, the failed job's log, the next attempt's jobs.
    let before = sim.requests().await.len();
    r.failure(&page.runs[0]).await.unwrap().unwrap();
    let calls: Vec<String> = sim.requests().await[before..]
        .iter()
        .map(|q| q.path().to_string())
        .collect();
    let run = runs[0];
    let log = format!(
        "/repos/octo/app/actions/jobs/{}/logs",
        sim.attempt_jobs(run, 1).await[1].id
    );
    assert_eq!(
        calls,
        [
            format!("/repos/octo/app/actions/runs/{run}/attempts/1/jobs"),
            log,
            format!(
                "/_blobs/github/jobs/{}/log",
                sim.attempt_jobs(run, 1).await[1].id
            ),
            format!("/repos/octo/app/actions/runs/{run}/attempts/2/jobs"),
        ]
    );
    // The 5th API call finds the limit used up: GitHub's 403 with the reset, handed back.
    match r.failure(&page.runs[1]).await {
        Err(PlatformError::Busy { retry_after, .. }) => {
            assert!(retry_after <= Duration::from_secs(2), "{retry_after:?}")
        }
        other => panic!("expected the rate limit, got {other:?}"),
    }
    assert_eq!(sim.rate_limited().await, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(r.failure(&page.runs[1]).await.unwrap().unwrap().green);
}
