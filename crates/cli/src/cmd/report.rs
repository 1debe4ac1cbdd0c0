//! `pipeguard report`: the healing analytics of a running server, as tables or JSON.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    #[value(alias = "table")]
    Text,
    Json,
}

/// Where the pipeguard server is: `--server`, `--url` or `PIPEGUARD_URL`.
#[derive(Args)]
pub struct ServerUrl {
    /// Base URL of the pipeguard server.
    #[arg(
        long = "server",
        visible_alias = "url",
        env = "PIPEGUARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base: String,
}

impl ServerUrl {
    /// The URL of `path` (which starts with `/`) on the server.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }
}

#[derive(Args)]
pub struct ReportArgs {
    /// Base URL of the pipeguard server.
    #[arg(
        long,
        visible_alias = "server",
        env = "PIPEGUARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Calls the server's API with the token in `PIPEGUARD_TOKEN`: `body` is sent as JSON. An
/// answer outside 2xx is an error carrying the server's own message, so the user sees why.
pub fn call(method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method, url);
        if let Ok(token) = std::env::var("PIPEGUARD_TOKEN") {
            req = req.bearer_auth(token.trim());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(|e| unreachable(url, &e))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        let v: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let why = v
                .as_ref()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            if status == reqwest::StatusCode::UNAUTHORIZED {
                anyhow::bail!(
                    "{url} answered {status}: {why}\n\
                     set PIPEGUARD_TOKEN to a token from `pipeguard token create`"
                );
            }
            anyhow::bail!("{url} answered {status}: {why}");
        }
        v.context("the server's answer is not JSON")
    })
}

/// No server answered: say how to get one rather than only what failed.
fn unreachable(url: &str, e: &reqwest::Error) -> anyhow::Error {
    let base = url.split("/api/").next().unwrap_or(url);
    if e.is_connect() || e.is_timeout() {
        anyhow::anyhow!(
            "cannot reach a pipeguard server at {base}: start one with `pipeguard serve` (or try \
             `pipeguard demo`), or pass --url URL (or set PIPEGUARD_URL) to reach another"
        )
    } else {
        anyhow::anyhow!("cannot reach {url}: {e}")
    }
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let url = format!("{}/api/v1/stats", args.url.trim_end_matches('/'));
    let stats = call(reqwest::Method::GET, &url, None)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
        Format::Text => print!("{}", render(&stats)),
    }
    Ok(ExitCode::SUCCESS)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) if n.is_f64() => format!("{:.0}%", n.as_f64().unwrap_or(0.0) * 100.0),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(title: &str, key: &str, rows: &[Value]) -> String {
    let mut out = format!("{title}\n");
    out += &format!(
        "  {:<24} {:>8} {:>7} {:>7} {:>9} {:>8}\n",
        key, "sessions", "healed", "failed", "escalated", "success"
    );
    for r in rows {
        out += &format!(
            "  {:<24} {:>8} {:>7} {:>7} {:>9} {:>8}\n",
            cell(&r[key]),
            cell(&r["sessions"]),
            cell(&r["healed"]),
            cell(&r["failed"]),
            cell(&r["escalated"]),
            cell(&r["healing_success_rate"])
        );
    }
    out
}

fn duration(ms: &Value) -> String {
    match ms.as_i64() {
        Some(ms) if ms >= 60_000 => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}

fn render(s: &Value) -> String {
    let empty = vec![];
    let mut out = String::new();
    out += &table(
        "By category",
        "category",
        s["by_category"].as_array().unwrap_or(&empty),
    );
    out += "\n";
    out += &table(
        "By platform",
        "platform",
        s["by_platform"].as_array().unwrap_or(&empty),
    );
    if let Some(hosts) = s["by_host"].as_array().filter(|a| !a.is_empty()) {
        out += "\n";
        out += &table("By host", "host", hosts);
    }
    let t = &s["time_to_green_ms"];
    let h = &s["time_to_handoff_ms"];
    let r = &s["retry"];
    out += &format!(
        "\nTime to green (healed sessions: {}): median {}, p90 {}\n\
         Time to hand-off (failed or escalated: {}): median {}, p90 {}\n\
         Retry success: {} of {} sessions re-run ({})\n\
         Compute spent on heals: {} min (estimated)\nEscalations: {}\nFlaky tests: {}\n",
        cell(&t["count"]),
        duration(&t["median"]),
        duration(&t["p90"]),
        cell(&h["count"]),
        duration(&h["median"]),
        duration(&h["p90"]),
        cell(&r["healed"]),
        cell(&r["sessions"]),
        cell(&r["success_rate"]),
        s["heal_compute_minutes"]["estimated"]
            .as_f64()
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into()),
        cell(&s["escalations"]),
        cell(&s["flaky_tests"])
    );
    let v = &s["verdicts"];
    if v["count"].as_i64().unwrap_or(0) > 0 {
        out += &format!(
            "\nHuman verdicts: {}, pipeguard agreed on {} ({})\n",
            cell(&v["count"]),
            cell(&v["agreed"]),
            cell(&v["agreement_rate"])
        );
        for c in v["confusion"].as_array().into_iter().flatten() {
            out += &format!(
                "  said {:<22} human {:<22} {:>4}\n",
                cell(&c["diagnosed"]),
                cell(&c["human"]),
                cell(&c["count"])
            );
        }
    }
    if let Some(fps) = s["top_fingerprints"].as_array().filter(|a| !a.is_empty()) {
        out += "\nTop fingerprints\n";
        for f in fps {
            out += &format!(
                "  {:<18} {:<22} {:>4} sessions, {} healed\n",
                cell(&f["fingerprint"]),
                cell(&f["category"]),
                cell(&f["sessions"]),
                cell(&f["healed"])
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_from_stats() {
        let s = serde_json::json!({
            "by_category": [{"category": "network", "sessions": 3, "healed": 2, "failed": 1, "escalated": 0, "healing_success_rate": 0.6667}],
            "by_platform": [{"platform": "github", "sessions": 3, "healed": 2, "failed": 1, "escalated": 0, "healing_success_rate": null}],
            "time_to_green_ms": {"count": 2, "median": 300000, "p90": 4500},
            "escalations": 0,
            "top_fingerprints": [{"fingerprint": "ab12", "category": "network", "sessions": 3, "healed": 2}]
        });
        let text = render(&s);
        assert!(text.contains("network"), "{text}");
        assert!(text.contains("67%"), "{text}");
        assert!(text.contains("median 5m00s, p90 4.5s"), "{text}");
        assert!(text.contains("ab12"), "{text}");
        // Fields of older servers may be missing: shown as "-", never a panic.
        assert!(text.contains("Retry success: - of - sessions"), "{text}");
    }

    #[test]
    fn renders_hosts_retries_handoff_compute_and_verdicts() {
        let s = serde_json::json!({
            "by_category": [], "by_platform": [],
            "by_host": [{"host": "web-1", "sessions": 2, "healed": 1, "failed": 1, "escalated": 0, "healing_success_rate": 0.5}],
            "retry": {"sessions": 4, "healed": 3, "success_rate": 0.75},
            "time_to_green_ms": {"count": 0, "median": null, "p90": null},
            "time_to_handoff_ms": {"count": 2, "median": 90000, "p90": 120000},
            "heal_compute_minutes": {"estimated": 12.34, "sessions_with_run_times": 4},
            "escalations": 1,
            "flaky_tests": 2,
            "verdicts": {"count": 4, "agreed": 1, "agreement_rate": 0.25,
                         "confusion": [{"diagnosed": "unknown", "human": "network", "count": 3}]},
            "top_fingerprints": []
        });
        let text = render(&s);
        for want in [
            "By host",
            "web-1",
            "50%",
            "Retry success: 3 of 4 sessions re-run (75%)",
            "Time to hand-off (failed or escalated: 2): median 1m30s, p90 2m00s",
            "Compute spent on heals: 12.3 min",
            "Flaky tests: 2",
            "Human verdicts: 4, pipeguard agreed on 1 (25%)",
            "said unknown",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
