//! `pipeguard report`: the healing analytics of a running server, as tables or JSON.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Base URL of the pipeguard server.
    #[arg(long, env = "PIPEGUARD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let url = format!("{}/api/v1/stats", args.url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stats: Value = rt.block_on(async {
        let r = reqwest::get(&url)
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
        r.json().await.context("the server's answer is not JSON")
    })?;
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
    let t = &s["time_to_green_ms"];
    out += &format!(
        "\nTime to green (healed sessions: {}): median {}, p90 {}\nEscalations: {}\n",
        cell(&t["count"]),
        duration(&t["median"]),
        duration(&t["p90"]),
        cell(&s["escalations"])
    );
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
    }
}
