//! The assessment engine: runs a parsed script in the imagination, one command at a time,
//! with what each command reads on its standard input, and judges every command it would
//! run — including those run inside other commands (`sudo`, `sh -c`, `kubectl exec`,
//! `xargs`, functions) — by code for the commands whose effect depends on paths and by the
//! rule tables for the rest.

use super::content::{as_script, Content, Input};
use super::expand::ARRAY_SEP;
use super::paths::{basename, has_glob, normalize};
use super::shell::{self, Pipeline, Script, SimpleCommand};
use super::tables::{has_flag, Entry, InnerCmd, InnerMatch, Tables};
use super::{Finding, DYN, TMP};
use crate::policy::Risk;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Scripts nested deeper than this (`sh -c "sh -c \"...\""`) are not read further.
const MAX_DEPTH: u32 = 8;
/// Commands wrapped in one another deeper than this (`sudo sudo sudo ...`).
const MAX_COMMAND_DEPTH: u32 = 48;
/// The most commands one assessment looks at (function calls and loops multiply them).
const MAX_STEPS: u32 = 4000;
/// The most values a loop variable is tried with.
const MAX_CHOICES: usize = 16;
/// Loop variables tried value by value in one pipeline; further ones are left unknown.
const MAX_LOOP_VARS: usize = 2;
/// Longer scripts are not read (commands pipeguard runs are a few lines).
const MAX_SCRIPT: usize = 256 * 1024;
/// Longer variable values are taken as unknown.
const MAX_VALUE: usize = 64 * 1024;

/// One expanded argument.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Arg {
    /// The value, with `DYN` where an unknown expansion stands and `~` for a home directory.
    pub text: String,
    /// Scripts run by substitutions inside the word.
    pub subs: Vec<String>,
    /// The script of a `<(...)` the argument names.
    pub procsub: Option<String>,
}

impl Arg {
    pub fn literal(s: &str) -> Arg {
        Arg {
            text: s.to_string(),
            subs: vec![],
            procsub: None,
        }
    }
    pub fn dynamic(&self) -> bool {
        self.text.contains(DYN)
    }
    /// The value if every unknown expansion turned out empty (the classic `rm -rf "$DIR/"*`).
    pub fn if_empty(&self) -> String {
        self.text.replace([DYN, TMP], "")
    }
    pub fn shown(&self) -> String {
        self.text
            .replace(&format!("{DYN}{TMP}"), "$RUN_DIR")
            .replace(DYN, "$?")
            .replace(ARRAY_SEP, " ")
    }
    /// The path below the run's temporary or work directory (`$TMPDIR/x` gives `/x`), when that is
    /// where the argument points and nothing else in it is unknown.
    pub fn below_temp(&self) -> Option<&str> {
        let rest = self.text.strip_prefix(DYN)?.strip_prefix(TMP)?;
        (!rest.contains(DYN) && !rest.split('/').any(|c| c == "..")).then_some(rest)
    }
    pub fn s(&self) -> &str {
        &self.text
    }
}

pub(super) struct Ctx {
    pub t: &'static Tables,
    pub vars: HashMap<String, Vec<String>>,
    /// Loop variables and the values they take.
    pub choices: HashMap<String, Vec<String>>,
    pub functions: HashMap<String, Rc<Script>>,
    called: HashSet<String>,
    pub aliases: HashMap<String, String>,
    pub downloaded: Vec<String>,
    /// What the script wrote into files, by path, for when it runs or sources them.
    pub files: HashMap<String, Content>,
    /// The working directory, when a `cd` made it known.
    pub cwd: Option<String>,
    /// Plan files saved by `terraform plan -destroy -out FILE`.
    pub destroy_plans: HashSet<String>,
    pub findings: Vec<Finding>,
    pub depth: u32,
    /// `$1...` of the current script or function, when known.
    pub positional: Option<Vec<String>>,
    pub arg0: Option<String>,
    /// What the current script reads on its standard input.
    pub stdin: Input,
    /// While above zero, expansions are evaluated without judging anything.
    pub quiet: u32,
    pub expansion_depth: u32,
    /// `>(...)` scripts met while expanding the current command.
    pub pending_out: Vec<String>,
    /// The command whose output the current one reads through a pipe, for `xargs`.
    producer: Option<String>,
    steps: u32,
    command_depth: u32,
    call_stack: Vec<String>,
    /// `mentions_download` by script: the same substitution is asked about many times.
    download_memo: std::cell::RefCell<HashMap<String, bool>>,
}

/// What a nested scope saves of its parent.
struct Scope {
    vars: HashMap<String, Vec<String>>,
    choices: HashMap<String, Vec<String>>,
    functions: HashMap<String, Rc<Script>>,
    aliases: HashMap<String, String>,
    positional: Option<Vec<String>>,
    arg0: Option<String>,
    stdin: Input,
    cwd: Option<String>,
}

impl Ctx {
    pub fn new(t: &'static Tables) -> Ctx {
        Ctx {
            t,
            vars: HashMap::new(),
            choices: HashMap::new(),
            functions: HashMap::new(),
            called: HashSet::new(),
            aliases: HashMap::new(),
            downloaded: vec![],
            files: HashMap::new(),
            cwd: None,
            destroy_plans: HashSet::new(),
            findings: vec![],
            depth: 0,
            positional: None,
            arg0: None,
            stdin: Input::Outside,
            quiet: 0,
            expansion_depth: 0,
            pending_out: vec![],
            producer: None,
            steps: 0,
            command_depth: 0,
            call_stack: vec![],
            download_memo: Default::default(),
        }
    }

    pub fn add(&mut self, level: Risk, reason: impl Into<String>, argv: &[Arg]) {
        if self.quiet > 0 {
            return;
        }
        let command = shell::join(&argv.iter().map(Arg::shown).collect::<Vec<_>>());
        self.findings.push(Finding {
            level,
            reason: reason.into(),
            command,
        });
    }

    /// Run a script in the current scope.
    pub fn script(&mut self, src: &str) {
        if src.len() > MAX_SCRIPT {
            self.add(
                Risk::High,
                format!("a script of {} bytes is too long to assess", src.len()),
                &[Arg::literal(&src.chars().take(80).collect::<String>())],
            );
            return;
        }
        if self.depth > MAX_DEPTH {
            self.add(
                Risk::High,
                "scripts nested too deeply to assess",
                &[Arg::literal(src)],
            );
            return;
        }
        match shell::parse(src) {
            Ok(s) => self.run(&s),
            Err(e) => self.add(
                Risk::Refused,
                format!("cannot be parsed ({e}), so it cannot be assessed"),
                &[Arg::literal(src)],
            ),
        }
    }

    fn run(&mut self, s: &Script) {
        if s.endless_background_loops > 0 {
            self.add(
                Risk::Refused,
                "starts background jobs in an endless loop: a fork bomb",
                &[Arg::literal("while true; do ... & done")],
            );
        }
        for f in &s.functions {
            if f.recursive {
                self.add(
                    Risk::Refused,
                    format!(
                        "defines a function `{}` that calls itself: a fork bomb",
                        f.name
                    ),
                    &[Arg::literal(&f.name)],
                );
            }
            self.functions
                .insert(f.name.clone(), Rc::new(f.body.clone()));
        }
        for p in &s.pipelines {
            self.pipeline(p);
        }
        // A function never called here may still be called by whatever runs next.
        for f in &s.functions {
            if !f.recursive && !self.called.contains(&f.name) {
                self.called.insert(f.name.clone());
                self.call_function(&f.name, &[], &Input::Outside);
            }
        }
    }

    fn save(&self) -> Scope {
        Scope {
            vars: self.vars.clone(),
            choices: self.choices.clone(),
            functions: self.functions.clone(),
            aliases: self.aliases.clone(),
            positional: self.positional.clone(),
            arg0: self.arg0.clone(),
            stdin: self.stdin.clone(),
            cwd: self.cwd.clone(),
        }
    }

    fn restore(&mut self, s: Scope) {
        self.vars = s.vars;
        self.choices = s.choices;
        self.functions = s.functions;
        self.aliases = s.aliases;
        self.positional = s.positional;
        self.arg0 = s.arg0;
        self.stdin = s.stdin;
        self.cwd = s.cwd;
    }

    /// Assess a script run by another command (`sh -c`, `$(...)`, a decoded payload) in a
    /// scope of its own that still knows this one's variables and functions.
    pub fn nested(&mut self, src: &str, input: Input, positional: Option<Vec<String>>) {
        if self.quiet > 0 {
            return;
        }
        let scope = self.save();
        self.depth += 1;
        self.stdin = input;
        if positional.is_some() {
            self.positional = positional;
        }
        self.script(&as_script(src));
        self.depth -= 1;
        self.restore(scope);
    }

    /// Like [`Ctx::nested`] with `$0` set too (`sh -c SCRIPT NAME ARGS...`).
    pub fn nested_with_args(&mut self, src: &str, input: Input, args: &[Arg]) {
        let mut it = args.iter().map(|a| a.text.clone());
        let arg0 = it.next();
        let rest: Vec<String> = it.collect();
        let saved = self.arg0.clone();
        if arg0.is_some() {
            self.arg0 = arg0;
        }
        self.nested(src, input, Some(rest));
        self.arg0 = saved;
    }

    pub fn call_function(&mut self, name: &str, args: &[Arg], input: &Input) {
        let Some(body) = self.functions.get(name).cloned() else {
            return;
        };
        self.called.insert(name.to_string());
        if self.call_stack.iter().any(|n| n == name) || self.depth > MAX_DEPTH {
            return;
        }
        let scope = self.save();
        self.call_stack.push(name.to_string());
        self.depth += 1;
        self.stdin = input.clone();
        // Without arguments (or never called here) `$1...` are taken as unknown.
        self.positional = if args.is_empty() {
            None
        } else {
            Some(args.iter().map(|a| a.text.clone()).collect())
        };
        self.run(&body);
        self.depth -= 1;
        self.call_stack.pop();
        let vars_after = std::mem::take(&mut self.vars);
        self.restore(scope);
        // Functions share the shell's variables: what the call set stays set.
        for (k, v) in vars_after {
            self.vars.entry(k).or_insert(v);
        }
    }

    /// Run a pipeline once per value of each loop variable it uses.
    fn pipeline(&mut self, p: &Pipeline) {
        let used: Vec<String> = self
            .choices
            .keys()
            .filter(|k| pipeline_mentions(p, k))
            .cloned()
            .collect();
        let Some(var) = used.first() else {
            self.pipeline_once(p);
            return;
        };
        if used.len() > MAX_LOOP_VARS {
            let saved: Vec<(String, Vec<String>)> = used[MAX_LOOP_VARS..]
                .iter()
                .filter_map(|k| self.choices.remove_entry(k))
                .collect();
            for (k, _) in &saved {
                self.vars.insert(k.clone(), vec![DYN.to_string()]);
            }
            self.pipeline(p);
            for (k, v) in saved {
                self.vars.remove(&k);
                self.choices.insert(k, v);
            }
            return;
        }
        let values = self.choices.get(var).cloned().unwrap_or_default();
        let saved = self.choices.remove(var);
        for v in values.into_iter().take(MAX_CHOICES) {
            self.vars.insert(var.clone(), vec![v]);
            self.pipeline(p);
        }
        self.vars.remove(var);
        if let Some(s) = saved {
            self.choices.insert(var.clone(), s);
        }
    }

    fn pipeline_once(&mut self, p: &Pipeline) {
        let mut prev: Option<Content> = None;
        for (i, c) in p.commands.iter().enumerate() {
            if let Some(var) = &c.for_var {
                self.bind_loop(var, c);
                continue;
            }
            let argv: Vec<Arg> = c.words.iter().flat_map(|w| self.expand_fields(w)).collect();
            if is_arithmetic(c) {
                // `(( n++ ))`: expanding it judged any `$(...)` inside; nothing else runs.
                prev = Some(Content::text(""));
                continue;
            }
            let env = self.assignments(c, &argv);
            let input = self.input_for(c, i, prev.take());
            self.redirects(c, &argv);
            let outs = std::mem::take(&mut self.pending_out);
            self.producer = (i > 0).then(|| shown_line(&p.commands[i - 1].words));
            self.command_with_env(env, argv.clone(), &input);
            self.producer = None;
            let out = self.output(&argv, &input);
            for s in outs {
                self.nested(&s, Input::Given(out.clone()), None);
            }
            self.record_writes(c, &argv, &out);
            prev = Some(out);
        }
    }

    fn bind_loop(&mut self, var: &str, c: &SimpleCommand) {
        let values: Vec<String> = c
            .words
            .iter()
            .flat_map(|w| self.expand_fields(w))
            .map(|a| a.text)
            .collect();
        self.vars.remove(var);
        self.choices.remove(var);
        match values.len() {
            0 => {}
            1 => {
                self.vars.insert(var.to_string(), values);
            }
            _ => {
                self.choices.insert(var.to_string(), values);
            }
        }
    }

    /// `NAME=value` prefixes: variables when alone, the command's environment otherwise.
    /// `NAME=value` words: shell variables when alone; otherwise the command's environment,
    /// returned so that what the command runs sees them (`X=/ sh -c 'rm -rf $X'`).
    fn assignments(&mut self, c: &SimpleCommand, argv: &[Arg]) -> Vec<(String, Arg)> {
        let mut env = vec![];
        for (name, value) in &c.assigns {
            let v = self.expand(value);
            self.check_env_var(name, &v, argv);
            if argv.is_empty() {
                self.set_var(name, &v);
            } else {
                env.push((name.clone(), v));
            }
        }
        env
    }

    /// Run `argv` with `env` set as variables for what it runs, then restore them.
    fn command_with_env(&mut self, env: Vec<(String, Arg)>, argv: Vec<Arg>, input: &Input) {
        let saved: Vec<(String, Option<Vec<String>>)> = env
            .iter()
            .map(|(k, _)| (k.clone(), self.vars.get(k).cloned()))
            .collect();
        for (k, v) in &env {
            self.set_var(k, v);
        }
        self.command(argv, input);
        for (k, v) in saved {
            match v {
                Some(v) => self.vars.insert(k, v),
                None => self.vars.remove(&k),
            };
        }
    }

    pub fn set_var(&mut self, name: &str, v: &Arg) {
        self.choices.remove(name);
        if v.text.len() > MAX_VALUE {
            // `x=$x$x` doubled forty times: not worth holding.
            self.vars.insert(name.to_string(), vec![DYN.to_string()]);
            return;
        }
        // A value with run-time parts keeps them marked (`X=${X:-/}` is `$?/`).
        if v.text.contains(ARRAY_SEP) {
            let items: Vec<String> = v.text.split(ARRAY_SEP).map(String::from).collect();
            self.vars.insert(name.to_string(), items);
        } else {
            self.vars.insert(name.to_string(), vec![v.text.clone()]);
        }
    }

    /// A variable that programs run or load (`GIT_SSH_COMMAND`, `LD_PRELOAD`).
    pub fn check_env_var(&mut self, name: &str, v: &Arg, argv: &[Arg]) {
        let shown: Vec<Arg> = [Arg::literal(&format!("{name}={}", v.shown()))]
            .into_iter()
            .chain(argv.iter().cloned())
            .collect();
        if self.t.env.script_vars.iter().any(|s| s == name) {
            self.shell_string(v, &shown, &Input::Outside, &[]);
        } else if name.starts_with("BASH_FUNC_") {
            // An exported function's body (`BASH_FUNC_ls%%=() { ...; }`).
            self.shell_string(v, &shown, &Input::Outside, &[]);
        } else if self.t.env.high_vars.iter().any(|s| s == name) {
            self.add(
                Risk::High,
                format!("{name} loads code into what runs next"),
                &shown,
            );
        }
    }

    fn input_for(&mut self, c: &SimpleCommand, i: usize, prev: Option<Content>) -> Input {
        for r in &c.redirects {
            if let Some(body) = &r.heredoc {
                let text = if r.heredoc_expands {
                    match shell::expanding_text(body) {
                        Ok(w) => self.expand(&w).text,
                        Err(_) => body.clone(),
                    }
                } else {
                    body.clone()
                };
                return Input::Given(Content::text(text));
            }
            match r.op.as_str() {
                "<<<" => {
                    let t = self.expand(&r.target);
                    return Input::Given(Content::text(t.text + "\n"));
                }
                "<" => {
                    let t = self.expand(&r.target);
                    let p = t.if_empty();
                    return Input::Given(if normalize(&p) == "/dev/null" {
                        Content::text("")
                    } else if self.is_downloaded(&p) {
                        Content::Download
                    } else if let Some(s) = &t.procsub {
                        self.sub_content(s)
                    } else {
                        Content::Unknown
                    });
                }
                _ => {}
            }
        }
        match (i, prev) {
            (0, _) => self.stdin.clone(),
            (_, Some(c)) => Input::Given(c),
            (_, None) => Input::Given(Content::Unknown),
        }
    }

    fn redirects(&mut self, c: &SimpleCommand, argv: &[Arg]) {
        for r in &c.redirects {
            if !r.writes() {
                continue;
            }
            let t = self.expand(&r.target);
            if t.text == "/dev/fd/63" && !t.subs.is_empty() {
                continue;
            }
            let shown: Vec<Arg> = argv
                .iter()
                .cloned()
                .chain([Arg::literal(&format!("{} {}", r.op, t.shown()))])
                .collect();
            self.write_target(&t, r.truncates(), &shown);
        }
    }

    pub fn is_downloaded(&self, p: &str) -> bool {
        let p = self.abs(p);
        self.downloaded
            .iter()
            .any(|d| normalize(&self.abs(d)) == normalize(&p))
            || matches!(self.files.get(&self.file_key(&p)), Some(Content::Download))
    }

    /// An argument whose path is resolved against the known working directory.
    pub fn abs_arg(&self, a: &Arg) -> Arg {
        Arg {
            text: self.abs(&a.text),
            ..a.clone()
        }
    }

    /// A path resolved against the known working directory.
    pub fn abs(&self, p: &str) -> String {
        match &self.cwd {
            Some(cwd) if !p.starts_with('/') && !p.starts_with('~') && !p.is_empty() => {
                let base = cwd.trim_end_matches('/');
                let rel = p.strip_prefix("./").unwrap_or(p);
                match (rel, base) {
                    (".", "") => "/".to_string(),
                    (".", b) => b.to_string(),
                    (r, b) => format!("{b}/{r}"),
                }
            }
            _ => p.to_string(),
        }
    }

    fn file_key(&self, p: &str) -> String {
        let a = self.abs(p);
        if a.starts_with('/') {
            normalize(&a)
        } else {
            a.trim_start_matches("./").to_string()
        }
    }

    /// What a written file holds, when the script wrote it.
    pub fn file_content(&self, p: &str) -> Option<Content> {
        self.files.get(&self.file_key(p)).cloned()
    }

    /// Remember what `> FILE`, `>> FILE` and `tee FILE` put into files, and that a
    /// downloader's output redirected to a file is a download.
    fn record_writes(&mut self, c: &SimpleCommand, argv: &[Arg], out: &Content) {
        let downloader = argv
            .first()
            .is_some_and(|a| self.t.is_downloader(basename(a.s())));
        for r in &c.redirects {
            if !r.writes() || matches!(r.op.as_str(), "<>") {
                continue;
            }
            let t = self.expand(&r.target);
            if t.dynamic() || t.procsub.is_some() {
                continue;
            }
            let key = self.file_key(&t.text);
            let content = if downloader {
                Content::Download
            } else {
                out.clone()
            };
            let merged = match (r.op.as_str(), self.files.get(&key), &content) {
                (
                    ">>",
                    Some(Content::Text {
                        text: a,
                        decoded: d,
                    }),
                    Content::Text {
                        text: b,
                        decoded: e,
                    },
                ) => Content::Text {
                    text: format!("{a}{b}"),
                    decoded: *d || *e,
                },
                _ => content,
            };
            self.files.insert(key, merged);
        }
    }

    /// Assess one command after expansion.
    pub fn command(&mut self, argv: Vec<Arg>, input: &Input) {
        if argv.is_empty() {
            return;
        }
        self.steps += 1;
        if self.steps == MAX_STEPS {
            self.add(Risk::High, "too many commands to assess them all", &argv);
        }
        if self.steps >= MAX_STEPS {
            return;
        }
        if self.command_depth >= MAX_COMMAND_DEPTH {
            self.add(Risk::High, "commands wrapped too deeply to assess", &argv);
            return;
        }
        self.command_depth += 1;
        self.command_inner(argv, input);
        self.command_depth -= 1;
    }

    fn command_inner(&mut self, mut argv: Vec<Arg>, input: &Input) {
        argv = self.expand_alias(argv);
        let Some(first) = argv.first().cloned() else {
            return;
        };
        if first.dynamic() {
            self.add(
                Risk::High,
                "the command name is computed at run time",
                &argv,
            );
            let guess = first.if_empty();
            let shell_like = argv.get(1).is_some_and(|a| {
                let s = a.s();
                s.starts_with('-') && !s.starts_with("--") && s.contains('c')
            });
            if !guess.is_empty() {
                let mut g = argv.clone();
                g[0] = Arg::literal(&guess);
                self.command(g, input);
            } else if shell_like {
                // `$SHELL -c TEXT`: whatever the shell, TEXT is run.
                let mut g = argv.clone();
                g[0] = Arg::literal("sh");
                self.command(g, input);
            } else if argv.len() > 1 {
                // `$x -rf /` with x empty runs `-rf /`: the guess is the rest.
                self.command(argv[1..].to_vec(), input);
            }
            return;
        }
        let full = first.s().to_string();
        if self.is_downloaded(&full) {
            self.add(
                Risk::Refused,
                format!("runs {full}, a file it just downloaded"),
                &argv,
            );
            return;
        }
        if full.contains('/') {
            if let Some(c) = self.file_content(&full) {
                self.run_file(c, &argv, input);
                return;
            }
        }
        let name = basename(&full).to_string();
        let pattern =
            name.contains(['*', '?']) || (name.contains('[') && name.contains(']') && name != "[[");
        if pattern && has_glob(&name) {
            self.globbed_command(&name, &argv, input);
            return;
        }
        if self.functions.contains_key(&name) {
            self.call_function(&name, &argv[1..], input);
            return;
        }
        if self.handle(&name, &argv, input) {
            return;
        }
        let entry = Entry::new(self.t.tools_for(&name));
        if entry.is_empty() {
            self.add(
                Risk::Medium,
                format!("the effects of `{name}` are not known to pipeguard"),
                &argv,
            );
            return;
        }
        self.run_tool(&name, &entry, &argv, input);
    }

    /// Run a file whose content the script itself wrote.
    pub fn run_file(&mut self, c: Content, argv: &[Arg], input: &Input) {
        match c {
            Content::Download => self.add(
                Risk::Refused,
                format!("runs {}, a file it just downloaded", argv[0].shown()),
                argv,
            ),
            Content::Text { text, decoded } => {
                if decoded {
                    self.add(Risk::Medium, "runs a file of decoded text", argv);
                }
                self.nested_with_args(&text, input.clone(), argv);
            }
            Content::Unknown => self.add(
                Risk::High,
                format!("runs {}, written at run time", argv[0].shown()),
                argv,
            ),
        }
    }

    fn expand_alias(&mut self, mut argv: Vec<Arg>) -> Vec<Arg> {
        let mut seen = HashSet::new();
        while let Some(value) = argv.first().and_then(|a| self.aliases.get(a.s())).cloned() {
            if !seen.insert(argv[0].text.clone()) || seen.len() > 8 {
                break;
            }
            let words = match shell::split_words(&value) {
                Ok(ws) => ws.iter().flat_map(|w| self.expand_fields(w)).collect(),
                Err(_) => vec![Arg::literal(&value)],
            };
            argv = words.into_iter().chain(argv.into_iter().skip(1)).collect();
        }
        argv
    }

    /// `/???/r? -rf /`: a command name written as a pattern runs whatever matches it.
    fn globbed_command(&mut self, pattern: &str, argv: &[Arg], input: &Input) {
        self.add(
            Risk::High,
            format!("the command name is a pattern ({pattern})"),
            argv,
        );
        let matcher = crate::glob::Pattern::shell(pattern);
        let mut names: Vec<&str> = self
            .t
            .known_names()
            .chain(super::commands::HANDLED.iter().copied())
            .filter(|n| matcher.is_match(n))
            .collect();
        names.sort_unstable();
        names.dedup();
        for n in names.into_iter().take(16) {
            let mut g = argv.to_vec();
            g[0] = Arg::literal(n);
            self.command(g, input);
        }
    }

    /// A command the tables describe: its own rules, then any command it runs.
    fn run_tool(&mut self, name: &str, entry: &Entry, argv: &[Arg], input: &Input) {
        let texts: Vec<String> = argv[1..].iter().map(|a| a.text.clone()).collect();
        let inner = entry.inner(&texts);
        let outer_end = inner.as_ref().map_or(texts.len(), |m| m.outer_end);
        let has_inner = inner.as_ref().is_some_and(|m| m.cmd != InnerCmd::None);
        let stdin_unknown = matches!(input, Input::Given(Content::Unknown | Content::Download));
        let subs: Vec<&str> = argv[1..=outer_end]
            .iter()
            .flat_map(|a| a.subs.iter().map(String::as_str))
            .collect();
        let subs = subs.join("\n");
        let mut view = entry.view(&texts[..outer_end], input.text(), stdin_unknown, has_inner);
        view.subs = &subs;
        if let Some((level, reason)) = entry.judge(&view, name) {
            self.add(level, reason, &argv[..=outer_end]);
        }
        for script in entry.escapes(&view) {
            self.add(
                Risk::High,
                format!("{name} runs a shell command"),
                &argv[..=outer_end],
            );
            self.nested(&script, Input::Outside, None);
        }
        if let Some(m) = inner {
            self.run_inner(m, argv, input);
        }
    }

    fn run_inner(&mut self, m: InnerMatch, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        match m.cmd {
            InnerCmd::None => {
                let opts: Vec<&str> = args[..m.outer_end].iter().map(|a| a.s()).collect();
                let shell_flag = m.spec.shell_flags.iter().any(|f| has_flag(&opts, f));
                if m.spec.empty_runs_shell || (shell_flag && matches!(input, Input::Given(_))) {
                    self.stdin_script(input, argv, "a shell", &[]);
                }
            }
            InnerCmd::Argv(start) => {
                let mut inner: Vec<Arg> = args[start..].to_vec();
                if let Some(e) = m.entrypoint.and_then(|e| args.get(e)) {
                    let entry: Vec<Arg> = e.s().split_whitespace().map(Arg::literal).collect();
                    inner.splice(0..0, entry);
                }
                if m.spec.stdin_args {
                    self.xargs(
                        &args[..m.outer_end],
                        inner,
                        &m.spec.replace_options,
                        input,
                        false,
                    );
                } else {
                    self.command(inner, input);
                }
            }
            InnerCmd::Joined(start) => {
                if m.spec.stdin_args {
                    let inner = args[start..].to_vec();
                    self.xargs(
                        &args[..m.outer_end],
                        inner,
                        &m.spec.replace_options,
                        input,
                        true,
                    );
                    return;
                }
                let script = joined(&args[start..]);
                self.shell_string(&script, argv, input, &[]);
            }
            InnerCmd::Script(s) => {
                let arg = args
                    .iter()
                    .find(|a| a.text.ends_with(&s))
                    .map(|a| Arg {
                        text: s.clone(),
                        ..a.clone()
                    })
                    .unwrap_or_else(|| Arg::literal(&s));
                self.shell_string(&arg, argv, input, &[]);
            }
        }
    }

    /// `xargs CMD` / `parallel CMD`: CMD run with the items of its input (or after `:::`).
    fn xargs(
        &mut self,
        outer: &[Arg],
        inner: Vec<Arg>,
        replace_opts: &[String],
        input: &Input,
        script: bool,
    ) {
        let (template, mut items): (Vec<Arg>, Option<Vec<String>>) =
            match inner.iter().position(|a| a.s() == ":::" || a.s() == ":::+") {
                Some(p) => (
                    inner[..p].to_vec(),
                    Some(
                        inner[p + 1..]
                            .iter()
                            .filter(|a| !a.s().starts_with(":::"))
                            .map(|a| a.text.clone())
                            .collect(),
                    ),
                ),
                None => (inner, None),
            };
        let replace = replace_string(outer, replace_opts);
        let nul = outer.iter().any(|a| a.s() == "-0" || a.s() == "--null");
        if items.is_none() {
            items = match input {
                Input::Given(Content::Text { text, .. }) => Some(if nul {
                    text.split('\0')
                        .map(|s| s.trim_end_matches('\n').to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                } else if replace.is_some() {
                    text.lines()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                } else {
                    text.split_whitespace().map(String::from).collect()
                }),
                Input::Given(Content::Download) => {
                    self.add(
                        Risk::High,
                        "runs a command on arguments downloaded from the network",
                        outer,
                    );
                    None
                }
                _ => None,
            };
        }
        let template = if template.is_empty() {
            vec![Arg::literal("echo")]
        } else {
            template
        };
        let items = items.unwrap_or_else(|| vec![DYN.to_string()]);
        // Items only the run knows came from the command piped in (`docker ps -q | xargs`).
        let from = match input {
            Input::Given(Content::Unknown) => self.producer.clone(),
            _ => None,
        };
        let item = |text: String| Arg {
            subs: from
                .iter()
                .filter(|_| text.contains(DYN))
                .cloned()
                .collect(),
            procsub: None,
            text,
        };
        let runs: Vec<Vec<Arg>> = match &replace {
            Some(r) => items
                .iter()
                .take(MAX_CHOICES)
                .map(|it| {
                    template
                        .iter()
                        .map(|a| match a.text.contains(r.as_str()) {
                            true => item(a.text.replace(r.as_str(), it)),
                            false => a.clone(),
                        })
                        .collect()
                })
                .collect(),
            None => {
                let mut v = template.clone();
                v.extend(items.iter().map(|i| item(i.clone())));
                vec![v]
            }
        };
        for run in runs {
            if script {
                let s = joined(&run);
                self.shell_string(&s, outer, &Input::Outside, &[]);
            } else {
                self.command(run, &Input::Outside);
            }
        }
    }

    /// The output of `$(...)`, when it is static.
    pub fn sub_output(&mut self, script: &str) -> Option<String> {
        match self.sub_content(script) {
            Content::Text { text, .. } => Some(text.trim_end_matches('\n').to_string()),
            _ => None,
        }
    }

    /// What a script writes to its standard output, worked out without judging it.
    pub fn sub_content(&mut self, script: &str) -> Content {
        if self.depth >= MAX_DEPTH {
            return Content::Unknown;
        }
        let Ok(parsed) = shell::parse(script) else {
            return Content::Unknown;
        };
        let scope = self.save();
        self.quiet += 1;
        self.depth += 1;
        self.stdin = Input::Outside;
        let mut out = String::new();
        let mut decoded = false;
        let mut result = None;
        for p in &parsed.pipelines {
            if let [c] = p.commands.as_slice() {
                if c.words.is_empty() {
                    self.assignments(c, &[]);
                    continue;
                }
            }
            let mut prev: Option<Content> = None;
            for (i, c) in p.commands.iter().enumerate() {
                let argv: Vec<Arg> = c.words.iter().flat_map(|w| self.expand_fields(w)).collect();
                let input = self.input_for(c, i, prev.take());
                prev = Some(self.output(&argv, &input));
            }
            match prev {
                Some(Content::Text { text, decoded: d }) => {
                    out.push_str(&text);
                    decoded |= d;
                }
                Some(other) => {
                    result = Some(other);
                    break;
                }
                None => {}
            }
        }
        self.pending_out.clear();
        self.depth -= 1;
        self.quiet -= 1;
        self.restore(scope);
        result.unwrap_or(Content::Text { text: out, decoded })
    }

    /// Whether a script fetches something from the network.
    pub fn mentions_download(&self, script: &str, depth: u32) -> bool {
        if let Some(m) = self.download_memo.borrow().get(script) {
            return *m;
        }
        let m = self.mentions_download_uncached(script, depth);
        self.download_memo
            .borrow_mut()
            .insert(script.to_string(), m);
        m
    }

    fn mentions_download_uncached(&self, script: &str, depth: u32) -> bool {
        let markers = &self.t.interp.download_markers;
        if markers.iter().any(|m| script.contains(m.as_str())) {
            return true;
        }
        if depth > MAX_DEPTH {
            return self
                .t
                .interp
                .downloaders
                .iter()
                .any(|d| script.contains(d.as_str()));
        }
        match shell::parse(script) {
            Ok(s) => s.pipelines.iter().flat_map(|p| &p.commands).any(|c| {
                c.words.iter().any(|w| {
                    w.literal()
                        .is_some_and(|l| self.t.is_downloader(basename(&l)))
                        || w.substitutions()
                            .any(|s| self.mentions_download(s, depth + 1))
                })
            }),
            Err(_) => self
                .t
                .interp
                .downloaders
                .iter()
                .any(|d| script.contains(d.as_str())),
        }
    }
}

/// Arguments joined into shell text (`ssh HOST CMD ARGS`, `watch CMD`).
fn joined(args: &[Arg]) -> Arg {
    Arg {
        text: args
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        subs: args.iter().flat_map(|a| a.subs.clone()).collect(),
        procsub: None,
    }
}

/// A command's words as written, for naming where an input came from.
fn shown_line(words: &[shell::Word]) -> String {
    words
        .iter()
        .map(|w| w.literal().unwrap_or_else(|| "$?".to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The replace-string of `xargs -I R` / `-i` / `--replace[=R]`.
fn replace_string(outer: &[Arg], opts: &[String]) -> Option<String> {
    for (i, a) in outer.iter().enumerate() {
        let s = a.s();
        for o in opts {
            if s == o {
                return Some(match o.as_str() {
                    "-i" | "--replace" => "{}".to_string(),
                    _ => outer
                        .get(i + 1)
                        .map_or("{}".to_string(), |v| v.text.clone()),
                });
            }
            if let Some(r) = s.strip_prefix(o.as_str()) {
                let r = r.strip_prefix('=').unwrap_or(r);
                if !r.is_empty() {
                    return Some(r.to_string());
                }
            }
        }
    }
    None
}

fn is_arithmetic(c: &SimpleCommand) -> bool {
    matches!(c.words.as_slice(), [w] if matches!(w.parts.as_slice(), [shell::Part::Arith(_)]))
}

/// Whether any word of the pipeline reads the variable `name`.
fn pipeline_mentions(p: &Pipeline, name: &str) -> bool {
    use shell::Part;
    p.commands.iter().any(|c| {
        c.words
            .iter()
            .chain(c.assigns.iter().map(|(_, w)| w))
            .chain(c.redirects.iter().map(|r| &r.target))
            .any(|w| {
                w.parts.iter().any(|part| match part {
                    Part::Var { name: n, .. } => n == name,
                    Part::Param { expr, .. } => expr.contains(name),
                    Part::Sub { script, .. } => script.contains(name),
                    _ => false,
                })
            })
            || c.redirects
                .iter()
                .any(|r| r.heredoc.as_deref().is_some_and(|b| b.contains(name)))
    })
}
