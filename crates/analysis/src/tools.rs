//! What the failing command was: the tool tables (`tools/*.toml`, one file per family) map the
//! commands CI jobs run to what their failure means. `stylelint`, `awesome_bot`, `sbt test` or
//! `Invoke-Pester` failing says lint or tests even when the error text is new to the knowledge
//! base; a script named `check-format.sh` or a stage named "Unit tests" says less, through the
//! keyword table.

use crate::category::Category;
use crate::glob::Pattern;
use serde::Deserialize;
use std::collections::HashMap;

/// The built-in tool tables, compiled into the binary: (family, TOML text).
pub const BUILTIN_TOOLS: &[(&str, &str)] = &[
    ("linters", include_str!("tools/linters.toml")),
    ("test_runners", include_str!("tools/test_runners.toml")),
    ("compilers", include_str!("tools/compilers.toml")),
    (
        "package_managers",
        include_str!("tools/package_managers.toml"),
    ),
    ("deploy", include_str!("tools/deploy.toml")),
    ("words", include_str!("tools/words.toml")),
];

/// A group of commands whose failure means the same thing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolGroup {
    /// What these tools are, and why their failure means `category`.
    pub what: String,
    pub category: Category,
    /// How much the command alone says (0..1); specific signatures weigh 0.7–0.9.
    pub weight: f64,
    /// Categories whose lines inside the failing step are this tool's findings, not a failure
    /// of their own (a link checker's dead URLs are not a network outage).
    #[serde(default)]
    pub absorbs: Vec<Category>,
    /// Invocations: the program, then words that must follow it in the same command, in
    /// order (`sbt test*`: `sbt`, later a word starting with `test`).
    #[serde(default)]
    pub cmds: Vec<String>,
    /// Words of a command or step name (split at punctuation and camelCase) that say what it
    /// does: `scripts/check-links.sh`, stage "Lint".
    #[serde(default)]
    pub words: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolFile {
    /// Words that run another command (`sudo`, `travis_retry`, `bundle exec`, `python -m`).
    #[serde(default)]
    wrappers: Vec<String>,
    /// Hosts that serve packages: a network error naming one is a dependency download.
    #[serde(default)]
    registries: Vec<String>,
    /// Where installed dependencies live: a compile error there is a dependency conflict.
    #[serde(default)]
    dependency_dirs: Vec<String>,
    /// Commands whose arguments say nothing about what a step does (`echo` messages, `cd`
    /// paths): in a script, their words are left out.
    #[serde(default)]
    printers: Vec<String>,
    /// Prefixes of the error messages a step prints itself (GitHub's `##[error]`), and of
    /// the runner's own lines among them that say nothing (`Process completed with exit code`).
    #[serde(default)]
    messages: Vec<String>,
    #[serde(default)]
    not_messages: Vec<String>,
    #[serde(default)]
    group: Vec<ToolGroup>,
}

/// What the command says about the failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolHit {
    /// The matching invocation or word.
    pub name: String,
    pub category: Category,
    pub weight: f64,
    pub absorbs: Vec<Category>,
    /// From an invocation (true) or only from a word of the command (false).
    pub tool: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("tool table {family}: {message}")]
    Toml { family: String, message: String },
    #[error("tool table {family}, group {what:?}: {message}")]
    Entry {
        family: String,
        what: String,
        message: String,
    },
}

/// One parsed invocation: program pattern and the words after it.
#[derive(Debug, Clone)]
struct Invocation {
    words: Vec<String>,
    /// Each word as a pattern (`phpunit*` is a prefix).
    patterns: Vec<Pattern>,
    group: usize,
}

/// The tool tables compiled for lookup.
#[derive(Debug, Default)]
pub struct ToolTable {
    groups: Vec<ToolGroup>,
    /// Program word (without a trailing `*`) → invocations starting with it.
    by_program: HashMap<String, Vec<Invocation>>,
    /// Invocations whose program is a prefix (`phpunit*`).
    prefixed: Vec<Invocation>,
    words: HashMap<String, usize>,
    wrappers: Vec<Vec<String>>,
    registries: Vec<String>,
    dependency_dirs: Vec<String>,
    printers: Vec<String>,
    messages: Vec<String>,
    not_messages: Vec<String>,
}

fn valid_word(w: &str) -> bool {
    let body = w.strip_suffix('*').unwrap_or(w);
    !body.is_empty() && !body.contains('*') && !body.chars().any(char::is_whitespace)
}

impl ToolTable {
    pub fn builtin() -> Result<ToolTable, ToolError> {
        Self::parse(BUILTIN_TOOLS)
    }

    /// Parse and check tool tables given as (family, TOML text).
    pub fn parse(files: &[(&str, &str)]) -> Result<ToolTable, ToolError> {
        let mut t = ToolTable::default();
        let mut seen: HashMap<String, Category> = HashMap::new();
        for (family, text) in files {
            let f: ToolFile = toml::from_str(text).map_err(|e| ToolError::Toml {
                family: family.to_string(),
                message: e.message().to_string(),
            })?;
            t.registries
                .extend(f.registries.iter().map(|r| r.to_ascii_lowercase()));
            t.dependency_dirs.extend(f.dependency_dirs);
            t.printers
                .extend(f.printers.iter().map(|p| p.to_ascii_lowercase()));
            t.messages.extend(f.messages);
            t.not_messages.extend(f.not_messages);
            for w in f.wrappers {
                t.wrappers
                    .push(w.split_whitespace().map(str::to_lowercase).collect());
            }
            for g in f.group {
                let bad = |message: String| ToolError::Entry {
                    family: family.to_string(),
                    what: g.what.clone(),
                    message,
                };
                if !(0.0..=1.0).contains(&g.weight) {
                    return Err(bad("weight must be between 0 and 1".into()));
                }
                if g.cmds.is_empty() && g.words.is_empty() {
                    return Err(bad("neither cmds nor words".into()));
                }
                let gi = t.groups.len();
                for c in &g.cmds {
                    let words: Vec<String> = c.split_whitespace().map(str::to_lowercase).collect();
                    if words.is_empty() || !words.iter().all(|w| valid_word(w)) {
                        return Err(bad(format!("invalid command {c:?}")));
                    }
                    let key = words.join(" ");
                    if let Some(prev) = seen.insert(key.clone(), g.category) {
                        return Err(bad(format!("{key:?} is listed twice (also {prev})")));
                    }
                    let patterns = words.iter().map(|w| Pattern::prefix(w, false)).collect();
                    let inv = Invocation {
                        words,
                        patterns,
                        group: gi,
                    };
                    if inv.words[0].ends_with('*') {
                        t.prefixed.push(inv);
                    } else {
                        t.by_program
                            .entry(inv.words[0].clone())
                            .or_default()
                            .push(inv);
                    }
                }
                for w in &g.words {
                    let w = w.to_lowercase();
                    if !w.chars().all(|c| c.is_ascii_alphanumeric()) || w.is_empty() {
                        return Err(bad(format!("invalid word {w:?}")));
                    }
                    if t.words.insert(w.clone(), gi).is_some() {
                        return Err(bad(format!("word {w:?} is listed twice")));
                    }
                }
                t.groups.push(g);
            }
        }
        Ok(t)
    }

    /// Whether a line names a package registry (`crates.io`, `registry.npmjs.org`, `pypi.org`).
    pub fn mentions_registry(&self, text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        self.registries.iter().any(|r| lower.contains(r.as_str()))
    }

    /// Whether a line names a path inside installed dependencies (`~/.cargo/registry/…`,
    /// `node_modules/…`, `site-packages/…`).
    pub fn in_dependency(&self, text: &str) -> bool {
        self.dependency_dirs
            .iter()
            .any(|d| text.contains(d.as_str()))
    }

    /// Number of invocations and words known.
    pub fn len(&self) -> usize {
        self.by_program.values().map(Vec::len).sum::<usize>()
            + self.prefixed.len()
            + self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hit(&self, name: String, group: usize, tool: bool) -> ToolHit {
        let g = &self.groups[group];
        ToolHit {
            name,
            category: g.category,
            weight: g.weight,
            absorbs: g.absorbs.clone(),
            tool,
        }
    }

    /// A script without its comments and the messages it prints.
    pub fn without_messages(&self, script: &str) -> String {
        script
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                let first = t.split_whitespace().next().unwrap_or("");
                !t.is_empty()
                    && !t.starts_with('#')
                    && !self.printers.iter().any(|p| first.eq_ignore_ascii_case(p))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The text of an error message a step printed itself, if `line` is one.
    pub fn message_of<'l>(&self, line: &'l str) -> Option<&'l str> {
        let t = line.trim_start();
        let text = self
            .messages
            .iter()
            .find_map(|m| t.strip_prefix(m.as_str()))?;
        let said = !self
            .not_messages
            .iter()
            .any(|n| text.starts_with(n.as_str()));
        said.then_some(text)
    }

    /// The tools a command line runs, in order of appearance (one hit per simple command at
    /// most: the longest invocation that matches it).
    pub fn tools_in(&self, command: &str) -> Vec<ToolHit> {
        let mut out = Vec::new();
        for simple in simple_commands(command) {
            let words = self.strip_wrappers(&simple);
            let Some(program) = words.first() else {
                continue;
            };
            // `phpstan.phar`, `lint.sh`: the program without its file type too.
            let bare = program
                .rsplit_once('.')
                .filter(|(_, ext)| SCRIPT_TYPES.contains(ext))
                .map(|(stem, _)| stem);
            let cands = [Some(program.as_str()), bare]
                .into_iter()
                .flatten()
                .flat_map(|p| self.by_program.get(p).into_iter().flatten())
                .chain(
                    self.prefixed
                        .iter()
                        .filter(|i| i.patterns[0].is_match(program)),
                );
            // The longest invocation that matches; the first of equals.
            let best = cands
                .filter(|inv| follows(&inv.patterns[1..], &words[1..]))
                .min_by_key(|inv| std::cmp::Reverse(inv.words.len()));
            if let Some(inv) = best {
                out.push(self.hit(inv.words.join(" "), inv.group, true));
            }
        }
        out
    }

    /// What the words of a command or step name say (`check-links.sh`, "Unit tests"); a word
    /// that is a known tool's name says what that tool says (a GitHub action named after the tool
    /// it runs: `codespell-project/actions-codespell@v2`, `DavidAnson/markdownlint-cli2-action`).
    pub fn words_in(&self, text: &str) -> Vec<ToolHit> {
        let mut out: Vec<ToolHit> = Vec::new();
        let words = sub_words(text);
        // `type-check`, `spell_check`: a word written in two parts says what the word says.
        let joined = words.windows(2).map(|p| p.concat());
        for w in words.iter().cloned().chain(joined) {
            // `test2`, `lint3` say what `test`, `lint` say.
            let bare = w.trim_end_matches(|c: char| c.is_ascii_digit());
            let g = self
                .words
                .get(&w)
                .or_else(|| self.words.get(bare))
                .or_else(|| self.single_word_tool(&w));
            if let Some(&g) = g {
                if !out.iter().any(|h| h.category == self.groups[g].category) {
                    out.push(self.hit(w, g, false));
                }
            }
        }
        out
    }

    /// The group of a tool invoked by its name alone (`codespell`, `danger`), for a word of
    /// at least 5 letters (shorter names are common words).
    fn single_word_tool(&self, word: &str) -> Option<&usize> {
        if word.len() < 5 {
            return None;
        }
        self.by_program
            .get(word)?
            .iter()
            .find(|inv| inv.words.len() == 1)
            .map(|inv| &inv.group)
    }

    /// Leading wrappers, variable assignments and durations are not the program.
    fn strip_wrappers(&self, words: &[String]) -> Vec<String> {
        let mut i = 0;
        'outer: while i < words.len() {
            let w = &words[i];
            if w.contains('=') && !w.starts_with('-') || w.starts_with('$') || is_duration(w) {
                i += 1;
                continue;
            }
            for wr in &self.wrappers {
                if words.len() >= i + wr.len() && words[i..i + wr.len()] == wr[..] {
                    i += wr.len();
                    // Options of the wrapper (`sudo -E`, `timeout -s KILL`).
                    while i < words.len() && words[i].starts_with('-') {
                        i += 1;
                    }
                    continue 'outer;
                }
            }
            break;
        }
        words[i..].to_vec()
    }
}

/// File types of programs that are scripts or archives of a tool.
const SCRIPT_TYPES: &[&str] = &[
    "phar", "sh", "bash", "py", "pl", "rb", "js", "mjs", "ps1", "jar", "exs",
];

/// Whether `pattern` words appear in `words` in order (not necessarily adjacent).
fn follows(pattern: &[Pattern], words: &[String]) -> bool {
    let mut it = words.iter();
    pattern.iter().all(|p| it.any(|w| p.is_match(w)))
}

fn is_duration(w: &str) -> bool {
    let digits = w.trim_end_matches(['s', 'm', 'h', 'd']);
    !digits.is_empty() && digits.len() + 1 >= w.len() && digits.chars().all(|c| c.is_ascii_digit())
}

/// The simple commands of a command line, each as normalised words: lower case, quotes and
/// brackets dropped, paths reduced to their last component, `.exe`/`.bat`/`.cmd` dropped.
pub fn simple_commands(command: &str) -> Vec<Vec<String>> {
    let lower = command.to_lowercase();
    let spaced: String = lower
        .chars()
        .map(|c| match c {
            '"' | '\'' | '`' | '(' | ')' | '{' | '}' | '[' | ']' => ' ',
            '&' | '|' | ';' | '\n' => '\u{1}',
            c => c,
        })
        .collect();
    spaced
        .split('\u{1}')
        .map(|s| {
            s.split_whitespace()
                .map(|w| {
                    let w = w.trim_end_matches([',', ':']);
                    let base = match w.rfind('/') {
                        Some(i) if i + 1 < w.len() => &w[i + 1..],
                        _ => w,
                    };
                    let base = base
                        .strip_suffix(".exe")
                        .or_else(|| base.strip_suffix(".bat"))
                        .or_else(|| base.strip_suffix(".cmd"))
                        .unwrap_or(base);
                    base.to_string()
                })
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|ws| !ws.is_empty())
        .collect()
}

/// Lower-case words of a text split at punctuation and camelCase humps
/// (`checkJSCurrent.sh` → check, js, current, sh; `e2e` stays one word).
pub fn sub_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() || (c.is_ascii_digit() && cur.is_empty()) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            // `checkJS` and `JSCurrent` both split before the hump.
            if (prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower))
                && !cur.is_empty()
            {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ToolTable {
        ToolTable::builtin().expect("the built-in tool tables parse")
    }

    fn first(cmd: &str) -> Option<(Category, String)> {
        table()
            .tools_in(cmd)
            .into_iter()
            .next()
            .map(|h| (h.category, h.name))
    }

    #[test]
    fn every_table_parses_and_is_large() {
        let t = table();
        for (family, text) in BUILTIN_TOOLS {
            ToolTable::parse(&[(family, text)]).unwrap();
        }
        assert!(t.len() >= 300, "only {} tools and words", t.len());
        for g in &t.groups {
            assert!(!g.what.is_empty());
            assert!(g.category != Category::Unknown, "{}", g.what);
        }
    }

    #[test]
    fn tools_decide_the_category_of_their_failure() {
        let cases = [
            ("stylelint 'src/**/*.css'", Category::LintError),
            ("swiftlint lint --strict", Category::LintError),
            ("awesome_bot README.md --allow-dupe", Category::LintError),
            ("mix format --check-formatted", Category::LintError),
            (
                "travis_retry ./sbt ++2.12.8 coverage test",
                Category::TestFailure,
            ),
            ("cabal test --enable-tests", Category::TestFailure),
            (
                "./node_modules/.bin/karma start --single-run",
                Category::TestFailure,
            ),
            ("pwsh -c 'Invoke-Pester -EnableExit'", Category::TestFailure),
            ("bundle exec rspec spec/models", Category::TestFailure),
            ("python -m pytest -x tests", Category::TestFailure),
            ("sudo -E mvn -B test", Category::TestFailure),
            ("cargo clippy -- -D warnings", Category::LintError),
        ];
        for (cmd, cat) in cases {
            assert_eq!(first(cmd).map(|x| x.0), Some(cat), "{cmd}");
        }
    }

    #[test]
    fn the_longest_invocation_wins_and_arguments_are_not_programs() {
        // `mix format` is lint, `mix test` tests, plain `mix compile` compilation.
        assert_eq!(first("mix test").unwrap().0, Category::TestFailure);
        assert_eq!(
            first("mix format --check-formatted").unwrap().0,
            Category::LintError
        );
        // eslint as an argument of an install is not a lint run.
        assert!(table()
            .tools_in("npm install eslint")
            .iter()
            .all(|h| h.category != Category::LintError));
        // Each simple command of a chain is looked at.
        let hits = table().tools_in("npm ci && npm run lint && npm test");
        let cats: Vec<Category> = hits.iter().map(|h| h.category).collect();
        assert!(cats.contains(&Category::LintError), "{hits:?}");
        assert!(cats.contains(&Category::TestFailure), "{hits:?}");
    }

    #[test]
    fn words_of_scripts_and_stage_names() {
        let t = table();
        let cat = |s: &str| t.words_in(s).first().map(|h| h.category);
        assert_eq!(cat("./scripts/check-links.sh"), Some(Category::LintError));
        assert_eq!(
            cat("./scripts/test-integration.sh"),
            Some(Category::TestFailure)
        );
        assert_eq!(cat("Unit Tests"), Some(Category::TestFailure));
        assert_eq!(cat("./tools/checkFormatting.sh"), Some(Category::LintError));
        assert_eq!(cat("./deploy.sh"), None);
        // GitHub actions named after the tool they run, and pull-request convention checks.
        assert_eq!(
            cat("codespell-project/actions-codespell@v2"),
            Some(Category::LintError)
        );
        assert_eq!(
            cat("DavidAnson/markdownlint-cli2-action@v17"),
            Some(Category::LintError)
        );
        assert_eq!(cat("actions/labeler@v5"), Some(Category::LintError));
        assert_eq!(
            cat("clowdhaus/actions/pr-title@v0.5.0"),
            Some(Category::LintError)
        );
        assert_eq!(cat("actions/checkout@v4"), None);
        assert_eq!(
            sub_words("checkJSCurrent.sh"),
            vec!["check", "js", "current", "sh"]
        );
    }

    #[test]
    fn bad_tables_are_refused_with_their_family() {
        let e = ToolTable::parse(&[(
            "x",
            "[[group]]\nwhat='w'\ncategory='lint_error'\nweight=2.0\ncmds=['a']",
        )])
        .unwrap_err();
        assert!(e.to_string().contains("tool table x"), "{e}");
        assert!(ToolTable::parse(&[(
            "x",
            "[[group]]\nwhat='w'\ncategory='nope'\nweight=0.5\ncmds=['a']"
        )])
        .is_err());
        assert!(ToolTable::parse(&[(
            "x",
            "[[group]]\nwhat='w'\ncategory='lint_error'\nweight=0.5\ncmds=['a b*c']"
        )])
        .is_err());
        let dup = "[[group]]\nwhat='w'\ncategory='lint_error'\nweight=0.5\ncmds=['a', 'a']";
        assert!(ToolTable::parse(&[("x", dup)]).is_err());
    }
}
