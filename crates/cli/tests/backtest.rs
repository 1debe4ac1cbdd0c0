//! `pipeguard backtest` on a SQLite database filled through the store, as the worker fills it.

use pipeguard_core::event::{FailedJob, FailureEvent, Platform};
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::planner::{self, Known};
use pipeguard_core::policy::Capabilities;
use pipeguard_core::{Analyzer, Policy};
use pipeguard_store::{Intake, SessionStatus, SessionUpdate, Store, Transition};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const NETWORK: &str = "Cloning into 'app'...\nfatal: unable to access 'https://gitlab.example.com/acme/app.git/': Could not resolve host: gitlab.example.com\nERROR: Job failed: exit code 1\n";
const COMPILE: &str = "   Compiling app v0.1.0\nerror[E0425]: cannot find value `total` in this scope\n --> src/main.rs:4:5\nerror: could not compile `app` (bin \"app\") due to 1 previous error\nERROR: Job failed: exit code 101\n";

/// Stores one analysed session: the diagnosis and plan the worker would have stored.
async fn session(store: &Store, run: &str, log: &str, status: SessionStatus, heal_attempts: i64) {
    let event = FailureEvent {
        platform: Some(Platform::Gitlab),
        repository: "acme/app".into(),
        run_id: run.into(),
        attempt: 1,
        workflow: "ci".into(),
        jobs: vec![FailedJob {
            id: "7".into(),
            name: "build".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let id = store
        .intake(
            Platform::Gitlab,
            &format!("d-{run}"),
            run,
            Intake::Failure(event.clone()),
        )
        .await
        .unwrap()
        .outcome
        .session_id()
        .unwrap()
        .to_string();
    let diag = Analyzer::builtin().analyze(log.as_bytes());
    let known = Known {
        capabilities: Capabilities {
            retry: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let jobs = [JobDiagnosis {
        job: event.jobs[0].clone(),
        diagnosis: diag.clone(),
    }];
    let mut stored = planner::replay(&jobs, &event, &known, &Policy::default()).unwrap();
    // As stored before plans recorded their facts: the backtest infers them.
    stored.facts = None;
    let plan = stored.plan.clone();
    let mut diagnosis = serde_json::to_value(&diag).unwrap();
    diagnosis["jobs"] = json!([{"job": event.jobs[0], "diagnosis": diag}]);
    let moved = store
        .update_session(
            &id,
            Transition::fixture(&[SessionStatus::Received], status, "test"),
            SessionUpdate {
                category: Some(diag.category.to_string()),
                confidence: Some(diag.confidence),
                fingerprint: Some(diag.fingerprint.clone()),
                strategy: Some(plan.strategy.as_str().into()),
                transient: Some(diag.transient),
                diagnosis: Some(diagnosis),
                plan: Some(stored),
                reason: Some(plan.reason.clone()),
                heal_attempts: Some(heal_attempts),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(moved);
}

fn database(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("pipeguard.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        session(&store, "1", NETWORK, SessionStatus::Healed, 1).await;
        session(&store, "2", COMPILE, SessionStatus::Escalated, 0).await;
        session(&store, "3", NETWORK, SessionStatus::Healed, 2).await;
        session(&store, "4", NETWORK, SessionStatus::Failed, 2).await;
        store.close().await;
    });
    url
}

fn backtest(dir: &Path, url: &str, policy: &str, format: &str) -> Output {
    let p = dir.join("candidate.toml");
    std::fs::write(&p, policy).unwrap();
    Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .args([
            "backtest",
            "--format",
            format,
            "--database-url",
            url,
            "--policy",
        ])
        .arg(&p)
        .env_remove("PIPEGUARD_DATABASE_URL")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_current_policy_changes_nothing_and_a_stricter_one_shows_what_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = database(dir.path());

    let same = json_of(&backtest(dir.path(), &url, "", "json"));
    assert_eq!(same["sessions"], 4);
    assert_eq!(same["decided"], 4);
    assert_eq!(same["changed"], 0, "{same:#}");

    // No heal attempt allowed: every re-run becomes an escalation, the genuine one stays.
    let strict = json_of(&backtest(
        dir.path(),
        &url,
        "[healing]\nmax_attempts = 0\n",
        "json",
    ));
    assert_eq!(strict["changed"], 3, "{strict:#}");
    let changes = strict["changes"].as_array().unwrap();
    assert!(changes
        .iter()
        .all(|c| c["old_decision"] == "act" && c["new_decision"] == "escalate"));
    assert!(changes.iter().all(|c| c["category"] == "network"));
    assert_eq!(strict["totals"][0]["healed"], 2);

    // One attempt: the sessions that needed a second one would have been escalated after
    // the first, one of which had healed on its second attempt.
    let one = json_of(&backtest(dir.path(), &url, "max_attempts = 1\n", "json"));
    assert_eq!(one["changed"], 2, "{one:#}");
    let runs: Vec<&Value> = one["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["run_id"])
        .collect();
    assert_eq!(runs, ["3", "4"]);
    assert!(one["changes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("the limit is 1"));
    assert_eq!(one["totals"][0]["healed"], 1);

    let text = backtest(dir.path(), &url, "min_confidence = 0.99\n", "text");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(
            "3 of 4 decided sessions would change: 3 act→escalate (2 of them had healed)"
        ),
        "{text}"
    );
    assert!(text.contains("below the 0.99 needed to act"), "{text}");
}

#[test]
fn a_missing_database_or_a_bad_policy_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("nope.db").display());
    let out = backtest(dir.path(), &missing, "max_attempts = 1\n", "text");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(
        !dir.path().join("nope.db").exists(),
        "a backtest must not create a database"
    );

    let url = database(dir.path());
    let out = backtest(dir.path(), &url, "max_atempts = 1\n", "text");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"max_atempts\""), "{err}");

    let out = backtest(
        dir.path(),
        &url,
        "[healing]\nmax_attempts = 1\n[server]\nx = 1\n",
        "text",
    );
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(env!("CARGO_BIN_EXE_pipeguard"))
        .args(["backtest", "--database-url", &url, "--policy"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.toml"));
}
