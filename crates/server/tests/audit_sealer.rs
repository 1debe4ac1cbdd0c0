//! The running server's sealer against someone who edits an entry and removes the seals from
//! there on, hoping the sealer chains the forged entries again.

mod common;

use common::TestApp;
use pipeguard_store::{AuditAnchor, ProblemKind, Store};
use serde_json::{json, Value};
use std::time::Duration;

/// Writes `n` audit entries through the API (token changes), as an admin would.
async fn token_changes(app: &TestApp, n: usize) {
    for i in 0..n {
        let r = app
            .http
            .post(format!("{}/api/v1/tokens", app.base))
            .json(&json!({"name": format!("t{i}"), "role": "viewer"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

async fn audit(app: &TestApp) -> Value {
    app.get("/api/v1/audit?verify=true&limit=1000").await
}

/// Waits until the sealer has sealed at least `n` entries.
async fn sealed(app: &TestApp, n: i64) -> Value {
    for _ in 0..100 {
        let a = audit(app).await;
        if a["head"]["seq"].as_i64().unwrap_or(0) >= n {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sealer did not seal {n} entries: {}", audit(app).await);
}

#[tokio::test]
async fn the_sealer_never_rechains_entries_whose_seals_were_removed() {
    let app = TestApp::start().await;
    token_changes(&app, 40).await;
    let before = sealed(&app, 40).await;
    assert_eq!(before["intact"], true, "{before}");
    let head: i64 = before["head"]["seq"].as_i64().unwrap();

    let db = Store::connect(&app.db_url).await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'nobody' WHERE seq = 30",
        "UPDATE audit_log SET seq = NULL, hash = NULL, prev_hash = NULL WHERE seq >= 30",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    // Four seconds of a running server: four rounds of its sealer.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = audit(&app).await;
    assert_eq!(after["intact"], false, "{after}");
    assert_eq!(after["problem"]["kind"], "truncated", "{after}");
    let nobody = after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["actor"] == "nobody")
        .unwrap();
    assert!(nobody["seq"].is_null(), "re-sealed: {nobody}");

    // `pipeguard audit verify` reads the key and head files the server keeps.
    let (_github, dir, url) = app.stop().await;
    let base = dir.path().join("pipeguard.db");
    let anchor = AuditAnchor::files(&base, None, false).unwrap();
    let r = db.with_audit_anchor(anchor).verify_audit().await.unwrap();
    let p = r.problem.unwrap();
    assert_eq!(p.kind, ProblemKind::Truncated);
    assert!(
        p.message.contains(&format!(
            "head file says seq {head}, the table ends at seq 29"
        )),
        "{} ({url})",
        p.message
    );
}
