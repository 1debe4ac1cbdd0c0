//! The platform conformance suite: the same scenarios against every platform's stand-in
//! (crates/sim), each wired to its own pipeguard server both ways. A platform conforms when a
//! transient job is retried once, a genuine failure is escalated with its evidence, a deploy
//! waits for a person, a wrong secret is refused, the outcome is followed to green, and a call
//! whose answer was lost is never made twice.

mod common;
mod stand_ins;

use common::*;
use pipeguard_sim::logs::sample;
use pipeguard_sim::{hmac_hex, Fault, JobSpec, SentDelivery, Signing};
use serde_json::{json, Value};
use stand_ins::{Row, Stand, ROWS};
use std::future::Future;
use std::time::Duration;

fn log(category: &str) -> &'static str {
    sample(category).unwrap().log
}

/// Fails once for a network reason, then passes.
fn flaky(name: &str) -> JobSpec {
    JobSpec::new(name)
        .duration_ms(50)
        .fails(log("network"))
        .passes()
}

fn passing(name: &str, ms: u64) -> JobSpec {
    JobSpec::new(name).duration_ms(ms).passes()
}

/// Runs `scenario` against every platform at once; fails if it fails on any.
async fn on_every_platform<F, Fut>(scenario: F)
where
    F: Fn(&'static Row) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut runs = tokio::task::JoinSet::new();
    for row in ROWS {
        runs.spawn(scenario(row));
    }
    while let Some(done) = runs.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_job_is_retried_once_despite_duplicate_deliveries() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        p.run(vec![passing("lint", 50), flaky("fetch")]).await;
        let s = p.session_status("healed").await;
        let name = p.name();
        assert_eq!(s["platform"], name);
        assert_eq!(s["repository"], row.repo, "{name}");
        assert_eq!(s["category"], "network", "{name}");
        assert_eq!(s["heal_attempts"], 1, "{name}");
        assert_eq!(s["actions"].as_array().unwrap().len(), 1, "{name}: {s:#}");
        let evidence = s["evidence"].to_string();
        assert!(
            evidence.contains("Connection reset by peer"),
            "{name}: {evidence}"
        );
        // Every delivery again, as a platform redelivers: still one session, one call.
        let sent = p.sim.deliveries().await;
        assert!(!sent.is_empty(), "{name}");
        for d in &sent {
            let r = p.resend(d, true).await;
            assert!(r.status().is_success(), "{name}: {}", r.status());
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            if let Some(joined) = answer.get("session_id").filter(|v| !v.is_null()) {
                assert_eq!(joined, &s["id"], "{name}: {answer}");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = p.heal_calls().await;
        assert_eq!(calls.len(), 1, "{name}: one call to heal: {calls:#?}");
        assert!(calls[0].path().ends_with(row.retry), "{name}: {calls:#?}");
        let history = p.app.get("/pipeline/healing/history").await;
        assert_eq!(history["total_sessions"], 1, "{name}");
        p.session_status("healed").await;
        p.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_failure_is_escalated_with_evidence_and_never_retried() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        let compile = log("compilation_error");
        let build = JobSpec::new("build").duration_ms(50).fails(compile);
        p.run(vec![passing("lint", 50), build]).await;
        let s = p.session_status("escalated").await;
        let name = p.name();
        assert_eq!(s["category"], "compilation_error", "{name}");
        let evidence = s["evidence"].as_array().unwrap();
        assert!(
            evidence.iter().any(|e| e["text"]
                .as_str()
                .unwrap()
                .contains("error[E0308]: mismatched types")),
            "{name}: {evidence:?}"
        );
        assert!(
            evidence.iter().all(|e| e["line"].as_u64().unwrap() >= 1),
            "{name}: {evidence:?}"
        );
        let status = p.app.get("/pipeline/status").await;
        assert_eq!(status["pipeline_healing"]["escalated"], 1, "{name}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(p.heal_calls().await.is_empty(), "{name}: retried a bug");
        p.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_waits_for_approval_and_is_retried_once_when_approved() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        let deploy = flaky("deploy-production")
            .stage("deploy")
            .environment("production");
        p.run_in(row.deploy_repo, vec![deploy]).await;
        let s = p.session_status("awaiting_approval").await;
        let name = p.name();
        assert_eq!(s["category"], "network", "{name}");
        let approve = format!(
            "{}/api/v1/sessions/{}/approve",
            p.app.base,
            s["id"].as_str().unwrap()
        );
        let viewer = authenticated(&p.app.token("vic", "viewer").await);
        let r = viewer.post(&approve).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 403, "{name}: a viewer cannot approve");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(p.heal_calls().await.is_empty(), "{name}: re-ran unapproved");

        let ops = authenticated(&p.app.token("olga", "operator").await);
        let by_alice = json!({"by": "alice"});
        let r = ops.post(&approve).json(&by_alice).send().await.unwrap();
        assert_eq!(r.status(), 202, "{name}");
        let s = p.session_status("healed").await;
        // The approver is the credential, not the body's `by`.
        let timeline = s["timeline"].to_string();
        assert!(timeline.contains("approved by olga"), "{name}: {timeline}");
        assert!(!timeline.contains("alice"), "{name}: {timeline}");
        let r = ops.post(&approve).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 409, "{name}: a second approval is a conflict");
        assert_eq!(p.heal_calls().await.len(), 1, "{name}");
        p.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_none_is_401_and_nothing_is_stored() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        p.deliver_with("not-the-secret").await;
        p.run(vec![flaky("fetch")]).await;
        let name = p.name();
        let sent = wait_for_deliveries(&p).await;
        for d in &sent {
            assert_eq!(d.status, Some(401), "{name}: {:?}", d.delivery.event);
        }
        let r = p.resend(&sent[0], false).await;
        assert_eq!(r.status(), 401, "{name}: no credential at all");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{name}");
        let list = p.app.get("/api/v1/sessions").await;
        assert_eq!(list["sessions"], json!([]), "{name}");
        let history = p.app.get("/pipeline/healing/history").await;
        assert_eq!(history["total_sessions"], 0, "{name}");
        assert!(p.heal_calls().await.is_empty(), "{name}");
        if let Signing::Hmac { header, prefix } = sent[0].delivery.signing {
            signs_its_own_body_only(&sent[0], header, prefix, row.secret, name).await;
        }
        p.stop().await;
    })
    .await;
}

/// The right secret's signature of a delivery is refused on another body, accepted on its own.
async fn signs_its_own_body_only(
    sent: &SentDelivery,
    header: &str,
    prefix: &str,
    secret: &str,
    name: &str,
) {
    let d = &sent.delivery;
    let signature = format!("{prefix}{}", hmac_hex(secret, &d.body));
    let mut tampered = d.body.clone();
    tampered.extend_from_slice(b" ");
    let post = |body: Vec<u8>| {
        let mut req = reqwest::Client::new()
            .post(sent.url.clone().unwrap())
            .body(body)
            .header(header, &signature);
        for (k, v) in d
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(header))
        {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = post(tampered).await.unwrap();
    assert_eq!(r.status(), 401, "{name}: the signature of another body");
    let r = post(d.body.clone()).await.unwrap();
    assert!(r.status().is_success(), "{name}: {}", r.status());
}

/// Every delivery of the run so far, once the first has been answered.
async fn wait_for_deliveries(p: &Stand) -> Vec<SentDelivery> {
    for _ in 0..200 {
        let sent = p.sim.deliveries().await;
        if sent.iter().any(|d| d.status.is_some()) {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}: the stand-in never delivered", p.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_is_followed_to_green_and_counted() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        p.run(vec![flaky("test"), passing("package", 300)]).await;
        let s = p.session_status("healed").await;
        let name = p.name();
        let ttg = s["time_to_green_ms"].as_i64().unwrap_or(-1);
        assert!(
            (0..stand_ins::WAIT.as_millis() as i64).contains(&ttg),
            "{name}: {s:#}"
        );
        let status = p.app.get("/pipeline/status").await;
        assert_eq!(
            status["pipeline_healing"]["healing_success_rate"], 1.0,
            "{name}"
        );
        let stats = p.app.get("/api/v1/stats").await;
        assert_eq!(stats["time_to_green_ms"]["median"], ttg, "{name}: {stats:#}");
        assert_eq!(stats["by_category"][0]["category"], "network", "{name}");
        assert_eq!(stats["by_category"][0]["healing_success_rate"], 1.0);
        let metrics = p
            .app
            .http
            .get(format!("{}/metrics", p.app.base))
            .send()
            .await
            .unwrap();
        let kind = metrics.headers()["content-type"].to_str().unwrap();
        assert!(kind.contains("openmetrics"), "{name}: {kind}");
        let text = metrics.text().await.unwrap();
        for line in [
            format!(
                "pipeguard_sessions_total{{platform=\"{name}\",category=\"network\",outcome=\"healed\"}} 1"
            ),
            format!("pipeguard_webhooks_received_total{{platform=\"{name}\",status=\"20"),
            "pipeguard_time_to_green_seconds_count 1".into(),
            "pipeguard_queue_depth ".into(),
        ] {
            assert!(text.contains(&line), "{name}: missing {line:?} in\n{text}");
        }
        p.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_answer_was_lost_is_never_made_twice() {
    on_every_platform(|row| async move {
        let p = Stand::start(row).await;
        // The platform acts on the first write, but its answer is lost on the way back.
        p.sim
            .inject(Fault::lose_answer("/", 502).method("POST"))
            .await;
        p.run(vec![flaky("fetch")]).await;
        let s = p
            .session(|s| s["status"] == "healed" || s["status"] == "escalated")
            .await;
        let name = p.name();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let calls = p.heal_calls().await;
        assert_eq!(calls.len(), 1, "{name}: {calls:#?}\n{s:#}");
        // Healed when the client could read that the re-run started; otherwise a person looks.
        if s["status"] == "escalated" {
            let reason = s["reason"].as_str().unwrap();
            assert!(
                reason.contains("did not confirm the re-run"),
                "{name}: {reason}"
            );
        }
        p.stop().await;
    })
    .await;
}
