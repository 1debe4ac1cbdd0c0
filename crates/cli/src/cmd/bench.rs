//! `pipeguard bench`: generate a large realistic CI log, time the analyzer on it (single
//! thread, streaming), report MB/s and peak memory, and compare with `grep -E` running the same
//! knowledge base's patterns.

use anyhow::{Context, Result};
use clap::Args;
use pipeguard_core::Analyzer;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[derive(Args)]
pub struct CmdArgs {
    /// Size of the generated log in MB.
    #[arg(long, default_value_t = 256)]
    pub size_mb: u64,
    /// Timed runs (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Directory for the generated log (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the generated log instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Skip the comparison with grep.
    #[arg(long)]
    pub no_grep: bool,
}

/// A small deterministic generator, so every run benchmarks the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() as usize) % xs.len()]
    }
}

const CRATES: &[&str] = &[
    "serde",
    "tokio",
    "regex",
    "hyper",
    "rand",
    "clap",
    "syn",
    "quote",
    "libc",
    "log",
    "futures",
    "bytes",
    "mio",
    "axum",
    "tower",
    "tracing",
    "anyhow",
    "thiserror",
    "memchr",
];
const WORDS: &[&str] = &[
    "parse", "render", "config", "client", "server", "cache", "queue", "store", "session", "token",
    "model", "index", "route", "handler", "worker", "metrics", "layout", "schema",
];

/// Write a log that looks like a busy CI job: compiler progress, test output, package installs,
/// timestamps and colours, with a failure at the end.
fn generate(path: &PathBuf, size: u64) -> Result<u64> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut rng = Lcg(42);
    let mut written = 0u64;
    let mut n = 0u64;
    let mut line = String::with_capacity(256);
    while written < size {
        n += 1;
        line.clear();
        let ts = format!(
            "2024-05-{:02}T{:02}:{:02}:{:02}.{:07}Z ",
            1 + n % 28,
            n % 24,
            n % 60,
            (n / 7) % 60,
            rng.next() % 10_000_000
        );
        let r = rng.next() % 100;
        let (a, b) = (rng.pick(CRATES), rng.pick(WORDS));
        match r {
            0..=24 => line.push_str(&format!(
                "{ts}   \x1b[1m\x1b[32mCompiling\x1b[0m {a} v1.{}.{}",
                rng.next() % 40,
                rng.next() % 20
            )),
            25..=49 => line.push_str(&format!(
                "{ts}test {a}::{b}::tests::{b}_{} ... ok",
                rng.next() % 1000
            )),
            50..=59 => line.push_str(&format!(
                "{ts}npm http fetch GET 200 https://registry.npmjs.org/{a}-{b} {}ms (cache hit)",
                rng.next() % 900
            )),
            60..=69 => line.push_str(&format!(
                "{ts}Get:{} http://deb.debian.org/debian bookworm/main amd64 lib{a}-{b} amd64 {}.{}-1 [{} kB]",
                rng.next() % 300,
                rng.next() % 9,
                rng.next() % 30,
                rng.next() % 900
            )),
            70..=79 => line.push_str(&format!(
                "{ts}#{} [{}/{}] RUN pip install --no-cache-dir {a}=={}.{} && rm -rf /var/lib/apt/lists/*",
                rng.next() % 40,
                rng.next() % 9,
                rng.next() % 9,
                rng.next() % 9,
                rng.next() % 30
            )),
            80..=89 => line.push_str(&format!(
                "{ts}[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/{a}/{b}/{}.{}/{b}-{}.{}.jar ({} kB at {} MB/s)",
                rng.next() % 9, rng.next() % 9, rng.next() % 9, rng.next() % 9,
                rng.next() % 900, rng.next() % 90
            )),
            90..=97 => line.push_str(&format!(
                "{ts}    {a}/src/{b}.rs:{}:{} {b}_{} = {}",
                rng.next() % 900,
                rng.next() % 80,
                rng.next() % 100,
                rng.next()
            )),
            98 => line.push_str(&format!(
                "{ts}\x1b[33mwarning\x1b[0m: unused variable: `{b}` in {a}"
            )),
            _ => line.push_str(&format!("{ts}PASS src/{b}/{a}.test.ts ({} ms)", rng.next() % 900)),
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    let tail = "error[E0425]: cannot find value `config` in this scope\n  --> src/main.rs:12:5\nerror: could not compile `app` due to previous error\n##[error]Process completed with exit code 101.\n";
    w.write_all(tail.as_bytes())?;
    written += tail.len() as u64;
    w.flush()?;
    Ok(written)
}

/// Peak resident memory of this process (Linux), in kB.
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Translate a signature pattern (Rust regex) into a POSIX ERE for `grep -E -i`.
pub fn to_ere(p: &str) -> String {
    let mut s = p
        .replace("(?i:", "(")
        .replace("(?i)", "")
        .replace("(?:", "(")
        .replace("\\d", "[0-9]")
        .replace("\\s", "[[:space:]]")
        .replace("\\S", "[^[:space:]]")
        .replace("*?", "*")
        .replace("+?", "+");
    while let Some(i) = s.find("(?P<") {
        match s[i..].find('>') {
            Some(j) => s.replace_range(i..i + j + 1, "("),
            None => break,
        }
    }
    s
}

fn grep_ok(pattern: &str) -> bool {
    Command::new("grep")
        .args(["-E", "-i", "-q", "-e", pattern])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.code() == Some(1) || s.code() == Some(0))
        .unwrap_or(false)
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("pipeguard-bench-{}.log", std::process::id()));
    let size = args.size_mb * 1_000_000;
    eprintln!(
        "generating {} MB of CI log at {} …",
        args.size_mb,
        path.display()
    );
    let bytes = generate(&path, size)?;
    let result = measure(&args, &path, bytes, &dir);
    if !args.keep {
        let _ = std::fs::remove_file(&path);
    }
    result
}

fn measure(args: &CmdArgs, path: &PathBuf, bytes: u64, dir: &std::path::Path) -> Result<ExitCode> {
    let t0 = Instant::now();
    let analyzer = Analyzer::builtin();
    let startup = t0.elapsed();
    let mut best = f64::MAX;
    let mut diag = None;
    for _ in 0..args.runs.max(1) {
        let f = File::open(path)?;
        let t = Instant::now();
        let d = analyzer.analyze_reader(f)?;
        best = best.min(t.elapsed().as_secs_f64());
        diag = Some(d);
    }
    let mb = bytes as f64 / 1e6;
    let diag = diag.expect("at least one run");
    println!(
        "log:          {mb:.0} MB, {} lines of evidence, category {}",
        diag.evidence.len(),
        diag.category
    );
    println!(
        "knowledge base: {} signatures, compiled in {:.1} ms",
        analyzer.signatures().len(),
        startup.as_secs_f64() * 1e3
    );
    println!(
        "analyzer:     {:.2} s  →  {:.0} MB/s (single thread, best of {})",
        best,
        mb / best,
        args.runs.max(1)
    );
    if let Some(kb) = peak_rss_kb() {
        println!(
            "peak memory:  {:.1} MB (VmHWM of this process)",
            kb as f64 / 1024.0
        );
    }
    if args.no_grep {
        return Ok(ExitCode::SUCCESS);
    }
    if Command::new("grep")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("grep:         not found, comparison skipped");
        return Ok(ExitCode::SUCCESS);
    }
    let patterns: Vec<String> = analyzer
        .patterns()
        .iter()
        .map(|p| to_ere(p))
        .filter(|p| grep_ok(p))
        .collect();
    let pat_path = dir.join(format!("pipeguard-bench-{}.patterns", std::process::id()));
    std::fs::write(&pat_path, patterns.join("\n") + "\n")?;
    let mut grep_best = f64::MAX;
    let mut grep_count = String::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let out = Command::new("grep")
            .args(["-E", "-i", "-c", "-f"])
            .arg(&pat_path)
            .arg(path)
            .env("LC_ALL", "C")
            .stderr(Stdio::inherit())
            .output()?;
        if out.status.code() != Some(0) && out.status.code() != Some(1) {
            anyhow::bail!("grep failed on the translated patterns: {}", out.status);
        }
        grep_best = grep_best.min(t.elapsed().as_secs_f64());
        grep_count = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    let _ = std::fs::remove_file(&pat_path);
    println!(
        "grep -E -i -c -f ({} of {} patterns, {} matching lines): {:.2} s  →  {:.0} MB/s",
        patterns.len(),
        analyzer.patterns().len(),
        grep_count,
        grep_best,
        mb / grep_best
    );
    println!(
        "ratio:        analyzer time / grep time = {:.2}",
        best / grep_best
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::to_ere;

    #[test]
    fn rust_patterns_become_ere() {
        assert_eq!(to_ere(r"(?i)^error\[E\d{4}\]:"), r"^error\[E[0-9]{4}\]:");
        assert_eq!(to_ere(r"^(?P<test>\S+) (?:a|b)"), r"^([^[:space:]]+) (a|b)");
    }
}
