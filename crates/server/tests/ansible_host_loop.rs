//! The host loop on the server: a report from the callback plugin about a host the server
//! may reach (`[ansible] host_loop`) runs the model's commands on it through the real
//! ansible-core. The host is `ansible_connection=local` with its own directory tree standing
//! in for its filesystem. Without ansible-core (`.ci/setup-ansible.sh`) each test is skipped
//! with a message, and fails under `CI`.

mod common;
#[path = "../../../tests/support/require.rs"]
mod require;

use common::TestApp;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOST: &str = "web-1";

/// `.venv-ansible/bin`, or `None` after saying why the test is skipped.
fn ansible_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-ansible/bin");
    let found = bin.join("ansible").is_file().then_some(bin);
    require::require("ansible-core (run .ci/setup-ansible.sh)", found)
}

/// The fake OpenAI-compatible model, always proposing these commands.
async fn model(cause: &str, diag: &[String], fix: &[String], verify: &[String]) -> MockServer {
    let content = json!({
        "category": "configuration_error", "root_cause": cause, "confidence": 0.8,
        "diagnostic_commands": diag, "fix_commands": fix,
        "verification_commands": verify, "rollback_commands": [],
    });
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant",
                         "content": content.to_string()}, "finish_reason": "stop"}],
            "usage": {"total_tokens": 200}
        })))
        .mount(&server)
        .await;
    server
}

/// A host whose tree has `var/lib/app` (data) but no `etc/app` (its configuration).
struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    inventory: PathBuf,
}

fn host(bin: &Path) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("hosts").join(HOST);
    std::fs::create_dir_all(root.join("var/lib/app")).unwrap();
    std::fs::write(root.join("var/lib/app/data.db"), "rows").unwrap();
    let inventory = dir.path().join("inventory.ini");
    let python = bin.join("python").canonicalize().unwrap();
    std::fs::write(
        &inventory,
        format!(
            "{HOST} ansible_connection=local ansible_python_interpreter={}\nweb-2 ansible_connection=local\n",
            python.display()
        ),
    )
    .unwrap();
    Host {
        _dir: dir,
        root,
        inventory,
    }
}

impl Host {
    fn conf(&self) -> PathBuf {
        self.root.join("etc/app")
    }
}

async fn app(bin: &Path, h: &Host, m: &MockServer) -> TestApp {
    let (bin, inv, uri) = (bin.to_path_buf(), h.inventory.clone(), m.uri());
    TestApp::start_with(move |cfg| {
        cfg.llm.url = Some(format!("{uri}/v1"));
        cfg.llm.model = Some("fake".into());
        cfg.llm.api_key = Some("sk-fake".into());
        cfg.ansible.host_loop = true;
        cfg.ansible.inventory = Some(inv.display().to_string());
        cfg.ansible.hosts = vec!["web-*".into()];
        cfg.ansible.ansible = Some(bin.join("ansible").display().to_string());
    })
    .await
}

/// Waits until the session is done or waits for people.
async fn settled(app: &TestApp, id: &str) -> Value {
    let done = [
        "healed",
        "escalated",
        "failed",
        "awaiting_approval",
        "skipped",
    ];
    app.wait_session(id, |s| done.iter().any(|d| s["status"] == *d))
        .await
}

/// Posts the callback plugin's report of the failed task on `host`; the session's id.
async fn report(app: &TestApp, host: &str, h: &Host) -> String {
    let body = json!({
        "playbook": "site.yml", "host": host, "task": "Render app config",
        "module": "ansible.builtin.template",
        "msg": format!("configuration directory {} is missing", h.conf().display()),
        "rc": 1, "unreachable": false
    });
    let r = app
        .http
        .post(format!("{}/webhooks/ansible", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    common::session_id(r).await
}

async fn audit(app: &TestApp, id: &str) -> Vec<Value> {
    let v = app.get("/api/v1/audit?limit=1000").await;
    v["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["target"] == id && e["action"] == "command.run")
        .rev() // newest first → in the order they ran
        .collect()
}

fn commands(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["detail"]["command"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_low_risk_fix_runs_on_the_host_is_verified_and_heals() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let conf = h.conf().display().to_string();
    let root = h.root.display().to_string();
    let m = model(
        "the configuration directory is missing",
        &[format!("ls -ld {root}/etc")],
        &[format!("mkdir -p {conf}")],
        &[format!("test -d {conf}")],
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, HOST, &h).await;
    let s = settled(&app, &id).await;
    assert_eq!(s["status"], "healed", "{s:#}");
    assert!(h.conf().is_dir(), "the fix ran on the host");
    let timeline = s["timeline"].to_string();
    for c in [
        format!("ls -ld {root}/etc"),
        format!("mkdir -p {conf}"),
        format!("test -d {conf}"),
    ] {
        assert!(timeline.contains(&c), "{c} not on the timeline: {timeline}");
    }
    // The diagnostic ran and failed (no etc/ yet): its output is kept, redacted.
    let r = &s["diagnosis"]["host_loop"]["report"];
    assert_eq!(r["diagnostics"][0]["ran"], true, "{r:#}");
    assert_ne!(r["diagnostics"][0]["exit_code"], 0, "{r:#}");
    assert_eq!(r["outcome"], "healed");
    let ran = audit(&app, &id).await;
    assert_eq!(
        commands(&ran),
        [
            format!("ls -ld {root}/etc"),
            format!("mkdir -p {conf}"),
            format!("test -d {conf}")
        ]
    );
    assert!(ran.iter().all(|e| e["detail"]["risk"] == "low"), "{ran:#?}");
    // Learned like the CLI's loop.
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let fixes = store.list_host_fixes().await.unwrap();
    assert_eq!(fixes.len(), 1);
    assert_eq!(fixes[0].fixes, [format!("mkdir -p {conf}")]);
    assert_eq!(fixes[0].last_host, HOST);
}

#[tokio::test]
async fn a_medium_fix_waits_for_approval_and_runs_only_after_it() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let conf = h.conf().display().to_string();
    let medium = format!("mkdir -p {conf} && chmod 640 {conf}");
    assert_eq!(
        pipeguard_core::safety::assess_script(&medium).level,
        pipeguard_core::Risk::Medium,
        "the scenario needs a medium-risk fix"
    );
    let m = model(
        "missing",
        &[],
        std::slice::from_ref(&medium),
        &[format!("test -d {conf}")],
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, HOST, &h).await;
    let s = app.wait_status(&id, "awaiting_approval").await;
    assert!(!h.conf().exists(), "nothing ran before the approval");
    assert!(audit(&app, &id).await.is_empty());
    assert!(s["reason"].as_str().unwrap().contains(&medium), "{s:#}");
    let r = app
        .http
        .post(format!("{}/api/v1/sessions/{id}/approve", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let s = app.wait_status(&id, "healed").await;
    assert!(h.conf().is_dir());
    assert_eq!(
        commands(&audit(&app, &id).await),
        [medium, format!("test -d {conf}")]
    );
    assert!(s["timeline"].to_string().contains("approved"), "{s:#}");
}

#[tokio::test]
async fn rm_rf_of_a_data_dir_is_refused_and_the_host_escalated() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let data = h.root.join("var/lib/app").display().to_string();
    let destroy = format!("rm -rf {data} /var/lib/postgresql");
    let m = model(
        "corrupt data",
        &[],
        std::slice::from_ref(&destroy),
        &[format!("test -d {data}")],
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, HOST, &h).await;
    let s = app.wait_status(&id, "escalated").await;
    assert!(
        h.root.join("var/lib/app/data.db").is_file(),
        "the data survives"
    );
    assert!(audit(&app, &id).await.is_empty(), "nothing ran");
    let fixes = &s["diagnosis"]["host_loop"]["report"]["fixes"];
    assert_eq!(fixes[0]["command"], destroy.as_str(), "{s:#}");
    assert_eq!(fixes[0]["ran"], false);
    assert!(s["reason"].as_str().unwrap().contains("not run"), "{s:#}");
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_left_to_people() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let conf = h.conf().display().to_string();
    let m = model(
        "missing",
        &[],
        &[format!("mkdir -p {conf}")],
        &[format!("test -d {conf}")],
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, "db-1", &h).await;
    let s = settled(&app, &id).await;
    assert_ne!(s["status"], "healed", "{s:#}");
    assert!(s["diagnosis"]["host_loop"].is_null());
    assert!(!h.conf().exists(), "nothing ran");
}
