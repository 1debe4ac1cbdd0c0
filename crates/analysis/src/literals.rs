//! Required literals of a pattern: a set of strings at least one of which every match contains.
//! They feed one Aho-Corasick automaton over all signatures, so the hot loop looks for plain
//! substrings and a signature's regex runs (and is even compiled) only on lines that can match.

use regex_syntax::hir::{Class, Hir, HirKind};
use regex_syntax::ParserBuilder;

/// Largest literal set kept while combining alternatives and small classes.
const MAX_SET: usize = 64;

type Set = Vec<Vec<u8>>;

/// What a sub-pattern contributes: the exact strings it matches (when finite and small), the
/// strings its matches start and end with, and the best set of strings one of which any of its
/// matches contains.
#[derive(Clone)]
struct Info {
    exact: Option<Set>,
    prefix: Option<Set>,
    suffix: Option<Set>,
    req: Option<Set>,
}

impl Info {
    fn exact(s: Set) -> Info {
        Info {
            exact: Some(s.clone()),
            prefix: Some(s.clone()),
            suffix: Some(s.clone()),
            req: Some(s),
        }
    }
    fn none() -> Info {
        Info {
            exact: None,
            prefix: None,
            suffix: None,
            req: None,
        }
    }
}

fn quality(s: &Set) -> usize {
    s.iter().map(|l| l.len()).min().unwrap_or(0)
}

fn better(a: Option<Set>, b: Option<Set>) -> Option<Set> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let (qa, qb) = (quality(&a), quality(&b));
            if qb > qa || (qb == qa && b.len() < a.len()) {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, None) => a,
        (None, b) => b,
    }
}

fn dedup(mut s: Set) -> Set {
    s.sort();
    s.dedup();
    s
}

fn cross(a: &Set, b: &Set) -> Option<Set> {
    if a.len() * b.len() > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut v = x.clone();
            v.extend_from_slice(y);
            out.push(v);
        }
    }
    Some(dedup(out))
}

fn union(sets: impl Iterator<Item = Option<Set>>) -> Option<Set> {
    let v = sets.collect::<Option<Vec<Set>>>()?;
    let u = dedup(v.concat());
    (u.len() <= MAX_SET).then_some(u)
}

fn class_bytes(c: &Class) -> Option<Set> {
    let mut out: Vec<u8> = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.iter() {
                for x in r.start()..=r.end() {
                    out.push(x.to_ascii_lowercase());
                    if out.len() > 8 {
                        return None;
                    }
                }
            }
        }
        Class::Unicode(u) => {
            // A few characters, some beyond ASCII (`[✕×]`): their UTF-8 encodings.
            let mut set: Set = Vec::new();
            for r in u.iter() {
                for ch in r.start()..=r.end() {
                    let mut b = [0u8; 4];
                    set.push(ch.encode_utf8(&mut b).as_bytes().to_ascii_lowercase());
                    if set.len() > 8 {
                        return None;
                    }
                }
            }
            let set = dedup(set);
            return (set.len() <= 4).then_some(set);
        }
    }
    out.sort();
    out.dedup();
    // Case variants of one letter collapse to one byte (the automaton ignores ASCII case).
    if out.len() > 4 {
        return None;
    }
    Some(out.into_iter().map(|b| vec![b]).collect())
}

fn info(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            req: None,
            ..Info::exact(vec![vec![]])
        },
        HirKind::Literal(l) => Info::exact(vec![l.0.to_ascii_lowercase()]),
        HirKind::Class(c) => match class_bytes(c) {
            Some(s) => Info::exact(s),
            None => Info::none(),
        },
        HirKind::Capture(c) => info(&c.sub),
        HirKind::Repetition(r) => {
            let sub = info(&r.sub);
            if r.min == 1 && r.max == Some(1) {
                return sub;
            }
            if r.min == 0 {
                // Optional: only `x?` keeps a finite exact set.
                return match (r.max, sub.exact) {
                    (Some(1), Some(mut e)) => {
                        e.push(vec![]);
                        Info {
                            req: None,
                            ..Info::exact(dedup(e))
                        }
                    }
                    _ => Info::none(),
                };
            }
            // `x{3,}` starts and ends with `xxx` (bounded).
            let repeated = sub.exact.as_ref().and_then(|e| {
                let mut acc: Set = vec![vec![]];
                for _ in 0..r.min.min(4) {
                    acc = cross(&acc, e)?;
                }
                Some(acc)
            });
            if r.max == Some(r.min) {
                if let Some(x) = repeated.clone() {
                    return Info::exact(x);
                }
            }
            Info {
                exact: None,
                prefix: repeated.clone().or(sub.prefix),
                suffix: repeated.clone().or(sub.suffix),
                req: better(better(sub.exact, sub.req), repeated),
            }
        }
        HirKind::Concat(children) => {
            let infos: Vec<Info> = children.iter().map(info).collect();
            let mut best: Option<Set> = None;
            let mut run: Option<Set> = Some(vec![vec![]]);
            let mut prefix: Option<Set> = Some(vec![vec![]]);
            let mut prefix_open = true;
            for ci in &infos {
                match &ci.exact {
                    Some(e) => {
                        run = match &run {
                            Some(r) => cross(r, e).or_else(|| {
                                best = better(best.clone(), run.clone());
                                Some(e.clone())
                            }),
                            None => Some(e.clone()),
                        };
                        if prefix_open {
                            prefix = prefix.as_ref().and_then(|p| cross(p, e));
                        }
                    }
                    None => {
                        // The run continues into this child's fixed start, then breaks; a new
                        // run begins with its fixed end.
                        let ended = match (&run, &ci.prefix) {
                            (Some(r), Some(p)) => cross(r, p).or(run.clone()),
                            _ => run.clone(),
                        };
                        best = better(best, ended);
                        run = ci.suffix.clone().or(Some(vec![vec![]]));
                        if prefix_open {
                            prefix = match (&prefix, &ci.prefix) {
                                (Some(a), Some(b)) => cross(a, b),
                                _ => prefix.clone(),
                            };
                            prefix_open = false;
                        }
                    }
                }
                best = better(best, ci.req.clone());
            }
            best = better(best, run.clone());
            let exact = infos
                .iter()
                .try_fold(vec![vec![]], |acc, ci| cross(&acc, ci.exact.as_ref()?));
            // The fixed end: the last run when it was not interrupted.
            let suffix = if exact.is_some() { exact.clone() } else { run };
            Info {
                prefix: if exact.is_some() {
                    exact.clone()
                } else {
                    prefix
                },
                suffix,
                exact,
                req: best,
            }
        }
        HirKind::Alternation(alts) => {
            let infos: Vec<Info> = alts.iter().map(info).collect();
            Info {
                exact: union(infos.iter().map(|i| i.exact.clone())),
                prefix: union(infos.iter().map(|i| i.prefix.clone())),
                suffix: union(infos.iter().map(|i| i.suffix.clone())),
                req: union(infos.iter().map(|i| better(i.exact.clone(), i.req.clone()))),
            }
        }
    }
}

/// Literals (lower-cased) one of which every match of `pattern` contains, or `None` when no set
/// of strings of at least `min_len` bytes exists (the signature must then see every line).
pub fn required_literals(pattern: &str, min_len: usize) -> Option<Vec<Vec<u8>>> {
    let hir = ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let i = info(&hir);
    let s = better(i.exact, i.req)?;
    (quality(&s) >= min_len).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::required_literals;

    fn lits(p: &str) -> Vec<String> {
        required_literals(p, 3)
            .unwrap_or_default()
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn literals_of_typical_signatures() {
        assert_eq!(lits(r"^error\[E\d{4}\]:"), vec!["error[e"]);
        assert_eq!(
            lits(r"(?i)no space left on device"),
            vec!["no space left on device"]
        );
        assert_eq!(
            lits(r"^test result: FAILED|^error: test failed"),
            vec!["error: test failed", "test result: failed"]
        );
        assert_eq!(
            lits(r"\d+ examples?, [1-9]\d* failures?"),
            vec![" example, ", " examples, "]
        );
        assert_eq!(
            lits(r"^\s*(✕|×) (?P<t>.+)"),
            vec!["× ".to_string(), "✕ ".to_string()]
        );
        assert_eq!(lits(r"^\s*--- FAIL: (?P<test>\S+)"), vec!["--- fail: "]);
        assert_eq!(lits(r"^_{3,} (?P<t>test\w*) _{3,}$"), vec!["___ test"]);
    }

    #[test]
    fn patterns_without_a_usable_literal_are_reported() {
        assert!(required_literals(r"^\d+$", 3).is_none());
        assert!(required_literals(r"ab|\w+", 3).is_none());
        assert!(required_literals(r"(", 3).is_none());
    }
}
