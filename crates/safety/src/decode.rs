//! Decoders for the encodings used to hide a payload: base64/base32, hex, printf and echo
//! escapes, `tr` (rot13 and friends), `sed s///`, reversal. Each works on text and gives up
//! (None) on what it cannot decode; none of them panics on any input.

use regex::RegexBuilder;

pub(super) fn base64(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = vec![];
    for c in s.chars() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' | '\n' | '\r' | ' ' | '\t' => continue,
            _ => return None,
        };
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn base32(s: &str) -> Option<String> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = vec![];
    for c in s.chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            '=' | '\n' | '\r' | ' ' => continue,
            _ => return None,
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Plain hex (`xxd -p`), or an `xxd` dump (offsets and the text column dropped).
pub(super) fn hex(s: &str, dump: bool) -> Option<String> {
    let mut clean = String::new();
    for line in s.lines() {
        let body = if dump {
            let after = line.split_once(':').map_or(line, |(_, r)| r);
            after.split("  ").next().unwrap_or("")
        } else {
            line
        };
        clean.extend(body.chars().filter(|c| c.is_ascii_hexdigit()));
    }
    let bytes: Option<Vec<u8>> = clean
        .as_bytes()
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Backslash escapes as printf's format and `echo -e` read them; whether any was found.
pub(super) fn escapes(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut any = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        any = true;
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match it.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            it.next();
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if let Some(ch) = char::from_u32(v).filter(|_| digits > 0) {
                    out.push(ch);
                }
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..3 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) if v * 8 + x < 256 => {
                            v = v * 8 + x;
                            it.next();
                        }
                        _ => break,
                    }
                }
                if let Some(ch) = char::from_u32(v) {
                    out.push(ch);
                }
            }
            Some('c') => break,
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    (out, any)
}

/// What `printf FORMAT ARGS...` prints, for the conversions that matter here; `None` when
/// a conversion it cannot render is used.
pub(super) fn printf(fmt: &str, args: &[&str]) -> Option<String> {
    let mut out = String::new();
    let mut args = args.iter();
    // The format is reused while arguments remain, as printf does.
    for round in 0..64 {
        let mut used = false;
        let mut chars = fmt.chars().peekable();
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            out.push_str(&escapes(&std::mem::take(&mut lit)).0);
            // Flags, width and precision are ignored: the text is what matters.
            while chars.peek().is_some_and(|c| "-+ #0123456789.".contains(*c)) {
                chars.next();
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('s') => {
                    used = true;
                    out.push_str(args.next().copied().unwrap_or(""));
                }
                Some('b') => {
                    used = true;
                    out.push_str(&escapes(args.next().copied().unwrap_or("")).0);
                }
                Some('c') => {
                    used = true;
                    out.extend(args.next().and_then(|a| a.chars().next()));
                }
                Some('d' | 'i' | 'u') => {
                    used = true;
                    out.push_str(args.next().copied().unwrap_or("0"));
                }
                Some('o' | 'x' | 'X') => {
                    used = true;
                    let v: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
                    out.push_str(&v.to_string());
                }
                _ => return None,
            }
        }
        out.push_str(&escapes(&lit).0);
        if !used || args.len() == 0 || round == 63 {
            break;
        }
    }
    Some(out)
}

/// The characters of a `tr` set: ranges, escapes and the common classes.
fn tr_set(s: &str) -> Option<Vec<char>> {
    let (s, _) = escapes(s);
    let chars: Vec<char> = s.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i + 2..].iter().collect();
            let end = rest.find(":]")?;
            let class = &rest[..end];
            let members: Vec<char> = match class {
                "upper" => ('A'..='Z').collect(),
                "lower" => ('a'..='z').collect(),
                "alpha" => ('A'..='Z').chain('a'..='z').collect(),
                "digit" => ('0'..='9').collect(),
                "alnum" => ('0'..='9').chain('A'..='Z').chain('a'..='z').collect(),
                "space" => vec![' ', '\t', '\n', '\r', '\x0b', '\x0c'],
                "blank" => vec![' ', '\t'],
                "punct" => (33u8..127)
                    .map(char::from)
                    .filter(|c| c.is_ascii_punctuation())
                    .collect(),
                _ => return None,
            };
            out.extend(members);
            i += 2 + end + 2;
            continue;
        }
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            let (a, b) = (chars[i] as u32, chars[i + 2] as u32);
            if a > b || b - a > 0x1_0000 {
                return None;
            }
            out.extend((a..=b).filter_map(char::from_u32));
            i += 3;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    Some(out)
}

/// `tr [-d] [-s] SET1 [SET2]` applied to `text`.
pub(super) fn tr(text: &str, args: &[&str]) -> Option<String> {
    let mut delete = false;
    let mut squeeze = false;
    let mut sets = vec![];
    for a in args {
        match *a {
            "-d" | "--delete" => delete = true,
            "-s" | "--squeeze-repeats" => squeeze = true,
            "-ds" | "-sd" => {
                delete = true;
                squeeze = true;
            }
            "-c" | "-C" | "--complement" => return None,
            s => sets.push(tr_set(s)?),
        }
    }
    let mut out = String::new();
    match (delete, sets.as_slice()) {
        (true, [del, ..]) => out.extend(text.chars().filter(|c| !del.contains(c))),
        (false, [from, to]) if !to.is_empty() => {
            for c in text.chars() {
                match from.iter().position(|f| *f == c) {
                    Some(i) => out.push(to[i.min(to.len() - 1)]),
                    None => out.push(c),
                }
            }
        }
        (false, [_]) if squeeze => out = text.to_string(),
        _ => return None,
    }
    if squeeze {
        if let Some(set) = sets.last() {
            let mut squeezed = String::new();
            let mut prev: Option<char> = None;
            for c in out.chars() {
                if prev == Some(c) && set.contains(&c) {
                    continue;
                }
                squeezed.push(c);
                prev = Some(c);
            }
            out = squeezed;
        }
    }
    Some(out)
}

/// `sed -e 's/A/B/g' -e 'y/abc/xyz/'` applied to `text` (other sed programs: None).
pub(super) fn sed(text: &str, args: &[&str]) -> Option<String> {
    let mut scripts = vec![];
    let mut extended = false;
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "-e" | "--expression" => {
                scripts.push(*args.get(i + 1)?);
                i += 1;
            }
            "-E" | "-r" | "--regexp-extended" => extended = true,
            "-n" | "--quiet" | "-i" | "-f" => return None,
            s if s.starts_with('-') => {}
            s if scripts.is_empty() => scripts.push(s),
            _ => return None,
        }
        i += 1;
    }
    let mut out = text.to_string();
    for script in scripts {
        for cmd in script.split(['\n', ';']) {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                continue;
            }
            out = sed_command(&out, cmd, extended)?;
        }
    }
    Some(out)
}

fn sed_command(text: &str, cmd: &str, extended: bool) -> Option<String> {
    let mut chars = cmd.chars();
    let op = chars.next()?;
    let delim = chars.next()?;
    let parts: Vec<&str> = cmd[op.len_utf8() + delim.len_utf8()..]
        .split(delim)
        .collect();
    match (op, parts.as_slice()) {
        ('y', [from, to, ..]) => {
            let (from, to): (Vec<char>, Vec<char>) = (from.chars().collect(), to.chars().collect());
            if from.len() != to.len() {
                return None;
            }
            Some(
                text.chars()
                    .map(|c| from.iter().position(|f| *f == c).map_or(c, |i| to[i]))
                    .collect(),
            )
        }
        ('s', [pat, rep, flags, ..]) => {
            let global = flags.contains('g');
            let re = RegexBuilder::new(&sed_regex(pat, extended))
                .case_insensitive(flags.contains('I') || flags.contains('i'))
                .multi_line(true)
                .size_limit(1 << 20)
                .build()
                .ok()?;
            let rep = sed_replacement(rep);
            Some(
                text.lines()
                    .map(|l| {
                        if global {
                            re.replace_all(l, rep.as_str()).into_owned()
                        } else {
                            re.replace(l, rep.as_str()).into_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        _ => None,
    }
}

/// A POSIX basic or extended regular expression as the regex crate reads it.
fn sed_regex(p: &str, extended: bool) -> String {
    let mut out = String::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(n @ ('(' | ')' | '{' | '}' | '+' | '?' | '|')) if !extended => out.push(n),
                Some('n') => out.push_str("\\n"),
                Some('t') => out.push_str("\\t"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            '(' | ')' | '{' | '}' | '+' | '?' | '|' if !extended => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn sed_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut it = r.chars();
    while let Some(c) = it.next() {
        match c {
            '&' => out.push_str("${0}"),
            '$' => out.push_str("$$"),
            '\\' => match it.next() {
                Some(d @ '0'..='9') => out.push_str(&format!("${{{d}}}")),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('&') => out.push('&'),
                Some(o) => out.push(o),
                None => {}
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(base64("cm0gLXJmIC8=").as_deref(), Some("rm -rf /"));
        assert_eq!(base32("OJWSALLSMYQC6===").as_deref(), Some("rm -rf /"));
        assert_eq!(hex("726d202d7266202f", false).as_deref(), Some("rm -rf /"));
        assert_eq!(
            hex("00000000: 726d 202d 7266 202f            rm -rf /", true).as_deref(),
            Some("rm -rf /")
        );
        assert_eq!(escapes(r"\x72\155 -rf /").0, "rm -rf /");
        assert_eq!(
            printf("%s -rf %s", &["rm", "/"]).as_deref(),
            Some("rm -rf /")
        );
        assert_eq!(printf(r"\x72m", &[]).as_deref(), Some("rm"));
        assert_eq!(
            tr("ez -es /", &["a-zA-Z", "n-za-mN-ZA-M"]).as_deref(),
            Some("rm -rf /")
        );
        assert_eq!(tr("r#m -#rf /", &["-d", "#"]).as_deref(), Some("rm -rf /"));
        assert_eq!(sed("rmX-rfX/", &["s/X/ /g"]).as_deref(), Some("rm -rf /"));
        assert_eq!(sed("abc", &["y/abc/rm/"]), None);
        assert_eq!(sed("ab", &["y/ab/rm/"]).as_deref(), Some("rm"));
    }

    #[test]
    fn decoders_do_not_panic_on_odd_input() {
        for s in [
            "\\", "\\x", "\\0777", "[:", "a-", "z-a", "%", "%q", "s", "s/", "y/a/",
        ] {
            let _ = escapes(s);
            let _ = printf(s, &["x"]);
            let _ = tr("abc", &[s, s]);
            let _ = sed("abc", &[s]);
            let _ = hex(s, true);
            let _ = base32(s);
        }
    }
}
