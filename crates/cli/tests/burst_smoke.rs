//! The outage burst, small: the debug binary's server (worker on) against `pipeguard bench
//! load --burst` — 500 failures of one registry error from 20 repositories in 10 s, the
//! registry back after 20 s. Nothing is lost, every session is held or final, only canaries
//! re-run into the outage, and the wave heals every one, each re-run once, although each
//! repository has 25 held failures and a budget of 5 re-runs an hour. The bench's own p99 is
//! printed, not asserted (timings on a loaded machine are not a test).

mod common;

use common::{bin, free_port, Served};
use serde_json::Value;

const SECRET: &str = "burst-smoke";
const FAILURES: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_outage_failures_is_held_probed_and_healed_in_one_wave() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeguard.toml");
    // Canaries every 2-4 s; 25 failures a repository against a budget of 5 an hour: the wave
    // must not be cut by it. The global budget is opened so the wave is not waiting an hour.
    std::fs::write(
        &config,
        "[healing]\nbudget_per_hour = 100000\nbudget_per_repository_per_hour = 5\n\
         backoff_seconds = 1\n[incidents]\ncanary_seconds = 2\ncanary_max_seconds = 4\n\
         release_per_minute = 3000\n[worker]\nverify_poll_seconds = 1\n",
    )
    .unwrap();
    let stand_in = free_port();
    let api = format!("http://127.0.0.1:{stand_in}");
    let server = Served::start_with(
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &[
            ("PIPEGUARD_GITHUB_WEBHOOK_SECRET", SECRET),
            ("PIPEGUARD_GITHUB_TOKEN", "ghs_bench"),
            ("PIPEGUARD_GITHUB_API_URL", &api),
            ("PIPEGUARD_WORKER_ENABLED", "true"),
        ],
    );
    let (base, db) = (server.base.clone(), server.db.clone());

    let json = dir.path().join("burst.json");
    let port_arg = stand_in.to_string();
    let mut bench = tokio::process::Command::from(bin(dir.path()));
    let out = bench
        .args(["bench", "load", "--burst", "--url", &base])
        .args(["--stand-in-port", &port_arg, "--database-url", &db])
        .args([
            "--requests",
            "500",
            "--duration",
            "10",
            "--repositories",
            "20",
        ])
        .args([
            "--outage-seconds",
            "20",
            "--settle-seconds",
            "100",
            "--body-kb",
            "2",
        ])
        .args(["--concurrency", "16", "--json"])
        .arg(&json)
        .env("PIPEGUARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = match std::fs::read_to_string(&json) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(e) => panic!(
            "no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    println!("{stdout}");
    println!("burst smoke: intake p99 {} ms", r["latency_ms"]["p99"]);
    let (d, b) = (&r["database"], &r["burst"]);
    assert_eq!(r["errors"], 0, "{r:#}");
    assert_eq!(d["lost"], 0, "{r:#}");
    assert_eq!(d["sessions"], FAILURES, "{r:#}");
    assert!(
        b["settled_seconds"].is_number(),
        "never all held or final: {r:#}"
    );
    // A handful of canaries probed the outage; nothing else re-ran into it.
    let canaries = b["canaries"].as_i64().expect("an incident opened");
    assert!(canaries >= 1, "{r:#}");
    assert!(
        b["reruns_into_outage"].as_i64().unwrap() <= canaries,
        "{r:#}"
    );
    // The wave healed every one, each re-run once (the failed canaries' probes aside), none
    // handed to people for the repositories' budget.
    let mut healed = serde_json::Map::new();
    healed.insert("healed".into(), FAILURES.into());
    assert_eq!(b["sessions_by_status"], Value::Object(healed), "{r:#}");
    assert_eq!(
        b["reruns"].as_i64().unwrap(),
        FAILURES + canaries - 1,
        "{r:#}"
    );
    assert!(out.status.success(), "{stdout}");
}
