//! Patterns, matched by `globset`: the shell's (`*`, `?`, `[...]`, as the safety engine
//! expands them) and names ending in `*` (tool tables, repository patterns).
//!
//! Each is written in globset's syntax from what it means here, so globset's own extensions
//! (`{a,b}`, `**`) never apply: a shell pattern's `{` is a literal brace.

use globset::{GlobBuilder, GlobMatcher};

/// A compiled pattern; `None` when nothing can match (a bracket set with no character).
#[derive(Debug, Clone)]
pub struct Pattern(Option<GlobMatcher>);

impl Pattern {
    /// A shell pattern as bash matches it in `case` and `${x#pat}`: `*` and `?` cross `/`,
    /// `\` quotes the next character, `[!...]`/`[^...]` negate, and a `[` without its `]` is a
    /// literal `[`.
    pub fn shell(p: &str) -> Pattern {
        let mut out = String::new();
        let mut star = false;
        for t in tokens(p) {
            let was_star = std::mem::replace(&mut star, matches!(t, Tok::Star));
            match t {
                // `**` would be globset's recursive wildcard; one `*` means the same here.
                Tok::Star if was_star => {}
                Tok::Star => out.push('*'),
                Tok::Any => out.push('?'),
                Tok::Char(c) => literal(&mut out, c),
                Tok::Set(ranges, neg) => match class(&ranges, neg) {
                    Some(c) => out.push_str(&c),
                    None => return Pattern(None),
                },
            }
        }
        Pattern::build(&out, false)
    }

    /// A name, or a prefix when it ends in `*`; nothing else in it is special.
    pub fn prefix(p: &str, case_insensitive: bool) -> Pattern {
        let (body, star) = match p.strip_suffix('*') {
            Some(b) => (b, "*"),
            None => (p, ""),
        };
        let mut out = String::new();
        body.chars().for_each(|c| literal(&mut out, c));
        out.push_str(star);
        Pattern::build(&out, case_insensitive)
    }

    fn build(glob: &str, case_insensitive: bool) -> Pattern {
        let built = GlobBuilder::new(glob)
            .literal_separator(false)
            .backslash_escape(true)
            .case_insensitive(case_insensitive)
            .build();
        // Every glob written above is valid; should one not be, it matches nothing.
        Pattern(built.ok().map(|g| g.compile_matcher()))
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.0.as_ref().is_some_and(|m| m.is_match(s))
    }
}

fn literal(out: &mut String, c: char) {
    if matches!(c, '?' | '*' | '[' | ']' | '{' | '}' | '\\' | ',') {
        out.push('\\');
    }
    out.push(c);
}

/// A bracket set in globset's syntax; `None` when it holds no character. Reversed ranges
/// hold none (as in bash). A member starting with `-` goes first, where `-` is literal; when
/// every member starts with `!` or `^` (which would read as a negation first), the set is
/// written as an alternation instead.
fn class(ranges: &[(char, char)], neg: bool) -> Option<String> {
    let mut members: Vec<(char, char)> = ranges.iter().copied().filter(|(a, b)| a <= b).collect();
    if members.is_empty() {
        return neg.then(|| "?".to_string());
    }
    members.sort_by_key(|&(a, b)| (a != '-', matches!(a, '!' | '^'), std::cmp::Reverse(b)));
    // One member starting with `-` (the widest): another would make `-` a range operator.
    let dashes = members.iter().filter(|(a, _)| *a == '-').count();
    members.drain(1..dashes.max(1));
    if !neg && matches!(members[0].0, '!' | '^') {
        let alts: Vec<String> = members
            .iter()
            .flat_map(|&(a, b)| alternatives(a, b))
            .collect();
        return Some(format!("{{{}}}", alts.join(",")));
    }
    let mut out = String::from(if neg { "[!" } else { "[" });
    for (a, b) in members {
        out.push(a);
        if a != b {
            out.push('-');
            out.push(b);
        }
    }
    out.push(']');
    Some(out)
}

/// `a`, and the rest of the range `a-b` as a set that does not start with `a`.
fn alternatives(a: char, b: char) -> Vec<String> {
    let mut out = vec![format!("\\{a}")];
    if let Some(next) = char::from_u32(a as u32 + 1).filter(|n| *n <= b) {
        out.push(format!("[{next}-{b}]"));
    }
    out
}

enum Tok {
    Star,
    Any,
    Char(char),
    Set(Vec<(char, char)>, bool),
}

fn tokens(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Tok::Char(chars[i]));
            }
            '[' => match chars[i + 1..].iter().position(|c| *c == ']') {
                Some(len) if len > 0 => {
                    out.push(set(&chars[i + 1..i + 1 + len]));
                    i += len + 1;
                }
                _ => out.push(Tok::Char('[')),
            },
            c => out.push(Tok::Char(c)),
        }
        i += 1;
    }
    out
}

fn set(body: &[char]) -> Tok {
    let (neg, body) = match body.first() {
        Some('!' | '^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut ranges = vec![];
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            ranges.push((body[k], body[k + 2]));
            k += 3;
        } else {
            ranges.push((body[k], body[k]));
            k += 1;
        }
    }
    Tok::Set(ranges, neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matcher the safety engine had before globset, kept as the oracle: bash's
    /// semantics for the patterns it expands.
    fn reference(p: &str, s: &str) -> bool {
        let toks = tokens(p);
        let chars: Vec<char> = s.chars().collect();
        let one = |t: &Tok, c: char| match t {
            Tok::Any => true,
            Tok::Char(x) => *x == c,
            Tok::Set(r, neg) => r.iter().any(|(a, b)| *a <= c && c <= *b) != *neg,
            Tok::Star => false,
        };
        let (mut ti, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < chars.len() {
            if ti < toks.len() && !matches!(toks[ti], Tok::Star) && one(&toks[ti], chars[si]) {
                ti += 1;
                si += 1;
            } else if ti < toks.len() && matches!(toks[ti], Tok::Star) {
                star = Some((ti, si));
                ti += 1;
            } else if let Some((st, ss)) = star {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            } else {
                return false;
            }
        }
        toks[ti.min(toks.len())..]
            .iter()
            .all(|t| matches!(t, Tok::Star))
    }

    /// Every string of up to `n` characters from `alphabet`.
    fn strings(alphabet: &[char], n: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..n {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn shell_patterns_match_as_bash_does() {
        let cases = [
            ("*.log", "a.log", true),
            ("*.log", "a.txt", false),
            ("r?", "rm", true),
            ("[q-s]m", "rm", true),
            ("[!q-s]m", "rm", false),
            ("[^a]m", "rm", true),
            ("*/", "usr/", true),
            ("/???/r?", "/bin/rm", true),
            ("a{b,c}", "ab", false),
            ("a{b,c}", "a{b,c}", true),
            ("[z-a]", "z", false),
            ("[z-a!]", "!", true),
            ("[ab", "[ab", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("**", "a/b/c", true),
            ("[--0]", "/", true),
            ("é?", "éa", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(Pattern::shell(p).is_match(s), want, "{p} ~ {s}");
        }
    }

    #[test]
    fn globset_agrees_with_the_former_matcher_on_every_short_pattern() {
        // Every character the syntax gives a meaning to, and longer sets over fewer.
        let mut patterns = strings(&['a', '-', '!', '^', '*', '?', '[', ']', '\\', '{', ','], 3);
        patterns.extend(strings(&['a', 'c', '-', '!', '[', ']'], 5));
        let subjects = strings(&['a', 'b', '-', '!', '^', '/', '{', ']'], 3);
        for p in &patterns {
            let m = Pattern::shell(p);
            for s in &subjects {
                assert_eq!(m.is_match(s), reference(p, s), "{p:?} ~ {s:?}");
            }
        }
    }

    #[test]
    fn prefixes_end_in_a_star_and_nothing_else_is_special() {
        let p = Pattern::prefix("phpunit*", false);
        assert!(p.is_match("phpunit") && p.is_match("phpunit-9"));
        assert!(!p.is_match("xphpunit"));
        let exact = Pattern::prefix("a?[b]", false);
        assert!(exact.is_match("a?[b]") && !exact.is_match("ax[b]"));
        let repo = Pattern::prefix("Octo/*", true);
        assert!(repo.is_match("octo/App") && !repo.is_match("other/app"));
        assert!(Pattern::prefix("octo/app", true).is_match("OCTO/APP"));
    }
}
