//! `pipeguard analyze --explain` against a mock OpenAI-compatible endpoint.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LOG: &str = "Run ./scripts/configure.sh\n\
curl -H 'Authorization: token ghp_0123456789abcdefghijABCDEFGHIJ012345' https://api.github.com/repos\n\
frobnicator: widget quota exhausted on shard 7\n\
NOTE: nothing else to report\n\
Error: Process completed with exit code 75.\n";

/// The binary with no model settings from the caller's environment, run in `dir` (so no
/// ./pipeguard.toml leaks in).
fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    c.current_dir(dir);
    for k in [
        "PIPEGUARD_LLM_URL",
        "PIPEGUARD_LLM_MODEL",
        "PIPEGUARD_LLM_API_KEY",
        "PIPEGUARD_LLM_TIMEOUT_SECONDS",
    ] {
        c.env_remove(k);
    }
    c.env("NO_COLOR", "1");
    c
}

fn log_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("job.log");
    std::fs::write(&p, LOG).unwrap();
    p
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn answer() -> Value {
    let content = json!({
        "category": "infrastructure",
        "root_cause": "The frobnicator service ran out of widget quota on shard 7, so ./configure could not reserve one.",
        "confidence": 0.7,
        "diagnostic_commands": ["systemctl status frobnicator"],
        "fix_commands": ["sudo systemctl restart frobnicator", "sudo sed -i s/quota=10/quota=20/ /etc/frobnicator.conf", "rm -rf /"],
        "verification_commands": ["frobnicator --check"],
        "rollback_commands": []
    });
    json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 321}
    })
}

async fn model(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(answer())
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn without_a_model_it_says_so_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.args(["analyze", "--explain"]).arg(log_file(dir.path()));
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--explain needs a model"), "{err}");
    assert!(
        err.contains("PIPEGUARD_LLM_URL") && err.contains("PIPEGUARD_LLM_MODEL"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Half a setting is an error too, not a silent "off".
    let mut c = bin(dir.path());
    c.env("PIPEGUARD_LLM_URL", "http://127.0.0.1:11434/v1")
        .args(["analyze", "--explain"])
        .arg(log_file(dir.path()));
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PIPEGUARD_LLM_MODEL is not"));

    // And without --explain nothing changes.
    let mut c = bin(dir.path());
    c.args(["analyze"]).arg(log_file(dir.path()));
    let out = run(c).await;
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("explanation"));
}

#[tokio::test]
async fn the_explanation_is_printed_under_the_rules_diagnosis() {
    let server = model(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("PIPEGUARD_LLM_URL", format!("{}/v1", server.uri()))
        .env("PIPEGUARD_LLM_MODEL", "test-model")
        .args([
            "analyze",
            "--explain",
            "--host-os",
            "Ubuntu 22.04",
            "--package-manager",
            "apt",
        ])
        .arg(log_file(dir.path()));
    let out = run(c).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rules = text
        .find("category:    unknown")
        .expect("the rules' diagnosis");
    let expl = text
        .find(&format!(
            "explanation: llm:test-model via {}/v1 (used)",
            server.uri()
        ))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(rules < expl, "{text}");
    assert!(
        text.contains(
            "category:   infrastructure (confidence 0.70; decides: the rules said unknown)"
        ),
        "{text}"
    );
    assert!(
        text.contains("root cause: The frobnicator service ran out of widget quota"),
        "{text}"
    );
    assert!(
        text.contains("diagnostic [low] systemctl status frobnicator"),
        "{text}"
    );
    assert!(text.contains("fix        [medium, needs approval] sudo sed -i s/quota=10/quota=20/ /etc/frobnicator.conf"), "{text}");
    assert!(
        text.contains("fix        [refused] rm -rf /\n               refused: "),
        "{text}"
    );

    // The token in the log never left the process.
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let sent = String::from_utf8_lossy(&reqs[0].body);
    assert!(!sent.contains("ghp_0123456789"), "{sent}");
    assert!(
        sent.contains("host: OS Ubuntu 22.04, package manager apt"),
        "{sent}"
    );
    // The line that explains the failure is sent, whatever the rules picked.
    assert!(sent.contains("the rules picked line(s)"), "{sent}");
    assert!(
        sent.contains("|      3: frobnicator: widget quota exhausted on shard 7"),
        "{sent}"
    );
}

#[tokio::test]
async fn json_carries_the_explanation_object() {
    let server = model(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    // The model comes from the [llm] table of --config, beside [[signatures]].
    let config = dir.path().join("pipeguard.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nurl = \"{}/v1\"\nmodel = \"from-file\"\ntimeout_seconds = 5\n\n[[signatures]]\nid = \"frob\"\ncategory = \"infrastructure\"\npattern = \"this never matches anything\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let mut c = bin(dir.path());
    c.args(["analyze", "--explain", "--format", "json", "--config"])
        .arg(&config)
        .arg(log_file(dir.path()));
    let out = run(c).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["category"], "unknown");
    let e = &v["explanation"];
    assert_eq!(e["outcome"], "used");
    assert_eq!(
        e["source"],
        format!("llm:from-file via {}/v1", server.uri())
    );
    assert_eq!(e["tokens"], 321);
    assert_eq!(e["answer"]["category"], "infrastructure");
    let refused = e["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["command"] == "rm -rf /")
        .unwrap();
    assert_eq!(refused["risk"], "refused");
    assert_eq!(refused["runnable"], false);
    let prompt: Value = serde_json::from_str(e["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(prompt[0]["role"], "system");

    // An unknown key under [llm] is an error, not a silent default.
    std::fs::write(
        &config,
        "[llm]\nurl = \"http://127.0.0.1:1/v1\"\nmodle = \"x\"\n",
    )
    .unwrap();
    let mut c = bin(dir.path());
    c.args(["analyze", "--explain", "--config"])
        .arg(&config)
        .arg(log_file(dir.path()));
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("modle"));
}

#[tokio::test]
async fn a_model_that_times_out_leaves_the_rules_diagnosis_promptly() {
    let server = model(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("PIPEGUARD_LLM_URL", format!("{}/v1", server.uri()))
        .env("PIPEGUARD_LLM_MODEL", "slow-model")
        .env("PIPEGUARD_LLM_TIMEOUT_SECONDS", "1")
        .args(["analyze", "--explain"])
        .arg(log_file(dir.path()));
    let started = Instant::now();
    let out = run(c).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("category:    unknown"), "{text}");
    assert!(
        text.contains("(timed_out)\n  llm: timed out after 1 s — the rules' diagnosis stands"),
        "{text}"
    );
}
