//! `pipeguard ansible` against the real ansible-core, on localhost, inside a temp dir.
//!
//! ansible-core comes from `.ci/setup-ansible.sh` (`<repo>/.venv-ansible`) or
//! `PIPEGUARD_ANSIBLE_PLAYBOOK`; without it every scenario is skipped with a message, and fails
//! under `CI` (see `tests/support/require.rs`).

#[macro_use]
#[path = "common/ansible.rs"]
mod ansible_support;
#[path = "../../../tests/support/require.rs"]
mod require;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scenario {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Scenario {
    fn new(bin: PathBuf) -> Scenario {
        Scenario {
            dir: tempfile::tempdir().unwrap(),
            bin,
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn write(&self, p: &str, text: &str) -> PathBuf {
        let f = self.path(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
        f
    }
    fn script(&self, p: &str, body: &str) -> PathBuf {
        let f = self.write(p, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        f
    }
    fn local_inventory(&self) {
        self.write("inventory.ini", "localhost ansible_connection=local\n");
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
        c.current_dir(self.dir.path())
            .env("PIPEGUARD_ANSIBLE_PLAYBOOK", &self.bin)
            .env("PIPEGUARD_HEALING_BACKOFF_SECONDS", "0")
            .env(
                "PIPEGUARD_DATABASE_URL",
                format!("sqlite://{}", self.path("pipeguard.db").display()),
            )
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.path(".ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.path(".ansible-tmp"))
            .env_remove("PIPEGUARD_URL")
            .args(args);
        c
    }
    fn ansible(&self, extra: &[&str]) -> Output {
        let mut args = vec!["ansible", "site.yml", "-i", "inventory.ini"];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        eprintln!(
            "--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn session(&self) -> PathBuf {
        let sessions = self.path(".pipeguard/sessions");
        let mut v: Vec<PathBuf> = std::fs::read_dir(sessions)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.pop().unwrap()
    }
    fn session_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.session().join("session.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
    /// Every file under the scenario dir with its mode and content, except pipeguard's own.
    fn snapshot(&self) -> BTreeMap<String, (u32, Vec<u8>)> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if rel.starts_with(".pipeguard")
                    || rel.starts_with("pipeguard.db")
                    || rel.starts_with(".ansible")
                {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let content = if meta.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    vec![]
                };
                out.insert(rel, (meta.permissions().mode(), content));
                if meta.is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn heal_playbook(s: &Scenario) -> String {
    std::fs::read_to_string(s.session().join("heal-1.yml")).unwrap()
}

#[test]
fn missing_directory_is_created_and_the_playbook_passes() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let conf = s.path("app/conf/app.conf");
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: true\n  tasks:\n    - name: write app config\n      ansible.builtin.copy:\n        dest: {}\n        content: \"port=8080\\n\"\n",
            conf.display()
        ),
    );
    let out = s.ansible(&["--report", "report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "port=8080\n");
    // The rules' heal in the --report JSON, step by step.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("report.json")).unwrap()).unwrap();
    let h = &report["hosts"]["localhost"];
    assert_eq!(h["outcome"], "healed", "{report:#}");
    assert_eq!(h["diagnosis"]["source"], "rules");
    assert_eq!(h["diagnosis"]["category"], "missing_directory");
    assert!(h["facts"]["pkg_mgr"].is_string(), "{h}");
    let mkdir = format!("mkdir -p {}", conf.parent().unwrap().display());
    assert_eq!(h["fixes"][0]["command"], mkdir);
    assert_eq!(
        (
            h["fixes"][0]["ran"].as_bool(),
            h["fixes"][0]["exit_code"].as_i64()
        ),
        (Some(true), Some(0))
    );
    assert_eq!(h["verification"][0]["exit_code"], 0);
    assert_eq!(report["order"], serde_json::json!(["localhost"]));
    let yml = heal_playbook(&s);
    assert!(yml.contains("- \"mkdir\""), "{yml}");
    let session = s.session_json();
    assert_eq!(session["outcome"], "healed");
    let runs = session["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["playbook", "heal", "playbook"]
    );
    assert_eq!(runs[2]["limit"], "localhost");

    // The facts were stored and `pipeguard hosts` lists them.
    let hosts = s.command(&["hosts", "--format", "json"]).output().unwrap();
    assert_eq!(hosts.status.code(), Some(0), "{}", stderr(&hosts));
    let v: serde_json::Value = serde_json::from_slice(&hosts.stdout).unwrap();
    assert_eq!(v[0]["name"], "localhost");
    assert!(v[0]["pkg_mgr"].is_string(), "{v}");
    assert!(v[0]["memtotal_mb"].as_i64().unwrap() > 0);
    let text = s.command(&["hosts"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("localhost"));
}

#[test]
fn program_without_execute_permission_is_fixed_with_a_recorded_rollback() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let deploy = s.script("bin/deploy.sh", "echo deployed");
    std::fs::set_permissions(&deploy, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: run the deploy script\n      ansible.builtin.command:\n        argv: [\"{}\"]\n",
            deploy.display()
        ),
    );
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(&deploy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.session().join("heal-1.json")).unwrap())
            .unwrap();
    let fix = &plan["hosts"][0]["steps"][1];
    assert_eq!(fix["argv"][0], "chmod");
    assert_eq!(fix["status"], "ok");
    assert_eq!(fix["rollback"]["argv"][1], "644", "{plan}");
}

#[test]
fn stopped_service_is_started() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let run = s.path("run");
    std::fs::create_dir_all(&run).unwrap();
    // A stand-in init system confined to the temp dir, first on PATH, so `service` works
    // the way it does on a host without systemd.
    let fakebin = s.path("fakebin");
    s.script(
        "fakebin/service",
        &format!(
            r#"name="$1"; action="$2"; pidfile="{run}/$name.pid"
case "$action" in
  start) setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $! > "$pidfile"; echo "Starting $name" ;;
  stop) [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile"; echo "Stopping $name" ;;
  status) if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "$name is running"; else echo "$name is not running"; exit 3; fi ;;
  *) echo "usage: service NAME start|stop|status" >&2; exit 2 ;;
esac"#,
            run = run.display()
        ),
    );
    let path = format!(
        "{}:{}",
        fakebin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let svc = |action: &str| {
        Command::new(fakebin.join("service"))
            .args(["pgdemo", action])
            .output()
            .unwrap()
    };
    assert!(svc("start").status.success());
    assert!(svc("status").status.success());
    assert!(svc("stop").status.success());
    assert_eq!(svc("status").status.code(), Some(3));
    s.write(
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: the demo service must be up\n      ansible.builtin.command: service pgdemo status\n      changed_when: false\n",
    );
    let out = s
        .command(&["ansible", "site.yml", "-i", "inventory.ini"])
        .env("PATH", &path)
        .output()
        .unwrap();
    eprintln!("{}", stderr(&out));
    let running = svc("status").status.success();
    let _ = svc("stop");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(running, "the daemon runs after the heal");
    let yml = heal_playbook(&s);
    assert!(
        yml.contains("- \"service\"\n          - \"pgdemo\"\n          - \"start\""),
        "{yml}"
    );
    // Facts were not gathered by the playbook, so pipeguard gathered them itself.
    assert!(s.session().join("facts-0.yml").is_file());
}

#[test]
fn stale_lock_file_is_removed() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let repo = s.path("repo");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(&repo).unwrap();
    if !git(&["init", "-q"]).status.success() {
        require::missing("git");
        return;
    }
    s.write("repo/README", "hello\n");
    // Left behind by a git process that was killed.
    s.write("repo/.git/index.lock", "");
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: stage the release notes\n      ansible.builtin.command:\n        argv: [git, -C, \"{}\", add, README]\n",
            repo.display()
        ),
    );
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!s.path("repo/.git/index.lock").exists());
    let staged = git(&["diff", "--cached", "--name-only"]);
    assert_eq!(String::from_utf8_lossy(&staged.stdout).trim(), "README");
    assert!(heal_playbook(&s).contains("pg_lock_holder.rc != 0"));
}

#[test]
fn task_that_fails_once_is_retried_and_passes() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let marker = s.path("failed-once");
    let fetch = s.script(
        "bin/fetch.sh",
        &format!(
            "if [ ! -e {m} ]; then touch {m}; echo 'curl: (56) Recv failure: Connection reset by peer' >&2; exit 56; fi\necho fetched",
            m = marker.display()
        ),
    );
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: fetch the artifact\n      ansible.builtin.command:\n        argv: [\"{}\"]\n",
            fetch.display()
        ),
    );
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let session = s.session_json();
    let kinds: Vec<&str> = session["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["playbook", "playbook"],
        "a retry needs no healing playbook"
    );
    assert!(!s.session().join("heal-1.yml").exists());
}

/// A wheel is a zip with metadata; built here so the test needs no network and no `wheel`.
fn build_wheel(python: &Path, dir: &Path) {
    let code = r#"
import sys, zipfile, hashlib, base64
out = sys.argv[1]
files = {
    "pgdemo_helper/__init__.py": "VALUE = 42\n",
    "pgdemo_helper-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: pgdemo-helper\nVersion: 0.1\n",
    "pgdemo_helper-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: pipeguard-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(out + "/pgdemo_helper-0.1-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("pgdemo_helper-0.1.dist-info/RECORD,,")
    z.writestr("pgdemo_helper-0.1.dist-info/RECORD", "\n".join(record) + "\n")
"#;
    let st = Command::new(python)
        .args(["-c", code])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn missing_python_package_is_installed_from_a_local_wheel() {
    let bin = require_ansible!();
    let s = Scenario::new(bin.clone());
    s.local_inventory();
    let python = bin.parent().unwrap().join("python");
    let venv = s.path("appvenv");
    let st = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(st.success());
    let wheels = s.path("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    build_wheel(&python, &wheels);
    let app_python = venv.join("bin/python");
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: the app can import its helper\n      ansible.builtin.command:\n        argv: [\"{}\", \"-c\", \"import pgdemo_helper; print(pgdemo_helper.VALUE)\"]\n",
            app_python.display()
        ),
    );
    let out = s
        .command(&["ansible", "site.yml", "-i", "inventory.ini"])
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &wheels)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = Command::new(&app_python)
        .args(["-c", "import pgdemo_helper; print(pgdemo_helper.VALUE)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "42");
    assert!(heal_playbook(&s).contains("- \"install\""));
}

#[test]
fn unreachable_host_is_escalated_and_nothing_changes() {
    let s = Scenario::new(require_ansible!());
    // Port 1 on the loopback: the connection is refused at once.
    s.write(
        "inventory.ini",
        "ghost ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh ansible_user=nobody ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3'\n",
    );
    let marker = s.path("deployed");
    s.write(
        "site.yml",
        &format!(
            "- hosts: ghost\n  gather_facts: false\n  tasks:\n    - name: deploy\n      ansible.builtin.file:\n        path: {}\n        state: touch\n",
            marker.display()
        ),
    );
    let before = s.snapshot();
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(4), "ansible-playbook's own status");
    assert_eq!(s.snapshot(), before);
    let session = s.session_json();
    assert_eq!(session["outcome"], "escalated");
    assert_eq!(session["escalations"][0]["kind"], "unreachable");
    assert!(
        !session["escalations"][0]["evidence"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{session}"
    );
    assert!(!s.session().join("heal-1.yml").exists());
    assert!(stderr(&out).contains("ESCALATED ghost"));
}

#[test]
fn syntax_error_is_escalated_and_nothing_changes() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    s.write(
        "site.yml",
        "- hosts: localhost\n  tasks:\n    - name: broken\n      ansible.builtin.copy:\n        dest: /tmp/x\n       content: [unbalanced\n",
    );
    let before = s.snapshot();
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(s.snapshot(), before);
    let session = s.session_json();
    assert_eq!(
        session["escalations"][0]["kind"], "syntax_error",
        "{session}"
    );
    assert_eq!(session["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn assertion_and_undefined_variable_are_escalated_unchanged() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    s.write(
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: release gate\n      ansible.builtin.assert:\n        that: [\"1 == 2\"]\n        fail_msg: the release gate is closed\n",
    );
    let before = s.snapshot();
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(s.snapshot(), before);
    assert_eq!(s.session_json()["escalations"][0]["kind"], "assertion");

    s.write(
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: print the port\n      ansible.builtin.debug:\n        msg: \"{{ app_port }}\"\n",
    );
    let before = s.snapshot();
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(s.snapshot(), before);
    assert_eq!(
        s.session_json()["escalations"][0]["kind"],
        "undefined_variable"
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let conf = s.path("app/conf/app.conf");
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: write app config\n      ansible.builtin.copy:\n        dest: {}\n        content: x\n",
            conf.display()
        ),
    );
    let out = s.ansible(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!s.path("app").exists(), "the heal did not run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("- \"mkdir\""));
    assert!(s.session().join("heal-1.yml").is_file());
}

#[test]
fn bad_input_is_a_clear_error() {
    let s = Scenario::new(PathBuf::from("/nonexistent"));
    let out = s.command(&["ansible", "missing.yml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"));
    s.write("site.yml", "- hosts: all\n  tasks: []\n");
    let out = s.command(&["ansible", "site.yml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("PIPEGUARD_ANSIBLE_PLAYBOOK"));
}

#[test]
fn callback_plugin_posts_failed_tasks_to_the_server() {
    use std::io::{Read, Write};
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    s.write(
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: release gate\n      ansible.builtin.fail:\n        msg: the release gate is closed\n",
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the headers, then as many body bytes as Content-Length says.
        loop {
            let n = conn.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if req.len() >= end + 4 + len || n == 0 {
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&req).to_string()
    });
    let out = s
        .command(&["ansible", "site.yml", "-i", "inventory.ini"])
        .env("PIPEGUARD_URL", format!("http://127.0.0.1:{port}"))
        .env("PIPEGUARD_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let req = server.join().unwrap();
    assert!(req.starts_with("POST /webhooks/ansible HTTP/1.1"), "{req}");
    assert!(req.contains("Authorization: Bearer s3cret"), "{req}");
    let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["host"], "localhost");
    assert_eq!(v["task"], "release gate");
    assert_eq!(v["module"], "ansible.builtin.fail");
    assert_eq!(v["msg"], "the release gate is closed");
    assert_eq!(v["unreachable"], false);
    assert!(v["playbook"].as_str().unwrap().ends_with("site.yml"));
    for k in ["stdout", "stderr", "rc"] {
        assert!(v.get(k).is_some(), "{k} missing from {v}");
    }
}

#[test]
fn high_risk_fix_is_not_run_without_approval() {
    let s = Scenario::new(require_ansible!());
    s.local_inventory();
    let server = s.script(
        "bin/start-server.sh",
        "echo 'Error: listen tcp 127.0.0.1:18081: bind: address already in use' >&2; exit 1",
    );
    s.write(
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: start the app server\n      ansible.builtin.command:\n        argv: [\"{}\"]\n",
            server.display()
        ),
    );
    let before = s.snapshot();
    let out = s.ansible(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(s.snapshot(), before);
    let session = s.session_json();
    let e = &session["escalations"][0];
    assert_eq!(e["kind"], "port_in_use");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("--approve-high-risk"),
        "{session}"
    );
    assert!(!s.session().join("heal-1.yml").exists());
}

/// The rules' diagnostics run ad hoc before the healing playbook, each gated on its own:
/// `ls -ld` (read-only, low) runs and is reported with its exit code and redacted output;
/// `python3 -m pip show` (a program the gate cannot tell only reads) is recorded, not run.
#[test]
fn rule_diagnostics_run_ad_hoc_gated_and_reported() {
    let s = Scenario::new(require_ansible!());
    // Reached as the play says (`connection: local`): the ad-hoc diagnostics must be too.
    s.write("inventory.ini", "alpha\nbeta\n");
    // The e-mail address in the path must not reach the report.
    let conf = s.path("ops@example.com/conf");
    let (pip_log, installed) = (s.path("pip.log"), s.path("installed"));
    // A stand-in Python: `-m pip` calls are logged, `install` makes the import work.
    let python = s.script(
        "fakepy/python3",
        &format!(
            r#"if [ "$1" = -m ] && [ "$2" = pip ]; then
  echo "$3 $4" >> {log}
  case "$3" in install) touch {ok} ;; show) [ -e {ok} ] || exit 1 ;; esac
  exit 0
fi
[ -e {ok} ] && exit 0
echo "ModuleNotFoundError: No module named 'yaml'" >&2; exit 1"#,
            log = pip_log.display(),
            ok = installed.display()
        ),
    );
    s.write(
        "site.yml",
        &format!(
            "- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n    - name: write app config\n      ansible.builtin.copy:\n        dest: {}/app.conf\n        content: \"port=8080\\n\"\n      when: inventory_hostname == 'alpha'\n    - name: the app can import yaml\n      ansible.builtin.command:\n        argv: [\"{}\", \"-c\", \"import yaml\"]\n      when: inventory_hostname == 'beta'\n",
            conf.display(),
            python.display()
        ),
    );
    let out = s.ansible(&["--report", "report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("report.json")).unwrap()).unwrap();
    let (alpha, beta) = (&report["hosts"]["alpha"], &report["hosts"]["beta"]);
    assert_eq!(alpha["outcome"], "healed", "{report:#}");
    assert_eq!(beta["outcome"], "healed", "{report:#}");

    let ls = &alpha["diagnostics"][0];
    assert!(
        ls["command"].as_str().unwrap().starts_with("ls -ld "),
        "{ls}"
    );
    assert_eq!(
        (ls["ran"].as_bool(), ls["risk"].as_str()),
        (Some(true), Some("low"))
    );
    assert_eq!(ls["exit_code"], 2, "ls of a missing directory: {ls}");
    let output = ls["output"].as_str().unwrap();
    assert!(output.contains("No such file or directory"), "{ls}");
    assert!(!output.contains("ops@example.com"), "redacted: {ls}");
    assert_eq!(alpha["diagnostics"].as_array().unwrap().len(), 1);
    assert!(conf.is_dir());

    let show = &beta["diagnostics"][0];
    assert!(show["command"]
        .as_str()
        .unwrap()
        .ends_with("-m pip show PyYAML"));
    assert_eq!(
        (show["ran"].as_bool(), show["exit_code"].as_i64()),
        (Some(false), None)
    );
    assert!(
        show["note"].as_str().unwrap().contains("only read"),
        "{show}"
    );
    // Only the fix and the verification reached the stand-in: the refused diagnostic did not.
    assert_eq!(
        std::fs::read_to_string(&pip_log).unwrap(),
        "install PyYAML\nshow PyYAML\n"
    );
    assert_eq!(beta["fixes"][0]["exit_code"], 0);
    assert_eq!(beta["verification"][0]["exit_code"], 0);

    // The diagnostics are not in the healing playbook; heal-1.json has them as they ran.
    let yml = heal_playbook(&s);
    assert!(!yml.contains("- \"ls\""), "{yml}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.session().join("heal-1.json")).unwrap())
            .unwrap();
    let step0 = |h: &str| {
        plan["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["host"] == h)
            .unwrap()["steps"][0]
            .clone()
    };
    assert_eq!(step0("alpha")["exit_code"], 2, "{plan:#}");
    assert_eq!(step0("beta")["status"], "refused", "{plan:#}");
}
