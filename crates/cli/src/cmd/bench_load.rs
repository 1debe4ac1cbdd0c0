//! `pipeguard bench load`: drives running servers with signed GitHub `workflow_run` failure
//! deliveries at a fixed concurrency, reports what intake sustained (accepted/s, latency, the
//! servers' CPU and peak memory), then checks that the database holds every delivery a server
//! accepted, one session per failed run and one analysis job per session.
//!
//! Every body is built and signed before the clock starts, so the generator spends its time
//! on HTTP only. Deliveries carry a run tag in their ids and repository names: runs against
//! the same database do not mix.

use super::bench_burst;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use pipeguard_core::stats;
use pipeguard_platforms::webhook::hmac_sha256_hex;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct LoadArgs {
    /// Base URL of a server; repeat for replicas (requests go round-robin).
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// The GitHub webhook secret the servers check signatures with.
    #[arg(long, env = "PIPEGUARD_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to drive the servers (less when the prepared deliveries run out first).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Deliveries prepared before the clock starts; at most this many are sent.
    #[arg(long, default_value_t = 40_000)]
    pub requests: usize,
    /// Percent of deliveries that resend a recent delivery with its id (a replay).
    #[arg(long, default_value_t = 0)]
    pub duplicates: u32,
    /// Percent of deliveries with a new id about a recent run (they join its session).
    #[arg(long, default_value_t = 0)]
    pub join: u32,
    /// Size of each body in KB.
    #[arg(long, default_value_t = 20)]
    pub body_kb: usize,
    /// A server process to measure (CPU time, peak RSS); repeat for replicas.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// The servers' database: afterwards every accepted delivery must be in it.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Repositories the runs are spread over.
    #[arg(long, default_value_t = 50)]
    pub repositories: usize,
    /// An outage: every delivery a new failure with the same registry error, sent at an even
    /// pace over `--duration`, about runs of a GitHub stand-in this command starts on
    /// `--stand-in-port` (the servers' GitHub API URL, their workers on). Afterwards the
    /// registry comes back and the held wave is followed until every session is final.
    #[arg(long, requires_all = ["stand_in_port", "database_url"])]
    pub burst: bool,
    #[arg(long)]
    pub stand_in_port: Option<u16>,
    /// The token the stand-in accepts (the servers' `PIPEGUARD_GITHUB_TOKEN`).
    #[arg(long, default_value = "ghs_bench")]
    pub stand_in_token: String,
    /// Seconds from the burst's start until the registry is back.
    #[arg(long, default_value_t = 90.0)]
    pub outage_seconds: f64,
    /// Seconds from the burst's start to wait at most for every session to be final.
    #[arg(long, default_value_t = 900.0)]
    pub settle_seconds: f64,
}

/// One signed body: a failed attempt of one run.
struct Body {
    bytes: Bytes,
    signature: String,
}

/// One delivery to send: which body, under which delivery id.
#[derive(Clone, Copy)]
struct Send {
    body: usize,
    delivery: usize,
}

struct Plan {
    tag: String,
    bodies: Vec<Body>,
    sends: Vec<Send>,
}

/// What one request got.
struct Sample {
    send: Send,
    micros: u32,
    /// 0 when the request got no HTTP answer.
    status: u16,
    session: Option<String>,
    created: bool,
}

/// A small deterministic generator, so every run sends the same mix.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

pub fn run(args: LoadArgs) -> Result<ExitCode> {
    if args.duplicates + args.join > 100 {
        bail!("--duplicates and --join add up to more than 100 percent");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(drive(args))
}

async fn drive(args: LoadArgs) -> Result<ExitCode> {
    let t = Instant::now();
    let tag = format!("{:x}", now_nanos() % 0xffff_ffff);
    let stand_in = match (args.burst, args.stand_in_port) {
        (true, Some(port)) => {
            let t = tag.clone();
            let repos = args.repositories;
            let s = bench_burst::prepare(
                port,
                &args.stand_in_token,
                args.requests,
                move |n| repository_name(&t, n, repos),
                &args.urls[0],
                &args.secret,
            )
            .await?;
            Some(s)
        }
        _ => None,
    };
    let run_id = |n: usize| match &stand_in {
        Some(s) => s.run_ids[n],
        None => 7_000_000_000 + n as u64,
    };
    let plan = Arc::new(plan(&args, tag, run_id));
    eprintln!(
        "prepared {} deliveries of {} runs ({} KB bodies) in {:.1} s; driving {} server(s) at concurrency {} for up to {} s",
        plan.sends.len(),
        plan.bodies.len(),
        plan.bodies.first().map_or(0, |b| b.bytes.len() / 1024),
        t.elapsed().as_secs_f64(),
        args.urls.len(),
        args.concurrency,
        args.duration
    );
    let cpu_before: Vec<f64> = args.pids.iter().map(|p| cpu_seconds(*p)).collect();
    let own_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let samples = send_all(&args, plan.clone()).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let burst = match (&stand_in, &args.database_url) {
        (Some(s), Some(url)) => {
            let settle = bench_burst::Settle {
                database_url: url,
                repos: format!("bench-{}/%", plan.tag),
                sessions: plan.bodies.len() as i64,
                started,
                outage: Duration::from_secs_f64(args.outage_seconds),
                limit: Duration::from_secs_f64(args.settle_seconds),
            };
            Some(bench_burst::settle(s, settle).await?)
        }
        _ => None,
    };
    let mut report = summarize(&plan, &samples, elapsed);
    report["generator_cpu_percent"] = json!(percent(
        cpu_seconds(std::process::id()) - own_before,
        elapsed
    ));
    report["servers"] = servers(&args.pids, &cpu_before, elapsed);
    let mut ok = report["errors"] == 0 && report["inconsistent_runs"] == 0;
    if let Some(b) = burst {
        ok &= b["ok"] == true;
        report["burst"] = b;
    }
    if let Some(url) = &args.database_url {
        let check = verify(url, &plan, &samples, args.burst).await?;
        ok &= check["lost"] == 0 && check["sessions_ok"] == true && check["jobs_ok"] == true;
        report["database"] = check;
    }
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bodies and the order deliveries go out in: new runs, and by the given percentages
/// replays of a recent delivery or new deliveries about a recent run (recent, so twins are
/// often in flight together).
fn plan(args: &LoadArgs, tag: String, run_id: impl Fn(usize) -> u64) -> Plan {
    // Failures of now: an incident counts the repositories failing within its window.
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "2026-11-23T10:04:00Z".into());
    let mut rng = Lcg(args.requests as u64 ^ 0x5eed);
    let mut sends: Vec<Send> = Vec::with_capacity(args.requests);
    let mut runs = 0usize;
    for i in 0..args.requests {
        let roll = rng.below(100) as u32;
        let back = |rng: &mut Lcg, n: usize| n - 1 - rng.below(n.min(32) as u64) as usize;
        let send = if roll < args.duplicates && i > 0 {
            sends[back(&mut rng, i)]
        } else if roll < args.duplicates + args.join && runs > 0 {
            Send {
                body: back(&mut rng, runs),
                delivery: i,
            }
        } else {
            runs += 1;
            Send {
                body: runs - 1,
                delivery: i,
            }
        };
        sends.push(send);
    }
    let bodies = (0..runs)
        .map(|n| {
            let full_name = repository_name(&tag, n, args.repositories);
            let body = workflow_run_body(&full_name, run_id(n), n, &now, args.body_kb * 1024);
            let bytes = Bytes::from(body);
            let signature = sign(args.secret.as_bytes(), &bytes);
            Body { bytes, signature }
        })
        .collect();
    Plan { tag, bodies, sends }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(secret, body))
}

fn repository_name(tag: &str, run: usize, repositories: usize) -> String {
    format!("bench-{tag}/repo-{}", run % repositories.max(1))
}

/// GitHub's repository object: what makes real deliveries large.
fn repository(full_name: &str) -> Value {
    let api = format!("https://api.github.com/repos/{full_name}");
    let mut repo = json!({
        "id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": full_name.split('/').nth(1), "full_name": full_name, "private": false,
        "html_url": format!("https://github.com/{full_name}"), "fork": false,
        "description": "A service that does things", "url": api,
        "owner": actor(full_name.split('/').next().unwrap_or("octo")),
    });
    for field in [
        "forks",
        "keys",
        "collaborators",
        "teams",
        "hooks",
        "issue_events",
        "events",
        "assignees",
        "branches",
        "tags",
        "blobs",
        "git_tags",
        "git_refs",
        "trees",
        "statuses",
        "languages",
        "stargazers",
        "contributors",
        "subscribers",
        "subscription",
        "commits",
        "git_commits",
        "comments",
        "issue_comment",
        "contents",
        "compare",
        "merges",
        "archive",
        "downloads",
        "issues",
        "pulls",
        "milestones",
        "notifications",
        "labels",
        "releases",
        "deployments",
    ] {
        repo[format!("{field}_url")] = json!(format!("{api}/{field}{{/id}}"));
    }
    repo
}

fn actor(login: &str) -> Value {
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": 21031067, "node_id": "MDQ6VXNlcjIxMDMxMDY3",
        "avatar_url": "https://avatars.githubusercontent.com/u/21031067?v=4",
        "url": api, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"), "type": "User", "site_admin": false
    })
}

/// A `workflow_run` completed/failure delivery of about `size` bytes, shaped like GitHub's:
/// run `n` of the tagged benchmark, finished `at`.
fn workflow_run_body(full_name: &str, run_id: u64, n: usize, at: &str, size: usize) -> Vec<u8> {
    let repo = repository(full_name);
    let runs = format!("https://api.github.com/repos/{full_name}/actions/runs/{run_id}");
    let mut body = json!({
        "action": "completed",
        "workflow_run": {
            "id": run_id, "name": "CI", "node_id": "WFR_kwLOAAAAAM4AAAAA", "run_number": 163,
            "run_attempt": 1, "event": "push", "status": "completed", "conclusion": "failure",
            "head_branch": "main", "head_sha": format!("{:040x}", n as u128 * 0x9e37_79b9_7f4a_7c15),
            "path": ".github/workflows/ci.yml", "display_title": "Bump dependencies",
            "workflow_id": 161335, "check_suite_id": 414944374, "pull_requests": [],
            "html_url": format!("https://github.com/{full_name}/actions/runs/{run_id}"),
            "created_at": at, "run_started_at": at, "updated_at": at, "url": runs,
            "jobs_url": format!("{runs}/jobs"), "logs_url": format!("{runs}/logs"),
            "check_suite_url": format!("{runs}/check-suite"), "artifacts_url": format!("{runs}/artifacts"),
            "cancel_url": format!("{runs}/cancel"), "rerun_url": format!("{runs}/rerun"),
            "actor": actor("octocat"), "triggering_actor": actor("octocat"),
            "head_commit": {"id": "3484a3fb816e0859fd6e1cea078d76385ff50625", "message": "",
                            "timestamp": "2026-11-23T09:59:58Z",
                            "author": {"name": "Octo Cat", "email": "octocat@github.com"}},
            "repository": repo.clone(), "head_repository": repo.clone(),
        },
        "repository": repo,
        "sender": actor("octocat"),
    });
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    if bytes.len() < size {
        // The commit message takes up the rest, as long messages do.
        let filler = "Update the lock file and the pinned actions. ".repeat(size / 45 + 1);
        body["workflow_run"]["head_commit"]["message"] = json!(filler[..size - bytes.len()]);
        bytes = serde_json::to_vec(&body).unwrap_or_default();
    }
    bytes
}

/// `concurrency` loops, each taking the next delivery until they run out or time is up.
async fn send_all(args: &LoadArgs, plan: Arc<Plan>) -> Result<Vec<Sample>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let urls: Arc<Vec<String>> = Arc::new(
        args.urls
            .iter()
            .map(|u| format!("{}/webhooks/github", u.trim_end_matches('/')))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    // A burst sends everything, each delivery at its place in an even pace.
    let pace = args
        .burst
        .then(|| Duration::from_secs_f64(args.duration) / plan.sends.len().max(1) as u32);
    let deadline = match pace {
        Some(_) => start + Duration::from_secs_f64(args.duration * 3.0 + 60.0),
        None => start + Duration::from_secs_f64(args.duration),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, urls, next, plan) = (client.clone(), urls.clone(), next.clone(), plan.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.sends.len() || Instant::now() >= deadline {
                    return out;
                }
                if let Some(p) = pace {
                    tokio::time::sleep_until((start + p * i as u32).into()).await;
                }
                out.push(send_one(&client, &urls[i % urls.len()], &plan, plan.sends[i]).await);
            }
        });
    }
    let mut samples = Vec::new();
    while let Some(r) = tasks.join_next().await {
        samples.extend(r.context("a load task panicked")?);
    }
    Ok(samples)
}

async fn send_one(client: &reqwest::Client, url: &str, plan: &Plan, send: Send) -> Sample {
    let body = &plan.bodies[send.body];
    let t = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "workflow_run")
        .header(
            "x-github-delivery",
            format!("{}-{}", plan.tag, send.delivery),
        )
        .header("x-hub-signature-256", &body.signature)
        .body(body.bytes.clone())
        .send()
        .await;
    let (status, answer) = match r {
        Ok(r) => (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        ),
        Err(_) => (0, Value::Null),
    };
    Sample {
        send,
        micros: t.elapsed().as_micros().min(u32::MAX as u128) as u32,
        status,
        session: answer["session_id"].as_str().map(str::to_string),
        // A twin is answered with its session's status, "received" too, and `duplicate`.
        created: answer["status"] == "received" && answer["duplicate"] != true,
    }
}

/// The latency percentile in milliseconds from sorted microseconds; 0 when nothing was measured.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    stats::percentile(sorted, p).map_or(0.0, |us| f64::from(us) / 1000.0)
}

fn percent(cpu_seconds: f64, elapsed: f64) -> f64 {
    (cpu_seconds / elapsed.max(1e-9) * 1000.0).round() / 10.0
}

/// Rates, latency and answers; a run answered with two different sessions is inconsistent.
fn summarize(plan: &Plan, samples: &[Sample], elapsed: f64) -> Value {
    let accepted: Vec<&Sample> = samples
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .collect();
    let mut lat: Vec<u32> = samples.iter().map(|s| s.micros).collect();
    lat.sort_unstable();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for s in samples {
        *statuses.entry(s.status).or_default() += 1;
    }
    let mut session_of: HashMap<usize, &str> = HashMap::new();
    let mut inconsistent = HashSet::new();
    for s in &accepted {
        if let Some(id) = s.session.as_deref() {
            if *session_of.entry(s.send.body).or_insert(id) != id {
                inconsistent.insert(s.send.body);
            }
        }
    }
    json!({
        "tag": plan.tag,
        "sent": samples.len(),
        "accepted": accepted.len(),
        "errors": samples.len() - accepted.len(),
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "created": accepted.iter().filter(|s| s.created).count(),
        "seconds": (elapsed * 100.0).round() / 100.0,
        "accepted_per_second": (accepted.len() as f64 / elapsed).round(),
        "latency_ms": {"p50": percentile(&lat, 0.50), "p90": percentile(&lat, 0.90),
                       "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0)},
        "inconsistent_runs": inconsistent.len(),
    })
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; the state (3rd) is fields[0].
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 102.4).round() / 10.0)
}

fn servers(pids: &[u32], cpu_before: &[f64], elapsed: f64) -> Value {
    pids.iter()
        .zip(cpu_before)
        .map(|(pid, before)| {
            json!({"pid": pid, "cpu_percent": percent(cpu_seconds(*pid) - before, elapsed),
                   "peak_rss_mb": peak_rss_mb(*pid)})
        })
        .collect()
}

/// Every accepted delivery id is stored; each accepted run has exactly one session with
/// exactly one analysis job (at least one with the worker healing: a failed re-run is
/// diagnosed again), and a server said "received" for exactly those sessions.
async fn verify(url: &str, plan: &Plan, samples: &[Sample], healing: bool) -> Result<Value> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let stored: HashSet<String> = sqlx::query_scalar(
        "SELECT delivery_id FROM deliveries WHERE platform = 'github' AND delivery_id LIKE $1",
    )
    .bind(format!("{}-%", plan.tag))
    .fetch_all(&pool)
    .await?
    .into_iter()
    .collect();
    let repos = format!("bench-{}/%", plan.tag);
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE repository LIKE $1")
            .bind(&repos)
            .fetch_one(&pool)
            .await?;
    let jobs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs j JOIN sessions s ON s.id = j.session_id \
         WHERE s.repository LIKE $1 AND j.kind = 'analyze'",
    )
    .bind(&repos)
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let accepted: Vec<&Sample> = samples
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .collect();
    let ids: HashSet<String> = accepted
        .iter()
        .map(|s| format!("{}-{}", plan.tag, s.send.delivery))
        .collect();
    let runs: HashSet<usize> = accepted.iter().map(|s| s.send.body).collect();
    // A replay of the delivery that created a session is answered "received" again.
    let created = accepted
        .iter()
        .filter(|s| s.created)
        .map(|s| s.send.delivery)
        .collect::<HashSet<_>>()
        .len() as i64;
    Ok(json!({
        "accepted_deliveries": ids.len(),
        "stored_deliveries": stored.len(),
        "lost": ids.iter().filter(|id| !stored.contains(*id)).count(),
        "sessions": sessions,
        "expected_sessions": runs.len(),
        "sessions_ok": sessions == runs.len() as i64 && sessions == created,
        "analyze_jobs": jobs,
        "jobs_ok": jobs == sessions || (healing && jobs >= sessions),
    }))
}

fn print_report(r: &Value) {
    println!(
        "sent {} in {} s: {} accepted ({}/s), {} errors {}",
        r["sent"],
        r["seconds"],
        r["accepted"],
        r["accepted_per_second"],
        r["errors"],
        r["statuses"]
    );
    let l = &r["latency_ms"];
    println!(
        "latency ms: p50 {}  p90 {}  p99 {}  max {}",
        l["p50"], l["p90"], l["p99"], l["max"]
    );
    for s in r["servers"].as_array().into_iter().flatten() {
        println!(
            "server pid {}: CPU {} %, peak RSS {} MB",
            s["pid"], s["cpu_percent"], s["peak_rss_mb"]
        );
    }
    println!("generator CPU {} %", r["generator_cpu_percent"]);
    if let Some(d) = r.get("database") {
        println!(
            "database: {} of {} accepted deliveries stored (lost {}), sessions {} (expected {}), analysis jobs {}",
            d["stored_deliveries"], d["accepted_deliveries"], d["lost"], d["sessions"],
            d["expected_sessions"], d["analyze_jobs"]
        );
    }
    if let Some(b) = r.get("burst") {
        println!(
            "burst: settled (every session held or final) {} s after the start; {} re-runs \
             ({} canaries, {} into the outage), at most {} in flight during the outage; outage \
             over at {} s with {} held; all final at {} s: the wave took {} s ({} per minute); {}",
            b["settled_seconds"],
            b["reruns"],
            b["canaries"],
            b["reruns_into_outage"],
            b["in_flight_max_during_outage"],
            b["outage_seconds"],
            b["held_when_outage_ended"],
            b["drained_seconds"],
            b["wave_seconds"],
            b["wave_per_minute"],
            b["sessions_by_status"]
        );
    }
    if r["inconsistent_runs"] != 0 {
        println!(
            "{} runs were answered with two different sessions",
            r["inconsistent_runs"]
        );
    }
}
