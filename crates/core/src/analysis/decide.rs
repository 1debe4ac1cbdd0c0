//! Choosing among many matches: each match is weighed by its signature's specificity and by
//! where it sits relative to the failing step's end (the first non-zero exit line, or the end of
//! the log). Opposing evidence lowers confidence; weak evidence yields `unknown`.

use super::clean::truncate;
use super::fingerprint::fingerprint;
use super::kb::{CompiledKb, SigKind};
use super::redact::redact;
use super::scan::{Cand, Scan};
use super::{Diagnosis, Evidence, Hints};
use crate::category::Category;
use crate::policy::Strategy;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Minimum confidence at which a transient category is acted on (the default policy's).
pub const ACT_CONFIDENCE: f64 = 0.5;
/// Below this score nothing is convincing: the answer is `unknown`.
const MIN_SCORE: f64 = 0.3;
/// Evidence lines at most.
pub const MAX_EVIDENCE: usize = 20;
/// Lines over which a match's weight decays with distance before the failing step's end.
const DECAY_LINES: f64 = 250.0;

/// One weighed match.
#[derive(Clone)]
struct Scored {
    cand: Rc<Cand>,
    sig: usize,
    score: f64,
}

fn is_warning(text: &str) -> bool {
    let t =
        text.trim_start_matches(|c: char| c == '[' || c == '#' || c == ':' || c.is_whitespace());
    let lower: String = t.chars().take(12).collect::<String>().to_ascii_lowercase();
    lower.starts_with("warning")
        || lower.starts_with("warn ")
        || lower.starts_with("warn]")
        || lower.starts_with("w: ")
        || lower.starts_with("npm warn")
        || lower.starts_with("warning]")
}

/// A command echoed by the shell (`$ cmd`, `+ cmd` under `set -x`) or a diff line: it names
/// what ran, not what went wrong.
fn is_echo(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("$ ")
        || t.starts_with("+ ")
        || t.starts_with("++")
        || (t.starts_with('+') && t[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '('))
        || t.starts_with("> ")
}

/// Lines a wrapper may sit from the specific cause that explains it.
const EXPLAIN_WINDOW: usize = 40;

/// The exit code a terminal line reports, if any.
fn exit_code(c: &Cand) -> Option<i32> {
    c.capture.as_deref().and_then(|s| s.parse().ok())
}

/// Where the failing step ends: the first terminal line with a non-zero (or unknown) code.
fn anchor(scan: &Scan) -> (usize, Option<i32>) {
    for c in &scan.exits {
        match exit_code(c) {
            Some(0) => continue,
            code => return (c.line, code),
        }
    }
    (scan.total_lines.max(1), None)
}

fn position_factor(line: usize, anchor: usize) -> f64 {
    if line <= anchor {
        let d = (anchor - line) as f64;
        0.55 + 0.45 * (-d / DECAY_LINES).exp()
    } else {
        // After the failing step: cleanup, after_failure hooks, post steps.
        0.5
    }
}

fn all_candidates(scan: &Scan) -> Vec<Rc<Cand>> {
    let mut by_line: BTreeMap<usize, Rc<Cand>> = BTreeMap::new();
    for c in scan
        .first
        .iter()
        .chain(scan.recent.iter())
        .chain(scan.last_per_sig.iter().flatten())
    {
        by_line.entry(c.line).or_insert_with(|| c.clone());
    }
    by_line.into_values().collect()
}

fn platform_reason_category(reason: &str) -> Option<(Category, f64)> {
    let r = reason.to_ascii_lowercase();
    if r.contains("cancel") || r.contains("abort") {
        Some((Category::Cancelled, 0.9))
    } else if r.contains("runner_system_failure")
        || r.contains("scheduler_failure")
        || r.contains("runner_unsupported")
        || r.contains("stale_schedule")
        || r.contains("data_integrity_failure")
        || r.contains("system failure")
    {
        Some((Category::Infrastructure, 0.85))
    } else if r.contains("timeout") || r.contains("timed_out") || r.contains("timed out") {
        Some((Category::Timeout, 0.85))
    } else {
        None
    }
}

/// Lines that continue an error message: indented, code frames, `Caused by`, stack frames.
fn is_continuation(text: &str) -> bool {
    if text.trim().is_empty() {
        return false;
    }
    let first = text.chars().next().unwrap_or(' ');
    first.is_whitespace()
        || text.starts_with('|')
        || text.starts_with('=')
        || text.starts_with("-->")
        || text.starts_with("Caused by")
        || text.starts_with("E ")
        || text.starts_with('>')
        || text.starts_with("at ")
        || text.starts_with("note:")
        || text.starts_with("help:")
        || text.starts_with('^')
        || text.starts_with('~')
        || text.starts_with("  ")
        || text.starts_with("expected")
        || text.starts_with("left:")
        || text.starts_with("right:")
        || first.is_ascii_digit() && text.contains(" | ")
}

struct EvidenceBuilder {
    lines: BTreeMap<usize, String>,
}

impl EvidenceBuilder {
    fn add(&mut self, line: usize, text: &str) {
        if self.lines.len() < MAX_EVIDENCE && !text.trim().is_empty() {
            self.lines.entry(line).or_insert_with(|| redact(text));
        }
    }

    /// A match with the lines that introduce and continue it.
    fn block(&mut self, c: &Cand, max_after: usize) {
        if let Some(prev) = c.before.last() {
            if prev.trim_end().ends_with(':') && !prev.trim().is_empty() {
                self.add(c.line - 1, prev);
            }
        }
        self.add(c.line, &c.text);
        for (k, t) in c.after.iter().take(max_after).enumerate() {
            if !is_continuation(t) {
                break;
            }
            self.add(c.line + 1 + k, t);
        }
    }

    fn into_vec(self) -> Vec<Evidence> {
        self.lines
            .into_iter()
            .map(|(line, text)| Evidence { line, text })
            .collect()
    }
}

pub fn decide(kb: &CompiledKb, scan: &Scan, hints: &Hints, analyzer: &str) -> Diagnosis {
    let (anchor_line, anchor_code) = anchor(scan);
    let cands = all_candidates(scan);

    let mut scored: Vec<Scored> = Vec::new();
    let mut user_scored: Vec<Scored> = Vec::new();
    for c in &cands {
        let warn = if is_warning(&c.text) {
            0.5
        } else if is_echo(&c.text) {
            0.3
        } else {
            1.0
        };
        for &i in &c.sigs {
            let s = &kb.sigs[i];
            if !matches!(s.kind, SigKind::Cause | SigKind::Test) || s.category == Category::Unknown
            {
                continue;
            }
            let score = s.weight * position_factor(c.line, anchor_line) * warn;
            let sc = Scored {
                cand: c.clone(),
                sig: i,
                score,
            };
            if s.user {
                user_scored.push(sc.clone());
            }
            scored.push(sc);
        }
    }

    // A wrapper next to a specific cause of another category is explained by it.
    let causes: Vec<(usize, Category)> = scored
        .iter()
        .filter(|s| !kb.sigs[s.sig].wrapper && kb.sigs[s.sig].weight >= 0.55)
        .map(|s| (s.cand.line, kb.sigs[s.sig].category))
        .collect();
    for s in scored.iter_mut() {
        let sig = &kb.sigs[s.sig];
        if sig.wrapper
            && causes.iter().any(|&(l, c)| {
                c != sig.category
                    && l + EXPLAIN_WINDOW >= s.cand.line
                    && l <= s.cand.line + EXPLAIN_WINDOW / 4
            })
        {
            s.score *= 0.3;
        }
    }

    // Category scores: the best match, plus a little for corroborating lines.
    let mut best: HashMap<Category, Scored> = HashMap::new();
    let mut support: HashMap<Category, usize> = HashMap::new();
    for s in &scored {
        let cat = kb.sigs[s.sig].category;
        if s.score >= MIN_SCORE {
            *support.entry(cat).or_default() += 1;
        }
        let e = best.entry(cat).or_insert_with(|| s.clone());
        if s.score > e.score || (s.score == e.score && s.cand.line > e.cand.line) {
            *e = s.clone();
        }
    }
    let mut cat_score: Vec<(Category, f64)> = best
        .iter()
        .map(|(c, s)| {
            let extra = support
                .get(c)
                .copied()
                .unwrap_or(0)
                .saturating_sub(1)
                .min(3) as f64;
            (*c, (s.score + 0.03 * extra).min(0.99))
        })
        .collect();

    // Facts beside the log.
    let code = hints.exit_code.or(anchor_code);
    let mut side: Option<(Category, f64, String)> = None;
    if let Some((cat, w)) = hints
        .platform_reason
        .as_deref()
        .and_then(platform_reason_category)
    {
        side = Some((
            cat,
            w,
            format!(
                "platform reason: {}",
                hints.platform_reason.as_deref().unwrap_or("")
            ),
        ));
    } else if let Some(code) = code {
        let by_code = match code {
            137 => Some((Category::OutOfMemory, 0.45)),
            124 => Some((Category::Timeout, 0.55)),
            143 => Some((Category::Cancelled, 0.35)),
            _ => None,
        };
        if let Some((cat, w)) = by_code {
            side = Some((cat, w, format!("exit code {code}")));
        }
    }
    if let Some((cat, w, _)) = &side {
        match cat_score.iter_mut().find(|(c, _)| c == cat) {
            Some(e) => e.1 = e.1.max(*w),
            None => cat_score.push((*cat, *w)),
        }
    }
    cat_score.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    // User signatures take precedence over everything built in.
    let user_pick = user_scored
        .iter()
        .max_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then(a.cand.line.cmp(&b.cand.line))
        })
        .cloned();

    let (category, top_score, decisive): (Category, f64, Option<Scored>) =
        if let Some(u) = user_pick {
            (kb.sigs[u.sig].category, u.score.max(0.7), Some(u))
        } else {
            match cat_score.first() {
                Some(&(cat, s)) if s >= MIN_SCORE => (cat, s, best.get(&cat).cloned()),
                _ => (
                    Category::Unknown,
                    cat_score.first().map_or(0.1, |x| x.1).min(0.29),
                    None,
                ),
            }
        };

    // Confidence: the winner's score, lowered by the strongest evidence for the other group
    // (a transient-looking line does not excuse a compile error, nor the reverse).
    let mut confidence = top_score;
    if category != Category::Unknown && category != Category::Cancelled {
        let win_line = decisive.as_ref().map(|d| d.cand.line);
        let opposite = |c: Category| {
            if category.is_transient() {
                c.needs_human()
            } else {
                c.is_transient()
            }
        };
        let opp = scored
            .iter()
            .filter(|s| opposite(kb.sigs[s.sig].category) && Some(s.cand.line) != win_line)
            .map(|s| s.score)
            .fold(0.0, f64::max);
        confidence = top_score - 0.5 * opp;
    }
    let confidence = (confidence.clamp(0.05, 0.99) * 100.0).round() / 100.0;
    let transient = category.is_transient() && confidence >= ACT_CONFIDENCE;

    let strategy = if category == Category::Cancelled {
        Strategy::None
    } else if transient {
        decisive
            .as_ref()
            .and_then(|d| kb.sigs[d.sig].strategy)
            .unwrap_or_else(|| Strategy::default_for(category))
    } else {
        Strategy::Escalate
    };

    // Evidence.
    let mut ev = EvidenceBuilder {
        lines: BTreeMap::new(),
    };
    let mut key_lines: Vec<String> = Vec::new();
    if let Some(d) = &decisive {
        // The root: the earliest strong match of the same category in the failing step.
        let dw = kb.sigs[d.sig].weight;
        let root = scored
            .iter()
            .filter(|s| {
                kb.sigs[s.sig].category == category
                    && s.cand.line < d.cand.line
                    && d.cand.line - s.cand.line <= 3000
                    && kb.sigs[s.sig].weight >= dw * 0.75
                    && !is_echo(&s.cand.text)
                    && !kb.sigs[s.sig].wrapper
            })
            .min_by_key(|s| s.cand.line);
        if let Some(r) = root {
            ev.block(&r.cand, 8);
            key_lines.push(r.cand.text.clone());
        }
        if kb.sigs[d.sig].details_after {
            ev.add(d.cand.line, &d.cand.text);
            for (k, t) in d.cand.after.iter().enumerate().take(8) {
                ev.add(d.cand.line + 1 + k, t);
            }
        } else {
            ev.block(&d.cand, 8);
        }
        key_lines.push(d.cand.text.clone());
        // Other strong lines of the same cause between root and decisive, one line each.
        let lo = root.map_or(d.cand.line, |r| r.cand.line);
        let mut extra = 0;
        for s in &scored {
            if extra < 8
                && kb.sigs[s.sig].category == category
                && s.cand.line > lo
                && s.cand.line < d.cand.line
                && kb.sigs[s.sig].weight >= 0.5
                && !is_echo(&s.cand.text)
                && !ev.lines.contains_key(&s.cand.line)
            {
                ev.add(s.cand.line, &s.cand.text);
                extra += 1;
            }
        }
    } else {
        // Nothing decisive: the error-looking lines nearest the failing step's end.
        let mut hints_near: Vec<(&Rc<Cand>, f64)> = cands
            .iter()
            .filter(|c| c.line <= anchor_line)
            .filter_map(|c| {
                let w = c
                    .sigs
                    .iter()
                    .filter(|&&i| kb.sigs[i].kind != SigKind::Exit)
                    .map(|&i| kb.sigs[i].weight)
                    .fold(0.0, f64::max);
                let d = (anchor_line - c.line) as f64;
                let echo = if is_echo(&c.text) { 0.3 } else { 1.0 };
                (w > 0.0).then_some((c, w * echo * (-d / 150.0).exp()))
            })
            .collect();
        hints_near.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.line.cmp(&a.0.line)));
        for (c, _) in hints_near.iter().take(3) {
            ev.block(c, 4);
            key_lines.push(c.text.clone());
        }
        // The failing command's last words: the line just before its exit line.
        if let Some(exit) = scan.exits.iter().find(|c| c.line == anchor_line) {
            if let Some(prev) = exit.before.iter().rev().find(|t| !t.trim().is_empty()) {
                let back =
                    exit.before.len() - exit.before.iter().rposition(|t| t == prev).unwrap_or(0);
                ev.add(anchor_line - back, prev);
            }
        }
        if ev.lines.is_empty() {
            // Not even an error-looking line: the last lines before the end.
            for (n, t) in scan
                .tail
                .iter()
                .rev()
                .filter(|(_, t)| !t.trim().is_empty())
                .take(5)
            {
                ev.add(*n, t);
            }
        }
    }
    let evidence = ev.into_vec();

    let sig_id = decisive.as_ref().map(|d| kb.sigs[d.sig].id.clone());
    let key_refs: Vec<String> = key_lines.iter().map(|l| redact(l)).collect();
    let key_refs: Vec<&str> = key_refs.iter().map(|s| s.as_str()).collect();
    let fp = fingerprint(
        category.as_str(),
        sig_id.as_deref().unwrap_or("none"),
        &key_refs,
    );
    let summary = match (&decisive, &side) {
        (Some(d), _) => {
            let s = &kb.sigs[d.sig];
            truncate(
                format!(
                    "{}: {} (line {}: {})",
                    category,
                    s.description,
                    d.cand.line,
                    redact(d.cand.text.trim())
                ),
                300,
            )
        }
        (None, Some((cat, _, why))) if *cat == category => format!("{category}: {why}"),
        _ => "no known failure signature matched; a human should read the evidence".to_string(),
    };
    Diagnosis {
        category,
        confidence,
        transient,
        evidence,
        fingerprint: fp,
        strategy,
        failing_tests: scan.tests.iter().map(|t| redact(t)).collect(),
        analyzer: analyzer.to_string(),
        signature: sig_id,
        summary,
    }
}
