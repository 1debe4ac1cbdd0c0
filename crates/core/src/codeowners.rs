//! Who owns a file by a CODEOWNERS file (GitHub's and GitLab's syntax): `pattern owner…`
//! lines, `#` comments, gitignore-style patterns, and the last matching line wins. GitLab's
//! sections (`[Name]`, optional `^[Name]`, `[Name][2]`, each with default owners after the
//! header) are read apart: the last match of each section counts, and a rule naming nobody
//! takes its section's default owners.

use regex::Regex;

/// The owners the last matching rule names for `file` (a repository path, no leading `/`).
/// With GitLab sections, each section's last match, the later in the file first (later rules
/// take precedence), required sections before optional ones, without repeats. Empty when no
/// rule matches or the matching rules name nobody (an explicit "no owner").
pub fn owners(codeowners: &str, file: &str) -> Vec<String> {
    let file = file.trim_start_matches("./").trim_start_matches('/');
    // One entry per section (the unnamed one first): its name, whether it is optional, its
    // default owners and its last match.
    let mut sections: Vec<Section> = vec![Section::default()];
    let mut current = 0;
    for (n, line) in codeowners.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(h) = header(line) {
            // Sections with the same name (any case) are one; its rules from here on take
            // this header's default owners.
            let same = sections
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(&h.name));
            current = match same.filter(|&i| i > 0) {
                Some(i) => {
                    sections[i].defaults = h.defaults;
                    i
                }
                None => {
                    sections.push(h);
                    sections.len() - 1
                }
            };
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(pattern) = words.next() else {
            continue;
        };
        if matcher(pattern).is_some_and(|re| re.is_match(file)) {
            let s = &mut sections[current];
            let named: Vec<String> = words.map(str::to_string).collect();
            s.found = Some(if named.is_empty() {
                s.defaults.clone()
            } else {
                named
            });
            s.line = n;
        }
    }
    sections.sort_by_key(|s| (s.optional, std::cmp::Reverse(s.line)));
    let mut out: Vec<String> = Vec::new();
    for o in sections.into_iter().filter_map(|s| s.found).flatten() {
        if !out.contains(&o) {
            out.push(o);
        }
    }
    out
}

#[derive(Default)]
struct Section {
    name: String,
    optional: bool,
    defaults: Vec<String>,
    found: Option<Vec<String>>,
    /// The line of the last match.
    line: usize,
}

/// A GitLab section header: `^`? `[name]`, an optional `[approvals]`, default owners.
fn header(line: &str) -> Option<Section> {
    let (optional, rest) = match line.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, line),
    };
    let rest = rest.strip_prefix('[')?;
    let close = rest.find(']')?;
    let name = rest[..close].trim().to_string();
    let mut after = &rest[close + 1..];
    if let Some(r) = after.strip_prefix('[') {
        after = &r[r.find(']')? + 1..];
    }
    Some(Section {
        name,
        optional,
        defaults: after.split_whitespace().map(str::to_string).collect(),
        ..Default::default()
    })
}

/// A gitignore-style pattern as a regex over repository paths: anchored at the root when it
/// starts with or contains a `/`, else at any depth; `*` stays within a directory, `**`
/// crosses them; a match also covers everything below it.
fn matcher(pattern: &str) -> Option<Regex> {
    let anchored = pattern.starts_with('/') || pattern.trim_end_matches('/').contains('/');
    let dir_only = pattern.ends_with('/');
    let p = pattern.trim_start_matches('/').trim_end_matches('/');
    let mut body = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    body.push_str("(?:.*/)?");
                } else {
                    body.push_str(".*");
                }
            }
            '*' => body.push_str("[^/]*"),
            '?' => body.push_str("[^/]"),
            c => body.push_str(&regex::escape(&c.to_string())),
        }
    }
    let start = if anchored { "^" } else { "^(?:.*/)?" };
    let end = if dir_only { "/.*$" } else { "(?:/.*)?$" };
    Regex::new(&format!("{start}{body}{end}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Default owners\n\
        *       @octo-org/maintainers\n\
        *.js    @js-owner # inline comment\n\
        /docs/  docs@example.com\n\
        tests/api/ @alice @octo-org/api\n\
        **/logs @logger\n\
        /build/ \n\
        [Database]\n\
        db/*.sql @dba\n";

    #[test]
    fn the_last_matching_rule_wins() {
        let o = |f| owners(FILE, f);
        assert_eq!(o("src/main.rs"), ["@octo-org/maintainers"]);
        assert_eq!(o("web/app.js"), ["@js-owner"]);
        assert_eq!(o("docs/guide/intro.md"), ["docs@example.com"]);
        // Anchored: a docs directory elsewhere is not /docs/.
        assert_eq!(o("src/docs/x.md"), ["@octo-org/maintainers"]);
        assert_eq!(o("tests/api/upload.rs"), ["@alice", "@octo-org/api"]);
        assert_eq!(o("a/b/logs/today.txt"), ["@logger"]);
        // A section is read apart: its match first, the rules above it still count.
        assert_eq!(o("db/schema.sql"), ["@dba", "@octo-org/maintainers"]);
        // `*` stays in its directory.
        assert_eq!(o("db/old/schema.sql"), ["@octo-org/maintainers"]);
        // A rule without owners leaves the path unowned.
        assert!(o("build/out.txt").is_empty());
        assert!(owners("", "x").is_empty());
    }

    /// GitLab: each section's last match counts, the later first; a bare pattern takes its
    /// section's default owners; `[Name][2]` and `^[Name]` are headers, not patterns; optional
    /// sections last.
    #[test]
    fn gitlab_sections_keep_their_own_last_match_and_default_owners() {
        let file = "* @everyone\n\
            ^[Docs] @docs-team\n\
            docs/\n\
            [Backend][2] @grp/backend @carol\n\
            tests/api/\n\
            tests/api/slow/ @dave\n\
            [backend]\n\
            *.md @writer\n";
        let o = |f| owners(file, f);
        assert_eq!(
            o("tests/api/upload.rs"),
            ["@grp/backend", "@carol", "@everyone"]
        );
        assert_eq!(o("tests/api/slow/big.rs"), ["@dave", "@everyone"]);
        // Backend (merged with [backend]) matched last; optional Docs comes after required.
        assert_eq!(o("docs/guide.md"), ["@writer", "@everyone", "@docs-team"]);
        assert_eq!(o("src/lib.rs"), ["@everyone"]);
        // Only sections, no rule outside them: the section's owner is the first.
        assert_eq!(owners("[QA] @qa\ntests/\n", "tests/x.rs"), ["@qa"]);
        assert!(owners("[QA] @qa\ntests/\n", "src/x.rs").is_empty());
    }
}
