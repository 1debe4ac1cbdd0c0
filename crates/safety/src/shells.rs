//! Commands that run text as code: shells (`sh -c`, a script on stdin), `eval`, `source`,
//! `su -c`, `env`, interpreters (`python -c`), `at`, `trap`, `crontab`, `ansible -a`.

use super::content::{Content, Input};
use super::engine::{Arg, Ctx};
use super::expand::ARRAY_SEP;
use super::inline::{self, Effect};
use super::DYN;
use crate::policy::Risk;

impl Ctx {
    /// `sh [options] [-c SCRIPT [NAME ARGS...] | FILE | -s]`.
    pub(super) fn shell(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let mut i = 0;
        while i < args.len() {
            let s = args[i].s();
            let cluster_c = s.starts_with('-')
                && !s.starts_with("--")
                && s.len() > 2
                && s.contains('c')
                && !s.contains('o');
            if s == "-c" || cluster_c {
                match args.get(i + 1) {
                    Some(script) => self.shell_string(script, argv, input, &args[i + 2..]),
                    None => self.add(Risk::Refused, "`-c` without a script", argv),
                }
                return;
            }
            if matches!(s, "-o" | "+o" | "--rcfile" | "--init-file" | "-O" | "+O") {
                i += 2;
                continue;
            }
            if s == "-s" || s == "-" {
                let positional = &args[i + 1..];
                let positional = positional
                    .strip_prefix(&[Arg::literal("--")][..])
                    .unwrap_or(positional);
                self.stdin_script(input, argv, "a shell", positional);
                return;
            }
            if s.starts_with('-') || s.starts_with('+') {
                i += 1;
                continue;
            }
            self.script_file(&args[i], argv, "runs", &args[i + 1..], input);
            return;
        }
        self.stdin_script(input, argv, "a shell", &[]);
    }

    /// A shell reading a script file (`sh FILE`, `source FILE`, `bash <(...)`).
    fn script_file(&mut self, f: &Arg, argv: &[Arg], verb: &str, args: &[Arg], input: &Input) {
        if matches!(f.s(), "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0" | "-") {
            self.stdin_script(input, argv, "a shell", args);
            return;
        }
        if let Some(ps) = &f.procsub {
            match self.sub_content(ps) {
                Content::Download => self.add(
                    Risk::Refused,
                    format!("{verb} a download as a script"),
                    argv,
                ),
                Content::Text { text, decoded } => {
                    if decoded {
                        self.add(Risk::Medium, "runs decoded text as a script", argv);
                    }
                    self.nested_with_args(
                        &text,
                        Input::Outside,
                        &[[f.clone()].as_slice(), args].concat(),
                    );
                }
                Content::Unknown => {
                    if f.subs.iter().any(|s| self.mentions_download(s, 0)) {
                        self.add(
                            Risk::Refused,
                            format!("{verb} a download as a script"),
                            argv,
                        );
                    } else {
                        self.add(
                            Risk::High,
                            format!("{verb} a script produced at run time"),
                            argv,
                        );
                    }
                }
            }
            return;
        }
        if self.is_downloaded(&f.if_empty()) {
            self.add(
                Risk::Refused,
                format!("{verb} {}, a file it just downloaded", f.shown()),
                argv,
            );
            return;
        }
        if let Some(c) = self.file_content(&f.text) {
            let a: Vec<Arg> = [f.clone()]
                .into_iter()
                .chain(args.iter().cloned())
                .collect();
            self.run_file(c, &a, &Input::Outside);
            return;
        }
        self.add(
            Risk::Medium,
            format!("{verb} the script {}", f.shown()),
            argv,
        );
    }

    /// A string that a shell will run (`sh -c STRING`, `eval`, `su -c`, `ssh HOST CMD`).
    pub(super) fn shell_string(&mut self, script: &Arg, argv: &[Arg], input: &Input, args: &[Arg]) {
        if script.subs.iter().any(|s| self.mentions_download(s, 0)) {
            self.add(
                Risk::Refused,
                "runs the output of a download as a script",
                argv,
            );
            return;
        }
        if script.dynamic() {
            self.add(Risk::High, "runs a script computed at run time", argv);
            let guess = script.if_empty();
            if !guess.trim().is_empty() {
                self.nested_with_args(&guess, input.clone(), args);
            }
            return;
        }
        self.nested_with_args(&script.text.replace(ARRAY_SEP, " "), input.clone(), args);
    }

    /// A program reading code from its standard input.
    pub(super) fn stdin_script(&mut self, input: &Input, argv: &[Arg], what: &str, args: &[Arg]) {
        match input {
            Input::Outside => self.add(
                Risk::Medium,
                format!("{what} reading its standard input"),
                argv,
            ),
            Input::Given(Content::Download) => {
                self.add(Risk::Refused, format!("pipes a download into {what}"), argv)
            }
            Input::Given(Content::Text { text, decoded }) => {
                if *decoded {
                    self.add(
                        Risk::Medium,
                        format!("runs decoded text through {what}"),
                        argv,
                    );
                }
                let mut a = vec![argv[0].clone()];
                a.extend(args.iter().cloned());
                self.nested_with_args(text, Input::Outside, &a);
            }
            Input::Given(Content::Unknown) => self.add(
                Risk::High,
                format!("runs text produced at run time through {what}"),
                argv,
            ),
        }
    }

    pub(super) fn eval(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let joined = Arg {
            text: args
                .iter()
                .map(|x| x.text.clone())
                .collect::<Vec<_>>()
                .join(" "),
            subs: args.iter().flat_map(|x| x.subs.clone()).collect(),
            procsub: None,
        };
        let saved = self.positional.clone();
        self.shell_string(&joined, argv, input, &[]);
        self.positional = saved;
    }

    pub(super) fn source(&mut self, argv: &[Arg], input: &Input) {
        match argv.get(1) {
            Some(f) => self.script_file(f, argv, "sources", &argv[2..], input),
            None => self.add(Risk::Low, "source without a file", argv),
        }
    }

    /// `su [-] [USER] -c SCRIPT`, `runuser -u USER -- CMD`, `sg GROUP -c SCRIPT`.
    pub(super) fn su(&mut self, name: &str, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        for (i, a) in args.iter().enumerate() {
            let s = a.s();
            if s == "-c" || s == "--command" || s == "--session-command" {
                if let Some(script) = args.get(i + 1) {
                    self.shell_string(script, argv, input, &[]);
                }
                return;
            }
            if let Some(script) = s.strip_prefix("--command=") {
                let script = Arg {
                    text: script.to_string(),
                    ..a.clone()
                };
                self.shell_string(&script, argv, input, &[]);
                return;
            }
            if s == "--" && name != "su" && i + 1 < args.len() {
                self.command(args[i + 1..].to_vec(), input);
                return;
            }
        }
        if name == "sg" {
            if let Some(script) = args.get(1) {
                self.shell_string(script, argv, input, &[]);
                return;
            }
        }
        self.add(Risk::High, "opens a shell as another user", argv);
        if matches!(input, Input::Given(_)) {
            self.stdin_script(input, argv, "a shell", &[]);
        }
    }

    /// `env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... [CMD ARGS...]`.
    pub(super) fn env(&mut self, argv: &[Arg], input: &Input) {
        let mut i = 1;
        let mut chdir: Option<String> = None;
        while i < argv.len() {
            let s = argv[i].s().to_string();
            if s == "--" {
                i += 1;
                break;
            }
            if s == "-S" || s == "--split-string" || (s.starts_with("-S") && s.len() > 2) {
                let (text, skip) = match s.strip_prefix("-S").filter(|r| !r.is_empty()) {
                    Some(r) => (r.to_string(), 1),
                    None => (argv.get(i + 1).map(|a| a.if_empty()).unwrap_or_default(), 2),
                };
                let mut out: Vec<Arg> = match super::shell::split_words(&text) {
                    Ok(ws) => ws.iter().map(|w| self.expand(w)).collect(),
                    Err(_) => vec![Arg::literal(&text)],
                };
                out.extend(argv[(i + skip).min(argv.len())..].iter().cloned());
                self.command(out, input);
                return;
            }
            if matches!(s.as_str(), "-C" | "--chdir") || s.starts_with("--chdir=") {
                let given = s.strip_prefix("--chdir=").map(String::from);
                let step = if given.is_some() { 1 } else { 2 };
                chdir = given.or_else(|| argv.get(i + 1).map(|a| a.text.clone()));
                i += step;
                continue;
            }
            if matches!(s.as_str(), "-u" | "--unset") {
                i += 2;
                continue;
            }
            if s.starts_with('-') {
                i += 1;
                continue;
            }
            if let Some((k, v)) = s.split_once('=').filter(|(k, _)| !k.is_empty()) {
                let v = Arg {
                    text: v.to_string(),
                    ..argv[i].clone()
                };
                self.check_env_var(k, &v, &argv[i + 1..]);
                // What env runs sees the variable (`env X=/ sh -c 'rm -rf $X'`).
                self.set_var(k, &v);
                i += 1;
                continue;
            }
            break;
        }
        let rest = argv[i.min(argv.len())..].to_vec();
        if rest.is_empty() {
            self.add(Risk::Low, "env prints the environment", argv);
            return;
        }
        // `env -C DIR CMD` runs CMD in DIR.
        let saved = self.cwd.clone();
        if let Some(d) = chdir {
            self.cwd = Some(super::paths::normalize(&self.abs(&d)));
        }
        self.command(rest, input);
        self.cwd = saved;
    }

    pub(super) fn is_interpreter(&self, n: &str) -> bool {
        self.t.interp.interpreters.iter().any(|i| {
            n == i
                || (n.starts_with(i.as_str())
                    && n[i.len()..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
    }

    pub(super) fn interpreter(&mut self, n: &str, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let a: Vec<&str> = args.iter().map(|x| x.s()).collect();
        let python = n.starts_with("python") || n.starts_with("pypy");
        let flags = &self.t.interp.code_flags;
        let code_flag = a.iter().position(|s| {
            flags.iter().any(|f| f == s)
                || (s.starts_with('-')
                    && !s.starts_with("--")
                    && (s.ends_with('e') || s.ends_with('c') || s.ends_with('E'))
                    && s.len() <= 5
                    && !python)
        });
        if python {
            if let Some(i) = a.iter().position(|s| *s == "-m") {
                let module = a.get(i + 1).copied().unwrap_or("");
                if !matches!(module, "pip" | "venv") && !self.t.tools_for(module).is_empty() {
                    // `python -m twine upload`: the module's command line.
                    self.command(args[i + 1..].to_vec(), input);
                    return;
                }
                self.python_module(&a, i, argv);
                return;
            }
        }
        if let Some(i) = code_flag {
            let code = args.get(i + 1).map(|x| x.if_empty()).unwrap_or_default();
            self.inline_code(n, &code, argv);
            return;
        }
        let script = args
            .iter()
            .position(|x| !x.s().starts_with('-') || x.s() == "-");
        let script = script.map(|i| (&args[i], &args[i + 1..]));
        match script {
            Some((s, _)) if s.s() == "-" => self.code_from_stdin(n, input, argv),
            Some((s, rest)) if !self.t.tools_for(super::paths::basename(s.s())).is_empty() => {
                // `python manage.py flush`, `php artisan migrate:fresh`: the script's own
                // command line, as the tables know it.
                let mut v = vec![Arg::literal(super::paths::basename(s.s()))];
                v.extend(rest.iter().cloned());
                self.command(v, input);
            }
            Some((s, _)) => match self.file_content(&s.text) {
                Some(Content::Text { text, .. }) => self.inline_code(n, &text, argv),
                Some(Content::Download) => self.add(
                    Risk::Refused,
                    format!("{n} runs a file it just downloaded"),
                    argv,
                ),
                _ => self.script_file(s, argv, &format!("{n} runs"), &[], input),
            },
            None if matches!(input, Input::Outside) => self.add(
                Risk::Medium,
                format!("{n} reads a program from its standard input"),
                argv,
            ),
            None => self.code_from_stdin(n, input, argv),
        }
    }

    fn python_module(&mut self, a: &[&str], i: usize, argv: &[Arg]) {
        let module = a.get(i + 1).copied().unwrap_or("");
        let (level, reason) = match module {
            "pip" | "venv" | "ensurepip" | "virtualenv" => {
                if a.get(i + 2) == Some(&"uninstall") {
                    (Risk::Medium, "pip uninstalls a package".to_string())
                } else {
                    (Risk::Low, format!("python -m {module}"))
                }
            }
            "json.tool" | "py_compile" | "compileall" | "site" | "pytest" | "unittest"
            | "pydoc" | "timeit" | "platform" | "sysconfig" => {
                (Risk::Low, format!("python -m {module}"))
            }
            "http.server" => (Risk::Medium, "serves files over HTTP".to_string()),
            _ => (Risk::Medium, format!("runs the Python module {module}")),
        };
        self.add(level, reason, argv);
    }

    fn code_from_stdin(&mut self, n: &str, input: &Input, argv: &[Arg]) {
        match input {
            Input::Given(Content::Download) => {
                self.add(Risk::Refused, format!("pipes a download into {n}"), argv)
            }
            Input::Given(Content::Text { text, .. }) => {
                let text = text.clone();
                self.inline_code(n, &text, argv);
            }
            Input::Given(Content::Unknown) => self.add(
                Risk::High,
                format!("runs text produced at run time through {n}"),
                argv,
            ),
            Input::Outside => self.add(
                Risk::Medium,
                format!("{n} reads a program from its standard input"),
                argv,
            ),
        }
    }

    /// Inline code: high at least, refused when what it runs or deletes is.
    pub(super) fn inline_code(&mut self, n: &str, code: &str, argv: &[Arg]) {
        let squashed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let forks = squashed.contains("fork")
            && (squashed.contains("while")
                || squashed.contains("for")
                || squashed.contains("loop")
                || squashed.matches("fork").count() > 1);
        if forks {
            self.add(
                Risk::Refused,
                format!("{n} inline code forks in a loop: a fork bomb"),
                argv,
            );
            return;
        }
        let markers = &self.t.interp.download_markers;
        let downloads = markers.iter().any(|m| code.contains(m.as_str()))
            || self.t.interp.downloaders.iter().any(|d| {
                code.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .any(|w| w == d)
            });
        let runs = [
            "exec(",
            "eval(",
            "system(",
            "popen",
            "spawn",
            "`",
            "Invoke-Expression",
            "iex",
        ]
        .iter()
        .any(|m| code.contains(m));
        let reverse_shell = code.contains("socket")
            && [
                "/bin/sh",
                "/bin/bash",
                "pty.spawn",
                "\"sh\"",
                "'sh'",
                "cmd.exe",
            ]
            .iter()
            .any(|m| code.contains(m));
        if reverse_shell {
            self.add(
                Risk::Refused,
                format!("{n} inline code serves a shell over a network socket"),
                argv,
            );
            return;
        }
        if downloads && runs {
            self.add(
                Risk::Refused,
                format!("{n} inline code runs downloaded code"),
                argv,
            );
            return;
        }
        self.add(
            Risk::High,
            format!("{n} runs inline code that cannot be assessed"),
            argv,
        );
        let backticks = !n.starts_with("node") && !n.starts_with("python");
        for e in inline::effects(code, &self.t.interp, backticks) {
            match e {
                Effect::Script(s) => self.nested(&s, Input::Outside, None),
                Effect::Argv(v) => {
                    let v: Vec<Arg> = v.iter().map(|s| Arg::literal(s)).collect();
                    self.command(v, &Input::Outside);
                }
                Effect::RemoveTree(p) => {
                    let v = ["rm", "-r", "-f", "--", &p].map(Arg::literal).to_vec();
                    self.command(v, &Input::Outside);
                }
            }
        }
    }

    /// `at TIME` / `batch`: the script on standard input runs later.
    pub(super) fn at(&mut self, argv: &[Arg], input: &Input) {
        if argv
            .iter()
            .any(|a| matches!(a.s(), "-l" | "-d" | "-r" | "-c"))
        {
            self.add(Risk::Low, "lists or removes scheduled jobs", argv);
            return;
        }
        if let Some(i) = argv.iter().position(|a| a.s() == "-f") {
            let f = argv.get(i + 1).cloned().unwrap_or_else(|| Arg::literal(""));
            self.script_file(&f, argv, "schedules", &[], &Input::Outside);
            return;
        }
        self.stdin_script(input, argv, "a scheduled job", &[]);
    }

    /// `trap 'CMD' SIGNALS`: CMD runs when a signal (or the exit) comes.
    pub(super) fn trap(&mut self, argv: &[Arg], input: &Input) {
        match argv.get(1) {
            Some(a) if !matches!(a.s(), "-" | "-p" | "-l" | "") && argv.len() > 2 => {
                self.shell_string(a, argv, input, &[]);
            }
            _ => self.add(Risk::Low, "trap lists or resets handlers", argv),
        }
    }

    /// `crontab -` / `crontab` with lines on standard input: each job's command.
    pub(super) fn crontab_lines(&mut self, argv: &[Arg], input: &Input) {
        let reads_stdin = argv[1..].iter().all(|a| a.s().starts_with('-'))
            || argv.iter().skip(1).any(|a| a.s() == "-");
        let Some(text) = input.text().filter(|_| reads_stdin) else {
            return;
        };
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let first = l.split_whitespace().next().unwrap_or("");
            if first.contains('=') && !first.starts_with(['*', '@']) {
                continue;
            }
            let skip = if first.starts_with('@') { 1 } else { 5 };
            let cmd: Vec<&str> = l.split_whitespace().skip(skip).collect();
            if !cmd.is_empty() {
                self.nested(&cmd.join(" "), Input::Outside, None);
            }
        }
    }

    /// `ansible HOSTS -m MODULE -a ARGS`: the module's effect on every host, judged as the
    /// command it amounts to (`-m shell -a CMD` is CMD, `-m file -a 'path=P state=absent'`
    /// is `rm -rf P`, `-m apt -a 'name=N state=absent'` is `apt-get remove N`…).
    pub(super) fn ansible(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let value = |names: &[&str]| -> Option<Arg> {
            args.iter().enumerate().find_map(|(i, a)| {
                names.iter().find_map(|n| match a.s().strip_prefix(n) {
                    Some("") => args.get(i + 1).cloned(),
                    Some(v) => v.strip_prefix('=').map(|v| Arg {
                        text: v.to_string(),
                        ..a.clone()
                    }),
                    None => None,
                })
            })
        };
        let given = value(&["-m", "--module-name"]).map(|m| m.text);
        let module = given.as_deref().unwrap_or("command");
        let m = module.rsplit('.').next().unwrap_or(module);
        let margs = value(&["-a", "--args"]).unwrap_or_else(|| Arg::literal(""));
        if matches!(m, "command" | "shell" | "raw" | "win_shell" | "win_command") {
            if given.is_none() && margs.text.is_empty() {
                self.add(Risk::Low, "ansible lists or pings the hosts", argv);
                return;
            }
            let free: Vec<&str> = margs
                .text
                .split(' ')
                .filter(|w| !FREE_FORM_PARAMS.iter().any(|p| w.starts_with(p)))
                .collect();
            let script = Arg {
                text: free.join(" "),
                ..margs.clone()
            };
            self.add(
                Risk::Low,
                format!("ansible runs a command on the hosts ({m})"),
                argv,
            );
            self.shell_string(&script, argv, input, &[]);
            return;
        }
        let kv: Vec<(&str, &str)> = margs
            .text
            .split_whitespace()
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k, v.trim_matches(['"', '\''])))
            })
            .collect();
        match ansible_equivalent(m, &kv) {
            Some(Equivalent::Argv(v)) => {
                self.add(
                    Risk::Low,
                    format!("ansible runs the {m} module on the hosts"),
                    argv,
                );
                let v: Vec<Arg> = v.iter().map(|s| Arg::literal(s)).collect();
                self.command(v, &Input::Outside);
            }
            Some(Equivalent::Writes(dest)) => self.write_target(&Arg::literal(&dest), true, argv),
            Some(Equivalent::Level(level)) => self.add(
                level,
                format!("ansible runs the {m} module on the hosts"),
                argv,
            ),
            None => self.add(
                Risk::Medium,
                format!("ansible runs the {m} module on the hosts"),
                argv,
            ),
        }
    }
}

/// Parameters of Ansible's command modules that are not part of the command line.
const FREE_FORM_PARAMS: [&str; 6] = [
    "chdir=",
    "creates=",
    "removes=",
    "executable=",
    "warn=",
    "stdin=",
];

/// What an Ansible module amounts to.
enum Equivalent {
    Argv(Vec<String>),
    Writes(String),
    Level(Risk),
}

fn ansible_equivalent(m: &str, kv: &[(&str, &str)]) -> Option<Equivalent> {
    let get = |keys: &[&str]| {
        kv.iter()
            .find(|(k, _)| keys.contains(k))
            .map(|(_, v)| v.to_string())
    };
    let state = get(&["state"]).unwrap_or_default();
    let name = get(&["name", "pkg"]).unwrap_or_else(|| DYN.to_string());
    let argv = |v: &[&str]| Some(Equivalent::Argv(v.iter().map(|s| s.to_string()).collect()));
    match m {
        "file" if state == "absent" => {
            let path = get(&["path", "dest", "name"]).unwrap_or_else(|| DYN.to_string());
            argv(&["rm", "-r", "-f", "--", &path])
        }
        "apt" | "yum" | "dnf" | "package" | "apk" | "zypper" => match state.as_str() {
            "absent" | "removed" => argv(&["apt-get", "remove", &name]),
            "latest" => argv(&["apt-get", "upgrade", &name]),
            _ => argv(&["apt-get", "install", &name]),
        },
        "service" | "systemd" | "systemd_service" => match (state.as_str(), get(&["masked"])) {
            (_, Some(y)) if y == "yes" || y == "true" => argv(&["systemctl", "mask", &name]),
            ("stopped", _) => argv(&["systemctl", "stop", &name]),
            _ => argv(&["systemctl", "restart", &name]),
        },
        "reboot" => argv(&["reboot"]),
        "filesystem" => argv(&["mkfs", &get(&["dev"]).unwrap_or_else(|| DYN.to_string())]),
        "lvol" if state == "absent" => argv(&["lvremove", &name]),
        "user" | "group" => argv(&["usermod", &name]),
        "iptables" | "ufw" | "firewalld" => argv(&["iptables", "-A"]),
        "sysctl" => argv(&["sysctl", "-w", &name]),
        "mount" | "parted" => argv(&[m, &name]),
        "authorized_key" => Some(Equivalent::Writes("~/.ssh/authorized_keys".into())),
        "copy" | "template" | "lineinfile" | "blockinfile" | "replace" | "get_url" => {
            get(&["dest", "path"]).map(Equivalent::Writes)
        }
        "ping" | "setup" | "gather_facts" | "debug" | "stat" | "slurp" | "fetch" => {
            Some(Equivalent::Level(Risk::Low))
        }
        _ => None,
    }
}
