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
        };
    let content = json!({
        "category": "configuration_error",
        "root_cause": format!("The configuration directory {dir} does not exist."),
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
        let app = f.path("app.sh");
        std::fs::write(
            &app,
            "#!/bin/sh\nroot=\"$1\"\n[ -d \"$root/etc/app\" ] || { echo \"app: configuration directory $root/etc/app is missing\" >&2; exit 3; }\necho started\n",
        )
        .unwrap();
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            f.path("site.yml"),
            format!(
                "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: start the app\n      ansible.builtin.command:\n        argv: [\"{}\", \"{{{{ root }}}}\"]\n      changed_when: false\n",
                app.display()
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
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pipeguard"));
        c.current_dir(self.dir.path())
            .args([
                "ansible",
                "site.yml",
                "-i",
                "inventory.ini",
                "--report",
                "report.json",
                "--no-database",
            ])
            .args(extra)
            .env("PIPEGUARD_ANSIBLE_PLAYBOOK", &self.bin)
            .env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0")
            .env("PIPEGUARD_LLM_URL", format!("{}/v1", server.uri()))
            .env("PIPEGUARD_LLM_MODEL", "stand-in")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.path(".ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.path(".ansible-tmp"))
            .env_remove("PIPEGUARD_URL")
            .env_remove("PIPEGUARD_LLM_API_KEY");
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        eprintln!("--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
        out
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
    assert_eq!(fleet.run(&server, &[]).await.status.code(), Some(0));
    let p = prompts(&server).await;
    assert!(
        p[0].contains("earlier fixes that healed this failure: none"),
        "{}",
        p[0]
    );
    // The same failure again on the same kind of host.
    std::fs::remove_dir(fleet.conf("web1")).unwrap();
    assert_eq!(fleet.run(&server, &[]).await.status.code(), Some(0));
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
