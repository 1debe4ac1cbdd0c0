//! `pipeguard analyze`: diagnose one log file (or stdin) and print the diagnosis; with
//! `--explain`, also the configured model's explanation under it.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::analysis::{tests_names, Baseline, Diagnosis, Hints};
use pipeguard_core::Analyzer;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Log file to analyze; `-` or nothing reads standard input.
    pub file: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// JUnit XML report whose failed test cases are added to the failing tests.
    #[arg(long)]
    pub junit: Option<String>,
    /// The job's exit code, when known (137 suggests the OOM killer, 124 a timeout).
    #[arg(long)]
    pub exit_code: Option<i32>,
    /// The CI platform's failure reason (e.g. GitLab's `runner_system_failure`).
    #[arg(long)]
    pub platform_reason: Option<String>,
    /// A log of a green run of the same job (repeat for up to 3 runs, newest last): the failure
    /// is read against it, evidence prefers the lines it added, and `--format json` marks each
    /// evidence line `new: true|false`.
    #[arg(long, value_name = "GREEN.log")]
    pub baseline: Vec<String>,
    /// TOML file with `[[signatures]]` tables that take precedence over the built-ins, and
    /// the `[llm]` table `--explain` uses (default: ./pipeguard.toml when it exists).
    #[arg(long)]
    pub config: Option<String>,
    /// Also ask the configured model (PIPEGUARD_LLM_URL and PIPEGUARD_LLM_MODEL, or `[llm]`)
    /// to explain the failure; its commands are shown with the safety gate's verdict.
    #[arg(long)]
    pub explain: bool,
    /// With --explain: print the exact (redacted) prompt sent to the model.
    #[arg(long, requires = "explain")]
    pub show_prompt: bool,
    /// With --explain: the host's OS (e.g. "Ubuntu 22.04"), so commands fit it.
    #[arg(long, requires = "explain")]
    pub host_os: Option<String>,
    /// With --explain: the host's package manager (apt, dnf, apk, brew…).
    #[arg(long, requires = "explain")]
    pub package_manager: Option<String>,
    /// With --explain: the host's service manager (systemd, openrc, launchd…).
    #[arg(long, requires = "explain")]
    pub service_manager: Option<String>,
    /// With --explain: the failed job's name.
    #[arg(long, requires = "explain")]
    pub job: Option<String>,
    /// With --explain: the failed step's name.
    #[arg(long, requires = "explain")]
    pub step: Option<String>,
}

/// Progress on stderr for big files, only when stderr is a terminal.
pub struct Progress {
    total: u64,
    start: Instant,
    last: Instant,
    on: bool,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            start: now,
            last: now,
            on: total > 100 * 1024 * 1024 && io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64) {
        if !self.on || self.last.elapsed().as_millis() < 100 {
            return;
        }
        self.last = Instant::now();
        let frac = done as f64 / self.total.max(1) as f64;
        let width = 40;
        let filled = ((frac * width as f64) as usize).min(width);
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {:>5.1}%  {:.0} MB/s ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            frac * 100.0,
            done as f64 / 1e6 / secs
        );
    }

    pub fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Load user signatures from a TOML file's `[[signatures]]` tables.
pub fn load_analyzer(config: Option<&str>) -> Result<Analyzer> {
    let Some(path) = config else {
        return Ok(Analyzer::builtin());
    };
    #[derive(serde::Deserialize)]
    struct Cfg {
        #[serde(default)]
        signatures: Vec<pipeguard_core::analysis::UserSignature>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let cfg: Cfg = toml::from_str(&text).with_context(|| format!("{path} is not valid"))?;
    Analyzer::with_user_signatures(cfg.signatures).with_context(|| format!("signatures in {path}"))
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    // A missing or broken model setting is reported before the log is read.
    let analyst = if args.explain {
        match explain::analyst(args.config.as_deref()) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("pipeguard: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        None
    };
    let analyzer = load_analyzer(args.config.as_deref())?;
    let green = learn_baseline(&args.baseline)?;
    let hints = Hints {
        exit_code: args.exit_code,
        platform_reason: args.platform_reason.clone(),
    };
    // With --explain the log's last lines go to the model beside the evidence.
    let tail_bytes = if analyst.is_some() {
        explain::TAIL_BYTES
    } else {
        0
    };
    let (compared, tail) = match args.file.as_deref() {
        None | Some("-") => {
            if io::stdin().is_terminal() {
                eprintln!(
                    "pipeguard analyze reads a log from standard input: pipe one in \
                     (`pipeguard analyze < job.log`) or name a FILE; Ctrl-D ends the input"
                );
            }
            let mut r = explain::Tail::new(io::stdin().lock(), tail_bytes);
            let d = analyzer.analyze_against(&mut r, &hints, &green, |_| {})?;
            (d, r.lines())
        }
        Some(path) => {
            let f = File::open(path).with_context(|| format!("cannot open {path}"))?;
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                anyhow::bail!(
                    "{path} is a directory: analyze reads one log file \
                     (`pipeguard eval {path}` measures the analyzer on a directory of labeled logs)"
                );
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut progress = Progress::new(size);
            let mut r = explain::Tail::new(f, tail_bytes);
            let d = analyzer.analyze_against(
                io::BufReader::with_capacity(1 << 16, &mut r),
                &hints,
                &green,
                |n| progress.update(n),
            )?;
            progress.finish();
            (d, r.lines())
        }
    };
    let mut diag = compared.diagnosis.clone();
    if let Some(path) = &args.junit {
        let mut xml = String::new();
        File::open(path)
            .with_context(|| format!("cannot open {path}"))?
            .read_to_string(&mut xml)
            .with_context(|| format!("cannot read {path}"))?;
        for t in tests_names::junit_failures(&xml) {
            if !diag.failing_tests.contains(&t) {
                diag.failing_tests.push(t);
            }
        }
    }
    let explanation = match &analyst {
        Some(a) => Some(explain::ask(a, &diag, tail, &args)?),
        None => None,
    };
    let mut out = io::stdout().lock();
    let new = compared.evidence_new.as_deref();
    match args.format {
        Format::Json => {
            let mut v = serde_json::to_value(&diag)?;
            if let Some(new) = new {
                mark_new(&mut v, new);
                v["baseline"] = serde_json::json!({
                    "green_runs": compared.green_runs,
                    "new_lines": compared.new_lines,
                });
            }
            if let Some(e) = &explanation {
                v["explanation"] = serde_json::to_value(e)?;
            }
            writeln!(out, "{}", serde_json::to_string(&v)?)?
        }
        Format::Text => {
            let color = color_enabled();
            print_text(&mut out, &diag, new, color)?;
            if let Some(e) = &explanation {
                explain::print_text(&mut out, e, &diag, color)?;
                if args.show_prompt {
                    explain::print_prompt(&mut out, e)?;
                }
            }
            if new.is_some() {
                writeln!(
                    out,
                    "baseline:    {} new line(s) before the failure, against {}",
                    compared.new_lines,
                    compared.green_runs.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The green runs' templates, learned from each `--baseline` file (newest last).
fn learn_baseline(paths: &[String]) -> Result<Baseline> {
    let mut green = Baseline::new();
    for path in paths {
        let f = File::open(path).with_context(|| format!("cannot open baseline {path}"))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            anyhow::bail!("baseline {path} is a directory: give the log file of a green run");
        }
        green
            .learn(path.as_str(), io::BufReader::with_capacity(1 << 16, f))
            .with_context(|| format!("cannot read baseline {path}"))?;
    }
    Ok(green)
}

/// `new: true|false` on each evidence line of a diagnosis' JSON.
fn mark_new(v: &mut serde_json::Value, new: &[bool]) {
    if let Some(ev) = v["evidence"].as_array_mut() {
        for (e, n) in ev.iter_mut().zip(new) {
            e["new"] = (*n).into();
        }
    }
}

pub fn color_enabled() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

pub fn print_text(
    out: &mut impl Write,
    d: &Diagnosis,
    new: Option<&[bool]>,
    color: bool,
) -> io::Result<()> {
    let cat_color = if d.transient {
        "1;33"
    } else if d.category.needs_human() {
        "1;31"
    } else {
        "1"
    };
    writeln!(
        out,
        "category:    {}",
        paint(color, cat_color, d.category.as_str())
    )?;
    writeln!(out, "confidence:  {:.2}", d.confidence)?;
    writeln!(
        out,
        "transient:   {}",
        if d.transient {
            "yes (retry/heal)"
        } else {
            "no (escalate)"
        }
    )?;
    writeln!(out, "strategy:    {}", d.strategy.as_str())?;
    if let Some(s) = &d.signature {
        writeln!(out, "signature:   {s}")?;
    }
    writeln!(out, "fingerprint: {}", d.fingerprint)?;
    if !d.summary.is_empty() {
        writeln!(out, "summary:     {}", d.summary)?;
    }
    if !d.failing_tests.is_empty() {
        writeln!(out, "failing tests ({}):", d.failing_tests.len())?;
        for t in d.failing_tests.iter().take(50) {
            writeln!(out, "  - {t}")?;
        }
        if d.failing_tests.len() > 50 {
            writeln!(out, "  … {} more", d.failing_tests.len() - 50)?;
        }
    }
    writeln!(out, "evidence:")?;
    let mut prev: Option<usize> = None;
    for (k, e) in d.evidence.iter().enumerate() {
        if prev.is_some_and(|p| e.line > p + 1) {
            writeln!(out, "{}", paint(color, "2", "    ···"))?;
        }
        // With a baseline, `+` marks a line no green run printed.
        let mark = match new.and_then(|n| n.get(k)) {
            Some(true) => "+",
            Some(false) => " ",
            None => "",
        };
        writeln!(
            out,
            "{} {}",
            paint(color, "2;36", &format!("{:>7}{mark} |", e.line)),
            e.text
        )?;
        prev = Some(e.line);
    }
    Ok(())
}

/// `--explain`: the model's explanation under the rules' diagnosis.
mod explain {
    use super::{paint, AnalyzeArgs};
    use anyhow::{Context as _, Result};
    use pipeguard_core::safety::risk_name;
    use pipeguard_core::{Category, Diagnosis, Evidence, Risk};
    use pipeguard_llm::{Analyst, ConfigError, Context, Explanation, HostFacts, LlmConfig};
    use std::io::{self, Read, Write};
    use std::path::Path;

    /// How much of the log's end is kept for the model (it sends what fits its token limit).
    pub const TAIL_BYTES: usize = 64 * 1024;
    const TAIL_LINES: usize = 400;

    /// A reader that keeps the last `cap` bytes it passed on and counts lines, so the log's
    /// last lines can go to the model without reading the log twice.
    pub struct Tail<R> {
        inner: R,
        cap: usize,
        kept: Vec<u8>,
        newlines: usize,
        dropped_bytes: bool,
    }

    impl<R: Read> Tail<R> {
        pub fn new(inner: R, cap: usize) -> Self {
            Tail {
                inner,
                cap,
                kept: Vec::new(),
                newlines: 0,
                dropped_bytes: false,
            }
        }

        /// The last whole lines read, numbered as the analyzer numbers them.
        pub fn lines(self) -> Vec<Evidence> {
            if self.cap == 0 || self.kept.is_empty() {
                return Vec::new();
            }
            let text = String::from_utf8_lossy(&self.kept);
            let mut text: &str = &text;
            if self.dropped_bytes {
                // The first line may have lost its beginning.
                text = text.split_once('\n').map_or("", |(_, rest)| rest);
            }
            let ends_with_newline = text.ends_with('\n');
            let lines: Vec<&str> = text
                .strip_suffix('\n')
                .unwrap_or(text)
                .split('\n')
                .collect();
            let last = if ends_with_newline {
                self.newlines
            } else {
                self.newlines + 1
            };
            let first = last + 1 - lines.len();
            lines
                .iter()
                .enumerate()
                .skip(lines.len().saturating_sub(TAIL_LINES))
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| Evidence {
                    line: first + i,
                    text: l.trim_end_matches('\r').to_string(),
                })
                .collect()
        }
    }

    impl<R: Read> Read for Tail<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            if self.cap > 0 && n > 0 {
                let got = &buf[..n];
                self.newlines += got.iter().filter(|&&b| b == b'\n').count();
                self.kept.extend_from_slice(got);
                if self.kept.len() > 2 * self.cap {
                    let cut = self.kept.len() - self.cap;
                    self.kept.drain(..cut);
                    self.dropped_bytes = true;
                }
            }
            Ok(n)
        }
    }

    /// Only the `[llm]` table: the rest of the file belongs to `serve` and `[[signatures]]`.
    #[derive(serde::Deserialize, Default)]
    struct File {
        #[serde(default)]
        llm: LlmConfig,
    }

    /// The model configured in `--config` (or ./pipeguard.toml) and PIPEGUARD_LLM_*.
    pub fn analyst(config: Option<&str>) -> Result<Analyst> {
        let path = config.or_else(|| {
            Path::new("pipeguard.toml")
                .exists()
                .then_some("pipeguard.toml")
        });
        let mut cfg = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))?;
                toml::from_str::<File>(&text)
                    .with_context(|| format!("[llm] in {p} is not valid"))?
                    .llm
            }
            None => LlmConfig::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        match Analyst::new(cfg) {
            Ok(a) => Ok(a),
            Err(ConfigError::NotConfigured) => anyhow::bail!(
                "--explain needs a model and none is configured: set PIPEGUARD_LLM_URL (e.g. \
                 http://127.0.0.1:11434/v1) and PIPEGUARD_LLM_MODEL, or url and model under [llm] \
                 in pipeguard.toml (see docs/llm.md)"
            ),
            Err(e) => Err(e.into()),
        }
    }

    pub fn ask(
        analyst: &Analyst,
        d: &Diagnosis,
        tail: Vec<Evidence>,
        args: &AnalyzeArgs,
    ) -> Result<Explanation> {
        let mut ctx = Context::from_diagnosis(d);
        ctx.context_lines = tail;
        ctx.platform = "local".into();
        ctx.job = args.job.clone().unwrap_or_default();
        ctx.step = args.step.clone().unwrap_or_default();
        ctx.host = HostFacts {
            os: args.host_os.clone(),
            package_manager: args.package_manager.clone(),
            service_manager: args.service_manager.clone(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(analyst.explain(&d.fingerprint, &ctx)))
    }

    fn risk_label(risk: Risk, needs_approval: bool, color: bool) -> String {
        match (risk, needs_approval) {
            (Risk::Refused, _) => paint(color, "1;31", "refused"),
            (r, true) => paint(color, "1;33", &format!("{}, needs approval", risk_name(r))),
            (r, false) => paint(color, "32", risk_name(r)),
        }
    }

    pub fn print_text(
        out: &mut impl Write,
        e: &Explanation,
        d: &Diagnosis,
        color: bool,
    ) -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "explanation: {} ({})", e.source, e.outcome.as_str())?;
        let Some(a) = e.answer.as_ref().filter(|_| e.is_usable()) else {
            return writeln!(out, "  {} — the rules' diagnosis stands", e.reason);
        };
        let role = if d.category == Category::Unknown && a.category != Category::Unknown {
            "decides: the rules said unknown"
        } else {
            "advisory: the rules' category stands"
        };
        writeln!(
            out,
            "  category:   {} (confidence {:.2}; {role})",
            a.category, a.confidence
        )?;
        writeln!(out, "  root cause: {}", a.root_cause)?;
        if e.commands.is_empty() {
            return Ok(());
        }
        writeln!(out, "  commands (each checked by the safety gate):")?;
        for c in &e.commands {
            writeln!(
                out,
                "    {:<10} [{}] {}",
                c.purpose.as_str(),
                risk_label(c.risk, c.needs_approval, color),
                c.command
            )?;
            if !c.runnable || c.needs_approval {
                writeln!(out, "               {}", paint(color, "2", &c.reason))?;
            }
        }
        Ok(())
    }

    pub fn print_prompt(out: &mut impl Write, e: &Explanation) -> io::Result<()> {
        writeln!(out)?;
        if e.prompt.is_empty() {
            return writeln!(out, "prompt: nothing was sent ({})", e.reason);
        }
        writeln!(out, "prompt sent:")?;
        let messages: Vec<pipeguard_llm::Message> =
            serde_json::from_str(&e.prompt).unwrap_or_default();
        for m in messages {
            writeln!(out, "--- {} ---\n{}", m.role, m.content)?;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn tail(log: &str, cap: usize) -> Vec<(usize, String)> {
            let mut t = Tail::new(log.as_bytes(), cap);
            // Small reads, as a BufReader over a pipe would do.
            let mut buf = [0u8; 7];
            while t.read(&mut buf).unwrap() > 0 {}
            t.lines().into_iter().map(|e| (e.line, e.text)).collect()
        }

        #[test]
        fn tail_lines_are_numbered_as_the_analyzer_numbers_them() {
            let log = "one\ntwo\r\n\nfour\nfive";
            assert_eq!(
                tail(log, 1024),
                [(1, "one"), (2, "two"), (4, "four"), (5, "five")].map(|(n, t)| (n, t.to_string()))
            );
            assert_eq!(tail(&format!("{log}\n"), 1024).last().unwrap().0, 5);
            // Only the end is kept, from a whole line on.
            let long: String = (1..=100).map(|i| format!("line {i}\n")).collect();
            let kept = tail(&long, 40);
            assert_eq!(kept.last().unwrap(), &(100, "line 100".to_string()));
            assert!(kept.len() < 20 && kept.iter().all(|(n, t)| *t == format!("line {n}")));
            let d = pipeguard_core::Analyzer::builtin().analyze(long.as_bytes());
            assert!(!d.evidence.is_empty());
            for e in d.evidence {
                assert_eq!(e.text, format!("line {}", e.line));
            }
            assert!(tail(&long, 0).is_empty());
        }
    }
}
