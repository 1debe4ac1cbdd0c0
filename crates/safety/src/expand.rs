//! Word expansion the way the shell does it: variables known from earlier in the script
//! (arrays, positional parameters, `${x:-d}`, `${x:0:2}`, `${x/a/b}`, `${!x}`, case
//! changes), `$(...)` whose output is static, `$IFS` word splitting and brace lists. What
//! only the run can tell stays marked `DYN`.

use super::content::Input;
use super::engine::{Arg, Ctx};
use super::shell::{self, Part, Word};
use super::{DYN, TMP};
use crate::glob::Pattern;

/// Separates the fields an expansion produced.
const SPLIT: char = '\u{2}';
/// Separates the elements of an array literal (`a=(x y)`) inside one argument.
pub(super) const ARRAY_SEP: char = '\u{3}';
/// `${a:-${b:-${c...}}}` deeper than this is left unknown.
const MAX_EXPANSION_DEPTH: u32 = 12;
/// Pattern operations on longer values are left unknown (they are quadratic).
const MAX_PATTERN_VALUE: usize = 512;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of a parameter.
enum Val {
    /// Its fields; `true` when a quoted expansion keeps them apart (`"$@"`, `"${a[@]}"`).
    Known(Vec<String>, bool),
    Unknown,
    /// Unknown, or when unset this default (`${x:-d}`).
    UnknownOr(String),
    /// The run's temporary directory (`$TMPDIR`, `$RUNNER_TEMP`), or empty.
    Temp,
}

impl Ctx {
    /// One word, its fields joined by spaces.
    pub(super) fn expand(&mut self, w: &Word) -> Arg {
        let v = self.expand_fields(w);
        let mut a = v.first().cloned().unwrap_or_else(|| Arg::literal(""));
        if v.len() > 1 {
            a.text = v
                .iter()
                .map(|x| x.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        a
    }

    fn ifs(&self) -> Vec<char> {
        match self.vars.get("IFS").and_then(|v| v.first()) {
            Some(s) => s.chars().collect(),
            None => vec![' ', '\t', '\n'],
        }
    }

    fn push_val(&self, text: &mut String, v: Val, quoted: bool, keep_empty: &mut bool) {
        let ifs = self.ifs();
        let split = |s: &str| -> String {
            s.chars()
                .map(|c| if ifs.contains(&c) { SPLIT } else { c })
                .collect()
        };
        match v {
            Val::Known(fields, separate) => {
                let fields: Vec<String> = fields.iter().map(|f| f.replace(TMP, "?")).collect();
                if quoted {
                    *keep_empty |= !(separate && fields.is_empty());
                    let sep = if separate {
                        SPLIT.to_string()
                    } else {
                        ifs.first().map_or(String::new(), |c| c.to_string())
                    };
                    text.push_str(&fields.join(&sep));
                } else {
                    let parts: Vec<String> = fields.iter().map(|f| split(f)).collect();
                    text.push_str(&parts.join(&SPLIT.to_string()));
                }
            }
            Val::Unknown => {
                *keep_empty = true;
                text.push(DYN);
            }
            Val::UnknownOr(d) => {
                *keep_empty = true;
                text.push(DYN);
                let d = d.replace(TMP, "?");
                text.push_str(&if quoted { d } else { split(&d) });
            }
            Val::Temp => {
                *keep_empty = true;
                text.push(DYN);
                text.push(TMP);
            }
        }
    }

    /// Expand one word into the fields the shell would pass.
    pub(super) fn expand_fields(&mut self, w: &Word) -> Vec<Arg> {
        let mut text = String::new();
        let mut subs = vec![];
        let mut procsub = None;
        let mut braces = false;
        let mut keep_empty = false;
        for p in &w.parts {
            match p {
                Part::Lit { text: t, quoted } => {
                    keep_empty = true;
                    braces |= !quoted && t.contains('{') && t.contains(',') && t.contains('}');
                    text.push_str(&t.replace(TMP, "?"));
                }
                Part::Var { name, quoted } => {
                    let v = self.var(name);
                    self.push_val(&mut text, v, *quoted, &mut keep_empty);
                }
                Part::Param { expr, quoted } => {
                    let v = self.param(expr);
                    self.push_val(&mut text, v, *quoted, &mut keep_empty);
                }
                Part::Home => {
                    keep_empty = true;
                    text.push('~');
                }
                Part::Sub { script, quoted } => {
                    self.nested(script, Input::Outside, None);
                    subs.push(script.clone());
                    let v = match self.sub_output(script) {
                        Some(out) => Val::Known(vec![out], false),
                        // `$(pwd)` where it runs is unknown: the run's work directory.
                        None if script.trim() == "pwd" => Val::Temp,
                        None => Val::Unknown,
                    };
                    self.push_val(&mut text, v, *quoted, &mut keep_empty);
                }
                Part::ProcSub { script, output } => {
                    keep_empty = true;
                    subs.push(script.clone());
                    if *output {
                        self.pending_out.push(script.clone());
                    } else {
                        self.nested(script, Input::Outside, None);
                        procsub = Some(script.clone());
                    }
                    text.push_str("/dev/fd/63");
                }
                Part::Arith(t) => {
                    keep_empty = true;
                    if let Ok(aw) = shell::expanding_text(t) {
                        for s in aw.substitutions() {
                            self.nested(s, Input::Outside, None);
                        }
                    }
                    match t.trim().parse::<i64>() {
                        Ok(n) => text.push_str(&n.to_string()),
                        Err(_) => text.push(DYN),
                    }
                }
                Part::Array(t) => {
                    keep_empty = true;
                    let items = self.array_items(t);
                    text.push_str(&items.join(&ARRAY_SEP.to_string()));
                }
            }
        }
        let mut fields: Vec<String> = if text.contains(SPLIT) {
            text.split(SPLIT)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        } else if text.is_empty() && !keep_empty {
            vec![]
        } else {
            vec![text]
        };
        if braces {
            fields = fields.iter().flat_map(|f| brace_expand(f, 3)).collect();
        }
        fields
            .into_iter()
            .map(|text| Arg {
                text,
                subs: subs.clone(),
                procsub: procsub.clone(),
            })
            .collect()
    }

    /// The elements of an array literal's text.
    pub(super) fn array_items(&mut self, t: &str) -> Vec<String> {
        match shell::split_words(t) {
            Ok(ws) => ws
                .iter()
                .flat_map(|w| self.expand_fields(w))
                .map(|a| a.text)
                .collect(),
            Err(_) => vec![DYN.to_string()],
        }
    }

    /// A parameter's fields, or `None` when only the run knows it. `for_ops` gives the
    /// usual values of HOME and PATH to `${HOME:0:1}`-style tricks.
    fn lookup(&self, name: &str, for_ops: bool) -> Option<Vec<String>> {
        match name {
            "@" | "*" => self.positional.clone(),
            "#" => self.positional.as_ref().map(|p| vec![p.len().to_string()]),
            "0" => self.arg0.clone().map(|a| vec![a]),
            "PWD" if !self.vars.contains_key("PWD") => self.cwd.clone().map(|c| vec![c]),
            n if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                let i: usize = n.parse().ok()?;
                self.positional
                    .as_ref()
                    .map(|p| vec![p.get(i.wrapping_sub(1)).cloned().unwrap_or_default()])
            }
            n => match self.vars.get(n) {
                Some(v) => Some(v.clone()),
                None => match (n, for_ops) {
                    ("HOME", false) => Some(vec!["~".into()]),
                    ("HOME", true) => Some(vec!["/root".into()]),
                    ("IFS", _) => Some(vec![" \t\n".into()]),
                    ("PATH", true) => Some(vec![DEFAULT_PATH.into()]),
                    ("SHELL", true) => Some(vec!["/bin/bash".into()]),
                    _ => None,
                },
            },
        }
    }

    fn var(&mut self, name: &str) -> Val {
        match self.lookup(name, false) {
            Some(all) if name == "@" => Val::Known(all, true),
            Some(all) if name == "*" => Val::Known(vec![all.join(" ")], false),
            Some(all) => Val::Known(vec![all.into_iter().next().unwrap_or_default()], false),
            None if self.is_temp_var(name) => Val::Temp,
            None => Val::Unknown,
        }
    }

    /// Whether `${RUN_DIR<op>}` still names the run's directory: no operation, `:?` (an error
    /// when unset) or a default that is itself a workspace (`${TMPDIR:-/tmp}`).
    fn keeps_run_dir(&self, op: &str) -> bool {
        let op = op.strip_prefix(':').unwrap_or(op);
        match op.chars().next() {
            None | Some('?') => true,
            Some('-') => self.t.paths.in_workspace(&op[1..]) && !op[1..].contains('$'),
            _ => false,
        }
    }

    /// A variable that names the run's temporary or work directory, not set by the script.
    fn is_temp_var(&self, name: &str) -> bool {
        !self.vars.contains_key(name) && self.t.paths.temp_vars.iter().any(|v| v == name)
    }

    fn param(&mut self, expr: &str) -> Val {
        if self.expansion_depth >= MAX_EXPANSION_DEPTH {
            return Val::Unknown;
        }
        self.expansion_depth += 1;
        let v = self.param_inner(expr);
        self.expansion_depth -= 1;
        v
    }

    fn param_inner(&mut self, expr: &str) -> Val {
        if let Some(rest) = expr.strip_prefix('#') {
            return match self.base(rest, false) {
                Some((f, _)) => Val::Known(
                    vec![f.first().map_or(0, |s| s.chars().count()).to_string()],
                    false,
                ),
                None => Val::Unknown,
            };
        }
        if let Some(rest) = expr.strip_prefix('!') {
            // `${!x}`: the variable whose name x holds.
            if rest.ends_with(['*', '@', ']']) {
                return Val::Unknown;
            }
            return match self.lookup(rest, false).and_then(|v| v.into_iter().next()) {
                Some(target) if is_param_name(&target) => self.param(&target),
                _ => Val::Unknown,
            };
        }
        let name_len = if expr.starts_with(|c: char| "@*#?$!-".contains(c)) {
            1
        } else {
            expr.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len())
        };
        let (name, rest) = expr.split_at(name_len);
        if name.is_empty() {
            return Val::Unknown;
        }
        let (index, op) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((i, op)) => (Some(i), op),
            None => (None, rest),
        };
        if index.is_none() && self.is_temp_var(name) && self.keeps_run_dir(op) {
            return Val::Temp;
        }
        let base = self.lookup(name, !op.is_empty()).map(|all| match index {
            Some("@") => (all, true),
            Some("*") => (vec![all.join(" ")], false),
            Some(i) => (
                vec![i
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| all.get(i).cloned())
                    .unwrap_or_default()],
                false,
            ),
            None if name == "@" => (all, true),
            None if name == "*" => (vec![all.join(" ")], false),
            None => (vec![all.into_iter().next().unwrap_or_default()], false),
        });
        self.apply_op(base, op)
    }

    fn base(&self, name: &str, for_ops: bool) -> Option<(Vec<String>, bool)> {
        self.lookup(name, for_ops).map(|v| (v, false))
    }

    fn apply_op(&mut self, base: Option<(Vec<String>, bool)>, op: &str) -> Val {
        if op.is_empty() {
            return base.map_or(Val::Unknown, |(f, s)| Val::Known(f, s));
        }
        let (colon, body) = match op.strip_prefix(':') {
            Some(b) => (true, b),
            None => (false, op),
        };
        let unset_or_empty = |f: &[String]| colon && f.iter().all(|x| x.is_empty());
        let mut chars = body.chars();
        let first = chars.next();
        let rest = chars.as_str();
        match first {
            Some('-' | '=') => {
                let d = self.word_text(rest);
                match base {
                    Some((f, s)) if !unset_or_empty(&f) => Val::Known(f, s),
                    Some(_) => Val::Known(vec![d], false),
                    None => Val::UnknownOr(d),
                }
            }
            Some('+') => match base {
                Some((f, _)) if !unset_or_empty(&f) => {
                    Val::Known(vec![self.word_text(rest)], false)
                }
                Some(_) => Val::Known(vec![String::new()], false),
                None => Val::Unknown,
            },
            Some('?') => base.map_or(Val::Unknown, |(f, s)| Val::Known(f, s)),
            _ if colon => {
                let Some((f, s)) = base else {
                    return Val::Unknown;
                };
                match substring_spec(body) {
                    Some((off, len)) => {
                        Val::Known(f.iter().map(|x| substring(x, off, len)).collect(), s)
                    }
                    None => Val::Unknown,
                }
            }
            Some(c @ ('#' | '%')) => {
                let Some((f, s)) = base else {
                    return Val::Unknown;
                };
                let longest = rest.starts_with(c);
                let pat = self.word_text(if longest { &rest[1..] } else { rest });
                let out: Option<Vec<String>> = f
                    .iter()
                    .map(|x| strip(x, &pat, c == '#', longest))
                    .collect();
                out.map_or(Val::Unknown, |o| Val::Known(o, s))
            }
            Some('/') => {
                let Some((f, s)) = base else {
                    return Val::Unknown;
                };
                let (mode, spec) = match rest.chars().next() {
                    Some(m @ ('/' | '#' | '%')) => (m, &rest[1..]),
                    _ => (' ', rest),
                };
                let (pat, rep) = spec.split_once('/').unwrap_or((spec, ""));
                let (pat, rep) = (self.word_text(pat), self.word_text(rep));
                let out: Option<Vec<String>> =
                    f.iter().map(|x| replace(x, &pat, &rep, mode)).collect();
                out.map_or(Val::Unknown, |o| Val::Known(o, s))
            }
            Some(c @ ('^' | ',' | '~')) => {
                let Some((f, s)) = base else {
                    return Val::Unknown;
                };
                let all = rest.starts_with(c);
                Val::Known(f.iter().map(|x| change_case(x, c, all)).collect(), s)
            }
            Some('@') => {
                let Some((f, s)) = base else {
                    return Val::Unknown;
                };
                let out: Option<Vec<String>> = f
                    .iter()
                    .map(|x| match rest {
                        "Q" => Some(shell::quote(x)),
                        "E" => Some(super::decode::escapes(x).0),
                        "U" => Some(x.to_uppercase()),
                        "L" => Some(x.to_lowercase()),
                        "u" => Some(change_case(x, '^', false)),
                        _ => None,
                    })
                    .collect();
                out.map_or(Val::Unknown, |o| Val::Known(o, s))
            }
            _ => Val::Unknown,
        }
    }

    /// The text a word inside `${...}` expands to (defaults, patterns, replacements).
    fn word_text(&mut self, w: &str) -> String {
        if w.is_empty() {
            return String::new();
        }
        match shell::split_words(w) {
            Ok(ws) => ws
                .iter()
                .map(|x| self.expand(x).text)
                .collect::<Vec<_>>()
                .join(" "),
            Err(_) => w.to_string(),
        }
    }
}

fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && (s.chars().all(|c| c.is_ascii_digit())
            || (s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')))
}

/// `off` or `off:len` of `${x:off:len}`, when both are plain integers.
fn substring_spec(body: &str) -> Option<(i64, Option<i64>)> {
    let num = |s: &str| {
        s.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim()
            .parse::<i64>()
            .ok()
    };
    match body.split_once(':') {
        Some((o, l)) => Some((num(o)?, Some(num(l)?))),
        None => Some((num(body)?, None)),
    }
}

fn substring(s: &str, off: i64, len: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = if off < 0 {
        (n + off).max(0)
    } else {
        off.min(n)
    };
    let end = match len {
        Some(l) if l < 0 => (n + l).max(start),
        Some(l) => (start + l).min(n),
        None => n,
    };
    chars[start as usize..end.max(start) as usize]
        .iter()
        .collect()
}

fn change_case(s: &str, op: char, all: bool) -> String {
    let conv = |c: char| -> String {
        match op {
            '^' => c.to_uppercase().collect(),
            ',' => c.to_lowercase().collect(),
            _ if c.is_uppercase() => c.to_lowercase().collect(),
            _ => c.to_uppercase().collect(),
        }
    };
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if all || i == 0 {
                conv(c)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether `s` matches the shell pattern `p` (`*`, `?`, `[...]`).
#[cfg(test)]
fn glob_match(p: &str, s: &str) -> bool {
    Pattern::shell(p).is_match(s)
}

fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn strip(s: &str, pat: &str, prefix: bool, longest: bool) -> Option<String> {
    if s.len() > MAX_PATTERN_VALUE {
        return None;
    }
    let pattern = Pattern::shell(pat);
    let mut cuts = boundaries(s);
    if prefix == longest {
        cuts.reverse();
    }
    // Prefix: shortest first unless longest; suffix: the cut is where the suffix starts.
    for &i in &cuts {
        let (part, keep) = if prefix {
            (&s[..i], &s[i..])
        } else {
            (&s[i..], &s[..i])
        };
        if pattern.is_match(part) {
            return Some(keep.to_string());
        }
    }
    Some(s.to_string())
}

fn replace(s: &str, pat: &str, rep: &str, mode: char) -> Option<String> {
    if s.len() > MAX_PATTERN_VALUE || pat.is_empty() {
        return (pat.is_empty()).then(|| s.to_string());
    }
    let pattern = Pattern::shell(pat);
    let b = boundaries(s);
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < b.len() {
        let start = b[i];
        let ends: Vec<usize> = match mode {
            '#' if start != 0 => vec![],
            '%' => vec![s.len()],
            _ => b[i..]
                .iter()
                .rev()
                .copied()
                .filter(|e| *e > start)
                .collect(),
        };
        let hit = if replaced && mode != '/' {
            None
        } else {
            ends.into_iter().find(|&e| pattern.is_match(&s[start..e]))
        };
        match hit {
            Some(e) => {
                out.push_str(rep);
                replaced = true;
                i = b.iter().position(|x| *x == e).unwrap_or(b.len());
            }
            None => {
                if i + 1 < b.len() {
                    out.push_str(&s[start..b[i + 1]]);
                }
                i += 1;
            }
        }
    }
    Some(out)
}

/// `pre{a,b}post` brace expansion, a few levels deep (`{rm,-rf,/}`, `/{etc,usr}`).
fn brace_expand(s: &str, depth: u32) -> Vec<String> {
    let (Some(open), Some(close)) = (s.find('{'), s[s.find('{').unwrap_or(0)..].find('}')) else {
        return vec![s.to_string()];
    };
    let close = open + close;
    if depth == 0 || !s[open..close].contains(',') {
        return vec![s.to_string()];
    }
    let (pre, inner, post) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
    inner
        .split(',')
        .flat_map(|x| brace_expand(&format!("{pre}{x}{post}"), depth - 1))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(glob_match("*.log", "a.log"));
        assert!(!glob_match("*.log", "a.txt"));
        assert!(glob_match("r?", "rm"));
        assert!(glob_match("[q-s]m", "rm"));
        assert_eq!(strip("/usr/bin", "*/", true, true).as_deref(), Some("bin"));
        assert_eq!(strip("xrm", "x", true, false).as_deref(), Some("rm"));
        assert_eq!(strip("rmX", "X*", false, false).as_deref(), Some("rm"));
        assert_eq!(replace("rXm", "X", "", '/').as_deref(), Some("rm"));
        assert_eq!(replace("a_b_c", "_", " ", '/').as_deref(), Some("a b c"));
        assert_eq!(substring(DEFAULT_PATH, 0, Some(1)), "/");
        assert_eq!(substring("abc", -2, None), "bc");
        assert_eq!(change_case("RM", ',', true), "rm");
        assert_eq!(brace_expand("{rm,-rf,/}", 3), ["rm", "-rf", "/"]);
    }
}
