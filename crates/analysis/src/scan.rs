//! The hot loop: one streaming pass over a log in large chunks cut at line boundaries. One
//! Aho-Corasick automaton of the signatures' literals finds candidate lines; only those are
//! cleaned and checked against the signatures whose literals they contain. Memory stays bounded whatever the log's size: the current chunk, a few context lines and
//! a capped set of candidate matches.

use super::baseline::Baseline;
use super::clean::{clean_bytes, clean_line, strip_ansi_into, truncate};
use super::kb::{CompiledKb, SigKind};
use memchr::{memchr, memchr_iter, memrchr};
use std::collections::{HashSet, VecDeque};
use std::io::{self, Read};
use std::rc::Rc;

/// Bytes read per chunk.
pub const CHUNK: usize = 1 << 20;
/// A line longer than this is cut (a minified bundle, a binary dump).
const MAX_LINE: usize = 64 << 10;
/// Characters kept of a stored line.
const KEEP_CHARS: usize = 500;
/// Context kept around each candidate.
pub const BEFORE: usize = 3;
/// Context kept before an exit line: the failing command's last words.
pub const EXIT_BEFORE: usize = 12;
pub const AFTER: usize = 10;
/// Candidate caps: the first ones (root causes come first) and the most recent ones (the failure
/// is usually near the end).
const FIRST_CAP: usize = 64;
const RECENT_CAP: usize = 512;
const TAIL_LINES: usize = 30;
const MAX_TESTS: usize = 500;

/// A step of the job as the runner laid it out: where its output starts and ends, and what it
/// ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Line of the marker that started it (0: the log's start, no marker seen).
    pub start: usize,
    /// Last line of its output.
    pub end: usize,
    /// The command or name the runner shows for it (`$ cmd`, `Run cmd`, a Travis exit line's).
    pub cmd: Option<String>,
    /// The last command traced inside it (`+ cmd`).
    pub trace: Option<String>,
    /// The first sub-command, target or task a tool inside it reported failing: the most
    /// specific.
    pub inner: Option<String>,
    /// The stage it ran in.
    pub section: Option<String>,
    /// The whole script the runner printed for it, one command a line (GitHub's multi-line
    /// `run:`), when it printed more than `cmd`.
    pub script: Option<String>,
}

/// Lines and characters kept of a step's script.
const SCRIPT_LINES: usize = 60;
const KEEP_SCRIPT: usize = 2000;

/// The script printed after a step marker: the lines of `rest` up to one that starts with one
/// of `until` (timestamps removed), when there are more than one. Without that line within
/// `SCRIPT_LINES` the lines are the step's output, not its script.
fn step_script(rest: &[u8], until: &[String]) -> Option<String> {
    let mut lines = Vec::new();
    let mut size = 0;
    for raw in rest.split(|&b| b == b'\n').take(SCRIPT_LINES) {
        let line = clean_line(raw);
        if until.iter().any(|u| line.starts_with(u.as_str())) {
            return (lines.len() > 1).then(|| lines.join("\n"));
        }
        size += line.len() + 1;
        if size > KEEP_SCRIPT {
            return None;
        }
        lines.push(line);
    }
    None
}

/// Characters kept of a step's command.
const KEEP_CMD: usize = 300;

/// Steps kept behind the current one, to find the step an exit line names.
const CLOSED_STEPS: usize = 64;

/// The layout seen so far: the current step, and the step frozen when the runner's own work began.
#[derive(Debug, Default)]
struct Layout {
    cur: Step,
    /// The steps before the current one, most recent last.
    closed: VecDeque<Step>,
    /// Set by an `end` marker: the current step's output stopped there.
    ended: Option<usize>,
    /// The step that was current when the runner's post-script work began.
    post: Option<Step>,
    markers: usize,
}

/// Whether a step's command is the one an exit line names (`$ make test` and `The command
/// "make test" exited with 2`), allowing for truncation and reflowed whitespace.
fn same_command(step: &str, exit: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (a, b) = (norm(step), norm(exit));
    let short = a.len().min(b.len());
    a == b || (short >= 20 && (a.starts_with(&b) || b.starts_with(&a)))
}

impl Layout {
    /// The step a failure reported on `line` belongs to. An exit line that names its command
    /// (Travis) picks the step that echoed it, whatever commands ran inside it echoed since
    /// (`yarn` prints `$ cmd` for each script).
    fn failing_step(&self, line: usize, cmd: Option<&str>) -> Step {
        if let Some(p) = &self.post {
            return p.clone();
        }
        let mut s = self.cur.clone();
        s.end = self.ended.unwrap_or(line);
        let Some(cmd) = cmd else { return s };
        if s.cmd.as_deref().is_some_and(|c| same_command(c, cmd)) {
            return s;
        }
        let Some(i) = self
            .closed
            .iter()
            .rposition(|c| c.cmd.as_deref().is_some_and(|c| same_command(c, cmd)))
        else {
            return s;
        };
        let inside: Vec<&Step> = self.closed.iter().skip(i).chain([&self.cur]).collect();
        let mut outer = self.closed[i].clone();
        outer.end = line;
        outer.trace = inside.iter().rev().find_map(|st| st.trace.clone());
        outer.inner = inside.iter().find_map(|st| st.inner.clone());
        outer
    }
}

/// A line that matched at least one signature.
#[derive(Debug, Clone)]
pub struct Cand {
    pub line: usize,
    pub text: String,
    pub sigs: Vec<usize>,
    /// Captured exit code or test name, per capturing signature.
    pub capture: Option<String>,
    pub before: Vec<String>,
    pub after: Vec<String>,
    after_missing: usize,
    /// On exit lines: the step that ended here.
    pub step: Option<Rc<Step>>,
}

/// Everything the decision needs, gathered in one pass.
#[derive(Debug, Default)]
pub struct Scan {
    pub first: Vec<Rc<Cand>>,
    pub recent: VecDeque<Rc<Cand>>,
    /// For each signature, its last occurrence (so a strong early match survives noise).
    pub last_per_sig: Vec<Option<Rc<Cand>>>,
    /// Terminal failure lines (first ones kept).
    pub exits: Vec<Rc<Cand>>,
    pub tests: Vec<String>,
    pub total_lines: usize,
    pub bytes: u64,
    /// The last lines of the log, with their line numbers.
    pub tail: VecDeque<(usize, String)>,
    /// The candidates seen up to the first failing exit line (the most recent ones), kept so
    /// that long output after the failure cannot push them out.
    pub at_failure: Vec<Rc<Cand>>,
    /// The step current at the end of the log (when no exit line names one).
    pub last_step: Option<Step>,
    /// How many layout markers (steps, sections, ends, post) the log has.
    pub markers: usize,
    /// With a baseline: the lines before the failure that no green run printed.
    pub novel: Option<Novel>,
    /// Without a failing exit line: the line after the annotated step (see `SigKind::Annotation`)
    /// and its last lines, where its tool printed its report.
    pub annotated_end: Option<(usize, Vec<String>)>,
}

/// Bytes of the log kept behind the current chunk when a baseline is given: the failing step's
/// last lines are read against the green runs' templates once the failure is found.
const WINDOW_BYTES: usize = 512 << 10;
/// Lines before the failure read against the baseline.
const WINDOW_LINES: usize = 4000;
/// New lines kept (the first and the last of them).
const NEW_CAP: usize = 400;

/// The lines a failure added: those before the first failing exit line (or the log's end), in
/// the failing step, whose template no green run printed.
#[derive(Debug, Default, Clone)]
pub struct Novel {
    /// The lines read against the baseline: `from..=to`.
    pub from: usize,
    pub to: usize,
    /// The new ones, in line order, at most `NEW_CAP` (the first and the last).
    pub lines: Vec<(usize, String)>,
    /// How many were new.
    pub count: usize,
}

impl Novel {
    /// Read lines given last to first (`(line, raw bytes)`) against the baseline, down to the
    /// step's start.
    fn read<'a>(
        green: &Baseline,
        newest_first: impl Iterator<Item = (usize, &'a [u8])>,
        after: usize,
    ) -> Novel {
        let mut n = Novel::default();
        let mut scratch = Vec::new();
        for (line, raw) in newest_first.take(WINDOW_LINES) {
            if line <= after {
                break;
            }
            n.from = line;
            n.to = n.to.max(line);
            let text = clean_line(raw);
            if green.is_new(&text, &mut scratch) {
                n.count += 1;
                n.lines.push((line, truncate(text, KEEP_CHARS)));
            }
        }
        n.lines.reverse();
        if n.lines.len() > NEW_CAP {
            n.lines.drain(NEW_CAP / 2..n.lines.len() - NEW_CAP / 2);
        }
        n
    }
}

/// The lines of `data` before byte `end`, last first, numbered down from `last`.
fn lines_back(data: &[u8], end: usize, last: usize) -> impl Iterator<Item = (usize, &[u8])> {
    let mut e = end;
    let mut line = last + 1;
    std::iter::from_fn(move || {
        if e == 0 || line <= 1 {
            return None;
        }
        // `e` sits just after a newline (or at the data's end): the line before it.
        let body_end = if data[e - 1] == b'\n' { e - 1 } else { e };
        let s = memrchr(b'\n', &data[..body_end]).map_or(0, |i| i + 1);
        e = s;
        line -= 1;
        Some((line, &data[s..body_end]))
    })
}

pub struct Scanner<'k> {
    kb: &'k CompiledKb,
    scan: Scan,
    /// Lines (newlines) fully consumed before the current chunk.
    lines_before: usize,
    /// The last few raw lines of the previous chunk (ANSI-free), for before-context.
    prev_tail: VecDeque<Vec<u8>>,
    pending: Vec<Cand>,
    tests_seen: HashSet<String>,
    scratch: Vec<u8>,
    /// Per-line scratch for the set matches.
    matches: Vec<usize>,
    layout: Layout,
    failed: bool,
    /// The prefilter's lazy DFA states (given back to the knowledge base at the end).
    cache: Option<regex_automata::hybrid::dfa::Cache>,
    green: Option<&'k Baseline>,
    /// With a baseline: the last whole lines before the current chunk (ANSI-free), at most
    /// `WINDOW_BYTES`, and the number of their last line.
    window: Vec<u8>,
    window_last: usize,
    /// Before any failing exit line: the step of the first failure annotation.
    annotated: Option<Step>,
    /// The new lines were read at the annotated step's end: a failing exit line reads again.
    novel_provisional: bool,
}

impl<'k> Scanner<'k> {
    pub fn new(kb: &'k CompiledKb) -> Self {
        Scanner {
            kb,
            scan: Scan {
                last_per_sig: vec![None; kb.sigs.len()],
                ..Scan::default()
            },
            lines_before: 0,
            prev_tail: VecDeque::new(),
            pending: Vec::new(),
            tests_seen: HashSet::new(),
            scratch: Vec::new(),
            matches: Vec::new(),
            layout: Layout::default(),
            failed: false,
            cache: Some(kb.prefilter_cache()),
            green: None,
            window: Vec::new(),
            window_last: 0,
            annotated: None,
            novel_provisional: false,
        }
    }

    /// Read the failure's last lines against a job's green runs (an empty baseline is none).
    pub fn with_baseline(mut self, green: Option<&'k Baseline>) -> Self {
        self.green = green.filter(|g| !g.is_empty());
        self
    }

    /// Read the whole stream, chunk by chunk.
    pub fn run<R: Read>(mut self, mut r: R, mut progress: impl FnMut(u64)) -> io::Result<Scan> {
        let mut buf: Vec<u8> = vec![0; CHUNK + MAX_LINE];
        let mut filled = 0usize;
        loop {
            let n = match r.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            filled += n;
            self.scan.bytes += n as u64;
            progress(self.scan.bytes);
            let eof = n == 0;
            if !eof && filled < CHUNK {
                continue;
            }
            // Cut at the last newline; at EOF (or a line longer than the buffer) take it all.
            let cut = if eof {
                filled
            } else {
                match memrchr(b'\n', &buf[..filled]) {
                    Some(i) => i + 1,
                    None if filled >= buf.len() => filled,
                    None => {
                        buf.resize(buf.len() + MAX_LINE, 0);
                        continue;
                    }
                }
            };
            if cut > 0 {
                self.chunk(&buf[..cut]);
            }
            buf.copy_within(cut..filled, 0);
            filled -= cut;
            if eof {
                break;
            }
        }
        Ok(self.finish())
    }

    fn chunk(&mut self, raw: &[u8]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let data: &[u8] = if memchr(0x1b, raw).is_some() {
            strip_ansi_into(raw, &mut scratch);
            &scratch
        } else {
            raw
        };
        self.fill_pending(data);

        let kb = self.kb;
        let mut pos = 0usize;
        let mut counted = 0usize;
        let mut line_no = self.lines_before;
        let every_line = !kb.always.is_empty();
        // The chunk's first line has no newline before it for a line-start literal to see.
        if !every_line && kb.line_start_hit(data) {
            let le = memchr(b'\n', data).map_or(data.len(), |i| i);
            self.on_line(line_no + 1, data, 0, le);
            pos = le + 1;
            counted = 0;
        }
        while pos < data.len() {
            let hit = if every_line {
                pos
            } else {
                // From the newline before `pos`: a line-start literal (`"\n$ "`) begins there.
                let cache = self
                    .cache
                    .as_mut()
                    .expect("the cache is held until the scan ends");
                match kb.next_hit(cache, data, pos.saturating_sub(1)) {
                    Some(h) => h,
                    None => break,
                }
            };
            let ls = memrchr(b'\n', &data[..hit]).map_or(0, |i| i + 1);
            let le = memchr(b'\n', &data[hit..]).map_or(data.len(), |i| hit + i);
            line_no += memchr_iter(b'\n', &data[counted..ls]).count();
            counted = ls;
            self.on_line(line_no + 1, data, ls, le);
            pos = le + 1;
        }
        line_no += memchr_iter(b'\n', &data[counted..]).count();
        self.lines_before = line_no;

        // Remember the last lines for the next chunk's before-context and the log's tail.
        let mut end = data.len();
        if end > 0 && data[end - 1] == b'\n' {
            end -= 1;
        }
        let mut tail: Vec<&[u8]> = Vec::new();
        let mut e = end;
        while tail.len() < TAIL_LINES {
            let s = memrchr(b'\n', &data[..e]).map_or(0, |i| i + 1);
            tail.push(&data[s..e]);
            if s == 0 {
                break;
            }
            e = s - 1;
        }
        tail.reverse();
        // Chunks end at a newline (or at the end of the log), so every tail line is complete.
        let ends_nl = data.last() == Some(&b'\n');
        let last_line_no = if ends_nl { line_no } else { line_no + 1 };
        let first_no = last_line_no + 1 - tail.len();
        for (k, l) in tail.iter().enumerate() {
            if self.prev_tail.len() == EXIT_BEFORE {
                self.prev_tail.pop_front();
            }
            self.prev_tail
                .push_back(l[..l.len().min(MAX_LINE)].to_vec());
            let text = truncate(clean_line(l), KEEP_CHARS);
            if self.scan.tail.len() == TAIL_LINES {
                self.scan.tail.pop_front();
            }
            self.scan.tail.push_back((first_no + k, text));
        }
        if self.green.is_some() && (self.scan.novel.is_none() || self.novel_provisional) {
            self.keep_window(data, last_line_no);
        }
        self.scratch = scratch;
    }

    /// Keep the last `WINDOW_BYTES` of whole lines seen, for the lines before a failure found in
    /// the next chunk.
    fn keep_window(&mut self, data: &[u8], last_line_no: usize) {
        let w = &mut self.window;
        if data.len() >= WINDOW_BYTES {
            w.clear();
            let from = data.len() - WINDOW_BYTES;
            let start = memchr(b'\n', &data[from..]).map_or(data.len(), |i| from + i + 1);
            w.extend_from_slice(&data[start..]);
        } else {
            w.extend_from_slice(data);
            if w.len() > WINDOW_BYTES {
                let from = w.len() - WINDOW_BYTES;
                let start = memchr(b'\n', &w[from..]).map_or(w.len(), |i| from + i + 1);
                w.drain(..start);
            }
        }
        self.window_last = last_line_no;
    }

    /// The failure's lines before `ls` in `data` (line `line_no` starts there), then those of
    /// earlier chunks, read against the baseline down to the failing step's start.
    fn read_novel(&mut self, data: &[u8], ls: usize, line_no: usize, step_start: usize) {
        let Some(green) = self.green else { return };
        let here = lines_back(data, ls, line_no - 1);
        let earlier = lines_back(&self.window, self.window.len(), self.window_last);
        let n = Novel::read(green, here.chain(earlier), step_start);
        self.scan.novel = Some(n);
        self.window = Vec::new();
    }

    /// Up to `want` lines before line `line_no` (starting at `ls` in `data`), in log order:
    /// from this chunk, then from the previous chunk's tail.
    fn before(&self, data: &[u8], ls: usize, line_no: usize, want: usize) -> Vec<String> {
        let mut before = Vec::with_capacity(want);
        let mut e = ls;
        while before.len() < want && e > 0 {
            let s = memrchr(b'\n', &data[..e - 1]).map_or(0, |i| i + 1);
            before.push(truncate(clean_line(&data[s..e - 1]), KEEP_CHARS));
            e = s;
        }
        if before.len() < want && e == 0 {
            for l in self.prev_tail.iter().rev() {
                if before.len() == want || line_no <= before.len() + 1 {
                    break;
                }
                before.push(truncate(clean_line(l), KEEP_CHARS));
            }
        }
        before.reverse();
        before
    }

    fn fill_pending(&mut self, data: &[u8]) {
        if self.pending.is_empty() {
            return;
        }
        let mut lines = Vec::new();
        let need = self
            .pending
            .iter()
            .map(|c| c.after_missing)
            .max()
            .unwrap_or(0);
        let mut s = 0;
        while lines.len() < need && s < data.len() {
            let e = memchr(b'\n', &data[s..]).map_or(data.len(), |i| s + i);
            lines.push(truncate(clean_line(&data[s..e]), KEEP_CHARS));
            s = e + 1;
        }
        let pending = std::mem::take(&mut self.pending);
        for mut c in pending {
            let take = c.after_missing.min(lines.len());
            c.after.extend(lines[..take].iter().cloned());
            c.after_missing -= take;
            if c.after_missing == 0 || lines.len() < need {
                c.after_missing = 0;
                self.store(c);
            } else {
                self.pending.push(c);
            }
        }
    }

    fn on_line(&mut self, line_no: usize, data: &[u8], ls: usize, le: usize) {
        let raw = &data[ls..le.min(ls + MAX_LINE)];
        let bytes = clean_bytes(raw);
        if bytes.is_empty() {
            return;
        }
        let kb = self.kb;
        kb.matches(&bytes, &mut self.matches);
        if self
            .matches
            .iter()
            .any(|&i| kb.sigs[i].kind == SigKind::Annotation)
        {
            if !self.failed && self.annotated.is_none() {
                self.annotated = Some(self.layout.failing_step(line_no, None));
            }
            self.matches
                .retain(|&i| kb.sigs[i].kind != SigKind::Annotation);
        }
        if self.matches.is_empty() {
            return;
        }
        // A harmless line (a retry that may have worked, a passing test) says nothing at all.
        if !self.matches.iter().any(|&i| kb.sigs[i].user)
            && self
                .matches
                .iter()
                .any(|&i| kb.sigs[i].kind == SigKind::Noise)
        {
            return;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(&i) = self.matches.iter().find(|&&i| kb.sigs[i].kind.is_layout()) {
            let until = &kb.sigs[i].script_until;
            let script = if until.is_empty() || le >= data.len() {
                None
            } else {
                step_script(&data[le + 1..], until)
            };
            if let Some(start) = self.on_layout(i, line_no, &text, script) {
                let lines = self.before(data, ls, line_no, EXIT_BEFORE);
                self.scan.annotated_end = Some((line_no, lines));
                if self.scan.novel.is_none() {
                    self.read_novel(data, ls, line_no, start);
                    self.novel_provisional = true;
                }
            }
            // A step or trace line echoes a command: it names what ran, not what went wrong.
            // Section names (`--- FAIL: x`) and failed sub-tasks may still say something.
            if matches!(kb.sigs[i].kind, SigKind::Section | SigKind::Subtask) {
                self.matches.retain(|&j| !kb.sigs[j].kind.is_layout());
            } else {
                self.matches.retain(|&j| kb.sigs[j].kind == SigKind::Exit);
            }
            if self.matches.is_empty() {
                return;
            }
        }
        // User signatures take precedence.
        if self.matches.iter().any(|&i| kb.sigs[i].user) {
            self.matches.retain(|&i| kb.sigs[i].user);
        }
        let mut capture = None;
        let mut step = None;
        let mut failing_from = None;
        for &i in &self.matches {
            let kind = kb.sigs[i].kind;
            if kind == SigKind::Exit {
                let named = kb
                    .capture_named(i, &text, &["cmd"])
                    .map(|c| truncate(c, KEEP_CMD));
                let mut st = self.layout.failing_step(line_no, named.as_deref());
                if st.cmd.is_none() {
                    st.cmd = named;
                }
                let code = kb.capture(i, &text).and_then(|c| c.parse::<i32>().ok());
                if code != Some(0) && failing_from.is_none() {
                    failing_from = Some(st.start);
                }
                step = Some(Rc::new(st));
            }
            if kind == SigKind::Test || kind == SigKind::Exit {
                if let Some(c) = kb.capture(i, &text) {
                    if kind == SigKind::Test
                        && self.scan.tests.len() < MAX_TESTS
                        && self.tests_seen.insert(c.clone())
                    {
                        self.scan.tests.push(c.clone());
                    }
                    capture.get_or_insert(c);
                }
            }
        }
        if let Some(start) =
            failing_from.filter(|_| self.scan.novel.is_none() || self.novel_provisional)
        {
            self.read_novel(data, ls, line_no, start);
            self.novel_provisional = false;
        }
        // Before-context: from this chunk, then from the previous chunk's tail.
        let want = if step.is_some() { EXIT_BEFORE } else { BEFORE };
        let before = self.before(data, ls, line_no, want);
        // After-context: what this chunk holds; the rest comes from the next chunk.
        let mut after = Vec::with_capacity(AFTER);
        let mut s = le + 1;
        while after.len() < AFTER && s < data.len() {
            let e = memchr(b'\n', &data[s..]).map_or(data.len(), |i| s + i);
            after.push(truncate(clean_line(&data[s..e]), KEEP_CHARS));
            s = e + 1;
        }
        let after_missing = AFTER - after.len();
        let cand = Cand {
            line: line_no,
            text: truncate(text, KEEP_CHARS),
            sigs: self.matches.clone(),
            capture,
            before,
            after,
            after_missing,
            step,
        };
        if after_missing > 0 {
            self.pending.push(cand);
        } else {
            self.store(cand);
        }
    }

    /// A layout marker: a step starts or ends, a stage begins, the runner's own work begins.
    /// Returns the annotated step's start when this marker ends it (no exit line came).
    fn on_layout(
        &mut self,
        sig: usize,
        line_no: usize,
        text: &str,
        script: Option<String>,
    ) -> Option<usize> {
        let kb = self.kb;
        let kind = kb.sigs[sig].kind;
        let cmd = kb.capture(sig, text).map(|c| truncate(c, KEEP_CMD));
        let mut closed = None;
        if matches!(kind, SigKind::Step | SigKind::Post) && !self.failed {
            let (cur, ended) = (&self.layout.cur, self.layout.ended);
            let open = self.layout.post.is_none();
            if let Some(a) = self
                .annotated
                .as_mut()
                .filter(|a| open && a.start == cur.start)
            {
                a.end = ended.unwrap_or(line_no.saturating_sub(1)).max(a.start);
                closed = Some(a.start);
            }
        }
        let l = &mut self.layout;
        l.markers += 1;
        match kind {
            // Commands of after_script and post actions are not where the job failed.
            _ if l.post.is_some() => {}
            SigKind::Step => {
                let mut done = std::mem::take(&mut l.cur);
                done.end = l.ended.unwrap_or(line_no.saturating_sub(1)).max(done.start);
                if l.closed.len() == CLOSED_STEPS {
                    l.closed.pop_front();
                }
                let section = done.section.clone();
                l.closed.push_back(done);
                l.cur = Step {
                    start: line_no,
                    end: line_no,
                    cmd,
                    trace: None,
                    inner: None,
                    section,
                    script,
                };
                l.ended = None;
            }
            SigKind::Trace if l.ended.is_none() => l.cur.trace = cmd,
            SigKind::Subtask if l.ended.is_none() && l.cur.inner.is_none() => {
                // Without a name, the tool means the command it echoed last.
                l.cur.inner = cmd.or_else(|| l.cur.cmd.clone());
            }
            SigKind::Section => l.cur.section = cmd,
            SigKind::End => {
                l.ended
                    .get_or_insert(line_no.saturating_sub(1).max(l.cur.start));
            }
            SigKind::Post => {
                let end = l
                    .ended
                    .unwrap_or(line_no.saturating_sub(1))
                    .max(l.cur.start);
                let mut s = l.failing_step(end, None);
                s.end = end;
                l.post = Some(s);
            }
            _ => {}
        }
        closed
    }

    fn store(&mut self, c: Cand) {
        let kb = self.kb;
        let c = Rc::new(c);
        for &i in &c.sigs {
            self.scan.last_per_sig[i] = Some(c.clone());
        }
        if c.sigs.iter().any(|&i| kb.sigs[i].kind == SigKind::Exit) && self.scan.exits.len() < 64 {
            self.scan.exits.push(c.clone());
            let code: Option<i32> = c.capture.as_deref().and_then(|s| s.parse().ok());
            if !self.failed && code != Some(0) {
                // The failing step's own lines must survive whatever follows.
                self.failed = true;
                self.scan.at_failure = self.scan.recent.iter().cloned().collect();
            }
        }
        if self.scan.first.len() < FIRST_CAP {
            self.scan.first.push(c.clone());
        }
        if self.scan.recent.len() == RECENT_CAP {
            self.scan.recent.pop_front();
        }
        self.scan.recent.push_back(c);
    }

    fn finish(mut self) -> Scan {
        if let Some(c) = self.cache.take() {
            self.kb.return_cache(c);
        }
        for mut c in std::mem::take(&mut self.pending) {
            c.after_missing = 0;
            self.store(c);
        }
        // Store order can differ from line order (pending context); the decision wants lines.
        self.scan.first.sort_by_key(|c| c.line);
        self.scan.recent.make_contiguous().sort_by_key(|c| c.line);
        self.scan.exits.sort_by_key(|c| c.line);
        self.scan.total_lines = self.scan.tail.back().map_or(self.lines_before, |t| t.0);
        self.scan.markers = self.layout.markers;
        if self.layout.markers > 0 {
            let at_end = self.layout.failing_step(self.scan.total_lines, None);
            // No failing exit line: the annotated step failed, whatever ran after it.
            self.scan.last_step = Some(match self.annotated.take().filter(|_| !self.failed) {
                Some(a) if a.start != at_end.start => a,
                _ => {
                    self.scan.annotated_end = None;
                    at_end
                }
            });
        }
        if let (Some(green), None) = (self.green, &self.scan.novel) {
            // No failing exit line: the log's last lines, in the step current at its end.
            let after = self.scan.last_step.as_ref().map_or(0, |s| s.start);
            let back = lines_back(&self.window, self.window.len(), self.window_last);
            self.scan.novel = Some(Novel::read(green, back, after));
        }
        self.scan
    }
}
