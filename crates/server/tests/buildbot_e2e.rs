//! End to end against a real Buildbot master and worker (from `.venv-buildbot`, installed by
//! `.ci/setup-buildbot.sh`): Buildbot's own HttpStatusPush reporter posts to a pipeguard started
//! in-process, pipeguard reads the failed steps' logs through the REST API and rebuilds through
//! the data API. Skipped, with a message, only when the venv cannot import buildbot; under `CI`
//! that fails instead (see `tests/support/require.rs`).

mod common;
#[path = "../../../tests/support/require.rs"]
mod require;

use pipeguard_core::event::Platform;
use pipeguard_server::config::Config;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "bb-hook-secret";

fn venv_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-buildbot/bin")
}

fn buildbot_available() -> bool {
    Command::new(venv_bin().join("python"))
        .args(["-c", "import buildbot, buildbot_worker, buildbot_www"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the master and the worker however the test ends (SIGTERM, then SIGKILL).
struct Processes(Vec<(&'static str, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for (name, c) in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Ok(None) = c.try_wait() {
                eprintln!("{name} did not stop on SIGTERM: killing it");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    cmd.stdout(f.try_clone().unwrap())
        .stderr(f)
        .stdin(Stdio::null())
        .spawn()
        .expect("process starts")
}

/// A shell script as a Python string literal inside master.cfg.
fn py(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn master_cfg(dir: &Path, pb: u16, www: u16, hook: &str) -> String {
    let counter = dir.join("fetch-counter");
    let fetch_runs = dir.join("fetch-runs");
    let compile_runs = dir.join("compile-runs");
    // Fails the first time like a dropped download, succeeds once the counter file exists.
    let flaky = format!(
        "echo run >> '{runs}'; echo 'Downloading https://static.crates.io/crates/serde/serde-1.0.0.crate'; \
         if [ -e '{c}' ]; then echo 'fetched 12 crates'; exit 0; fi; touch '{c}'; \
         echo 'curl: (56) Recv failure: Connection reset by peer' >&2; exit 1",
        runs = fetch_runs.display(),
        c = counter.display()
    );
    let broken = format!(
        "echo run >> '{runs}'; echo '   Compiling app v0.1.0 (/build/app)'; \
         echo 'error[E0308]: mismatched types'; echo ' --> src/main.rs:4:18'; \
         echo '4 |     let x: u32 = \"five\";'; \
         echo 'error: could not compile `app` (bin \"app\") due to 1 previous error'; exit 101",
        runs = compile_runs.display()
    );
    format!(
        r#"from buildbot.plugins import reporters, schedulers, steps, util, worker
c = BuildmasterConfig = {{}}
c['workers'] = [worker.Worker('w1', 'pass')]
c['protocols'] = {{'pb': {{'port': 'tcp:{pb}:interface=127.0.0.1'}}}}
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['fetch-deps', 'compile'])]
def factory(name, script):
    return util.BuildFactory([steps.ShellCommand(name=name, command=['sh', '-c', script])])
c['builders'] = [
    util.BuilderConfig(name='fetch-deps', workernames=['w1'], factory=factory('cargo fetch', {flaky})),
    util.BuilderConfig(name='compile', workernames=['w1'], factory=factory('cargo build', {broken})),
]
c['services'] = [reporters.HttpStatusPush(serverUrl={hook}, auth=('buildbot', {secret}))]
c['title'] = 'pipeguard e2e'
c['buildbotURL'] = 'http://127.0.0.1:{www}/'
c['www'] = {{'port': 'tcp:{www}:interface=127.0.0.1', 'plugins': {{}}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['buildbotNetUsageData'] = None
"#,
        flaky = py(&flaky),
        broken = py(&broken),
        hook = py(hook),
        secret = py(SECRET),
    )
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/api/v2{path}", self.base))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn builds(&self, builderid: u64) -> Vec<Value> {
        self.get(&format!("/builders/{builderid}/builds?order=number"))
            .await["builds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

async fn find_session(
    http: &reqwest::Client,
    base: &str,
    builder: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let v: Value = http
            .get(format!("{base}/api/v1/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(s) = v["sessions"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["repository"] == builder).cloned())
        {
            if pred(&s) {
                let id = s["id"].as_str().unwrap().to_string();
                return http
                    .get(format!("{base}/api/v1/sessions/{id}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            }
            last = s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no session of {builder} reached the expected state; last: {last:#}");
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_buildbot_transient_failure_is_rebuilt_once_and_compile_error_escalated() {
    if !buildbot_available() {
        require::missing(&format!(
            "buildbot is not importable from {}; run .ci/setup-buildbot.sh",
            venv_bin().display()
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pb, www) = (free_port(), free_port());
    let api = Api {
        base: format!("http://127.0.0.1:{www}"),
        http: reqwest::Client::new(),
    };

    // pipeguard first: the reporter needs somewhere to post.
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.path().join("pipeguard.db").display()),
        ..Default::default()
    };
    cfg.healing.backoff_seconds = 0;
    cfg.worker.http_backoff_ms = 50;
    // Far beyond the test: the outcome must come from Buildbot's webhook, not from polling.
    cfg.worker.verify_poll_seconds = 600;
    cfg.platform_mut(Platform::Buildbot).api_url = api.base.clone();
    cfg.platform_mut(Platform::Buildbot).webhook_secret = Some(SECRET.into());
    let pg_http = common::admin_client(&cfg.database_url).await;
    let (base, shutdown, handle) = common::spawn(cfg).await;

    let bin = venv_bin();
    let master = dir.path().join("master");
    let wdir = dir.path().join("worker");
    let started = Instant::now();
    run(Command::new(bin.join("buildbot"))
        .args(["create-master", "-r"])
        .arg(&master));
    std::fs::write(
        master.join("master.cfg"),
        master_cfg(dir.path(), pb, www, &format!("{base}/webhooks/buildbot")),
    )
    .unwrap();
    run(Command::new(bin.join("buildbot-worker"))
        .arg("create-worker")
        .arg(&wdir)
        .args([&format!("127.0.0.1:{pb}"), "w1", "pass"]));
    let mut procs = Processes(Vec::new());
    procs.0.push((
        "buildbot master",
        spawn_logged(
            Command::new(bin.join("buildbot"))
                .args(["start", "--nodaemon"])
                .arg(&master),
            &dir.path().join("master.out"),
        ),
    ));
    procs.0.push((
        "buildbot worker",
        spawn_logged(
            Command::new(bin.join("buildbot-worker"))
                .args(["start", "--nodaemon"])
                .arg(&wdir),
            &dir.path().join("worker.out"),
        ),
    ));

    // Up when the worker is connected: builds would otherwise wait for it anyway.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = api
            .http
            .get(format!("{}/api/v2/workers", api.base))
            .send()
            .await;
        if let Ok(r) = up {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if v["workers"][0]["connected_to"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "buildbot did not come up; master log:\n{}",
            std::fs::read_to_string(master.join("twistd.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("buildbot master and worker up in {:?}", started.elapsed());

    let builders = api.get("/builders").await;
    let id_of = |name: &str| {
        builders["builders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()["builderid"]
            .as_u64()
            .unwrap()
    };
    let (fetch_id, compile_id) = (id_of("fetch-deps"), id_of("compile"));
    for builderid in [fetch_id, compile_id] {
        let r: Value = api
            .http
            .post(format!("{}/api/v2/forceschedulers/force", api.base))
            .json(&json!({"id": 1, "jsonrpc": "2.0", "method": "force",
                "params": {"builderid": builderid.to_string()}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(r.get("error").is_none(), "force build refused: {r}");
    }

    // (a) transient: rebuilt once, the rebuild goes green, healed.
    let healed = find_session(&pg_http, &base, "fetch-deps", |s| {
        s["status"] == "healed" || s["status"] == "escalated" || s["status"] == "failed"
    })
    .await;
    assert_eq!(healed["status"], "healed", "{healed:#}");
    assert_eq!(healed["platform"], "buildbot");
    assert_eq!(healed["heal_attempts"], 1);
    assert_eq!(healed["category"], "dependency_download", "{healed:#}");

    // (b) genuine: escalated with the compiler's lines as evidence.
    let escalated = find_session(&pg_http, &base, "compile", |s| s["status"] != "received").await;
    let escalated = if escalated["status"] == "escalated" {
        escalated
    } else {
        find_session(&pg_http, &base, "compile", |s| s["status"] == "escalated").await
    };
    assert_eq!(escalated["category"], "compilation_error", "{escalated:#}");
    let evidence: Vec<&str> = escalated["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        evidence
            .iter()
            .any(|t| t.contains("error[E0308]: mismatched types")),
        "evidence: {evidence:?}"
    );
    assert_eq!(escalated["heal_attempts"], 0);

    // Give a stray second rebuild time to show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetch_builds = api.builds(fetch_id).await;
    let compile_builds = api.builds(compile_id).await;
    assert_eq!(
        fetch_builds.len(),
        2,
        "exactly one rebuild: {fetch_builds:#?}"
    );
    assert_eq!(
        compile_builds.len(),
        1,
        "never rebuilt: {compile_builds:#?}"
    );
    assert_eq!(lines(&dir.path().join("fetch-runs")), 2);
    assert_eq!(lines(&dir.path().join("compile-runs")), 1);
    let (first, rebuild) = (&fetch_builds[0], &fetch_builds[1]);
    assert_eq!(first["results"], 2);
    assert_eq!(rebuild["results"], 0);

    // Time to green from Buildbot's own timestamps: the rebuild's end minus the failure's end.
    let failed_at = first["complete_at"].as_i64().unwrap();
    let green_at = rebuild["complete_at"].as_i64().unwrap();
    assert_eq!(
        healed["time_to_green_ms"].as_i64(),
        Some((green_at - failed_at) * 1000),
        "{healed:#}"
    );
    let rebuild_started = rebuild["started_at"].as_i64().unwrap();
    eprintln!(
        "buildbot: failed build complete_at={failed_at}, rebuild started_at={rebuild_started} → \
         failure to rebuild start {} s (Buildbot timestamps are whole seconds); time to green {} ms",
        rebuild_started - failed_at,
        healed["time_to_green_ms"]
    );
    // pipeguard's own clock: from the stored failure to the rebuild call.
    let t = healed["timeline"].as_array().cloned().unwrap_or_default();
    eprintln!("fetch-deps session timeline: {}", json!(t));
    assert!(rebuild_started - failed_at <= 10);

    // The same delivery again changes nothing; a wrong secret is refused.
    let http = reqwest::Client::new();
    let body = json!({"buildid": first["buildid"], "number": first["number"], "builderid": fetch_id,
        "complete": true, "results": 2, "builder": {"name": "fetch-deps"},
        "buildset": {"rebuilt_buildid": null}, "complete_at": failed_at});
    let again = http
        .post(format!("{base}/webhooks/buildbot"))
        .basic_auth("buildbot", Some(SECRET))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    let bad = http
        .post(format!("{base}/webhooks/buildbot"))
        .basic_auth("buildbot", Some("wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.builds(fetch_id).await.len(), 2);

    drop(procs);
    let _ = shutdown.send(true);
    handle.await.unwrap().unwrap();
}

/// The intake contract without a Buildbot: credentials, content type, malformed bodies.
#[tokio::test]
async fn buildbot_intake_rejects_bad_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.path().join("pipeguard.db").display()),
        ..Default::default()
    };
    cfg.platform_mut(Platform::Buildbot).webhook_secret = Some(SECRET.into());
    // Nothing listens here: a stored failure would fail to fetch logs, not reach anyone.
    cfg.platform_mut(Platform::Buildbot).api_url = format!("http://127.0.0.1:{}", free_port());
    let admin = common::admin_client(&cfg.database_url).await;
    let (base, shutdown, handle) = common::spawn(cfg).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/webhooks/buildbot");
    let started = json!({"buildid": 5, "number": 5, "builderid": 1, "complete": false,
        "results": null, "builder": {"name": "b"}});
    let post = |body: String, auth: Option<&'static str>, ct: &'static str| {
        let mut r = http.post(&url).header("content-type", ct).body(body);
        if let Some(p) = auth {
            r = r.basic_auth("buildbot", Some(p));
        }
        r.send()
    };
    let r = post(started.to_string(), None, "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post(started.to_string(), Some("wrong"), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post("{nope".into(), Some(SECRET), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    let r = post(started.to_string(), Some(SECRET), "text/plain")
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = post(
        "{\"complete\": true, \"buildid\": 5}".into(),
        Some(SECRET),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(started.to_string(), Some(SECRET), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ignored");
    let sessions: Value = admin
        .get(format!("{base}/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions["sessions"],
        json!([]),
        "nothing was stored as a session"
    );
    let _ = shutdown.send(true);
    handle.await.unwrap().unwrap();
}
