//! Turning raw log bytes into the text a person sees: ANSI escape sequences, carriage-return
//! overwrites, GitHub's per-line timestamps and GitLab/Travis section markers removed.

use memchr::memchr;

/// Copy `src` into `dst` without ANSI escape sequences (CSI, OSC and two-byte escapes).
/// Newlines are never removed, so line numbers are unchanged.
pub fn strip_ansi_into(src: &[u8], dst: &mut Vec<u8>) {
    dst.clear();
    dst.reserve(src.len());
    let mut i = 0;
    while let Some(off) = memchr(0x1b, &src[i..]) {
        let esc = i + off;
        dst.extend_from_slice(&src[i..esc]);
        i = skip_escape(src, esc);
    }
    dst.extend_from_slice(&src[i..]);
}

/// Index just after the escape sequence that starts at `esc` (which holds 0x1b).
fn skip_escape(s: &[u8], esc: usize) -> usize {
    let n = s.len();
    let mut j = esc + 1;
    if j >= n {
        return n;
    }
    match s[j] {
        b'[' => {
            j += 1;
            // Parameter and intermediate bytes, then one final byte; stop at a newline so a
            // broken sequence never swallows a line boundary.
            while j < n && (0x20..=0x3f).contains(&s[j]) {
                j += 1;
            }
            if j < n && (0x40..=0x7e).contains(&s[j]) {
                j + 1
            } else {
                j
            }
        }
        b']' => {
            // OSC: up to BEL or ESC \ (or end of line).
            j += 1;
            while j < n && s[j] != 0x07 && s[j] != b'\n' {
                if s[j] == 0x1b && j + 1 < n && s[j + 1] == b'\\' {
                    return j + 2;
                }
                j += 1;
            }
            if j < n && s[j] == 0x07 {
                j + 1
            } else {
                j
            }
        }
        b'(' | b')' => (j + 2).min(n),
        0x40..=0x5f => j + 1,
        _ => j,
    }
}

/// Strip ANSI from a single string (used where text did not come through the scanner).
pub fn strip_ansi(s: &str) -> String {
    if !s.contains('\x1b') {
        return s.to_string();
    }
    let mut out = Vec::new();
    strip_ansi_into(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// Length of a leading GitHub Actions timestamp (`2024-01-01T00:00:00.0000000Z `), or 0.
pub fn timestamp_prefix(s: &[u8]) -> usize {
    if s.len() < 21 {
        return 0;
    }
    let shape = is_digit(s[0])
        && is_digit(s[1])
        && is_digit(s[2])
        && is_digit(s[3])
        && s[4] == b'-'
        && is_digit(s[5])
        && is_digit(s[6])
        && s[7] == b'-'
        && is_digit(s[8])
        && is_digit(s[9])
        && s[10] == b'T'
        && is_digit(s[11])
        && is_digit(s[12])
        && s[13] == b':';
    if !shape {
        return 0;
    }
    let mut j = 14;
    while j < s.len() && (is_digit(s[j]) || s[j] == b':' || s[j] == b'.') {
        j += 1;
    }
    if j < s.len() && s[j] == b'Z' {
        j += 1;
        if j < s.len() && s[j] == b' ' {
            j += 1;
        }
        return j;
    }
    0
}

/// Length of a leading section marker (`section_start:1700000000:name[collapsed=true]`,
/// `travis_fold:start:x`, `travis_time:end:x:...`), or 0.
fn marker_prefix(s: &[u8]) -> usize {
    for p in [
        &b"section_start:"[..],
        b"section_end:",
        b"travis_fold:",
        b"travis_time:",
    ] {
        if s.starts_with(p) {
            let mut j = p.len();
            while j < s.len() && !s[j].is_ascii_whitespace() {
                // A Travis timing marker ends with its duration's digits; text may follow.
                if s[j..].starts_with(b"duration=") {
                    j += b"duration=".len();
                    while j < s.len() && s[j].is_ascii_digit() {
                        j += 1;
                    }
                    return j;
                }
                j += 1;
            }
            return j;
        }
    }
    0
}

/// A line's bytes as `clean_line` would make them, borrowed when nothing needs removing (the
/// common case, which costs no allocation in the hot loop).
pub fn clean_bytes(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut s = raw;
    while let Some((&last, rest)) = s.split_last() {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    let s = &s[timestamp_prefix(s)..];
    if memchr(b'\r', s).is_none() && marker_prefix(s) == 0 {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(clean_line(raw).into_bytes())
    }
}

/// Clean one line (already free of ANSI escapes) into displayable text.
pub fn clean_line(raw: &[u8]) -> String {
    let mut s = raw;
    while let Some((&last, rest)) = s.split_last() {
        if last == b'\r' || last == b'\n' {
            s = rest;
        } else {
            break;
        }
    }
    let ts = timestamp_prefix(s);
    s = &s[ts..];
    // A carriage return overwrites the line on a terminal: keep the last non-empty segment
    // that is not just a section marker.
    if memchr(b'\r', s).is_some() {
        let mut pick: &[u8] = &[];
        for seg in s.split(|&b| b == b'\r') {
            let m = marker_prefix(seg);
            let rest = &seg[m..];
            if !rest.iter().all(|b| b.is_ascii_whitespace()) {
                pick = rest;
            }
        }
        s = pick;
    } else {
        let m = marker_prefix(s);
        s = &s[m..];
    }
    let ts2 = timestamp_prefix(s);
    s = &s[ts2..];
    let text = String::from_utf8_lossy(s);
    let trimmed = text.trim_end();
    trimmed.to_string()
}

/// Truncate to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_go_newlines_stay() {
        let mut out = Vec::new();
        strip_ansi_into(
            b"\x1b[0;31merror\x1b[0m: x\n\x1b]0;title\x07ok\x1b(B\n",
            &mut out,
        );
        assert_eq!(out, b"error: x\nok\n");
    }

    #[test]
    fn gitlab_section_markers_and_cr_are_removed() {
        let mut ansi_free = Vec::new();
        strip_ansi_into(
            b"section_start:1657042002:resolve_secrets\r\x1b[0K\x1b[0K\x1b[36;1mResolving secrets\x1b[0;m\r",
            &mut ansi_free,
        );
        assert_eq!(clean_line(&ansi_free), "Resolving secrets");
        assert_eq!(clean_line(b"section_end:1657042002:step_script\r"), "");
        assert_eq!(
            clean_line(
                b"travis_time:end:0b:start=1,finish=2,duration=3The command \"x\" exited with 1."
            ),
            "The command \"x\" exited with 1."
        );
        assert_eq!(
            clean_line(b"progress 10%\rprogress 100%\r\n"),
            "progress 100%"
        );
    }

    #[test]
    fn github_timestamps_are_removed() {
        assert_eq!(
            clean_line(
                b"2024-01-01T00:00:00.0000000Z ##[error]Process completed with exit code 1."
            ),
            "##[error]Process completed with exit code 1."
        );
        assert_eq!(
            clean_line(b"2024-01-01 not a stamp"),
            "2024-01-01 not a stamp"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé".into(), 3), "é…");
        assert_eq!(truncate("abc".into(), 5), "abc");
    }
}
