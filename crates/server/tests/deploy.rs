//! The deployment files in deploy/ agree with the server: the Kubernetes config parses as a
//! pipeguard configuration, and every probe and scrape path they name answers without a
//! credential.

mod common;

use common::*;

fn repo_file(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The TOML embedded in the ConfigMap under `pipeguard.toml: |`.
fn configmap_toml() -> String {
    let yaml = repo_file("deploy/kubernetes/configmap.yaml");
    let start = yaml
        .find("pipeguard.toml: |")
        .expect("no pipeguard.toml key");
    yaml[start..]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_config_is_a_valid_pipeguard_configuration() {
    let c = pipeguard_server::config::Config::from_toml(&configmap_toml()).unwrap();
    assert_eq!(c.worker.concurrency, 8);
    assert_eq!(c.retention.days, 30);
}

#[tokio::test]
async fn the_probe_and_scrape_paths_of_the_manifests_answer_without_a_credential() {
    let yaml = repo_file("deploy/kubernetes/deployment.yaml");
    let paths: Vec<&str> = yaml
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("path: ")
                .or_else(|| l.strip_prefix("prometheus.io/path: "))
        })
        .collect();
    assert!(paths.len() >= 3, "{paths:?}");
    let app = TestApp::start().await;
    let anon = reqwest::Client::new();
    for p in paths {
        let r = anon.get(format!("{}{p}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
    app.stop().await;
}
