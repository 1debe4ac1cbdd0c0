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
use wiremock::matchers::{body_string_contains, method, path};
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
/// The model of most scenarios: the configuration directory is missing; `mkdir` it, then
/// `test -d` it.
async fn mkdir_model(h: &Host) -> MockServer {
    let conf = h.conf().display().to_string();
    model(
        "missing",
        &[],
        &[format!("mkdir -p {conf}")],
        &[format!("test -d {conf}")],
    )
    .await
}

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
            "{HOST} ansible_connection=local ansible_python_interpreter={py}\n\
             web-2 ansible_connection=local ansible_python_interpreter={py}\n\
             web-3 ansible_connection=local ansible_python_interpreter={py}\n",
            py = python.display()
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
    until(app, id, |s| done.iter().any(|d| s["status"] == *d)).await
}

/// Polls a session until `pred` holds, for up to a minute: real Ansible runs on a machine
/// shared with other tests.
async fn until(app: &TestApp, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = app.get(&format!("/api/v1/sessions/{id}")).await;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("session never reached the expected state: {last:#}");
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    until(app, id, |s| s["status"] == status).await
}

/// Posts the callback plugin's report of the failed task on `host`; the session's id.
async fn report(app: &TestApp, host: &str, h: &Host) -> String {
    report_with(app, host, h, None).await
}

/// [`report`] carrying the host's facts as the plugin summarises them.
async fn report_with(app: &TestApp, host: &str, h: &Host, facts: Option<Value>) -> String {
    let mut body = json!({
        "playbook": "site.yml", "host": host, "task": "Render app config",
        "module": "ansible.builtin.template",
        "msg": format!("configuration directory {} is missing", h.conf().display()),
        "rc": 1, "unreachable": false
    });
    if let Some(f) = facts {
        body["facts"] = f;
    }
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
    let s = wait_status(&app, &id, "awaiting_approval").await;
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
    let s = wait_status(&app, &id, "healed").await;
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
    let s = wait_status(&app, &id, "escalated").await;
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
    let m = mkdir_model(&h).await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, "db-1", &h).await;
    let s = settled(&app, &id).await;
    assert_ne!(s["status"], "healed", "{s:#}");
    assert!(s["diagnosis"]["host_loop"].is_null());
    assert!(!h.conf().exists(), "nothing ran");
}

fn facts(family: &str, pkg: &str) -> Value {
    json!({"os_family": family, "distribution": family, "distribution_version": "9",
           "pkg_mgr": pkg, "service_mgr": "systemd", "memfree_mb": 812, "disk_free_mb": 20480})
}

/// The commands the audit trail says were run, refused or interrupted, for a session.
async fn all_commands(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let v = app.get("/api/v1/audit?limit=1000").await;
    v["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["target"] == id && e["action"].as_str().unwrap_or("").starts_with("command."))
        .rev()
        .map(|e| {
            let a = e["action"].as_str().unwrap_or("").to_string();
            (a, e["detail"]["command"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_reported_facts_refuse_apt_get_on_a_dnf_host_and_reach_the_analyst() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let conf = h.conf().display().to_string();
    let apt = format!("apt-get install -y nginx && mkdir -p {conf}");
    let m = model(
        "nginx is missing",
        &[],
        std::slice::from_ref(&apt),
        &[format!("test -d {conf}")],
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let id = report_with(&app, HOST, &h, Some(facts("RedHat", "dnf"))).await;
    let s = wait_status(&app, &id, "escalated").await;
    assert!(!h.conf().exists(), "the misfit fix never ran");
    assert_eq!(
        all_commands(&app, &id).await,
        [("command.refused".to_string(), apt.clone())]
    );
    let r = &s["diagnosis"]["host_loop"]["report"];
    assert_eq!(r["facts"]["pkg_mgr"], "dnf", "{r:#}");
    assert_eq!(r["fixes"][0]["ran"], false);
    let note = r["fixes"][0]["note"].as_str().unwrap();
    assert!(note.contains("apt") && note.contains("dnf"), "{note}");
    // The analyst was told the host's facts, from the report (nothing was gathered).
    let v = app.get("/api/v1/audit?limit=1000").await;
    let prompt = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == id && e["action"] == "llm.prompt")
        .map(|e| e["detail"]["prompt"].to_string())
        .expect("the prompt is audited");
    assert!(prompt.contains("package manager dnf"), "{prompt}");
    assert!(prompt.contains("812 MB memory free"), "{prompt}");
}

#[tokio::test]
async fn without_reported_facts_the_server_gathers_them_with_the_setup_module() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let m = mkdir_model(&h).await;
    let app = app(&bin, &h, &m).await;
    let id = report(&app, HOST, &h).await;
    let s = wait_status(&app, &id, "healed").await;
    // This machine's own facts, as `ansible -m setup` reports them.
    let f = &s["diagnosis"]["host_loop"]["report"]["facts"];
    assert!(
        f["os_family"].as_str().is_some_and(|x| !x.is_empty()),
        "{f:#}"
    );
    assert!(f["memtotal_mb"].as_i64().is_some_and(|x| x > 0), "{f:#}");
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let fixes = store.list_host_fixes().await.unwrap();
    assert_eq!(
        fixes[0].os_family,
        f["os_family"].as_str().unwrap(),
        "learned per OS family"
    );
}

#[tokio::test]
async fn the_second_round_turns_a_diagnostic_output_into_the_fix() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let root = h.root.display().to_string();
    // Only the host knows where the configuration belongs.
    let wanted = h.root.join("srv/conf-7f3a");
    std::fs::write(
        h.root.join("hint.txt"),
        format!("config_dir={}\n", wanted.display()),
    )
    .unwrap();
    let m = model(
        "unclear: look at the host",
        &[format!("cat {root}/hint.txt")],
        &[],
        &[],
    )
    .await;
    let second = json!({
        "category": "configuration_error", "root_cause": "the hint names the missing directory",
        "confidence": 0.9, "diagnostic_commands": ["cat /etc/shadow"],
        "fix_commands": [format!("mkdir -p {}", wanted.display())],
        "verification_commands": [format!("test -d {}", wanted.display())],
        "rollback_commands": [],
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("conf-7f3a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant",
                         "content": second.to_string()}, "finish_reason": "stop"}],
            "usage": {"total_tokens": 200}
        })))
        .with_priority(1)
        .mount(&m)
        .await;
    let app = app(&bin, &h, &m).await;
    let id = report_with(&app, HOST, &h, Some(facts("Debian", "apt"))).await;
    let s = settled(&app, &id).await;
    assert_eq!(s["status"], "healed", "{s:#}");
    assert!(wanted.is_dir(), "the fix the second round proposed ran");
    assert_eq!(
        commands(&audit(&app, &id).await),
        [
            format!("cat {root}/hint.txt"),
            format!("mkdir -p {}", wanted.display()),
            format!("test -d {}", wanted.display())
        ],
        "the second answer's own diagnostic is not run (one more round at most)"
    );
    let timeline = s["timeline"].to_string();
    assert!(timeline.contains("second round"), "{timeline}");
    assert_eq!(
        s["diagnosis"]["host_loop"]["report"]["diagnosis"]["reason"],
        "the hint names the missing directory"
    );
}

#[tokio::test]
async fn an_unusable_second_answer_keeps_the_first() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let (root, conf) = (h.root.display().to_string(), h.conf().display().to_string());
    let m = model(
        "missing",
        &[format!("ls -ld {root}/var/lib/app")],
        &[format!("mkdir -p {conf}")],
        &[format!("test -d {conf}")],
    )
    .await;
    // The second round (it carries the diagnostic's output) gets no answer.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("(exit 0)"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&m)
        .await;
    let app = app(&bin, &h, &m).await;
    let id = report_with(&app, HOST, &h, Some(facts("Debian", "apt"))).await;
    let s = settled(&app, &id).await;
    assert_eq!(s["status"], "healed", "{s:#}");
    assert!(h.conf().is_dir());
    assert!(
        s["timeline"]
            .to_string()
            .contains("the first answer stands"),
        "{s:#}"
    );
}

#[tokio::test]
async fn a_learned_fix_replays_without_a_model_on_a_host_of_the_same_os_family() {
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let m = mkdir_model(&h).await;
    let app = app(&bin, &h, &m).await;
    let id = report_with(&app, HOST, &h, Some(facts("Debian", "apt"))).await;
    wait_status(&app, &id, "healed").await;
    let asked = m.received_requests().await.unwrap().len();
    std::fs::remove_dir(h.conf()).unwrap();
    // The same server, now without a model.
    let (github, dir, db) = app.stop().await;
    let (bin2, inv) = (bin.clone(), h.inventory.clone());
    let app = TestApp::start_at(dir, db, github, "admin-2", move |cfg| {
        cfg.ansible.host_loop = true;
        cfg.ansible.inventory = Some(inv.display().to_string());
        cfg.ansible.hosts = vec!["web-*".into()];
        cfg.ansible.ansible = Some(bin2.join("ansible").display().to_string());
    })
    .await;
    let id2 = report_with(&app, "web-2", &h, Some(facts("Debian", "apt"))).await;
    let s = wait_status(&app, &id2, "healed").await;
    assert!(h.conf().is_dir(), "replayed on web-2");
    let d = &s["diagnosis"]["host_loop"]["report"]["diagnosis"];
    assert_eq!(d["source"], "learned", "{s:#}");
    assert_eq!(
        commands(&audit(&app, &id2).await),
        [
            format!("mkdir -p {}", h.conf().display()),
            format!("test -d {}", h.conf().display())
        ]
    );
    assert_eq!(
        m.received_requests().await.unwrap().len(),
        asked,
        "no model"
    );
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    let fixes = store.list_host_fixes().await.unwrap();
    assert_eq!(
        (fixes[0].healed, fixes[0].os_family.as_str()),
        (2, "Debian")
    );
    // Another OS family: nothing learned for it, nothing runs.
    std::fs::remove_dir(h.conf()).unwrap();
    let id3 = report_with(&app, "web-3", &h, Some(facts("RedHat", "dnf"))).await;
    let s = settled(&app, &id3).await;
    assert_ne!(s["status"], "healed", "{s:#}");
    assert!(s["diagnosis"]["host_loop"].is_null(), "{s:#}");
    assert!(!h.conf().exists());
}

/// Waits until no job of the queue is left to run.
async fn drained(app: &TestApp) {
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    for _ in 0..400 {
        if store.queue_depth().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the queue did not drain");
}

/// Moves a session waiting for approval of its fix to where a worker left it: approved,
/// step 0 (the fix) queued, and, when `began`, the fix started and not recorded.
async fn left_by_a_worker(store: &pipeguard_store::Store, id: &str, began: bool) {
    use pipeguard_core::lifecycle::Event;
    use pipeguard_store::{SessionUpdate, Transition};
    let s = store.get_session(id).await.unwrap().unwrap();
    let mut d = s.diagnosis.clone().unwrap();
    d["host_loop"]["approved"] = json!(true);
    d["host_loop"]["queued"] = json!(0);
    if began {
        d["host_loop"]["started"] = json!(0);
    }
    let u = SessionUpdate {
        diagnosis: Some(d),
        ..Default::default()
    };
    let moved = store
        .update_session(id, Transition::new(Event::Approve, "approved"), u)
        .await
        .unwrap();
    assert!(moved);
    let t = Transition::new(Event::Start, "the fix is due");
    assert!(store.transition(id, t).await.unwrap());
}

#[tokio::test]
async fn a_step_queued_twice_runs_once_and_a_started_one_never_again() {
    use pipeguard_store::Task;
    let Some(bin) = ansible_bin() else { return };
    let h = host(&bin);
    let conf = h.conf().display().to_string();
    let marker = h.root.join("runs.txt");
    // Medium (it appends): it waits for approval, so the test can step in before it runs.
    let fix = format!("echo ran >> {} && mkdir -p {conf}", marker.display());
    let verify = format!("test -d {conf}");
    let m = model(
        "missing",
        &[],
        std::slice::from_ref(&fix),
        std::slice::from_ref(&verify),
    )
    .await;
    let app = app(&bin, &h, &m).await;
    let store = pipeguard_store::Store::connect(&app.db_url).await.unwrap();
    // 1. The fix's step queued twice (a lapsed lease, say): each command runs once.
    let id = report_with(&app, HOST, &h, Some(facts("Debian", "apt"))).await;
    wait_status(&app, &id, "awaiting_approval").await;
    left_by_a_worker(&store, &id, false).await;
    for _ in 0..2 {
        store
            .enqueue(&id, &Task::HostStep { step: 0 }, 0)
            .await
            .unwrap();
    }
    wait_status(&app, &id, "healed").await;
    for step in [0, 1] {
        store
            .enqueue(&id, &Task::HostStep { step }, 0)
            .await
            .unwrap();
    }
    drained(&app).await;
    let runs = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(runs.lines().count(), 1, "{runs}");
    assert_eq!(commands(&audit(&app, &id).await), [fix.clone(), verify]);
    // 2. A worker began the fix and died: the step taken again does not run it again.
    std::fs::remove_file(&marker).unwrap();
    std::fs::remove_dir(h.conf()).unwrap();
    let id = report_with(&app, "web-2", &h, Some(facts("Debian", "apt"))).await;
    wait_status(&app, &id, "awaiting_approval").await;
    left_by_a_worker(&store, &id, true).await;
    store
        .enqueue(&id, &Task::HostStep { step: 0 }, 0)
        .await
        .unwrap();
    let s = wait_status(&app, &id, "escalated").await;
    assert!(!marker.exists(), "the interrupted fix was not run again");
    assert_eq!(
        all_commands(&app, &id).await,
        [("command.interrupted".to_string(), fix)]
    );
    assert!(
        s["reason"].as_str().unwrap().contains("a fix failed"),
        "{s:#}"
    );
}
