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
        if argv
            .iter()
            .any(|a| a.subs.iter().any(|s| self.mentions_download(s, 0)))
        {
            return Content::Download;
        }
        let name = basename(first.s());
        if self.t.is_downloader(name) {
            return Content::Download;
        }
        let args = words(&argv[1..]);
        let dynamic = argv.iter().any(|a| a.dynamic());
        let taint = |c: &Content| match c {
            Content::Download => Content::Download,
            _ => Content::Unknown,
        };
        match name {
            "echo" => {
                let mut interpret = false;
                let mut newline = true;
                let mut rest = args.as_slice();
                while let Some((f, r)) = rest.split_first() {
                    if f.len() > 1
                        && f.starts_with('-')
                        && f[1..].chars().all(|c| "neE".contains(c))
                    {
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
                Content::Text { text, decoded }
            }
            "printf" => {
                let Some((fmt, rest)) = args.split_first() else {
                    return Content::text("");
                };
                match decode::printf(fmt, rest) {
                    Some(t) => Content::Text {
                        decoded: fmt.contains('\\') || rest.iter().any(|a| a.contains('\\')),
                        text: t,
                    },
                    None => Content::Unknown,
                }
            }
            "cat" | "tee" | "head" | "tail" | "sort" | "uniq" | "iconv" | "tac" | "dd" | "pv"
            | "buffer" | "stdbuf" => {
                let reads_files = args
                    .iter()
                    .any(|a| !a.starts_with('-') && name != "tee" && name != "dd");
                if reads_files && !args.contains(&"-") {
                    return Content::Unknown;
                }
                match upstream {
                    Content::Text { text, decoded } if name == "tac" => Content::Text {
                        text: text.lines().rev().collect::<Vec<_>>().join("\n") + "\n",
                        decoded,
                    },
                    c => c,
                }
            }
            _ if dynamic => taint(&upstream),
            "base64" | "base32" | "basenc" | "openssl" => {
                let decoding = args.iter().any(|a| {
                    matches!(*a, "-d" | "--decode" | "-D" | "-di" | "-id" | "-A" | "-a")
                        || (a.starts_with('-') && !a.starts_with("--") && a.contains('d'))
                });
                let b32 = name == "base32" || args.contains(&"--base32");
                let files = args
                    .iter()
                    .filter(|a| !a.starts_with('-') && !matches!(**a, "enc" | "base64"));
                if !decoding || files.count() > 0 {
                    return taint(&upstream);
                }
                match upstream {
                    Content::Text { text, .. } => {
                        let d = if b32 {
                            decode::base32(text.trim())
                        } else {
                            decode::base64(text.trim())
                        };
                        d.map_or(Content::Unknown, Content::decoded)
                    }
                    c => taint(&c),
                }
            }
            "xxd" if args.iter().any(|a| a.starts_with('-') && a.contains('r')) => {
                let plain = args.iter().any(|a| {
                    *a == "-p"
                        || *a == "-ps"
                        || *a == "-plain"
                        || (a.starts_with('-') && a.contains('p'))
                });
                match upstream {
                    Content::Text { text, .. } => {
                        decode::hex(&text, !plain).map_or(Content::Unknown, Content::decoded)
                    }
                    c => taint(&c),
                }
            }
            "rev" => match upstream {
                Content::Text { text, .. } => Content::decoded(
                    text.lines()
                        .map(|l| l.chars().rev().collect::<String>())
                        .collect::<Vec<_>>()
                        .join("\n")
                        + "\n",
                ),
                c => taint(&c),
            },
            "tr" => match upstream {
                Content::Text { text, .. } => {
                    decode::tr(&text, &args).map_or(Content::Unknown, Content::decoded)
                }
                c => taint(&c),
            },
            "sed" => match upstream {
                Content::Text { text, .. } => {
                    decode::sed(&text, &args).map_or(Content::Unknown, Content::decoded)
                }
                c => taint(&c),
            },
            "which" | "type" | "command" if args.iter().any(|a| !a.starts_with('-')) => {
                let n = args
                    .iter()
                    .rfind(|a| !a.starts_with('-'))
                    .copied()
                    .unwrap_or("");
                Content::text(format!("/usr/bin/{}\n", basename(n)))
            }
            "kubectl" | "oc"
                if args.first() == Some(&"get")
                    && (args.windows(2).any(|w| w == ["-o", "name"])
                        || args.contains(&"-oname")
                        || args.contains(&"--output=name")) =>
            {
                // `kubectl get ns -o name`: one `kind/name` per line.
                let kind = args
                    .get(1)
                    .filter(|k| !k.starts_with('-'))
                    .copied()
                    .unwrap_or("pod");
                Content::text(format!("{kind}/{DYN}\n"))
            }
            "pwd" => match &self.cwd {
                Some(c) => Content::text(format!("{c}\n")),
                None => Content::Unknown,
            },
            n if self.is_interpreter(n) => self.interpreter_output(n, &args, upstream),
            "dirname" | "basename" if !args.is_empty() => {
                let p = args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .copied()
                    .unwrap_or("");
                let t = p.trim_end_matches('/');
                let out = if name == "basename" {
                    basename(t).to_string()
                } else {
                    match t.rfind('/') {
                        Some(0) => "/".to_string(),
                        Some(i) => t[..i].to_string(),
                        None if p.starts_with('/') => "/".to_string(),
                        None => ".".to_string(),
                    }
                };
                Content::text(out + "\n")
            }
            "xargs" if args.is_empty() || args == ["echo"] => match upstream {
                Content::Text { text, decoded } => Content::Text {
                    text: text.split_whitespace().collect::<Vec<_>>().join(" ") + "\n",
                    decoded,
                },
                c => taint(&c),
            },
            _ => taint(&upstream),
        }
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
