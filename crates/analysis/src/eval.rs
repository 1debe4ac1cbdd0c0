//! Measuring the analyzer on labeled logs, the way `pipeguard eval` and the dev-set test do:
//! the transient decision against intermittent/regular labels, and whether the evidence hits the
//! lines a person picked as the failure's reason.

use super::clean::strip_ansi;
use super::Evidence;

/// Normalise a line for comparison: no ANSI, no leading timestamp, whitespace collapsed.
pub fn norm(s: &str) -> String {
    let s = strip_ansi(s);
    let b = s.as_bytes();
    let mut start = 0;
    if b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
    {
        if let Some(z) = s.find("Z ") {
            if z < 40 {
                start = z + 2;
            }
        }
    }
    s[start..].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines shorter than this never count as evidence of anything.
const MIN_EVIDENCE_CHARS: usize = 4;
/// A line contained in another counts only when the shorter has this many characters: a short
/// line such as `)` or `error` sits inside many lines by chance.
const MIN_OVERLAP_CHARS: usize = 12;

/// Whether one normalised evidence line hits one of the chunk's normalised lines: it equals a
/// chunk line, or one contains the other and the shorter has at least 12 characters (the rule of
/// the shared `eval-logs.py`).
pub fn line_hits_chunk(e: &str, chunk: &[String]) -> bool {
    if e.chars().count() < MIN_EVIDENCE_CHARS {
        return false;
    }
    chunk.iter().any(|x| {
        x == e
            || (e.chars().count().min(x.chars().count()) >= MIN_OVERLAP_CHARS
                && (x.contains(e) || e.contains(x.as_str())))
    })
}

/// Whether any evidence line hits the chunk (see [`line_hits_chunk`]).
pub fn evidence_hits_chunk(evidence: &[Evidence], chunk: &str) -> bool {
    let chunk: Vec<String> = chunk
        .lines()
        .flat_map(|l| l.split('\r'))
        .map(norm)
        .filter(|l| !l.is_empty())
        .collect();
    evidence
        .iter()
        .any(|e| line_hits_chunk(&norm(&e.text), &chunk))
}

/// Precision, recall and F1 of a binary decision.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Binary {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl Binary {
    pub fn add(&mut self, truth: bool, predicted: bool) {
        match (truth, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    pub fn total(&self) -> usize {
        self.tp + self.fp + self.fn_ + self.tn
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_scores() {
        let mut b = Binary::default();
        b.add(true, true);
        b.add(true, false);
        b.add(false, true);
        b.add(false, false);
        assert_eq!(b.precision(), 0.5);
        assert_eq!(b.recall(), 0.5);
        assert_eq!(b.f1(), 0.5);
        assert_eq!(b.total(), 4);
        assert_eq!(Binary::default().f1(), 0.0);
        // Precision 1, recall 1/2: F1 is their harmonic mean, 2/3.
        let mut b = Binary::default();
        b.add(true, true);
        b.add(true, false);
        b.add(false, false);
        assert!((b.f1() - 2.0 / 3.0).abs() < 1e-9, "{}", b.f1());
        assert_eq!(b.total(), 3);
    }

    #[test]
    fn chunk_hits_use_normalised_lines() {
        let ev = vec![Evidence {
            line: 3,
            text: "error:   could not compile `x`".into(),
        }];
        assert!(evidence_hits_chunk(
            &ev,
            "\x1b[31merror: could not compile `x`\x1b[0m\nnext"
        ));
        assert!(!evidence_hits_chunk(&ev, "something else entirely"));
        assert_eq!(norm("2024-01-01T00:00:00.0000000Z  a  b"), "a b");
    }

    #[test]
    fn short_lines_hit_only_when_equal() {
        let line = |t: &str| Evidence {
            line: 1,
            text: t.into(),
        };
        let chunk = "    foo(bar)\nerror: tests failed in module parser";
        // A lone bracket or keyword is inside the chunk by chance, not evidence of it.
        assert!(!evidence_hits_chunk(&[line(")")], chunk));
        assert!(!evidence_hits_chunk(&[line("error")], chunk));
        assert!(!evidence_hits_chunk(&[line("s failed in")], chunk));
        // Equal lines hit whatever their length (>= 4); 12+ characters may be contained.
        let braces = "}\n})\nFAIL\nok";
        assert!(!evidence_hits_chunk(&[line("}")], braces));
        assert!(!evidence_hits_chunk(&[line("})")], braces));
        assert!(evidence_hits_chunk(&[line("FAIL")], braces));
        assert!(evidence_hits_chunk(&[line("foo(bar)")], chunk));
        assert!(evidence_hits_chunk(
            &[line("tests failed in module")],
            chunk
        ));
        assert!(evidence_hits_chunk(
            &[line("[12:00] error: tests failed in module parser (3 s)")],
            chunk
        ));
    }
}
