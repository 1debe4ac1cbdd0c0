//! Who owns a file by a CODEOWNERS file (GitHub's and GitLab's syntax): `pattern owner…`
//! lines, `#` comments, gitignore-style patterns, and the last matching line wins. GitLab's
//! `[Section]` headers are skipped; their rules apply like any other.

use regex::Regex;

/// The owners the last matching rule names for `file` (a repository path, no leading `/`).
/// Empty when no rule matches or the matching rule names nobody (an explicit "no owner").
pub fn owners(codeowners: &str, file: &str) -> Vec<String> {
    let file = file.trim_start_matches("./").trim_start_matches('/');
    let mut found = Vec::new();
    for line in codeowners.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with('[')
            || line.starts_with("^[")
        {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(pattern) = words.next() else {
            continue;
        };
        if matcher(pattern).is_some_and(|re| re.is_match(file)) {
            found = words.map(str::to_string).collect();
        }
    }
    found
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
        assert_eq!(o("db/schema.sql"), ["@dba"]);
        // `*` stays in its directory.
        assert_eq!(o("db/old/schema.sql"), ["@octo-org/maintainers"]);
        // A rule without owners leaves the path unowned.
        assert!(o("build/out.txt").is_empty());
        assert!(owners("", "x").is_empty());
    }
}
