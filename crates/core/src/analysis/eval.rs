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

/// Whether any evidence line is one of the chunk's lines (or contains / is contained in one
/// longer than 8 characters).
pub fn evidence_hits_chunk(evidence: &[Evidence], chunk: &str) -> bool {
    let chunk: Vec<String> = chunk
        .lines()
        .flat_map(|l| l.split('\r'))
        .map(norm)
        .filter(|l| !l.is_empty())
        .collect();
    evidence.iter().any(|e| {
        let e = norm(&e.text);
        !e.is_empty()
            && chunk
                .iter()
                .any(|x| *x == e || (x.len() > 8 && (x.contains(&e) || e.contains(x.as_str()))))
    })
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
        assert_eq!(Binary::default().f1(), 0.0);
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
}
