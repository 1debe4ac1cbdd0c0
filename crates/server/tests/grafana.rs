//! The shipped Grafana dashboard queries only metrics a running server exports, so renaming a
//! metric breaks this test until the dashboard follows.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const DASHBOARD: &str = include_str!("../../../contrib/grafana/pipeguard-dashboard.json");

/// Series names the exposition defines: sample names, and the names its `# TYPE` lines imply
/// (a counter family with no sample yet still defines `NAME_total`).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_count", "_sum"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("pipeguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_dashboard_metric_is_exported() {
    let dash: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    // Importable: a title, a Prometheus data source variable every panel uses, unique ids.
    assert_eq!(dash["title"], "pipeguard");
    let vars = dash["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .expect("a Prometheus data source variable");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let ids: BTreeSet<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");

    let app = TestApp::start().await;
    // Families without a sample are not exported at all: give each one a sample first.
    mount_run(&app.github, 5, 1, &[(50, "build", "failure", COMPILE_LOG)]).await;
    let r = app
        .post_github("workflow_run", "g-1", &workflow_run(5, 1, "failure", "CI"))
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "escalated").await;
    let (code, _) = api_call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/sessions/{id}/verdict"),
        Some(r#"{"category": "compilation_error"}"#),
    )
    .await;
    assert_eq!(code, 201);
    let text = metrics_text(&app).await;
    let have = exported(&text);
    let mut queried = BTreeSet::new();
    for p in panels {
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} queries no pipeguard metric");
            queried.extend(names);
        }
    }
    let missing: Vec<&String> = queried.iter().filter(|m| !have.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not exported by /metrics:\n{text}"
    );
    // The panels the dashboard promises are there.
    for m in [
        "pipeguard_sessions_total",
        "pipeguard_time_to_green_seconds_bucket",
        "pipeguard_webhooks_received_total",
        "pipeguard_queue_depth",
        "pipeguard_platform_api_errors_total",
        "pipeguard_flaky_tests",
        "pipeguard_human_verdicts_total",
    ] {
        assert!(queried.contains(m), "no panel shows {m}");
    }
    app.stop().await;
}

#[test]
fn metric_names_are_found_in_exprs() {
    assert_eq!(
        metric_names("sum(a{x=\"pipeguard_no\"}) / sum(rate(pipeguard_b_total[5m])) + pipeguard_c"),
        vec!["pipeguard_no", "pipeguard_b_total", "pipeguard_c"]
    );
    let names =
        exported("# TYPE pipeguard_x counter\n# TYPE pipeguard_h histogram\npipeguard_g 3\n");
    for n in [
        "pipeguard_x_total",
        "pipeguard_h_bucket",
        "pipeguard_h_sum",
        "pipeguard_g",
    ] {
        assert!(names.contains(n), "{n}");
    }
}
