//! The rule tables: what commands do, as data. One TOML file per family (`tables/*.toml`) is
//! compiled in, read once, and matched here against a command's arguments.
//!
//! A `[[tool]]` names commands and how to read their arguments: `value_options` take a value
//! (so the value is not taken for a positional word); with `bool_options` given, every other
//! `--long` option takes one. Its `[[tool.rule]]`s say what a use risks: the worst matching
//! rule wins, `default` when none matches. Every condition a rule gives must hold:
//!
//! - `sub`: positional words in a row, each a regex matched case-insensitively against the
//!   whole word (`kind/name` and `a,b` words also match by their parts); anywhere among the
//!   positional words (so an unknown option's value cannot hide them) unless `at_start`.
//! - `word`: some positional word matches.
//! - `flag`: one of these options is given (`-f` also inside `-rf`, `--x` also as `--x=v`);
//!   `all_flags`: all of them; `no_flag`: none of them.
//! - `opt` + `value`: one of these options has a value matching `value`
//!   (`-X DELETE`, `-XDELETE`, `--request=DELETE`).
//! - `arg`: some argument matches (regex search, case-sensitive).
//! - `text`: the arguments joined by spaces (then the standard input, for `stdin` tools)
//!   match (case-insensitive search), and `unless_text` does not; `sql` strips SQL comments
//!   and leaves options out first.
//! - `stdin_unknown`: the tool reads an input only the run knows (`mysql < dump.sql`).
//! - `unless_arg`: no argument matches (regex search: `--dry-run` modes); `unless_sub`: the
//!   words of `sub` given here do not appear; `min_positionals` / `max_positionals`.
//! - `sub_script`: the script of a `$(...)` that computed an argument (or the command whose
//!   output `xargs` appended) matches (case-insensitive search): `docker rm $(docker ps -aq)`.
//! - `dynamic`: some argument is only known at run time; `no_positionals`; `max_args`;
//!   `no_inner` (the tool runs no other command here).
//!
//! A `[[tool.inner]]` says where the tool runs another command (`kubectl exec`, `sudo`,
//! `ssh`): that command is judged as if it ran directly, and the rules see only the
//! arguments before it. It starts after `sub` (if given), the tool's options and `skip`
//! positional words (a pod, a host), or after `--`; `after_dash_dash` only there;
//! `command_follows` right after the skipped words; `shell_flags` (`sudo -s`) make a
//! missing command a shell reading the standard input; `script_options` give it as shell text
//! (`-c TEXT`); `kind = "script"` joins the remaining words into shell text; `stdin_args`
//! appends what the standard input holds (`xargs`); `empty_runs_shell` reads a script from
//! the standard input when no command is given (`ssh HOST`).

use crate::glob::Pattern;
use crate::policy::Risk;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

use super::DYN;

/// The families, in the order their rules are read.
const FAMILIES: [(&str, &str); 11] = [
    ("filesystem", include_str!("tables/filesystem.toml")),
    ("system", include_str!("tables/system.toml")),
    ("packages", include_str!("tables/packages.toml")),
    ("services", include_str!("tables/services.toml")),
    ("containers", include_str!("tables/containers.toml")),
    ("cloud", include_str!("tables/cloud.toml")),
    ("databases", include_str!("tables/databases.toml")),
    ("vcs", include_str!("tables/vcs.toml")),
    ("wrappers", include_str!("tables/wrappers.toml")),
    ("interpreters", include_str!("tables/interpreters.toml")),
    ("readonly", include_str!("tables/readonly.toml")),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    tool: Vec<ToolSpec>,
    paths: Option<Paths>,
    services: Option<Services>,
    interpreters: Option<Interpreters>,
    env: Option<EnvVars>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSpec {
    names: Vec<String>,
    #[serde(default)]
    value_options: Vec<String>,
    #[serde(default)]
    bool_options: Vec<String>,
    default: Option<Verdict>,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    shell_escapes: Vec<String>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    inner: Vec<InnerSpec>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Verdict {
    level: Risk,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    sub: Vec<String>,
    #[serde(default)]
    at_start: bool,
    word: Option<String>,
    #[serde(default)]
    flag: Vec<String>,
    #[serde(default)]
    all_flags: Vec<String>,
    #[serde(default)]
    no_flag: Vec<String>,
    #[serde(default)]
    opt: Vec<String>,
    value: Option<String>,
    arg: Option<String>,
    text: Option<String>,
    unless_text: Option<String>,
    unless_arg: Option<String>,
    #[serde(default)]
    unless_sub: Vec<String>,
    sub_script: Option<String>,
    min_positionals: Option<usize>,
    max_positionals: Option<usize>,
    #[serde(default)]
    sql: bool,
    #[serde(default)]
    dynamic: bool,
    #[serde(default)]
    stdin_unknown: bool,
    #[serde(default)]
    no_positionals: bool,
    #[serde(default)]
    no_inner: bool,
    max_args: Option<usize>,
    level: Risk,
    reason: String,
    why: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InnerSpec {
    #[serde(default)]
    sub: Vec<String>,
    #[serde(default)]
    skip: usize,
    #[serde(default)]
    value_options: Vec<String>,
    #[serde(default)]
    bool_options: Vec<String>,
    #[serde(default)]
    kind: InnerKind,
    #[serde(default)]
    after_dash_dash: bool,
    #[serde(default)]
    script_options: Vec<String>,
    #[serde(default)]
    entrypoint_options: Vec<String>,
    #[serde(default)]
    stdin_args: bool,
    #[serde(default)]
    replace_options: Vec<String>,
    #[serde(default)]
    empty_runs_shell: bool,
    #[serde(default)]
    shell_flags: Vec<String>,
    #[serde(default)]
    command_follows: bool,
}

/// How the inner command is given.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub(super) enum InnerKind {
    /// The remaining arguments are its argv (`sudo CMD ARGS`).
    #[default]
    Argv,
    /// The remaining arguments are joined into shell text (`ssh HOST CMD`, `watch CMD`).
    Script,
}

/// Path lists the filesystem judgements use (filesystem.toml).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Paths {
    pub top_level: Vec<String>,
    pub essential: Vec<String>,
    pub critical_files: Vec<String>,
    pub sensitive_etc: Vec<String>,
    pub login_files: Vec<String>,
    pub system_tops: Vec<String>,
    pub system_exact: Vec<String>,
    pub system_prefixes: Vec<String>,
    pub block_devices: Vec<String>,
    pub raw_devices: Vec<String>,
    pub harmless_devices: Vec<String>,
    pub recursive_deleters: Vec<String>,
    pub data_roots: Vec<String>,
    pub app_roots: Vec<String>,
    pub data_names: Vec<String>,
    pub regenerable: Vec<String>,
    pub regenerable_paths: Vec<String>,
    pub workspaces: Vec<String>,
    pub db_files: Vec<String>,
    pub temp_vars: Vec<String>,
    #[serde(default)]
    pub data: Vec<DataDir>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct DataDir {
    pub path: String,
    pub level: Risk,
    pub reason: String,
    /// For reviewers; the tests check refusals carry one.
    #[allow(dead_code)]
    pub why: Option<String>,
}

/// Service-manager actions and units (services.toml).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Services {
    pub managers: Vec<String>,
    pub low: Vec<String>,
    pub medium: Vec<String>,
    pub high: Vec<String>,
    pub host_down: Vec<String>,
    pub state_changes: Vec<String>,
    pub host_down_targets: Vec<String>,
    pub critical_units: Vec<String>,
    pub critical_processes: Vec<String>,
    pub reload_signals: Vec<String>,
}

/// Shells, interpreters, downloaders and what inline code can run (interpreters.toml).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Interpreters {
    pub shells: Vec<String>,
    pub stdin_shells: Vec<String>,
    pub interpreters: Vec<String>,
    pub code_flags: Vec<String>,
    pub downloaders: Vec<String>,
    pub download_markers: Vec<String>,
    pub shell_calls: Vec<String>,
    pub argv_calls: Vec<String>,
    pub rmtree_calls: Vec<String>,
}

/// Environment variables whose value is run or loaded by the programs that read them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct EnvVars {
    pub script_vars: Vec<String>,
    pub high_vars: Vec<String>,
}

/// How a tool's options are read.
#[derive(Default, Clone)]
pub(super) struct Opts {
    value: Vec<String>,
    bools: Vec<String>,
}

impl Opts {
    fn merge(&mut self, o: &Opts) {
        self.value.extend(o.value.iter().cloned());
        self.bools.extend(o.bools.iter().cloned());
    }

    /// Whether the option token `tok` consumes the next argument as its value.
    pub fn takes_value(&self, tok: &str) -> bool {
        if tok.contains('=') {
            return false;
        }
        if self.value.iter().any(|v| v == tok) {
            return true;
        }
        if tok.starts_with("--") {
            return !self.bools.is_empty() && !self.bools.iter().any(|b| b == tok);
        }
        // A short cluster (`-it`, `-ite`): the first letter that takes a value takes the
        // rest of the cluster, or the next argument when it is the last letter.
        let letters: Vec<char> = tok.chars().skip(1).collect();
        for (i, c) in letters.iter().enumerate() {
            if self.value.iter().any(|v| v.len() == 2 && v.ends_with(*c)) {
                return i + 1 == letters.len();
            }
        }
        false
    }
}

pub(super) struct Rule {
    sub: Vec<Regex>,
    at_start: bool,
    word: Option<Regex>,
    flag: Vec<String>,
    all_flags: Vec<String>,
    no_flag: Vec<String>,
    opt: Vec<String>,
    value: Option<Regex>,
    arg: Option<Regex>,
    text: Option<Regex>,
    unless_text: Option<Regex>,
    unless_arg: Option<Regex>,
    unless_sub: Vec<Regex>,
    sub_script: Option<Regex>,
    min_positionals: Option<usize>,
    max_positionals: Option<usize>,
    sql: bool,
    dynamic: bool,
    stdin_unknown: bool,
    no_positionals: bool,
    no_inner: bool,
    max_args: Option<usize>,
    pub level: Risk,
    pub reason: String,
    /// For reviewers; the tests check refusals carry one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub why: Option<String>,
}

pub(super) struct Inner {
    sub: Vec<Regex>,
    skip: usize,
    opts: Option<Opts>,
    pub kind: InnerKind,
    after_dash_dash: bool,
    script_options: Vec<String>,
    entrypoint_options: Vec<String>,
    pub stdin_args: bool,
    pub replace_options: Vec<String>,
    pub empty_runs_shell: bool,
    /// Options that make the tool run a shell reading its input when no command is given
    /// (`sudo -s`, `sudo -i`).
    pub shell_flags: Vec<String>,
    /// The command starts right after the skipped words, options or not (`docker run IMAGE
    /// -x`: `-x` is the container's).
    command_follows: bool,
}

pub(super) struct Tool {
    pub family: &'static str,
    pub names: Vec<String>,
    opts: Opts,
    default: Option<(Risk, String)>,
    pub stdin: bool,
    /// Patterns whose first group is shell text the tool runs (`psql -c '\! CMD'`).
    shell_escapes: Vec<Regex>,
    pub rules: Vec<Rule>,
    inner: Vec<Inner>,
}

pub(super) struct Tables {
    pub tools: Vec<Tool>,
    by_name: HashMap<String, Vec<usize>>,
    /// Names given as `prefix*` (`mkfs.*`).
    prefixed: Vec<(Pattern, usize)>,
    pub paths: Paths,
    pub services: Services,
    pub interp: Interpreters,
    pub env: EnvVars,
}

fn regex(p: &str, whole: bool, case_insensitive: bool) -> Result<Regex, String> {
    let src = if whole {
        format!("^(?:{p})$")
    } else {
        p.to_string()
    };
    RegexBuilder::new(&src)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad pattern {p:?}: {e}"))
}

fn opt_regex(p: &Option<String>, whole: bool, ci: bool) -> Result<Option<Regex>, String> {
    p.as_deref().map(|p| regex(p, whole, ci)).transpose()
}

fn words(ps: &[String]) -> Result<Vec<Regex>, String> {
    ps.iter().map(|p| regex(p, true, true)).collect()
}

impl Rule {
    fn compile(r: RuleSpec) -> Result<Rule, String> {
        Ok(Rule {
            sub: words(&r.sub)?,
            at_start: r.at_start,
            word: opt_regex(&r.word, true, true)?,
            flag: r.flag,
            all_flags: r.all_flags,
            no_flag: r.no_flag,
            value: opt_regex(&r.value, true, true)?,
            opt: r.opt,
            arg: opt_regex(&r.arg, false, false)?,
            text: opt_regex(&r.text, false, true)?,
            unless_text: opt_regex(&r.unless_text, false, true)?,
            unless_arg: opt_regex(&r.unless_arg, false, false)?,
            unless_sub: words(&r.unless_sub)?,
            sub_script: opt_regex(&r.sub_script, false, true)?,
            min_positionals: r.min_positionals,
            max_positionals: r.max_positionals,
            sql: r.sql,
            dynamic: r.dynamic,
            stdin_unknown: r.stdin_unknown,
            no_positionals: r.no_positionals,
            no_inner: r.no_inner,
            max_args: r.max_args,
            level: r.level,
            reason: r.reason,
            why: r.why,
        })
    }
}

impl Tables {
    fn load() -> Result<Tables, String> {
        let mut t = Tables {
            tools: vec![],
            by_name: HashMap::new(),
            prefixed: vec![],
            paths: Paths::default(),
            services: Services::default(),
            interp: Interpreters::default(),
            env: EnvVars::default(),
        };
        for (family, src) in FAMILIES {
            let f: FileSpec = toml::from_str(src).map_err(|e| format!("{family}.toml: {e}"))?;
            if let Some(p) = f.paths {
                t.paths = p;
            }
            if let Some(s) = f.services {
                t.services = s;
            }
            if let Some(i) = f.interpreters {
                t.interp = i;
            }
            if let Some(e) = f.env {
                t.env = e;
            }
            for spec in f.tool {
                let tool =
                    Tool::compile(family, spec).map_err(|e| format!("{family}.toml: {e}"))?;
                let idx = t.tools.len();
                for n in &tool.names {
                    if n.ends_with('*') {
                        t.prefixed.push((Pattern::prefix(n, false), idx));
                    } else {
                        t.by_name.entry(n.clone()).or_default().push(idx);
                    }
                }
                t.tools.push(tool);
            }
        }
        Ok(t)
    }

    /// Every table entry for a command name.
    pub fn tools_for(&self, name: &str) -> Vec<&Tool> {
        let mut v: Vec<usize> = self.by_name.get(name).cloned().unwrap_or_default();
        v.extend(
            self.prefixed
                .iter()
                .filter(|(p, _)| p.is_match(name))
                .map(|(_, i)| *i),
        );
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(|i| &self.tools[i]).collect()
    }

    /// Every command name the tables know, for resolving a globbed command name.
    pub fn known_names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn is_downloader(&self, name: &str) -> bool {
        self.interp.downloaders.iter().any(|d| d == name)
    }
}

/// The tables, read on first use. A table that does not load is a build defect that the
/// unit tests catch; at run time it makes every command refused rather than a panic.
pub(super) fn tables() -> Result<&'static Tables, &'static str> {
    static T: OnceLock<Result<Tables, String>> = OnceLock::new();
    T.get_or_init(Tables::load).as_ref().map_err(|e| e.as_str())
}

impl Tool {
    fn compile(family: &'static str, s: ToolSpec) -> Result<Tool, String> {
        let rules = s
            .rule
            .into_iter()
            .map(Rule::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let inner = s
            .inner
            .into_iter()
            .map(|i| {
                let opts =
                    (!i.value_options.is_empty() || !i.bool_options.is_empty()).then_some(Opts {
                        value: i.value_options,
                        bools: i.bool_options,
                    });
                Ok(Inner {
                    sub: words(&i.sub)?,
                    skip: i.skip,
                    opts,
                    kind: i.kind,
                    after_dash_dash: i.after_dash_dash,
                    script_options: i.script_options,
                    entrypoint_options: i.entrypoint_options,
                    stdin_args: i.stdin_args,
                    replace_options: i.replace_options,
                    empty_runs_shell: i.empty_runs_shell,
                    shell_flags: i.shell_flags,
                    command_follows: i.command_follows,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if s.names.is_empty() {
            return Err("a tool without names".into());
        }
        Ok(Tool {
            family,
            names: s.names,
            opts: Opts {
                value: s.value_options,
                bools: s.bool_options,
            },
            default: s.default.map(|d| (d.level, d.reason)),
            stdin: s.stdin,
            shell_escapes: s
                .shell_escapes
                .iter()
                .map(|p| regex(p, false, true))
                .collect::<Result<_, _>>()?,
            rules,
            inner,
        })
    }
}

/// The arguments of one command as the rules see them.
pub(super) struct View<'a> {
    pub args: &'a [String],
    pub positionals: Vec<&'a str>,
    pub options: Vec<&'a str>,
    pub stdin: Option<&'a str>,
    /// The standard input is produced at run time (a file, another command).
    pub stdin_unknown: bool,
    pub has_inner: bool,
    /// The scripts of the `$(...)` substitutions (and of what a pipe fed `xargs`) that
    /// computed arguments.
    pub subs: &'a str,
}

/// All table entries for one command name, read as one.
pub(super) struct Entry<'a> {
    pub tools: Vec<&'a Tool>,
    opts: Opts,
}

/// Where a command given to another one starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum InnerCmd {
    None,
    /// The argv starts at this index of the arguments.
    Argv(usize),
    /// Shell text: the arguments from this index joined.
    Joined(usize),
    /// Shell text given as an option's value.
    Script(String),
}

pub(super) struct InnerMatch<'a> {
    pub spec: &'a Inner,
    /// Arguments before this index belong to the outer command.
    pub outer_end: usize,
    pub cmd: InnerCmd,
    /// The index of an `--entrypoint` value, which becomes the inner command's name.
    pub entrypoint: Option<usize>,
}

/// The script given by the option at `i` if it is one of `names` (`-c S`, `-cS`,
/// `--command=S`): `Some(None)` when the script is missing.
fn script_option(names: &[String], args: &[String], i: usize) -> Option<Option<String>> {
    let a = args[i].as_str();
    if names.iter().any(|s| s == a) {
        return Some(args.get(i + 1).cloned());
    }
    // A short cluster ending with the option (`script -qc CMD`).
    if a.len() > 2 && !a.starts_with("--") {
        let last = a.chars().last().unwrap_or(' ');
        if names.iter().any(|s| s.len() == 2 && s.ends_with(last)) {
            return Some(args.get(i + 1).cloned());
        }
    }
    names.iter().find_map(|s| {
        let rest = a.strip_prefix(s.as_str())?;
        let rest = if s.starts_with("--") {
            rest.strip_prefix('=')?
        } else {
            rest
        };
        (!rest.is_empty()).then(|| Some(rest.to_string()))
    })
}

fn is_option(a: &str) -> bool {
    a.len() > 1 && a.starts_with('-') && !a.starts_with(DYN)
}

/// Positional words of `args` (with their indices) and option tokens.
fn scan<'a>(args: &'a [String], opts: &Opts) -> (Vec<(usize, &'a str)>, Vec<&'a str>) {
    let mut positionals = vec![];
    let mut options = vec![];
    let mut i = 0;
    let mut end = false;
    while i < args.len() {
        let a = args[i].as_str();
        if end || !is_option(a) {
            positionals.push((i, a));
        } else if a == "--" {
            end = true;
        } else {
            options.push(a);
            if opts.takes_value(a) {
                i += 1;
            }
        }
        i += 1;
    }
    (positionals, options)
}

/// Whether a word matches, directly or by one of its `a,b` / `kind/name` parts.
fn word_matches(re: &Regex, w: &str) -> bool {
    if re.is_match(w) {
        return true;
    }
    (w.contains(',') || w.contains('/'))
        && w.split(',').any(|part| {
            re.is_match(part)
                || part
                    .split_once('/')
                    .is_some_and(|(k, _)| !k.is_empty() && re.is_match(k))
        })
}

/// Where the window of `pats` first matches among `words`.
fn window(pats: &[Regex], words: &[&str], at_start: bool) -> Option<usize> {
    if pats.is_empty() {
        return Some(0);
    }
    let last = words.len().checked_sub(pats.len())?;
    let starts = if at_start { 0..=0 } else { 0..=last };
    starts.into_iter().find(|&s| {
        pats.iter()
            .zip(&words[s..])
            .all(|(p, w)| word_matches(p, w))
    })
}

pub(super) fn has_flag(options: &[&str], flag: &str) -> bool {
    options.iter().any(|o| {
        *o == flag
            || (flag.len() > 2 && o.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
            || (flag.len() == 2
                && !flag.starts_with("--")
                && o.starts_with('-')
                && !o.starts_with("--")
                && o.len() > 2
                && o[1..].contains(&flag[1..]))
    })
}

/// Strip SQL comments (keeping MySQL's executed `/*! ... */`) and fold whitespace.
fn sql_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '/' if it.peek() == Some(&'*') => {
                it.next();
                let executed = it.peek() == Some(&'!');
                let mut prev = ' ';
                let mut body = String::new();
                for d in it.by_ref() {
                    if prev == '*' && d == '/' {
                        body.pop();
                        break;
                    }
                    body.push(d);
                    prev = d;
                }
                out.push(' ');
                if executed {
                    out.push_str(
                        body.trim_start_matches('!')
                            .trim_start_matches(char::is_numeric),
                    );
                    out.push(' ');
                }
            }
            '-' if it.peek() == Some(&'-') => {
                for d in it.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            c if c.is_whitespace() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl<'a> Entry<'a> {
    pub fn new(tools: Vec<&'a Tool>) -> Entry<'a> {
        let mut opts = Opts::default();
        for t in &tools {
            opts.merge(&t.opts);
        }
        Entry { tools, opts }
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn reads_stdin(&self) -> bool {
        self.tools.iter().any(|t| t.stdin)
    }

    pub fn view<'v>(
        &self,
        args: &'v [String],
        stdin: Option<&'v str>,
        stdin_unknown: bool,
        has_inner: bool,
    ) -> View<'v> {
        let (pos, options) = scan(args, &self.opts);
        View {
            args,
            positionals: pos.into_iter().map(|(_, w)| w).collect(),
            options,
            stdin: if self.reads_stdin() { stdin } else { None },
            stdin_unknown: stdin_unknown && self.reads_stdin(),
            has_inner,
            subs: "",
        }
    }

    /// Shell text the arguments or input hand to the tool's shell escape.
    pub fn escapes(&self, v: &View) -> Vec<String> {
        let texts = v.args.iter().map(String::as_str).chain(v.stdin);
        let mut out = vec![];
        for text in texts {
            for re in self.tools.iter().flat_map(|t| &t.shell_escapes) {
                out.extend(
                    re.captures_iter(text)
                        .filter_map(|c| c.get(1))
                        .map(|m| m.as_str().to_string())
                        .take(8),
                );
            }
        }
        out
    }

    /// The worst matching rule, else the default.
    pub fn judge(&self, v: &View, name: &str) -> Option<(Risk, String)> {
        let mut best: Option<&Rule> = None;
        for r in self.tools.iter().flat_map(|t| &t.rules) {
            if best.is_some_and(|b| b.level >= r.level) {
                continue;
            }
            if r.matches(v) {
                best = Some(r);
            }
        }
        let sub = v.positionals.first().copied().unwrap_or("");
        let (level, reason) = match best {
            Some(r) => (r.level, r.reason.as_str()),
            None => {
                let d = self.tools.iter().find_map(|t| t.default.as_ref())?;
                (d.0, d.1.as_str())
            }
        };
        let reason = reason
            .replace("{name}", name)
            .replace("{sub}", &sub.replace(DYN, "$?"));
        Some((level, reason.trim().to_string()))
    }

    /// Where, if anywhere, the arguments hold a command this one runs.
    pub fn inner(&self, args: &[String]) -> Option<InnerMatch<'a>> {
        let (pos, _) = scan(args, &self.opts);
        let words: Vec<&str> = pos.iter().map(|(_, w)| *w).collect();
        // The spec whose words come first wins (`docker compose run` over `docker run`).
        let mut best: Option<((usize, usize), &'a Inner, usize)> = None;
        for spec in self.tools.iter().flat_map(|t| &t.inner) {
            let Some(at) = window(&spec.sub, &words, false) else {
                continue;
            };
            let (key, after) = match spec.sub.len() {
                0 => ((0, usize::MAX), 0),
                n => ((at, usize::MAX - n), pos[at + n - 1].0 + 1),
            };
            if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                best = Some((key, spec, after));
            }
        }
        let (_, spec, after) = best?;
        Some(self.inner_from(spec, args, after))
    }

    fn inner_from(&self, spec: &'a Inner, args: &[String], from: usize) -> InnerMatch<'a> {
        let opts = spec.opts.as_ref().unwrap_or(&self.opts);
        let mut i = from;
        let mut skipped = 0;
        let mut entrypoint = None;
        let mut dash_dash = false;
        while i < args.len() {
            let a = args[i].as_str();
            if a == "--" {
                i += 1;
                dash_dash = true;
                break;
            }
            if is_option(a) {
                if let Some(script) = script_option(&spec.script_options, args, i) {
                    let cmd = script.map_or(InnerCmd::None, InnerCmd::Script);
                    return InnerMatch {
                        spec,
                        outer_end: i,
                        cmd,
                        entrypoint,
                    };
                }
                if spec.entrypoint_options.iter().any(|s| s == a) {
                    entrypoint = Some(i + 1);
                    i += 2;
                    continue;
                }
            }
            if spec.after_dash_dash {
                i += 1;
                continue;
            }
            if spec.command_follows && spec.skip > 0 && skipped == spec.skip {
                break;
            }
            if is_option(a) {
                i += if opts.takes_value(a) { 2 } else { 1 };
                continue;
            }
            if skipped < spec.skip {
                skipped += 1;
                i += 1;
                continue;
            }
            break;
        }
        let start = i.min(args.len());
        let cmd = if start >= args.len() || (spec.after_dash_dash && !dash_dash) {
            InnerCmd::None
        } else if spec.kind == InnerKind::Script {
            InnerCmd::Joined(start)
        } else {
            InnerCmd::Argv(start)
        };
        let outer_end = if dash_dash { start - 1 } else { start };
        InnerMatch {
            spec,
            outer_end,
            cmd,
            entrypoint,
        }
    }
}

impl Rule {
    fn matches(&self, v: &View) -> bool {
        self.shape_matches(v) && self.options_match(v) && self.text_matches(v)
    }

    /// The positional words: subcommands, words, how many.
    fn shape_matches(&self, v: &View) -> bool {
        let n = v.positionals.len();
        let excluded = (self.no_inner && v.has_inner) || (self.no_positionals && n > 0);
        !excluded
            && self.max_args.is_none_or(|m| v.args.len() <= m)
            && window(&self.sub, &v.positionals, self.at_start).is_some()
            && (self.unless_sub.is_empty()
                || window(&self.unless_sub, &v.positionals, false).is_none())
            && self.min_positionals.is_none_or(|m| n >= m)
            && self.max_positionals.is_none_or(|m| n <= m)
            && self
                .word
                .as_ref()
                .is_none_or(|w| v.positionals.iter().any(|p| word_matches(w, p)))
    }

    /// Options, arguments, substitutions and the standard input's origin.
    fn options_match(&self, v: &View) -> bool {
        let any_arg = |re: &Regex| v.args.iter().any(|x| re.is_match(x));
        (self.flag.is_empty() || self.flag.iter().any(|f| has_flag(&v.options, f)))
            && self.all_flags.iter().all(|f| has_flag(&v.options, f))
            && !self.no_flag.iter().any(|f| has_flag(&v.options, f))
            && (self.opt.is_empty() || self.opt_matches(v.args))
            && self.arg.as_ref().is_none_or(any_arg)
            && !self.unless_arg.as_ref().is_some_and(any_arg)
            && self.sub_script.as_ref().is_none_or(|r| r.is_match(v.subs))
            && (!self.dynamic || v.args.iter().any(|x| x.contains(DYN)))
            && (!self.stdin_unknown || v.stdin_unknown)
    }

    /// `text` / `unless_text` over the arguments and the standard input.
    fn text_matches(&self, v: &View) -> bool {
        let Some(t) = &self.text else {
            return true;
        };
        let mut parts: Vec<String> = if self.sql {
            // Options are not SQL (`--query` is no comment).
            v.args
                .iter()
                .filter(|a| !a.starts_with('-') || a.contains(char::is_whitespace))
                .map(|a| sql_text(a))
                .collect()
        } else {
            v.args.to_vec()
        };
        if let Some(s) = v.stdin {
            parts.push(if self.sql { sql_text(s) } else { s.to_string() });
        }
        let text = parts.join("\n");
        t.is_match(&text) && !self.unless_text.as_ref().is_some_and(|u| u.is_match(&text))
    }

    fn opt_matches(&self, args: &[String]) -> bool {
        let value_ok = |v: &str| self.value.as_ref().is_none_or(|re| re.is_match(v));
        args.iter().enumerate().any(|(i, a)| {
            self.opt.iter().any(|o| {
                if a == o {
                    return args.get(i + 1).is_some_and(|v| value_ok(v));
                }
                match a.strip_prefix(o.as_str()) {
                    Some(r) if o.starts_with("--") => r.strip_prefix('=').is_some_and(value_ok),
                    Some(r) if !r.is_empty() && o.len() == 2 => value_ok(r),
                    _ => false,
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_loads() {
        let t = tables().expect("tables load");
        assert!(t.tools.len() > 50);
        assert!(!t.paths.top_level.is_empty());
        assert!(!t.services.low.is_empty());
        assert!(!t.interp.shells.is_empty());
    }

    #[test]
    fn refusals_outside_the_filesystem_say_why() {
        let t = tables().expect("tables load");
        let silent: Vec<String> = t
            .tools
            .iter()
            .filter(|tool| {
                matches!(
                    tool.family,
                    "cloud" | "databases" | "vcs" | "containers" | "packages"
                )
            })
            .flat_map(|tool| tool.rules.iter().map(move |r| (tool, r)))
            .filter(|(_, r)| r.level >= Risk::High && r.why.is_none())
            .map(|(tool, r)| format!("{}: {}", tool.names[0], r.reason))
            .collect();
        assert!(silent.is_empty(), "rules without `why`: {silent:#?}");
    }

    #[test]
    fn options_that_take_values() {
        let o = Opts {
            value: vec!["-n".into(), "--namespace".into(), "-c".into()],
            bools: vec![],
        };
        assert!(o.takes_value("-n"));
        assert!(o.takes_value("--namespace"));
        assert!(!o.takes_value("--namespace=x"));
        assert!(o.takes_value("-itc"));
        assert!(!o.takes_value("-cfoo"));
        assert!(!o.takes_value("--other"));
        let docker = Opts {
            value: vec![],
            bools: vec!["--rm".into()],
        };
        assert!(docker.takes_value("--name"));
        assert!(!docker.takes_value("--rm"));
    }

    #[test]
    fn sql_comments_are_stripped() {
        assert_eq!(
            sql_text("DROP/**/DATABASE x")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["DROP", "DATABASE", "x"]
        );
        assert!(sql_text("DROP -- hidden\nTABLE t").contains("TABLE t"));
        assert!(sql_text("/*!50000 DROP */ DATABASE d").contains("DROP"));
    }
}
