//! A model of a job's green runs: each line of a passing log reduced to a template (what varies
//! from run to run masked: timestamps, durations, counters, hashes, ids, addresses, temp names)
//! and kept as a 64-bit hash. A failure's line whose template no green run printed is *new*:
//! what the failure added. The model is bounded (the last `MAX_RUNS` runs, `MAX_TEMPLATES`
//! templates) and compact enough to store beside a job.

use super::clean::{clean_line, strip_ansi_into};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hasher;
use std::io::{self, BufRead};

/// Green runs kept per job (older ones are evicted when a newer one is learned).
pub const MAX_RUNS: usize = 3;
/// Templates kept per job.
pub const MAX_TEMPLATES: usize = 5000;
/// Bytes of a line that make its template: long lines differ by their tail only in noise, and
/// the scanner keeps at least this much of a line.
const TEMPLATE_BYTES: usize = 256;
/// Version of the masking: a stored model made with another masking must be learned again.
pub const TEMPLATE_VERSION: u32 = 1;

/// A line's template: runs of whitespace become one space; digits become `#` (a lone `0`
/// stays, so `Failures: 0` and `Failures: 1` differ); UUIDs, hex strings, long ids mixing
/// letters and digits and temp names (`tmpk3j2_lqx`) become one `#`; runs of one punctuation mark are cut to three.
pub fn template_into(line: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let s = &line[..line.len().min(TEMPLATE_BYTES)];
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_whitespace() {
            while i < s.len() && s[i].is_ascii_whitespace() {
                i += 1;
            }
            if !out.is_empty() && i < s.len() {
                out.push(b' ');
            }
        } else if is_uuid(&s[i..]) {
            out.push(b'#');
            i += UUID_LEN;
        } else if is_word(b) {
            let start = i;
            while i < s.len() && is_word(s[i]) {
                i += 1;
            }
            let prev = start.checked_sub(1).map(|k| s[k]);
            mask_token(&s[start..i], prev, s.get(i).copied(), out);
        } else {
            let start = i;
            while i < s.len() && s[i] == b {
                i += 1;
            }
            let n = if b.is_ascii_punctuation() {
                (i - start).min(3)
            } else {
                i - start
            };
            out.extend(std::iter::repeat_n(b, n));
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const UUID_LEN: usize = 36;

/// Whether `s` starts with a UUID (`3fa85f64-5717-4562-b3fc-2c963f66afa6`).
fn is_uuid(s: &[u8]) -> bool {
    s.len() >= UUID_LEN
        && s[..UUID_LEN].iter().enumerate().all(|(k, &c)| match k {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && !s.get(UUID_LEN).copied().is_some_and(is_word)
}

/// One run of letters, digits and underscores, masked where it varies from run to run.
fn mask_token(t: &[u8], prev: Option<u8>, next: Option<u8>, out: &mut Vec<u8>) {
    let digits = t.iter().any(u8::is_ascii_digit);
    let letters = t.iter().any(u8::is_ascii_alphabetic);
    let hex = t.iter().all(u8::is_ascii_hexdigit);
    let temp = t.len() >= 9 && t[..3].eq_ignore_ascii_case(b"tmp");
    if temp || (digits && letters && (t.len() >= 8 || (hex && t.len() >= 4))) {
        out.push(b'#');
        return;
    }
    if !digits {
        out.extend_from_slice(t);
        return;
    }
    // A count of zero is what passing runs print; any other number is one that varies.
    let part_of_number = |b: Option<u8>| matches!(b, Some(b'.' | b':' | b',' | b'/' | b'-'));
    if t == b"0" && !part_of_number(prev) && !matches!(next, Some(b'.' | b':' | b'/' | b'-')) {
        out.push(b'0');
        return;
    }
    let mut k = 0;
    while k < t.len() {
        if t[k].is_ascii_digit() {
            while k < t.len() && t[k].is_ascii_digit() {
                k += 1;
            }
            out.push(b'#');
        } else {
            out.push(t[k]);
            k += 1;
        }
    }
}

/// The hash of a cleaned line's template (FNV-1a: stable across builds, so models can be
/// stored); `None` for a blank line, which is never new.
pub fn template_hash(line: &[u8], scratch: &mut Vec<u8>) -> Option<u64> {
    template_into(line, scratch);
    if scratch.is_empty() {
        return None;
    }
    let mut h = fnv::FnvHasher::default();
    h.write(scratch);
    Some(h.finish())
}

/// One green run the model learned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreenRun {
    /// Which run: a URL, a run id, a file name.
    pub id: String,
    /// Lines read.
    pub lines: u64,
    /// Distinct templates it printed (before the model's cap).
    pub templates: usize,
}

/// The templates of a job's recent green runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    /// Newest first, at most `MAX_RUNS`.
    runs: Vec<GreenRun>,
    /// Template hash → bit `i` set when `runs[i]` printed it.
    templates: HashMap<u64, u8>,
}

/// The stored form: templates as hex of (hash, runs mask) records, 9 bytes each.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    runs: Vec<GreenRun>,
    templates: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("stored baseline is not valid: {0}")]
    Invalid(String),
    #[error("stored baseline uses template version {0}, this build uses {TEMPLATE_VERSION}")]
    Version(u32),
}

impl Baseline {
    pub fn new() -> Baseline {
        Baseline::default()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs learned, newest first.
    pub fn runs(&self) -> &[GreenRun] {
        &self.runs
    }

    /// Templates kept.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether any green run printed this template.
    pub fn contains(&self, hash: u64) -> bool {
        self.templates.contains_key(&hash)
    }

    /// Whether a cleaned line is new: its template is in none of the green runs (blank lines
    /// never are).
    pub fn is_new(&self, line: &str, scratch: &mut Vec<u8>) -> bool {
        template_hash(line.as_bytes(), scratch).is_some_and(|h| !self.contains(h))
    }

    /// Learn a green run's log (raw bytes as the platform serves them), streaming: memory stays
    /// bounded by the template cap whatever the log's size.
    pub fn learn<R: BufRead>(&mut self, id: impl Into<String>, mut r: R) -> io::Result<()> {
        // Template → last line seen: when a log has more templates than the cap, the ones seen
        // last (nearest where jobs fail) are kept.
        let mut seen: HashMap<u64, u64> = HashMap::new();
        let (mut raw, mut ansi_free, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        let mut lines = 0u64;
        loop {
            raw.clear();
            if r.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            lines += 1;
            strip_ansi_into(&raw, &mut ansi_free);
            let text = clean_line(&ansi_free);
            if let Some(h) = template_hash(text.as_bytes(), &mut scratch) {
                seen.insert(h, lines);
                if seen.len() >= 2 * MAX_TEMPLATES {
                    keep_latest(&mut seen, MAX_TEMPLATES);
                }
            }
        }
        let distinct = seen.len();
        keep_latest(&mut seen, MAX_TEMPLATES);
        self.add_run(
            GreenRun {
                id: id.into(),
                lines,
                templates: distinct,
            },
            seen.into_keys(),
        );
        Ok(())
    }

    /// Add a run as the newest: the oldest beyond `MAX_RUNS` is evicted, then templates only
    /// older runs printed, until at most `MAX_TEMPLATES` remain.
    pub fn add_run(&mut self, run: GreenRun, templates: impl IntoIterator<Item = u64>) {
        let keep_mask = (1u16 << MAX_RUNS) as u8 - 1;
        for m in self.templates.values_mut() {
            *m = (*m << 1) & keep_mask;
        }
        for h in templates {
            *self.templates.entry(h).or_default() |= 1;
        }
        self.templates.retain(|_, m| *m != 0);
        self.runs.insert(0, run);
        self.runs.truncate(MAX_RUNS);
        if self.templates.len() > MAX_TEMPLATES {
            // The lowest set bit is the newest run that printed it: keep the most recent.
            let mut all: Vec<(u64, u32)> = self
                .templates
                .iter()
                .map(|(&h, &m)| (h, m.trailing_zeros()))
                .collect();
            all.sort_unstable_by_key(|&(h, newest)| (newest, h));
            for &(h, _) in &all[MAX_TEMPLATES..] {
                self.templates.remove(&h);
            }
        }
    }

    /// The model as stored beside a job (JSON; templates as hex records).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut recs: Vec<(u64, u8)> = self.templates.iter().map(|(&h, &m)| (h, m)).collect();
        recs.sort_unstable();
        let mut bin = Vec::with_capacity(recs.len() * 9);
        for (h, m) in recs {
            bin.extend_from_slice(&h.to_le_bytes());
            bin.push(m);
        }
        let stored = Stored {
            version: TEMPLATE_VERSION,
            runs: self.runs.clone(),
            templates: hex::encode(bin),
        };
        serde_json::to_vec(&stored).expect("a baseline always serializes")
    }

    pub fn from_bytes(b: &[u8]) -> Result<Baseline, BaselineError> {
        let s: Stored =
            serde_json::from_slice(b).map_err(|e| BaselineError::Invalid(e.to_string()))?;
        if s.version != TEMPLATE_VERSION {
            return Err(BaselineError::Version(s.version));
        }
        let bin = hex::decode(&s.templates).map_err(|e| BaselineError::Invalid(e.to_string()))?;
        if bin.len() % 9 != 0 || s.runs.len() > MAX_RUNS {
            return Err(BaselineError::Invalid("truncated templates".into()));
        }
        let templates = bin
            .chunks_exact(9)
            .map(|r| {
                let h = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
                (h, r[8])
            })
            .collect();
        Ok(Baseline {
            runs: s.runs,
            templates,
        })
    }
}

/// Keep the `n` templates seen last.
fn keep_latest(seen: &mut HashMap<u64, u64>, n: usize) {
    if seen.len() <= n {
        return;
    }
    let mut last: Vec<u64> = seen.values().copied().collect();
    last.sort_unstable_by(|a, b| b.cmp(a));
    let cut = last[n - 1];
    seen.retain(|_, l| *l >= cut);
    // Ties at the cut (one line number per template, so only when equal): none in practice.
    if seen.len() > n {
        let extra: Vec<u64> = seen
            .iter()
            .filter(|(_, &l)| l == cut)
            .map(|(&h, _)| h)
            .take(seen.len() - n)
            .collect();
        for h in extra {
            seen.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        let mut out = Vec::new();
        template_into(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn what_varies_between_runs_is_masked() {
        let same = [
            (
                "Downloaded foo-1.2.3.jar (12 kB at 340 kB/s)",
                "Downloaded foo-1.4.0.jar (7 kB at 1201 kB/s)",
            ),
            (
                "Finished `dev` profile in 1m 23s",
                "Finished `dev` profile in 2m 05s",
            ),
            (
                "HEAD is now at 3f9eec918d Merge a1b2c3d into 77ce24cb58",
                "HEAD is now at 0aa1bb2cc3 Merge 9f8e7d6 into 12ab34cd56",
            ),
            (
                "Created /tmp/tmpk3j2_lqxz9/build at 10:02:33.123",
                "Created /tmp/tmpa8b2_zzqpo/build at 09:59:01.002",
            ),
            (
                "Listening on 172.17.0.2:43121 (pid 5531)",
                "Listening on 10.1.0.44:8080 (pid 77)",
            ),
            (
                "Receiving objects:  45% (100/222)",
                "Receiving objects: 100% (222/222)",
            ),
            (
                "request id 3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "request id 1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
            ),
            (
                "==================== 12 passed",
                "=================== 9 passed",
            ),
        ];
        for (a, b) in same {
            assert_eq!(t(a), t(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn what_a_failure_changes_is_kept() {
        let differ = [
            (
                "Tests run: 48, Failures: 0, Errors: 0",
                "Tests run: 48, Failures: 1, Errors: 0",
            ),
            (
                "test result: ok. 12 passed",
                "test result: FAILED. 11 passed",
            ),
            (
                "PASSED tests/test_api.py::test_login",
                "FAILED tests/test_api.py::test_login",
            ),
            ("Run npm test", "Run npm run lint"),
        ];
        for (a, b) in differ {
            assert_ne!(t(a), t(b), "{a:?} vs {b:?}");
        }
        assert_eq!(t("  a \t b  "), "a b");
        assert_eq!(t("x86_64 v2"), "x#_# v#");
    }

    fn learned(runs: &[(&str, &str)]) -> Baseline {
        let mut b = Baseline::new();
        for (id, log) in runs {
            b.learn(*id, log.as_bytes()).unwrap();
        }
        b
    }

    #[test]
    fn a_failures_added_lines_are_new_and_the_rest_is_not() {
        let green = "2024-05-01T10:00:00.0000000Z ##[group]Run npm test\n\x1b[32mPASS\x1b[0m src/a.test.ts (812 ms)\n##[error]Node.js 16 actions are deprecated.\n";
        let b = learned(&[("run/1", green)]);
        let mut s = Vec::new();
        assert!(!b.is_new("PASS src/a.test.ts (95 ms)", &mut s));
        assert!(!b.is_new("##[error]Node.js 16 actions are deprecated.", &mut s));
        assert!(b.is_new("FAIL src/a.test.ts (95 ms)", &mut s));
        assert!(!b.is_new("   ", &mut s));
        assert_eq!(b.runs()[0].lines, 3);
    }

    #[test]
    fn the_model_keeps_the_last_runs_and_at_most_the_cap() {
        let mut b = Baseline::new();
        for k in 0..5 {
            b.learn(
                format!("run/{k}"),
                format!("only in run {}\n", "x".repeat(k + 1)).as_bytes(),
            )
            .unwrap();
        }
        let ids: Vec<&str> = b.runs().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["run/4", "run/3", "run/2"]);
        let mut s = Vec::new();
        assert!(b.is_new("only in run x", &mut s), "evicted with its run");
        assert!(!b.is_new("only in run xxxxx", &mut s));
        assert_eq!(b.len(), 3);

        // One huge green log: the templates printed last are the ones kept.
        let log: String = (0..MAX_TEMPLATES + 700)
            .map(|i| format!("line {}\n", word(i)))
            .collect();
        let mut b = Baseline::new();
        b.learn("big", log.as_bytes()).unwrap();
        assert_eq!(b.len(), MAX_TEMPLATES);
        assert_eq!(b.runs()[0].templates, MAX_TEMPLATES + 700);
        assert!(!b.is_new(&format!("line {}", word(MAX_TEMPLATES + 699)), &mut s));
        assert!(b.is_new(&format!("line {}", word(0)), &mut s));
    }

    /// A distinct word without digits for each number (digits would be masked).
    fn word(mut i: usize) -> String {
        let mut w = String::new();
        loop {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
            if i == 0 {
                return w;
            }
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_refuses_garbage() {
        let b = learned(&[("a", "one\ntwo 2\n"), ("b", "two 3\nthree\n")]);
        let back = Baseline::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
        assert!(Baseline::from_bytes(b"{}").is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        v["version"] = 99.into();
        assert!(matches!(
            Baseline::from_bytes(&serde_json::to_vec(&v).unwrap()),
            Err(BaselineError::Version(99))
        ));
        v["version"] = TEMPLATE_VERSION.into();
        v["templates"] = "abcd".into();
        assert!(Baseline::from_bytes(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
