//! What inline interpreter code (`python -c`, `perl -e`, `node -e`, an awk program) hands to
//! the system: command lines given as string literals to `os.system`, `subprocess`,
//! `execSync`, backticks…, argument lists, and paths given to recursive deletion. Literals
//! decoded in the code itself (base64, hex, reversed) are read too. The call names are in
//! interpreters.toml.

use super::decode;
use super::tables::Interpreters;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Effect {
    /// Shell text the code runs.
    Script(String),
    /// A program and its arguments the code runs without a shell.
    Argv(Vec<String>),
    /// A path the code deletes recursively.
    RemoveTree(String),
}

/// A literal argument of a call.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    List(Vec<String>),
}

const MAX_EFFECTS: usize = 32;

/// Every effect found in `code`. `backticks` reads `` `cmd` `` (and `qx`, `%x`) as commands.
pub(super) fn effects(code: &str, t: &Interpreters, backticks: bool) -> Vec<Effect> {
    let mut out = vec![];
    for name in &t.shell_calls {
        for args in calls(code, name) {
            match args.as_slice() {
                [Lit::List(v), ..] => out.push(Effect::Argv(v.clone())),
                [Lit::Str(p), Lit::List(v), ..] => {
                    out.push(Effect::Argv([vec![p.clone()], v.clone()].concat()))
                }
                [Lit::Str(s)] => out.push(Effect::Script(s.clone())),
                [Lit::Str(_), ..] => out.push(Effect::Argv(
                    args.iter()
                        .filter_map(|a| match a {
                            Lit::Str(s) => Some(s.clone()),
                            Lit::List(_) => None,
                        })
                        .collect(),
                )),
                [] => {}
            }
        }
    }
    for name in &t.argv_calls {
        for args in calls(code, name) {
            match args.as_slice() {
                [Lit::Str(p), Lit::List(v), ..] => {
                    out.push(Effect::Argv([vec![p.clone()], v.clone()].concat()))
                }
                [Lit::List(v), ..] => out.push(Effect::Argv(v.clone())),
                [Lit::Str(p), ..] => out.push(Effect::Argv(vec![p.clone()])),
                [] => {}
            }
        }
    }
    for name in &t.rmtree_calls {
        for args in calls(code, name) {
            if let Some(Lit::Str(p)) = args.first() {
                out.push(Effect::RemoveTree(p.clone()));
            }
        }
    }
    if backticks {
        out.extend(quoted_commands(code).into_iter().map(Effect::Script));
    }
    // A literal the code decodes itself, when the code also runs commands: the decoded text
    // is what it runs.
    let runs = t
        .shell_calls
        .iter()
        .chain(&t.argv_calls)
        .any(|n| code.contains(n.as_str()));
    if runs {
        out.extend(decoded_literals(code).into_iter().map(Effect::Script));
    }
    out.dedup();
    out.truncate(MAX_EFFECTS);
    out
}

/// What code that only prints string literals prints (`print("rm -rf /")`, `puts '...'`,
/// `console.log(...)`), one line per call.
pub(super) fn printed(code: &str, interpreter: &str) -> Option<String> {
    let names: &[&str] = if interpreter.starts_with("node") {
        &["console.log", "process.stdout.write"]
    } else {
        &[
            "print",
            "puts",
            "say",
            "echo",
            "printf",
            "console.log",
            "Write-Output",
            "Write-Host",
        ]
    };
    let mut out = String::new();
    for n in names {
        for args in calls(code, n) {
            let strs: Vec<&str> = args
                .iter()
                .filter_map(|a| match a {
                    Lit::Str(s) => Some(s.as_str()),
                    Lit::List(_) => None,
                })
                .collect();
            if !strs.is_empty() {
                out.push_str(&strs.join(" "));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Commands an awk program runs: `system("...")` and `"..." | getline`.
pub(super) fn awk_commands(program: &str) -> Vec<String> {
    let mut out: Vec<String> = calls(program, "system")
        .into_iter()
        .filter_map(|a| match a.first() {
            Some(Lit::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let chars: Vec<char> = program.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            if let Some((s, end)) = string_at(&chars, i) {
                let after: String = chars[end..].iter().collect();
                if after.trim_start().starts_with('|') || {
                    let before: String = chars[..i].iter().collect();
                    before.trim_end().ends_with('|')
                } {
                    out.push(s);
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.truncate(MAX_EFFECTS);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// The literal arguments of every call of `name` in `code`.
fn calls(code: &str, name: &str) -> Vec<Vec<Lit>> {
    let chars: Vec<char> = code.chars().collect();
    let pat: Vec<char> = name.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i + pat.len() <= chars.len() && out.len() < MAX_EFFECTS {
        let before_ok = i == 0 || !is_ident(chars[i - 1]);
        let after = i + pat.len();
        let after_ok = chars.get(after).is_none_or(|c| !is_ident(*c));
        if before_ok && after_ok && chars[i..after] == pat[..] {
            out.push(literal_args(&chars, after));
            i = after;
        } else {
            i += 1;
        }
    }
    out
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The literal arguments starting at `i` (after the call's name): `("a", ["b", "c"])`.
fn literal_args(chars: &[char], start: usize) -> Vec<Lit> {
    let mut i = skip_ws(chars, start);
    if matches!(chars.get(i), Some('(') | Some('{')) {
        i += 1;
    }
    let mut out = vec![];
    for _ in 0..8 {
        i = skip_ws(chars, i);
        // Keyword names before a value (`args=[...]`, `cmd: "..."`).
        let mut j = i;
        while chars
            .get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            j += 1;
        }
        if j > i && matches!(chars.get(skip_ws(chars, j)), Some('=') | Some(':')) {
            let k = skip_ws(chars, j) + 1;
            if chars.get(k) != Some(&'=') {
                i = skip_ws(chars, k);
            }
        }
        match chars.get(i) {
            Some('[') => {
                let mut items = vec![];
                let mut k = i + 1;
                loop {
                    k = skip_ws(chars, k);
                    match chars.get(k) {
                        Some(']') => {
                            k += 1;
                            break;
                        }
                        Some(',') => k += 1,
                        Some(_) => match string_at(chars, k) {
                            Some((s, e)) => {
                                items.push(s);
                                k = e;
                            }
                            None => return out,
                        },
                        None => return out,
                    }
                }
                out.push(Lit::List(items));
                i = k;
            }
            Some(_) => match string_at(chars, i) {
                Some((s, e)) => {
                    let (s, e) = reversed_slice(chars, s, e);
                    out.push(Lit::Str(s));
                    i = e;
                }
                None => return out,
            },
            None => return out,
        }
        i = skip_ws(chars, i);
        match chars.get(i) {
            Some(',') => i += 1,
            _ => return out,
        }
    }
    out
}

/// A string literal at `i` (with a Python prefix such as `r` or `f`): its value and end.
fn string_at(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut i = i;
    let mut raw = false;
    for _ in 0..2 {
        match chars.get(i) {
            Some('r' | 'R') if chars.get(i + 1).is_some_and(|c| "'\"rRbBfFuU".contains(*c)) => {
                raw = true;
                i += 1;
            }
            Some('b' | 'B' | 'f' | 'F' | 'u' | 'U')
                if chars.get(i + 1).is_some_and(|c| "'\"rRbBfFuU".contains(*c)) =>
            {
                i += 1
            }
            _ => {}
        }
    }
    let q = *chars.get(i)?;
    if !matches!(q, '"' | '\'' | '`') {
        return None;
    }
    let mut out = String::new();
    let mut k = i + 1;
    while k < chars.len() {
        let c = chars[k];
        if c == q {
            let s = if raw { out } else { decode::escapes(&out).0 };
            return Some((s, k + 1));
        }
        if c == '\\' && k + 1 < chars.len() {
            out.push(c);
            out.push(chars[k + 1]);
            k += 2;
            continue;
        }
        out.push(c);
        k += 1;
    }
    None
}

/// `'...'[::-1]` reverses the literal.
fn reversed_slice(chars: &[char], s: String, end: usize) -> (String, usize) {
    let tail: String = chars[end..chars.len().min(end + 6)].iter().collect();
    if tail.starts_with("[::-1]") {
        (s.chars().rev().collect(), end + 6)
    } else {
        (s, end)
    }
}

/// `` `cmd` ``, `qx(cmd)`, `qx{cmd}`, `%x(cmd)`: commands in Perl, Ruby and PHP.
fn quoted_commands(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_EFFECTS {
        let c = chars[i];
        if c == '`' {
            if let Some(end) = chars[i + 1..].iter().position(|x| *x == '`') {
                out.push(chars[i + 1..i + 1 + end].iter().collect());
                i += end + 2;
                continue;
            }
        }
        let opener = match (c, chars.get(i + 1)) {
            ('q', Some('x')) if i == 0 || !is_ident(chars[i - 1]) => chars.get(i + 2).copied(),
            ('%', Some('x')) => chars.get(i + 2).copied(),
            _ => None,
        };
        if let Some(open) = opener.filter(|o| !o.is_alphanumeric() && !o.is_whitespace()) {
            let close = match open {
                '(' => ')',
                '{' => '}',
                '[' => ']',
                '<' => '>',
                o => o,
            };
            if let Some(end) = chars[i + 3..].iter().position(|x| *x == close) {
                out.push(chars[i + 3..i + 3 + end].iter().collect());
                i += end + 4;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Literals the code decodes: `b64decode('...')`, `atob`, `Buffer.from('...', 'base64'|'hex')`,
/// `bytes.fromhex`, `unhexlify`, `pack("H*", ...)`, `base64_decode`, `decode_base64`.
fn decoded_literals(code: &str) -> Vec<String> {
    let mut out = vec![];
    let b64 = [
        "b64decode",
        "atob",
        "base64_decode",
        "decode_base64",
        "decode64",
        "FromBase64String",
    ];
    let hex = ["fromhex", "unhexlify", "hex2bin"];
    for n in b64 {
        for args in calls(code, n) {
            if let Some(Lit::Str(s)) = args.first() {
                out.extend(decode::base64(s));
            }
        }
    }
    for n in hex {
        for args in calls(code, n) {
            if let Some(Lit::Str(s)) = args.first() {
                out.extend(decode::hex(s, false));
            }
        }
    }
    for args in calls(code, "from") {
        if let [Lit::Str(s), Lit::Str(enc), ..] = args.as_slice() {
            match enc.as_str() {
                "base64" => out.extend(decode::base64(s)),
                "hex" => out.extend(decode::hex(s, false)),
                _ => {}
            }
        }
    }
    for args in calls(code, "pack") {
        if let [Lit::Str(f), Lit::Str(s), ..] = args.as_slice() {
            if f.starts_with('H') {
                out.extend(decode::hex(s, false));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::tables::tables;

    fn fx(code: &str) -> Vec<Effect> {
        effects(code, &tables().expect("tables").interp, true)
    }

    #[test]
    fn finds_what_code_runs() {
        assert!(fx("import os; os.system('rm -rf /')").contains(&Effect::Script("rm -rf /".into())));
        assert!(fx("import subprocess; subprocess.run(['rm', '-rf', '/'])")
            .contains(&Effect::Argv(vec!["rm".into(), "-rf".into(), "/".into()])));
        assert!(fx("require('child_process').execSync(\"rm -rf /\")")
            .contains(&Effect::Script("rm -rf /".into())));
        assert!(
            fx("import shutil; shutil.rmtree('/etc')").contains(&Effect::RemoveTree("/etc".into()))
        );
        assert!(fx("system \"rm -rf /\"").contains(&Effect::Script("rm -rf /".into())));
        assert!(fx("print `rm -rf /`").contains(&Effect::Script("rm -rf /".into())));
        assert!(fx("os.system('/ fr- mr'[::-1])").contains(&Effect::Script("rm -rf /".into())));
        assert!(
            fx("import os,base64; os.system(base64.b64decode('cm0gLXJmIC8=').decode())")
                .contains(&Effect::Script("rm -rf /".into()))
        );
        assert!(fx("print(1)").is_empty());
        assert_eq!(awk_commands("BEGIN { system(\"reboot\") }"), ["reboot"]);
        assert_eq!(
            awk_commands("BEGIN { \"rm -rf /\" | getline x }"),
            ["rm -rf /"]
        );
    }

    #[test]
    fn odd_code_does_not_panic() {
        for c in [
            "system(",
            "system('",
            "`",
            "qx",
            "%x(",
            "os.system([",
            "b64decode(\"",
            "x[::-1",
        ] {
            let _ = fx(c);
            let _ = awk_commands(c);
        }
    }
}
