//! `pipeguard bench`: generate a large CI log, time the analyzer on it (single thread,
//! streaming), report MB/s and peak memory, and compare with `grep -E -c` on the same file.
//!
//! Two logs: the default is dense with the analyzer's own trigger words; `--realistic` is what a
//! big job prints (Maven downloads, cargo compile lines, passing tests, npm fetches, benign
//! `error`/`failure` words in names) with the failure at the end. grep runs 28 common error
//! patterns (`--grep-kb`: the knowledge base's own patterns translated to ERE).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pipeguard_core::Analyzer;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CmdArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
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
    /// Generate a realistic big-job log instead of the dense default one.
    #[arg(long)]
    pub realistic: bool,
    /// Compare with grep running the knowledge base's patterns instead of 28 common ones.
    #[arg(long)]
    pub grep_kb: bool,
    /// Also time the analysis read against a green run of the same job (a realistic log
    /// without the failure, up to 64 MB, learned first), and report the ratio.
    #[arg(long)]
    pub baseline: bool,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Drive running servers with signed webhooks; report accepted/s, latency, CPU, memory
    /// and whether every accepted delivery was stored.
    Load(super::bench_load::LoadArgs),
}

/// What people grep a CI log for: 28 common error patterns (POSIX ERE).
pub const COMMON_ERROR_PATTERNS: [&str; 28] = [
    "error:",
    "ERROR",
    "FAILED",
    "FAILURE",
    "[Ff]atal",
    "Exception",
    "Traceback \\(most recent call last\\)",
    "panicked at",
    "Connection (refused|reset|timed out)",
    "timed out",
    "Could not resolve host",
    "No space left on device",
    "[Oo]ut of memory",
    "Killed",
    "Permission denied",
    "command not found",
    "No such file or directory",
    "ModuleNotFoundError",
    "npm ERR!",
    "BUILD FAILURE",
    "Tests run: .*Failures: [1-9]",
    "exit code [1-9]",
    "Segmentation fault",
    "AssertionError",
    "undefined reference",
    "cannot find",
    "^E: ",
    "error\\[E[0-9]+\\]",
];

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

const ARTIFACTS: &[&str] = &[
    "guava",
    "failureaccess",
    "error_prone_annotations",
    "jsr305",
    "commons-lang3",
    "commons-io",
    "jackson-databind",
    "slf4j-api",
    "logback-classic",
    "junit-jupiter-api",
    "mockito-core",
    "netty-handler",
    "checker-qual",
    "j2objc-annotations",
    "opentest4j",
    "byte-buddy",
];
const RUST_CRATES: &[&str] = &[
    "thiserror",
    "anyhow",
    "serde",
    "serde_json",
    "tokio",
    "error-chain",
    "failure",
    "hyper",
    "tracing",
    "regex",
    "memchr",
    "libc",
    "futures-util",
    "quick-error",
    "backtrace",
    "syn",
];
const TEST_NAMES: &[&str] = &[
    "returns_error_on_timeout",
    "rejects_invalid_input",
    "retries_on_failure",
    "parses_config",
    "handles_connection_refused",
    "reports_fatal_errors",
    "recovers_from_panic",
    "keeps_order",
    "maps_not_found_to_404",
    "exception_is_logged",
    "cancelled_job_is_skipped",
    "merges_maps",
];
const NPM_PACKAGES: &[&str] = &[
    "@babel%2fcode-frame",
    "error-ex",
    "is-arrayish",
    "chalk",
    "debug",
    "ms",
    "semver",
    "on-finished",
    "http-errors",
    "fast-deep-equal",
    "eslint-scope",
    "fs.realpath",
    "glob",
];

/// One line of a big, healthy CI job: dependency downloads, compile progress, passing tests,
/// package fetches, runner chatter.
fn realistic_line(rng: &mut Lcg, line: &mut String) {
    let r = rng.next() % 100;
    let a = rng.pick(ARTIFACTS);
    let (ma, mi) = (rng.next() % 9, rng.next() % 30);
    match r {
        0..=10 => line.push_str(&format!(
            "[INFO] Downloading from central: https://repo.maven.apache.org/maven2/com/google/{a}/{a}/{ma}.{mi}/{a}-{ma}.{mi}.pom"
        )),
        11..=21 => line.push_str(&format!(
            "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/com/google/{a}/{a}/{ma}.{mi}/{a}-{ma}.{mi}.jar ({} kB at {} kB/s)",
            rng.next() % 900,
            rng.next() % 9000
        )),
        22..=33 => line.push_str(&format!(
            "   Compiling {} v{ma}.{mi}.{}",
            rng.pick(RUST_CRATES),
            rng.next() % 20
        )),
        34..=37 => line.push_str(&format!(
            "   Compiling app-{} v0.1.0 (/home/runner/work/app/app/crates/{})",
            rng.pick(WORDS),
            rng.pick(WORDS)
        )),
        38..=49 => line.push_str(&format!(
            "test {}::tests::{} ... ok",
            rng.pick(WORDS),
            rng.pick(TEST_NAMES)
        )),
        50..=54 => line.push_str(&format!(
            "[INFO] Tests run: {}, Failures: 0, Errors: 0, Skipped: {}, Time elapsed: 0.{} s - in com.example.{}ErrorHandlerTest",
            rng.next() % 40,
            rng.next() % 3,
            rng.next() % 999,
            rng.pick(WORDS)
        )),
        55..=59 => line.push_str(&format!(
            "PASS src/{}/{}.test.ts ({} ms)",
            rng.pick(WORDS),
            rng.pick(TEST_NAMES),
            rng.next() % 900
        )),
        60..=63 => line.push_str(&format!(
            "tests/test_{}.py::test_{} PASSED [{:3}%]",
            rng.pick(WORDS),
            rng.pick(TEST_NAMES),
            rng.next() % 100
        )),
        64..=77 => line.push_str(&format!(
            "npm http fetch GET 200 https://registry.npmjs.org/{} {}ms (cache hit)",
            rng.pick(NPM_PACKAGES),
            rng.next() % 900
        )),
        78..=81 => line.push_str(&format!(
            "npm WARN deprecated {}@{ma}.{mi}.0: this version is no longer supported",
            rng.pick(NPM_PACKAGES)
        )),
        82..=86 => line.push_str(&format!(
            "Get:{} http://deb.debian.org/debian bookworm/main amd64 lib{a}-dev amd64 {ma}.{mi}-1 [{} kB]",
            rng.next() % 300,
            rng.next() % 900
        )),
        87..=90 => line.push_str(&format!(
            "[INFO] --- maven-surefire-plugin:3.0.0:test (default-test) @ {} ---",
            rng.pick(WORDS)
        )),
        91..=94 => line.push_str(&format!(
            "--- PASS: Test{}On{} (0.{:02}s)",
            rng.pick(TEST_NAMES).replace('_', ""),
            rng.pick(WORDS),
            rng.next() % 99
        )),
        95..=97 => line.push_str(&format!(
            "warning: unused variable: `err` --> src/{}.rs:{}:9",
            rng.pick(WORDS),
            rng.next() % 900
        )),
        _ => line.push_str(&format!(
            "#{} [build {}/9] RUN cargo build --release --locked && rm -rf /var/lib/apt/lists/*",
            rng.next() % 40,
            rng.next() % 9
        )),
    }
}

/// The end of a failed Maven test run, as GitHub Actions shows it.
const REALISTIC_FAILURE: &str = "[ERROR] Tests run: 48, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 2.113 s <<< FAILURE! - in com.example.OrderServiceTest
[ERROR] shouldRejectExpiredCoupon(com.example.OrderServiceTest)  Time elapsed: 0.051 s  <<< FAILURE!
org.opentest4j.AssertionFailedError: expected: <true> but was: <false>
	at com.example.OrderServiceTest.shouldRejectExpiredCoupon(OrderServiceTest.java:88)
[ERROR] Failures:
[ERROR]   OrderServiceTest.shouldRejectExpiredCoupon:88 expected: <true> but was: <false>
[ERROR] Tests run: 1210, Failures: 1, Errors: 0, Skipped: 3
[INFO] BUILD FAILURE
[ERROR] Failed to execute goal org.apache.maven.plugins:maven-surefire-plugin:3.0.0:test (default-test) on project core: There are test failures.
##[error]Process completed with exit code 1.
";

/// Write a realistic big job's log: GitHub timestamps, a step that runs the build, healthy
/// output, a test failure at the end.
fn generate_realistic(path: &PathBuf, size: u64) -> Result<u64> {
    write_realistic(path, size, 7, true)
}

/// A realistic job log from `seed`; with `failed`, the failure at its end.
fn write_realistic(path: &PathBuf, size: u64, seed: u64, failed: bool) -> Result<u64> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut rng = Lcg(seed);
    let mut line = String::with_capacity(256);
    let head = "2024-05-01T10:00:00.0000000Z ##[group]Run mvn -B verify && cargo test && npm test
";
    w.write_all(head.as_bytes())?;
    let mut written = head.len() as u64;
    let mut n = 0u64;
    while written < size {
        n += 1;
        line.clear();
        line.push_str(&format!(
            "2024-05-01T{:02}:{:02}:{:02}.{:07}Z ",
            10 + (n / 3_600_000) % 12,
            (n / 60_000) % 60,
            (n / 1000) % 60,
            rng.next() % 10_000_000
        ));
        realistic_line(&mut rng, &mut line);
        line.push('\n');
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    for l in REALISTIC_FAILURE.lines().filter(|_| failed) {
        let l = format!("2024-05-01T11:59:59.9000000Z {l}\n");
        w.write_all(l.as_bytes())?;
        written += l.len() as u64;
    }
    w.flush()?;
    Ok(written)
}

/// Size of the green run's log learned for `--baseline`.
const GREEN_MB: u64 = 64;

/// `--baseline`: learn a green run of the same job, then time the analysis read against it.
#[allow(clippy::too_many_arguments)]
fn against_green(
    args: &CmdArgs,
    analyzer: &Analyzer,
    path: &PathBuf,
    dir: &std::path::Path,
    mb: f64,
    alone: f64,
    alone_cpu: f64,
) -> Result<()> {
    let green_path = dir.join(format!("pipeguard-bench-{}.green.log", std::process::id()));
    let green_bytes = write_realistic(
        &green_path,
        GREEN_MB.min(args.size_mb) * 1_000_000,
        11,
        false,
    )?;
    let t = Instant::now();
    let mut green = pipeguard_core::analysis::Baseline::new();
    let learned = File::open(&green_path)
        .and_then(|f| green.learn("green", std::io::BufReader::with_capacity(1 << 16, f)));
    let _ = std::fs::remove_file(&green_path);
    learned?;
    let learn_s = t.elapsed().as_secs_f64();
    let (mut best, mut best_cpu, mut added) = (f64::MAX, f64::MAX, 0);
    for _ in 0..args.runs.max(1) {
        let f = File::open(path)?;
        let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
        let c = analyzer.analyze_against(f, &Default::default(), &green, |_| {})?;
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds(libc::RUSAGE_SELF) - cpu);
        added = c.new_lines;
    }
    println!(
        "baseline:     learned a {:.0} MB green log ({} templates) in {learn_s:.2} s; \
         analysis against it {best:.2} s → {:.0} MB/s, CPU {best_cpu:.2} s; \
         {added} new lines; ratio to no baseline {:.2} (CPU {:.2})",
        green_bytes as f64 / 1e6,
        green.len(),
        mb / best,
        best / alone,
        best_cpu / alone_cpu.max(1e-9)
    );
    Ok(())
}

/// User plus system CPU seconds of this process (`RUSAGE_SELF`) or of its finished children
/// (`RUSAGE_CHILDREN`): wall time on a busy machine overstates the work.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The machine's 1-minute load average (other work slows the timed runs).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
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
    if let Some(BenchCommand::Load(load)) = args.command {
        return super::bench_load::run(load);
    }
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("pipeguard-bench-{}.log", std::process::id()));
    let size = args.size_mb * 1_000_000;
    super::progress::Progress::new().note(&format!(
        "generating {} MB of {} CI log at {} …",
        args.size_mb,
        if args.realistic { "realistic" } else { "dense" },
        path.display()
    ));
    let bytes = if args.realistic {
        generate_realistic(&path, size)?
    } else {
        generate(&path, size)?
    };
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
    let mut best_cpu = f64::MAX;
    let mut diag = None;
    let mut progress = super::progress::Progress::new();
    let runs = args.runs.max(1) as usize;
    for i in 0..runs {
        progress.step("analyzer runs", i, runs);
        let f = File::open(path)?;
        let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
        let d = analyzer.analyze_reader(f)?;
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds(libc::RUSAGE_SELF) - cpu);
        diag = Some(d);
    }
    progress.step("analyzer runs", runs, runs);
    progress.finish();
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
        "analyzer:     {:.2} s  →  {:.0} MB/s (single thread, best of {}); CPU {:.2} s  →  {:.0} MB/s",
        best,
        mb / best,
        args.runs.max(1),
        best_cpu,
        mb / best_cpu
    );
    if args.baseline {
        against_green(args, &analyzer, path, dir, mb, best, best_cpu)?;
    }
    println!("load average: {}", load_average());
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
    let (patterns, what): (Vec<String>, String) = if args.grep_kb {
        let kb: Vec<String> = analyzer
            .patterns()
            .iter()
            .map(|p| to_ere(p))
            .filter(|p| grep_ok(p))
            .collect();
        let what = format!(
            "{} of {} knowledge-base patterns",
            kb.len(),
            analyzer.patterns().len()
        );
        (kb, what)
    } else {
        let common = COMMON_ERROR_PATTERNS
            .iter()
            .map(|p| p.to_string())
            .collect();
        (common, "28 common error patterns".to_string())
    };
    let flags = if args.grep_kb {
        "-E -i -c -f"
    } else {
        "-E -c -f"
    };
    let pat_path = dir.join(format!("pipeguard-bench-{}.patterns", std::process::id()));
    std::fs::write(&pat_path, patterns.join("\n") + "\n")?;
    let mut grep_best = f64::MAX;
    let mut grep_cpu = f64::MAX;
    let mut grep_count = String::new();
    for _ in 0..args.runs.max(1) {
        let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
        let out = Command::new("grep")
            .args(flags.split(' '))
            .arg(&pat_path)
            .arg(path)
            .env("LC_ALL", "C")
            .stderr(Stdio::inherit())
            .output()?;
        if out.status.code() != Some(0) && out.status.code() != Some(1) {
            anyhow::bail!("grep failed on the translated patterns: {}", out.status);
        }
        grep_best = grep_best.min(t.elapsed().as_secs_f64());
        grep_cpu = grep_cpu.min(cpu_seconds(libc::RUSAGE_CHILDREN) - cpu);
        grep_count = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    let _ = std::fs::remove_file(&pat_path);
    println!(
        "grep {flags} ({what}, {grep_count} matching lines, LC_ALL=C): {grep_best:.2} s  →  {:.0} MB/s; CPU {grep_cpu:.2} s",
        mb / grep_best
    );
    println!(
        "ratio:        analyzer time / grep time = {:.2} (CPU time: {:.2})",
        best / grep_best,
        best_cpu / grep_cpu.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::to_ere;

    #[test]
    fn the_common_patterns_are_valid_ere() {
        if !super::grep_ok("x") {
            println!("SKIP: grep not found; the patterns were not checked");
            return;
        }
        for p in super::COMMON_ERROR_PATTERNS {
            assert!(super::grep_ok(p), "grep -E rejects {p:?}");
        }
    }

    #[test]
    fn realistic_log_ends_with_the_failure_and_reaches_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let n = super::generate_realistic(&path, 200_000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, n);
        assert!(n >= 200_000);
        assert!(text
            .trim_end()
            .ends_with("##[error]Process completed with exit code 1."));
        let d = pipeguard_core::Analyzer::builtin().analyze(text.as_bytes());
        assert_eq!(d.category, pipeguard_core::Category::TestFailure, "{d:#?}");
    }

    #[test]
    fn rust_patterns_become_ere() {
        assert_eq!(to_ere(r"(?i)^error\[E\d{4}\]:"), r"^error\[E[0-9]{4}\]:");
        assert_eq!(to_ere(r"^(?P<test>\S+) (?:a|b)"), r"^([^[:space:]]+) (a|b)");
    }
}
