//! The host loop of `pipeguard ansible` against the real ansible-core and a stand-in
//! OpenAI-compatible model: diagnose on the host, fix, verify, roll back, retry, canary
//! first. Each inventory host is `ansible_connection=local` with its own directory tree
//! (`hosts/NAME/`) standing in for its filesystem.
//!
//! ansible-core comes from `.ci/setup-ansible.sh` or `PIPEGUARD_ANSIBLE_PLAYBOOK`; without it
//! every scenario is skipped with a message, and fails under `CI`.

#[macro_use]
#[path = "common/ansible.rs"]
mod ansible_support;
#[path = "../../../tests/support/require.rs"]
mod require;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// What the stand-in model answers.
#[derive(Clone, Copy)]
enum Model {
    /// Round 1: a diagnostic; round 2 (having seen "No such file"): mkdir, test -d.
    Diagnose,
    /// mkdir, test -d, no diagnostic.
    Fix,
    /// Deletes the data directory.
    Destroy,
    /// mkdir, then a verification that fails, and a rollback.
    FailingVerification,
    /// Round 1: `service queue status`; round 2 (having seen "stopped"): start it.
    StoppedService,
    /// Round 1: `du` of the host's pip cache and data; round 2 (having seen the cache's
    /// size): purge the cache, verify the volume is under its budget.
    FullDisk,
}

/// The stand-in model's answer as an OpenAI-compatible completion.
fn completion(category: &str, cause: &str, cmds: [Vec<String>; 4]) -> ResponseTemplate {
    let [diag, fix, verify, rollback] = cmds;
    let content = json!({
        "category": category,
        "root_cause": cause,
        "confidence": 0.8,
        "diagnostic_commands": diag,
        "fix_commands": fix,
        "verification_commands": verify,
        "rollback_commands": rollback,
    });
    ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 200}
    }))
}

/// The word after `marker` in the prompt.
fn after(prompt: &str, marker: &str) -> String {
    prompt
        .split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("/nonexistent")
        .to_string()
}

fn v(cmds: &[String]) -> Vec<String> {
    cmds.to_vec()
}

/// The stopped-service and full-disk scenarios: the model reads the diagnostics' output.
fn answer_host(model: Model, prompt: &str) -> ResponseTemplate {
    let second_round = prompt.contains("diagnostic commands pipeguard ran on the host");
    match model {
        Model::StoppedService if !second_round => completion(
            "service_unavailable",
            "The worker cannot reach the queue; is the queue service running?",
            [v(&["service queue status".into()]), vec![], vec![], vec![]],
        ),
        Model::StoppedService if prompt.contains("queue is stopped") => completion(
            "service_unavailable",
            "The queue service is stopped.",
            [
                vec![],
                v(&["service queue start".into()]),
                v(&["service queue status".into()]),
                v(&["service queue stop".into()]),
            ],
        ),
        Model::FullDisk => {
            // `volume ROOT/var holds …`
            let var = after(prompt, "volume ");
            let cache = format!("{var}/cache/pip");
            // The cache's line of `du -sk` ("| 2056\t/…/var/cache/pip"), once it ran.
            let cache_kib = prompt
                .lines()
                .filter(|l| l.trim_end().ends_with(&cache))
                .find_map(|l| {
                    let l = l.trim_start_matches(['|', ' ']);
                    l.split_whitespace().next()?.parse::<u64>().ok()
                });
            match cache_kib {
                None if !second_round => completion(
                    "disk_full",
                    format!("The volume {var} is over its budget; what fills it?").as_str(),
                    [
                        v(&[format!("du -sk {cache} {var}/lib/app")]),
                        vec![],
                        vec![],
                        vec![],
                    ],
                ),
                Some(k) if k >= 1024 => completion(
                    "disk_full",
                    format!("The pip cache {cache} holds {k} KiB.").as_str(),
                    [
                        vec![],
                        v(&[format!("pip cache purge --cache-dir {cache}")]),
                        v(&[format!("test $(du -sk {var} | cut -f1) -le 1024")]),
                        vec![],
                    ],
                ),
                _ => completion("disk_full", "unclear", [vec![], vec![], vec![], vec![]]),
            }
        }
        _ => completion("unknown", "unclear", [vec![], vec![], vec![], vec![]]),
    }
}

/// The answer for one request, reading the failing host's directory from the prompt.
fn answer(model: Model, req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let prompt = body["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let dir = prompt
        .split("configuration directory ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("/nonexistent")
        .to_string();
    let root = dir.trim_end_matches("/etc/app").to_string();
    if matches!(model, Model::StoppedService | Model::FullDisk) {
        return answer_host(model, &prompt);
    }
    let second_round = prompt.contains("diagnostic commands pipeguard ran on the host");
    let (diag, fix, verify, rollback): (Vec<String>, Vec<String>, Vec<String>, Vec<String>) =
        match model {
            Model::Diagnose if !second_round => {
                (vec![format!("ls -ld {root}/etc")], vec![], vec![], vec![])
            }
            Model::Diagnose if prompt.contains("No such file or directory") => (
                vec![],
                vec![format!("mkdir -p {dir}")],
                vec![format!("test -d {dir}")],
                vec![format!("rmdir {dir}")],
            ),
            Model::Diagnose => (vec![], vec![], vec![], vec![]),
            Model::Fix => (
                vec![],
                vec![format!("mkdir -p {dir}")],
                vec![format!("test -d {dir}")],
                vec![],
            ),
            Model::Destroy => (
                vec![],
                vec![format!(
                    "rm -rf {root}/var/lib/postgresql /var/lib/postgresql"
                )],
                vec![format!("test -d {dir}")],
                vec![],
            ),
            Model::FailingVerification => (
                vec![],
                vec![format!("mkdir -p {dir}")],
                vec![format!("test -f {dir}/app.conf")],
                vec![format!("rmdir {dir}")],
            ),
            Model::StoppedService | Model::FullDisk => unreachable!("answered above"),
        };
    completion(
        "configuration_error",
        &format!("The configuration directory {dir} does not exist."),
        [diag, fix, verify, rollback],
    )
}

async fn model(m: Model) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(move |req: &Request| answer(m, req))
        .mount(&server)
        .await;
    server
}

struct Fleet {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Fleet {
    /// Hosts with their trees, an app that needs `ROOT/etc/app`, and a playbook starting it.
    fn new(bin: PathBuf, hosts: &[&str]) -> Fleet {
        Fleet::with_app(
            bin,
            hosts,
            "[ -d \"$root/etc/app\" ] || { echo \"app: configuration directory $root/etc/app is missing\" >&2; exit 3; }\necho started",
        )
    }
    /// Hosts with their trees and a playbook running `app.sh ROOT`, whose body (after
    /// `root="$1"`) is `app`. `FLEET/bin` comes first in the hosts' PATH (stand-in tools).
    fn with_app(bin: PathBuf, hosts: &[&str], app: &str) -> Fleet {
        let f = Fleet {
            dir: tempfile::tempdir().unwrap(),
            bin,
        };
        let py = f.bin.with_file_name("python");
        let mut inv = String::new();
        for h in hosts {
            let root = f.root(h);
            std::fs::create_dir_all(&root).unwrap();
            inv.push_str(&format!(
                "{h} ansible_connection=local ansible_python_interpreter={} root={}\n",
                py.display(),
                root.display()
            ));
        }
        std::fs::write(f.path("inventory.ini"), inv).unwrap();
        std::fs::create_dir_all(f.path("bin")).unwrap();
        let script = f.path("app.sh");
        std::fs::write(&script, format!("#!/bin/sh\nroot=\"$1\"\n{app}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            f.path("site.yml"),
            format!(
                "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: start the app\n      ansible.builtin.command:\n        argv: [\"{}\", \"{{{{ root }}}}\"]\n      changed_when: false\n",
                script.display()
            ),
        )
        .unwrap();
        f
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn root(&self, host: &str) -> PathBuf {
        self.path(&format!("hosts/{host}"))
    }
    fn conf(&self, host: &str) -> PathBuf {
        self.root(host).join("etc/app")
    }
    async fn run(&self, server: &MockServer, extra: &[&str]) -> Output {
        self.run_with(Some(server), false, extra).await
    }
    /// Run with or without a model, and with the fleet's hosts database or none.
    async fn run_with(
        &self,
        server: Option<&MockServer>,
        database: bool,
        extra: &[&str],
    ) -> Output {
        let mut c = self.command(server, database, extra);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        eprintln!("--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }
    fn command(
        &self,
        server: Option<&MockServer>,
        database: bool,
        extra: &[&str],
    ) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pipeguard"));
        c.current_dir(self.dir.path())
            .args([
                "ansible",
                "site.yml",
                "-i",
                "inventory.ini",
                "--report",
                "report.json",
            ])
            .arg(if database {
                "--database-url=sqlite://hosts.db"
            } else {
                "--no-database"
            })
            .args(extra)
            .env("PIPEGUARD_ANSIBLE_PLAYBOOK", &self.bin)
            .env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0")
            .env_remove("PIPEGUARD_LLM_URL")
            .env_remove("PIPEGUARD_LLM_MODEL")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.path("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.path(".ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.path(".ansible-tmp"))
            .env_remove("PIPEGUARD_URL")
            .env_remove("PIPEGUARD_LLM_API_KEY");
        if let Some(server) = server {
            c.env("PIPEGUARD_LLM_URL", format!("{}/v1", server.uri()))
                .env("PIPEGUARD_LLM_MODEL", "stand-in");
        }
        c
    }
    fn report(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("report.json")).unwrap()).unwrap()
    }
    fn session(&self) -> Value {
        let dir = self.path(".pipeguard/sessions");
        let s = std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        serde_json::from_str(&std::fs::read_to_string(s.join("session.json")).unwrap()).unwrap()
    }
    /// `(kind, limit)` of every ansible-playbook run.
    fn runs(&self) -> Vec<(String, String)> {
        self.session()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    r["limit"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

async fn prompts(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["messages"][1]["content"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_configuration_directory_is_diagnosed_fixed_verified_and_retried() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    let server = model(Model::Diagnose).await;
    let out = fleet.run(&server, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(fleet.conf("web1").is_dir());

    let r = fleet.report();
    let h = &r["hosts"]["web1"];
    assert_eq!(h["outcome"], "healed", "{r:#}");
    assert_eq!(h["diagnosis"]["source"], "model");
    assert_eq!(h["diagnosis"]["category"], "configuration_error");
    // Real facts, gathered because the playbook did not, and given to the model.
    assert!(h["facts"]["os_family"].is_string(), "{h}");
    let d = &h["diagnostics"][0];
    assert_eq!(
        d["command"],
        format!("ls -ld {}/etc", fleet.root("web1").display())
    );
    assert_eq!(
        (d["risk"].as_str(), d["exit_code"].as_i64()),
        (Some("low"), Some(2))
    );
    assert!(d["output"]
        .as_str()
        .unwrap()
        .contains("No such file or directory"));
    let fix = &h["fixes"][0];
    assert_eq!(
        fix["command"],
        format!("mkdir -p {}", fleet.conf("web1").display())
    );
    assert_eq!(
        (fix["ran"].as_bool(), fix["exit_code"].as_i64()),
        (Some(true), Some(0))
    );
    assert_eq!(h["verification"][0]["exit_code"], 0);
    assert_eq!(h["rollback"], json!([]));
    assert_eq!(r["order"], json!(["web1"]));

    // The diagnostic's output went back to the model for a second round, with the facts.
    let p = prompts(&server).await;
    assert_eq!(p.len(), 2);
    assert!(!p[0].contains("diagnostic commands pipeguard ran"));
    assert!(
        p[1].contains("$ ls -ld") && p[1].contains("No such file or directory"),
        "{}",
        p[1]
    );
    assert!(p[0].contains("package manager"), "{}", p[0]);
    // The task was retried on that host only after the verification passed.
    let runs = fleet.runs();
    assert_eq!(
        runs.last().unwrap(),
        &("playbook".to_string(), "web1".to_string())
    );
    assert_eq!(fleet.session()["outcome"], "healed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_proposing_rm_rf_of_a_data_directory_is_refused_and_escalated() {
    let fleet = Fleet::new(require_ansible!(), &["db1"]);
    let data = fleet.root("db1").join("var/lib/postgresql/16/main");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("PG_VERSION"), "16\n").unwrap();
    let server = model(Model::Destroy).await;
    let out = fleet.run(&server, &["--approve-medium"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(data.join("PG_VERSION")).unwrap(),
        "16\n"
    );

    let h = &fleet.report()["hosts"]["db1"];
    assert_eq!(h["outcome"], "escalated", "{h:#}");
    let fix = &h["fixes"][0];
    assert!(fix["command"].as_str().unwrap().starts_with("rm -rf "));
    assert_eq!(
        (fix["risk"].as_str(), fix["ran"].as_bool()),
        (Some("refused"), Some(false))
    );
    assert_eq!(fix["exit_code"], Value::Null);
    assert_eq!(h["verification"], json!([]));
    assert!(h["reason"].as_str().unwrap().contains("was not run"), "{h}");
    // Nothing was retried.
    assert_eq!(fleet.runs().iter().filter(|r| r.0 == "playbook").count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ESCALATED db1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_whose_verification_fails_is_rolled_back_and_escalated() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    let server = model(Model::FailingVerification).await;
    // The rollback (`rmdir`) is medium risk: approved here.
    let out = fleet.run(&server, &["--approve-medium"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !fleet.conf("web1").exists(),
        "the rollback removed what the fix made"
    );

    let h = &fleet.report()["hosts"]["web1"];
    assert_eq!(h["outcome"], "escalated", "{h:#}");
    assert_eq!(h["fixes"][0]["exit_code"], 0);
    assert_eq!(h["verification"][0]["exit_code"], 1);
    let rb = &h["rollback"][0];
    assert_eq!(
        rb["command"],
        format!("rmdir {}", fleet.conf("web1").display())
    );
    assert_eq!(
        (
            rb["risk"].as_str(),
            rb["ran"].as_bool(),
            rb["exit_code"].as_i64()
        ),
        (Some("medium"), Some(true), Some(0))
    );
    assert!(h["reason"]
        .as_str()
        .unwrap()
        .contains("verification failed"));
    assert_eq!(
        fleet.runs().iter().filter(|r| r.0 == "playbook").count(),
        1,
        "no retry without verification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_approval_a_medium_rollback_does_not_run() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    let server = model(Model::FailingVerification).await;
    let out = fleet.run(&server, &[]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        fleet.conf("web1").is_dir(),
        "the medium rollback waited for approval"
    );
    let rb = &fleet.report()["hosts"]["web1"]["rollback"][0];
    assert_eq!(rb["ran"], false);
    assert!(
        rb["note"].as_str().unwrap().contains("--approve-medium"),
        "{rb}"
    );
    let reason = fleet.report()["hosts"]["web1"]["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("NOT fully rolled back"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_on_three_hosts_heals_a_canary_first_then_the_batch() {
    let hosts = ["web1", "web2", "web3"];
    let fleet = Fleet::new(require_ansible!(), &hosts);
    let server = model(Model::Fix).await;
    let out = fleet.run(&server, &["--batch", "2"]).await;
    assert_eq!(out.status.code(), Some(0));
    let r = fleet.report();
    assert_eq!(r["order"], json!(hosts));
    for h in hosts {
        assert!(fleet.conf(h).is_dir());
        assert_eq!(r["hosts"][h]["outcome"], "healed", "{r:#}");
    }
    // The canary was retried alone before the batch was touched.
    let retries: Vec<String> = fleet
        .runs()
        .into_iter()
        .filter(|(k, l)| k == "playbook" && !l.is_empty())
        .map(|(_, l)| l)
        .collect();
    assert_eq!(retries, ["web1", "web2,web3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verification_on_the_canary_leaves_the_other_hosts_untouched() {
    let hosts = ["web1", "web2", "web3"];
    let fleet = Fleet::new(require_ansible!(), &hosts);
    let server = model(Model::FailingVerification).await;
    let out = fleet.run(&server, &["--approve-medium"]).await;
    assert_ne!(out.status.code(), Some(0));
    let r = fleet.report();
    assert_eq!(r["hosts"]["web1"]["outcome"], "escalated", "{r:#}");
    for h in ["web2", "web3"] {
        assert_eq!(r["hosts"][h]["outcome"], "untouched", "{r:#}");
        assert_eq!(r["hosts"][h]["fixes"], json!([]));
        assert!(!fleet.conf(h).exists());
    }
    assert_eq!(r["order"][0], "web1");
    // Only the canary's failure was sent to the model.
    let p = prompts(&server).await;
    assert_eq!(p.len(), 1);
    assert!(p[0].contains(&fleet.conf("web1").display().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_healed_a_failure_is_offered_to_the_model_first_next_time() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    let server = model(Model::Fix).await;
    let out = fleet.run_with(Some(&server), true, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    let p = prompts(&server).await;
    assert!(
        p[0].contains("earlier fixes that healed this failure: none"),
        "{}",
        p[0]
    );
    assert!(
        !fleet.path(".pipeguard/hostloop-learned.json").exists(),
        "kept in the hosts database"
    );
    // The same failure again on the same kind of host.
    std::fs::remove_dir(fleet.conf("web1")).unwrap();
    let out = fleet.run_with(Some(&server), true, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    let p = prompts(&server).await;
    let offered = format!(
        "fixes [mkdir -p {}] healed it 1 time(s)",
        fleet.conf("web1").display()
    );
    assert!(
        p.last().unwrap().contains(&offered),
        "{}",
        p.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_heal_is_replayed_without_a_model_and_verified_again() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    // Without a model and with nothing learned, the failure is escalated.
    let out = fleet.run_with(None, true, &[]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(!fleet.conf("web1").exists());

    let server = model(Model::Fix).await;
    assert_eq!(
        fleet.run_with(Some(&server), true, &[]).await.status.code(),
        Some(0)
    );
    let asked = prompts(&server).await.len();

    // The same failure, now without a model: the learned fix and its verification run.
    std::fs::remove_dir(fleet.conf("web1")).unwrap();
    let out = fleet.run_with(None, true, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(fleet.conf("web1").is_dir());
    assert_eq!(prompts(&server).await.len(), asked, "no model was asked");
    let h = &fleet.report()["hosts"]["web1"];
    assert_eq!(h["outcome"], "healed", "{h:#}");
    assert_eq!(h["diagnosis"]["source"], "learned");
    assert!(
        h["diagnosis"]["reason"]
            .as_str()
            .unwrap()
            .contains("healed 1 time(s)"),
        "{h}"
    );
    let conf = fleet.conf("web1").display().to_string();
    assert_eq!(h["fixes"][0]["command"], format!("mkdir -p {conf}"));
    assert_eq!(h["fixes"][0]["risk"], "low");
    assert_eq!(h["verification"][0]["command"], format!("test -d {conf}"));
    assert_eq!(h["verification"][0]["exit_code"], 0);

    // Replayed heals count too: a third heal without a model says "2 time(s)".
    std::fs::remove_dir(fleet.conf("web1")).unwrap();
    assert_eq!(fleet.run_with(None, true, &[]).await.status.code(), Some(0));
    let h = &fleet.report()["hosts"]["web1"];
    assert!(
        h["diagnosis"]["reason"]
            .as_str()
            .unwrap()
            .contains("healed 2 time(s)"),
        "{h}"
    );
}

/// A queue service the app needs, with a `service` stand-in (in the hosts' PATH) that
/// starts, stops and reports it through `ROOT/run/queue.pid`.
fn queue_fleet(bin: PathBuf) -> Fleet {
    let fleet = Fleet::with_app(
        bin,
        &["worker1"],
        "[ -f \"$root/run/queue.pid\" ] || { echo \"worker: cannot hand the job to queue ($root/run/queue.sock has no listener)\" >&2; exit 4; }\necho job handed over",
    );
    let run = fleet.root("worker1").join("run");
    let service = fleet.path("bin/service");
    std::fs::write(
        &service,
        format!(
            "#!/bin/sh\npid=\"{run}/$1.pid\"\ncase \"$2\" in\n  status) if [ -f \"$pid\" ]; then echo \"$1 is running (pid $(cat \"$pid\"))\"; else echo \"$1 is stopped\"; exit 3; fi ;;\n  start) mkdir -p \"{run}\" && echo 4242 > \"$pid\" && echo \"Starting $1: ok\" ;;\n  stop) rm -f \"$pid\" && echo \"Stopping $1: ok\" ;;\n  *) echo \"usage: service NAME status|start|stop\" >&2; exit 2 ;;\nesac\n",
            run = run.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&service, std::fs::Permissions::from_mode(0o755)).unwrap();
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_is_diagnosed_started_verified_and_retried() {
    let fleet = queue_fleet(require_ansible!());
    let server = model(Model::StoppedService).await;
    let out = fleet.run(&server, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(fleet.root("worker1").join("run/queue.pid").is_file());

    let r = fleet.report();
    let h = &r["hosts"]["worker1"];
    assert_eq!(h["outcome"], "healed", "{r:#}");
    assert_eq!(h["diagnosis"]["source"], "model");
    assert_eq!(h["diagnosis"]["category"], "service_unavailable");
    let d = &h["diagnostics"][0];
    assert_eq!(d["command"], "service queue status");
    assert_eq!(
        (d["risk"].as_str(), d["exit_code"].as_i64()),
        (Some("low"), Some(3))
    );
    assert_eq!(d["output"], "queue is stopped");
    let fix = &h["fixes"][0];
    assert_eq!(fix["command"], "service queue start");
    assert_eq!(
        (
            fix["risk"].as_str(),
            fix["ran"].as_bool(),
            fix["exit_code"].as_i64()
        ),
        (Some("low"), Some(true), Some(0))
    );
    let v = &h["verification"][0];
    assert_eq!(
        (v["exit_code"].as_i64(), v["output"].as_str()),
        (Some(0), Some("queue is running (pid 4242)"))
    );
    assert_eq!(h["rollback"], json!([]));

    // The model saw the status only in the second round.
    let p = prompts(&server).await;
    assert_eq!(p.len(), 2);
    assert!(
        p[1].contains("$ service queue status") && p[1].contains("queue is stopped"),
        "{}",
        p[1]
    );
    assert_eq!(
        fleet.runs().last().unwrap(),
        &("playbook".to_string(), "worker1".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_is_measured_its_cache_purged_verified_and_retried() {
    let bin = require_ansible!();
    let pip = bin.with_file_name("pip");
    let fleet = Fleet::with_app(
        bin,
        &["app1"],
        "used=$(du -sk \"$root/var\" | cut -f1)\n[ \"$used\" -le 1024 ] || { echo \"app: cannot write the spool: volume $root/var holds $used KiB of its 1024 KiB\" >&2; exit 5; }\necho spooled",
    );
    // The pip that ansible-core came with, on the host's PATH.
    std::os::unix::fs::symlink(&pip, fleet.path("bin/pip")).unwrap();
    let var = fleet.root("app1").join("var");
    let cache = var.join("cache/pip");
    let wheel = cache.join("wheels/ab/cd/blob-1.0-py3-none-any.whl");
    std::fs::create_dir_all(wheel.parent().unwrap()).unwrap();
    std::fs::write(&wheel, vec![7u8; 2 * 1024 * 1024]).unwrap();
    let data = var.join("lib/app/state.json");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, "{\"jobs\": 3}\n").unwrap();

    let server = model(Model::FullDisk).await;
    let out = fleet.run(&server, &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(!wheel.exists(), "the cache was purged");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "{\"jobs\": 3}\n");

    let r = fleet.report();
    let h = &r["hosts"]["app1"];
    assert_eq!(h["outcome"], "healed", "{r:#}");
    assert_eq!(h["diagnosis"]["category"], "disk_full");
    let d = &h["diagnostics"][0];
    assert_eq!(
        d["command"],
        format!("du -sk {} {}/lib/app", cache.display(), var.display())
    );
    assert_eq!(
        (d["risk"].as_str(), d["exit_code"].as_i64()),
        (Some("low"), Some(0))
    );
    assert!(
        d["output"]
            .as_str()
            .unwrap()
            .contains(&format!("\t{}", cache.display())),
        "{d}"
    );
    let fix = &h["fixes"][0];
    assert_eq!(
        fix["command"],
        format!("pip cache purge --cache-dir {}", cache.display())
    );
    assert_eq!(
        (
            fix["risk"].as_str(),
            fix["ran"].as_bool(),
            fix["exit_code"].as_i64()
        ),
        (Some("low"), Some(true), Some(0))
    );
    let verify = &h["verification"][0];
    assert!(
        verify["command"]
            .as_str()
            .unwrap()
            .starts_with("test $(du -sk"),
        "{verify}"
    );
    assert_eq!(verify["exit_code"], 0);
    // The model chose the fix from the size the diagnostic measured.
    let p = prompts(&server).await;
    assert_eq!(p.len(), 2);
    assert!(
        h["diagnosis"]["reason"].as_str().unwrap().contains("KiB"),
        "{h}"
    );
    assert_eq!(
        fleet.runs().last().unwrap(),
        &("playbook".to_string(), "app1".to_string())
    );
}

/// `CMD` run on a terminal (util-linux `script` gives it a pty), answering `answer` to its
/// first `[y/N]` question; returns everything it printed and its exit status.
fn on_a_terminal(cmd: std::process::Command, answer: &str) -> (String, std::process::ExitStatus) {
    use std::io::{Read, Write};
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect();
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(cmd.get_current_dir().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.spawn().expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut answered = false;
    loop {
        let n = stdout.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !answered && seen.contains("[y/N]") {
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.flush().unwrap();
            answered = true;
        }
    }
    drop(stdin);
    (seen, child.wait().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_medium_rollback_runs_once_a_person_says_yes() {
    let fleet = Fleet::new(require_ansible!(), &["web1"]);
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        require::missing("util-linux script (for a terminal)");
        return;
    }
    let server = model(Model::FailingVerification).await;
    let cmd = fleet.command(Some(&server), false, &[]);
    let (seen, status) = tokio::task::spawn_blocking(move || on_a_terminal(cmd, "y\n"))
        .await
        .unwrap();
    eprintln!("--- terminal\n{seen}");
    assert!(!status.success());
    let q = format!(
        "run the medium-risk rollback `rmdir {}`? [y/N]",
        fleet.conf("web1").display()
    );
    assert!(seen.contains(&q), "{seen}");
    assert!(!fleet.conf("web1").exists(), "the approved rollback ran");
    let rb = &fleet.report()["hosts"]["web1"]["rollback"][0];
    assert_eq!(
        (rb["ran"].as_bool(), rb["exit_code"].as_i64()),
        (Some(true), Some(0)),
        "{rb}"
    );

    // "n" (or anything but yes) leaves it undone.
    let cmd = fleet.command(Some(&server), false, &[]);
    let (seen, _) = tokio::task::spawn_blocking(move || on_a_terminal(cmd, "n\n"))
        .await
        .unwrap();
    assert!(seen.contains("[y/N]"), "{seen}");
    assert!(fleet.conf("web1").is_dir(), "not approved: not rolled back");
    assert_eq!(fleet.report()["hosts"]["web1"]["rollback"][0]["ran"], false);
}
