//! `pipeguard flaky`: a server's flaky tests, most costly first, and its quarantine list.

use crate::cmd::report::{call, Format};
use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CmdArgs {
    /// Base URL of the pipeguard server.
    #[arg(
        long,
        visible_alias = "url",
        env = "PIPEGUARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Only this repository.
    #[arg(long)]
    repository: Option<String>,
    /// At most this many tests.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    format: Format,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Subcommand)]
enum Action {
    /// Tests whose failures are retried at once instead of escalated.
    Quarantine {
        #[command(subcommand)]
        op: QuarantineOp,
    },
}

#[derive(Subcommand)]
enum QuarantineOp {
    /// Quarantine a test of a repository.
    Add {
        #[arg(long)]
        repository: String,
        #[arg(long)]
        test: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who fixes it (default: CODEOWNERS of --file, the repository's default_owner, you).
        #[arg(long)]
        owner: Option<String>,
        /// The test's file, whose CODEOWNERS entry names the owner.
        #[arg(long)]
        file: Option<String>,
        /// Released after this many days at the latest (default 14).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Take a test out of quarantine.
    Remove {
        #[arg(long)]
        repository: String,
        #[arg(long)]
        test: String,
    },
    /// The quarantine list.
    List {
        #[arg(long)]
        repository: Option<String>,
    },
}

fn api(server: &str, path: &str) -> String {
    format!("{}/api/v1/{path}", server.trim_end_matches('/'))
}

fn query(pairs: &[(&str, &str)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Percent-encodes a query value (test names hold `::`, spaces, `/`, `#`).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let out = match args.action {
        None => {
            let limit = args.limit.to_string();
            let url = api(
                &args.server,
                &format!(
                    "flaky-tests{}",
                    query(&[
                        ("repository", args.repository.as_deref().unwrap_or("")),
                        ("limit", &limit)
                    ])
                ),
            );
            let v = call(Method::GET, &url, None)?;
            match args.format {
                Format::Json => serde_json::to_string_pretty(&v["flaky_tests"])? + "\n",
                Format::Text => render(&v),
            }
        }
        Some(Action::Quarantine { op }) => {
            let v = match op {
                QuarantineOp::Add {
                    repository,
                    test,
                    reason,
                    owner,
                    file,
                    expires_in_days,
                } => {
                    let mut body =
                        json!({"repository": repository, "test": test, "reason": reason});
                    for (k, v) in [
                        ("owner", json!(owner)),
                        ("file", json!(file)),
                        ("expires_in_days", json!(expires_in_days)),
                    ] {
                        if !v.is_null() {
                            body[k] = v;
                        }
                    }
                    call(Method::POST, &api(&args.server, "quarantine"), Some(&body))?
                }
                QuarantineOp::Remove { repository, test } => call(
                    Method::DELETE,
                    &api(
                        &args.server,
                        &format!(
                            "quarantine{}",
                            query(&[("repository", &repository), ("test", &test)])
                        ),
                    ),
                    None,
                )?,
                QuarantineOp::List { repository } => call(
                    Method::GET,
                    &api(
                        &args.server,
                        &format!(
                            "quarantine{}",
                            query(&[("repository", repository.as_deref().unwrap_or(""))])
                        ),
                    ),
                    None,
                )?,
            };
            match args.format {
                Format::Json => serde_json::to_string_pretty(&v)? + "\n",
                Format::Text => render_quarantine(&v),
            }
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn render(v: &Value) -> String {
    let tests = v["flaky_tests"].as_array().cloned().unwrap_or_default();
    if tests.is_empty() {
        return "No flaky tests seen.\n".into();
    }
    let mut out = format!(
        "{:<40} {:<28} {:>5} {:>6} {:>5} {:>6} {:>10} {}\n",
        "test", "repository", "runs", "failed", "flaky", "rate", "time lost", "quarantined"
    );
    for t in &tests {
        out += &format!(
            "{:<40} {:<28} {:>5} {:>6} {:>5} {:>5.0}% {:>9.0}s {}\n",
            s(&t["test"]),
            s(&t["repository"]),
            s(&t["runs"]),
            s(&t["failures"]),
            s(&t["flaky_failures"]),
            t["flakiness_rate"].as_f64().unwrap_or(0.0) * 100.0,
            t["time_lost_seconds"].as_f64().unwrap_or(0.0),
            if t["quarantined"] == true {
                "yes"
            } else {
                "no"
            }
        );
    }
    out + &worse(&tests)
}

/// The failure rate over all attempts (what retries hide) and the tests that got worse.
fn worse(tests: &[Value]) -> String {
    let worse: Vec<&Value> = tests
        .iter()
        .filter(|t| t["trend"]["worse_this_week"] == true)
        .collect();
    let mut out = String::from("\nfailure rate over all attempts, re-runs included:\n");
    for t in tests {
        out += &format!(
            "  {:<40} {:>5.0}% ({} of {} attempts)\n",
            s(&t["test"]),
            t["attempt_failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
            s(&t["failed_attempts"]),
            s(&t["runs_including_retries"])
        );
    }
    if worse.is_empty() {
        return out + "No test got worse this week.\n";
    }
    out += "Worse this week:\n";
    for t in worse {
        out += &format!(
            "  {:<40} {} failures in the last 7 days, {} the 7 before\n",
            s(&t["test"]),
            s(&t["trend"]["failures_this_week"]),
            s(&t["trend"]["failures_last_week"])
        );
    }
    out
}

fn render_quarantine(v: &Value) -> String {
    if v["removed"] == true {
        return format!(
            "{} is no longer quarantined in {}\n",
            s(&v["test"]),
            s(&v["repository"])
        );
    }
    let list = match v["quarantine"].as_array() {
        Some(l) => l.clone(),
        // One entry: the answer to `add`.
        None => vec![v.clone()],
    };
    if list.is_empty() {
        return "No quarantined tests.\n".into();
    }
    list.iter()
        .map(|q| {
            format!(
                "{:<40} {:<28} owner {} · {} green run(s) in a row · until {} · {}{}\n",
                s(&q["test"]),
                s(&q["repository"]),
                s(&q["owner"]),
                s(&q["passes_since"]),
                date(&q["expires_at"]),
                s(&q["reason"]),
                q["ticket_url"]
                    .as_str()
                    .map(|u| format!(" · {u}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// A date (UTC) from milliseconds since the epoch.
fn date(v: &Value) -> String {
    v.as_i64()
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .map(|t| format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_flaky_tests_and_quarantine() {
        let v = json!({"flaky_tests": [{"test": "api::upload", "repository": "o/r", "runs": 3, "failures": 1, "flaky_failures": 2, "flakiness_rate": 0.6667, "time_lost_seconds": 600.0, "quarantined": true}]});
        let text = render(&v);
        assert!(text.contains("api::upload"), "{text}");
        assert!(text.contains("67%"), "{text}");
        assert!(text.contains("600s yes"), "{text}");
        assert_eq!(
            render(&json!({"flaky_tests": []})),
            "No flaky tests seen.\n"
        );
        let added = json!({"repository": "o/r", "test": "t", "reason": "slow", "added_at": 1});
        assert!(render_quarantine(&added).contains("slow"));
        let worse = json!({"flaky_tests": [{"test": "a", "runs_including_retries": 9, "failed_attempts": 3,
            "attempt_failure_rate": 0.3333, "trend": {"failures_this_week": 3, "failures_last_week": 1, "worse_this_week": true}}]});
        let text = render(&worse);
        assert!(text.contains("33% (3 of 9 attempts)"), "{text}");
        assert!(text.contains("Worse this week:\n  a"), "{text}");
        assert!(
            text.contains("3 failures in the last 7 days, 1 the 7 before"),
            "{text}"
        );
        assert!(render(&v).contains("No test got worse this week."));
        let owned = json!({"repository": "o/r", "test": "t", "reason": "slow", "owner": "@alice",
            "passes_since": 4, "expires_at": 1_700_000_000_000i64, "ticket_url": "https://x/1"});
        let line = render_quarantine(&owned);
        assert!(
            line.contains("owner @alice · 4 green run(s) in a row · until 2023-11-14"),
            "{line}"
        );
        assert!(line.ends_with("· https://x/1\n"), "{line}");
        let gone = json!({"repository": "o/r", "test": "t", "removed": true});
        assert_eq!(
            render_quarantine(&gone),
            "t is no longer quarantined in o/r\n"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query(&[("repository", "o/r"), ("test", "a::b c#1"), ("x", "")]),
            "?repository=o%2Fr&test=a%3A%3Ab%20c%231"
        );
        assert_eq!(query(&[("repository", "")]), "");
    }
}
