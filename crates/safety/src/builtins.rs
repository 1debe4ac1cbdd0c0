//! Builtins that change what later commands see: variables and arrays (`export`,
//! `declare`, `read`, `mapfile`, `printf -v`), aliases, positional parameters (`set --`),
//! the working directory (`cd`), and `command`/`type` lookups.

use super::content::Input;
use super::engine::{Arg, Ctx};
use super::paths::normalize;
use crate::policy::Risk;

impl Ctx {
    /// The builtins above; `false` sends the command on to the tables (plain `printf`).
    pub(super) fn builtin(&mut self, name: &str, argv: &[Arg], input: &Input) -> bool {
        match name {
            "export" | "declare" | "typeset" | "local" | "readonly" => self.declare(name, argv),
            "read" => self.read(&argv[1..], input, argv),
            "mapfile" | "readarray" => self.mapfile(argv, input),
            "alias" | "unalias" => self.alias(name, argv),
            "unset" => self.unset(argv),
            "set" => self.set_positional(argv),
            "printf" => return self.printf_var(argv),
            "cd" | "pushd" | "popd" => self.cd(name, argv),
            "command" | "type" | "which" | "hash" => self.command_lookup(name, argv, input),
            _ => return false,
        }
        true
    }

    fn declare(&mut self, name: &str, argv: &[Arg]) {
        for x in &argv[1..] {
            if let Some((k, v)) = x.text.split_once('=') {
                let v = Arg {
                    text: v.to_string(),
                    ..x.clone()
                };
                self.check_env_var(k, &v, &[]);
                self.set_var(k, &v);
            }
        }
        self.add(Risk::Low, format!("{name} sets variables"), argv);
    }

    fn mapfile(&mut self, argv: &[Arg], input: &Input) {
        let name = argv[1..]
            .iter()
            .rfind(|a| !a.s().starts_with('-'))
            .map_or_else(|| "MAPFILE".to_string(), |a| a.text.clone());
        match input.text() {
            Some(t) => {
                self.vars
                    .insert(name, t.lines().map(String::from).collect());
            }
            None => {
                self.vars.remove(&name);
            }
        }
        self.add(Risk::Low, "reads lines into an array", argv);
    }

    fn alias(&mut self, name: &str, argv: &[Arg]) {
        for x in &argv[1..] {
            if name == "unalias" {
                self.aliases.remove(x.s());
            } else if let Some((k, v)) = x.text.split_once('=') {
                self.aliases.insert(k.to_string(), v.to_string());
            }
        }
        self.add(Risk::Low, format!("{name} changes aliases"), argv);
    }

    fn unset(&mut self, argv: &[Arg]) {
        let args = &argv[1..];
        let functions = args.iter().any(|a| a.s() == "-f");
        for x in args {
            self.vars.remove(x.s());
            self.choices.remove(x.s());
            if functions {
                self.functions.remove(x.s());
            }
        }
        self.add(Risk::Low, "unset removes variables", argv);
    }

    /// `set -- a b c` (or `set a b c`) sets `$1...`.
    fn set_positional(&mut self, argv: &[Arg]) {
        let args = &argv[1..];
        if let Some(i) = args.iter().position(|a| a.s() == "--") {
            self.positional = Some(args[i + 1..].iter().map(|a| a.text.clone()).collect());
        } else if args.first().is_some_and(|a| !a.s().starts_with(['-', '+'])) {
            self.positional = Some(args.iter().map(|a| a.text.clone()).collect());
        }
        self.add(Risk::Low, "set changes shell options", argv);
    }

    /// `printf -v VAR FORMAT ARGS`: VAR gets what printf would print.
    fn printf_var(&mut self, argv: &[Arg]) -> bool {
        let args = &argv[1..];
        let Some(i) = args.iter().position(|a| a.s() == "-v") else {
            return false;
        };
        let var = args.get(i + 1).map(|a| a.text.clone()).unwrap_or_default();
        let rest: Vec<&str> = args[(i + 2).min(args.len())..]
            .iter()
            .map(|a| a.s())
            .collect();
        let dynamic = args.iter().any(|a| a.dynamic());
        match rest
            .split_first()
            .and_then(|(f, r)| super::decode::printf(f, r))
        {
            Some(v) if !dynamic => {
                self.vars.insert(var, vec![v]);
            }
            _ => {
                self.vars.remove(&var);
            }
        }
        self.add(Risk::Low, "printf -v sets a variable", argv);
        true
    }

    fn cd(&mut self, name: &str, argv: &[Arg]) {
        let target = argv[1..]
            .iter()
            .find(|a| !a.s().starts_with('-') || a.s() == "-");
        self.cwd = match (name, target) {
            ("popd", _) => None,
            (_, None) => Some("~".into()),
            (_, Some(t)) if t.dynamic() || t.s() == "-" => None,
            (_, Some(t)) => {
                let p = self.abs(&t.text);
                if p.starts_with('/') {
                    Some(normalize(&p))
                } else if p.starts_with('~') {
                    Some(p)
                } else {
                    None
                }
            }
        };
        self.add(
            Risk::Low,
            format!("{name} changes the working directory"),
            argv,
        );
    }

    /// `command -v X`, `type X`: a lookup. `command X ARGS` runs X.
    fn command_lookup(&mut self, name: &str, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        if name == "command" && !args.iter().any(|a| matches!(a.s(), "-v" | "-V")) {
            let rest: Vec<Arg> = args
                .iter()
                .skip_while(|a| a.s().starts_with('-'))
                .cloned()
                .collect();
            self.command(rest, input);
            return;
        }
        self.add(Risk::Low, format!("{name} looks a command up"), argv);
    }

    /// `read [-a ARRAY] NAMES...`: the first line of the input into NAMES; every line, in
    /// turn, for a single NAME in a `while read` loop.
    fn read(&mut self, args: &[Arg], input: &Input, argv: &[Arg]) {
        let mut names = vec![];
        let mut array = None;
        let mut i = 0;
        while i < args.len() {
            let s = args[i].s();
            match s {
                "-a" => {
                    array = args.get(i + 1).map(|a| a.text.clone());
                    i += 2;
                    continue;
                }
                "-d" | "-p" | "-t" | "-u" | "-n" | "-N" | "-i" => {
                    i += 2;
                    continue;
                }
                s if s.starts_with('-') => {}
                _ => names.push(args[i].text.clone()),
            }
            i += 1;
        }
        if names.is_empty() && array.is_none() {
            names.push("REPLY".into());
        }
        let lines: Option<Vec<String>> =
            input.text().map(|t| t.lines().map(String::from).collect());
        for n in names.iter().chain(array.iter()) {
            self.vars.remove(n);
            self.choices.remove(n);
        }
        if let Some(lines) = lines {
            let first = lines.first().cloned().unwrap_or_default();
            if let Some(a) = array {
                self.vars
                    .insert(a, first.split_whitespace().map(String::from).collect());
            } else if names.len() == 1 && lines.len() > 1 {
                // `... | while read x; do ...`: x takes every line in turn.
                self.choices.insert(
                    names[0].clone(),
                    lines.iter().map(|l| l.trim().to_string()).collect(),
                );
            } else {
                let mut words = first.split_whitespace();
                for (k, n) in names.iter().enumerate() {
                    let v = if k + 1 == names.len() {
                        words.by_ref().collect::<Vec<_>>().join(" ")
                    } else {
                        words.next().unwrap_or("").to_string()
                    };
                    self.vars.insert(n.clone(), vec![v]);
                }
            }
        }
        self.add(Risk::Low, "read reads a line", argv);
    }
}
