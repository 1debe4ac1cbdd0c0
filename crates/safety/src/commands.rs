//! Commands judged in code because their risk depends on the paths, processes or units they
//! are given (`rm`, `find`, `chmod`, `cp`, `dd`, `kill`, `systemctl`…), and the dispatch to
//! the other code-read commands. The paths they are judged against are in filesystem.toml,
//! the service lists in services.toml.

use super::content::Input;
use super::engine::{Arg, Ctx};
use super::paths::{basename, has_glob, is_home, normalize};
use crate::policy::Risk;

/// Command names read in code (besides shells and interpreters), for globbed names.
pub(super) const HANDLED: &[&str] = &[
    "rm",
    "unlink",
    "rmdir",
    "find",
    "shred",
    "wipe",
    "dd",
    "chmod",
    "chown",
    "chgrp",
    "setfacl",
    "chattr",
    "cp",
    "mv",
    "install",
    "ln",
    "rsync",
    "scp",
    "tee",
    "truncate",
    "fallocate",
    "sed",
    "tar",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "kill",
    "pkill",
    "killall",
    "killall5",
    "skill",
    "slay",
    "systemctl",
    "eval",
    "source",
    "su",
    "runuser",
    "sg",
    "env",
    "trap",
    "ansible",
    "crontab",
    "export",
    "declare",
    "read",
    "alias",
    "set",
    "command",
];

fn strs(args: &[Arg]) -> Vec<&str> {
    args.iter().map(|a| a.s()).collect()
}

/// Operands: arguments that are not options (everything after `--`).
fn operands(args: &[Arg]) -> Vec<&Arg> {
    let mut v = vec![];
    let mut end = false;
    for x in args {
        if end || !x.s().starts_with('-') || x.s() == "-" {
            v.push(x);
        } else if x.s() == "--" {
            end = true;
        }
    }
    v
}

/// Whether a short option cluster before `--` holds `c` (`-rf` holds `r`).
fn short(args: &[Arg], c: char) -> bool {
    args.iter()
        .map(|a| a.s())
        .take_while(|s| *s != "--")
        .any(|s| s.starts_with('-') && !s.starts_with("--") && s[1..].contains(c))
}

fn has(args: &[Arg], f: &str) -> bool {
    args.iter().any(|a| a.s() == f)
}

/// `./x` → `x`, so that `./*` reads as `*`.
fn relative(p: &str) -> &str {
    let mut p = p;
    while let Some(r) = p.strip_prefix("./") {
        p = r;
    }
    p
}

impl Ctx {
    /// The commands read in code; `false` sends the command on to the tables.
    pub(super) fn handle(&mut self, name: &str, argv: &[Arg], input: &Input) -> bool {
        let t = self.t;
        if t.interp.shells.iter().any(|s| s == name) {
            self.shell(argv, input);
            return true;
        }
        if t.interp.stdin_shells.iter().any(|s| s == name) {
            self.at(argv, input);
            return true;
        }
        if self.is_interpreter(name) {
            self.interpreter(name, argv, input);
            return true;
        }
        if t.paths.recursive_deleters.iter().any(|s| s == name) {
            self.rm(name, argv, true);
            return true;
        }
        if t.services.managers.iter().any(|m| m == name) {
            self.service(name, argv);
            return true;
        }
        match name {
            "eval" => self.eval(argv, input),
            "source" | "." => self.source(argv, input),
            "su" | "runuser" | "sg" => self.su(name, argv, input),
            "env" => self.env(argv, input),
            "trap" => self.trap(argv, input),
            "ansible" => self.ansible(argv, input),
            "crontab" => {
                self.crontab_lines(argv, input);
                return false;
            }
            "rm" | "unlink" | "rmdir" => self.rm(name, argv, false),
            "find" => self.find(argv),
            "shred" | "wipe" => self.shred(name, argv),
            "dd" => self.dd(argv),
            "chmod" | "chown" | "chgrp" | "setfacl" | "chattr" => self.permissions(name, argv),
            "cp" | "mv" | "install" | "ln" | "rsync" | "scp" => self.copy(name, argv, input),
            "tee" => self.tee(argv, input),
            "truncate" | "fallocate" => self.truncate(argv),
            "sed" => self.sed(argv),
            "tar" => self.tar(argv, input),
            "awk" | "gawk" | "mawk" | "nawk" => self.awk(name, argv),
            "kill" | "pkill" | "killall" | "killall5" | "skill" | "slay" => self.kill(name, argv),
            "systemctl" => self.systemctl(argv),
            "git" => {
                self.git_outside_workspace(argv);
                return false;
            }
            "terraform" | "tofu" | "terragrunt" => {
                self.destroy_plan(argv);
                return false;
            }
            "curl" | "wget" | "wget2" | "fetch" | "aria2c" | "curlie" => {
                self.download_target(name, argv);
                return false;
            }
            n => return self.builtin(n, argv, input),
        }
        true
    }

    /// `terraform plan -destroy -out F` then `terraform apply F`: applying a saved destroy plan
    /// destroys as `terraform destroy` does.
    fn destroy_plan(&mut self, argv: &[Arg]) {
        let a = strs(&argv[1..]);
        let out = a.iter().enumerate().find_map(|(i, s)| {
            s.strip_prefix("-out=")
                .or_else(|| s.strip_prefix("--out="))
                .map(String::from)
                .or_else(|| {
                    (matches!(*s, "-out" | "--out"))
                        .then(|| a.get(i + 1).map(|v| v.to_string()))
                        .flatten()
                })
        });
        let destroy = a.iter().any(|s| *s == "-destroy" || *s == "--destroy");
        if a.contains(&"plan") && destroy {
            if let Some(f) = out {
                let key = normalize(&self.abs(&f));
                self.destroy_plans.insert(key);
            }
        } else if a.contains(&"apply") {
            let applied = a
                .iter()
                .rev()
                .find(|s| !s.starts_with('-') && **s != "apply");
            if let Some(f) = applied {
                if self.destroy_plans.contains(&normalize(&self.abs(f))) {
                    self.add(
                        Risk::Refused,
                        "applies a saved destroy plan: destroys every resource it holds",
                        argv,
                    );
                }
            }
        }
    }

    /// `git clean -f` or `git reset --hard` in a checkout outside every CI workspace (a
    /// deploy host's `/srv/app`, `/etc`, `/`): what is not committed there is lost. Inside a
    /// workspace, or where it runs is unknown, the tables' verdict stands.
    fn git_outside_workspace(&mut self, argv: &[Arg]) {
        let args = &argv[1..];
        let (dir, at) = self.git_dir(args);
        let rest = &args[(at + 1).min(args.len())..];
        let (sub, dry) = (
            args.get(at).map_or("", |a| a.s()),
            short(rest, 'n') || has(rest, "--dry-run"),
        );
        let loses = match sub {
            "clean" => (short(rest, 'f') || has(rest, "--force")) && !dry,
            "reset" => has(rest, "--hard"),
            _ => false,
        };
        if !loses {
            return;
        }
        let pathspecs = operands(rest).into_iter().filter(|_| sub == "clean");
        let places = dir.into_iter().chain(pathspecs.map(|a| self.abs(&a.text)));
        for p in places {
            let outside =
                p.starts_with('~') || (p.starts_with('/') && !self.t.paths.in_workspace(&p));
            if outside {
                let reason = format!(
                    "git {sub} in {p}, outside any CI workspace, loses what is not committed there"
                );
                self.add(Risk::High, reason, argv);
                return;
            }
        }
    }

    /// Where git works (`-C`, `--work-tree`, the working directory) and the index of its
    /// subcommand.
    fn git_dir(&self, args: &[Arg]) -> (Option<String>, usize) {
        let mut dir = self.cwd.clone();
        let mut i = 0;
        while i < args.len() {
            let s = args[i].s();
            let value = match s {
                "-C" | "--work-tree" => {
                    i += 1;
                    args.get(i).map(|a| a.text.clone())
                }
                _ => s.strip_prefix("--work-tree=").map(String::from),
            };
            match value {
                Some(v) if v.starts_with(['/', '~']) => dir = Some(v),
                Some(v) => dir = dir.map(|d| format!("{}/{v}", d.trim_end_matches('/'))),
                None if matches!(s, "-c" | "--git-dir" | "--namespace" | "--config-env") => i += 1,
                None if s.starts_with('-') => {}
                None => break,
            }
            i += 1;
        }
        (dir, i)
    }

    fn rm(&mut self, name: &str, argv: &[Arg], always_recursive: bool) {
        let args = &argv[1..];
        if has(args, "--no-preserve-root") {
            self.add(Risk::Refused, "rm --no-preserve-root", argv);
            return;
        }
        let recursive = always_recursive
            || short(args, 'r')
            || short(args, 'R')
            || has(args, "--recursive")
            || (name == "rmdir" && short(args, 'p'));
        let targets = operands(args);
        if targets.is_empty() {
            self.add(Risk::Low, format!("{name} without a target"), argv);
            return;
        }
        let (level, reason) = self.deletion(&targets, recursive);
        self.add(level, reason, argv);
    }

    pub(super) fn deletion(&self, targets: &[&Arg], recursive: bool) -> (Risk, String) {
        let paths = &self.t.paths;
        let mut worst: Option<(Risk, String)> = None;
        let mut bump = |r: (Risk, String)| {
            if worst.as_ref().is_none_or(|w| r.0 > w.0) {
                worst = Some(r);
            }
        };
        let what = if recursive {
            "recursively deletes"
        } else {
            "deletes"
        };
        for t in targets {
            let t = &self.abs_arg(t);
            let p = t.if_empty();
            let home_glob = p
                .strip_prefix("~/")
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| "*?./".contains(c)));
            if t.dynamic() {
                bump(self.dynamic_deletion(t, recursive, home_glob));
                continue;
            }
            let n = normalize(&p);
            if recursive && paths.is_root_or_top(&p) {
                bump((
                    Risk::Refused,
                    format!("{what} {}", if has_glob(&p) { p.clone() } else { n }),
                ));
            } else if let Some(parent) =
                recursive.then(|| essential_everything(paths, &n)).flatten()
            {
                let level = if paths.is_system_path(&parent) {
                    Risk::Refused
                } else {
                    Risk::High
                };
                bump((level, format!("{what} everything in {parent}")));
            } else if is_home(&p) || (recursive && home_glob) {
                bump((Risk::Refused, format!("{what} a home directory ({p})")));
            } else if paths.is_critical_file(&p) || paths.is_block_device(&p) {
                bump((Risk::Refused, format!("{what} {n}")));
            } else if let Some((d, whole)) = paths.data_dir(&p).filter(|_| recursive) {
                if whole {
                    bump((d.level, format!("{what} {n}: {}", d.reason)));
                } else {
                    bump((
                        Risk::High,
                        format!("{what} {n}, part of the data in {}", d.path),
                    ));
                }
            } else if let Some(why) = paths.holds_data(&p).filter(|_| recursive) {
                bump((Risk::High, format!("{what} {n}, {why}")));
            } else if paths.is_db_file(&p) {
                bump((Risk::High, format!("{what} the database file {n}")));
            } else if paths.is_regenerable(&p) {
                bump((
                    Risk::Medium,
                    format!("{what} {n}, a cache downloaded again"),
                ));
            } else if paths.is_system_path(&p)
                || (p.starts_with('/') && n.starts_with("/etc") && recursive)
            {
                bump((Risk::High, format!("{what} the system path {n}")));
            } else if matches!(relative(&p), "." | ".." | "*" | ".*" | "" | "*/" | "**")
                || relative(&p).starts_with("../")
            {
                if recursive {
                    bump((
                        Risk::High,
                        format!("{what} {p} relative to wherever it runs"),
                    ));
                }
            } else {
                bump((Risk::Medium, format!("{what} {p}")));
            }
        }
        worst.unwrap_or((Risk::Low, "deletes nothing".to_string()))
    }

    /// Deleting a path with a part only the run knows: refused when it is `/` or a home with
    /// that part empty, medium below the temporary directory or below a place whose
    /// deletion is medium itself (`dist/$APP`), high otherwise.
    fn dynamic_deletion(&self, t: &Arg, recursive: bool, home_glob: bool) -> (Risk, String) {
        let paths = &self.t.paths;
        let what = if recursive {
            "recursively deletes"
        } else {
            "deletes"
        };
        if let Some(rest) = t.below_temp().filter(|r| self.plain_below(r)) {
            return (
                Risk::Medium,
                format!("{what} {rest} below the run's temporary or work directory"),
            );
        }
        let p = t.if_empty();
        if recursive && (paths.is_root_or_top(&p) || is_home(&p) || home_glob) {
            let shown = t.shown();
            let n = normalize(&p);
            return (
                Risk::Refused,
                format!("{what} {shown}, which is {n} when the variable is empty"),
            );
        }
        let shown = t.shown();
        match filled(t) {
            Some([a, b]) if self.deletion(&[&a, &b], recursive).0 <= Risk::Medium => (
                Risk::Medium,
                format!(
                    "{what} {shown}, below {} (the rest is computed at run time)",
                    b.text
                ),
            ),
            _ => (
                Risk::High,
                format!("{what} a path computed at run time ({shown})"),
            ),
        }
    }

    /// A path below the temporary directory that stays there: a first component that is
    /// neither a top-level directory's name nor a pattern matching one (`$TMPDIR/`*).
    fn plain_below(&self, rest: &str) -> bool {
        let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        rest.starts_with('/')
            && !first.is_empty()
            && !first.chars().all(|c| "*?.".contains(c))
            && !self.t.paths.top_level.iter().any(|t| t == first)
    }

    fn find(&mut self, argv: &[Arg]) {
        let args = &argv[1..];
        let a = strs(args);
        let resolved: Vec<Arg> = args
            .iter()
            .take_while(|x| !x.s().starts_with('-') && x.s() != "(" && x.s() != "!")
            .map(|x| self.abs_arg(x))
            .collect();
        let starts: Vec<Arg> = if resolved.is_empty() {
            vec![self.abs_arg(&Arg::literal("."))]
        } else {
            resolved.into_iter().take(4).collect()
        };
        let below_only = a
            .windows(2)
            .any(|w| w[0] == "-mindepth" && w[1].parse::<u32>().is_ok_and(|d| d >= 1));
        let narrowed = narrows(&a);
        if a.contains(&"-delete") {
            let (level, reason) = self.find_deletion(&starts, below_only, narrowed);
            self.add(level, reason, argv);
        } else {
            self.add(Risk::Low, "find lists files", argv);
        }
        let deleters = ["rm", "unlink", "shred", "rimraf", "srm", "wipe"];
        let mut i = 0;
        while i < a.len() {
            if matches!(a[i], "-exec" | "-execdir" | "-ok" | "-okdir") {
                let end = a[i + 1..]
                    .iter()
                    .position(|s| *s == ";" || *s == "+")
                    .map_or(a.len(), |p| i + 1 + p);
                let cmd: Vec<Arg> = args[i + 1..end].to_vec();
                let deletes = cmd
                    .first()
                    .is_some_and(|c| deleters.contains(&basename(c.s())));
                if deletes && (narrowed || below_only) {
                    let (level, reason) = self.find_deletion(&starts, below_only, narrowed);
                    self.add(level, reason, &cmd);
                } else {
                    for start in &starts {
                        let mut cmd = cmd.clone();
                        for c in cmd.iter_mut() {
                            if c.text.contains("{}") {
                                c.text = c.text.replace("{}", &start.text);
                            }
                        }
                        // Applied to every file below the start: as good as recursive.
                        if cmd.first().is_some_and(|c| basename(c.s()) == "rm") {
                            cmd.insert(1, Arg::literal("-r"));
                        }
                        self.command(cmd, &Input::Outside);
                    }
                }
                i = end;
            }
            i += 1;
        }
    }

    /// What `find START ... -delete` (or `-exec rm`) deletes: START itself, everything
    /// below it (`-mindepth 1`), or only the files its tests select.
    fn find_deletion(&self, starts: &[Arg], below_only: bool, narrowed: bool) -> (Risk, String) {
        let paths = &self.t.paths;
        if narrowed {
            let mut worst = (
                Risk::Medium,
                "find deletes the files it selects".to_string(),
            );
            for s in starts {
                let p = s.if_empty();
                let n = normalize(&p);
                let top = n.strip_prefix('/').is_some_and(|rest| {
                    !rest.is_empty()
                        && !rest.contains('/')
                        && rest != "tmp"
                        && paths.top_level.iter().any(|t| t == rest)
                });
                let r = if s.dynamic() {
                    (
                        Risk::High,
                        format!(
                            "find deletes files below a path computed at run time ({})",
                            s.shown()
                        ),
                    )
                } else if n == "/"
                    || top
                    || paths.is_system_path(&p)
                    || is_home(&p)
                    || paths.data_dir(&p).is_some()
                {
                    (
                        Risk::High,
                        format!("find deletes the files it selects below {n}"),
                    )
                } else {
                    (
                        Risk::Medium,
                        format!("find deletes the files it selects below {p}"),
                    )
                };
                if r.0 > worst.0 {
                    worst = r;
                }
            }
            return worst;
        }
        let targets: Vec<Arg> = if below_only {
            starts
                .iter()
                .map(|s| Arg {
                    text: format!("{}/*", s.text.trim_end_matches('/')),
                    ..s.clone()
                })
                .collect()
        } else {
            starts.to_vec()
        };
        let refs: Vec<&Arg> = targets.iter().collect();
        self.deletion(&refs, true)
    }

    fn shred(&mut self, name: &str, argv: &[Arg]) {
        let paths = &self.t.paths;
        for t in operands(&argv[1..]) {
            let p = t.if_empty();
            if paths.is_block_device(&p) || paths.is_critical_file(&p) || paths.is_root_or_top(&p) {
                self.add(Risk::Refused, format!("{name} destroys {p}"), argv);
                return;
            }
        }
        self.add(
            Risk::High,
            format!("{name} destroys data irreversibly"),
            argv,
        );
    }

    fn dd(&mut self, argv: &[Arg]) {
        match argv.iter().find(|x| x.s().starts_with("of=")) {
            Some(t) => {
                let t = Arg {
                    text: t.text[3..].to_string(),
                    ..t.clone()
                };
                self.write_target(&t, true, argv);
            }
            None => self.add(Risk::Low, "dd to standard output", argv),
        }
    }

    fn tee(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let append = short(args, 'a') || has(args, "--append");
        let targets: Vec<Arg> = operands(args).into_iter().cloned().collect();
        for t in &targets {
            if t.procsub.is_some() || (t.text == "/dev/fd/63" && !t.subs.is_empty()) {
                continue;
            }
            self.write_target(t, !append, argv);
            if let (Input::Given(content), false) = (input, t.dynamic()) {
                let key = normalize(&self.abs(&t.text));
                self.files.insert(key, content.clone());
            }
        }
        if targets.is_empty() {
            self.add(Risk::Low, "tee copies its input", argv);
        }
    }

    fn truncate(&mut self, argv: &[Arg]) {
        let with_value = [
            "-s",
            "--size",
            "-r",
            "--reference",
            "-l",
            "-o",
            "--length",
            "--offset",
        ];
        let args = &argv[1..];
        let mut i = 0;
        while i < args.len() {
            let s = args[i].s();
            if with_value.contains(&s) {
                i += 2;
                continue;
            }
            if !s.starts_with('-') {
                let t = args[i].clone();
                self.write_target(&t, true, argv);
            }
            i += 1;
        }
    }

    fn sed(&mut self, argv: &[Arg]) {
        let args = &argv[1..];
        let a = strs(args);
        let scripts: Vec<&str> = match a.iter().position(|s| *s == "-e" || *s == "--expression") {
            Some(_) => a
                .windows(2)
                .filter(|w| w[0] == "-e" || w[0] == "--expression")
                .map(|w| w[1])
                .collect(),
            None => operands(args).first().map(|x| x.s()).into_iter().collect(),
        };
        for s in &scripts {
            if let Some(cmd) = sed_executes(s) {
                self.add(
                    Risk::High,
                    "sed runs shell commands (the e command or flag)",
                    argv,
                );
                if !cmd.is_empty() {
                    self.nested(&cmd, Input::Outside, None);
                }
            }
        }
        if !a
            .iter()
            .any(|s| s.starts_with("-i") || s.starts_with("--in-place"))
        {
            self.add(Risk::Low, "sed filters text", argv);
            return;
        }
        let script_given = a
            .iter()
            .any(|s| *s == "-e" || *s == "-f" || *s == "--expression");
        let files: Vec<Arg> = operands(args)
            .into_iter()
            .skip(if script_given { 0 } else { 1 })
            .cloned()
            .collect();
        for f in &files {
            self.write_target(f, false, argv);
        }
        if files.is_empty() {
            self.add(Risk::Medium, "sed edits files in place", argv);
        }
    }

    fn tar(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        let a = strs(args);
        for (i, s) in a.iter().enumerate() {
            let script = s
                .strip_prefix("--to-command=")
                .or_else(|| s.strip_prefix("--checkpoint-action=exec="))
                .or_else(|| s.strip_prefix("--use-compress-program="))
                .or_else(|| s.strip_prefix("--info-script="))
                .or_else(|| s.strip_prefix("--new-volume-script="))
                .map(String::from)
                .or_else(|| {
                    matches!(
                        *s,
                        "--to-command" | "-I" | "--use-compress-program" | "-F" | "--info-script"
                    )
                    .then(|| a.get(i + 1).map(|x| x.to_string()))
                    .flatten()
                });
            if let Some(script) = script {
                self.add(Risk::High, "tar runs a command of its own", argv);
                let s = Arg {
                    text: script,
                    ..args[i].clone()
                };
                self.shell_string(&s, argv, input, &[]);
            }
        }
        if a.contains(&"--remove-files") {
            let members = tar_members(args);
            let (level, reason) = self.deletion(&members, true);
            self.add(
                level.max(Risk::Medium),
                format!("tar --remove-files {reason}"),
                argv,
            );
        }
        let extracting = a.iter().any(|s| {
            (s.starts_with('-') && !s.starts_with("--") && s.contains('x'))
                || (!s.starts_with('-') && s.contains('x') && s.len() <= 6 && a.first() == Some(s))
                || *s == "--extract"
                || *s == "--get"
        });
        if !extracting {
            self.add(Risk::Low, "tar creates or lists an archive", argv);
            return;
        }
        let paths = &self.t.paths;
        let into_system = a
            .windows(2)
            .any(|w| (w[0] == "-C" || w[0] == "--directory") && paths.is_system_path(w[1]))
            || a.iter().any(|s| {
                s.strip_prefix("-C")
                    .or_else(|| s.strip_prefix("--directory="))
                    .is_some_and(|d| d.starts_with('/') && paths.is_system_path(d))
            });
        if into_system {
            self.add(Risk::High, "tar extracts into a system path", argv);
        } else {
            self.add(Risk::Medium, "tar extracts files", argv);
        }
    }

    fn awk(&mut self, name: &str, argv: &[Arg]) {
        let args = &argv[1..];
        let mut i = 0;
        let mut program = None;
        while i < args.len() {
            match args[i].s() {
                "-F" | "-v" | "--assign" | "--field-separator" => i += 2,
                "-f" | "--file" => {
                    self.add(Risk::Medium, format!("{name} runs a program file"), argv);
                    return;
                }
                s if s.starts_with('-') && s.len() > 1 => i += 1,
                _ => {
                    program = Some(args[i].if_empty());
                    break;
                }
            }
        }
        let Some(p) = program else {
            self.add(Risk::Low, format!("{name} only reads or prints"), argv);
            return;
        };
        let runs = p.contains("system(")
            || p.contains("| getline")
            || p.contains("|getline")
            || p.contains("|&")
            || p.contains("| \"")
            || p.contains("|\"");
        if !runs {
            let level = if args.iter().any(|a| a.s() == "-i" || a.s() == "inplace") {
                Risk::Medium
            } else {
                Risk::Low
            };
            self.add(level, format!("{name} only reads or prints"), argv);
            return;
        }
        self.add(Risk::High, format!("{name} program runs commands"), argv);
        for e in super::inline::awk_commands(&p) {
            self.nested(&e, Input::Outside, None);
        }
    }

    fn permissions(&mut self, name: &str, argv: &[Arg]) {
        let paths = &self.t.paths;
        let args = &argv[1..];
        let recursive = args.iter().any(|a| {
            let s = a.s();
            s == "--recursive" || (s.starts_with('-') && !s.starts_with("--") && s.contains('R'))
        });
        let mut ops: Vec<&Arg> = vec![];
        let mut end = false;
        for x in args {
            let s = x.s();
            let is_mode = name == "chmod"
                && s.len() > 1
                && (s.starts_with('-') || s.starts_with('+'))
                && s[1..].chars().all(|c| "rwxXstugo,+-=".contains(c))
                && !matches!(s, "-R" | "-v" | "-f" | "-c");
            if end || !s.starts_with('-') || is_mode {
                ops.push(x);
            } else if s == "--" {
                end = true;
            }
        }
        let reference = args.iter().any(|a| a.s().starts_with("--reference"));
        let (spec, targets): (Option<&Arg>, Vec<&Arg>) = if reference {
            (None, ops)
        } else if name == "setfacl" {
            (None, ops.into_iter().skip(1).collect())
        } else {
            (ops.first().copied(), ops.into_iter().skip(1).collect())
        };
        let spec_s = spec.map(|s| s.if_empty()).unwrap_or_default();
        if targets.is_empty() {
            self.add(Risk::Low, format!("{name} without a target"), argv);
            return;
        }
        let mut worst = (
            Risk::Medium,
            format!("{name} {spec_s} changes permissions or ownership"),
        );
        for t in targets {
            let t = &self.abs_arg(t);
            let p = t.if_empty();
            let n = normalize(&p);
            let r = if recursive && (paths.is_root_or_top(&p) || is_home(&p)) {
                (
                    Risk::Refused,
                    format!("{name} -R on {}", if has_glob(&p) { p.clone() } else { n }),
                )
            } else if t.dynamic() {
                (
                    Risk::High,
                    format!("{name} on a path computed at run time ({})", t.shown()),
                )
            } else if n == "/"
                || paths.is_critical_file(&p)
                    && (spec_s.contains('7')
                        || spec_s.contains("o+w")
                        || spec_s.contains("a+w")
                        || name != "chmod")
            {
                (Risk::Refused, format!("{name} {spec_s} {n}"))
            } else if paths.is_system_path(&p) || (p.starts_with('/') && paths.is_root_or_top(&p)) {
                (Risk::High, format!("{name} on the system path {n}"))
            } else if name == "chmod"
                && (spec_s.contains('s')
                    || (spec_s.len() == 4 && spec_s.starts_with(['2', '4', '6'])))
            {
                (
                    Risk::High,
                    format!("chmod {spec_s} sets a set-user/group-id bit"),
                )
            } else {
                (Risk::Medium, format!("{name} {spec_s} {p}"))
            };
            if r.0 > worst.0 {
                worst = r;
            }
        }
        self.add(worst.0, worst.1, argv);
    }

    fn systemctl(&mut self, argv: &[Arg]) {
        let s = &self.t.services;
        let pos = operands(&argv[1..]);
        let sub = pos.first().map(|x| x.s()).unwrap_or("");
        let units: Vec<String> = pos.iter().skip(1).map(|x| x.s().to_string()).collect();
        let (level, reason) = if s.host_down.iter().any(|h| h == sub) {
            (
                Risk::Refused,
                format!("systemctl {sub} takes the host down"),
            )
        } else if s.state_changes.iter().any(|h| h == sub) {
            if units.iter().any(|u| {
                s.host_down_targets
                    .iter()
                    .any(|t| u.starts_with(t.as_str()))
            }) {
                (
                    Risk::Refused,
                    format!("systemctl {sub} {} takes the host down", units.join(" ")),
                )
            } else {
                (
                    Risk::High,
                    format!("systemctl {sub} changes the system state"),
                )
            }
        } else {
            let critical = units
                .iter()
                .any(|u| s.critical_units.iter().any(|c| c == unit_base(u)));
            let many = units.iter().any(|u| has_glob(u)) || units.len() >= 5;
            match self.service_action("systemctl", sub) {
                (Risk::Medium, r) if critical => (
                    Risk::High,
                    format!("{r} of a service the host depends on ({})", units.join(" ")),
                ),
                (Risk::Medium, r) if many => (
                    Risk::High,
                    format!("{r}: many services at once ({})", units.join(" ")),
                ),
                other => other,
            }
        };
        self.add(level, reason, argv);
    }

    fn service(&mut self, name: &str, argv: &[Arg]) {
        if has(argv, "--status-all") {
            self.add(Risk::Low, "lists services", argv);
            return;
        }
        let pos = operands(&argv[1..]);
        let first = pos.first().map(|x| x.s()).unwrap_or("");
        let second = pos.get(1).map(|x| x.s()).unwrap_or("");
        let (svc, action) = if matches!(name, "service" | "rc-service") {
            (first, second)
        } else {
            (second, first)
        };
        let (level, reason) = match self.service_action(&format!("{name} {svc}"), action) {
            (Risk::Medium, r)
                if self
                    .t
                    .services
                    .critical_units
                    .iter()
                    .any(|c| c == unit_base(svc)) =>
            {
                (Risk::High, format!("{r} the host depends on"))
            }
            other => other,
        };
        self.add(level, reason, argv);
    }

    fn service_action(&self, what: &str, action: &str) -> (Risk, String) {
        let s = &self.t.services;
        let is = |l: &[String]| l.iter().any(|a| a == action);
        if is(&s.low) {
            (Risk::Low, format!("{what} {action}").trim().to_string())
        } else if is(&s.medium) {
            (Risk::Medium, format!("{what} {action} stops a service"))
        } else if is(&s.high) {
            (
                Risk::High,
                format!("{what} {action} changes how the service manager runs the service"),
            )
        } else {
            (Risk::Medium, format!("{what} {action}"))
        }
    }

    fn kill(&mut self, name: &str, argv: &[Arg]) {
        let (level, reason) = self.kill_verdict(name, &argv[1..]);
        self.add(level, reason, argv);
    }

    fn kill_verdict(&self, name: &str, args: &[Arg]) -> (Risk, String) {
        let a = strs(args);
        if name == "killall5" {
            return (Risk::Refused, "killall5 kills every process".into());
        }
        let reloads = &self.t.services.reload_signals;
        let reload = a
            .iter()
            .any(|s| reloads.iter().any(|r| r == s.trim_start_matches('-')));
        if name == "kill" {
            let mut pids: Vec<&str> = vec![];
            let mut i = 0;
            let mut signal_seen = false;
            while i < a.len() {
                let s = a[i];
                if s == "--" {
                    pids.extend(a[i + 1..].iter().copied());
                    break;
                }
                if (s == "-s" || s == "-n") && !signal_seen {
                    signal_seen = true;
                    i += 2;
                    continue;
                }
                if s == "-l" || s == "-L" {
                    return (Risk::Low, "lists signals".into());
                }
                if s.starts_with('-') && !signal_seen && pids.is_empty() {
                    signal_seen = true;
                    i += 1;
                    continue;
                }
                pids.push(s);
                i += 1;
            }
            if pids.iter().any(|p| matches!(*p, "1" | "-1" | "0")) {
                return (Risk::Refused, "kill targets init or every process".into());
            }
            let found: Vec<&str> = args
                .iter()
                .flat_map(|x| x.subs.iter())
                .map(|s| s.as_str())
                .collect();
            if let Some(p) = self.critical_process(&found.join(" ")).filter(|_| !reload) {
                return (
                    Risk::High,
                    format!("kill stops {p}, which the host's services need"),
                );
            }
            if args.iter().any(|x| x.dynamic()) {
                return (Risk::Medium, "kill a process found at run time".into());
            }
            return (Risk::Medium, format!("kill {}", pids.join(" ")));
        }
        let targets: Vec<&str> = a.iter().filter(|s| !s.starts_with('-')).copied().collect();
        let everything = targets
            .iter()
            .any(|t| matches!(*t, "." | ".*" | "^" | "" | ".+" | "^.*$"));
        if targets.iter().any(|t| {
            matches!(
                *t,
                "init" | "systemd" | "sshd" | "dbus-daemon" | "systemd-journald"
            )
        }) || a.contains(&"-1")
            || everything
        {
            return (
                Risk::Refused,
                format!("{name} targets every process or one the host cannot live without"),
            );
        }
        if let Some(p) = targets
            .iter()
            .find_map(|t| self.critical_process(t))
            .filter(|_| !reload)
        {
            return (
                Risk::High,
                format!("{name} stops {p}, which the host's services need"),
            );
        }
        if a.contains(&"-u") || a.contains(&"--user") || targets.is_empty() {
            return (Risk::High, format!("{name} kills processes broadly"));
        }
        (Risk::Medium, format!("{name} {}", targets.join(" ")))
    }

    /// A process of a service the host depends on that `text` names (`postgres`, a pid
    /// file `/var/run/mysqld/mysqld.pid`, `pgrep -x dockerd`).
    fn critical_process(&self, text: &str) -> Option<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .map(|w| w.trim_matches(['.', '-']))
            .find(|w| self.t.services.critical_processes.iter().any(|p| p == w))
            .map(String::from)
    }

    fn copy(&mut self, name: &str, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        if name == "rsync" {
            self.rsync_shells(argv, input);
        }
        if name == "rsync" && (has(args, "--dry-run") || short(args, 'n')) {
            self.add(
                Risk::Low,
                "rsync --dry-run only lists what it would do",
                argv,
            );
            return;
        }
        let (sources, dest) = copy_operands(name, args);
        if let Some(verdict) = self.moves_away(name, &sources, dest, args) {
            self.add(verdict.0, verdict.1, argv);
            return;
        }
        let Some(d) = dest else {
            self.add(Risk::Medium, format!("{name} changes files"), argv);
            return;
        };
        if let [src] = sources.as_slice() {
            if let Some(content) = self.file_content(&src.text) {
                let key = normalize(&self.abs(&d.text));
                self.files.insert(key, content);
            }
        }
        if d.s().contains(':') && name != "ln" && !d.s().starts_with('/') {
            self.add(Risk::Medium, format!("{name} copies to another host"), argv);
            return;
        }
        let (level, reason) = self.classify_write(d);
        if level == Risk::Refused {
            self.add(level, format!("{name}{reason}"), argv);
        } else {
            self.add(
                level.max(Risk::Medium),
                format!("{name} writes{reason}"),
                argv,
            );
        }
    }

    /// `rsync -e CMD` / `--rsync-path=CMD`: commands rsync runs.
    fn rsync_shells(&mut self, argv: &[Arg], input: &Input) {
        let args = &argv[1..];
        for (i, a) in args.iter().enumerate() {
            let shell = match a.s() {
                "-e" | "--rsh" | "--rsync-path" => args.get(i + 1).cloned(),
                s => s
                    .strip_prefix("--rsh=")
                    .or_else(|| s.strip_prefix("--rsync-path="))
                    .map(|v| Arg {
                        text: v.to_string(),
                        ..a.clone()
                    }),
            };
            if let Some(sh) = shell {
                self.shell_string(&sh, argv, input, &[]);
            }
        }
    }

    /// `mv` of a top-level directory, a home or a critical file, or `rsync --delete` into
    /// one: as good as deleting it.
    fn moves_away(
        &self,
        name: &str,
        sources: &[&Arg],
        dest: Option<&Arg>,
        args: &[Arg],
    ) -> Option<(Risk, String)> {
        let paths = &self.t.paths;
        if name == "mv" {
            for s in sources {
                let p = self.abs(&s.if_empty());
                if paths.is_root_or_top(&p) || is_home(&p) || paths.is_critical_file(&p) {
                    return Some((Risk::Refused, format!("mv moves {} away", normalize(&p))));
                }
                if paths.is_system_path(&p) {
                    return Some((
                        Risk::High,
                        format!("mv moves the system path {}", normalize(&p)),
                    ));
                }
                // A service's data moved elsewhere is gone for the service.
                if paths.data_dir(&p).is_some() || paths.holds_data_by_place(&p).is_some() {
                    let n = normalize(&p);
                    return Some((Risk::High, format!("mv moves {n}, which holds data, away")));
                }
            }
        }
        let deletes = args
            .iter()
            .any(|s| s.s().starts_with("--delete") || s.s() == "--remove-source-files");
        if name == "rsync" && deletes {
            // `HOST:/path` is a path on that host, judged as here.
            let d = dest?;
            let local = match d.text.split_once(':') {
                Some((host, path)) if !host.contains('/') => Arg {
                    text: path.to_string(),
                    ..d.clone()
                },
                _ => d.clone(),
            };
            let (level, reason) = self.deletion(&[&local], true);
            let deploy = paths.holds_data(&local.text).is_some()
                && paths.holds_data_by_place(&local.text).is_none();
            if level >= Risk::High && !deploy {
                return Some((
                    level,
                    format!("rsync --delete into {}: {reason}", local.shown()),
                ));
            }
        }
        None
    }

    /// A file the command writes, truncating it or not.
    pub(super) fn write_target(&mut self, t: &Arg, truncates: bool, argv: &[Arg]) {
        let paths = &self.t.paths;
        let t = &self.abs_arg(t);
        let p = t.if_empty();
        if p.starts_with("/dev/tcp/") || p.starts_with("/dev/udp/") {
            let shell = argv.first().is_some_and(|a| {
                let n = basename(a.s());
                self.t.interp.shells.iter().any(|s| s == n)
            });
            if shell {
                self.add(Risk::Refused, "connects a shell to a remote host", argv);
            } else {
                self.add(Risk::Low, "opens a network connection", argv);
            }
            return;
        }
        if paths.is_harmless_device(&p) && !t.dynamic() {
            return;
        }
        let (level, reason) = self.write_verdict(t, truncates);
        self.add(level, reason, argv);
    }

    /// What writing the file `t` risks (already resolved against the working directory).
    fn write_verdict(&self, t: &Arg, truncates: bool) -> (Risk, String) {
        let paths = &self.t.paths;
        let p = t.if_empty();
        let n = normalize(&p);
        // Logs inside a data directory (`/var/lib/docker/containers/*/*-json.log`) are no data.
        let log = n.contains(".log") || n.split('/').any(|c| c == "log" || c == "logs");
        let data_file =
            paths.is_db_file(&p) || (paths.data_dir(&p).is_some_and(|(_, whole)| !whole) && !log);
        if let Some([a, b]) = filled(t) {
            let worst = self
                .write_verdict(&a, truncates)
                .0
                .max(self.write_verdict(&b, truncates).0);
            if worst <= Risk::Medium {
                return (
                    Risk::Medium,
                    format!("writes {}, below {}", t.shown(), b.text),
                );
            }
        }
        if paths.is_block_device(&p) {
            (Risk::Refused, format!("writes to the device {p}"))
        } else if n == "/proc/sysrq-trigger" {
            (
                Risk::Refused,
                "writes to /proc/sysrq-trigger (reboot, crash)".to_string(),
            )
        } else if paths.is_critical_file(&p) {
            if truncates {
                (Risk::Refused, format!("overwrites {n}"))
            } else {
                (Risk::High, format!("changes {n}"))
            }
        } else if t.below_temp().is_some_and(|r| self.plain_below(r)) {
            (
                Risk::Medium,
                format!("writes {} below the temporary directory", t.shown()),
            )
        } else if t.dynamic() {
            (
                Risk::High,
                format!("writes to a path computed at run time ({})", t.shown()),
            )
        } else if data_file {
            let verb = if truncates { "empties" } else { "changes" };
            (Risk::High, format!("{verb} {n}, a file of a database"))
        } else if paths.is_system_path(&p) {
            (Risk::High, format!("writes to the system path {p}"))
        } else {
            (Risk::Medium, format!("writes the file {p}"))
        }
    }

    pub(super) fn classify_write(&self, t: &Arg) -> (Risk, String) {
        let paths = &self.t.paths;
        let t = &self.abs_arg(t);
        let p = t.if_empty();
        if paths.is_block_device(&p) {
            (Risk::Refused, format!(" onto the device {p}"))
        } else if paths.is_critical_file(&p) {
            (Risk::Refused, format!(" over {}", normalize(&p)))
        } else if paths.is_db_file(&p) || paths.data_dir(&p).is_some_and(|(_, whole)| !whole) {
            (
                Risk::High,
                format!(" over {}, a file of a database", normalize(&p)),
            )
        } else if t.dynamic() {
            (
                Risk::High,
                format!(" to a path computed at run time ({})", t.shown()),
            )
        } else if paths.is_system_path(&p) || paths.is_root_or_top(&p) {
            (
                Risk::High,
                format!(" into the system path {}", normalize(&p)),
            )
        } else {
            (Risk::Medium, format!(" to {p}"))
        }
    }

    /// `curl -o FILE` / `wget -O FILE`: where the download lands, remembered so that running
    /// it later is recognised.
    fn download_target(&mut self, name: &str, argv: &[Arg]) {
        let args = &argv[1..];
        let a = strs(args);
        let out = a
            .windows(2)
            .find(|w| {
                matches!(w[0], "-o" | "--output" | "-O" | "--output-document")
                    && !(name == "curl" && w[0] == "-O")
            })
            .map(|w| w[1].to_string())
            .or_else(|| {
                a.iter().find_map(|s| {
                    s.strip_prefix("--output=")
                        .or_else(|| s.strip_prefix("--output-document="))
                        .map(String::from)
                })
            });
        let remote_name = name == "wget"
            || a.iter().any(|s| {
                matches!(*s, "-O" | "--remote-name" | "--remote-name-all")
                    || (name == "curl"
                        && s.starts_with('-')
                        && !s.starts_with("--")
                        && s.contains('O'))
            });
        let out = out.or_else(|| {
            remote_name
                .then(|| {
                    a.iter()
                        .rev()
                        .find(|s| s.contains("://"))
                        .map(|u| basename(u.split(['?', '#']).next().unwrap_or(u)).to_string())
                        .filter(|b| !b.is_empty())
                })
                .flatten()
        });
        if let Some(o) = out.filter(|o| o != "-" && !self.t.paths.is_harmless_device(o)) {
            self.downloaded.push(o.clone());
            let (level, reason) = self.classify_write(&Arg::literal(&o));
            self.add(
                level.max(Risk::Low),
                format!("downloads into {o}{reason}"),
                argv,
            );
        }
    }
}

/// The path with a stand-in for each part only the run knows (`dist/_` for `dist/$APP`),
/// and with those parts empty (`dist/`), when it starts with known text and cannot climb
/// out of it (no `..`).
fn filled(t: &Arg) -> Option<[Arg; 2]> {
    let (pre, _) = t.text.split_once(super::DYN)?;
    let safe = !pre.is_empty() && !t.text.contains("..") && !pre.contains(['*', '?', '[']);
    safe.then(|| {
        [
            Arg::literal(&t.text.replace(super::DYN, "_")),
            Arg::literal(&t.if_empty()),
        ]
    })
}

/// The sources and destination of `cp`/`mv`/`install`/`ln`/`rsync`/`scp`.
fn copy_operands<'a>(name: &str, args: &'a [Arg]) -> (Vec<&'a Arg>, Option<&'a Arg>) {
    const WITH_VALUE: [&str; 18] = [
        "-t",
        "--target-directory",
        "-S",
        "--suffix",
        "-m",
        "--mode",
        "-o",
        "--owner",
        "-g",
        "--group",
        "-e",
        "--rsh",
        "--exclude",
        "--include",
        "-P",
        "-i",
        "-F",
        "--rsync-path",
    ];
    let mut ops: Vec<&Arg> = vec![];
    let mut target_dir: Option<&Arg> = None;
    let mut i = 0;
    while i < args.len() {
        let s = args[i].s();
        if (s == "-t" || s == "--target-directory") && name != "rsync" {
            target_dir = args.get(i + 1);
            i += 2;
            continue;
        }
        if WITH_VALUE.contains(&s)
            && !(name == "rsync" && s == "-P")
            && !(name == "cp" && s == "-i")
        {
            i += 2;
            continue;
        }
        if !s.starts_with('-') || s == "-" {
            ops.push(&args[i]);
        }
        i += 1;
    }
    match target_dir {
        Some(t) => (ops, Some(t)),
        None if ops.len() >= 2 => (ops[..ops.len() - 1].to_vec(), ops.last().copied()),
        None => (ops, None),
    }
}

/// A unit's service name: `postgresql@16-main.service` and `postgresql-15` are `postgresql`.
fn unit_base(u: &str) -> &str {
    let base = u.split(['@', '.']).next().unwrap_or(u);
    match base
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .strip_suffix('-')
    {
        Some(name) if !name.is_empty() => name,
        _ => base,
    }
}

/// The files and directories `tar` is given to archive (not options or their values).
fn tar_members(args: &[Arg]) -> Vec<&Arg> {
    const SHORT_VALUES: &str = "fCTXbHgIFLNVK";
    const LONG_VALUES: [&str; 8] = [
        "--file",
        "--directory",
        "--files-from",
        "--exclude-from",
        "--exclude",
        "--format",
        "--listed-incremental",
        "--use-compress-program",
    ];
    let mut out = vec![];
    let mut i = 0;
    while i < args.len() {
        let s = args[i].s();
        let old_style = i == 0
            && s.chars().all(|c| c.is_ascii_alphabetic())
            && s.contains(['c', 'r', 'u', 'x', 't']);
        i += 1;
        if LONG_VALUES.contains(&s) {
            i += 1;
        } else if old_style || (s.starts_with('-') && !s.starts_with("--")) {
            i += s.chars().filter(|c| SHORT_VALUES.contains(*c)).count();
        } else if !s.starts_with('-') {
            out.push(&args[i - 1]);
        }
    }
    out
}

/// Whether find's tests select some files only (a name, an age, a size, an owner), so that
/// `-delete` does not take everything below the start.
fn narrows(a: &[&str]) -> bool {
    const TESTS: [&str; 24] = [
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-regex",
        "-iregex",
        "-mtime",
        "-mmin",
        "-atime",
        "-amin",
        "-ctime",
        "-cmin",
        "-size",
        "-newer",
        "-newermt",
        "-user",
        "-group",
        "-uid",
        "-gid",
        "-perm",
        "-empty",
        "-links",
        "-lname",
    ];
    a.iter().enumerate().any(|(i, t)| {
        TESTS.contains(t)
            && !(matches!(*t, "-name" | "-iname" | "-path" | "-wholename")
                && a.get(i + 1).is_some_and(|v| v.chars().all(|c| c == '*')))
    })
}

/// The essential directory whose whole content `n` (`/var/log/*`) names, if any.
fn essential_everything(paths: &super::tables::Paths, n: &str) -> Option<String> {
    let (parent, last) = n.rsplit_once('/')?;
    (!last.is_empty()
        && last.chars().all(|c| "*?".contains(c))
        && paths.essential.iter().any(|e| e == parent))
    .then(|| parent.to_string())
}

/// The shell command a sed program runs (`e CMD`, or an `s///e` flag: empty then), if any.
fn sed_executes(script: &str) -> Option<String> {
    for cmd in script.split(['\n', ';']) {
        let c = cmd.trim_start_matches(|ch: char| ch.is_ascii_digit() || " ,$!".contains(ch));
        if let Some(rest) = c.strip_prefix('e') {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return Some(rest.trim().to_string());
            }
        }
        let mut chars = c.chars();
        if chars.next() == Some('s') {
            if let Some(d) = chars.next() {
                let parts: Vec<&str> = c[1 + d.len_utf8()..].split(d).collect();
                if parts.len() >= 3 && parts[2].contains('e') {
                    return Some(String::new());
                }
            }
        }
    }
    None
}
