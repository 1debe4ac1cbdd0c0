//! What flows between commands: the text a pipeline stage writes to its standard output,
//! worked out statically (`echo`, `printf`, here-strings, and the decoders), so that what a
//! shell finally reads can be judged as the script it is.

use super::decode;
use super::engine::{Arg, Ctx};
use super::paths::basename;
use super::DYN;

/// What a stream holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Content {
    /// Something fetched from the network.
    Download,
    /// Known text (`DYN` marks parts known only at run time); `decoded` when a decoder or
    /// escapes produced it.
    Text {
        text: String,
        decoded: bool,
    },
    Unknown,
}

impl Content {
    pub fn text(s: impl Into<String>) -> Content {
        Content::Text {
            text: s.into(),
            decoded: false,
        }
    }
    fn decoded(s: String) -> Content {
        Content::Text {
            text: s,
            decoded: true,
        }
    }
}

/// A command's standard input.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Input {
    /// Whatever the caller gives the script (a terminal, nothing): not produced by the script.
    Outside,
    Given(Content),
}

impl Input {
    pub fn text(&self) -> Option<&str> {
        match self {
            Input::Given(Content::Text { text, .. }) => Some(text),
            _ => None,
        }
    }
}

fn words(argv: &[Arg]) -> Vec<&str> {
    argv.iter().map(|a| a.s()).collect()
}

/// What a command that transforms its input gives when the input is not known: a download
/// stays a download (`curl URL | grep x | sh`), anything else is unknown.
fn taint(c: &Content) -> Content {
    match c {
        Content::Download => Content::Download,
        _ => Content::Unknown,
    }
}

fn names_only(args: &[&str]) -> bool {
    args.windows(2).any(|w| w == ["-o", "name"])
        || args.contains(&"-oname")
        || args.contains(&"--output=name")
}

/// What `echo` and `printf` print (run-time parts stay marked).
fn printed(name: &str, args: &[&str]) -> Option<Content> {
    match name {
        "echo" => {
            let mut interpret = false;
            let mut newline = true;
            let mut rest = args;
            while let Some((f, r)) = rest.split_first() {
                if f.len() > 1 && f.starts_with('-') && f[1..].chars().all(|c| "neE".contains(c)) {
                    interpret |= f.contains('e');
                    newline &= !f.contains('n');
                    rest = r;
                } else {
                    break;
                }
            }
            let joined = rest.join(" ");
            let (text, decoded) = if interpret {
                decode::escapes(&joined)
            } else {
                (joined, false)
            };
            let text = if newline { text + "\n" } else { text };
            Some(Content::Text { text, decoded })
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                return Some(Content::text(""));
            };
            Some(match decode::printf(fmt, rest) {
                Some(t) => Content::Text {
                    decoded: fmt.contains('\\') || rest.iter().any(|a| a.contains('\\')),
                    text: t,
                },
                None => Content::Unknown,
            })
        }
        _ => None,
    }
}

/// Commands that pass their input through (`cat`, `tee`, `head`…): unknown when they
/// read files instead.
fn passthrough(name: &str, args: &[&str], upstream: &Content) -> Option<Content> {
    const THROUGH: [&str; 12] = [
        "cat", "tee", "head", "tail", "sort", "uniq", "iconv", "tac", "dd", "pv", "buffer",
        "stdbuf",
    ];
    if !THROUGH.contains(&name) {
        return None;
    }
    let reads_files = args
        .iter()
        .any(|a| !a.starts_with('-') && name != "tee" && name != "dd");
    if reads_files && !args.contains(&"-") {
        return Some(Content::Unknown);
    }
    Some(match upstream {
        Content::Text { text, decoded } if name == "tac" => Content::Text {
            text: text.lines().rev().collect::<Vec<_>>().join("\n") + "\n",
            decoded: *decoded,
        },
        c => c.clone(),
    })
}

/// The decoders and rewriters: base64/base32, `xxd -r`, `rev`, `tr`, `sed`, bare `xargs`.
fn decoded(name: &str, args: &[&str], upstream: &Content) -> Option<Content> {
    let text = match upstream {
        Content::Text { text, .. } => Some(text.as_str()),
        _ => None,
    };
    let via = |f: &dyn Fn(&str) -> Option<String>| -> Content {
        match text {
            Some(t) => f(t).map_or(Content::Unknown, Content::decoded),
            None => taint(upstream),
        }
    };
    Some(match name {
        "base64" | "base32" | "basenc" | "openssl" => {
            let decoding = args.iter().any(|a| {
                matches!(*a, "-d" | "--decode" | "-D")
                    || (a.starts_with('-') && !a.starts_with("--") && a.contains('d'))
            });
            let files = args
                .iter()
                .filter(|a| !a.starts_with('-') && !matches!(**a, "enc" | "base64"))
                .count();
            if !decoding || files > 0 {
                return Some(taint(upstream));
            }
            if name == "base32" || args.contains(&"--base32") {
                via(&|t| decode::base32(t.trim()))
            } else {
                via(&|t| decode::base64(t.trim()))
            }
        }
        "xxd" if args.iter().any(|a| a.starts_with('-') && a.contains('r')) => {
            let plain = args.iter().any(|a| a.starts_with('-') && a.contains('p'));
            via(&|t| decode::hex(t, !plain))
        }
        "rev" => via(&|t| {
            let lines: Vec<String> = t.lines().map(|l| l.chars().rev().collect()).collect();
            Some(lines.join("\n") + "\n")
        }),
        "tr" => via(&|t| decode::tr(t, args)),
        "sed" => via(&|t| decode::sed(t, args)),
        "xargs" if args.is_empty() || args == ["echo"] => match upstream {
            Content::Text { text, decoded } => Content::Text {
                text: text.split_whitespace().collect::<Vec<_>>().join(" ") + "\n",
                decoded: *decoded,
            },
            c => taint(c),
        },
        _ => return None,
    })
}

impl Ctx {
    /// What `argv` writes to its standard output, given its input.
    pub(super) fn output(&self, argv: &[Arg], input: &Input) -> Content {
        let argv = self.peel(argv);
        let Some(first) = argv.first() else {
            return Content::Unknown;
        };
        let upstream = match input {
            Input::Given(c) => c.clone(),
            Input::Outside => Content::Unknown,
        };
        let name = basename(first.s());
        if self.t.is_downloader(name)
            || argv
                .iter()
                .any(|a| a.subs.iter().any(|s| self.mentions_download(s, 0)))
        {
            return Content::Download;
        }
        let args = words(&argv[1..]);
        if let Some(c) = printed(name, &args).or_else(|| passthrough(name, &args, &upstream)) {
            return c;
        }
        if argv.iter().any(|a| a.dynamic()) {
            return taint(&upstream);
        }
        if let Some(c) = decoded(name, &args, &upstream).or_else(|| self.looked_up(name, &args)) {
            return c;
        }
        if self.is_interpreter(name) {
            return self.interpreter_output(name, &args, upstream);
        }
        taint(&upstream)
    }

    /// Paths and names commands print: `pwd`, `which`, `dirname`, `kubectl get -o name`.
    fn looked_up(&self, name: &str, args: &[&str]) -> Option<Content> {
        let operand = args.iter().rfind(|a| !a.starts_with('-')).copied();
        let text = match name {
            "pwd" => format!("{}\n", self.cwd.as_ref()?),
            "which" | "type" | "command" => format!("/usr/bin/{}\n", basename(operand?)),
            "basename" => format!("{}\n", basename(operand?.trim_end_matches('/'))),
            // A new name in the temporary directory (or the one `-p DIR` gives).
            "mktemp" => {
                let dir = args
                    .windows(2)
                    .find(|w| matches!(w[0], "-p" | "--tmpdir"))
                    .map(|w| w[1])
                    .or_else(|| args.iter().find_map(|a| a.strip_prefix("--tmpdir=")))
                    .unwrap_or("/tmp");
                format!("{}/tmp.XXXXXXXXXX\n", dir.trim_end_matches('/'))
            }
            "dirname" => {
                let p = operand?;
                let t = p.trim_end_matches('/');
                match t.rfind('/') {
                    Some(0) => "/\n".to_string(),
                    Some(i) => format!("{}\n", &t[..i]),
                    None if p.starts_with('/') => "/\n".to_string(),
                    None => ".\n".to_string(),
                }
            }
            "kubectl" | "oc" if args.first() == Some(&"get") && names_only(args) => {
                // `kubectl get ns -o name`: one `kind/name` per line.
                let kind = args
                    .get(1)
                    .filter(|k| !k.starts_with('-'))
                    .copied()
                    .unwrap_or("pod");
                format!("{kind}/{DYN}\n")
            }
            _ => return None,
        };
        Some(Content::text(text))
    }

    /// What inline code prints (`python -c 'print("...")'`), or `python -m base64 -d`.
    fn interpreter_output(&self, n: &str, args: &[&str], upstream: Content) -> Content {
        if let Some(i) = args.iter().position(|a| *a == "-m") {
            let decoding = args.iter().any(|a| matches!(*a, "-d" | "--decode"));
            return match (args.get(i + 1), upstream) {
                (Some(&"base64"), Content::Text { text, .. }) if decoding => {
                    decode::base64(text.trim()).map_or(Content::Unknown, Content::decoded)
                }
                (_, Content::Download) => Content::Download,
                _ => Content::Unknown,
            };
        }
        let flags = &self.t.interp.code_flags;
        let code = args
            .iter()
            .position(|a| flags.iter().any(|f| f == a))
            .and_then(|i| args.get(i + 1));
        match code.and_then(|c| super::inline::printed(c, n)) {
            Some(t) => Content::decoded(t),
            None => match upstream {
                Content::Download => Content::Download,
                _ => Content::Unknown,
            },
        }
    }

    /// The argv under wrappers that pass their output through (`sudo`, `env`, `nice`…).
    fn peel(&self, argv: &[Arg]) -> Vec<Arg> {
        let mut v: Vec<Arg> = argv.to_vec();
        for _ in 0..8 {
            let Some(first) = v.first() else { break };
            let name = basename(first.s()).to_string();
            if name == "env" {
                let skip = v[1..]
                    .iter()
                    .take_while(|a| a.s().contains('=') || a.s().starts_with('-'))
                    .count();
                v = v[1 + skip..].to_vec();
                continue;
            }
            if name == "xargs" || name == "parallel" {
                break;
            }
            let entry = super::tables::Entry::new(self.t.tools_for(&name));
            if entry.tools.iter().all(|t| t.family != "wrappers") {
                break;
            }
            let texts: Vec<String> = v[1..].iter().map(|a| a.text.clone()).collect();
            match entry.inner(&texts).map(|m| m.cmd) {
                Some(super::tables::InnerCmd::Argv(start)) => v = v[1 + start..].to_vec(),
                _ => break,
            }
        }
        v
    }
}

/// Text with run-time parts marked, as a script the reader can parse: each unknown part
/// becomes a variable nobody sets.
pub(super) fn as_script(text: &str) -> String {
    text.replace(DYN, "${__pipeguard_unknown}")
}
