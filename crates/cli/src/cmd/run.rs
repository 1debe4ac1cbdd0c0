//! `pipeguard run -- CMD [ARGS...]`: a drop-in wrapper for a pipeline step.
//!
//! The child's output is passed through unchanged while a bounded tail is kept for the
//! analyzer; a failure is retried only when the diagnosis calls it transient, with
//! exponential backoff and jitter; the exit status is always the last attempt's.

use anyhow::{Context, Result};
use clap::Args;
use pipeguard_core::analysis::Hints;
use pipeguard_core::backoff::Backoff;
use pipeguard_core::{Analyzer, Diagnosis};
use serde::Serialize;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// How much of the output is kept for diagnosis; failures explain themselves near the end.
const TAIL_BYTES: usize = 8 << 20;
/// No single backoff waits longer than this.
const MAX_BACKOFF_SECONDS: f64 = 300.0;

#[derive(Args)]
pub struct CmdArgs {
    /// Retries after the first attempt, for failures diagnosed as transient.
    #[arg(long, default_value_t = 2)]
    max_retries: u32,
    /// Base of the exponential backoff between attempts, in seconds.
    #[arg(long, env = "PIPEGUARD_HEALING_BACKOFF_SECONDS", default_value_t = 2.0)]
    backoff_seconds: f64,
    /// Write a machine-readable report of the attempts (to stderr unless --json-file).
    #[arg(long)]
    json: bool,
    /// Write the JSON report to this file instead of stderr (implies --json).
    #[arg(long, value_name = "PATH")]
    json_file: Option<PathBuf>,
    /// The command to run, as argv.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Serialize)]
struct Attempt {
    attempt: u32,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<Diagnosis>,
    /// `succeeded`, `retry`, `gave_up`, `interrupted` or `not_started`.
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backoff_ms: Option<u64>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'a [String],
    exit_code: i32,
    attempts: Vec<Attempt>,
    /// True when a retry turned a failure into a success.
    healed: bool,
    total_duration_ms: u64,
}

struct Outcome {
    exit_code: i32,
    signal: Option<i32>,
    tail: Vec<u8>,
    /// A signal we received and passed on while the attempt ran.
    interrupted: bool,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    if !args.backoff_seconds.is_finite() || args.backoff_seconds < 0.0 {
        anyhow::bail!(
            "--backoff-seconds must be a non-negative number, not {}",
            args.backoff_seconds
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: CmdArgs) -> Result<ExitCode> {
    let analyzer = Analyzer::builtin();
    let started = Instant::now();
    let mut attempts: Vec<Attempt> = vec![];
    let max_attempts = args.max_retries.saturating_add(1);
    let mut n = 0;
    let final_code = loop {
        n += 1;
        let t0 = Instant::now();
        let outcome = match run_once(&args.command).await {
            Ok(o) => o,
            Err(e) => {
                // Nothing ran: the same status a shell gives for a missing or unusable program.
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                eprintln!("pipeguard: cannot run {}: {e}", args.command[0]);
                attempts.push(Attempt {
                    attempt: n,
                    exit_code: code,
                    signal: None,
                    duration_ms: 0,
                    diagnosis: None,
                    decision: "not_started",
                    backoff_ms: None,
                });
                break code;
            }
        };
        let duration_ms = t0.elapsed().as_millis() as u64;
        if outcome.exit_code == 0 {
            if n > 1 {
                eprintln!("pipeguard: succeeded on attempt {n} of {max_attempts}");
            }
            attempts.push(Attempt {
                attempt: n,
                exit_code: 0,
                signal: None,
                duration_ms,
                diagnosis: None,
                decision: "succeeded",
                backoff_ms: None,
            });
            break 0;
        }
        let hints = Hints {
            exit_code: Some(outcome.exit_code),
            ..Hints::default()
        };
        let diagnosis = analyzer.analyze_with(&outcome.tail, &hints);
        let (decision, backoff) = if outcome.interrupted {
            ("interrupted", None)
        } else if diagnosis.transient && n < max_attempts {
            ("retry", Some(backoff_delay(args.backoff_seconds, n)))
        } else {
            ("gave_up", None)
        };
        match decision {
            "retry" => {
                let d = backoff.unwrap_or_default();
                eprintln!(
                    "pipeguard: attempt {n} of {max_attempts} failed with exit code {}: {} looks transient ({}); retrying in {:.1}s",
                    outcome.exit_code,
                    diagnosis.category,
                    first_evidence(&diagnosis),
                    d.as_secs_f64()
                );
            }
            "interrupted" => {
                eprintln!("pipeguard: interrupted; not retrying");
            }
            _ => print_give_up(n, outcome.exit_code, &diagnosis),
        }
        attempts.push(Attempt {
            attempt: n,
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            duration_ms,
            diagnosis: Some(diagnosis),
            decision,
            backoff_ms: backoff.map(|d| d.as_millis() as u64),
        });
        match backoff {
            Some(d) => {
                if wait_or_interrupted(d).await {
                    eprintln!("pipeguard: interrupted during backoff; not retrying");
                    break outcome.exit_code;
                }
            }
            None => break outcome.exit_code,
        }
    };
    if args.json || args.json_file.is_some() {
        let healed = final_code == 0 && attempts.len() > 1;
        let report = Report {
            command: &args.command,
            exit_code: final_code,
            attempts,
            healed,
            total_duration_ms: started.elapsed().as_millis() as u64,
        };
        let text = serde_json::to_string_pretty(&report)?;
        match &args.json_file {
            Some(p) => std::fs::write(p, format!("{text}\n"))
                .with_context(|| format!("writing the report to {}", p.display()))?,
            None => eprintln!("{text}"),
        }
    }
    Ok(ExitCode::from(final_code.clamp(0, 255) as u8))
}

fn first_evidence(d: &Diagnosis) -> String {
    d.evidence
        .first()
        .map(|e| format!("line {}: {}", e.line, e.text.trim()))
        .unwrap_or_else(|| "no evidence line".into())
}

fn print_give_up(n: u32, code: i32, d: &Diagnosis) {
    let why = if d.transient {
        "retries exhausted".to_string()
    } else {
        format!(
            "{} is not transient, so retrying would not help",
            d.category
        )
    };
    eprintln!(
        "pipeguard: gave up after {n} attempt(s), exit code {code}: {} (confidence {:.2}); {why}",
        d.category, d.confidence
    );
    for e in d.evidence.iter().take(5) {
        eprintln!("pipeguard:   line {}: {}", e.line, e.text.trim_end());
    }
}

/// Base × 2^(attempt−1), with core's equal jitter.
fn backoff_delay(base: f64, attempt: u32) -> Duration {
    let b = Backoff {
        base: Duration::from_secs_f64(base),
        cap: Duration::from_secs_f64(MAX_BACKOFF_SECONDS),
    };
    b.delay(attempt.saturating_sub(1), random_unit())
}

fn random_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 1_000_000) as f64 / 1_000_000.0
}

/// Sleep, unless SIGINT or SIGTERM arrives first (then true).
async fn wait_or_interrupted(d: Duration) -> bool {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tokio::time::sleep(d).await;
        return false;
    };
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = int.recv() => true,
        _ = term.recv() => true,
    }
}

async fn run_once(argv: &[String]) -> std::io::Result<Outcome> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // On a terminal, Ctrl-C already reaches the child through the foreground process
    // group; elsewhere (CI runners signal only our pid) the child gets its own group and
    // every signal is forwarded, so nothing is delivered twice.
    let on_tty = unsafe { libc::isatty(0) } == 1;
    if !on_tty {
        cmd.process_group(0);
    }
    // Listen before the child exists: a signal sent as soon as it started must be forwarded,
    // not kill us with the default action.
    let mut sigs = vec![];
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
    ] {
        if let Ok(s) = signal(kind) {
            sigs.push((s, num));
        }
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32);
    let tail = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().map(|s| {
        let tail = tail.clone();
        tokio::spawn(async move { pump(s, tokio::io::stdout(), tail).await })
    });
    let err = child.stderr.take().map(|s| {
        let tail = tail.clone();
        tokio::spawn(async move { pump(s, tokio::io::stderr(), tail).await })
    });

    let mut interrupted = false;
    let status = loop {
        let next_signal = async {
            let futs: Vec<_> = sigs
                .iter_mut()
                .map(|(s, num)| {
                    let num = *num;
                    Box::pin(async move {
                        s.recv().await;
                        num
                    })
                })
                .collect();
            if futs.is_empty() {
                std::future::pending::<i32>().await
            } else {
                futures_select_all(futs).await
            }
        };
        tokio::select! {
            st = child.wait() => break st?,
            num = next_signal => {
                interrupted = true;
                if let Some(pid) = pid {
                    if !(on_tty && num == libc::SIGINT) {
                        let target = if on_tty { pid } else { -pid };
                        // SAFETY: kill(2) with a pid we spawned and still wait for.
                        unsafe { libc::kill(target, num) };
                    }
                }
            }
        }
    };
    if let Some(h) = out {
        let _ = h.await;
    }
    if let Some(h) = err {
        let _ = h.await;
    }
    let tail = std::mem::take(&mut *tail.lock().unwrap_or_else(|e| e.into_inner()));
    use std::os::unix::process::ExitStatusExt;
    let (exit_code, signal) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        (None, None) => (1, None),
    };
    Ok(Outcome {
        exit_code,
        signal,
        tail,
        interrupted,
    })
}

/// The first of several futures to finish (a tiny `select_all`, to avoid a dependency).
async fn futures_select_all<F>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> i32
where
    F: std::future::Future<Output = i32>,
{
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Copy a child's stream to ours unchanged, keeping the last `TAIL_BYTES` for diagnosis.
async fn pump<R, W>(mut r: R, mut w: W, tail: Arc<Mutex<Vec<u8>>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut writable = true;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if writable {
            // If our own output is gone (a closed pipe) keep draining so the child is not blocked.
            writable = w.write_all(&buf[..n]).await.is_ok() && w.flush().await.is_ok();
        }
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        t.extend_from_slice(&buf[..n]);
        if t.len() > 2 * TAIL_BYTES {
            let cut = t.len() - TAIL_BYTES;
            t.drain(..cut);
        }
    }
    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
    if t.len() > TAIL_BYTES {
        let cut = t.len() - TAIL_BYTES;
        t.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_jitter_bounds() {
        for attempt in 1..=5 {
            let full = 2.0 * f64::from(1u32 << (attempt - 1));
            let d = backoff_delay(2.0, attempt).as_secs_f64();
            assert!(d >= full / 2.0 && d <= full, "attempt {attempt}: {d}");
        }
        assert!(backoff_delay(2.0, 30).as_secs_f64() <= MAX_BACKOFF_SECONDS);
        assert_eq!(backoff_delay(0.0, 3), Duration::ZERO);
    }
}
