//! Choosing among many matches, as an engineer reads a CI log: find the step that failed (the
//! runner's exit line and the step markers before it), weigh evidence inside that step far above
//! evidence elsewhere, and when no signature explains the failure, let the failing command's
//! tool say what its failure means. Opposing evidence lowers confidence; weak evidence yields
//! `unknown`.

use super::baseline::Baseline;
use super::clean::truncate;
use super::fingerprint::fingerprint;
use super::kb::{CompiledKb, SigKind};
use super::redact::redact;
use super::scan::{Cand, Novel, Scan, Step};
use super::tools::ToolHit;
use super::{Diagnosis, Evidence, Hints};
use crate::category::Category;
use crate::policy::Strategy;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

/// Minimum confidence at which a transient category is acted on (the default policy's).
pub const ACT_CONFIDENCE: f64 = 0.5;
/// Below this score nothing is convincing: the answer is `unknown`.
const MIN_SCORE: f64 = 0.3;
/// Evidence lines at most.
pub const MAX_EVIDENCE: usize = 12;
/// Evidence lines at least, when the failing step has that many.
const MIN_EVIDENCE: usize = 3;
/// Lines over which a match's weight decays with distance before the failing step's end.
const DECAY_LINES: f64 = 250.0;
/// Weight of evidence before the failing step (an earlier step passed or was retried).
const BEFORE_STEP: f64 = 0.35;
/// Weight of evidence in the runner's own work after the failing step (after_script, cleanup).
const POST_STEP: f64 = 0.3;
/// Weight of evidence after the failing exit line (after_failure hooks, runner messages).
const AFTER_EXIT: f64 = 0.45;
/// Added to a category when the failing command's tool agrees with a signature.
const AGREEMENT: f64 = 0.08;
/// Added to what a failed sub-task's name says.
const INNER_BONUS: f64 = 0.1;
/// Weight of a match on a line the job's green runs print too: whatever it says, the job
/// passed with it.
const OLD_LINE: f64 = 0.25;

/// A failure read against the job's green runs.
struct Green<'a> {
    model: &'a Baseline,
    /// The new lines before the failure.
    novel: &'a Novel,
    /// The candidate lines the green runs print too.
    old: HashSet<usize>,
}

impl Green<'_> {
    fn is_old(&self, line: usize) -> bool {
        self.old.contains(&line)
    }

    /// The new lines inside the failing step, before its exit line.
    fn in_step<'n>(
        &'n self,
        f: &'n Failure,
    ) -> impl DoubleEndedIterator<Item = &'n (usize, String)> {
        self.novel
            .lines
            .iter()
            .filter(move |(l, t)| *l < f.anchor && f.in_step(*l) && !is_runner_noise(t))
    }
}

/// One weighed match.
#[derive(Clone)]
struct Scored {
    cand: Rc<Cand>,
    sig: usize,
    /// The signature's category, or the failing tool's when the tool absorbs it.
    category: Category,
    score: f64,
}

/// A line a program logged at warning level (`warning: …`, `10:40:30 [warning] …`,
/// `WARN  …`): what it says did not stop the job by itself.
fn is_warning(text: &str) -> bool {
    let t =
        text.trim_start_matches(|c: char| c == '[' || c == '#' || c == ':' || c.is_whitespace());
    let lower: String = t.chars().take(12).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("warning")
        || lower.starts_with("warn ")
        || lower.starts_with("warn]")
        || lower.starts_with("w: ")
        || lower.starts_with("npm warn")
    {
        return true;
    }
    // A level tag after a timestamp or a logger name.
    let head: String = text
        .chars()
        .take(48)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "[warning]",
        "[warn]",
        " warning:",
        " warn ",
        "<warning>",
        "level=warn",
        ":warning:",
    ]
    .iter()
    .any(|tag| head.contains(tag))
}

/// A line a program logged at debug or info level: chatter of the program under test.
fn is_chatter(text: &str) -> bool {
    let head: String = text.chars().take(48).collect::<String>();
    [
        "[debug]",
        "[info]",
        "DEBUG:",
        "INFO:",
        " DEBUG ",
        " INFO ",
        "level=info",
        "level=debug",
    ]
    .iter()
    .any(|tag| head.contains(tag))
        || head.starts_with("DEBUG")
        || head.starts_with("INFO")
}

/// A line that reports something passing (`test_x ... ok`, `PASS src/a.test.ts`, `✓ works`,
/// `XFAIL`): whatever words a passing test's name holds, it did not fail.
fn is_passing(text: &str) -> bool {
    let t = text.trim();
    let end = |s: &str| t.ends_with(s);
    let start = |s: &str| t.starts_with(s);
    end(" ok")
        || end(" OK")
        || end("... ok")
        || end("PASSED")
        || end(" PASS")
        || end(" passed")
        || end("[OK]")
        || end("[ OK ]")
        || end("✓")
        || end("✔")
        || start("PASS ")
        || start("ok ")
        || start("✓")
        || start("✔")
        || start("[       OK ]")
        || t.contains("XFAIL")
        || start("SKIP")
        || t.contains(" ... ok")
        || t.contains(" ... skipped")
}

/// A line of source code quoted in a traceback (`    if isinstance(e, ConnectTimeoutError):`,
/// `>       raise ConnectionError(e)`): it names what the code handles, not what happened.
fn is_quoted_code(text: &str) -> bool {
    let lead = text.len() - text.trim_start_matches([' ', '\t', '>']).len();
    if lead < 4 {
        return false;
    }
    let t = text.trim_start_matches([' ', '\t', '>']);
    let word = t
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    matches!(
        word,
        "if" | "elif"
            | "else"
            | "except"
            | "raise"
            | "return"
            | "def"
            | "class"
            | "for"
            | "while"
            | "try"
            | "with"
            | "assert"
            | "import"
            | "from"
            | "yield"
            | "await"
            | "catch"
            | "throw"
            | "case"
            | "switch"
            | "const"
            | "let"
            | "var"
            | "fn"
            | "match"
    )
}

/// A line of a test's expected/actual diff (`006+ Warning: …`, `-expected`, `+actual`): output
/// the test compared, not the job's own failure.
fn is_diff_line(text: &str) -> bool {
    let b = text.as_bytes();
    (b.len() > 4
        && b[..3].iter().all(u8::is_ascii_digit)
        && (b[3] == b'+' || b[3] == b'-')
        && b[4] == b' ')
        || (b.len() > 1 && b[0] == b'-' && b[1] != b'-' && b[1] != b' ' && !b[1].is_ascii_digit())
}

/// Output nested deep inside other output (a dumped log, a framed report): indented this far.
const NESTED_INDENT: usize = 16;

/// How much a line can say, whatever it matched: warnings, echoes, passing tests, quoted code
/// and diffs say little.
fn line_weight(text: &str) -> f64 {
    let indent = text.len() - text.trim_start().len();
    let nested = if indent >= NESTED_INDENT { 0.5 } else { 1.0 };
    nested
        * if is_passing(text) {
            0.2
        } else if is_echo(text) || is_quoted_code(text) || is_diff_line(text) {
            0.3
        } else if is_warning(text) {
            0.5
        } else if is_chatter(text) {
            0.6
        } else {
            1.0
        }
}

/// A command echoed by the shell (`$ cmd`, `+ cmd` under `set -x`) or a diff line: it names
/// what ran, not what went wrong.
fn is_echo(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("$ ")
        || t.starts_with("+ ")
        || t.starts_with("++")
        || (t.starts_with('+') && t[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '('))
        || (t.starts_with("> ") && !is_cause_chain(&t[2..]))
}

/// After `> `: a link of a cause chain (Gradle's `> Could not resolve …`, `> java.lang.
/// OutOfMemoryError: Java heap space`), not a command an npm script echoes (`> jest --ci`).
fn is_cause_chain(rest: &str) -> bool {
    rest.starts_with(|c: char| c.is_ascii_uppercase()) || rest.contains(": ")
}

/// Lines a wrapper may sit from the specific cause that explains it.
const EXPLAIN_WINDOW: usize = 40;

/// The exit code a terminal line reports, if any.
fn exit_code(c: &Cand) -> Option<i32> {
    c.capture.as_deref().and_then(|s| s.parse().ok())
}

/// Where the job failed: the failing step, its exit line, and what the failing command says.
struct Failure {
    step: Step,
    /// The first exit line with a non-zero (or unknown) code, or the log's last line.
    anchor: usize,
    code: Option<i32>,
    /// The tools (or words) of the failing command, most specific source first.
    prior: Vec<ToolHit>,
}

impl Failure {
    fn find(kb: &CompiledKb, scan: &Scan) -> Failure {
        let total = scan.total_lines.max(1);
        let exit = scan.exits.iter().find(|c| exit_code(c) != Some(0));
        let (anchor, code) = exit.map_or((total, None), |c| (c.line, exit_code(c)));
        let mut step = exit
            .and_then(|c| c.step.as_deref().cloned())
            .or_else(|| scan.last_step.clone())
            .unwrap_or_default();
        if step.end == 0 || step.end > anchor {
            step.end = anchor;
        }
        let mut prior = failing_tools(kb, &step);
        if let Some(e) = exit {
            named_last(&mut prior, &e.before);
        }
        Failure {
            step,
            anchor,
            code,
            prior,
        }
    }

    fn in_step(&self, line: usize) -> bool {
        (line > self.step.start && line <= self.step.end) || line == self.anchor
    }

    /// How much a match on `line` counts, by where it sits relative to the failing step.
    fn position(&self, line: usize) -> f64 {
        let near = |end: usize| {
            let d = end.saturating_sub(line) as f64;
            0.55 + 0.45 * (-d / DECAY_LINES).exp()
        };
        if line == self.anchor {
            1.0
        } else if line > self.anchor {
            AFTER_EXIT
        } else if line > self.step.end {
            POST_STEP
        } else if line > self.step.start {
            near(self.step.end)
        } else {
            BEFORE_STEP * near(self.step.end)
        }
    }

    /// The failing tool that absorbs `cat` (its lines are that tool's findings).
    fn absorber(&self, cat: Category) -> Option<&ToolHit> {
        self.prior.iter().find(|h| h.absorbs.contains(&cat))
    }

    fn command(&self) -> Option<&str> {
        self.step
            .inner
            .as_deref()
            .or(self.step.trace.as_deref())
            .or(self.step.cmd.as_deref())
    }
}

/// What the failing step's command says, from its most specific name to its least: the
/// sub-task a tool reported failing, the traced command, the step's command, the stage. The first
/// that names a known tool, or else has telling words, decides.
fn failing_tools(kb: &CompiledKb, step: &Step) -> Vec<ToolHit> {
    // A printed script holds the step's command on its first line and the others after it.
    // Its words, though, are those of its commands, not of the messages it prints.
    let script = step.script.as_deref().map(|s| kb.tools.without_messages(s));
    let cmd = script.as_ref().or(step.cmd.as_ref());
    let sources = [
        step.inner.as_ref(),
        step.trace.as_ref(),
        cmd,
        step.section.as_ref(),
    ];
    for (k, s) in sources.into_iter().enumerate() {
        let Some(s) = s else { continue };
        let mut hits = kb.tools.tools_in(s);
        if hits.is_empty() {
            hits = kb.tools.words_in(s);
        }
        if !hits.is_empty() {
            if k == 0 {
                // A sub-task the tool itself reported failing is the failure, not a guess.
                for h in hits.iter_mut().filter(|h| h.weight > 0.0) {
                    h.weight = (h.weight + INNER_BONUS).min(0.65);
                }
            }
            return hits;
        }
    }
    Vec::new()
}

/// A chain of commands (`jest && eslint . && size-limit`) stops at the one that failed, and
/// that one usually names itself in its last words: when the tools disagree, keep those named
/// in the lines before the exit.
fn named_last(prior: &mut Vec<ToolHit>, last_lines: &[String]) {
    let weighed: Vec<&ToolHit> = prior.iter().filter(|h| h.weight > 0.0).collect();
    if weighed.iter().all(|h| h.category == weighed[0].category) {
        return;
    }
    let named = |h: &ToolHit| {
        let program = h.name.split_whitespace().next().unwrap_or(&h.name);
        let program = program.trim_end_matches('*');
        program.len() >= 3
            && last_lines
                .iter()
                .any(|l| !is_echo(l) && names_word(l, program))
    };
    if weighed.iter().any(|h| named(h)) {
        prior.retain(|h| h.weight == 0.0 || named(h));
    }
}

/// Whether `line` says `word` as a word of its own (not inside a path or a longer name).
fn names_word(line: &str, word: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    let b = lower.as_bytes();
    let part = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'_' || c == b'.';
    lower.match_indices(word).any(|(i, _)| {
        let end = i + word.len();
        (i == 0 || !part(b[i - 1])) && (end == b.len() || !part(b[end]))
    })
}

fn all_candidates(scan: &Scan) -> Vec<Rc<Cand>> {
    let mut by_line: BTreeMap<usize, Rc<Cand>> = BTreeMap::new();
    for c in scan
        .first
        .iter()
        .chain(scan.at_failure.iter())
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
        || text.starts_with("expected")
        || text.starts_with("left:")
        || text.starts_with("right:")
        || first.is_ascii_digit() && text.contains(" | ")
}

/// A network error about a package registry (on its line or the few around it: cargo and git
/// chain their `Caused by` lines) is a dependency download that failed.
fn names_registry(kb: &CompiledKb, c: &Cand) -> bool {
    kb.tools.mentions_registry(&c.text)
        || c.before.iter().any(|b| kb.tools.mentions_registry(b))
        || c.after
            .iter()
            .take(2)
            .any(|a| kb.tools.mentions_registry(a))
}

/// A compile error located in an installed dependency (its line or the location lines after
/// it): that dependency no longer builds with this toolchain.
fn in_dependency(kb: &CompiledKb, c: &Cand) -> bool {
    // Something missing (a crate, a header, a target) is not a conflict.
    let lower = c.text.to_ascii_lowercase();
    if ["can't find", "cannot find", "not found", "no such file"]
        .iter()
        .any(|m| lower.contains(m))
    {
        return false;
    }
    kb.tools.in_dependency(&c.text) || c.after.iter().take(2).any(|a| kb.tools.in_dependency(a))
}

/// Whether a specific cause of category `c` on `cause_line` explains a wrapper (`could not
/// compile`, `make: *** Error`) of category `w` on `wrapper_line`.
fn explains(c: Category, w: Category, cause_line: usize, wrapper_line: usize) -> bool {
    c != w
        && cause_line + EXPLAIN_WINDOW >= wrapper_line
        && cause_line <= wrapper_line + EXPLAIN_WINDOW / 4
}

/// Each match weighed by its signature, the line's kind and its place in the log.
fn score_matches(
    kb: &CompiledKb,
    cands: &[Rc<Cand>],
    f: &Failure,
    green: Option<&Green>,
) -> Vec<Scored> {
    let mut scored = Vec::new();
    for c in cands {
        let old = green.is_some_and(|g| g.is_old(c.line));
        let kind = line_weight(&c.text) * if old { OLD_LINE } else { 1.0 };
        for &i in &c.sigs {
            let s = &kb.sigs[i];
            if !matches!(s.kind, SigKind::Cause | SigKind::Test) || s.category == Category::Unknown
            {
                continue;
            }
            let category = match f.absorber(s.category) {
                Some(t) if f.in_step(c.line) && !s.user => t.category,
                _ if s.category == Category::Network && names_registry(kb, c) => {
                    Category::DependencyDownload
                }
                _ if s.category == Category::CompilationError && in_dependency(kb, c) => {
                    Category::DependencyConflict
                }
                _ => s.category,
            };
            scored.push(Scored {
                cand: c.clone(),
                sig: i,
                category,
                score: s.weight * f.position(c.line) * kind,
            });
        }
    }
    // A wrapper next to a specific cause of another category is explained by it.
    let causes: Vec<(usize, Category)> = scored
        .iter()
        .filter(|s| !kb.sigs[s.sig].wrapper && kb.sigs[s.sig].weight >= 0.55)
        .map(|s| (s.cand.line, s.category))
        .collect();
    for s in scored.iter_mut() {
        if kb.sigs[s.sig].wrapper
            && causes
                .iter()
                .any(|&(l, c)| explains(c, s.category, l, s.cand.line))
        {
            s.score *= 0.3;
        }
    }
    scored
}

/// Category scores: the best match, plus a little for corroborating lines.
fn category_scores(scored: &[Scored]) -> (Vec<(Category, f64)>, HashMap<Category, Scored>) {
    let mut best: HashMap<Category, Scored> = HashMap::new();
    let mut support: HashMap<Category, usize> = HashMap::new();
    for s in scored {
        if s.score >= MIN_SCORE {
            *support.entry(s.category).or_default() += 1;
        }
        let e = best.entry(s.category).or_insert_with(|| s.clone());
        if s.score > e.score || (s.score == e.score && s.cand.line > e.cand.line) {
            *e = s.clone();
        }
    }
    let scores = best
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
    (scores, best)
}

/// Raise `cat` to at least `w` in the scores.
fn raise(scores: &mut Vec<(Category, f64)>, cat: Category, w: f64) {
    match scores.iter_mut().find(|(c, _)| *c == cat) {
        Some(e) => e.1 = e.1.max(w),
        None => scores.push((cat, w)),
    }
}

/// Facts beside the log: the platform's own reason, or an exit code that means something.
fn side_facts(hints: &Hints, code: Option<i32>) -> Option<(Category, f64, String)> {
    if let Some(reason) = hints.platform_reason.as_deref() {
        if let Some((cat, w)) = platform_reason_category(reason) {
            return Some((cat, w, format!("platform reason: {reason}")));
        }
    }
    let code = hints.exit_code.or(code)?;
    let (cat, w) = match code {
        137 => (Category::OutOfMemory, 0.45),
        124 => (Category::Timeout, 0.55),
        143 => (Category::Cancelled, 0.35),
        _ => return None,
    };
    Some((cat, w, format!("exit code {code}")))
}

/// When nothing else explains a failure: what the error messages a step printed itself
/// (GitHub's `##[error]` annotations of a custom script, new against the green runs when there
/// are some) say by their words (`Every PR must have at least one label` → a PR-convention
/// check). The runner's exit lines say nothing; a word weighing under `MIN_SCORE` neither.
fn said_by_messages(
    kb: &CompiledKb,
    scan: &Scan,
    f: &Failure,
    green: Option<&Green>,
) -> Option<ToolHit> {
    let lines: Vec<String> = match green.filter(|g| !g.novel.lines.is_empty()) {
        Some(g) => g.in_step(f).map(|(_, t)| t.clone()).collect(),
        None => step_end_lines(scan, f, None)
            .into_iter()
            .filter(|n| f.in_step(n.line) || f.step.start == 0)
            .map(|n| n.text)
            .collect(),
    };
    lines
        .iter()
        .rev()
        .filter_map(|t| kb.tools.message_of(t))
        .flat_map(|m| kb.tools.words_in(m))
        .find(|h| h.weight >= MIN_SCORE)
}

/// What decided the category.
enum Decider {
    Match(Scored),
    Tool(ToolHit),
    Fact(String),
    Nothing,
}

pub fn decide(kb: &CompiledKb, scan: &Scan, hints: &Hints, analyzer: &str) -> Diagnosis {
    decide_against(kb, scan, hints, analyzer, None).0
}

/// As `decide`, reading the failure against the job's green runs when a baseline is given:
/// matches on lines the green runs print too weigh little, evidence prefers the lines the
/// failure added. Also says, for each evidence line, whether it is new (with a baseline).
pub fn decide_against(
    kb: &CompiledKb,
    scan: &Scan,
    hints: &Hints,
    analyzer: &str,
    baseline: Option<&Baseline>,
) -> (Diagnosis, Option<Vec<bool>>) {
    let f = Failure::find(kb, scan);
    let cands = all_candidates(scan);
    let empty = Novel::default();
    let green = baseline.map(|model| {
        let mut scratch = Vec::new();
        Green {
            model,
            novel: scan.novel.as_ref().unwrap_or(&empty),
            old: cands
                .iter()
                .filter(|c| !model.is_new(&c.text, &mut scratch))
                .map(|c| c.line)
                .collect(),
        }
    });
    let green = green.as_ref();
    let scored = score_matches(kb, &cands, &f, green);
    let (mut cat_score, best) = category_scores(&scored);

    // The failing command's tool: agreement strengthens a signature; alone it decides when no
    // signature is convincing.
    for hit in &f.prior {
        match cat_score.iter_mut().find(|(c, _)| *c == hit.category) {
            Some(e) if e.1 >= MIN_SCORE && hit.weight > 0.0 => e.1 = (e.1 + AGREEMENT).min(0.99),
            // A signature as strong as the tool's word is evidence, and wins a tie.
            _ => raise(&mut cat_score, hit.category, hit.weight - 0.01),
        }
    }
    let side = side_facts(hints, f.code);
    if let Some((cat, w, _)) = &side {
        raise(&mut cat_score, *cat, *w);
    }
    cat_score.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    // User signatures take precedence over everything built in.
    let user_pick = scored
        .iter()
        .filter(|s| kb.sigs[s.sig].user)
        .max_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then(a.cand.line.cmp(&b.cand.line))
        })
        .cloned();

    let (category, top_score, decider) = if let Some(u) = user_pick {
        (u.category, u.score.max(0.7), Decider::Match(u))
    } else {
        match cat_score.first() {
            Some(&(cat, s)) if s >= MIN_SCORE => {
                let d = match best.get(&cat) {
                    Some(m)
                        if m.score >= MIN_SCORE || !f.prior.iter().any(|h| h.category == cat) =>
                    {
                        Decider::Match(m.clone())
                    }
                    _ => match f.prior.iter().rev().find(|h| h.category == cat) {
                        Some(h) => Decider::Tool(h.clone()),
                        None => match &side {
                            Some((_, _, why)) => Decider::Fact(why.clone()),
                            None => Decider::Nothing,
                        },
                    },
                };
                (cat, s, d)
            }
            _ => match said_by_messages(kb, scan, &f, green) {
                // A custom script's own error message names what it checks.
                Some(h) => (h.category, h.weight, Decider::Tool(h)),
                None => (
                    Category::Unknown,
                    cat_score.first().map_or(0.1, |x| x.1).min(0.29),
                    Decider::Nothing,
                ),
            },
        }
    };
    let decisive = match &decider {
        Decider::Match(m) => Some(m.clone()),
        _ => None,
    };

    // Confidence: the winner's score, lowered by the strongest evidence for the other group
    // (a transient-looking line does not excuse a compile error, nor the reverse). A failing
    // linter or test runner counts, at half its weight, against a transient reading.
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
        let mut opp = scored
            .iter()
            .filter(|s| opposite(s.category) && Some(s.cand.line) != win_line)
            .map(|s| s.score)
            .fold(0.0, f64::max);
        if let Some(t) = f
            .prior
            .iter()
            .filter(|h| opposite(h.category))
            .map(|h| h.weight)
            .reduce(f64::max)
        {
            opp = opp.max(0.5 * t);
        }
        confidence = top_score - 0.5 * opp;
    }
    let confidence = (confidence.clamp(0.05, 0.99) * 100.0).round() / 100.0;
    // A transient cause must sit in the failing step (or be the runner's verdict): a network
    // word in another step never makes a genuine failure look transient.
    let placed = match &decider {
        Decider::Match(m) => f.in_step(m.cand.line) || m.cand.line > f.anchor,
        _ => true,
    };
    let transient = category.is_transient() && confidence >= ACT_CONFIDENCE && placed;

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

    // The tool's verdict decided (alone, or by absorbing the lines it reported).
    let by_tool = matches!(decider, Decider::Tool(_))
        || decisive
            .as_ref()
            .is_some_and(|d| d.category != kb.sigs[d.sig].category);
    let (evidence, new, key_lines) = evidence(
        kb,
        scan,
        &f,
        &scored,
        &cands,
        category,
        decisive.as_ref(),
        by_tool,
        green,
    );

    let sig_id = match &decider {
        Decider::Match(d) => Some(kb.sigs[d.sig].id.clone()),
        Decider::Tool(t) => Some(format!("tool:{}", t.name)),
        _ => None,
    };
    let key_refs: Vec<String> = key_lines.iter().map(|l| redact(l)).collect();
    let key_refs: Vec<&str> = key_refs.iter().map(|s| s.as_str()).collect();
    let fp = fingerprint(
        category.as_str(),
        sig_id.as_deref().unwrap_or("none"),
        &key_refs,
    );
    let summary = match &decider {
        Decider::Match(d) => {
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
        Decider::Tool(t) => truncate(
            format!(
                "{category}: the failing step ran {} (`{}`){}",
                if t.tool {
                    "a tool whose failure means this"
                } else {
                    "a command whose name says so"
                },
                t.name,
                f.command()
                    .map(|c| format!(": {}", redact(c)))
                    .unwrap_or_default()
            ),
            300,
        ),
        Decider::Fact(why) => format!("{category}: {why}"),
        Decider::Nothing => {
            "no known failure signature matched; a human should read the evidence".to_string()
        }
    };
    let d = Diagnosis {
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
    };
    (d, new)
}

struct EvidenceBuilder<'a> {
    /// Line → (redacted text, new against the green runs).
    lines: BTreeMap<usize, (String, bool)>,
    green: Option<&'a Baseline>,
    scratch: Vec<u8>,
}

impl EvidenceBuilder<'_> {
    fn add(&mut self, line: usize, text: &str) {
        if self.lines.len() < MAX_EVIDENCE && !text.trim().is_empty() {
            if let std::collections::btree_map::Entry::Vacant(e) = self.lines.entry(line) {
                // Newness is read before redaction, as the green runs' lines were.
                let new = self.green.is_none_or(|g| g.is_new(text, &mut self.scratch));
                e.insert((redact(text), new));
            }
        }
    }

    /// A line that starts a failure's description, and the lines after it.
    fn details(&mut self, c: &Cand, n: usize) {
        self.add(c.line, &c.text);
        for (k, t) in c.after.iter().take(n).enumerate() {
            self.add(c.line + 1 + k, t);
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

    /// With a baseline: lines the green runs print too explain nothing, unless nothing else
    /// is left (the decisive line always stays).
    fn drop_old(&mut self, keep: Option<usize>) {
        if self.green.is_some()
            && self
                .lines
                .iter()
                .any(|(l, (_, new))| *new && Some(*l) != keep)
        {
            self.lines.retain(|l, (_, new)| *new || Some(*l) == keep);
        }
    }

    fn into_vec(self) -> (Vec<Evidence>, Option<Vec<bool>>) {
        let new = self
            .green
            .map(|_| self.lines.values().map(|(_, n)| *n).collect());
        let ev = self
            .lines
            .into_iter()
            .map(|(line, (text, _))| Evidence { line, text })
            .collect();
        (ev, new)
    }
}

/// Lines of the failing step's end kept when a tool's own report explains the failure.
const STEP_TAIL: usize = 6;

/// The lines that explain the failing step, in log order, and the key lines for the fingerprint:
/// the first failure a runner describes in the step, the decisive line with its continuation,
/// strong lines of the same cause between them, and (when a tool's verdict decided) the end of
/// the step, where tools print their report.
#[allow(clippy::too_many_arguments)]
fn evidence(
    kb: &CompiledKb,
    scan: &Scan,
    f: &Failure,
    scored: &[Scored],
    cands: &[Rc<Cand>],
    category: Category,
    decisive: Option<&Scored>,
    by_tool: bool,
    green: Option<&Green>,
) -> (Vec<Evidence>, Option<Vec<bool>>, Vec<String>) {
    let mut ev = EvidenceBuilder {
        lines: BTreeMap::new(),
        green: green.map(|g| g.model),
        scratch: Vec::new(),
    };
    let mut key_lines: Vec<String> = Vec::new();
    // The first failure the runner describes in the failing step, before the decisive line.
    let upto = decisive.map_or(f.step.end, |d| d.cand.line);
    let detail = cands.iter().find(|c| {
        c.line > f.step.start
            && c.line < upto
            && f.in_step(c.line)
            && c.sigs.iter().any(|&i| {
                let s = &kb.sigs[i];
                (s.kind == SigKind::Hint && s.details_after) || s.kind == SigKind::Test
            })
    });
    if let Some(c) = detail {
        ev.details(c, 4);
    }
    if let Some(d) = decisive {
        // The root: the earliest strong match of the same cause in the failing step.
        let dw = kb.sigs[d.sig].weight;
        let lo = if f.in_step(d.cand.line) {
            f.step.start
        } else {
            d.cand.line.saturating_sub(3000)
        };
        let root = scored
            .iter()
            .filter(|s| {
                s.category == category
                    && s.cand.line < d.cand.line
                    && s.cand.line > lo
                    && kb.sigs[s.sig].weight >= dw * 0.75
                    && !is_echo(&s.cand.text)
                    && !kb.sigs[s.sig].wrapper
            })
            .min_by_key(|s| s.cand.line);
        if let Some(r) = root {
            ev.block(&r.cand, 4);
            key_lines.push(r.cand.text.clone());
        }
        if kb.sigs[d.sig].details_after {
            ev.details(&d.cand, 8);
        } else {
            ev.block(&d.cand, 4);
        }
        key_lines.push(d.cand.text.clone());
        // Other strong lines of the same cause between root and decisive, one line each.
        let from = root.map_or(d.cand.line, |r| r.cand.line);
        for s in scored {
            if s.category == category
                && s.cand.line > from
                && s.cand.line < d.cand.line
                && kb.sigs[s.sig].weight >= 0.5
                && !is_echo(&s.cand.text)
            {
                ev.add(s.cand.line, &s.cand.text);
            }
        }
    } else {
        // Nothing decisive: the error-looking lines nearest the failing step's end, from the
        // matches and from the step's last lines (where the commonest words are looked for).
        let placed = |line: usize| line < f.anchor && (f.in_step(line) || f.step.start == 0);
        let old = |line: usize| green.is_some_and(|g| g.is_old(line));
        let mut near: Vec<(Near, f64)> = cands
            .iter()
            .filter(|c| placed(c.line) && !old(c.line))
            .filter_map(|c| {
                let w = c
                    .sigs
                    .iter()
                    .filter(|&&i| kb.sigs[i].kind != SigKind::Exit)
                    .map(|&i| kb.sigs[i].weight)
                    .fold(0.0, f64::max);
                (w > 0.0).then(|| (Near::of(c), w))
            })
            .collect();
        for n in step_end_lines(scan, f, green) {
            let w = kb.tail_hint(&n.text);
            if w > 0.0 && placed(n.line) && !near.iter().any(|(m, _)| m.line == n.line) {
                near.push((n, w));
            }
        }
        for (n, w) in near.iter_mut() {
            let d = f.step.end.saturating_sub(n.line) as f64;
            *w *= line_weight(&n.text) * (-d / 150.0).exp();
        }
        near.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.line.cmp(&a.0.line)));
        for (n, _) in near.iter().take(if by_tool { 1 } else { 3 }) {
            ev.add(n.line, &n.text);
            for (k, t) in n.after.iter().take(4).enumerate() {
                if !is_continuation(t) {
                    break;
                }
                ev.add(n.line + 1 + k, t);
            }
            key_lines.push(n.text.clone());
        }
    }
    // The failing command's last words: the lines just before its exit line, where a tool
    // prints its report (all of them when the tool's verdict decided).
    let want = if by_tool || decisive.is_none() {
        ev.lines.len() + STEP_TAIL
    } else {
        MIN_EVIDENCE
    };
    let first = if by_tool {
        0
    } else {
        ev.lines.keys().next().copied().unwrap_or(0)
    };
    let added: Vec<&(usize, String)> = green.map_or(Vec::new(), |g| g.in_step(f).collect());
    if ev.lines.len() < want && !added.is_empty() {
        // What the failure added at the step's end, rather than what every run prints there.
        let from_end = added.iter().rev().take_while(|(l, _)| *l >= first);
        let tail: Vec<_> = from_end.take(want - ev.lines.len()).collect();
        for (line, t) in tail.into_iter().rev() {
            ev.add(*line, t);
        }
    } else if ev.lines.len() < want {
        if let Some(exit) = scan.exits.iter().find(|c| c.line == f.anchor) {
            let n = exit.before.len();
            // Padding follows the cause: what comes first is what explains.
            let mut tail = Vec::new();
            for (k, t) in exit.before.iter().enumerate().rev() {
                let line = f.anchor - (n - k);
                if line <= f.step.start || line < first {
                    break;
                }
                if line > f.step.end {
                    continue;
                }
                if !t.trim().is_empty() && !is_runner_noise(t) {
                    tail.push((line, t));
                }
                if ev.lines.len() + tail.len() >= want {
                    break;
                }
            }
            for (line, t) in tail {
                ev.add(line, t);
            }
        }
    }
    ev.drop_old(decisive.map(|d| d.cand.line));
    if ev.lines.is_empty() {
        // Not even an error-looking line: the last lines the failure added, else the last
        // lines before the end.
        let last: Vec<(usize, &String)> = match green.map(|g| &g.novel.lines) {
            Some(novel) if !novel.is_empty() => novel.iter().map(|(l, t)| (*l, t)).collect(),
            _ => scan.tail.iter().map(|(l, t)| (*l, t)).collect(),
        };
        for (n, t) in last
            .into_iter()
            .rev()
            .filter(|(_, t)| !t.trim().is_empty())
            .take(5)
        {
            ev.add(n, t);
        }
    }
    let (lines, new) = ev.into_vec();
    (lines, new, key_lines)
}

/// A line near the failing step's end, with the lines after it.
struct Near {
    line: usize,
    text: String,
    after: Vec<String>,
}

impl Near {
    fn of(c: &Cand) -> Near {
        Near {
            line: c.line,
            text: c.text.clone(),
            after: c.after.clone(),
        }
    }
}

/// The lines kept around the failure: with a baseline, the new lines of the failing step; else
/// the lines before the failing exit line, else the log's tail.
fn step_end_lines(scan: &Scan, f: &Failure, green: Option<&Green>) -> Vec<Near> {
    if let Some(g) = green.filter(|g| !g.novel.lines.is_empty()) {
        let added: Vec<&(usize, String)> = g.in_step(f).collect();
        return added
            .iter()
            .enumerate()
            .map(|(k, (line, t))| Near {
                line: *line,
                text: t.clone(),
                // What continues it: the new lines right after it.
                after: added[k + 1..]
                    .iter()
                    .enumerate()
                    .take_while(|(j, (l, _))| *l == line + 1 + j)
                    .map(|(_, (_, t))| t.clone())
                    .collect(),
            })
            .collect();
    }
    let numbered: Vec<(usize, &String)> = match scan.exits.iter().find(|c| c.line == f.anchor) {
        Some(exit) => {
            let n = exit.before.len();
            exit.before
                .iter()
                .enumerate()
                .map(|(k, t)| (f.anchor - (n - k), t))
                .collect()
        }
        None => match &scan.annotated_end {
            Some((next, lines)) => lines
                .iter()
                .enumerate()
                .map(|(k, t)| (next - (lines.len() - k), t))
                .collect(),
            None => scan.tail.iter().map(|(l, t)| (*l, t)).collect(),
        },
    };
    numbered
        .iter()
        .enumerate()
        .map(|(k, (line, t))| Near {
            line: *line,
            text: (*t).clone(),
            after: numbered[k + 1..]
                .iter()
                .map(|(_, t)| (*t).clone())
                .collect(),
        })
        .collect()
}

/// Lines a runner or package manager prints after any failure: they explain nothing.
fn is_runner_noise(t: &str) -> bool {
    let t = t.trim_start();
    t.starts_with("npm ERR!")
        || t.starts_with("npm error")
        || t.starts_with("info Visit")
        || t.starts_with("error Command failed")
        || t.starts_with("travis_")
        || t.starts_with("The command \"")
}
