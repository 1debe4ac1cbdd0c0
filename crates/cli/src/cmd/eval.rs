//! `pipeguard eval DIR`: run the analyzer on labeled logs laid out as
//! `DIR/<dataset>/<case>/{log.txt,label.json}` and print a confusion table with the figures that
//! matter: precision/recall/F1 of the transient decision, per-category precision when labels name
//! categories, how often the evidence contains the lines a person picked, and (when the directory
//! has a `categories.jsonl`, as the shared development set does) category accuracy, the share of
//! genuine failures that would be retried, and the commonest confusions.

use super::analyze::load_analyzer;
use anyhow::{Context, Result};
use clap::Args;
use pipeguard_core::analysis::eval::{evidence_hits_chunk, norm, Binary};
use pipeguard_core::Category;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct CmdArgs {
    /// Directory of `<dataset>/<case>/{log.txt,label.json}`.
    pub dir: String,
    /// TOML file with `[[signatures]]` tables to include.
    #[arg(long)]
    pub config: Option<String>,
    /// Print every case whose decision or evidence missed.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Default)]
pub struct Report {
    pub transient: Binary,
    pub chunk_cases: usize,
    pub chunk_hits: usize,
    pub line_cases: usize,
    pub line_hits: usize,
    /// truth label → predicted category → count
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub per_category: BTreeMap<Category, Binary>,
    pub cases: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Cases with a high or medium label in `categories.jsonl`, and how many were right.
    pub labeled: usize,
    pub labeled_right: usize,
    /// Genuine failures (code or configuration) among them, and how many would be retried.
    pub genuine: usize,
    pub genuine_retried: usize,
    /// (label, predicted) → count, for the labeled cases the analyzer got wrong.
    pub confusions: BTreeMap<(String, String), usize>,
}

/// `categories.jsonl`: (dataset, case) → category, for labels of high or medium confidence.
fn category_labels(dir: &Path) -> Result<BTreeMap<(String, String), Category>> {
    let path = dir.join("categories.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        if field("confidence") == "low" {
            continue;
        }
        let cat: Category = field("category")
            .parse()
            .map_err(|_| anyhow::anyhow!("{} line {}: unknown category", path.display(), n + 1))?;
        out.insert(
            (field("dataset").to_string(), field("case").to_string()),
            cat,
        );
    }
    Ok(out)
}

/// What a label says, in the shapes the shared fixtures and users' own sets use.
fn truth_transient(label: &serde_json::Value) -> Option<bool> {
    match label.get("category").and_then(|v| v.as_str()) {
        Some("intermittent") => return Some(true),
        Some("not_intermittent") => return Some(false),
        Some(c) => {
            if let Ok(cat) = c.parse::<Category>() {
                return Some(cat.is_transient());
            }
        }
        None => {}
    }
    match label.get("expected_group").and_then(|v| v.as_str()) {
        Some("transient_or_healable") => Some(true),
        Some("needs_human") => Some(false),
        _ => None,
    }
}

pub fn evaluate(dir: &Path, config: Option<&str>, verbose: bool) -> Result<Report> {
    let analyzer = load_analyzer(config)?;
    let labels = category_labels(dir)?;
    let mut r = Report::default();
    let mut datasets: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    datasets.sort();
    let mut all = Vec::new();
    for ds in datasets {
        let mut cases: Vec<_> = std::fs::read_dir(&ds)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("label.json").exists() && p.join("log.txt").exists())
            .collect();
        cases.sort();
        all.push((ds, cases));
    }
    let total = all.iter().map(|(_, c)| c.len()).sum();
    let mut progress = super::progress::Progress::new();
    for (ds, cases) in all {
        for case in cases {
            progress.step("analyzing logs", r.cases, total);
            let label: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(case.join("label.json"))
                    .with_context(|| format!("cannot read {}", case.display()))?,
            )
            .with_context(|| format!("{} is not JSON", case.join("label.json").display()))?;
            let log = case.join("log.txt");
            r.bytes += std::fs::metadata(&log)?.len();
            let t = Instant::now();
            let d = analyzer.analyze_reader(File::open(&log)?)?;
            r.seconds += t.elapsed().as_secs_f64();
            r.cases += 1;
            let key = (
                ds.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                case.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
            );
            if let Some(&cat) = labels.get(&key) {
                r.labeled += 1;
                if d.category == cat {
                    r.labeled_right += 1;
                } else {
                    *r.confusions
                        .entry((cat.to_string(), d.category.to_string()))
                        .or_default() += 1;
                }
                if cat.needs_human() {
                    r.genuine += 1;
                    r.genuine_retried += usize::from(d.transient);
                }
            }
            let name = case.display();
            if let Some(truth) = truth_transient(&label) {
                r.transient.add(truth, d.transient);
                let key = label
                    .get("category")
                    .and_then(|v| v.as_str())
                    .unwrap_or(if truth { "transient" } else { "needs_human" })
                    .to_string();
                *r.confusion
                    .entry(key.clone())
                    .or_default()
                    .entry(d.category.to_string())
                    .or_default() += 1;
                if let Ok(cat) = key.parse::<Category>() {
                    r.per_category
                        .entry(cat)
                        .or_default()
                        .add(true, d.category == cat);
                    if d.category != cat {
                        r.per_category
                            .entry(d.category)
                            .or_default()
                            .add(false, true);
                    }
                }
                if verbose && truth != d.transient {
                    println!(
                        "miss  {name}: truth {key}, got {} ({:.2})",
                        d.category, d.confidence
                    );
                }
            }
            if let Some(chunk) = label.get("chunk").and_then(|v| v.as_str()) {
                r.chunk_cases += 1;
                if evidence_hits_chunk(&d.evidence, chunk) {
                    r.chunk_hits += 1;
                } else if verbose {
                    println!("evidence misses chunk  {name}");
                }
            }
            if let Some(ranges) = label.get("lines").and_then(|v| v.as_array()) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.split('\n').collect();
                let mut good = BTreeSet::new();
                for rg in ranges {
                    let a = rg.get(0).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                    let b = rg.get(1).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                    for i in a.max(1)..=b.min(lines.len()) {
                        good.insert(norm(lines[i - 1]));
                    }
                }
                good.remove("");
                r.line_cases += 1;
                if d.evidence.iter().any(|e| good.contains(&norm(&e.text))) {
                    r.line_hits += 1;
                }
            }
        }
    }
    progress.step("analyzing logs", r.cases, total);
    progress.finish();
    Ok(r)
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let r = evaluate(Path::new(&args.dir), args.config.as_deref(), args.verbose)?;
    if r.cases == 0 {
        anyhow::bail!(
            "no <dataset>/<case>/{{log.txt,label.json}} under {}",
            args.dir
        );
    }
    if !r.confusion.is_empty() {
        let cols: BTreeSet<&String> = r.confusion.values().flat_map(|m| m.keys()).collect();
        let w = r
            .confusion
            .keys()
            .map(|k| k.len())
            .max()
            .unwrap_or(5)
            .max(5);
        print!("{:<w$} ", "truth \\ predicted");
        for c in &cols {
            print!(" {:>w2$}", c, w2 = c.len().max(4));
        }
        println!();
        for (truth, row) in &r.confusion {
            print!("{truth:<w$}                  ");
            for c in &cols {
                print!(
                    " {:>w2$}",
                    row.get(*c).copied().unwrap_or(0),
                    w2 = c.len().max(4)
                );
            }
            println!();
        }
        let b = r.transient;
        println!(
            "transient decision (n={}): precision {:.2} recall {:.2} F1 {:.2}  (tp {} fp {} fn {} tn {})",
            b.total(),
            b.precision(),
            b.recall(),
            b.f1(),
            b.tp,
            b.fp,
            b.fn_,
            b.tn
        );
        for (c, b) in &r.per_category {
            println!(
                "  {c:<20} precision {:.2} recall {:.2}",
                b.precision(),
                b.recall()
            );
        }
    }
    if r.chunk_cases > 0 {
        println!(
            "evidence contains the human-picked chunk: {}/{} = {:.2}",
            r.chunk_hits,
            r.chunk_cases,
            r.chunk_hits as f64 / r.chunk_cases as f64
        );
    }
    if r.line_cases > 0 {
        println!(
            "evidence contains a labeled error line: {}/{} = {:.2}",
            r.line_hits,
            r.line_cases,
            r.line_hits as f64 / r.line_cases as f64
        );
    }
    if r.labeled > 0 {
        println!(
            "category accuracy (categories.jsonl, high+medium labels): {}/{} = {:.2}",
            r.labeled_right,
            r.labeled,
            r.labeled_right as f64 / r.labeled as f64
        );
        println!(
            "genuine failures marked transient (a retry that cannot help): {}/{} = {:.3}",
            r.genuine_retried,
            r.genuine,
            r.genuine_retried as f64 / r.genuine.max(1) as f64
        );
        let mut top: Vec<_> = r.confusions.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((label, got), n) in top.into_iter().take(8) {
            println!("   {label} -> {got} x{n}");
        }
    }
    println!(
        "{} logs, {:.1} MB analysed at {:.0} MB/s (in process)",
        r.cases,
        r.bytes as f64 / 1e6,
        r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
